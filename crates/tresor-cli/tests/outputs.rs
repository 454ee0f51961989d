//! Files tresor writes at a path the user names (`get --out`, `decrypt -o`,
//! `key decrypt --out`, `init --recovery-key-out`, key files made by `init`):
//! never into an existing FIFO, device or symbolic link (neither followed
//! nor replaced), nothing left behind by an interrupted run (Ctrl-C,
//! SIGTERM, SIGHUP; leftovers of a SIGKILL removed by the next run), and the
//! folder synced after the rename (checked with `strace`, which
//! scripts/test installs; these tests fail, never skip, without it).

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

fn p(path: &Path) -> String {
    path.display().to_string()
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(p(path)).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// An identity file from stock `age-keygen` and a file of `len` bytes
/// encrypted to it with stock `age`: (identity, sealed, plaintext).
fn sealed(t: &Tresor, len: usize) -> (PathBuf, PathBuf, Vec<u8>) {
    let key = t.path("key.txt");
    let run = |program: &str, args: &[&str]| {
        let out = clean_command(program)
            .args(args)
            .current_dir(t.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} ({e}): apt-get install age"));
        assert!(out.status.success(), "{program} {args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    run("age-keygen", &["-o", &p(&key)]);
    let recipient = run("age-keygen", &["-y", &p(&key)]);
    let data = filler(len, 7);
    let plain = t.write("plain", &data);
    let sealed = t.path("plain.age");
    run(
        "age",
        &["-r", recipient.trim(), "-o", &p(&sealed), &p(&plain)],
    );
    std::fs::remove_file(&plain).unwrap();
    (key, sealed, data)
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// What a FIFO's reader got: the read end is opened (non-blocking) before
/// `run`, so a writer that opened the FIFO would not block, and read after.
fn fifo_receives(fifo: &Path, run: impl FnOnce()) -> Vec<u8> {
    mkfifo(fifo);
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .unwrap();
    run();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    std::fs::remove_file(fifo).unwrap();
    got
}

#[test]
fn a_fifo_at_the_output_receives_nothing() {
    let t = Tresor::with_key();
    t.run_in(&["set", "app/token"], b"fifo-canary-value").ok();
    let fifo = t.path("out.fifo");
    let expect = ["out.fifo", "it is a FIFO", "leave out the output option"];

    // Before the fix, each of these wrote the plaintext into the FIFO.
    let got = fifo_receives(&fifo, || {
        t.run(&["get", "app/token", "--out", &p(&fifo)])
            .code(2)
            .err_has(&expect);
    });
    assert!(
        got.is_empty(),
        "get --out: {:?}",
        String::from_utf8_lossy(&got)
    );

    let (key, age_file, _) = sealed(&t, 100_000);
    let got = fifo_receives(&fifo, || {
        t.run(&["decrypt", "-i", &p(&key), "-o", &p(&fifo), &p(&age_file)])
            .code(2)
            .err_has(&expect);
    });
    assert!(got.is_empty(), "decrypt -o: {} bytes", got.len());

    t.run(&["key", "create", "app/k"]).ok();
    let envelope = t
        .run_in(&["key", "encrypt", "app/k"], b"fifo-canary-2")
        .ok()
        .out();
    let got = fifo_receives(&fifo, || {
        t.run_in(&["key", "decrypt", "--out", &p(&fifo)], envelope.as_bytes())
            .code(2)
            .err_has(&expect);
    });
    assert!(got.is_empty(), "key decrypt --out: {got:?}");

    // A recovery key: refused before the vault is made.
    let other = t.path("other/vault.db");
    let got = fifo_receives(&fifo, || {
        t.run(&[
            "--vault",
            &p(&other),
            "--key-file",
            &p(&t.path("other.key")),
            "init",
            "--recovery-key-out",
            &p(&fifo),
        ])
        .code(2)
        .err_has(&expect);
    });
    assert!(got.is_empty(), "--recovery-key-out: {got:?}");
    assert!(
        !other.exists(),
        "the vault was made although its recovery key had nowhere to go"
    );
}

#[test]
fn a_symlink_at_the_output_is_refused_neither_followed_nor_replaced() {
    let t = Tresor::with_key();
    t.run_in(&["set", "app/token"], b"link-canary").ok();
    let elsewhere = t.write("elsewhere", b"keep me");
    let link = t.path("out");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    t.run(&["get", "app/token", "--out", &p(&link)])
        .code(2)
        .err_has(&["is a symbolic link", "neither follows nor replaces"]);
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read(&elsewhere).unwrap(), b"keep me");
    // A folder at the path is refused, a regular file replaced (0600).
    std::fs::create_dir(t.path("dir")).unwrap();
    t.run(&["get", "app/token", "--out", &p(&t.path("dir"))])
        .code(2)
        .err_has(&["it is a directory"]);
    let plain = t.write("plain", b"old");
    t.run(&["get", "app/token", "--out", &p(&plain)]).ok();
    assert_eq!(std::fs::read(&plain).unwrap(), b"link-canary");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&plain).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// The file descriptor of `pid` open on a deleted (unnamed) file in `dir`,
/// and that file's size.
fn unnamed_file_of(pid: u32, dir: &Path) -> Option<u64> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    for fd in fds.flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        let text = target.to_string_lossy();
        if text.starts_with(&*dir.to_string_lossy()) && text.ends_with("(deleted)") {
            return std::fs::metadata(fd.path()).ok().map(|m| m.len());
        }
    }
    None
}

/// The size of a named temporary file of tresor's in `dir`.
fn named_temp_in(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(".tresor-tmp-"))
        .and_then(|e| e.metadata().ok())
        .map(|m| m.len())
}

