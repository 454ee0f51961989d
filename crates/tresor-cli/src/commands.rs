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
    fn unlock(&self, skip_flag: bool) -> Result<Vault> {
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
        Command::Stores
        | Command::Doctor
        | Command::Config(_)
        | Command::Get(_)
        | Command::Set(_)
        | Command::Ls(_)
        | Command::History(_)
        | Command::Rotate(_)
        | Command::Promote(_)
        | Command::Rollback(_)
        | Command::Rm(_)
        | Command::Undelete(_)
        | Command::Meta(_) => unreachable!("handled by manager_cmd::dispatch"),
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
    let recovery = created.recovery.as_ref().map(|r| r.display());
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
        (Credential::Password(pw), "password".to_string(), None)
    } else if let Some(file) = ctx.key_file.clone().or_else(|| {
        std::env::var_os(tresor::KEY_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }) {
        let created = tresor::unlock::create_key_file(&file)?;
        (
            tresor::Given::key_file(&file)?.into_credential(),
            format!("key file {}", file.display()),
            created.then_some(file),
        )
    } else if let Some(unlock) = tresor::Given::from_environment(None)? {
        let how = unlock.source_text();
        (unlock.into_credential(), how, None)
    } else if input::can_prompt() {
        (
            Credential::Password(input::new_password("TRESOR_PASSWORD", "vault password")?),
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
    let recovery = created.recovery.as_ref().map(|r| r.display());
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
        let encoded: Zeroizing<String> = Zeroizing::new(match secret.value.as_text() {
            Some(_) => String::new(),
            None => base64::engine::general_purpose::STANDARD.encode(bytes),
        });
        let body = GetJson {
            name: name.as_str(),
            version: secret.version,
            value: secret.value.as_text(),
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
    vault.change_slot(id, &Credential::Password(pw), &params)?;
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
                    Credential::Password(input::new_password("TRESOR_NEW_PASSWORD", "password")?),
                    None,
                ),
                (false, Some(file)) => {
                    let created = tresor::unlock::create_key_file(file)?;
                    (
                        tresor::Given::key_file(file)?.into_credential(),
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
    let serial = match &made.credential {
        Credential::Pkcs11(p, _) => p.token_serial.clone(),
        _ => String::new(),
    };
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
        credentials.push(tresor::Given::key_file(&file)?.into_credential());
    }
    if let Ok(text) = std::env::var(tresor::KEY_ENV).map(Zeroizing::new) {
        credentials.push(
            Credential::key_material(text.as_bytes())
                .map_err(|e| Error::Validation(format!("{}: {e}", tresor::KEY_ENV)))?,
        );
    }
    if let Some(pw) = password_from_env() {
        credentials.push(Credential::Password(pw));
    }
    if let Ok(text) = std::env::var(tresor::RECOVERY_KEY_ENV).map(Zeroizing::new) {
        credentials.push(
            tresor::RecoveryKey::parse(&text)
                .map_err(Error::Validation)?
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
        let (found, errors) = unlock_chain(None).pkcs11_credentials(&locked)?;
        for e in errors {
            eprintln!("warning: {e}");
        }
        credentials.extend(found);
    }
    let has_password_slot = vault.slots()?.iter().any(|s| s.kind == SlotKind::Password);
    if has_password_slot
        && !credentials.iter().any(|c| c.kind() == SlotKind::Password)
        && input::can_prompt()
    {
        credentials.push(Credential::Password(input::prompt(
            "Password of the password slot: ",
        )?));
    }
    let refs: Vec<&Credential> = credentials.iter().collect();
    let out = vault.rekey_master(&refs, a.drop_unavailable_slots, a.new_recovery_key)?;
    // A session keeps the old master key, which opens nothing any more.
    if tresor::session::end(&vault.id()).is_ok_and(|ended| !ended.is_empty()) {
        ctx.status("the vault's unlock session was ended; `tresor unlock` starts a new one");
    }
    let recovery = out.recovery.as_ref().map(|r| r.display());
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
    PasswordParams::new(m, k.kdf_passes, k.kdf_lanes).map_err(Error::Validation)
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

/// Reports a finished change: JSON on stdout, or a status line on stderr.
pub fn done(ctx: &Ctx, body: serde_json::Value, text: &str) {
    if ctx.json {
        output::json(&body);
    } else {
        ctx.status(text);
    }
}
