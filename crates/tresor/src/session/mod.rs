//! Unlock sessions: `tresor unlock` keeps a vault's master key for this
//! user until the session expires, so later commands open the vault without
//! asking again; `tresor lock` ends it.
//!
//! Two places keep the key, tried in this order:
//!
//! - **the kernel user keyring** (`@u`, Linux keyutils): two `user` keys,
//!   `tresor:session:<vault id hex>` holding the key and
//!   `tresor:session-info:<vault id hex>` holding the session's description
//!   (JSON, no secret). Both carry a kernel timeout, the sooner of the idle
//!   and the absolute deadline, renewed on each use; the kernel destroys them
//!   when it passes. Their permissions give this uid (and the possessor)
//!   view, read, write, search and setattr, and nobody else anything. They
//!   are made in the process keyring, given their permissions and timeout,
//!   and only then linked into `@u`, so no instant exists at which a key
//!   without a timeout is reachable.
//! - **an agent** (`tresor agent`), where the kernel keyring refuses: a small
//!   process per vault holding the key in locked, zeroizing memory, undumpable,
//!   listening on `agent-<vault id hex>.sock` in `$XDG_RUNTIME_DIR/tresor/`
//!   (else `/tmp/tresor-<uid>/`), a folder that must be 0700 and owned by
//!   this uid. Both ends check the other's uid with `SO_PEERCRED`. The agent
//!   exits at the deadline, wiping the key; killed, it leaves only a socket
//!   file nobody can connect to, removed by the next client or agent.
//!
//! A session is bound to one vault by its vault id: the id names the keys
//! and the socket, is stored beside the key and checked on every read, and
//! the key must unwrap the vault's data keys (see
//! [`LockedVault::unlock_with_master`](tresor_vault::LockedVault::unlock_with_master)).

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use tresor_core::{Error, Result};
use tresor_crypto::{Key, MasterKey};

/// Environment variable with the agent's socket folder (else
/// `$XDG_RUNTIME_DIR/tresor`, else `/tmp/tresor-<uid>`).
pub const AGENT_DIR_ENV: &str = "TRESOR_AGENT_DIR";

const MAGIC: &[u8; 17] = b"tresor-session-v1";
const RECORD_LEN: usize = 17 + 16 + 32;
const MAX_INFO: usize = 16 * 1024;

/// Where a session's key is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// The kernel user keyring (keyutils).
    Keyring,
    /// A `tresor agent` process on a user-only unix socket.
    Agent,
}

impl Backend {
    /// `keyring` or `agent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Keyring => "keyring",
            Backend::Agent => "agent",
        }
    }
}

/// Which backend `start` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The kernel keyring when it accepts the key, else an agent.
    Auto,
    /// Only the kernel keyring.
    Keyring,
    /// Only an agent.
    Agent,
}

/// How long a session lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From `tresor unlock` on, whatever the use (`--for`).
    pub absolute: Duration,
    /// Without a use (`--idle`); each use extends the session by this much,
    /// never past the absolute deadline.
    pub idle: Duration,
}

/// A session as `tresor status` shows it: no key material.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionInfo {
    /// The vault id, lowercase hex.
    pub vault_id: String,
    /// The vault file the session was started for.
    pub vault: PathBuf,
    /// Where the key is kept.
    pub backend: Backend,
    /// How `tresor unlock` unlocked the vault (`password prompt`,
    /// `key file PATH`, `TRESOR_PASSWORD`, …).
    pub method: String,
    /// When it started, ms since the epoch.
    pub created_at: i64,
    /// The absolute deadline, ms since the epoch.
    pub expires_at: i64,
    /// The idle timeout in seconds.
    pub idle_secs: u64,
    /// The last use, ms since the epoch.
    pub last_used: i64,
    /// The agent's pid (agent sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl SessionInfo {
    /// When the session ends unless used again: the sooner of the last use
    /// plus the idle timeout and the absolute deadline.
    pub fn idle_deadline(&self) -> i64 {
        (self.last_used + self.idle_secs as i64 * 1000).min(self.expires_at)
    }

    /// Whether the session has ended by `now` (ms).
    pub fn expired_at(&self, now: i64) -> bool {
        now >= self.idle_deadline()
    }
}

/// A live session: its key and description.
pub struct Session {
    /// The vault's master key.
    pub master: MasterKey,
    /// What the session is.
    pub info: SessionInfo,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Lowercase hex of a vault id.
pub fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn uid() -> u32 {
    tresor_core::perm::real_uid()
}

fn unavailable(reason: String) -> Error {
    Error::Unavailable {
        store: "unlock session".into(),
        reason,
    }
}

/// The key record: magic ‖ vault id ‖ master key, in wiped memory.
fn record(vault_id: &[u8; 16], master: &MasterKey) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(RECORD_LEN));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(vault_id);
    out.extend_from_slice(master.expose_secret());
    out
}

fn parse_record(bytes: &[u8], vault_id: &[u8; 16]) -> Option<MasterKey> {
    if bytes.len() != RECORD_LEN || &bytes[..17] != MAGIC || &bytes[17..33] != vault_id {
        return None;
    }
    Key::from_slice(&bytes[33..])
}

/// Seconds until `deadline` (ms), rounded up, at least 1.
fn secs_until(deadline: i64, now: i64) -> u64 {
    ((deadline - now).max(1) as u64).div_ceil(1000)
}

/// A kernel key timeout for `deadline`: the kernel counts whole seconds
/// from the current one, so a key can expire up to a second early; one more
/// second keeps the kernel from ending a session before its deadline, which
/// every read checks to the millisecond.
fn kernel_timeout(deadline: i64, now: i64) -> usize {
    secs_until(deadline, now) as usize + 1
}

