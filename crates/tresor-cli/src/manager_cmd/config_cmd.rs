//! `tresor config path` and `tresor config check`: which config is in
//! effect and every problem in it (an unapproved one is read, not used).

#[allow(unused_imports)]
use super::*;

pub(super) fn config_path(ctx: &Ctx) -> Result<()> {
    let found = config::discover(ctx.config.as_deref());
    let file = found.path().map(Path::to_path_buf);
    // Only a project config needs approval; its profile is not read before.
    let mut trusted = file.is_some();
    let profile = match &found {
        Discovery::Project(p) => {
            let f = ConfigFile::read(p)?;
            trusted = TrustList::open()?.verdict(&f) == Verdict::Trusted;
            if trusted {
                f.parse()?.profile_name(ctx.profile.as_deref())
            } else {
                None
            }
        }
        Discovery::Explicit(p) | Discovery::User(p) if p.is_file() => {
            Config::load(p)?.profile_name(ctx.profile.as_deref())
        }
        _ => None,
    };
    if ctx.json {
        output::json(&json!({
            "file": file, "how": found.how(), "trusted": trusted, "profile": profile
        }));
    } else {
        match &file {
            Some(p) => output::line(&format!(
                "{}  ({}{}){}",
                p.display(),
                found.how(),
                if trusted {
                    ""
                } else {
                    ", NOT trusted: see `tresor config trust --help`"
                },
                profile
                    .map(|p| format!("  (profile {p})"))
                    .unwrap_or_default()
            )),
            None => output::line("no config file: the only store is the vault"),
        }
    }
    Ok(())
}

pub(super) fn config_check(ctx: &Ctx) -> Result<()> {
    // Read once: what is checked is what was approved.
    let file = match config::discover(ctx.config.as_deref()) {
        Discovery::Project(p) => {
            let file = ConfigFile::read(&p)?;
            if TrustList::open()?.verdict(&file) != Verdict::Trusted {
                return check_untrusted(ctx, &file);
            }
            file
        }
        Discovery::Explicit(p) | Discovery::User(p) => ConfigFile::read(&p)?,
        Discovery::None => {
            if ctx.json {
                output::json(&json!({"file": null, "ok": true, "problems": []}));
            } else {
                ctx.status("no config file (TRESOR_CONFIG, ./tresor.toml, $XDG_CONFIG_HOME/tresor/config.toml): the only store is the vault");
            }
            return Ok(());
        }
    };
    let path = file.path().to_path_buf();
    let (config, mut problems) = Config::parse_lenient(file.text(), Some(&path));
    // SEC/ references need the local vault: opened (and unlocked) once,
    // only if a reference asks for it.
    let mut vault: Option<std::result::Result<tresor::Vault, String>> = None;
    let vault_path = ctx.path()?;
    let key_file = ctx.key_file.clone();
    let mut secret = |name: &SecretName, version: Option<u64>| -> Result<Zeroizing<String>> {
        let v = vault.get_or_insert_with(|| {
            commands::unlock_chain(key_file.clone())
                .open(&vault_path)
                .map(|u| u.vault)
                .map_err(|e| e.to_string())
        });
        let v = v.as_mut().map_err(|e| Error::Unavailable {
            store: "local vault".into(),
            reason: e.clone(),
        })?;
        let selector = version.map_or(tresor::Selector::default(), tresor::Selector::Version);
        let s = v.get(name, selector)?;
        let text = s
            .value
            .expose_text()
            .ok_or_else(|| Error::Validation(format!("SEC/{name} is not UTF-8 text")))?;
        Ok(Zeroizing::new(text.to_string()))
    };
    problems.extend(mgr::check_config(&config, &mut secret));
    problems.sort_by_key(|p| (p.line, p.column));
    if ctx.json {
        output::json(&json!({"file": path, "ok": problems.is_empty(), "problems": problems}));
        if !problems.is_empty() {
            output::json_failure(
                "validation",
                "config_problems",
                &format!(
                    "{} problem{} in {}",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" },
                    path.display()
                ),
                crate::exit::ExitCode::Usage,
            );
        }
    } else {
        for p in &problems {
            output::line(&p.to_string());
        }
        if problems.is_empty() {
            ctx.status(&format!(
                "{}: ok ({} store{}, {} profile{})",
                path.display(),
                config.stores.len(),
                if config.stores.len() == 1 { "" } else { "s" },
                config.profiles.len(),
                if config.profiles.len() == 1 { "" } else { "s" }
            ));
        } else {
            eprintln!(
                "tresor: {} problem{} in {}",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" },
                path.display()
            );
        }
    }
    if !problems.is_empty() {
        EXIT.store(crate::exit::ExitCode::Usage as u8, Ordering::Relaxed);
    }
    Ok(())
}

/// `config check` of a project config the user has not approved: its
/// syntax and what each store would send where, nothing resolved (no
/// `ENV/`, no `SEC/`, no vault unlocked), nothing contacted; then the
/// refusal with the command that approves it (exit 2).
pub(super) fn check_untrusted(ctx: &Ctx, file: &ConfigFile) -> Result<()> {
    let (config, problems) = Config::parse_lenient(file.text(), Some(file.path()));
    let refusal = TrustList::open()?
        .check(file)
        .expect_err("only called for a file that is not trusted");
    if ctx.json {
        let stores: Vec<_> = config
            .stores
            .iter()
            .map(|s| {
                json!({"name": s.name, "kind": s.kind, "credentials": s.credentials(),
                       "sends_to": s.destination()})
            })
            .collect();
        output::json(&json!({
            "file": file.path(), "ok": false, "trusted": false, "sha256": file.sha256_hex(),
            "problems": problems, "stores": stores, "message": refusal.to_string(),
            "hint": crate::exit::hint(&refusal, crate::exit::Context::Secrets),
        }));
    } else {
        for p in &problems {
            output::line(&p.to_string());
        }
        for s in &config.stores {
            output::line(&format!(
                "store '{}' ({}): {}",
                s.name,
                s.kind,
                credentials_line(&s.credentials(), s.destination().as_deref())
            ));
        }
        eprintln!("tresor: {refusal}");
        if let Some(hint) = crate::exit::hint(&refusal, crate::exit::Context::Secrets) {
            eprintln!("hint: {hint}");
        }
    }
    EXIT.store(crate::exit::ExitCode::Usage as u8, Ordering::Relaxed);
    Ok(())
}
