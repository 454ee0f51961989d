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
use crate::output;

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
  bundle         a `tresor export` bundle (age): every version, oldest first, with
                 reasons and metadata; opened with -i IDENTITY_FILE, --passphrase or
                 --passphrase-file. A truncated or altered bundle is refused whole.

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
    #[arg(value_parser = ["legacy-config", "fernet", "dtpy", "secrets-yaml", "json", "dotenv", "env-map", "bundle"])]
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
    /// Import values even if they fail the validation rules for their names
    /// (presets such as openai/* → sk-…, and [[rules]] in tresor.toml); each
    /// secret's audit entry records the override (flag `unvalidated`).
    #[arg(long)]
    pub no_validate: bool,
    /// Overwrite the source file with random bytes and remove it after a successful
    /// import (legacy-config: instead of keeping a .json.backup).
    #[arg(long)]
    pub shred: bool,
    /// dotenv, legacy-config, json: replace each imported value in FILE by its SEC/NAME
    /// reference, so programs reading FILE keep working through tresor and no plaintext
    /// stays in it (the old text is overwritten; legacy-config keeps no backup).
    #[arg(long, conflicts_with = "shred")]
    pub rewrite: bool,
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
    /// bundle: an age identity file that opens it (repeatable).
    #[arg(long = "identity", short = 'i', value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// bundle: ask for its passphrase on the terminal.
    #[arg(long, conflicts_with_all = ["identities", "passphrase_file"])]
    pub passphrase: bool,
    /// bundle: its passphrase is the first line of FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "identities")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_long_help = "\
Without a recipient, --format or --plaintext, the export holds metadata only: names,
stores, versions, dates, reasons, lengths and metadata, never a value.

Values leave tresor only encrypted:
  bundle (default with -r, -R, --key, --passphrase, --passphrase-file): an age file
         with every version of every secret; `tresor import bundle` reads it back
         exactly, and stock `age -d` opens it.
  --format dtpy: a dtPyAppFramework .v3keystore (current values, INDEX kept) that a
         framework app reads; its password from --password-env VAR, else the
         framework's machine password for that path.
  --plaintext: a flat JSON object of names to values, written as a new 0600 file
         (-o required), with a warning.

EXAMPLES
  tresor export --prefix openai/ > inventory.json
  tresor export -r age1... -o backup.age
  tresor export --format dtpy --password-env KEYSTORE_PASSWORD -o data/myapp.v3keystore")]
pub struct ExportArgs {
    /// Only secrets whose names start with P.
    #[arg(long, value_name = "P", default_value = "")]
    pub prefix: String,
    /// Write here instead of stdout (a bundle, a keystore and plaintext: a new file).
    #[arg(long, short = 'o', value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// bundle: encrypt to this age recipient, age1… (repeatable).
    #[arg(long = "to", short = 'r', value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
    /// bundle: encrypt to the recipients listed in FILE (repeatable).
    #[arg(long = "recipients-file", short = 'R', value_name = "FILE")]
    pub recipients_files: Vec<PathBuf>,
    /// bundle: encrypt to the vault's age key NAME (`tresor key create NAME --type age`).
    #[arg(long, value_name = "NAME")]
    pub key: Option<String>,
    /// bundle: encrypt to a passphrase asked on the terminal.
    #[arg(long)]
    pub passphrase: bool,
    /// bundle: encrypt to the passphrase on the first line of FILE.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Write this format: bundle (age) or dtpy (a .v3keystore).
    #[arg(long, value_parser = ["bundle", "dtpy"])]
    pub format: Option<String>,
    /// dtpy: the environment variable holding the keystore password, used verbatim.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// Write values in the clear (a 0600 file; a warning is printed).
    #[arg(long, conflicts_with_all = ["recipients", "recipients_files", "key", "passphrase", "passphrase_file", "format"])]
    pub plaintext: bool,
}

