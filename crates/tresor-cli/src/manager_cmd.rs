//! Commands through the manager: secret commands when a config (or
//! `--store`, `--profile`, `--offline`, `--max-age`) is in effect, and
//! `stores`, `doctor`, `config check|path`.

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde_json::json;
use zeroize::Zeroizing;

use tresor::config::{self, Config, ConfigFile, CredentialSource, Discovery};
use tresor::manager::{self as mgr, Listing};
use tresor::trust::{TrustList, Verdict};
use tresor::{DeleteMode, Error, PutOptions, Result, SecretName, Tresor};

use crate::cli::{Command, ConfigCommand};
use crate::commands::{self, Ctx, Origin};
use crate::{input, output};

/// The exit code of a command that succeeded but has something to report
/// (`config check` problems: 2; `doctor` with an unhealthy required store: 6).
pub static EXIT: AtomicU8 = AtomicU8::new(crate::exit::ExitCode::Ok as u8);

/// Runs `command` here when it goes through the manager; otherwise gives it
/// back for the vault-only code path.
pub fn dispatch(ctx: &Ctx, command: Command) -> Result<Option<Command>> {
    match command {
        Command::Stores => stores(ctx).map(|()| None),
        Command::Doctor => doctor(ctx).map(|()| None),
        Command::Config(ConfigCommand::Check) => config_check(ctx).map(|()| None),
        Command::Config(ConfigCommand::Path) => config_path(ctx).map(|()| None),
        Command::Config(ConfigCommand::Trust(a)) => crate::trust_cmd::trust(ctx, a).map(|()| None),
        Command::Config(ConfigCommand::Untrust(a)) => {
            crate::trust_cmd::untrust(ctx, a).map(|()| None)
        }
        c if routed(&c) => {
            let config = Config::discover_and_load(ctx.config.as_deref())?;
            let flags = ctx.store.is_some()
                || ctx.profile.is_some()
                || ctx.offline
                || ctx.max_age.is_some();
            // A config without stores (the user's config.toml holding only
            // `[pkcs11] modules`) changes nothing: the vault alone.
            if config.as_ref().is_none_or(|c| c.stores.is_empty()) && !flags {
                return Ok(Some(c));
            }
            let mut tresor = open(ctx, config)?;
            run(ctx, &mut tresor, c).map(|()| None)
        }
        c => {
            if ctx.store.is_some() || ctx.profile.is_some() {
                return Err(Error::Validation(
                    "--store and --profile apply to get, set, ls, history, rotate, promote, \
                     rollback, rm, undelete, meta, stores and doctor; this command works on the \
                     local vault (--vault)"
                        .into(),
                ));
            }
            Ok(Some(c))
        }
    }
}

/// `--max-age`: `90s`, `30m`, `12h`, `7d`, or seconds.
pub fn parse_age(text: &str) -> Result<Duration> {
    let bad = || {
        Error::Validation(format!(
            "--max-age takes an age such as 90s, 30m, 12h or 7d, not {text:?}"
        ))
    };
    match text.trim().strip_suffix('d') {
        Some(days) => days
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(86_400))
            .map(Duration::from_secs)
            .ok_or_else(bad),
        None => tresor::stores::options::parse_duration(text).ok_or_else(bad),
    }
}

fn routed(c: &Command) -> bool {
    matches!(
        c,
        Command::Get(_)
            | Command::Set(_)
            | Command::Ls(_)
            | Command::History(_)
            | Command::Rotate(_)
            | Command::Promote(_)
            | Command::Rollback(_)
            | Command::Rm(_)
            | Command::Undelete(_)
            | Command::Meta(_)
    )
}

/// The manager for this run: the config's stores (or the vault alone), the
/// CLI's unlock chain (with its prompt) for vault files.
fn open(ctx: &Ctx, config: Option<Config>) -> Result<Tresor> {
    let key_file = ctx.key_file.clone();
    let json = ctx.json;
    let mut b = Tresor::builder()
        .vault_path(ctx.path()?)
        .vault_opener(move |path| commands::unlock_at(path, key_file.as_deref()))
        .offline(ctx.offline)
        .max_age(ctx.max_age)
        // Downgrades are never silent: warnings show even with --quiet.
        .on_warning(move |text| {
            if json {
                eprintln!("{}", json!({ "warning": text }));
            } else {
                eprintln!("tresor: warning: {text}");
            }
        });
    if let Some(c) = config {
        b = b.config(c);
    }
    if let Some(p) = &ctx.profile {
        b = b.profile(p.clone());
    }
    b.build()
}

