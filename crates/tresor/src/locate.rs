//! Where the vault lives and how long to wait for it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tresor_core::{Error, Result};

/// Environment variable naming the vault file.
pub const VAULT_ENV: &str = "TRESOR_VAULT";
/// Environment variable with the lock timeout in seconds.
pub const LOCK_TIMEOUT_ENV: &str = "TRESOR_LOCK_TIMEOUT";

/// The vault file: `explicit` (`--vault`), else `TRESOR_VAULT`, else
/// `$XDG_DATA_HOME/tresor/vault.db`, else `~/.local/share/tresor/vault.db`.
pub fn vault_path(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(VAULT_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let data = data_dir().map_err(|_| {
        Error::Validation(
            "cannot find the vault: name it, or set TRESOR_VAULT, XDG_DATA_HOME or HOME".into(),
        )
    })?;
    Ok(data.join("tresor").join("vault.db"))
}

/// The user's data folder: `$XDG_DATA_HOME`, else `~/.local/share`.
pub(crate) fn data_dir() -> Result<PathBuf> {
    std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .ok_or_else(|| {
            Error::Validation("cannot find your data folder: set XDG_DATA_HOME or HOME".into())
        })
}

/// The lock timeout from `TRESOR_LOCK_TIMEOUT` (seconds, fractions allowed,
/// or any duration in tresor's one syntax such as `2m`), default 30 s.
pub fn lock_timeout() -> Result<Duration> {
    match std::env::var(LOCK_TIMEOUT_ENV) {
        Err(_) => Ok(Duration::from_secs(30)),
        Ok(s) => tresor_core::parse_duration(&s)
            .filter(|d| *d <= Duration::from_secs(86_400))
            .ok_or_else(|| {
                Error::Validation(format!(
                    "{LOCK_TIMEOUT_ENV} must be a number of seconds (0 to 86400), not {s:?}"
                ))
            }),
    }
}
