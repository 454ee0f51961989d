//! `tresor config trust` and `tresor config untrust`: the user's approval
//! of project configs (see `tresor::trust`).

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use tresor::config::{Config, ConfigFile, PROJECT_FILE};
use tresor::trust::{TrustList, Verdict};
use tresor::{Error, Result};

use crate::commands::Ctx;
use crate::output;

/// The long help of `tresor config trust`.
pub const TRUST_HELP: &str = "\
Approve a project config so tresor uses it.

A tresor.toml in the current folder came with the folder (a cloned repository, an
unpacked archive), and a config decides which servers receive your tokens and values:
`token = \"SEC/bao/token\"` sends a secret of your vault to the store's address. So
tresor uses ./tresor.toml only after you approved it here, and refuses it (exit 2)
before unlocking or contacting anything otherwise.

Review the file first: `tresor config check` shows an unapproved project config's
problems, and where each of its stores would send requests and take credentials from
(SEC/..., ENV/..., a literal, or found by the store itself), contacting nothing and
unlocking nothing. Trusting prints the same summary.

This records the file's absolute path and the SHA-256 of its content in
$XDG_DATA_HOME/tresor/trusted-configs (~/.local/share/tresor/...). Any change to the
file withdraws the approval until you trust it again. `tresor config untrust` withdraws
it by hand. A file named with --config or TRESOR_CONFIG, and your own
$XDG_CONFIG_HOME/tresor/config.toml, need no approval.

Every config file, approved or not, must be owned by you (or root) and not writable
by group or others.";

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// The config file to approve [default: ./tresor.toml].
    #[arg(value_name = "PATH", conflicts_with = "list")]
    pub path: Option<PathBuf>,
    /// List the approved files instead, each with its state: ok, changed (approve it
    /// again after reviewing), or missing.
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, Args)]
pub struct UntrustArgs {
    /// The config file [default: ./tresor.toml]; it need not exist any more.
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
}

/// `tresor config trust [PATH] [--list]`.
pub fn trust(ctx: &Ctx, args: TrustArgs) -> Result<()> {
    if args.list {
        return list(ctx);
    }
    let path = args.path.unwrap_or_else(|| PathBuf::from(PROJECT_FILE));
    let file = ConfigFile::read(&path)?;
    // What the file would do, shown as it is approved.
    let (config, problems) = Config::parse_lenient(file.text(), Some(&path));
    let added = TrustList::trust(&file)?;
    let stores: Vec<_> = config
        .stores
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "kind": s.kind,
                "credentials": s.credentials(),
                "sends_to": s.destination(),
            })
        })
        .collect();
    if ctx.json {
        output::json(&json!({
            "path": file.canonical(),
            "sha256": file.sha256_hex(),
            "trusted": true,
            "already_trusted": !added,
            "stores": stores,
            "problems": problems,
        }));
        return Ok(());
    }
    ctx.status(&format!(
        "{} {} (SHA-256 {}); tresor uses it until it changes",
        if added { "trusted" } else { "already trusted:" },
        file.canonical().display(),
        &file.sha256_hex()[..16]
    ));
    for s in &config.stores {
        let creds: Vec<String> = s.credentials().iter().map(ToString::to_string).collect();
        ctx.status(&format!(
            "  store '{}' ({}){}: credentials: {}",
            s.name,
            s.kind,
            s.destination()
                .map(|d| format!(" sends to {d}"))
                .unwrap_or_default(),
            creds.join("; ")
        ));
    }
    if !problems.is_empty() {
        ctx.status(&format!(
            "note: {} problem{} in it: see `tresor config check`",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        ));
    }
    Ok(())
}

/// `tresor config untrust [PATH]`.
pub fn untrust(ctx: &Ctx, args: UntrustArgs) -> Result<()> {
    let path = args.path.unwrap_or_else(|| PathBuf::from(PROJECT_FILE));
    let removed = TrustList::untrust(&path)?;
    let shown = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    crate::commands::done(
        ctx,
        json!({"path": shown, "trusted": false, "removed": removed}),
        &if removed {
            format!("untrusted {}: tresor no longer uses it", shown.display())
        } else {
            format!("{} was not trusted: nothing to do", shown.display())
        },
    );
    Ok(())
}

fn list(ctx: &Ctx) -> Result<()> {
    let trust = TrustList::open()?;
    let rows: Vec<_> = trust
        .entries()
        .iter()
        .map(|t| {
            let state = state_of(&t.path, &trust);
            json!({"path": t.path, "sha256": t.sha256, "state": state})
        })
        .collect();
    if ctx.json {
        output::json(&rows);
        return Ok(());
    }
    if rows.is_empty() {
        ctx.status(&format!(
            "no trusted project configs (list: {})",
            trust.file().display()
        ));
    }
    for r in &rows {
        output::line(&format!(
            "{:<8} {}",
            r["state"].as_str().unwrap_or_default(),
            r["path"].as_str().unwrap_or_default()
        ));
    }
    Ok(())
}

/// `ok`, `changed`, `missing`, or `refused` (owner or mode).
fn state_of(path: &Path, trust: &TrustList) -> &'static str {
    match ConfigFile::read(path) {
        Ok(file) => match trust.verdict(&file) {
            Verdict::Trusted => "ok",
            Verdict::Changed { .. } => "changed",
            // Read through a link to another file.
            Verdict::Unknown => "moved",
        },
        Err(Error::Validation(m)) if m.ends_with("does not exist") => "missing",
        Err(_) => "refused",
    }
}
