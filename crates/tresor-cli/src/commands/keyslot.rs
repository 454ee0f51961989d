//! `tresor passwd` and `tresor keyslot`: the credentials that open a vault
//! (passwords, key files, keychain entries, PKCS#11 tokens).

#[allow(unused_imports)]
use super::*;

pub(super) fn passwd(ctx: &Ctx, a: crate::cli::PasswdArgs) -> Result<()> {
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
    let pw = input::new_password(a.weak_password)?;
    vault.change_slot(id, &Credential::password(pw), &params)?;
    done(
        ctx,
        json!({"slot": id, "changed": true}),
        &format!("password of key slot {id} changed"),
    );
    Ok(())
}

pub(super) fn keyslot(ctx: &Ctx, command: KeyslotCommand) -> Result<()> {
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
                    Credential::password(input::new_password(a.weak_password)?),
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
                output::line(&format!(
                    "{:>3}  {:<9} {:<16} {:<20}  {}",
                    "ID", "KIND", "LABEL", "CREATED", "DETAILS"
                ));
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
                    let row = format!(
                        "{:>3}  {:<9} {:<16} {:<20}  {}",
                        s.id,
                        s.kind.as_str(),
                        s.label.as_deref().unwrap_or("-"),
                        output::time(s.created_at),
                        extra
                    );
                    output::line(row.trim_end());
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
pub(super) fn pkcs11_pin(token: &str, module: &str) -> Result<Zeroizing<String>> {
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
pub(super) fn add_pkcs11_slot(
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
pub(super) fn add_keychain_slot(
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
