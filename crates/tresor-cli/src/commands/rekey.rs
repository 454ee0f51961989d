//! `tresor rekey` and `tresor settings`: rotating the master key and the
//! data keys, and the vault's settings.

#[allow(unused_imports)]
use super::*;

pub(super) fn rekey(ctx: &Ctx, a: crate::cli::RekeyArgs) -> Result<()> {
    let mut vault = ctx.unlock(false)?;
    let bar = crate::progress::Bar::new(ctx.quiet, ctx.json);
    if !a.master {
        let report = if a.reencrypt {
            vault.rekey_reencrypt_with(&bar)?
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
        credentials.push(Credential::password(input::prompt(
            "Password of the password slot: ",
        )?));
    }
    let refs: Vec<&Credential> = credentials.iter().collect();
    let out = vault.rekey_master_with(&refs, a.drop_unavailable_slots, a.new_recovery_key, &bar)?;
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

pub(super) fn settings(ctx: &Ctx, changes: &[String]) -> Result<()> {
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