pub fn import(ctx: &Ctx, t: &mut Tresor, a: ImportArgs) -> Result<()> {
    if a.format == "bundle" {
        return import_bundle(ctx, t, a);
    }
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
    if a.rewrite && !import::rewritable(format) {
        return Err(Error::Validation(format!(
            "--rewrite applies to dotenv, legacy-config and json files, not {}",
            format.as_str()
        )));
    }
    let mut plan = import::read(format, &a.file, &options)?;
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
            // One write for the whole listing, not one per line.
            let mut text = String::new();
            for e in &plan.entries {
                use std::fmt::Write as _;
                let _ = match &e.renamed_from {
                    Some(from) => {
                        writeln!(text, "{}  ({}, renamed from {from:?})", e.name, e.origin)
                    }
                    None => writeln!(text, "{}  ({})", e.name, e.origin),
                };
            }
            if let Some(body) = text.strip_suffix('\n') {
                output::line(body);
            }
            ctx.status(&format!(
                "dry run: {} secrets would be imported ({}); nothing was written",
                plan.entries.len(),
                counts_text(&counts)
            ));
        }
        return Ok(());
    }
    let items = plan.take_items();
    let bar = progress_bar(ctx, items.len());
    let options = tresor::PutOptions {
        reason: Some(format!(
            "import {} {}",
            format.as_str(),
            plan.source.display()
        )),
        unvalidated: a.no_validate,
        ..tresor::PutOptions::default()
    };
    let result = t.import_with(ctx.store.as_deref(), &items, &options, &mut |n| {
        if let Some(b) = &bar {
            b.set_position(n as u64);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    drop(items);
    let written = result?;
    let after = if a.rewrite {
        import::rewrite(&plan)?;
        Some(format!(
            "{}: every imported value replaced by its SEC/ reference",
            plan.source.display()
        ))
    } else {
        import::finish(&plan, a.shred)?
    };
    let backup_kept = format == Format::LegacyConfig && !a.shred && !a.rewrite;
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

fn import_bundle(ctx: &Ctx, t: &mut Tresor, a: ImportArgs) -> Result<()> {
    use tresor::files::{self, DecryptWith};
    let with = if a.passphrase {
        DecryptWith::Passphrase(crate::files_cmd::prompt_passphrase(false, None)?)
    } else if let Some(p) = &a.passphrase_file {
        DecryptWith::Passphrase(crate::files_cmd::passphrase_from_file(p)?)
    } else {
        let mut ids = Vec::new();
        for p in &a.identities {
            ids.extend(files::read_identity_file(p)?);
        }
        if ids.is_empty() {
            return Err(Error::Validation(
                "a bundle opens with -i IDENTITY_FILE, --passphrase or --passphrase-file".into(),
            ));
        }
        DecryptWith::Identities(ids)
    };
    let bundle = import::bundle::open_file(&a.file, &with)?;
    let mut items = bundle.items()?;
    if a.no_validate {
        for (_, versions) in &mut items {
            for (_, options) in versions {
                options.unvalidated = true;
            }
        }
    }
    let versions: usize = items.iter().map(|(_, v)| v.len()).sum();
    if a.dry_run {
        if ctx.json {
            crate::output::json(&json!({
                "dry_run": true, "source": a.file, "format": "bundle",
                "would_import": items.len(), "versions": versions,
            }));
        } else {
            ctx.status(&format!(
                "dry run: {} secrets ({versions} versions) would be imported; nothing was written",
                items.len()
            ));
        }
        return Ok(());
    }
    let bar = progress_bar(ctx, items.len());
    let reason = format!("import bundle {}", a.file.display());
    let result = t.import_histories(ctx.store.as_deref(), &items, Some(&reason), &mut |n| {
        if let Some(b) = &bar {
            b.set_position(n as u64);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let written = result?;
    if ctx.json {
        crate::output::json(&json!({
            "store": written.store, "source": a.file, "format": "bundle",
            "imported": written.written, "versions": versions,
        }));
    } else {
        ctx.status(&format!(
            "imported {} secrets ({versions} versions) into {}",
            written.written, written.store
        ));
    }
    Ok(())
}

pub fn export(ctx: &Ctx, t: &mut Tresor, a: ExportArgs) -> Result<()> {
    use std::io::{IsTerminal as _, Write as _};
    let encrypted = !a.recipients.is_empty()
        || !a.recipients_files.is_empty()
        || a.key.is_some()
        || a.passphrase
        || a.passphrase_file.is_some();
    let format = match (a.format.as_deref(), encrypted, a.plaintext) {
        (Some("dtpy"), true, _) => {
            return Err(Error::Validation(
                "--format dtpy writes a keystore sealed by its password; recipients and \
                 passphrases are for bundles"
                    .into(),
            ));
        }
        (Some("dtpy"), _, _) => "dtpy",
        (Some("bundle"), false, _) => {
            return Err(Error::Validation(
                "a bundle needs a recipient: -r RECIPIENT, -R FILE, --key NAME, --passphrase or \
                 --passphrase-file"
                    .into(),
            ));
        }
        (_, true, _) => "bundle",
        (_, false, true) => "plaintext",
        _ => "metadata",
    };
    match format {
        "metadata" => {
            let bundle = import::bundle::export(t, &a.prefix, false)?;
            let text = serde_json::to_vec_pretty(&bundle).expect("serializes");
            match &a.output {
                Some(p) => tresor::fs::create_private(p, &text)?,
                None => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&text);
                    let _ = writeln!(out);
                }
            }
            ctx.status(&format!(
                "exported metadata of {} secrets (no values)",
                bundle.secrets.len()
            ));
        }
        "bundle" => {
            let to = crate::files_cmd::encrypt_to(
                a.passphrase,
                a.passphrase_file.as_deref(),
                &a.recipients,
                &a.recipients_files,
                a.key.as_deref(),
                || ctx.unlock(false),
            )?;
            if a.output.is_none() && std::io::stdout().is_terminal() {
                return Err(Error::Validation(
                    "refusing to write binary age data to a terminal; use -o OUT or a redirect"
                        .into(),
                ));
            }
            let bundle = import::bundle::export(t, &a.prefix, true)?;
            let sealed = import::bundle::seal(&bundle, &to)?;
            match &a.output {
                Some(p) => tresor::fs::create_private(p, &sealed)?,
                None => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&sealed).map_err(|e| Error::Io {
                        store: "export".into(),
                        path: "stdout".into(),
                        source: e,
                    })?;
                }
            }
            let versions: usize = bundle.secrets.iter().map(|s| s.versions.len()).sum();
            report(
                ctx,
                "bundle",
                bundle.secrets.len(),
                versions,
                a.output.as_deref(),
            );
        }
        "dtpy" => export_dtpy(ctx, t, &a)?,
        _ => {
            let path = a.output.as_deref().ok_or_else(|| {
                Error::Validation("--plaintext writes a new 0600 file: give -o OUT".into())
            })?;
            let bundle = import::bundle::export(t, &a.prefix, true)?;
            let mut map = serde_json::Map::new();
            for s in &bundle.secrets {
                let Some(v) = s.versions.iter().find(|v| v.version == s.current) else {
                    continue;
                };
                let bytes = base64_decode(v.value.as_deref().unwrap_or_default());
                let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
                    Error::Validation(format!(
                        "'{}' is not UTF-8 text; a plaintext JSON export holds text only \
                         (use a bundle)",
                        s.name
                    ))
                })?;
                map.insert(s.name.clone(), serde_json::Value::String(text));
            }
            let mut text = Zeroizing::new(Vec::new());
            serde_json::to_writer_pretty(&mut *text, &map).expect("serializes");
            for v in map.values_mut() {
                if let serde_json::Value::String(s) = v {
                    zeroize::Zeroize::zeroize(s);
                }
            }
            tresor::fs::create_private(path, &text)?;
            warn(
                ctx,
                &format!(
                    "{} holds {} secret values in the clear; encrypt it or remove it when done",
                    path.display(),
                    bundle.secrets.len()
                ),
            );
            report(
                ctx,
                "plaintext",
                bundle.secrets.len(),
                bundle.secrets.len(),
                Some(path),
            );
        }
    }
    Ok(())
}

