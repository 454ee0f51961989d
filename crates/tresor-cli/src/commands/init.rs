//! `tresor init`: a new vault, its first key slot (password, key file or
//! keychain) and its recovery key.

#[allow(unused_imports)]
use super::*;

/// `init` with a keychain slot (and the recovery key): the slot's 32 random
/// bytes go to the keychain inside the creating transaction; the entry is
/// deleted again when the vault is not made.
pub(super) fn init_keychain(
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

/// `init`'s first slot, in order: --password, --key-file / TRESOR_KEY_FILE,
/// --keychain, a credential in the environment (TRESOR_KEY, TRESOR_PASSWORD
/// and its aliases), the Secret Service when it answers (unless
/// --no-keychain; kernel keyutils only with --keychain, as its keys do not
/// survive a reboot), a password prompt on a terminal; else an error saying
/// what to set.
pub(super) fn init(ctx: &Ctx, a: crate::cli::InitArgs) -> Result<()> {
    let path = ctx.path()?;
    let params = kdf_params(&a.kdf)?;
    if path.is_dir() {
        // As every other command says of a folder where the vault should be.
        return Err(Error::Io {
            store: "vault".into(),
            path,
            source: std::io::Error::other("is a directory, not a vault file"),
        });
    }
    if a.if_missing && path.exists() {
        super::done(
            ctx,
            json!({ "path": path, "created": false }),
            &format!(
                "a vault already exists at {}; nothing changed",
                path.display()
            ),
        );
        return Ok(());
    }
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
        || set(input::NEW_PASSWORD_ENV)
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
    // A new password: TRESOR_NEW_PASSWORD, else the unlock variables
    // (TRESOR_PASSWORD and its aliases), judged for strength.
    let mut env_vars = vec![input::NEW_PASSWORD_ENV];
    env_vars.extend(tresor::PASSWORD_ENVS);
    let env_password = || {
        env_vars
            .iter()
            .find_map(|v| input::env_password(&[v]).map(|pw| (pw, v.to_string())))
    };
    let (credential, how, key_file_created) = if a.password {
        let pw = match env_password() {
            Some((pw, _)) => input::judged(pw, a.weak_password)?,
            None if input::can_prompt() => {
                input::prompt_new_password("vault password", a.weak_password)?
            }
            None => {
                return Err(Error::CredentialNeeded {
                    what: crate::exit::NEW_PASSWORD.into(),
                });
            }
        };
        (Credential::password(pw), "password".to_string(), None)
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
    } else if !set(tresor::KEY_ENV)
        && let Some((pw, var)) = env_password()
    {
        (
            Credential::password(input::judged(pw, a.weak_password)?),
            var,
            None,
        )
    } else if let Some(unlock) = tresor::Given::from_environment(None)? {
        let how = unlock.source_text();
        (unlock.into_credential(), how, None)
    } else if input::can_prompt() {
        (
            Credential::password(input::prompt_new_password(
                "vault password",
                a.weak_password,
            )?),
            "password".to_string(),
            None,
        )
    } else {
        // Nothing was tried, so nothing is "locked": say what to give.
        return Err(Error::CredentialNeeded {
            what: format!(
                "{} ({})",
                crate::exit::FIRST_SLOT,
                if a.no_keychain {
                    "--no-keychain leaves out the OS keychain"
                } else {
                    "no lasting keychain answered"
                }
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
