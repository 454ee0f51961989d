//! One function per command.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::json;
use zeroize::Zeroizing;

use tresor::{
    AuditFilter, CreateOptions, Credential, Error, Label, LockedVault, OpenOptions, PasswordParams,
    Result, SecretName, Selector, Settings, SlotKind, Unlock, Vault,
};

use crate::cli::{AuditCommand, Cli, Command, KdfArgs, KeyslotCommand};
use crate::{input, output};

mod init;
mod keyslot;
mod rekey;

use init::init;
use keyslot::{keyslot, passwd};
use rekey::{rekey, settings};

/// Global flags every command sees.
pub struct Ctx {
    pub vault: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub json: bool,
    pub quiet: bool,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--profile`.
    pub profile: Option<String>,
    /// `--store`.
    pub store: Option<String>,
    /// `--offline`.
    pub offline: bool,
    /// `--max-age`.
    pub max_age: Option<std::time::Duration>,
}

impl Ctx {
    /// A status message on stderr (not with --quiet or --json).
    pub fn status(&self, text: &str) {
        if !self.quiet && !self.json {
            eprintln!("{text}");
        }
    }

    pub fn path(&self) -> Result<PathBuf> {
        tresor::vault_path(self.vault.as_deref())
    }

    pub(crate) fn open_options() -> Result<OpenOptions> {
        unlock_chain(None).open_options()
    }

    /// Opens and unlocks the vault through the unlock chain; `skip_flag`
    /// leaves `--key-file` out (it names a new slot's file instead).
    pub(crate) fn unlock(&self, skip_flag: bool) -> Result<Vault> {
        self.unlock_chain(skip_flag, true).map(|(vault, _)| vault)
    }

    /// The vault opened through the library's unlock chain
    /// ([`tresor::Unlock`]) with this CLI's PIN and password prompts, and
    /// how it was opened; `use_session` off when a session is about to
    /// be started.
    pub(crate) fn unlock_chain(
        &self,
        skip_flag: bool,
        use_session: bool,
    ) -> Result<(Vault, String)> {
        let path = self.path()?;
        let flag = if skip_flag {
            None
        } else {
            self.key_file.clone()
        };
        let opened = unlock_chain(flag).sessions(use_session).open(&path)?;
        Ok((opened.vault, opened.how.to_string()))
    }
}

/// The library's unlock chain as the CLI runs it: `--key-file` first, the
/// write-ahead log left for the next run (a one-shot process), the PIN of
/// a PKCS#11 token from TRESOR_PKCS11_PIN (said on stderr) or a prompt
/// naming token and module (an empty answer skips the token), and a
/// password prompt on a terminal as the last step.
pub fn unlock_chain(key_file: Option<PathBuf>) -> Unlock {
    Unlock::new()
        .key_file(key_file)
        .checkpoint_on_close(false)
        .on_pin(|module, token| {
            if let Some(pin) = tresor::pkcs11_pin_from_env() {
                output::note(&format!(
                    "using {} as the PIN of PKCS#11 token '{token}' (module {module})",
                    tresor::PKCS11_PIN_ENV
                ));
                return Ok(Some(pin));
            }
            if !input::can_prompt() {
                return Ok(None);
            }
            let pin = input::prompt(&format!(
                "PIN of PKCS#11 token '{token}' (module {module}; empty to skip): "
            ))?;
            Ok((!pin.is_empty()).then_some(pin))
        })
        .on_prompt(|path| {
            if !input::can_prompt() {
                return Ok(None);
            }
            input::prompt(&format!("Password for {}: ", path.display())).map(Some)
        })
}

/// Whether `e` is the clean refusal of a process whose unlock a `rekey
/// --master` in another process overtook (its keys are gone; unlocking
/// afresh opens the vault).
fn overtaken_by_rekey(e: &Error) -> bool {
    matches!(e, Error::Auth { reason, .. } if reason.contains("rekeyed by another process"))
}

/// Runs a read-only check, unlocking afresh when a `rekey --master` in
/// another process overtook it (at most three times): a check must not
/// fail because another process changed the master key meanwhile, and a
/// check writes nothing, so running it again is safe.
pub(crate) fn again_if_rekeyed<T>(mut check: impl FnMut() -> Result<T>) -> Result<T> {
    let mut tries = 0;
    loop {
        match check() {
            Err(e) if overtaken_by_rekey(&e) && tries < 3 => tries += 1,
            other => return other,
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let global = cli.global;
    let ctx = Ctx {
        vault: global.vault,
        key_file: global.key_file,
        json: global.json,
        quiet: global.quiet,
        config: global.config,
        profile: global.profile,
        store: global.store,
        offline: global.offline,
        max_age: global
            .max_age
            .as_deref()
            .map(crate::manager_cmd::parse_age)
            .transpose()?,
    };
    let command = match crate::manager_cmd::dispatch(&ctx, cli.command)? {
        None => return Ok(()),
        Some(command) => command,
    };
    match command {
        Command::Init(a) => init(&ctx, a),
        Command::Passwd(a) => passwd(&ctx, a),
        Command::Keyslot(k) => keyslot(&ctx, k),
        Command::Key(k) => {
            let report = crate::keys_cmd::Report {
                json: ctx.json,
                quiet: ctx.quiet,
            };
            crate::keys_cmd::run(k, &report, || ctx.unlock(false))
        }
        Command::Encrypt(a) => {
            crate::files_cmd::encrypt(a, &files_report(&ctx), || ctx.unlock(false))
        }
        Command::Decrypt(a) => {
            crate::files_cmd::decrypt(a, &files_report(&ctx), || ctx.unlock(false))
        }
        Command::Audit(AuditCommand::Log(a)) => {
            let mut vault = ctx.unlock(false)?;
            let filter = AuditFilter {
                name: a.name,
                limit: a.limit,
                writes_only: a.writes_only,
            };
            for e in vault.audit_log(&filter)? {
                if ctx.json {
                    output::json(&e);
                } else {
                    let versions: Vec<String> =
                        e.versions.iter().map(|v| format!("v{v}")).collect();
                    output::line(&format!(
                        "{:>6} {} {:<10} {:<14} {:<32} {:<8} {}{}",
                        e.seq,
                        output::time(e.at),
                        e.actor,
                        e.operation,
                        e.name.as_deref().unwrap_or("-"),
                        versions.join(","),
                        e.result,
                        e.reason
                            .map(|r| format!("  reason: {r}"))
                            .unwrap_or_default()
                            + &if e.flags.is_empty() {
                                String::new()
                            } else {
                                format!("  flags: {}", e.flags.join(","))
                            }
                    ));
                }
            }
            Ok(())
        }
        Command::Audit(AuditCommand::Verify(a)) => {
            crate::audit_cmd::verify(&ctx, a, || ctx.unlock(false))
        }
        Command::Audit(AuditCommand::Anchor(_)) => {
            crate::audit_cmd::anchor(&ctx, ctx.unlock(false)?)
        }
        Command::Verify => {
            let report = again_if_rekeyed(|| {
                ctx.unlock(false)?
                    .verify_with(&crate::progress::Bar::new(ctx.quiet, ctx.json))
            })?;
            if ctx.json {
                output::json(&json!({"ok": true, "report": report}));
            } else if !ctx.quiet {
                output::line(&format!(
                    "ok: {} secrets, {} versions ({} destroyed), {} data keys, audit chain of {} entries",
                    report.secrets,
                    report.versions,
                    report.destroyed_versions,
                    report.data_keys,
                    report.audit_entries
                ));
            }
            Ok(())
        }
        Command::Settings(a) => settings(&ctx, &a.changes),
        Command::Rekey(a) => rekey(&ctx, a),
        Command::Unlock(a) => crate::session_cmd::unlock(&ctx, a),
        Command::Lock => crate::session_cmd::lock(&ctx),
        Command::Status => crate::session_cmd::status(&ctx),
        Command::Agent => tresor::session::agent::serve_stdin().map_err(|e| match e {
            Error::Validation(m) if m.starts_with("the agent is not run by hand") => {
                Error::Validation(format!("{m}: run `tresor unlock --agent` instead"))
            }
            e => e,
        }),
        Command::Stores
        | Command::Doctor
        | Command::Config(_)
        | Command::Run(_)
        | Command::Get(_)
        | Command::Set(_)
        | Command::Ls(_)
        | Command::History(_)
        | Command::Rotate(_)
        | Command::Promote(_)
        | Command::Rollback(_)
        | Command::Rm(_)
        | Command::Undelete(_)
        | Command::Meta(_)
        | Command::Scan(_)
        | Command::Check(_)
        | Command::Render(_)
        | Command::Inject(_)
        | Command::Env(_)
        | Command::Migrate(_)
        | Command::Sync(_)
        | Command::Import(_)
        | Command::Export(_) => unreachable!("handled by manager_cmd::dispatch"),
        Command::Completions(a) => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            // Into a buffer, then out like every other output: a reader
            // that stops early (`| head`) is not a panic.
            let mut script = Vec::new();
            clap_complete::generate(a.shell, &mut cmd, "tresor", &mut script);
            output::write_listing(&script)
        }
    }
}

fn files_report(ctx: &Ctx) -> crate::files_cmd::Report {
    crate::files_cmd::Report {
        json: ctx.json,
        quiet: ctx.quiet,
    }
}

impl crate::files_cmd::Report {
    /// A progress bar on a terminal's stderr, unless the output itself goes
    /// to that terminal.
    pub fn bar(&self, to_stdout: bool) -> crate::progress::Bar {
        let shares_terminal = to_stdout && std::io::stdout().is_terminal();
        crate::progress::Bar::new(self.quiet || shares_terminal, self.json)
    }
}

fn password_from_env() -> Option<Zeroizing<String>> {
    tresor::PASSWORD_ENVS
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .map(Zeroizing::new)
}

/// The version or label `get` asks for.
pub fn selector_of(a: &crate::cli::GetArgs) -> Result<Selector> {
    Ok(match (a.version, &a.label) {
        (Some(v), _) => Selector::Version(v),
        (None, Some(l)) => Selector::Label(l.parse::<Label>()?),
        (None, None) => Selector::default(),
    })
}

/// Where a value came from, for `get` through the manager.
pub struct Origin<'a> {
    /// The store that answered.
    pub store: &'a str,
    /// The age of the offline copy that answered, if one did.
    pub cached_age_seconds: Option<u64>,
}

/// Prints a value as `get` does: raw to stdout, to `out`, or as JSON.
pub fn print_secret(
    ctx: &Ctx,
    name: &SecretName,
    secret: &tresor::Secret,
    out: Option<&Path>,
    origin: Option<Origin<'_>>,
) -> Result<()> {
    let bytes = secret.value.expose_secret();
    if let Some(out) = out {
        write_private(out, bytes)?;
        let mut body = json!({"name": name, "version": secret.version, "out": out});
        if let Some(o) = &origin {
            body["store"] = json!(o.store);
        }
        done(
            ctx,
            body,
            &format!("{name} v{} written to {}", secret.version, out.display()),
        );
        return Ok(());
    }
    if ctx.json {
        // Serialized from borrowed fields into one buffer sized for the
        // worst case (every byte escaped as \u00XX), so the value is never
        // copied into memory that is freed without being wiped.
        #[derive(serde::Serialize)]
        struct GetJson<'a> {
            name: &'a str,
            version: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            value: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            value_base64: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            store: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            cached_age_seconds: Option<u64>,
        }
        let encoded: Zeroizing<String> = Zeroizing::new(match secret.value.expose_text() {
            Some(_) => String::new(),
            None => base64::engine::general_purpose::STANDARD.encode(bytes),
        });
        let body = GetJson {
            name: name.as_str(),
            version: secret.version,
            value: secret.value.expose_text(),
            value_base64: (!encoded.is_empty()).then_some(encoded.as_str()),
            store: origin.as_ref().map(|o| o.store),
            cached_age_seconds: origin.as_ref().and_then(|o| o.cached_age_seconds),
        };
        let mut buf =
            output::SecretBuf::with_capacity(bytes.len() * 6 + name.as_str().len() * 6 + 128);
        serde_json::to_writer(&mut buf, &body)
            .and_then(|()| {
                std::io::Write::write_all(&mut buf, b"\n").map_err(serde_json::Error::io)
            })
            .map_err(|e| Error::Validation(e.to_string()))?;
        return output::write_secret_line(buf.as_bytes());
    }
    let newline = std::io::stdout().is_terminal() && !bytes.ends_with(b"\n");
    output::write_stdout(bytes, newline)
}

