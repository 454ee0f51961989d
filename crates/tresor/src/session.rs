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
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
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
mod keyring {
    use super::*;
    use linux_keyutils::{KeyError, KeyPermissions, KeyRing, KeyRingIdentifier};

    /// Possessor: everything; this uid: view, read, write, search, setattr;
    /// group and others: nothing.
    const PERMS: u32 = 0x3f2f_0000;

    fn key_desc(vault_id: &[u8; 16]) -> String {
        format!("tresor:session:{}", hex(vault_id))
    }

    fn info_desc(vault_id: &[u8; 16]) -> String {
        format!("tresor:session-info:{}", hex(vault_id))
    }

    /// The user keyring; `create` makes it for a user who has none yet
    /// (no login through pam_keyinit, say).
    fn user(create: bool) -> std::result::Result<KeyRing, KeyError> {
        KeyRing::from_special_id(KeyRingIdentifier::User, create)
    }

    pub(super) fn store(
        vault_id: &[u8; 16],
        master: &MasterKey,
        info: &SessionInfo,
    ) -> std::result::Result<(), String> {
        let fail = |what: &str, e: KeyError| format!("{what}: {e}");
        let stage = KeyRing::from_special_id(KeyRingIdentifier::Process, true)
            .map_err(|e| fail("process keyring", e))?;
        let user = user(true).map_err(|e| fail("user keyring", e))?;
        let secs = kernel_timeout(info.idle_deadline(), now_ms());
        let json = serde_json::to_vec(info).map_err(|e| e.to_string())?;
        let secret = record(vault_id, master);
        // The description first: a crash before the key is linked leaves
        // only it, which opens nothing and expires.
        for (desc, payload) in [
            (info_desc(vault_id), &json[..]),
            (key_desc(vault_id), &secret[..]),
        ] {
            let key = stage.add_key(&desc, payload).map_err(|e| fail("add", e))?;
            let linked = key
                .set_perms(KeyPermissions::from_u32(PERMS))
                .and_then(|()| key.set_timeout(secs))
                .and_then(|()| user.link_key(key));
            let _ = stage.unlink_key(key);
            if let Err(e) = linked {
                let _ = key.revoke();
                revoke(vault_id);
                return Err(fail("link into the user keyring", e));
            }
        }
        Ok(())
    }

    /// The session, extended when `touch`.
    pub(super) fn find(vault_id: &[u8; 16], touch: bool) -> Option<Session> {
        let user = user(false).ok()?;
        let key = user.search(&key_desc(vault_id)).ok()?;
        let info_key = user.search(&info_desc(vault_id)).ok();
        let mut buf = Zeroizing::new([0u8; RECORD_LEN + 1]);
        let n = key.read(&mut *buf).ok()?;
        let Some(master) = parse_record(&buf[..n.min(buf.len())], vault_id) else {
            let _ = key.revoke();
            return None;
        };
        let mut info_buf = vec![0u8; MAX_INFO];
        let info: Option<SessionInfo> = info_key
            .and_then(|k| k.read(&mut info_buf).ok())
            .and_then(|n| serde_json::from_slice(&info_buf[..n.min(MAX_INFO)]).ok());
        let Some(mut info) = info.filter(|i| i.vault_id == hex(vault_id)) else {
            // A key without its description: end it rather than guess.
            revoke(vault_id);
            return None;
        };
        let now = now_ms();
        if info.expired_at(now) {
            revoke(vault_id);
            return None;
        }
        if touch {
            info.last_used = now;
            let secs = kernel_timeout(info.idle_deadline(), now);
            if key.set_timeout(secs).is_err() {
                // Revoked or expired between the read and now.
                return None;
            }
            if let (Some(k), Ok(json)) = (info_key, serde_json::to_vec(&info)) {
                // Updating a key clears its timeout: set it again.
                let _ = k.update(&json).and_then(|()| k.set_timeout(secs));
            }
        }
        Some(Session { master, info })
    }

