//! Process hygiene: a running `tresor` has core dumps off (soft and hard
//! limit 0) and is not dumpable (`PR_SET_DUMPABLE` 0), so no crash and no
//! other process of the same user can copy secrets out of it.
//!
//! How dumpability is observed: the kernel makes the `/proc/PID/*` files of
//! a non-dumpable process owned by root instead of the process's user
//! (`task_dump_owner`). That only shows when the process does not run as
//! root, so when the tests run as root the processes are started as
//! `nobody` (uid/gid 65534). A control process (`cat`) started the same way
//! shows that a dumpable process's files do carry its uid, and that the core
//! limit the children start with is not 0, so each check can fail.

mod common;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `nobody` / `nogroup` on Linux distributions.
const NOBODY: u32 = 65534;

/// Where and as whom the processes run.
struct Sandbox {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    bin: PathBuf,
    /// Some((uid, gid)) when the children switch user (tests run as root).
    switch: Option<(u32, u32)>,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        // SAFETY: getuid cannot fail.
        let root = unsafe { libc::getuid() } == 0;
        if !root {
            return Self {
                _dir: dir,
                dir: path,
                bin: PathBuf::from(BIN),
                switch: None,
            };
        }
        // The child must be able to read its binary: an unreadable binary
        // makes exec mark the process non-dumpable by itself, which would
        // hide a missing harden_process(). So run a private, readable copy.
        let bin = path.join("tresor");
        std::fs::copy(BIN, &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        chown(&path, NOBODY);
        chown(&bin, NOBODY);
        Self {
            _dir: dir,
            dir: path,
            bin,
            switch: Some((NOBODY, NOBODY)),
        }
    }

    /// The uid the children run as.
    fn uid(&self) -> u32 {
        match self.switch {
            Some((uid, _)) => uid,
            // SAFETY: getuid cannot fail.
            None => unsafe { libc::getuid() },
        }
    }

    /// A command for `program` in the sandbox: clean environment, core
    /// dumps allowed as far as the limits permit, and the target user.
    fn command(&self, program: impl Into<OsString>) -> Command {
        let mut cmd = clean_command(program.into());
        cmd.current_dir(&self.dir)
            .env("HOME", &self.dir)
            .env("TRESOR_VAULT", self.dir.join("vault.db"))
            .env("TRESOR_KEY_FILE", self.dir.join("key"));
        let switch = self.switch;
        // SAFETY: only async-signal-safe system calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let mut lim = libc::rlimit {
                    rlim_cur: libc::RLIM_INFINITY,
                    rlim_max: libc::RLIM_INFINITY,
                };
                if libc::setrlimit(libc::RLIMIT_CORE, &lim) != 0 {
                    libc::getrlimit(libc::RLIMIT_CORE, &mut lim);
                    lim.rlim_cur = lim.rlim_max;
                    libc::setrlimit(libc::RLIMIT_CORE, &lim);
                }
                if let Some((uid, gid)) = switch
                    && (libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0)
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    fn cannot_start(&self, program: &Path, e: std::io::Error) -> ! {
        panic!(
            "cannot start {} as uid {} (switching user: {:?}): {e}",
            program.display(),
            self.uid(),
            self.switch
        )
    }

    /// Runs `tresor ARGS` to completion.
    fn tresor(&self, args: &[&str], stdin: &[u8]) -> std::process::Output {
        let mut child = self
            .command(&self.bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn_copied()
            .unwrap_or_else(|e| self.cannot_start(&self.bin, e));
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "tresor {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts `program ARGS` with stdin a pipe kept open, and waits until it
    /// blocks reading it.
    fn spawn_blocked(&self, program: &Path, args: &[&str]) -> Child {
        let child = self
            .command(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn_copied()
            .unwrap_or_else(|e| self.cannot_start(program, e));
        let comm: String = program
            .file_name()
            .unwrap()
            .to_string_lossy()
            .chars()
            .take(15)
            .collect();
        wait_until_sleeping(child.id(), &comm);
        child
    }
}

/// Spawning a program this test binary copied moments ago.
trait SpawnCopied {
    /// [`Command::spawn`], again while the file is "busy" (ETXTBSY): a
    /// child that another test thread forked while the copy was open for
    /// writing holds that descriptor until its own exec, and the kernel
    /// refuses to run a file open for writing.
    fn spawn_copied(&mut self) -> std::io::Result<Child>;
}

impl SpawnCopied for Command {
    fn spawn_copied(&mut self) -> std::io::Result<Child> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => return other,
            }
        }
    }
}

fn chown(path: &Path, id: u32) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), id, id) }, 0, "chown");
}

/// `/proc/PID/stat`: the command name and the state letter.
fn comm_and_state(pid: u32) -> Option<(String, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let state = stat[close + 1..].trim_start().chars().next()?;
    Some((comm, state))
}