fn kdf_params(k: &KdfArgs) -> Result<PasswordParams> {
    let m = k
        .kdf_memory
        .checked_mul(1024)
        .ok_or_else(|| Error::Validation("--kdf-memory is too large".into()))?;
    PasswordParams::new(m, k.kdf_passes, k.kdf_lanes).map_err(Error::from)
}

/// `KEY=VALUE` pairs; `KEY=` gives `None` (remove).
pub fn parse_pairs(pairs: &[String]) -> Result<Vec<(String, Option<String>)>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                Ok((k.to_string(), (!v.is_empty()).then(|| v.to_string())))
            }
            _ => Err(Error::Validation(format!("expected KEY=VALUE, got {p:?}"))),
        })
        .collect()
}

/// Removes a key file this run created for a vault or slot that did not
/// come to be, so no file is left that looks like a key but opens nothing.
fn remove_new_key_file(created: Option<&Path>) {
    if let Some(file) = created {
        let _ = std::fs::remove_file(file);
    }
}

/// Writes `bytes` (a secret, a recovery key) to `path` through
/// [`tresor::fs::write_private`]: a new 0600 file renamed over a regular
/// file there, the folder synced; an existing FIFO, device or folder is
/// refused (exit code 2).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    tresor::fs::write_private(path, bytes)
}