    /// Revokes the session's keys; whether there was one.
    pub(super) fn revoke(vault_id: &[u8; 16]) -> bool {
        let Ok(user) = user(false) else { return false };
        let mut found = false;
        for desc in [key_desc(vault_id), info_desc(vault_id)] {
            // Another process may be replacing it: repeat until none is left.
            for _ in 0..8 {
                match user.search(&desc) {
                    Ok(k) => {
                        found |= desc.starts_with("tresor:session:");
                        let _ = k.revoke();
                        let _ = user.unlink_key(k);
                    }
                    Err(_) => break,
                }
            }
        }
        found
    }
}

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

/// The agent: `tresor agent`, one process per vault.
pub mod agent {
    use super::*;

    /// The folder of the agents' sockets (see the module docs); created
    /// 0700 when `create`. Refused unless it is a real folder owned by this
    /// uid with no access for others.
    pub fn dir(create: bool) -> Result<PathBuf> {
        let dir = if let Some(d) = std::env::var_os(AGENT_DIR_ENV).filter(|v| !v.is_empty()) {
            PathBuf::from(d)
        } else {
            match std::env::var_os("XDG_RUNTIME_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .filter(|d| d.is_dir())
            {
                Some(run) => run.join("tresor"),
                None => PathBuf::from(format!("/tmp/tresor-{}", uid())),
            }
        };
        if create {
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(Error::Io {
                        store: "unlock session".into(),
                        path: dir,
                        source,
                    });
                }
            }
        }
        let meta = std::fs::symlink_metadata(&dir).map_err(|source| Error::Io {
            store: "unlock session".into(),
            path: dir.clone(),
            source,
        })?;
        if !meta.is_dir() || meta.uid() != uid() || meta.mode() & 0o077 != 0 {
            return Err(unavailable(format!(
                "refusing the agent folder {}: it must be a folder owned by uid {} with mode 0700",
                dir.display(),
                uid()
            )));
        }
        Ok(dir)
    }

    /// The socket of the vault's agent.
    pub fn socket(dir: &Path, vault_id: &[u8; 16]) -> PathBuf {
        dir.join(format!("agent-{}.sock", hex(vault_id)))
    }

    /// The uid of the process at the other end of `stream`.
    #[cfg(not(target_os = "linux"))]
    pub fn peer_uid(stream: &UnixStream) -> std::io::Result<u32> {
        let (mut uid, mut gid) = (0, 0);
        // SAFETY: getpeereid writes the two ids only.
        if unsafe { libc::getpeereid(stream.as_raw_fd(), &mut uid, &mut gid) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(uid)
    }

    /// The uid of the process at the other end of `stream` (`SO_PEERCRED`).
    #[cfg(target_os = "linux")]
    pub fn peer_uid(stream: &UnixStream) -> std::io::Result<u32> {
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `cred`.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&raw mut cred).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(cred.uid)
    }

    /// Sends `op` (`get`, `status` or `lock`) to the vault's agent. `None`:
    /// no agent (no folder, no socket, or a dead agent's socket, which is
    /// removed). For `get`, the key record and the description; for the
    /// others, an empty record.
    #[allow(clippy::type_complexity)]
    pub(super) fn request(
        vault_id: &[u8; 16],
        op: &str,
    ) -> std::io::Result<Option<(Zeroizing<Vec<u8>>, SessionInfo)>> {
        let Ok(dir) = dir(false) else {
            return Ok(None);
        };
        let path = socket(&dir, vault_id);
        let mut stream = match UnixStream::connect(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                // A killed agent's socket: nobody listens, nothing to read.
                let _ = std::fs::remove_file(&path);
                return Ok(None);
            }
            Err(_) => return Ok(None),
        };
        if peer_uid(&stream)? != uid() {
            return Err(std::io::Error::other(
                "the agent's socket belongs to another user",
            ));
        }
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(format!("{op} {}\n", hex(vault_id)).as_bytes())?;
        stream.shutdown(std::net::Shutdown::Write)?;
        let mut reply = Zeroizing::new(Vec::with_capacity(RECORD_LEN + MAX_INFO + 4));
        (&mut stream)
            .take((RECORD_LEN + MAX_INFO + 4) as u64)
            .read_to_end(&mut reply)?;
        if !reply.starts_with(b"ok\n") {
            return Ok(None);
        }
        let body = &reply[3..];
        let (record, json) = if op == "get" {
            if body.len() < RECORD_LEN {
                return Ok(None);
            }
            body.split_at(RECORD_LEN)
        } else {
            (&body[..0], body)
        };
        let Ok(info) = serde_json::from_slice::<SessionInfo>(json) else {
            return Ok(None);
        };
        if info.vault_id != hex(vault_id) {
            return Ok(None);
        }
        Ok(Some((Zeroizing::new(record.to_vec()), info)))
    }

    /// Starts `program agent` with the key on its stdin; returns its pid
    /// once it listens.
    pub(super) fn spawn(
        program: &Path,
        vault_id: &[u8; 16],
        master: &MasterKey,
        info: &SessionInfo,
    ) -> Result<u32> {
        use std::os::unix::process::CommandExt;
        use std::process::{Command, Stdio};
        dir(true)?;
        let mut cmd = Command::new(program);
        // The agent outlives this command: it keeps no copy of a credential
        // from the environment (TRESOR_PASSWORD, TRESOR_KEY, …) and pins no
        // folder, only what it needs to find its socket folder.
        cmd.env_clear().current_dir("/");
        for var in [AGENT_DIR_ENV, "XDG_RUNTIME_DIR"] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        cmd.arg("agent")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: setsid is async-signal-safe and touches only the child: it
        // leaves the terminal's process group, so ^C there does not end it.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let io = |source| Error::Io {
            store: "unlock session".into(),
            path: program.to_path_buf(),
            source,
        };
        let mut child = cmd.spawn().map_err(io)?;
        let json = serde_json::to_vec(info).map_err(|e| io(e.into()))?;
        // Sized once: a reallocation would leave a copy of the key behind.
        let mut input = Zeroizing::new(Vec::with_capacity(RECORD_LEN + json.len()));
        input.extend_from_slice(&record(vault_id, master));
        input.extend_from_slice(&json);
        let written = child
            .stdin
            .take()
            .expect("piped")
            .write_all(&input)
            .map_err(io);
        drop(input);
        written?;
        let mut out = String::new();
        let _ = child
            .stdout
            .take()
            .expect("piped")
            .take(256)
            .read_to_string(&mut out);
        if out.starts_with("ready") {
            return Ok(child.id());
        }
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = child.wait();
        Err(unavailable(format!(
            "the agent did not start: {}",
            err.trim().trim_start_matches("tresor: ")
        )))
    }

    /// The agent's side: reads the key record and description from stdin,
    /// listens, says `ready` on stdout, and serves until the session ends.
    /// The key lives only in this process's locked memory and is wiped when
    /// it returns.
    pub fn serve_stdin() -> Result<()> {
        use std::io::IsTerminal;
        if std::io::stdin().is_terminal() {
            return Err(Error::Validation(
                "tresor agent is started by `tresor unlock`, which hands it the key; \
                 run `tresor unlock --agent` instead"
                    .into(),
            ));
        }
        let mut input = Zeroizing::new(Vec::with_capacity(RECORD_LEN + MAX_INFO + 1));
        std::io::stdin()
            .take((RECORD_LEN + MAX_INFO) as u64)
            .read_to_end(&mut input)
            .map_err(|e| Error::Validation(format!("tresor agent: reading stdin: {e}")))?;
        if input.len() < RECORD_LEN || &input[..17] != MAGIC {
            return Err(Error::Validation(
                "tresor agent is started by `tresor unlock --agent`, which hands it the key on stdin"
                    .into(),
            ));
        }
        let vault_id: [u8; 16] = input[17..33].try_into().expect("16 bytes");
        let master = parse_record(&input[..RECORD_LEN], &vault_id).expect("checked above");
        let mut info: SessionInfo = serde_json::from_slice(&input[RECORD_LEN..])
            .map_err(|e| Error::Validation(format!("tresor agent: bad description: {e}")))?;
        drop(input);
        info.pid = Some(std::process::id());
        let dir = dir(true)?;
        let path = socket(&dir, &vault_id);
        let listener = bind(&path)?;
        let ours = std::fs::symlink_metadata(&path).map(|m| m.ino()).ok();
        // The parent waits for this line; then stdio goes to /dev/null.
        println!("ready {}", std::process::id());
        let _ = std::io::stdout().flush();
        detach_stdio();
        serve(&listener, &vault_id, &master, &mut info);
        drop(master);
        if std::fs::symlink_metadata(&path).map(|m| m.ino()).ok() == ours {
            let _ = std::fs::remove_file(&path);
        }
        Ok(())
    }

    fn bind(path: &Path) -> Result<UnixListener> {
        let io = |source| Error::Io {
            store: "unlock session".into(),
            path: path.to_path_buf(),
            source,
        };
        if std::fs::symlink_metadata(path).is_ok() {
            if UnixStream::connect(path).is_ok() {
                return Err(unavailable(format!(
                    "an agent already listens on {}",
                    path.display()
                )));
            }
            std::fs::remove_file(path).map_err(io)?;
        }
        // SAFETY: umask only changes this process's file creation mask.
        let old = unsafe { libc::umask(0o177) };
        let listener = UnixListener::bind(path);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        let listener = listener.map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        Ok(listener)
    }

    fn detach_stdio() {
        if let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            for fd in 0..3 {
                // SAFETY: dup2 onto the standard descriptors of this process.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
            }
        }
    }

    fn serve(
        listener: &UnixListener,
        vault_id: &[u8; 16],
        master: &MasterKey,
        info: &mut SessionInfo,
    ) {
        let me = uid();
        loop {
            let now = now_ms();
            if info.expired_at(now) {
                return;
            }
            let wait = (info.idle_deadline() - now).clamp(1, 60_000) as i32;
            let mut pfd = libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let ready = unsafe { libc::poll(&mut pfd, 1, wait) };
            if ready <= 0 {
                continue;
            }
            let Ok((mut stream, _)) = listener.accept() else {
                continue;
            };
            if peer_uid(&stream).ok() != Some(me) {
                // Another user: not a byte.
                continue;
            }
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            let mut line = Vec::with_capacity(64);
            if (&mut stream).take(64).read_to_end(&mut line).is_err() {
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            let mut words = text.split_whitespace();
            let (op, id) = (words.next(), words.next());
            if id != Some(hex(vault_id).as_str()) {
                let _ = stream.write_all(b"err wrong vault\n");
                continue;
            }
            let now = now_ms();
            if info.expired_at(now) {
                return;
            }
            match op {
                Some("get") => {
                    info.last_used = now;
                    let json = serde_json::to_vec(info).unwrap_or_default();
                    let mut reply = Zeroizing::new(Vec::with_capacity(3 + RECORD_LEN + json.len()));
                    reply.extend_from_slice(b"ok\n");
                    reply.extend_from_slice(&record(vault_id, master));
                    reply.extend_from_slice(&json);
                    let _ = stream.write_all(&reply);
                }
                Some("status") => {
                    let mut reply = b"ok\n".to_vec();
                    reply.extend_from_slice(&serde_json::to_vec(info).unwrap_or_default());
                    let _ = stream.write_all(&reply);
                }
                Some("lock") => {
                    let mut reply = b"ok\n".to_vec();
                    reply.extend_from_slice(&serde_json::to_vec(info).unwrap_or_default());
                    let _ = stream.write_all(&reply);
                    return;
                }
                _ => {
                    let _ = stream.write_all(b"err unknown request\n");
                }
            }
        }
    }
}

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
