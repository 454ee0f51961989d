//! `tresor scan`: stored secrets' values (and their encoded forms) and known
//! token shapes in files, the git index or recent commits; and the
//! pre-commit hook that runs it.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use clap::Args;

use tresor::config::Config;
use tresor::scan::{self, Options, Report, Scanner};
use tresor::{Error, Result};

use crate::commands::Ctx;
use crate::exit::ExitCode;
use crate::output;

pub const SCAN_HELP: &str = "\
Looks for the values of the secrets tresor stores (every store that can list, through the
unlock chain), as they are and base64, base64url, hex, URL-encoded or JSON-escaped, and for
known token shapes (AWS key ids, GitHub, OpenAI, Anthropic, HuggingFace, Slack and Stripe
tokens, private-key PEM headers). Each finding is printed as FILE:LINE:COLUMN with the
secret's name or the token kind, never the value. Exits with 1 when anything is found.

Folders are walked honouring .gitignore, .ignore and git's exclude files (--no-ignore
searches everything); .git is never searched. Binary files (a NUL byte near the start) and
files larger than --max-size are skipped and counted. Values shorter than 8 bytes are not
searched for.

Pre-commit: `tresor scan --install-hook` writes .git/hooks/pre-commit running
`tresor scan --staged` (the vault must be unlockable without a prompt there: an unlock
session, a key file or a keychain slot).";

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files and folders to search (default: the current folder).
    #[arg(value_name = "PATHS")]
    pub paths: Vec<PathBuf>,
    /// Search the files staged in the git index, as the next commit will hold them.
    #[arg(long, conflicts_with_all = ["paths", "history"])]
    pub staged: bool,
    /// Search the lines added by the last N commits (git log -p).
    #[arg(long, value_name = "N", conflicts_with = "paths")]
    pub history: Option<u64>,
    /// Write .git/hooks/pre-commit running `tresor scan --staged` (an existing different
    /// hook is never replaced).
    #[arg(long, conflicts_with_all = ["paths", "staged", "history", "shapes_only"])]
    pub install_hook: bool,
    /// Only look for known token shapes: do not open the vault.
    #[arg(long)]
    pub shapes_only: bool,
    /// Skip files larger than this (bytes, or with K, M, G).
    #[arg(long, value_name = "SIZE", default_value = "10M", value_parser = parse_size)]
    pub max_size: u64,
    /// Do not honour .gitignore, .ignore and git's exclude files.
    #[arg(long)]
    pub no_ignore: bool,
}

/// Runs `tresor scan`.
pub fn scan(ctx: &Ctx, args: ScanArgs) -> Result<()> {
    let here = Path::new(".");
    if args.install_hook {
        let (path, written) = scan::install_hook(here)?;
        let text = if written {
            format!(
                "installed {}: commits now run `tresor scan --staged`",
                path.display()
            )
        } else {
            format!("{} is already tresor's hook", path.display())
        };
        crate::commands::done(
            ctx,
            serde_json::json!({"hook": path, "written": written}),
            &text,
        );
        return Ok(());
    }
    let scanner = scanner(ctx, args.shapes_only)?;
    let options = Options {
        max_file_size: args.max_size,
        ignore_files: !args.no_ignore,
        ..Options::default()
    };
    let report = if args.staged {
        scanner.scan_staged(here, &options)?
    } else if let Some(n) = args.history {
        scanner.scan_history(here, n)?
    } else {
        let paths = if args.paths.is_empty() {
            vec![PathBuf::from(".")]
        } else {
            args.paths
        };
        scanner.scan_paths(&paths, &options)?
    };
    print(ctx, &report, args.max_size);
    if !report.findings.is_empty() {
        crate::manager_cmd::EXIT.store(ExitCode::NotFound as u8, Ordering::Relaxed);
    }
    Ok(())
}

/// The scanner: every stored value through the manager, unless only shapes
/// are asked for or there is no vault yet (nothing is stored, so shapes).
fn scanner(ctx: &Ctx, shapes_only: bool) -> Result<Scanner> {
    if shapes_only {
        return Ok(Scanner::shapes_only());
    }
    let config = Config::discover_and_load(ctx.config.as_deref())?;
    let mut tresor = crate::manager_cmd::open(ctx, config)?;
    match Scanner::from_tresor(&mut tresor) {
        Err(Error::NoVault { path }) => {
            ctx.status(&format!(
                "no vault at {}: looking for token shapes only",
                path.display()
            ));
            Ok(Scanner::shapes_only())
        }
        other => other,
    }
}

fn print(ctx: &Ctx, report: &Report, max_size: u64) {
    if ctx.json {
        output::json(report);
        return;
    }
    for f in &report.findings {
        let what = if f.kind == "secret" {
            format!("secret '{}' ({})", f.what, f.encoding)
        } else {
            format!("token: {}", f.what)
        };
        output::line(&format!("{}:{}:{}: {what}", f.path, f.line, f.column));
    }
    for u in &report.unreadable {
        eprintln!("tresor: warning: not scanned: {u}");
    }
    ctx.status(&format!(
        "{} finding{} in {} file{} ({:.1} MB) against {} stored secret{}{}; skipped {} binary, \
         {} larger than {max_size} bytes",
        report.findings.len(),
        plural(report.findings.len() as u64),
        report.files,
        plural(report.files),
        report.bytes as f64 / 1e6,
        report.secrets,
        plural(report.secrets as u64),
        if report.secrets_too_short > 0 {
            format!(
                " ({} shorter than {} bytes not searched)",
                report.secrets_too_short,
                scan::MIN_VALUE_LEN
            )
        } else {
            String::new()
        },
        report.skipped_binary,
        report.skipped_large,
    ));
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&t[..i], t[i..].trim_end_matches(['B', 'b', 'i'])),
        None => (t, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("a size such as 1048576, 512K, 10M or 1G, not {text:?}"))?;
    let scale = match unit {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        _ => {
            return Err(format!(
                "a size such as 1048576, 512K, 10M or 1G, not {text:?}"
            ));
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}