fn base64_decode(text: &str) -> Zeroizing<Vec<u8>> {
    use base64::Engine as _;
    Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_default(),
    )
}

fn export_dtpy(ctx: &Ctx, t: &mut Tresor, a: &ExportArgs) -> Result<()> {
    let path = a.output.as_deref().ok_or_else(|| {
        Error::Validation("--format dtpy writes a keystore file: give -o OUT.v3keystore".into())
    })?;
    let password = match &a.password_env {
        Some(var) => Some(Zeroizing::new(std::env::var(var).map_err(|_| {
            Error::Validation(format!("--password-env: the variable {var} is not set"))
        })?)),
        None => None,
    };
    let n = import::bundle::export_dtpy(t, &a.prefix, path, password)?;
    report(ctx, "dtpy", n, n, Some(path));
    Ok(())
}

fn report(ctx: &Ctx, format: &str, secrets: usize, versions: usize, out: Option<&std::path::Path>) {
    if ctx.json {
        crate::output::json(&json!({
            "format": format, "exported": secrets, "versions": versions, "output": out,
        }));
    } else {
        ctx.status(&format!(
            "exported {secrets} secrets ({versions} versions) as {format}{}",
            out.map_or(String::new(), |p| format!(" to {}", p.display()))
        ));
    }
}

/// dtPyAppFramework's auto-import, as tresor does it: a `secrets.yaml`
/// beside the vault is imported into the first writable store when a
/// command opens the stores, then shredded and removed. A file that does
/// not import (malformed, a bad entry) is left in place with a warning and
/// blocks nothing.
pub fn auto_import(ctx: &Ctx, t: &mut Tresor) {
    let Ok(vault) = ctx.path() else { return };
    let Some(yaml) = vault.parent().map(|d| d.join("secrets.yaml")) else {
        return;
    };
    if !yaml.is_file() {
        return;
    }
    let result = (|| -> Result<usize> {
        let plan = import::read(Format::SecretsYaml, &yaml, &ReadOptions::default())?;
        for w in &plan.warnings {
            warn(ctx, w);
        }
        let items = plan.items();
        let reason = format!("auto-import {}", yaml.display());
        let written = t.import(None, &items, Some(&reason), &mut |_| {})?;
        import::finish(&plan, true)?;
        Ok(written.written)
    })();
    match result {
        Ok(n) => ctx.status(&format!(
            "imported {n} secrets from {} (then shredded and removed)",
            yaml.display()
        )),
        Err(e) => warn(
            ctx,
            &format!(
                "{} was not imported and is left in place: {e}",
                yaml.display()
            ),
        ),
    }
}
