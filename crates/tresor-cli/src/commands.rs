//! One function per command.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::json;
use zeroize::Zeroizing;

use tresor::{
    AuditFilter, CreateOptions, Credential, DeleteMode, Error, Label, LockedVault, OpenOptions,
    PasswordParams, PutOptions, Result, SecretName, Selector, Settings, SlotKind, Unlock, Vault,
};

use crate::cli::{AuditCommand, Cli, Command, KdfArgs, KeyslotCommand};
use crate::{input, output};

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
        // One-shot process: leave the WAL for the next run instead of
        // checkpointing (two fsyncs) on every exit.
        Ok(OpenOptions {
            lock_timeout: tresor::lock_timeout()?,
            no_checkpoint_on_close: true,
        })
    }

    /// Opens and unlocks the vault through the unlock chain; `skip_flag`
    /// leaves `--key-file` out (it names a new slot's file instead).
    fn unlock(&self, skip_flag: bool) -> Result<Vault> {
        self.unlock_chain(skip_flag, true).map(|(vault, _)| vault)
    }

    /// The unlock chain (DESIGN.md "Unlocking"): `--key-file` /
    /// `TRESOR_KEY_FILE`, `TRESOR_KEY`, `TRESOR_PASSWORD` (and its aliases),
    /// `TRESOR_RECOVERY_KEY`, a keychain slot, an unlock session (when
    /// `use_session`), then a prompt on a terminal. Returns the vault and
    /// how it was unlocked.
    pub(crate) fn unlock_chain(
        &self,
        skip_flag: bool,
        use_session: bool,
    ) -> Result<(Vault, String)> {
        let path = self.path()?;
        let flag = if skip_flag {
            None
        } else {
            self.key_file.as_deref()
        };
        unlock_chain_at(&path, flag, use_session)
    }
}

/// The unlock chain (DESIGN.md "Unlocking") for the vault at `path`:
/// `flag` (`--key-file`) / `TRESOR_KEY_FILE`, `TRESOR_KEY`, `TRESOR_PASSWORD`
/// (and its aliases), `TRESOR_RECOVERY_KEY`, a keychain slot, an unlock
/// session (when `use_session`), a PKCS#11 slot, then a password prompt on
/// a terminal. Returns the
/// vault and how it was unlocked.
pub fn unlock_chain_at(
    path: &Path,
    flag: Option<&Path>,
    use_session: bool,
) -> Result<(Vault, String)> {
    let path = path.to_path_buf();
    let mut locked = LockedVault::open(&path, &Ctx::open_options()?)?;
    if let Some(unlock) = Unlock::from_environment(flag)? {
        let vault = locked.unlock_as(&unlock.credential, &unlock.source)?;
        return Ok((vault, unlock.source));
    }
    // Keychain slots: an entry that cannot be read only matters when
    // nothing else can unlock.
    let (found, mut errors) = tresor::keychain_credentials(&locked)?;
    if !found.is_empty() {
        return Ok((locked.unlock_any(&found)?, "keychain slot".into()));
    }
    if use_session {
        let vault_id = locked.id();
        if let Some(session) = tresor::session::find(&vault_id) {
            let source = format!("unlock session ({})", session.info.backend.as_str());
            match locked.unlock_with_master(session.master, &source) {
                Ok(vault) => return Ok((vault, source)),
                Err(Error::Auth { .. }) => {
                    // The vault was rekeyed since: the session is useless.
                    tresor::session::discard(&vault_id);
                    locked = LockedVault::open(&path, &Ctx::open_options()?)?;
                }
                Err(e) => return Err(e),
            }
        }
    }
    // PKCS#11 slots: the token's PIN from TRESOR_PKCS11_PIN or a prompt.
    let (found, pkcs11_errors, skipped) = pkcs11_credentials(&locked, true)?;
    if !found.is_empty() {
        return Ok((locked.unlock_any(&found)?, "PKCS#11 slot".into()));
    }
    // A wrong or locked PIN is the answer: no password prompt after it.
    if let Some(i) = pkcs11_errors
        .iter()
        .position(|e| matches!(e, Error::Auth { .. } | Error::Locked { .. }))
    {
        return Err(pkcs11_errors.into_iter().nth(i).expect("index found above"));
    }
    errors.extend(pkcs11_errors);
    errors.extend(skipped);
    let mut keychain_error = || match errors.len() {
        0 => None,
        1 => errors.pop(),
        _ => Some(Error::Unavailable {
            store: "key slots".into(),
            reason: errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        }),
    };
    if !input::can_prompt() {
        return Err(keychain_error().unwrap_or_else(Unlock::missing));
    }
    if !locked.slot_kinds()?.contains(&SlotKind::Password) {
        return Err(keychain_error().unwrap_or_else(|| Error::NoCredential {
            store: "vault".into(),
            password_slot: false,
        }));
    }
    let pw = input::prompt(&format!("Password for {}: ", path.display()))?;
    let source = "password prompt".to_string();
    let vault = locked.unlock_as(&Credential::password(pw), &source)?;
    Ok((vault, source))
}