fn run(ctx: &Ctx, t: &mut Tresor, command: Command) -> Result<()> {
    let store = ctx.store.as_deref();
    match command {
        Command::Get(a) => {
            let name = SecretName::new(a.name.clone())?;
            let selector = commands::selector_of(&a)?;
            let found = match store {
                Some(s) => t.get_from(s, &name, selector)?,
                None => t.get(&name, selector)?,
            };
            let origin = Origin {
                store: &found.store,
                cached_age_seconds: found.cached.as_ref().map(|c| c.age_seconds),
            };
            commands::print_secret(ctx, &name, &found.secret, a.out.as_deref(), Some(origin))
        }
        Command::Set(a) => {
            let name = SecretName::new(a.name)?;
            let value = input::value(&a.value, name.as_str())?;
            let options = PutOptions {
                expect_version: a.expect_version,
                reason: a.reason,
                metadata: commands::parse_pairs(&a.meta)?
                    .into_iter()
                    .map(|(k, v)| (k, v.unwrap_or_default()))
                    .collect(),
                stage: false,
            };
            write(ctx, t, &name, &value, &options, "set")
        }
        Command::Rotate(a) => {
            let name = SecretName::new(a.name)?;
            let value = input::value(&a.value, name.as_str())?;
            let options = PutOptions {
                reason: a.reason,
                stage: a.stage,
                ..PutOptions::default()
            };
            write(
                ctx,
                t,
                &name,
                &value,
                &options,
                if a.stage { "staged" } else { "rotated" },
            )
        }
        Command::Ls(a) => {
            let listing = if a.deleted {
                t.list_deleted(&a.prefix, store)?
            } else {
                match store {
                    Some(s) => t.list_in(s, &a.prefix)?,
                    None => t.list(&a.prefix)?,
                }
            };
            print_listing(ctx, &listing);
            Ok(())
        }
        Command::History(a) => {
            let name = SecretName::new(a.name)?;
            let (from, history) = t.history(&name, store)?;
            ctx.status(&format!("{name}: history from store '{from}'"));
            commands::print_history(ctx, &history);
            Ok(())
        }
        Command::Promote(a) => {
            let name = SecretName::new(a.name)?;
            let (from, version) = t.with_vault(&name, store, "promote", |v| {
                v.promote(&name, a.reason.as_deref())
            })?;
            changed(ctx, &name, &from, version, "promoted");
            Ok(())
        }
        Command::Rollback(a) => {
            let name = SecretName::new(a.name)?;
            let (from, ()) = t.with_vault(&name, store, "rollback", |v| {
                v.rollback(&name, a.version, a.reason.as_deref())
            })?;
            changed(ctx, &name, &from, a.version, "rolled back");
            Ok(())
        }
        Command::Rm(a) => {
            let name = SecretName::new(a.name)?;
            let mode = if a.purge {
                DeleteMode::Purge
            } else {
                DeleteMode::Soft
            };
            let from = t.delete(&name, mode, store)?;
            let what = if a.purge {
                "purged"
            } else {
                "deleted (undo with `tresor undelete`)"
            };
            commands::done(
                ctx,
                json!({"name": name, "deleted": true, "purged": a.purge, "store": from}),
                &format!("{name}: {what} in store '{from}'"),
            );
            Ok(())
        }
        Command::Undelete(a) => {
            let name = SecretName::new(a.name)?;
            let from = t.undelete(&name, store)?;
            commands::done(
                ctx,
                json!({"name": name, "deleted": false, "store": from}),
                &format!("{name}: restored in store '{from}'"),
            );
            Ok(())
        }
        Command::Meta(a) => {
            let name = SecretName::new(a.name)?;
            let changes = commands::parse_pairs(&a.changes)?;
            let (_, meta) = t.with_vault(&name, store, "metadata", |v| {
                if changes.is_empty() {
                    v.metadata(&name)
                } else {
                    v.update_metadata(&name, &changes)
                }
            })?;
            if ctx.json {
                output::json(&meta);
            } else {
                for (k, v) in &meta {
                    output::line(&format!("{k}={v}"));
                }
            }
            Ok(())
        }
        _ => unreachable!("only routed commands come here"),
    }
}

fn write(
    ctx: &Ctx,
    t: &mut Tresor,
    name: &SecretName,
    value: &tresor::SecretValue,
    options: &PutOptions,
    verb: &str,
) -> Result<()> {
    let written = match ctx.store.as_deref() {
        Some(s) => t.set_in(s, name, value, options)?,
        None => t.set(name, value, options)?,
    };
    changed(ctx, name, &written.store, written.version, verb);
    Ok(())
}

fn changed(ctx: &Ctx, name: &SecretName, store: &str, version: u64, verb: &str) {
    commands::done(
        ctx,
        json!({"name": name, "version": version, "store": store}),
        &format!("{name}: {verb} version {version} in store '{store}'"),
    );
}

