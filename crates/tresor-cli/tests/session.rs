//! Unlock sessions through the agent (`tresor unlock --agent`, `lock`,
//! `status`), and the audit of unlock and decryption failures (the
//! `vault.db.failures` sidecar folded into the audit chain).
//!
//! The kernel-keyring backend is tested in `session_keyring.rs`, under
//! `scripts/services exec` (a fresh session keyring).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Out, Tresor, entries_of};

/// A key-file vault with one secret, its agents' sockets under
/// `<tmp>/run/tresor` (XDG_RUNTIME_DIR).
fn vault() -> Tresor {
    let mut t = Tresor::with_key();
    let run = t.path("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    t.set_default("XDG_RUNTIME_DIR", &run);
    t.run_in(&["set", "db/password"], b"hunter2").ok();
    t
}

/// Runs without any credential in the environment: only a session can unlock.
fn bare(t: &Tresor, args: &[&str]) -> Out {
    t.cmd(args).env_remove("TRESOR_KEY_FILE").run()
}

fn status(t: &Tresor) -> serde_json::Value {
    bare(t, &["--json", "status"]).ok().json()
}

/// Ends the session when the test ends, passed or not.
struct Locker<'a>(&'a Tresor);

impl Drop for Locker<'_> {
    fn drop(&mut self) {
        let _ = bare(self.0, &["lock"]);
    }
}

fn alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn wait_gone(pid: u64) {
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "agent {pid} still runs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn socket_dir(t: &Tresor) -> PathBuf {
    t.path("run").join("tresor")
}

fn sockets(t: &Tresor) -> Vec<PathBuf> {
    match std::fs::read_dir(socket_dir(t)) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => vec![],
    }
}

fn unlock_agent(t: &Tresor, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json", "unlock", "--agent"];
    args.extend(extra);
    let info = t.run(&args).ok().json();
    assert_eq!(info["backend"], "agent", "{info}");
    info
}

#[test]
fn an_agent_session_opens_the_vault_until_it_expires() {
    let t = vault();
    let _lock = Locker(&t);
    // Without a session nothing unlocks.
    bare(&t, &["get", "db/password"]).code(3);
    let info = unlock_agent(&t, &["--for", "3s"]);
    let pid = info["pid"].as_u64().unwrap();
    assert!(alive(pid));
    assert_eq!(
        info["expires_at"].as_i64().unwrap() - info["created_at"].as_i64().unwrap(),
        3000
    );
    assert!(info["method"].as_str().unwrap().starts_with("key file "));
    let got = bare(&t, &["get", "db/password"]).ok().out();
    assert_eq!(got, "hunter2");
    // Writes work too, and are audited as usual.
    t.cmd(&["set", "db/other"])
        .env_remove("TRESOR_KEY_FILE")
        .stdin(b"x")
        .run()
        .ok();
    let s = status(&t);
    assert_eq!(s["unlocked"], true);
    assert_eq!(s["sessions"][0]["backend"], "agent");
    assert_eq!(s["sessions"][0]["pid"].as_u64(), Some(pid));
    // The socket: a private folder and a socket only this user reaches.
    let dir = socket_dir(&t);
    let meta = std::fs::symlink_metadata(&dir).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert_eq!(meta.uid(), unsafe { libc::getuid() });
    let socks = sockets(&t);
    assert_eq!(socks.len(), 1, "{socks:?}");
    let meta = std::fs::symlink_metadata(&socks[0]).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert!(
        socks[0]
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .contains(s["vault_id"].as_str().unwrap())
    );
    // Past the absolute deadline: locked, the agent gone with its socket.
    std::thread::sleep(Duration::from_millis(3300));
    bare(&t, &["get", "db/password"]).code(3);
    assert_eq!(status(&t)["unlocked"], false);
    wait_gone(pid);
    assert!(sockets(&t).is_empty(), "{:?}", sockets(&t));
}

#[test]
fn use_extends_the_idle_deadline_and_status_does_not() {
    let t = vault();
    let _lock = Locker(&t);
    unlock_agent(&t, &["--for", "60s", "--idle", "3s"]);
    // Used every 0.7 s, the session outlives its 3 s idle timeout.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(4000) {
        bare(&t, &["get", "db/password"]).ok();
        std::thread::sleep(Duration::from_millis(700));
    }
    bare(&t, &["get", "db/password"]).ok();
    let last_use = Instant::now();
    let before = status(&t)["sessions"][0]["idle_deadline"].as_i64().unwrap();
    // Only looked at, it is not extended: status keeps the same deadline and
    // the session ends 3 s after the last use.
    while last_use.elapsed() < Duration::from_millis(2000) {
        let s = status(&t);
        assert_eq!(s["unlocked"], true);
        assert_eq!(s["sessions"][0]["idle_deadline"].as_i64().unwrap(), before);
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(3100).saturating_sub(last_use.elapsed()));
    assert_eq!(status(&t)["unlocked"], false);
    bare(&t, &["get", "db/password"]).code(3);
}