/// Waits until `pid` has exec'd `comm` and sleeps (blocked on stdin: the
/// only place these programs sleep), seen twice in a row.
fn wait_until_sleeping(pid: u32, comm: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = 0;
    loop {
        match comm_and_state(pid) {
            Some((c, 'S')) if c == comm => seen += 1,
            _ => seen = 0,
        }
        if seen >= 2 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{comm} ({pid}) never blocked on stdin: {:?}",
            comm_and_state(pid)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The soft and hard core-size limits from `/proc/PID/limits`.
fn core_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("a core size line");
    let fields: Vec<&str> = line["Max core file size".len()..]
        .split_whitespace()
        .collect();
    (fields[0].to_string(), fields[1].to_string())
}

/// Owners of `/proc/PID/{status,environ}`.
fn proc_owners(pid: u32) -> Vec<u32> {
    ["status", "environ"]
        .iter()
        .map(|f| std::fs::metadata(format!("/proc/{pid}/{f}")).unwrap().uid())
        .collect()
}

/// The real uid from `/proc/PID/status`.
fn real_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn finish(mut child: Child, stdin: &[u8]) -> std::process::Output {
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

#[test]
fn a_running_tresor_is_undumpable_with_core_dumps_off() {
    let sb = Sandbox::new();
    let uid = sb.uid();
    assert_ne!(uid, 0, "the children must not run as root");
    sb.tresor(&["init", "--no-recovery"], b"");

    // Control: a plain process started the same way is dumpable (its /proc
    // files carry its uid) and may dump core.
    let cat = sb.spawn_blocked(Path::new("cat"), &[]);
    let cat_pid = cat.id();
    assert_eq!(real_uid(cat_pid), uid);
    let cat_owners = proc_owners(cat_pid);
    let cat_limits = core_limits(cat_pid);
    let out = finish(cat, b"");
    assert!(out.status.success());
    assert_eq!(
        cat_owners,
        [uid, uid],
        "a dumpable process's /proc files should belong to its user: the check cannot tell"
    );

    // tresor, blocked reading the value from stdin.
    let child = sb.spawn_blocked(&sb.bin, &["set", "hygiene/x"]);
    let pid = child.id();
    assert_eq!(real_uid(pid), uid);
    let owners = proc_owners(pid);
    let limits = core_limits(pid);
    let out = finish(child, b"hygiene-value");
    assert!(
        out.status.success(),
        "tresor set failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));

    assert_eq!(
        owners,
        [0, 0],
        "tresor is dumpable: its /proc files belong to uid {owners:?}, not root (PR_SET_DUMPABLE 0 missing)"
    );
    assert_eq!(
        limits,
        ("0".to_string(), "0".to_string()),
        "tresor may dump core (soft, hard)"
    );
    if cat_limits == ("0".to_string(), "0".to_string()) {
        eprintln!(
            "note: core dumps are off for every process here (hard limit 0); \
             only the dumpable check can fail"
        );
    } else {
        assert_ne!(cat_limits.0, "0", "the control's soft core limit");
    }

    // The process did its job once stdin closed.
    let got = sb.tresor(&["get", "hygiene/x"], b"");
    assert_eq!(got.stdout, b"hygiene-value");
}

/// A `tresor` started with its standard descriptors closed (`>&-`) points
/// them at `/dev/null` before it opens anything: the vault (or its WAL) can
/// never become the process's stdout or stderr, so a value printed by `get`
/// or a message on stderr never lands in a vault file. Without that, SQLite's
/// first `open` takes descriptor 1 or 2.
#[test]
fn closed_standard_descriptors_never_become_a_vault_file() {
    let t = Tresor::with_key();
    let value = b"closed-fd-canary-4f1d9a";
    t.run_in(&["set", "fd/canary"], value).ok();
    let script = r#"
        "$TRESOR" --vault "$VAULT" get fd/canary >&- 2>&-; echo "get $?"
        "$TRESOR" --vault "$VAULT" get fd/missing >&- 2>&-; echo "missing $?"
        "$TRESOR" --vault "$VAULT" get fd/canary <&- >&- 2>&-; echo "all closed $?"
    "#;
    let out = clean_command("bash")
        .args(["-c", script])
        .env("TRESOR", BIN)
        .env("VAULT", &t.vault)
        .env("TRESOR_KEY_FILE", &t.key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in ["get 0", "missing 1", "all closed 0"] {
        assert!(stdout.lines().any(|l| l == line), "{line}: {stdout}");
    }
    // Nothing was written into any file of the vault's folder...
    for file in t.files() {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !contains(&bytes, value),
            "{} holds the value",
            file.display()
        );
        assert!(
            !contains(&bytes, b"not found"),
            "{} holds an error message",
            file.display()
        );
    }
    // ...and the vault still opens, verifies and answers.
    t.run(&["verify"]).ok();
    assert_eq!(t.run(&["get", "fd/canary"]).ok().stdout, value);
}

/// Where the linker driver has GCC's static unwinder (Debian's gcc does),
/// the binary carries it and does not load `libgcc_s.so.1` (build.rs): one
/// shared object and its CPU-probing constructor fewer in every process.
/// A running `tresor` shows which objects it mapped.
#[test]
fn the_binary_does_not_load_libgcc_s_where_the_static_unwinder_exists() {
    let found = Command::new("cc")
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_absolute() && p.is_file());
    let Some(eh) = found else {
        panic!("cc does not know libgcc_eh.a: install gcc (Debian: gcc, libgcc-12-dev)");
    };
    let binary = std::fs::read(BIN).unwrap();
    assert!(
        !contains(&binary, b"libgcc_s.so.1"),
        "{BIN} names libgcc_s.so.1 although {} exists",
        eh.display()
    );
    // A process that stays alive long enough to read its maps: `set`
    // waits for its value on stdin.
    let t = Tresor::with_key();
    let child = clean_command(BIN)
        .args(["--vault"])
        .arg(&t.vault)
        .args(["--key-file"])
        .arg(&t.key)
        .args(["set", "maps/probe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Blocked on stdin: past the dynamic loader, every object mapped.
    wait_until_sleeping(child.id(), "tresor");
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", child.id())).unwrap();
    let out = finish(child, b"v");
    assert!(out.status.success(), "{out:?}");
    assert!(maps.contains("libc.so"), "{maps}");
    assert!(!maps.contains("libgcc_s"), "{maps}");
}