/// Starts `decrypt -o out` on the first 3 MiB of `sealed` fed through a
/// pipe that stays open, waits until more than 1 MiB of verified plaintext
/// sits in its temporary file, and sends `signal`; returns how it ended.
fn interrupt_decrypt(
    t: &Tresor,
    key: &Path,
    sealed: &[u8],
    named: bool,
    signal: libc::c_int,
) -> std::process::ExitStatus {
    let mut cmd = clean_command(BIN);
    cmd.args(["decrypt", "-i", &p(key), "-o", "out"])
        .current_dir(t.dir.path())
        .env("HOME", t.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if named {
        cmd.env("TRESOR_TEST_NAMED_TEMP", "1");
    }
    // A harness started in the background of a non-interactive shell runs
    // with SIGINT and SIGQUIT ignored, which a child inherits (and tresor,
    // like any Unix tool, then leaves ignored): the signal this test sends
    // must reach the default action.
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&sealed[..3 << 20]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Either kind (a build that makes the other kind fails below).
        let size =
            named_temp_in(t.dir.path()).or_else(|| unnamed_file_of(child.id(), t.dir.path()));
        if size.is_some_and(|s| s >= 1 << 20) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no plaintext was written (named: {named})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: our own child's id.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
    let status = child.wait().unwrap();
    drop(stdin);
    status
}

#[test]
fn an_interrupted_decrypt_leaves_no_plaintext() {
    use std::os::unix::process::ExitStatusExt;
    let t = Tresor::new();
    let (key, age_file, _) = sealed(&t, 8 << 20);
    let bytes = std::fs::read(&age_file).unwrap();
    let before = names(t.dir.path());
    // Unnamed (O_TMPFILE) and named temporary files, each signal.
    for named in [false, true] {
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            let status = interrupt_decrypt(&t, &key, &bytes, named, signal);
            assert_eq!(status.signal(), Some(signal), "named {named}: {status:?}");
            assert_eq!(
                names(t.dir.path()),
                before,
                "named {named}, signal {signal}"
            );
        }
    }
    // SIGKILL leaves no chance to clean up a named file: the next write into
    // that folder removes it (the process that made it is gone).
    let status = interrupt_decrypt(&t, &key, &bytes, true, libc::SIGKILL);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let left: Vec<String> = names(t.dir.path())
        .into_iter()
        .filter(|n| n.starts_with(".tresor-tmp-"))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    // And one planted as by an older run of a process that is gone.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let planted = format!(".tresor-tmp-{gone_pid}-00112233aabb");
    t.write(&planted, b"plaintext prefix of a previous run");
    // Not ours (another pattern) or a live process's: left alone.
    let foreign = t.write(".tresor-tmp-keep", b"not tresor's pattern");
    t.run(&["decrypt", "-i", &p(&key), "-o", "out", &p(&age_file)])
        .ok();
    let mut want = before.clone();
    want.push(".tresor-tmp-keep".into());
    want.push("out".into());
    want.sort();
    assert_eq!(names(t.dir.path()), want);
    assert!(foreign.exists());
}

