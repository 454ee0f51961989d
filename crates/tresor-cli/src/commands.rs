//! One function per command.

use std::io::{IsTerminal, Write};
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
struct Ctx {
    vault: Option<PathBuf>,
    key_file: Option<PathBuf>,
    json: bool,
    quiet: bool,
}

impl Ctx {
    /// A status message on stderr (not with --quiet or --json).
    fn status(&self, text: &str) {
        if !self.quiet && !self.json {
            eprintln!("{text}");
        }
    }

    fn path(&self) -> Result<PathBuf> {
        tresor::vault_path(self.vault.as_deref())
    }

    fn open_options() -> Result<OpenOptions> {
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
        let path = self.path()?;
        let locked = LockedVault::open(&path, &Self::open_options()?)?;
        let flag = if skip_flag {
            None
        } else {
            self.key_file.as_deref()
        };
        if let Some(unlock) = Unlock::from_environment(flag)? {
            return locked.unlock(&unlock.credential);
        }
        // Keychain slots: an entry that cannot be read only matters when
        // nothing else can unlock.
        let (found, mut errors) = tresor::keychain_credentials(&locked)?;
        if !found.is_empty() {
            return locked.unlock_any(&found);
        }
        let mut keychain_error = || match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(Error::Unavailable {
                store: "keychain".into(),
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
            return Err(keychain_error().unwrap_or_else(|| Error::Locked {
                store: "vault".into(),
                hint: "this vault has no password slot; give --key-file, TRESOR_KEY_FILE, TRESOR_KEY or \
                       TRESOR_RECOVERY_KEY"
                    .into(),
            }));
        }
        let pw = input::prompt(&format!("Password for {}: ", path.display()))?;
        locked.unlock(&Credential::Password(pw))
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx {
        vault: cli.vault,
        key_file: cli.key_file,
        json: cli.json,
        quiet: cli.quiet,
    };
    match cli.command {
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
            if ctx.json {
                output::json(&history);
            } else {
                for h in &history {
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
        Command::Audit(AuditCommand::Verify) => {
            let mut vault = ctx.unlock(false)?;
            let n = vault.audit_verify()?;
            done(
                &ctx,
                json!({"ok": true, "entries": n}),
                &format!("audit chain intact: {n} entries"),
            );
            Ok(())
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
        Command::Completions(a) => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(a.shell, &mut cmd, "tresor", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn files_report(ctx: &Ctx) -> crate::files_cmd::Report {
    crate::files_cmd::Report {
        json: ctx.json,
        quiet: ctx.quiet,
    }
}

fn init(ctx: &Ctx, a: crate::cli::InitArgs) -> Result<()> {
    let path = ctx.path()?;
    let params = kdf_params(&a.kdf)?;
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
            Credential::Password(input::new_password("TRESOR_PASSWORD", "vault password")?),
            "password".to_string(),
            None,
        )
    } else {
        return Err(Unlock::missing());
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
        write_private(out, format!("{}\n", text.as_str()).as_bytes())?;
    }
    if ctx.json {
        let shown = if a.recovery_key_out.is_some() {
            None
        } else {
            recovery.as_ref().map(|r| r.as_str().to_string())
        };
        output::json(&json!({
            "path": path, "unlock": how, "key_file_created": key_file_created,
            "recovery_key": shown, "recovery_key_file": a.recovery_key_out,
        }));
        return Ok(());
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
    let name = SecretName::new(a.name)?;
    let selector = match (a.version, a.label) {
        (Some(v), _) => Selector::Version(v),
        (None, Some(l)) => Selector::Label(l.parse::<Label>()?),
        (None, None) => Selector::default(),
    };
    let mut vault = ctx.unlock(false)?;
    let secret = vault.get(&name, selector)?;
    drop(vault);
    let bytes = secret.value.expose_secret();
    if let Some(out) = &a.out {
        write_private(out, bytes)?;
        done(
            ctx,
            json!({"name": name, "version": secret.version, "out": out}),
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
        };
        let mut buf = Zeroizing::new(Vec::with_capacity(
            bytes.len() * 6 + name.as_str().len() * 6 + 128,
        ));
        serde_json::to_writer(&mut *buf, &body).map_err(|e| Error::Validation(e.to_string()))?;
        return output::write_stdout(&buf, true);
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
            let (credential, created) = match (a.password, &ctx.key_file) {
                (true, _) => (
                    Credential::Password(input::new_password("TRESOR_NEW_PASSWORD", "password")?),
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
                        "say which slot to add: --password or --key-file FILE (or --keychain)"
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
            let backend = vault
                .slots()?
                .into_iter()
                .find(|s| s.id == a.id)
                .and_then(|s| s.backend);
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
            done(ctx, report, &format!("removed key slot {}", a.id));
            Ok(())
        }
    }
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
    if let Ok(text) = std::env::var(tresor::KEY_ENV) {
        credentials.push(Credential::key_material(text.as_bytes()).map_err(Error::Validation)?);
    }
    if let Some(pw) = password_from_env() {
        credentials.push(Credential::Password(pw));
    }
    if let Ok(text) = std::env::var(tresor::RECOVERY_KEY_ENV) {
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
    let recovery = out.recovery.as_ref().map(|r| r.display());
    if ctx.json {
        output::json(
            &json!({"report": out.report, "recovery_key": recovery.as_ref().map(|r| r.as_str())}),
        );
        return Ok(());
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
fn parse_pairs(pairs: &[String]) -> Result<Vec<(String, Option<String>)>> {
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
    write_private(path, text.as_bytes())?;
    Ok(true)
}

/// Writes `bytes` to `path` with mode 0600 through a temporary file renamed
/// into place, so a crash never leaves a partial file. Non-regular targets
/// (`/dev/stdout`, a pipe) are written directly.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| Error::Io {
        store: "output".into(),
        path: path.to_path_buf(),
        source,
    };
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io)?;
        return f.write_all(bytes).map_err(io);
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}",
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

fn report_version(ctx: &Ctx, verb: &str, name: &SecretName, version: u64) {
    done(
        ctx,
        json!({"name": name, "version": version}),
        &format!("{name}: {verb} version {version}"),
    );
}

/// Reports a finished change: JSON on stdout, or a status line on stderr.
fn done(ctx: &Ctx, body: serde_json::Value, text: &str) {
    if ctx.json {
        output::json(&body);
    } else {
        ctx.status(text);
    }
}
