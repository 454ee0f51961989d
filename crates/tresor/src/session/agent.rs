//! The agent: `tresor agent`, one process per vault, where the kernel
//! keyring refuses (see the [parent module](super)). The client side
//! ([`dir`], [`socket`], the requests) and the agent's own loop
//! ([`serve_stdin`]).

use super::*;

/// The folder of the agents' sockets (see the [session docs](super)); created
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
            "the agent is not run by hand: the process that starts an agent session \
             hands it the key on stdin"
                .into(),
        ));
    }
    let mut input = Zeroizing::new(Vec::with_capacity(RECORD_LEN + MAX_INFO + 1));
    std::io::stdin()
        .take((RECORD_LEN + MAX_INFO) as u64)
        .read_to_end(&mut input)
        .map_err(|e| Error::Validation(format!("agent: reading stdin: {e}")))?;
    if input.len() < RECORD_LEN || &input[..17] != MAGIC {
        return Err(Error::Validation(
            "the agent is not run by hand: the process that starts an agent session hands it \
             the key on stdin"
                .into(),
        ));
    }
    let vault_id: [u8; 16] = input[17..33].try_into().expect("16 bytes");
    let master = parse_record(&input[..RECORD_LEN], &vault_id).expect("checked above");
    let mut info: SessionInfo = serde_json::from_slice(&input[RECORD_LEN..])
        .map_err(|e| Error::Validation(format!("agent: bad description: {e}")))?;
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

fn serve(listener: &UnixListener, vault_id: &[u8; 16], master: &MasterKey, info: &mut SessionInfo) {
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
