//! `tresor import`: parse the arguments, read the file through
//! `tresor::import`, write through the manager, print the counts. A progress
//! bar on a terminal for long imports.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use zeroize::Zeroizing;

use tresor::import::{self, Format, ReadOptions};
use tresor::{Error, Result, Tresor};

use crate::commands::Ctx;

/// Imports with at least this many secrets show a progress bar.
const PROGRESS_FROM: usize = 1000;

#[derive(Debug, Args)]
#[command(after_long_help = "\
FORMATS
  legacy-config  seed 001's plaintext JSON: providers.<p>.credentials.<k> -> p/k.
                 Renamed to <file>.json.backup afterwards (it still holds the
                 plaintext: a warning says so), or removed with --shred.
  fernet         seed 001's Fernet-encrypted credentials file ({\"<p>.<k>\": value});
                 the key file is --fernet-key, else .encryption_key beside FILE.
  dtpy           a dtPyAppFramework .v3keystore, or the data/ folder holding one;
                 the password from --password-env VAR, else the framework's machine
                 password. Only INDEX-listed secrets unless --all.
  secrets-yaml   dtPyAppFramework's secrets.yaml (name + value, or file + store_as:
                 raw|base64); shredded and removed after the import.
  json           a flat JSON object of names to values.
  dotenv         KEY=VALUE lines: quotes, `export`, comments, multi-line quoted
                 values; ${VAR} is kept as written.
  env-map        name=VARIABLE lines: each value is read from the environment.

All or nothing: every entry is checked before anything is written (a bad one is
named by key path or line, never by value), and into a vault everything is one
transaction. --store names the target store (default: the first writable one).

EXAMPLES
  tresor import legacy-config ~/.model-forge/config.json
  tresor import fernet ~/.model-forge/credentials.enc
  tresor import dtpy ./data --password-env KEYSTORE_PASSWORD --prefix myapp
  tresor import dotenv .env --prefix app --dry-run")]
pub struct ImportArgs {
    /// What FILE holds: legacy-config, fernet, dtpy, secrets-yaml, json, dotenv, env-map.
    #[arg(value_parser = ["legacy-config", "fernet", "dtpy", "secrets-yaml", "json", "dotenv", "env-map"])]
    pub format: String,
    /// The file (for dtpy also the folder holding the .v3keystore).
    pub file: PathBuf,
    /// Put every name under this prefix (`--prefix app`: KEY becomes app/KEY).
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// Check and count, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Map names tresor cannot accept (spaces, other characters) to names it can,
    /// instead of refusing the import.
    #[arg(long)]
    pub rename_invalid: bool,
    /// Import empty values (refused without it).
    #[arg(long)]
    pub allow_empty: bool,
    /// Overwrite the source file with random bytes and remove it after a successful
    /// import (legacy-config: instead of keeping a .json.backup).
    #[arg(long)]
    pub shred: bool,
    /// fernet: the Fernet key file [default: .encryption_key beside FILE].
    #[arg(long, value_name = "FILE")]
    pub fernet_key: Option<PathBuf>,
    /// dtpy: the environment variable holding the keystore password, used verbatim
    /// (the framework's container-mode KEYSTORE_PASSWORD). Without it: the machine password.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// dtpy: the framework's settings too (entries not in its INDEX).
    #[arg(long)]
    pub all: bool,
}

pub fn import(ctx: &Ctx, t: &mut Tresor, a: ImportArgs) -> Result<()> {
    let format = Format::parse(&a.format).expect("clap checked the format");
    let password = match &a.password_env {
        Some(var) => Some(Zeroizing::new(std::env::var(var).map_err(|_| {
            Error::Validation(format!("--password-env: the variable {var} is not set"))
        })?)),
        None => None,
    };
    let key_file = match (&a.fernet_key, format) {
        (Some(k), _) => Some(k.clone()),
        (None, Format::Fernet) => Some(
            a.file
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join(".encryption_key"),
        ),
        _ => None,
    };
    let options = ReadOptions {
        prefix: a.prefix.clone(),
        rename_invalid: a.rename_invalid,
        allow_empty: a.allow_empty,
        key_file,
        password,
        all: a.all,
        environment: None,
    };
    let plan = import::read(format, &a.file, &options)?;
    for w in &plan.warnings {
        warn(ctx, w);
    }
    let counts = plan.counts();
    let renamed: Vec<_> = plan
        .entries
        .iter()
        .filter_map(|e| {
            e.renamed_from
                .as_ref()
                .map(|from| json!({"from": from, "to": e.name.as_str()}))
        })
        .collect();
    if a.dry_run {
        if ctx.json {
            crate::output::json(&json!({
                "dry_run": true,
                "source": plan.source,
                "format": format.as_str(),
                "would_import": plan.entries.len(),
                "counts": counts_json(&counts),
                "names": plan.entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
                "renamed": renamed,
            }));
        } else {
            for e in &plan.entries {
                match &e.renamed_from {
                    Some(from) => println!("{}  ({}, renamed from {from:?})", e.name, e.origin),
                    None => println!("{}  ({})", e.name, e.origin),
                }
            }
            ctx.status(&format!(
                "dry run: {} secrets would be imported ({}); nothing was written",
                plan.entries.len(),
                counts_text(&counts)
            ));
        }
        return Ok(());
    }
    let items = plan.items();
    let bar = progress_bar(ctx, items.len());
    let reason = format!("import {} {}", format.as_str(), plan.source.display());
    let result = t.import(ctx.store.as_deref(), &items, Some(&reason), &mut |n| {
        if let Some(b) = &bar {
            b.set_position(n as u64);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    drop(items);
    let written = result?;
    let after = import::finish(&plan, a.shred)?;
    let backup_kept = format == Format::LegacyConfig && !a.shred;
    if let (true, Some(after)) = (backup_kept, &after) {
        warn(ctx, after);
    }
    if ctx.json {
        crate::output::json(&json!({
            "store": written.store,
            "source": plan.source,
            "format": format.as_str(),
            "imported": written.written,
            "counts": counts_json(&counts),
            "renamed": renamed,
            "source_after": after,
        }));
    } else {
        ctx.status(&format!(
            "imported {} secrets into {} ({})",
            written.written,
            written.store,
            counts_text(&counts)
        ));
        for r in &renamed {
            ctx.status(&format!("  renamed {} -> {}", r["from"], r["to"]));
        }
        if let (false, Some(after)) = (backup_kept, &after) {
            ctx.status(after);
        }
    }
    Ok(())
}

fn warn(ctx: &Ctx, text: &str) {
    // Warnings show even with --quiet, as the manager's do.
    if ctx.json {
        eprintln!("{}", json!({ "warning": text }));
    } else {
        eprintln!("tresor: warning: {text}");
    }
}

fn counts_json(counts: &[(String, usize)]) -> serde_json::Value {
    counts
        .iter()
        .map(|(g, n)| (g.clone(), json!(n)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn counts_text(counts: &[(String, usize)]) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(g, n)| format!("{g}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A bar on stderr for a long import, only on a terminal and never with
/// --json or --quiet.
fn progress_bar(ctx: &Ctx, len: usize) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal as _;
    if ctx.json || ctx.quiet || len < PROGRESS_FROM || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("importing {bar:40} {pos}/{len} ({eta} left)")
    {
        bar.set_style(style);
    }
    Some(bar)
}