#[test]
fn lock_ends_the_agent_and_its_key() {
    let t = vault();
    let _lock = Locker(&t);
    let info = unlock_agent(&t, &[]);
    let pid = info["pid"].as_u64().unwrap();
    bare(&t, &["get", "db/password"]).ok();
    let locked = bare(&t, &["--json", "lock"]).ok().json();
    assert_eq!(locked["ended"], serde_json::json!(["agent"]));
    wait_gone(pid);
    assert!(sockets(&t).is_empty());
    bare(&t, &["get", "db/password"]).code(3);
    // Locking again finds nothing to end and still succeeds.
    let again = bare(&t, &["--json", "lock"]).ok().json();
    assert_eq!(again["ended"], serde_json::json!([]));
    // Text output for people.
    unlock_agent(&t, &[]);
    bare(&t, &["status"]).ok();
    let text = bare(&t, &["status"]).ok().out();
    assert!(
        text.contains("unlocked") && text.contains("agent (pid"),
        "{text}"
    );
    assert!(
        bare(&t, &["lock"])
            .ok()
            .err()
            .contains("ended the agent session")
    );
    assert!(bare(&t, &["status"]).ok().out().contains("locked"));
}

#[test]
fn a_killed_agent_leaves_nothing_usable_behind() {
    let t = vault();
    let _lock = Locker(&t);
    let pid = unlock_agent(&t, &[])["pid"].as_u64().unwrap();
    // SAFETY: a plain signal to the agent this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    wait_gone(pid);
    // Its socket is left, but nobody listens: the next client removes it.
    assert_eq!(sockets(&t).len(), 1);
    bare(&t, &["get", "db/password"]).code(3);
    assert!(sockets(&t).is_empty());
    assert_eq!(status(&t)["unlocked"], false);
    // No file anywhere holds the key: the run folder is empty and the vault
    // folder has only the vault's own files.
    for f in t.files() {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name == "key" || name.starts_with("vault.db"),
            "unexpected file {}",
            f.display()
        );
    }
    // A new agent starts over the stale socket as well.
    let pid = unlock_agent(&t, &[])["pid"].as_u64().unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_gone(pid);
    let pid = unlock_agent(&t, &[])["pid"].as_u64().unwrap();
    bare(&t, &["get", "db/password"]).ok();
    bare(&t, &["lock"]).ok();
    wait_gone(pid);
}

#[test]
fn a_session_of_one_vault_never_opens_another() {
    let a = vault();
    let _lock = Locker(&a);
    let mut b = Tresor::with_key();
    b.set_default("XDG_RUNTIME_DIR", a.path("run"));
    b.run_in(&["set", "db/password"], b"other").ok();
    unlock_agent(&a, &[]);
    bare(&a, &["get", "db/password"]).ok();
    // Vault B, same user, same agent folder: still locked.
    bare(&b, &["get", "db/password"]).code(3);
    assert_eq!(status(&b)["unlocked"], false);
    assert_eq!(status(&a)["unlocked"], true);
    // A copy of A shares its id, so A's session matches it by name; once the
    // copy's master key is replaced, the session's key no longer opens it:
    // refused (exit 3), recorded as a failed unlock, and the session ended.
    let copy = a.path("copy.db");
    std::fs::copy(&a.vault, &copy).unwrap();
    let wal = PathBuf::from(format!("{}-wal", a.vault.display()));
    if wal.exists() {
        std::fs::copy(&wal, a.path("copy.db-wal")).unwrap();
    }
    a.cmd(&["rekey", "--master"])
        .env("TRESOR_VAULT", &copy)
        .run()
        .ok();
    // rekey --master ends the sessions of its vault id (the old key opens
    // nothing there any more); start A's again.
    assert_eq!(status(&a)["unlocked"], false);
    unlock_agent(&a, &[]);
    a.cmd(&["get", "db/password"])
        .env("TRESOR_VAULT", &copy)
        .env_remove("TRESOR_KEY_FILE")
        .run()
        .code(3);
    let entries = a
        .cmd(&["audit", "log", "--json"])
        .env("TRESOR_VAULT", &copy)
        .run()
        .ok()
        .json_lines();
    let failed = entries_of(&entries, "unlock_failed");
    assert_eq!(failed.len(), 1, "{entries:?}");
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("session slot; credential from unlock session (agent)")
    );
    assert_eq!(status(&a)["unlocked"], false);
}