fn print_listing(ctx: &Ctx, listing: &Listing) {
    if ctx.json {
        output::json(&listing.entries);
    } else {
        for l in &listing.entries {
            let s = &l.info;
            let mut row = format!(
                "{:<40} v{:<4} {}  {:<12}",
                s.name,
                s.current,
                output::time(s.updated_at),
                l.store
            );
            if l.cached {
                row.push_str("  (offline copy)");
            }
            if let Some(p) = s.pending {
                row.push_str(&format!("  pending v{p}"));
            }
            if let Some(d) = s.deleted_at {
                row.push_str(&format!("  deleted {}", output::time(d)));
            }
            if !l.shadowed.is_empty() {
                row.push_str(&format!("  shadows {}", l.shadowed.join(", ")));
            }
            output::line(row.trim_end());
        }
    }
    for (store, why) in &listing.not_listed {
        ctx.status(&format!("note: store '{store}' not listed: {why}"));
    }
}

fn manager_for_status(ctx: &Ctx) -> Result<Tresor> {
    let config = Config::discover_and_load(ctx.config.as_deref())?;
    open(ctx, config)
}

fn stores(ctx: &Ctx) -> Result<()> {
    let mut t = manager_for_status(ctx)?;
    let rows = t.status();
    if ctx.json {
        output::json(&rows);
        return Ok(());
    }
    output::line(&format!(
        "{:<16} {:<9} {:>8}  {:<9} {:<8} {:<5} {:<9} DETAIL",
        "NAME", "KIND", "PRIORITY", "READ-ONLY", "REQUIRED", "CACHE", "AVAILABLE"
    ));
    let yes = |b: bool| if b { "yes" } else { "no" };
    for r in rows {
        output::line(&format!(
            "{:<16} {:<9} {:>8}  {:<9} {:<8} {:<5} {:<9} {}",
            r.name,
            r.kind.map_or("-", |k| k.as_str()),
            r.settings.priority,
            yes(r.settings.read_only),
            yes(r.settings.required),
            yes(r.settings.cache),
            yes(r.available),
            r.detail
        ));
        output::line(&format!(
            "    {}",
            credentials_line(&r.credentials, r.sends_to.as_deref())
        ));
    }
    Ok(())
}

/// `credentials: token from SEC/bao/token; sends to http://…`.
fn credentials_line(credentials: &[CredentialSource], sends_to: Option<&str>) -> String {
    let creds: Vec<String> = credentials.iter().map(ToString::to_string).collect();
    format!(
        "credentials: {}{}",
        if creds.is_empty() {
            "not known (a store given in code)".to_string()
        } else {
            creds.join("; ")
        },
        sends_to
            .map(|d| format!("; sends to {d}"))
            .unwrap_or_default()
    )
}

fn doctor(ctx: &Ctx) -> Result<()> {
    let mut t = manager_for_status(ctx)?;
    let start = std::time::Instant::now();
    let checks = t.doctor();
    drop(t);
    let unhealthy_required: Vec<&str> = checks
        .iter()
        .filter(|c| c.required && !c.healthy)
        .map(|c| c.name.as_str())
        .collect();
    let ok = unhealthy_required.is_empty();
    if ctx.json {
        output::json(&json!({
            "ok": ok,
            "stores": checks,
            "elapsed_ms": start.elapsed().as_millis() as u64,
        }));
    } else {
        let yes = |b: bool| if b { "yes" } else { "no" };
        for c in &checks {
            output::line(&format!(
                "{:<16} {:<9} {}  reachable={} authenticated={} probe={} {:>8.1} ms{}",
                c.name,
                c.kind.map_or("-", |k| k.as_str()),
                if c.healthy {
                    "ok       "
                } else if c.required {
                    "FAILED   "
                } else {
                    "unhealthy"
                },
                yes(c.reachable),
                yes(c.authenticated),
                c.probe,
                c.latency_ms,
                if c.required { "  (required)" } else { "" },
            ));
            output::line(&format!("    {}", c.detail));
            output::line(&format!(
                "    {}",
                credentials_line(&c.credentials, c.sends_to.as_deref())
            ));
            if !c.probe_detail.is_empty() {
                output::line(&format!("    probe: {}", c.probe_detail));
            }
            if c.cleaned_up == Some(false) {
                output::line(
                    "    WARNING: the scratch secret under .tresor/doctor/ could not be removed",
                );
            }
            if let Some(n) = c.cached_copies {
                output::line(&format!("    offline copies in the local vault: {n}"));
            }
        }
    }
    if !ok {
        if !ctx.json {
            eprintln!(
                "tresor: error: required store{} unhealthy: {}",
                if unhealthy_required.len() == 1 {
                    ""
                } else {
                    "s"
                },
                unhealthy_required.join(", ")
            );
        }
        EXIT.store(crate::exit::ExitCode::Unavailable as u8, Ordering::Relaxed);
    }
    Ok(())
}

fn config_path(ctx: &Ctx) -> Result<()> {
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

fn config_check(ctx: &Ctx) -> Result<()> {
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
            commands::unlock_at(&vault_path, key_file.as_deref()).map_err(|e| e.to_string())
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
fn check_untrusted(ctx: &Ctx, file: &ConfigFile) -> Result<()> {
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
    }
    EXIT.store(crate::exit::ExitCode::Usage as u8, Ordering::Relaxed);
    Ok(())
}
