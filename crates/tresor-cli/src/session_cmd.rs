//! `tresor unlock`, `lock` and `status`: unlock sessions.

use std::time::Duration;

use clap::Args;
use serde_json::json;

use tresor::session::{self, Choice, SessionInfo, Timeouts};
use tresor::{Error, LockedVault, Result};

use crate::commands::{Ctx, done};
use crate::output;

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// How long the session lives at most, whatever the use: 90s, 15m, 8h, 1h30m, 2d.
    #[arg(long = "for", value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub for_: Duration,
    /// End the session after this long without a use; each use extends it again (never
    /// past --for). [default: 15m, or --for when shorter]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub idle: Option<Duration>,
    /// Keep the key in a `tresor agent` process, even where the kernel keyring works.
    #[arg(long, conflicts_with = "keyring")]
    pub agent: bool,
    /// Keep the key in the kernel user keyring, or fail.
    #[arg(long)]
    pub keyring: bool,
}

/// `90`, `90s`, `15m`, `8h`, `2d`, and sums such as `1h30m`: tresor's one
/// duration syntax ([`tresor::stores::options::parse_duration`]), from one second to
/// 366 days.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let total = tresor::stores::options::parse_duration(text).ok_or_else(|| {
        format!(
            "{text:?} is not a duration: use a number with s, m, h or d, such as 90s, 15m or 1h30m"
        )
    })?;
    if total < Duration::from_secs(1) {
        return Err(format!("{text:?}: a session must last at least one second"));
    }
    if total > Duration::from_secs(366 * 86_400) {
        return Err(format!("{text:?}: at most 366 days"));
    }
    Ok(total)
}

fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

pub fn unlock(ctx: &Ctx, a: UnlockArgs) -> Result<()> {
    let idle = a.idle.unwrap_or(Duration::from_secs(15 * 60)).min(a.for_);
    let choice = match (a.agent, a.keyring) {
        (true, _) => Choice::Agent,
        (_, true) => Choice::Keyring,
        _ => Choice::Auto,
    };
    // A fresh credential, never the session being replaced.
    let (vault, method) = ctx.unlock_chain(false, false)?;
    let program = std::env::current_exe().map_err(|source| Error::Io {
        store: "unlock session".into(),
        path: "/proc/self/exe".into(),
        source,
    })?;
    let (info, refused) = session::start(
        &vault.id(),
        vault.path(),
        vault.master_key(),
        &method,
        Timeouts {
            absolute: a.for_,
            idle,
        },
        choice,
        &program,
    )?;
    drop(vault);
    if let Some(why) = &refused {
        ctx.status(&format!(
            "the kernel keyring is unavailable ({why}); using an agent"
        ));
    }
    if ctx.json {
        let mut v = info_json(&info);
        if let Some(why) = refused {
            v["keyring_refused"] = json!(why);
        }
        output::json(&v);
        return Ok(());
    }
    ctx.status(&format!(
        "unlocked {} for {} (idle {}) in the {}: until {} unless used, at the latest {}; `tresor lock` ends it",
        info.vault.display(),
        short(a.for_),
        short(idle),
        match info.backend {
            session::Backend::Keyring => "kernel keyring".to_string(),
            session::Backend::Agent => format!("agent (pid {})", info.pid.unwrap_or(0)),
        },
        output::time(info.idle_deadline()),
        output::time(info.expires_at)
    ));
    Ok(())
}

fn vault_id(ctx: &Ctx) -> Result<(std::path::PathBuf, [u8; 16])> {
    let path = ctx.path()?;
    let locked = LockedVault::open(&path, &Ctx::open_options()?)?;
    Ok((path, locked.id()))
}

pub fn lock(ctx: &Ctx) -> Result<()> {
    let (path, id) = vault_id(ctx)?;
    let ended = session::end(&id)?;
    let names: Vec<&str> = ended.iter().map(|b| b.as_str()).collect();
    let text = if ended.is_empty() {
        format!("{}: no unlock session to end", path.display())
    } else {
        format!(
            "{}: locked (ended the {} session)",
            path.display(),
            names.join(" and ")
        )
    };
    done(
        ctx,
        json!({"vault": path, "vault_id": session::hex(&id), "locked": true, "ended": names}),
        &text,
    );
    Ok(())
}

fn info_json(info: &SessionInfo) -> serde_json::Value {
    let mut v = json!(info);
    v["idle_deadline"] = json!(info.idle_deadline());
    v
}

/// How the vault would unlock now, without unlocking it (the library's
/// [`tresor::Unlock::probe`]): as text, and an error's text when the
/// credential given cannot be used.
fn would_unlock(ctx: &Ctx, path: &std::path::Path) -> (Option<String>, Option<String>) {
    let mut chain = tresor::Unlock::new().key_file(ctx.key_file.clone());
    if crate::input::can_prompt() {
        // Never called by the probe: they only say a person can be asked.
        chain = chain.on_prompt(|_| Ok(None)).on_pin(|_, _| Ok(None));
    }
    match chain.probe(path) {
        Ok(Some(how)) => {
            let text = match &how {
                tresor::unlock::Opened::KeyFile(_) if ctx.key_file.is_some() => {
                    format!("{how} (--key-file)")
                }
                tresor::unlock::Opened::KeyFile(_) => format!("{how} ({})", tresor::KEY_FILE_ENV),
                tresor::unlock::Opened::Keychain => "its keychain slot".to_string(),
                tresor::unlock::Opened::Pkcs11 => {
                    format!(
                        "its PKCS#11 slot (PIN from {} or a prompt)",
                        tresor::PKCS11_PIN_ENV
                    )
                }
                tresor::unlock::Opened::Prompt => "a password prompt on this terminal".to_string(),
                other => other.to_string(),
            };
            (Some(text), None)
        }
        Ok(None) => (None, None),
        Err(e) => (None, Some(e.to_string())),
    }
}

pub fn status(ctx: &Ctx) -> Result<()> {
    let (path, id) = vault_id(ctx)?;
    let sessions = session::status(&id);
    let (how, problem) = if sessions.is_empty() {
        would_unlock(ctx, &path)
    } else {
        (None, None)
    };
    if ctx.json {
        output::json(&json!({
            "vault": path,
            "vault_id": session::hex(&id),
            "unlocked": !sessions.is_empty(),
            "sessions": sessions.iter().map(info_json).collect::<Vec<_>>(),
            "would_unlock_with": how,
            "unlock_problem": problem,
        }));
        return Ok(());
    }
    if sessions.is_empty() {
        let text = match (how, problem) {
            (Some(how), _) => format!(
                "{}: opens with {how} (no unlock session; `tresor unlock` starts one)",
                path.display()
            ),
            (None, Some(problem)) => {
                format!("{}: locked: {problem} (no unlock session)", path.display())
            }
            (None, None) => format!(
                "{}: locked (no credential found and no unlock session; `tresor unlock` starts \
                 one)",
                path.display()
            ),
        };
        output::line(&text);
        return Ok(());
    }
    for s in &sessions {
        let backend = match s.pid {
            Some(pid) => format!("{} (pid {pid})", s.backend.as_str()),
            None => s.backend.as_str().to_string(),
        };
        output::line(&format!(
            "{}: unlocked\n  session:  {backend}, unlocked with {} at {}\n  idle:     ends {} unless used ({}s idle timeout)\n  expires:  {}",
            path.display(),
            s.method,
            output::time(s.created_at),
            output::time(s.idle_deadline()),
            s.idle_secs,
            output::time(s.expires_at),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        // One syntax with config durations: fractions are fine.
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        for bad in ["", "0s", "0.5s", "m", "15x", "-5m", "999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
