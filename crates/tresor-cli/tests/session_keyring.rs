//! Unlock sessions in the kernel user keyring, against the real kernel
//! keyutils. Each command runs in its own fresh session keyring (`keyctl
//! session -`), as separate logins would: what they share is the user
//! keyring `@u`, where the session lives.
//!
//! Built only with the `service-tests` feature; scripts/test runs it as
//! `scripts/services exec -- cargo test -p tresor-cli --features service-tests --test session_keyring`.
//! Without keyutils the tests fail: nothing here skips.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Out, Tresor};

const NEW_KEYRING: [&str; 2] = ["keyctl", "session"];

fn require_keyutils() {
    assert_eq!(
        std::env::var("TRESOR_TEST_KEYUTILS").as_deref(),
        Ok("1"),
        "TRESOR_TEST_KEYUTILS is not 1: run these tests under `scripts/services exec -- ...`, \
         which provides keyctl and a fresh kernel session keyring"
    );
    let ok = Command::new("keyctl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "keyctl (Debian: keyutils) is missing");
}

fn vault() -> Tresor {
    require_keyutils();
    let mut t = Tresor::with_key();
    // A private agent folder, so a fallback to the agent would show.
    let run = t.path("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    t.set_default("XDG_RUNTIME_DIR", &run);
    t.run_in(&["set", "db/password"], b"hunter2").ok();
    t
}

/// `tresor ARGS` in a fresh session keyring, with no credential.
fn bare(t: &Tresor, args: &[&str]) -> Out {
    t.cmd_via(&[NEW_KEYRING[0], NEW_KEYRING[1], "-"], args)
        .env_remove("TRESOR_KEY_FILE")
        .run()
}

/// `tresor ARGS` in a fresh session keyring, with the key file.
fn keyed(t: &Tresor, args: &[&str]) -> Out {
    t.cmd_via(&[NEW_KEYRING[0], NEW_KEYRING[1], "-"], args)
        .run()
}

fn status(t: &Tresor) -> serde_json::Value {
    bare(t, &["--json", "status"]).ok().json()
}

struct Locker<'a>(&'a Tresor);

impl Drop for Locker<'_> {
    fn drop(&mut self) {
        let _ = bare(self.0, &["lock"]);
    }
}