/// Starts a session for the unlocked vault `(vault_id, path)` with its
/// `master` key; `method` says how it was unlocked. An earlier session of
/// the vault is ended first. `agent_program` is the `tresor` binary, run as
/// `tresor agent` when the agent is used. Returns the session's description
/// and, when the kernel keyring was tried and refused, why.
pub fn start(
    vault_id: &[u8; 16],
    path: &Path,
    master: &MasterKey,
    method: &str,
    timeouts: Timeouts,
    choice: Choice,
    agent_program: &Path,
) -> Result<(SessionInfo, Option<String>)> {
    if timeouts.absolute.is_zero() || timeouts.idle.is_zero() {
        return Err(Error::Validation(
            "a session must last at least one second".into(),
        ));
    }
    end(vault_id)?;
    let now = now_ms();
    let mut info = SessionInfo {
        vault_id: hex(vault_id),
        vault: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        backend: Backend::Keyring,
        method: method.to_string(),
        created_at: now,
        expires_at: now + timeouts.absolute.as_millis() as i64,
        idle_secs: timeouts.idle.as_secs().max(1),
        last_used: now,
        pid: None,
    };
    let mut refused = None;
    if choice != Choice::Agent {
        match keyring::store(vault_id, master, &info) {
            Ok(()) => return Ok((info, None)),
            Err(e) if choice == Choice::Keyring => {
                return Err(unavailable(format!(
                    "the kernel keyring refused the key: {e}"
                )));
            }
            Err(e) => refused = Some(e),
        }
    }
    info.backend = Backend::Agent;
    let pid = agent::spawn(agent_program, vault_id, master, &info)?;
    info.pid = Some(pid);
    Ok((info, refused))
}

/// The live session of the vault `vault_id`, if any, extended by its idle
/// timeout (never past its absolute deadline). The kernel keyring is asked
/// first, then the agent.
pub fn find(vault_id: &[u8; 16]) -> Option<Session> {
    if let Some(s) = keyring::find(vault_id, true) {
        return Some(s);
    }
    agent::request(vault_id, "get")
        .ok()
        .flatten()
        .and_then(|r| {
            let (bytes, info) = r;
            let master = parse_record(&bytes, vault_id)?;
            Some(Session { master, info })
        })
}

/// The live sessions of the vault (one per backend at most), without
/// extending them.
pub fn status(vault_id: &[u8; 16]) -> Vec<SessionInfo> {
    let mut out = Vec::new();
    if let Some(s) = keyring::find(vault_id, false) {
        out.push(s.info);
    }
    if let Ok(Some((_, info))) = agent::request(vault_id, "status") {
        out.push(info);
    }
    out
}

/// Ends the vault's sessions: revokes the kernel keys and tells the agent
/// to wipe its key and exit. Returns the backends that had one.
pub fn end(vault_id: &[u8; 16]) -> Result<Vec<Backend>> {
    let mut ended = Vec::new();
    if keyring::revoke(vault_id) {
        ended.push(Backend::Keyring);
    }
    if agent::request(vault_id, "lock")
        .map_err(|e| unavailable(format!("the agent did not answer: {e}")))?
        .is_some()
    {
        ended.push(Backend::Agent);
    }
    Ok(ended)
}

/// Forgets a session whose key no longer opens its vault (the vault was
/// rekeyed): ends it like [`end`], ignoring errors.
pub fn discard(vault_id: &[u8; 16]) {
    let _ = end(vault_id);
}

// --------------------------------------------------------------- keyring

#[cfg(target_os = "linux")]
mod keyring;

#[cfg(not(target_os = "linux"))]
mod keyring {
    use super::*;

    pub(super) fn store(
        _: &[u8; 16],
        _: &MasterKey,
        _: &SessionInfo,
    ) -> std::result::Result<(), String> {
        Err("no kernel keyring on this OS".into())
    }

    pub(super) fn find(_: &[u8; 16], _: bool) -> Option<Session> {
        None
    }

    pub(super) fn revoke(_: &[u8; 16]) -> bool {
        false
    }
}

// ----------------------------------------------------------------- agent

// SAFETY (module): getpeereid/getsockopt(SO_PEERCRED), setsid in pre_exec,
// umask, dup2 and poll on this process's own descriptors; each call has its
// own SAFETY comment.
#[allow(unsafe_code)]
pub mod agent;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_bind_the_vault() {
        let master = Key::random();
        let id = [7u8; 16];
        let r = record(&id, &master);
        assert_eq!(r.len(), RECORD_LEN);
        assert_eq!(
            parse_record(&r, &id).unwrap().expose_secret(),
            master.expose_secret()
        );
        assert!(parse_record(&r, &[8u8; 16]).is_none());
        assert!(parse_record(&r[..RECORD_LEN - 1], &id).is_none());
    }

    #[test]
    fn idle_deadline_never_passes_the_absolute_one() {
        let info = SessionInfo {
            vault_id: hex(&[1; 16]),
            vault: "v".into(),
            backend: Backend::Agent,
            method: "test".into(),
            created_at: 0,
            expires_at: 10_000,
            idle_secs: 4,
            last_used: 8_000,
            pid: None,
        };
        assert_eq!(info.idle_deadline(), 10_000);
        assert!(!info.expired_at(9_999));
        assert!(info.expired_at(10_000));
        assert_eq!(secs_until(10_000, 8_001), 2);
        assert_eq!(secs_until(10_000, 10_500), 1);
    }
}
