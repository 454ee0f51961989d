//! Commands through the manager: every secret command (get, set, ls,
//! history, rotate, promote, rollback, rm, undelete, meta; with no config
//! the manager holds the one vault store), and `stores`, `doctor`,
//! `config check|path|trust|untrust`.

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

mod config_cmd;
mod status;
pub mod use_cmd;

use config_cmd::{config_check, config_path};
use status::{credentials_line, doctor, stores};

/// The exit code of a command that succeeded but has something to report
/// (`config check` problems: 2; `doctor` with an unhealthy required store: 6).
pub static EXIT: AtomicU8 = AtomicU8::new(crate::exit::ExitCode::Ok as u8);

/// Runs `command` here when it goes through the manager; otherwise gives it
/// back for the commands that work on the local vault itself (init, keyslot,
/// rekey, audit, verify, …).
pub fn dispatch(ctx: &Ctx, command: Command) -> Result<Option<Command>> {
    match command {
        Command::Stores => stores(ctx).map(|()| None),
        Command::Doctor => doctor(ctx).map(|()| None),
        Command::Check(a) => use_cmd::check(ctx, a).map(|()| None),
        Command::Render(a) => use_cmd::render(ctx, a).map(|()| None),
        Command::Inject(a) => use_cmd::inject(ctx, a).map(|()| None),
        Command::Env(a) => use_cmd::env(ctx, a).map(|()| None),
        Command::Config(ConfigCommand::Check) => config_check(ctx).map(|()| None),
        Command::Config(ConfigCommand::Path) => config_path(ctx).map(|()| None),
        Command::Config(ConfigCommand::Trust(a)) => crate::trust_cmd::trust(ctx, a).map(|()| None),
        Command::Config(ConfigCommand::Untrust(a)) => {
            crate::trust_cmd::untrust(ctx, a).map(|()| None)
        }
        // Every secret command, with or without a config: with none the
        // manager holds the one vault store.
        c if routed(&c) => {
            let config = Config::discover_and_load(ctx.config.as_deref())?;
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
    tresor::stores::options::parse_duration(text).ok_or_else(bad)
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
        .unlock(commands::unlock_chain(key_file))
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
    // Human output names the store only when there is a choice of stores;
    // JSON always does.
    let out = Out {
        ctx,
        stores: t.store_names().len(),
    };
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
                ..PutOptions::default()
            };
            write(&out, t, &name, &value, &options, "set")
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
                &out,
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
            print_listing(&out, &listing);
            Ok(())
        }
        Command::History(a) => {
            let name = SecretName::new(a.name)?;
            let (from, history) = t.history(&name, store)?;
            if out.several() {
                ctx.status(&format!("{name}: history from store '{from}'"));
            }
            commands::print_history(ctx, &history);
            Ok(())
        }
        Command::Promote(a) => {
            let name = SecretName::new(a.name)?;
            let (from, version) = t.with_vault(&name, store, "promote", |v| {
                v.promote(&name, a.reason.as_deref())
            })?;
            out.changed(&name, &from, version, "promoted");
            Ok(())
        }
        Command::Rollback(a) => {
            let name = SecretName::new(a.name)?;
            let (from, ()) = t.with_vault(&name, store, "rollback", |v| {
                v.rollback(&name, a.version, a.reason.as_deref())
            })?;
            out.changed(&name, &from, a.version, "rolled back");
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
                &format!("{name}: {what}{}", out.in_store(&from)),
            );
            Ok(())
        }
        Command::Undelete(a) => {
            let name = SecretName::new(a.name)?;
            let from = t.undelete(&name, store)?;
            commands::done(
                ctx,
                json!({"name": name, "deleted": false, "store": from}),
                &format!("{name}: restored{}", out.in_store(&from)),
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

/// How a secret command reports, knowing how many stores there are.
struct Out<'a> {
    ctx: &'a Ctx,
    stores: usize,
}

impl Out<'_> {
    fn several(&self) -> bool {
        self.stores > 1
    }

    /// ` in store 'NAME'`, or nothing when there is one store.
    fn in_store(&self, store: &str) -> String {
        if self.several() {
            format!(" in store '{store}'")
        } else {
            String::new()
        }
    }

    fn changed(&self, name: &SecretName, store: &str, version: u64, verb: &str) {
        commands::done(
            self.ctx,
            json!({"name": name, "version": version, "store": store}),
            &format!("{name}: {verb} version {version}{}", self.in_store(store)),
        );
    }
}

fn write(
    out: &Out<'_>,
    t: &mut Tresor,
    name: &SecretName,
    value: &tresor::SecretValue,
    options: &PutOptions,
    verb: &str,
) -> Result<()> {
    let written = match out.ctx.store.as_deref() {
        Some(s) => t.set_in(s, name, value, options)?,
        None => t.set(name, value, options)?,
    };
    out.changed(name, &written.store, written.version, verb);
    Ok(())
}

fn print_listing(out: &Out<'_>, listing: &Listing) {
    let ctx = out.ctx;
    if ctx.json {
        output::json(&listing.entries);
    } else {
        // Columns line up: the name column is as wide as the longest name.
        let width = listing
            .entries
            .iter()
            .map(|l| l.info.name.as_str().chars().count())
            .max()
            .unwrap_or(0);
        for l in &listing.entries {
            let s = &l.info;
            let mut row = format!(
                "{:<width$}  v{:<4} {}",
                s.name.as_str(),
                s.current,
                output::time(s.updated_at),
            );
            if out.several() {
                row.push_str(&format!("  {:<12}", l.store));
            }
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