/// [`unlock_chain_at`] with sessions, for the manager's vault stores.
pub fn unlock_at(path: &Path, flag: Option<&Path>) -> Result<Vault> {
    unlock_chain_at(path, flag, true).map(|(vault, _)| vault)
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
        Command::Set(a) => {
            let name = SecretName::new(a.name)?;
            let value = input::value(&a.value, name.as_str())?;
            let options = PutOptions {
                expect_version: a.expect_version,
                reason: a.reason,
                metadata: parse_pairs(&a.meta)?
                    .into_iter()
                    .map(|(k, v)| (k, v.unwrap_or_default()))
                    .collect(),
                stage: false,
            };
            let mut vault = ctx.unlock(false)?;
            let version = vault.put(&name, &value, &options)?;
            report_version(&ctx, "set", &name, version);
            Ok(())
        }
        Command::Get(a) => get(&ctx, a),
        Command::Ls(a) => {
            let mut vault = ctx.unlock(false)?;
            let list = vault.list(&a.prefix, a.deleted)?;
            if ctx.json {
                output::json(&list);
            } else {
                for s in &list {
                    let mut row = format!(
                        "{:<40} v{:<4} {}",
                        s.name,
                        s.current,
                        output::time(s.updated_at)
                    );
                    if let Some(p) = s.pending {
                        row.push_str(&format!("  pending v{p}"));
                    }
                    if let Some(d) = s.deleted_at {
                        row.push_str(&format!("  deleted {}", output::time(d)));
                    }
                    output::line(&row);
                }
            }
            Ok(())
        }
        Command::History(a) => {
            let name = SecretName::new(a.name)?;
            let mut vault = ctx.unlock(false)?;
            let history = vault.history(&name)?;
            print_history(&ctx, &history);
            Ok(())
        }
        Command::Rotate(a) => {
            let name = SecretName::new(a.name)?;
            let value = input::value(&a.value, name.as_str())?;
            let options = PutOptions {
                reason: a.reason,
                stage: a.stage,
                ..PutOptions::default()
            };
            let mut vault = ctx.unlock(false)?;
            let version = vault.put(&name, &value, &options)?;
            report_version(
                &ctx,
                if a.stage { "staged" } else { "rotated" },
                &name,
                version,
            );
            Ok(())
        }
        Command::Promote(a) => {
            let name = SecretName::new(a.name)?;
            let mut vault = ctx.unlock(false)?;
            let version = vault.promote(&name, a.reason.as_deref())?;
            report_version(&ctx, "promoted", &name, version);
            Ok(())
        }
        Command::Rollback(a) => {
            let name = SecretName::new(a.name)?;
            let mut vault = ctx.unlock(false)?;
            vault.rollback(&name, a.version, a.reason.as_deref())?;
            report_version(&ctx, "rolled back", &name, a.version);
            Ok(())
        }
        Command::Rm(a) => {
            let name = SecretName::new(a.name)?;
            let mut vault = ctx.unlock(false)?;
            let mode = if a.purge {
                DeleteMode::Purge
            } else {
                DeleteMode::Soft
            };
            vault.delete(&name, mode)?;
            let what = if a.purge {
                "purged"
            } else {
                "deleted (undo with `tresor undelete`)"
            };
            done(
                &ctx,
                json!({"name": name, "deleted": true, "purged": a.purge}),
                &format!("{name}: {what}"),
            );
            Ok(())
        }
        Command::Undelete(a) => {
            let name = SecretName::new(a.name)?;
            let mut vault = ctx.unlock(false)?;
            vault.undelete(&name)?;
            done(
                &ctx,
                json!({"name": name, "deleted": false}),
                &format!("{name}: restored"),
            );
            Ok(())
        }
        Command::Meta(a) => {
            let name = SecretName::new(a.name)?;
            let changes = parse_pairs(&a.changes)?;
            let mut vault = ctx.unlock(false)?;
            let meta = if changes.is_empty() {
                vault.metadata(&name)?
            } else {
                vault.update_metadata(&name, &changes)?
            };
            if ctx.json {
                output::json(&meta);
            } else {
                for (k, v) in &meta {
                    output::line(&format!("{k}={v}"));
                }
            }
            Ok(())
        }
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
                    ));
                }
            }
            Ok(())
        }
        Command::Audit(AuditCommand::Verify(a)) => {
            crate::audit_cmd::verify(&ctx, a, ctx.unlock(false)?)
        }
        Command::Audit(AuditCommand::Anchor(_)) => {
            crate::audit_cmd::anchor(&ctx, ctx.unlock(false)?)
        }
        Command::Verify => {
            let mut vault = ctx.unlock(false)?;
            let report = vault.verify()?;
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
        Command::Agent => tresor::session::agent::serve_stdin(),
        Command::Stores | Command::Doctor | Command::Config(_) => {
            unreachable!("handled by manager_cmd::dispatch")
        }
        Command::Completions(a) => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(a.shell, &mut cmd, "tresor", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// `init` with a keychain slot (and the recovery key): the slot's 32 random
/// bytes go to the keychain inside the creating transaction; the entry is
/// deleted again when the vault is not made.
fn init_keychain(
    ctx: &Ctx,
    a: &crate::cli::InitArgs,
    path: &Path,
    params: PasswordParams,
    backend: tresor::KeychainBackend,
) -> Result<()> {
    let credential = tresor::new_keychain_key(backend);
    let options = CreateOptions {
        open: Ctx::open_options()?,
        password_params: params,
        recovery: !a.no_recovery,
    };
    let stored = std::cell::Cell::new(None);
    let created = Vault::create_with(path, &credential, &options, |vault_id, slot| {
        tresor::keychain::store(vault_id, slot, &credential)?;
        stored.set(Some((*vault_id, slot)));
        Ok(())
    })
    .inspect_err(|_| {
        if let Some((vault_id, slot)) = stored.get() {
            let _ = tresor::keychain::delete(&vault_id, slot, backend);
        }
    })?;
    let vault_id = created.vault.id();
    let slot = created.vault.unlocked_slot().unwrap_or(1);
    let account = tresor::keychain::account(&vault_id, slot);
    let recovery = created.recovery.as_ref().map(|r| r.expose_display());
    if let (Some(out), Some(text)) = (&a.recovery_key_out, &recovery) {
        write_private(out, output::with_newline(text).as_bytes())?;
    }
    let how = format!("keychain ({})", backend.as_str());
    if ctx.json {
        let shown = match &a.recovery_key_out {
            Some(_) => None,
            None => recovery.as_ref().map(|r| r.as_str()),
        };
        return output::secret_json(&output::WithSecret {
            body: json!({
                "path": path, "unlock": how, "key_file_created": null,
                "keychain": {"backend": backend.as_str(), "service": tresor::keychain::SERVICE,
                             "account": account},
                "recovery_key_file": a.recovery_key_out,
            }),
            field: "recovery_key",
            secret: shown,
        });
    }
    ctx.status(&format!(
        "created vault {} (unlocks with the {} keychain: service {}, account {account}; \
         --no-keychain chooses a password or key file instead)",
        path.display(),
        backend.as_str(),
        tresor::keychain::SERVICE
    ));
    if backend == tresor::KeychainBackend::Keyutils {
        ctx.status(
            "note: kernel keyutils keys do not survive a reboot or a long logout; keep the \
             recovery key, or add a password slot (tresor keyslot add --password)",
        );
    }
    match (&recovery, &a.recovery_key_out) {
        (Some(_), Some(out)) => {
            ctx.status(&format!("recovery key written to {} (0600)", out.display()))
        }
        (Some(text), None) => eprintln!(
            "\nRecovery key (shown once; store it offline, it unlocks the vault):\n\n    {}\n",
            text.as_str()
        ),
        (None, _) => ctx.status(
            "warning: no recovery key (--no-recovery): if the keychain entry is lost, so is the vault",
        ),
    }
    Ok(())
}

fn files_report(ctx: &Ctx) -> crate::files_cmd::Report {
    crate::files_cmd::Report {
        json: ctx.json,
        quiet: ctx.quiet,
    }
}

/// `init`'s first slot, in order: --password, --key-file / TRESOR_KEY_FILE,
/// --keychain, a credential in the environment (TRESOR_KEY, TRESOR_PASSWORD
/// and its aliases), the Secret Service when it answers (unless
/// --no-keychain; kernel keyutils only with --keychain, as its keys do not
/// survive a reboot), a password prompt on a terminal; else an error saying
/// what to set.
fn init(ctx: &Ctx, a: crate::cli::InitArgs) -> Result<()> {
    let path = ctx.path()?;
    let params = kdf_params(&a.kdf)?;
    if path.exists() {
        // Checked again (atomically) on create; this only spares a probe.
        return Err(Error::Validation(format!(
            "a vault already exists at {}",
            path.display()
        )));
    }
    if let Some(out) = &a.recovery_key_out {
        // Before the vault exists: a recovery key that cannot be written
        // (a FIFO, a device, a folder there) must not leave a vault behind.
        tresor::fs::check_target(out, tresor::fs::Existing::Replace)?;
    }
    let keychain = if a.keychain {
        Some(tresor::keychain::answering_backend().ok_or_else(|| {
            Error::Unavailable {
                store: "keychain".into(),
                reason:
                    "neither the Secret Service (DBUS_SESSION_BUS_ADDRESS) nor kernel keyutils \
                     answered; choose --password or --key-file FILE"
                        .into(),
            }
        })?)
    } else {
        None
    };
    // A credential named by flag or environment is an explicit choice.
    let set = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    let explicit = a.password
        || ctx.key_file.is_some()
        || set(tresor::KEY_FILE_ENV)
        || set(tresor::KEY_ENV)
        || tresor::PASSWORD_ENVS.iter().any(|v| set(v))
        || set(tresor::RECOVERY_KEY_ENV);
    let keychain = keychain.or_else(|| {
        (!explicit && !a.no_keychain)
            .then(tresor::keychain::answering_backend)
            .flatten()
            // Unasked, only a keychain that outlives a reboot: kernel keyutils
            // keys vanish at reboot or logout, which would leave the vault
            // opening with the recovery key alone. `--keychain` still picks it.
            .filter(|b| *b != tresor::KeychainBackend::Keyutils)
    });
    if let Some(backend) = keychain {
        return init_keychain(ctx, &a, &path, params, backend);
    }
    let (credential, how, key_file_created) = if a.password {
        let pw = if let Some(unlock) = password_from_env() {
            unlock
        } else {
            input::new_password("TRESOR_PASSWORD", "vault password")?
        };
        (Credential::password(pw), "password".to_string(), None)
    } else if let Some(file) = ctx.key_file.clone().or_else(|| {
        std::env::var_os(tresor::KEY_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }) {
        let created = ensure_key_file(&file)?;
        (
            Unlock::key_file(&file)?.credential,
            format!("key file {}", file.display()),
            created.then_some(file),
        )
    } else if let Some(unlock) = Unlock::from_environment(None)? {
        let how = unlock.source.clone();
        (unlock.credential, how, None)
    } else if input::can_prompt() {
        (
            Credential::password(input::new_password("TRESOR_PASSWORD", "vault password")?),
            "password".to_string(),
            None,
        )
    } else {
        return Err(Error::Locked {
            store: "vault".into(),
            hint: format!(
                "no lasting keychain answered{} and there is no terminal to ask for a password; \
                 set TRESOR_PASSWORD, {} or {} (or give --key-file FILE; --keychain also takes \
                 kernel keyutils, whose keys do not survive a reboot)",
                if a.no_keychain {
                    " (--no-keychain)"
                } else {
                    ""
                },
                tresor::KEY_ENV,
                tresor::KEY_FILE_ENV
            ),
        });
    };
    let options = CreateOptions {
        open: Ctx::open_options()?,
        password_params: params,
        recovery: !a.no_recovery,
    };
    let created = Vault::create(&path, &credential, &options)
        .inspect_err(|_| remove_new_key_file(key_file_created.as_deref()))?;
    let recovery = created.recovery.as_ref().map(|r| r.expose_display());
    if let (Some(out), Some(text)) = (&a.recovery_key_out, &recovery) {
        write_private(out, output::with_newline(text).as_bytes())?;
    }
    if ctx.json {
        let shown = match &a.recovery_key_out {
            Some(_) => None,
            None => recovery.as_ref().map(|r| r.as_str()),
        };
        return output::secret_json(&output::WithSecret {
            body: json!({
                "path": path, "unlock": how, "key_file_created": key_file_created,
                "recovery_key_file": a.recovery_key_out,
            }),
            field: "recovery_key",
            secret: shown,
        });
    }
    ctx.status(&format!(
        "created vault {} (unlocks with {how})",
        path.display()
    ));
    if let Some(file) = key_file_created {
        ctx.status(&format!(
            "wrote a new key file {} (0600): keep it safe, it unlocks the vault",
            file.display()
        ));
    }
    match (&recovery, &a.recovery_key_out) {
        (Some(_), Some(out)) => {
            ctx.status(&format!("recovery key written to {} (0600)", out.display()))
        }
        (Some(text), None) => {
            // Shown once, on the terminal's error stream so it stays out of pipes.
            eprintln!(
                "\nRecovery key (shown once; store it offline, it unlocks the vault):\n\n    {}\n",
                text.as_str()
            );
        }
        _ => {}
    }
    Ok(())
}

fn password_from_env() -> Option<Zeroizing<String>> {
    tresor::PASSWORD_ENVS
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .map(Zeroizing::new)
}

fn get(ctx: &Ctx, a: crate::cli::GetArgs) -> Result<()> {
    let name = SecretName::new(a.name.clone())?;
    let selector = selector_of(&a)?;
    let mut vault = ctx.unlock(false)?;
    let secret = vault.get(&name, selector)?;
    drop(vault);
    print_secret(ctx, &name, &secret, a.out.as_deref(), None)
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

fn passwd(ctx: &Ctx, a: crate::cli::PasswdArgs) -> Result<()> {
    let params = kdf_params(&a.kdf)?;
    let mut vault = ctx.unlock(false)?;
    let slots = vault.slots()?;
    let passwords: Vec<u32> = slots
        .iter()
        .filter(|s| s.kind == SlotKind::Password)
        .map(|s| s.id)
        .collect();
    let id =
        match a.slot {
            Some(id) => id,
            None => match vault.unlocked_slot().filter(|id| passwords.contains(id)) {
                Some(id) => id,
                None if passwords.len() == 1 => passwords[0],
                None if passwords.is_empty() => return Err(Error::Validation(
                    "this vault has no password slot; add one with `tresor keyslot add --password`"
                        .into(),
                )),
                None => {
                    return Err(Error::Validation(
                        "the vault has several password slots; choose one with --slot".into(),
                    ));
                }
            },
        };
    let pw = input::new_password("TRESOR_NEW_PASSWORD", "password")?;
    vault.change_slot(id, &Credential::password(pw), &params)?;
    done(
        ctx,
        json!({"slot": id, "changed": true}),
        &format!("password of key slot {id} changed"),
    );
    Ok(())
}

fn keyslot(ctx: &Ctx, command: KeyslotCommand) -> Result<()> {
    match command {
        KeyslotCommand::Add(a) => {
            let params = kdf_params(&a.kdf)?;
            if a.keychain {
                return add_keychain_slot(ctx, a.backend.as_deref(), a.label.as_deref(), &params);
            }
            if a.pkcs11 {
                return add_pkcs11_slot(ctx, &a, &params);
            }
            let (credential, created) = match (a.password, &ctx.key_file) {
                (true, _) => (
                    Credential::password(input::new_password("TRESOR_NEW_PASSWORD", "password")?),
                    None,
                ),
                (false, Some(file)) => {
                    let created = ensure_key_file(file)?;
                    (
                        Unlock::key_file(file)?.credential,
                        created.then(|| file.clone()),
                    )
                }
                (false, None) => {
                    return Err(Error::Validation(
                        "say which slot to add: --password or --key-file FILE (or --keychain, or \
                         --pkcs11 --module PATH --token LABEL --key-label L)"
                            .into(),
                    ));
                }
            };
            // With --key-file naming the new slot, unlock by the other means.
            let id = ctx
                .unlock(!a.password)
                .and_then(|mut vault| vault.add_slot(&credential, &params, a.label.as_deref()))
                .inspect_err(|_| remove_new_key_file(created.as_deref()))?;
            let kind = credential.kind().as_str();
            done(
                ctx,
                json!({"slot": id, "kind": kind, "key_file_created": created}),
                &format!("added {kind} key slot {id}"),
            );
            if let Some(file) = created {
                ctx.status(&format!("wrote a new key file {} (0600)", file.display()));
            }
            Ok(())
        }
        KeyslotCommand::List => {
            let vault = ctx.unlock(false)?;
            let slots = vault.slots()?;
            if ctx.json {
                output::json(&slots);
            } else {
                for s in slots {
                    let extra = s
                        .argon2
                        .map(|(m, t, p)| format!("argon2id m={}MiB t={t} p={p}", m / 1024))
                        .or_else(|| s.backend.map(|b| b.as_str().to_string()))
                        .or_else(|| {
                            s.pkcs11.as_ref().map(|p| {
                                format!(
                                    "token '{}' key '{}' ({}, {})",
                                    p.token, p.key_label, p.mechanism, p.module
                                )
                            })
                        })
                        .unwrap_or_default();
                    output::line(&format!(
                        "{:>3}  {:<9} {:<16} {}  {}",
                        s.id,
                        s.kind.as_str(),
                        s.label.as_deref().unwrap_or("-"),
                        output::time(s.created_at),
                        extra
                    ));
                }
            }
            Ok(())
        }
        KeyslotCommand::Remove(a) => {
            let mut vault = ctx.unlock(false)?;
            let target = vault.slots()?.into_iter().find(|s| s.id == a.id);
            let backend = target.as_ref().and_then(|s| s.backend);
            let token_key = target.and_then(|s| s.pkcs11);
            vault.remove_slot(a.id)?;
            // The slot is gone: its keychain entry opens nothing any more.
            let entry_deleted = backend.map(|b| {
                tresor::keychain::delete(&vault.id(), a.id, b)
                    .inspect_err(|e| eprintln!("warning: {e}"))
                    .is_ok()
            });
            let mut report = json!({"slot": a.id, "removed": true});
            if let Some(deleted) = entry_deleted {
                report["keychain_entry_deleted"] = json!(deleted);
            }
            if token_key.is_some() {
                report["token_key_kept"] = json!(true);
            }
            done(ctx, report, &format!("removed key slot {}", a.id));
            if let Some(p) = token_key {
                ctx.status(&format!(
                    "the key '{}' stays on token '{}' (it may wrap other slots)",
                    p.key_label, p.token
                ));
            }
            Ok(())
        }
    }
}

/// The unlock chain's PKCS#11 step: only modules the user allowed (the
/// `[pkcs11] modules` list of their own config) or root-owned system
/// libraries are loaded; the PIN of each token from TRESOR_PKCS11_PIN, else
/// a prompt on a terminal naming token and module (an empty answer skips
/// the token). Without either, a token's slots are skipped with an error that
/// says to set TRESOR_PKCS11_PIN (reported only when nothing else unlocks):
/// the third list, apart from the errors of tokens that were asked. With
/// `first_only` (the unlock chain) it stops at the first slot that opens.
fn pkcs11_credentials(
    locked: &LockedVault,
    first_only: bool,
) -> Result<(Vec<Credential>, Vec<Error>, Vec<Error>)> {
    if locked.pkcs11_slots()?.is_empty() {
        return Ok((Vec::new(), Vec::new(), Vec::new()));
    }
    let policy = tresor::user_module_policy();
    let env_pin = tresor::pkcs11_pin_from_env();
    let can_prompt = input::can_prompt();
    let mut skipped = Vec::new();
    let (found, errors) =
        tresor::pkcs11_credentials(locked, &policy, first_only, |module, token| {
            if let Some(pin) = &env_pin {
                output::note(&format!(
                    "using {} as the PIN of PKCS#11 token '{token}' (module {module})",
                    tresor::PKCS11_PIN_ENV
                ));
                return Ok(Some(pin.clone()));
            }
            if !can_prompt {
                skipped.push(Error::Locked {
                    store: format!("pkcs11 token '{token}' (module {module})"),
                    hint: format!(
                        "no terminal to ask for its PIN; set {}",
                        tresor::PKCS11_PIN_ENV
                    ),
                });
                return Ok(None);
            }
            let pin = input::prompt(&format!(
                "PIN of PKCS#11 token '{token}' (module {module}; empty to skip): "
            ))?;
            Ok((!pin.is_empty()).then_some(pin))
        })?;
    Ok((found, errors, skipped))
}

/// The PIN for `keyslot add --pkcs11`: TRESOR_PKCS11_PIN, else a prompt
/// naming token and module.
fn pkcs11_pin(token: &str, module: &str) -> Result<Zeroizing<String>> {
    if let Some(pin) = tresor::pkcs11_pin_from_env() {
        output::note(&format!(
            "using {} as the PIN of PKCS#11 token '{token}' (module {module})",
            tresor::PKCS11_PIN_ENV
        ));
        return Ok(pin);
    }
    if !input::can_prompt() {
        return Err(Error::Locked {
            store: format!("pkcs11 token '{token}'"),
            hint: format!(
                "no terminal to ask for its PIN; set {}",
                tresor::PKCS11_PIN_ENV
            ),
        });
    }
    let pin = input::prompt(&format!(
        "PIN of PKCS#11 token '{token}' (module {module}): "
    ))?;
    if pin.is_empty() {
        return Err(Error::Validation("an empty PIN was given".into()));
    }
    Ok(pin)
}

/// `keyslot add --pkcs11`: unlocks the vault, has the token wrap 32 random
/// bytes under its key (made when the token has none), records the module
/// in the user's `[pkcs11] modules` list (unless it is listed already or a
/// root-owned system library) so the unlock chain will load it, and adds
/// the slot. A key made here is destroyed again when the slot is not added.
fn add_pkcs11_slot(
    ctx: &Ctx,
    a: &crate::cli::KeyslotAddArgs,
    params: &PasswordParams,
) -> Result<()> {
    let need = |what: &str| {
        Error::Validation(format!(
            "--pkcs11 needs {what} (tresor keyslot add --pkcs11 --module PATH --token LABEL \
             --key-label L)"
        ))
    };
    let module = a.module.as_ref().ok_or_else(|| need("--module PATH"))?;
    let token = a.token.as_deref().ok_or_else(|| need("--token LABEL"))?;
    let key_label = a
        .key_label
        .as_deref()
        .ok_or_else(|| need("--key-label L"))?;
    if token.is_empty() || key_label.is_empty() {
        return Err(Error::Validation(
            "--token and --key-label must not be empty".into(),
        ));
    }
    let module = tresor::pkcs11::absolute_module_path(&module.to_string_lossy())?;
    let mut vault = ctx.unlock(false)?;
    let pin = pkcs11_pin(token, &module)?;
    let key = tresor::pkcs11::TokenKey {
        module: &module,
        token,
        key_label,
    };
    // The user names the module here: it may be loaded now, and is
    // recorded outside the vault (below) so that unlocking may load it.
    let trust = tresor::user_module_policy()
        .check(&module)
        .ok()
        .map(|(_, t)| t);
    let policy = tresor::user_module_policy().allowing(&module);
    let made = tresor::pkcs11::new_slot(&vault.id(), key, &pin, &policy)?;
    let undo = || {
        if made.key_created {
            let _ = tresor::pkcs11::destroy_key(key, &pin, &policy);
        }
    };
    let allowed = match trust {
        Some(_) => None,
        None => Some(tresor::allow_module(&module).inspect_err(|_| undo())?),
    };
    let id = vault
        .add_slot(&made.credential, params, a.label.as_deref())
        .inspect_err(|_| undo())?;
    drop(pin);
    let serial = made
        .credential
        .pkcs11_params()
        .map(|p| p.token_serial.clone())
        .unwrap_or_default();
    let module_allowed = match (&allowed, trust) {
        (Some(a), _) => json!({"by": "config", "config": a.config, "added": a.added}),
        (None, Some(tresor::pkcs11::ModuleTrust::Listed)) => json!({"by": "config",
            "config": tresor::user_config_path(), "added": false}),
        (None, _) => json!({"by": "system-library"}),
    };
    done(
        ctx,
        json!({"slot": id, "kind": "pkcs11", "module": module, "token": token,
               "serial": serial, "key_label": key_label, "key_created": made.key_created,
               "mechanism": "aes-gcm", "module_allowed": module_allowed}),
        &format!(
            "added pkcs11 key slot {id} (token '{token}', key '{key_label}', module {module})"
        ),
    );
    if let Some(a) = allowed.as_ref().filter(|a| a.added) {
        ctx.status(&format!(
            "added {module} to [pkcs11] modules in {}: tresor loads only PKCS#11 modules you \
             listed there or root-owned system libraries",
            a.config.display()
        ));
    }
    if made.key_created {
        ctx.status(&format!(
            "created AES-256 key '{key_label}' on token '{token}' (sensitive, not extractable, \
             kept on the token): the slot opens only with this token and its PIN"
        ));
    }
    Ok(())
}

/// `keyslot add --keychain`: stores 32 random bytes in the keychain under
/// the new slot's account, then adds the slot (one transaction; the entry is
/// deleted again if the slot is not added).
fn add_keychain_slot(
    ctx: &Ctx,
    backend: Option<&str>,
    label: Option<&str>,
    params: &PasswordParams,
) -> Result<()> {
    let backend = match backend {
        Some(name) => tresor::KeychainBackend::parse(name)
            .ok_or_else(|| Error::Validation(format!("unknown keychain backend {name}")))?,
        None => tresor::keychain::default_backend(),
    };
    let credential = tresor::new_keychain_key(backend);
    let mut vault = ctx.unlock(false)?;
    let vault_id = vault.id();
    let stored = std::cell::Cell::new(None);
    let id = vault
        .add_slot_with(&credential, params, label, |id| {
            tresor::keychain::store(&vault_id, id, &credential)?;
            stored.set(Some(id));
            Ok(())
        })
        .inspect_err(|_| {
            if let Some(id) = stored.get() {
                let _ = tresor::keychain::delete(&vault_id, id, backend);
            }
        })?;
    done(
        ctx,
        json!({"slot": id, "kind": "keychain", "backend": backend.as_str(),
               "account": tresor::keychain::account(&vault_id, id)}),
        &format!(
            "added keychain key slot {id} ({}, service {}, account {})",
            backend.as_str(),
            tresor::keychain::SERVICE,
            tresor::keychain::account(&vault_id, id)
        ),
    );
    Ok(())
}

fn rekey(ctx: &Ctx, a: crate::cli::RekeyArgs) -> Result<()> {
    let mut vault = ctx.unlock(false)?;
    if !a.master {
        let report = if a.reencrypt {
            vault.rekey_reencrypt()?
        } else {
            vault.rekey()?
        };
        let text = if a.reencrypt {
            format!(
                "data key {} now seals all {} records; destroyed data keys {:?}",
                report.data_key, report.records, report.retired_data_keys
            )
        } else {
            format!(
                "new writes use data key {}; older records keep theirs",
                report.data_key
            )
        };
        done(ctx, json!(report), &text);
        return Ok(());
    }
    // Every credential the environment offers, for the slots to rewrap.
    let mut credentials = Vec::new();
    if let Some(file) = ctx
        .key_file
        .clone()
        .or_else(|| std::env::var_os(tresor::KEY_FILE_ENV).map(PathBuf::from))
    {
        credentials.push(Unlock::key_file(&file)?.credential);
    }
    if let Ok(text) = std::env::var(tresor::KEY_ENV).map(Zeroizing::new) {
        credentials.push(
            Credential::key_material(text.as_bytes())
                .map_err(|e| Error::Validation(format!("{}: {e}", tresor::KEY_ENV)))?,
        );
    }
    if let Some(pw) = password_from_env() {
        credentials.push(Credential::password(pw));
    }
    if let Ok(text) = std::env::var(tresor::RECOVERY_KEY_ENV).map(Zeroizing::new) {
        credentials.push(
            tresor::RecoveryKey::parse(&text)
                .map_err(Error::from)?
                .credential(),
        );
    }
    for s in vault.slots()? {
        if let Some(backend) = s.backend
            && let Ok(credential) = tresor::keychain::load(&vault.id(), s.id, backend)
        {
            credentials.push(credential);
        }
    }
    if vault.slots()?.iter().any(|s| s.kind == SlotKind::Pkcs11) {
        let locked = LockedVault::open(vault.path(), &Ctx::open_options()?)?;
        let (found, errors, skipped) = pkcs11_credentials(&locked, false)?;
        for e in errors.into_iter().chain(skipped) {
            eprintln!("warning: {e}");
        }
        credentials.extend(found);
    }
    let has_password_slot = vault.slots()?.iter().any(|s| s.kind == SlotKind::Password);
    if has_password_slot
        && !credentials.iter().any(|c| c.kind() == SlotKind::Password)
        && input::can_prompt()
    {
        credentials.push(Credential::password(input::prompt(
            "Password of the password slot: ",
        )?));
    }
    let refs: Vec<&Credential> = credentials.iter().collect();
    let out = vault.rekey_master(&refs, a.drop_unavailable_slots, a.new_recovery_key)?;
    // A session keeps the old master key, which opens nothing any more.
    if tresor::session::end(&vault.id()).is_ok_and(|ended| !ended.is_empty()) {
        ctx.status("the vault's unlock session was ended; `tresor unlock` starts a new one");
    }
    let recovery = out.recovery.as_ref().map(|r| r.expose_display());
    if ctx.json {
        return output::secret_json(&output::WithSecret {
            body: json!({"report": out.report}),
            field: "recovery_key",
            secret: recovery.as_ref().map(|r| r.as_str()),
        });
    }
    ctx.status(&format!(
        "new master key; {} records rewritten; slots rewrapped {:?}, dropped {:?}",
        out.report.records, out.report.slots_rewrapped, out.report.slots_dropped
    ));
    if let Some(text) = recovery {
        eprintln!(
            "\nNew recovery key (shown once; store it offline):\n\n    {}\n",
            text.as_str()
        );
    }
    Ok(())
}

fn settings(ctx: &Ctx, changes: &[String]) -> Result<()> {
    let mut vault = ctx.unlock(false)?;
    let mut s: Settings = vault.settings().clone();
    for (key, value) in parse_pairs(changes)? {
        let value = value.unwrap_or_default();
        let bad =
            |what: &str| Error::Validation(format!("setting {key} takes {what}, not {value:?}"));
        match key.as_str() {
            "audit_reads" => s.audit_reads = value.parse().map_err(|_| bad("true or false"))?,
            "max_versions" => {
                s.max_versions = value.parse().map_err(|_| bad("a number of versions"))?
            }
            "max_value_len" => {
                s.max_value_len = value.parse().map_err(|_| bad("a number of bytes"))?
            }
            _ => {
                return Err(Error::Validation(format!(
                    "unknown setting {key:?}: audit_reads, max_versions, max_value_len"
                )));
            }
        }
    }
    if !changes.is_empty() {
        vault.set_settings(s.clone())?;
    }
    if ctx.json {
        output::json(&s);
    } else {
        output::line(&format!(
            "audit_reads={}\nmax_versions={}\nmax_value_len={}",
            s.audit_reads, s.max_versions, s.max_value_len
        ));
    }
    Ok(())
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

/// Creates a key file with fresh random key material if `path` does not
/// exist; returns whether it did.
fn ensure_key_file(path: &Path) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| Error::Io {
                store: "key file".into(),
                path: dir.to_path_buf(),
                source,
            })?;
    }
    let text = tresor::new_key_file_text();
    // Never over a file that appeared meanwhile; the folder is synced, so
    // the key file survives a power loss as the vault does.
    tresor::fs::create_private(path, text.as_bytes())?;
    Ok(true)
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
        for h in history {
            let labels: Vec<&str> = h.labels.iter().map(|l| l.as_str()).collect();
            let row = match h.destroyed_at {
                Some(at) => format!("v{:<4} destroyed {}", h.version, output::time(at)),
                None => format!(
                    "v{:<4} {}  {:<12} {:>8} bytes  {}{}",
                    h.version,
                    output::time(h.created_at),
                    h.actor,
                    h.len,
                    labels.join(","),
                    h.reason
                        .as_ref()
                        .map(|r| format!("  reason: {r}"))
                        .unwrap_or_default()
                ),
            };
            output::line(&row);
        }
    }
}

pub fn report_version(ctx: &Ctx, verb: &str, name: &SecretName, version: u64) {
    done(
        ctx,
        json!({"name": name, "version": version}),
        &format!("{name}: {verb} version {version}"),
    );
}

/// Reports a finished change: JSON on stdout, or a status line on stderr.
pub fn done(ctx: &Ctx, body: serde_json::Value, text: &str) {
    if ctx.json {
        output::json(&body);
    } else {
        ctx.status(text);
    }
}