#[test]
fn another_user_gets_nothing_from_the_agent() {
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } != 0 {
        panic!("this test checks SO_PEERCRED by switching to uid 65534: run it as root");
    }
    let t = vault();
    let _lock = Locker(&t);
    let info = unlock_agent(&t, &[]);
    let pid = info["pid"].as_u64().unwrap();
    let id = status(&t)["vault_id"].as_str().unwrap().to_string();
    let sock = sockets(&t).pop().unwrap();
    // Open the path to everyone, as a careless admin might: the agent's own
    // uid check must still refuse.
    for dir in [t.dir.path(), &t.path("run"), &socket_dir(&t)] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let script = [
        "import socket, sys",
        "s = socket.socket(socket.AF_UNIX)",
        "s.connect(sys.argv[1])",
        "data = b''",
        "try:",
        "    s.sendall(('get ' + sys.argv[2] + '\\n').encode())",
        "    s.shutdown(socket.SHUT_WR)",
        "    while True:",
        "        c = s.recv(4096)",
        "        if not c:",
        "            break",
        "        data += c",
        "except OSError:",
        "    pass  # the agent hung up: refused",
        "print(len(data))",
    ]
    .join("\n");
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", &script])
        .arg(&sock)
        .arg(&id)
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("python3 (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "the agent answered another uid"
    );
    assert!(alive(pid));
    // tresor itself trusts no folder others can enter: it neither uses the
    // agent there nor starts one.
    bare(&t, &["get", "db/password"]).code(3);
    t.run(&["unlock", "--agent"])
        .code(6)
        .err_has(&["mode 0700"]);
    // Made private again, the agent still serves its own user.
    std::fs::set_permissions(socket_dir(&t), std::fs::Permissions::from_mode(0o700)).unwrap();
    bare(&t, &["get", "db/password"]).ok();
}

// ---------------------------------------------------------------- failures

fn sidecar(t: &Tresor) -> PathBuf {
    PathBuf::from(format!("{}.failures", t.vault.display()))
}

fn snapshot(path: &Path) -> (Vec<u8>, Option<Vec<u8>>) {
    (
        std::fs::read(path).unwrap(),
        std::fs::read(format!("{}-wal", path.display())).ok(),
    )
}

#[test]
fn failed_unlocks_are_recorded_beside_the_vault_and_folded_into_the_audit_log() {
    let t = vault();
    let before = snapshot(&t.vault);
    let wrong_key = tresor::new_key_file_text();
    t.cmd(&["get", "db/password"])
        .env_remove("TRESOR_KEY_FILE")
        .env("TRESOR_KEY", wrong_key.as_str())
        .run()
        .code(3);
    let wrong_file = t.write_key("wrong-key", tresor::new_key_file_text().as_bytes());
    t.cmd(&["ls"])
        .env("TRESOR_KEY_FILE", &wrong_file)
        .run()
        .code(3);
    // The vault file is untouched, byte for byte; the sidecar is private and
    // holds no key material.
    assert!(snapshot(&t.vault) == before, "vault.db changed");
    let side = sidecar(&t);
    let meta = std::fs::metadata(&side).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&side).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(!text.contains(wrong_key.trim()));
    assert!(!text.contains(std::fs::read_to_string(&t.key).unwrap().trim()));
    // The next unlock folds them in, and removes the sidecar.
    let entries = t.audit();
    assert!(!side.exists());
    let failed: Vec<_> = entries
        .iter()
        .filter(|e| e["operation"] == "unlock_failed")
        .collect();
    assert_eq!(failed.len(), 2, "{entries:?}");
    assert_eq!(failed[0]["result"], "auth");
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("key-file slot; credential from TRESOR_KEY; uid ")
    );
    assert!(failed[1]["reason"].as_str().unwrap().contains(&format!(
        "credential from key file {}",
        wrong_file.display()
    )));
    // The failures keep the time they happened, and the chain verifies.
    assert!(failed[0]["at"].as_i64() <= failed[1]["at"].as_i64());
    t.run(&["audit", "verify"]).ok();
    t.run(&["verify"]).ok();
    // Text output shows them too.
    assert!(
        t.run(&["audit", "log"])
            .ok()
            .out()
            .contains("unlock_failed")
    );
}