/// `keyctl ARGS` as `uid`, in a fresh session keyring.
fn keyctl_as(uid: u32, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("keyctl");
    cmd.args(["session", "-", "keyctl"]).args(args);
    if uid != unsafe { libc::getuid() } {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(uid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.output().expect("keyctl")
}

/// The id of the user-keyring key `desc`, if it exists.
fn find_key(desc: &str) -> Option<String> {
    let out = keyctl_as(unsafe { libc::getuid() }, &["search", "@u", "user", desc]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn unlock(t: &Tresor, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json", "unlock"];
    args.extend(extra);
    let info = keyed(t, &args).ok().json();
    assert_eq!(info["backend"], "keyring", "{info}");
    assert!(info.get("pid").is_none());
    info
}

#[test]
fn a_keyring_session_is_shared_by_the_users_logins_and_locked_by_lock() {
    let t = vault();
    let _lock = Locker(&t);
    bare(&t, &["get", "db/password"]).code(3);
    let info = unlock(&t, &[]);
    let id = info["vault_id"].as_str().unwrap().to_string();
    // Another session keyring (another login of the same user) uses it.
    assert_eq!(bare(&t, &["get", "db/password"]).ok().out(), "hunter2");
    let s = status(&t);
    assert_eq!(s["unlocked"], true);
    assert_eq!(s["sessions"][0]["backend"], "keyring");
    assert!(
        s["sessions"][0]["method"]
            .as_str()
            .unwrap()
            .starts_with("key file ")
    );
    // The kernel key: named after the vault, readable by this uid only.
    let desc = format!("tresor:session:{id}");
    let key = find_key(&desc).expect("the session key is in @u");
    let described = keyctl_as(unsafe { libc::getuid() }, &["rdescribe", &key]);
    let described = String::from_utf8_lossy(&described.stdout)
        .trim()
        .to_string();
    assert_eq!(
        described,
        format!(
            "user;{0};{1};3f2f0000;{desc}",
            unsafe { libc::getuid() },
            unsafe { libc::getgid() }
        )
    );
    if unsafe { libc::getuid() } == 0 {
        let other = keyctl_as(65534, &["print", &key]);
        assert!(
            !other.status.success(),
            "uid 65534 read the session key: {}",
            String::from_utf8_lossy(&other.stdout)
        );
    }
    // No agent was started.
    assert!(!t.path("run").join("tresor").exists());
    // lock revokes it.
    let locked = bare(&t, &["--json", "lock"]).ok().json();
    assert_eq!(locked["ended"], serde_json::json!(["keyring"]));
    assert!(find_key(&desc).is_none());
    bare(&t, &["get", "db/password"]).code(3);
    assert_eq!(status(&t)["unlocked"], false);
}

#[test]
fn the_kernel_ends_a_keyring_session_at_its_deadline() {
    let t = vault();
    let _lock = Locker(&t);
    let id = unlock(&t, &["--keyring", "--for", "2s"])["vault_id"]
        .as_str()
        .unwrap()
        .to_string();
    bare(&t, &["get", "db/password"]).ok();
    // tresor checks the deadline to the millisecond; the kernel's timeout,
    // counted in whole seconds, is at most one second later. Past both, the
    // kernel itself has removed the key: no process had to.
    std::thread::sleep(Duration::from_millis(3300));
    assert!(find_key(&format!("tresor:session:{id}")).is_none());
    bare(&t, &["get", "db/password"]).code(3);
    assert_eq!(status(&t)["unlocked"], false);
}

#[test]
fn keyring_use_extends_the_idle_deadline_and_status_does_not() {
    let t = vault();
    let _lock = Locker(&t);
    unlock(&t, &["--for", "60s", "--idle", "3s"]);
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
fn a_keyring_session_never_opens_another_vault() {
    let a = vault();
    let _lock = Locker(&a);
    let mut b = Tresor::with_key();
    b.set_default("XDG_RUNTIME_DIR", a.path("run"));
    b.run_in(&["set", "db/password"], b"other").ok();
    unlock(&a, &[]);
    bare(&b, &["get", "db/password"]).code(3);
    assert_eq!(status(&b)["unlocked"], false);
    assert_eq!(bare(&a, &["get", "db/password"]).ok().out(), "hunter2");
    // A copy of A, rekeyed: A's session key is refused there and ended.
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
    // (rekey --master ended the session of that vault id: start it again.)
    unlock(&a, &[]);
    a.cmd_via(&["keyctl", "session", "-"], &["get", "db/password"])
        .env("TRESOR_VAULT", &copy)
        .env_remove("TRESOR_KEY_FILE")
        .run()
        .code(3);
    let failed: Vec<_> = a
        .cmd(&["audit", "log", "--json"])
        .env("TRESOR_VAULT", &copy)
        .run()
        .ok()
        .json_lines()
        .into_iter()
        .filter(|e| e["operation"] == "unlock_failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("session slot; credential from unlock session (keyring)")
    );
    assert_eq!(status(&a)["unlocked"], false);
}

/// Where the kernel keyring refuses (here: uid 65534's key quota filled in
/// its session), `tresor unlock` falls back to the agent by itself.
#[test]
fn a_refusing_kernel_keyring_falls_back_to_the_agent() {
    require_keyutils();
    assert_eq!(
        unsafe { libc::getuid() },
        0,
        "this test fills uid 65534's key quota: run it as root"
    );
    const NOBODY: u32 = 65534;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    // A private, readable copy of the binary (see hygiene.rs), all owned by nobody.
    let bin = path.join("tresor");
    std::fs::copy(common::BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    for p in [path, bin.as_path()] {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a plain chown of a path this test made.
        assert_eq!(unsafe { libc::chown(c.as_ptr(), NOBODY, NOBODY) }, 0);
    }
    let script = r#"
        set -e
        mkdir -m 700 run
        i=0
        while keyctl add user "fill$i" x @s >/dev/null 2>&1; do
            i=$((i+1)); [ "$i" -lt 100000 ] || exit 9
        done
        ./tresor --key-file key init --no-recovery -q
        printf hunter2 | ./tresor --key-file key set db/password -q
        ./tresor --key-file key --json unlock --for 60s
        echo
        ./tresor get db/password
        echo
        ./tresor --json status
        echo
        ./tresor lock -q
        ./tresor get db/password 2>/dev/null && exit 8
        echo locked
    "#;
    let mut cmd = common::clean_command("keyctl");
    cmd.args(["session", "-", "sh", "-c", script])
        .current_dir(path)
        .env("HOME", path)
        .env("TRESOR_VAULT", path.join("vault.db"))
        .env("XDG_RUNTIME_DIR", path.join("run"));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(NOBODY) != 0
                || libc::setuid(NOBODY) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("keyctl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.is_empty()).collect();
    let info: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(info["backend"], "agent", "{stdout}\n{stderr}");
    assert!(
        info["keyring_refused"]
            .as_str()
            .is_some_and(|why| !why.is_empty()),
        "{info}"
    );
    assert_eq!(lines[1], "hunter2");
    let status: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(status["sessions"][0]["backend"], "agent");
    assert_eq!(lines[3], "locked");
}