/// Prints `history` rows (or JSON).
pub fn print_history(ctx: &Ctx, history: &[tresor::VersionInfo]) {
    if ctx.json {
        output::json(&history);
    } else {
        for row in history_rows(history) {
            output::line(&row);
        }
    }
}

/// `history`'s human rows: the labels column is as wide as its widest
/// entry (`-` for a version with none), so the reasons after it line up.
fn history_rows(history: &[tresor::VersionInfo]) -> Vec<String> {
    let labels: Vec<String> = history
        .iter()
        .map(|h| {
            let l: Vec<&str> = h.labels.iter().map(|l| l.as_str()).collect();
            if l.is_empty() {
                "-".to_string()
            } else {
                l.join(",")
            }
        })
        .collect();
    let width = labels.iter().map(String::len).max().unwrap_or(1);
    history
        .iter()
        .zip(&labels)
        .map(|(h, labels)| {
            let row = match h.destroyed_at {
                Some(at) => format!("v{:<4} destroyed {}", h.version, output::time(at)),
                None => format!(
                    "v{:<4} {}  {:<12} {:>8} bytes  {labels:<width$}{}",
                    h.version,
                    output::time(h.created_at),
                    h.actor,
                    h.len,
                    h.reason
                        .as_ref()
                        .map(|r| format!("  reason: {r}"))
                        .unwrap_or_default()
                ),
            };
            row.trim_end().to_string()
        })
        .collect()
}

/// Reports a finished change: JSON on stdout, or a status line on stderr.
pub fn done(ctx: &Ctx, body: serde_json::Value, text: &str) {
    if ctx.json {
        output::json(&body);
    } else {
        ctx.status(text);
    }
}