/// `strace` of a run: (the lines, the trace file removed).
fn strace(t: &Tresor, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let trace = t.path("strace.txt");
    let mut cmd = clean_command("strace");
    cmd.args([
        "-f",
        "-qq",
        "-e",
        "trace=openat,linkat,renameat,renameat2,fsync",
        "-o",
    ])
    .arg(&trace)
    .arg(BIN)
    .args(args)
    .current_dir(t.dir.path())
    .env("HOME", t.dir.path())
    .env("TRESOR_VAULT", &t.vault)
    .env("XDG_DATA_HOME", t.dir.path().join("xdg"))
    .env("XDG_CONFIG_HOME", t.dir.path().join("xdg-config"))
    .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .expect("strace is needed for this test (apt-get install strace; scripts/test does)");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    std::fs::remove_file(&trace).unwrap();
    text.lines().map(str::to_string).collect()
}

/// Asserts that the trace puts `name` into `dir` (a link or rename) and
/// then fsyncs a descriptor open on `dir`.
fn assert_dir_synced_after(lines: &[String], dir: &Path, name: &str) {
    let dir_open = format!("\"{}\", O_RDONLY|O_CLOEXEC|O_DIRECTORY) = ", p(dir));
    let fds: Vec<String> = lines
        .iter()
        .filter_map(|l| l.split_once(&dir_open).map(|(_, fd)| fd.trim().to_string()))
        .collect();
    assert!(
        !fds.is_empty(),
        "the folder was never opened:\n{}",
        lines.join("\n")
    );
    let placed = lines
        .iter()
        .rposition(|l| {
            (l.contains("linkat(") || l.contains("renameat")) && l.contains(&format!("\"{name}\""))
        })
        .unwrap_or_else(|| panic!("{name} was never placed:\n{}", lines.join("\n")));
    let synced = lines[placed..]
        .iter()
        .any(|l| fds.iter().any(|fd| l.contains(&format!("fsync({fd})"))));
    assert!(
        synced,
        "no fsync of {} after {name}:\n{}",
        p(dir),
        lines.join("\n")
    );
}

#[test]
fn key_files_and_outputs_sync_their_folder() {
    let t = Tresor::new();
    std::fs::create_dir(t.path("keys")).unwrap();
    let key = t.path("keys/vault.key");
    // Before the fix, `init` renamed the key file into place and never
    // synced the folder: a power loss could lose the key but keep the vault.
    let lines = strace(&t, &["--key-file", &p(&key), "init", "--no-recovery"], &[]);
    assert!(key.is_file());
    assert_dir_synced_after(&lines, &t.path("keys"), "vault.key");

    t.cmd(&["set", "app/token"])
        .env("TRESOR_KEY_FILE", &key)
        .stdin(b"v")
        .run()
        .ok();
    std::fs::create_dir(t.path("outs")).unwrap();
    let out = t.path("outs/token");
    let key_s = p(&key);
    let lines = strace(
        &t,
        &["get", "app/token", "--out", &p(&out)],
        &[("TRESOR_KEY_FILE", &key_s)],
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"v");
    assert_dir_synced_after(&lines, &t.path("outs"), "token");
    // The named fallback too.
    let lines = strace(
        &t,
        &["get", "app/token", "--out", &p(&out)],
        &[("TRESOR_KEY_FILE", &key_s), ("TRESOR_TEST_NAMED_TEMP", "1")],
    );
    assert_dir_synced_after(&lines, &t.path("outs"), "token");
    assert_eq!(names(&t.path("outs")), ["token"]);
}