#[test]
fn a_garbled_sidecar_is_reported_not_trusted() {
    let t = vault();
    t.cmd(&["get", "db/password"])
        .env_remove("TRESOR_KEY_FILE")
        .env("TRESOR_PASSWORD", "wrong")
        .run()
        .code(3);
    let side = sidecar(&t);
    let text = std::fs::read_to_string(&side).unwrap();
    // An edited line (uid 0 made 1000) and an invented one.
    let edited = text.replacen("\t0\t", "\t1000\t", 1);
    assert_ne!(edited, text);
    std::fs::write(
        &side,
        format!("{edited}tresor-unlock-failure v1\tforged line\n"),
    )
    .unwrap();
    let entries = t.audit();
    assert!(!side.exists());
    assert!(
        !entries.iter().any(|e| e["operation"] == "unlock_failed"),
        "an altered line was trusted: {entries:?}"
    );
    let garbled: Vec<_> = entries
        .iter()
        .filter(|e| e["operation"] == "unlock_failures_garbled")
        .collect();
    assert_eq!(garbled.len(), 1, "{entries:?}");
    assert_eq!(garbled[0]["result"], "integrity");
    assert!(
        garbled[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("2 garbled or altered line(s) in vault.db.failures")
    );
    t.run(&["audit", "verify"]).ok();
}

#[test]
fn a_tampered_envelope_is_audited_even_with_read_audit_off() {
    let t = vault();
    t.run(&["settings", "audit_reads=false"]).ok();
    t.run(&["key", "create", "app/k"]).ok();
    let env = t
        .run_in(&["key", "encrypt", "app/k"], b"payload")
        .ok()
        .out();
    let env = env.trim();
    // Flip one character of the data part.
    let mut bytes = env.as_bytes().to_vec();
    let last = bytes.len() - 3;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    t.run_in(&["key", "decrypt"], &bytes).code(4);
    t.run_in(&["key", "decrypt"], env.as_bytes()).ok();
    let entries = t.audit();
    let decrypts: Vec<_> = entries
        .iter()
        .filter(|e| e["operation"] == "key decrypt")
        .collect();
    // The failure is there; the successful use is not (reads not audited).
    assert_eq!(decrypts.len(), 1, "{entries:?}");
    assert_eq!(decrypts[0]["result"], "integrity");
    assert_eq!(decrypts[0]["name"], "app/k");

    // Every other refusal is audited too: a version below the minimum, an
    // unknown key.
    t.run(&["key", "rotate", "app/k"]).ok();
    t.run(&["key", "config", "app/k", "--min-decryption-version", "2"])
        .ok();
    t.run_in(&["key", "decrypt"], env.as_bytes()).code(2);
    let unknown = env.replacen("app/k", "app/gone", 1);
    t.run_in(&["key", "decrypt"], unknown.as_bytes()).code(1);
    let entries = t.audit();
    let results: Vec<_> = entries_of(&entries, "key decrypt")
        .iter()
        .map(|e| e["result"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        results,
        ["integrity", "validation", "not_found"],
        "{entries:?}"
    );
    t.run(&["audit", "verify"]).ok();
}

#[test]
fn the_agent_keeps_no_credential_from_the_environment() {
    let t = vault();
    let _lock = Locker(&t);
    let key = std::fs::read_to_string(&t.key).unwrap();
    let info = t
        .cmd(&["--json", "unlock", "--agent"])
        .env_remove("TRESOR_KEY_FILE")
        .env("TRESOR_KEY", key.trim())
        .run()
        .ok()
        .json();
    assert_eq!(info["method"], "TRESOR_KEY");
    let pid = info["pid"].as_u64().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(!environ.contains("TRESOR_KEY="), "{environ}");
    assert!(!environ.contains(key.trim()));
    assert!(environ.contains("XDG_RUNTIME_DIR="));
    // Its command line holds nothing but `agent`.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<&[u8]> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    assert_eq!(args.len(), 2);
    assert_eq!(args[1], b"agent");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        Path::new("/")
    );
}

#[test]
fn bad_durations_and_a_hand_started_agent_are_usage_errors() {
    let t = vault();
    // One duration syntax with config durations: fractions parse, but a
    // session still lasts at least a second.
    for bad in ["0s", "0.5s", "15x", "999d"] {
        t.run(&["unlock", "--agent", "--for", bad]).code(2);
    }
    t.run(&["unlock", "--agent", "--keyring"]).code(2);
    t.run_in(&["agent"], b"not a key record")
        .code(2)
        .err_has(&["tresor unlock --agent"]);
    assert!(sockets(&t).is_empty());
    assert_eq!(status(&t)["unlocked"], false);
}
