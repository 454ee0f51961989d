//! Shared helpers for the CLI tests: every test gets its own temporary
//! folder with the vault inside it, a clean environment (no inherited
//! `TRESOR_*`, `KEYSTORE_PASSWORD` or `SECRETS_STORE_PASSWORD`), no
//! controlling terminal (so nothing ever waits on a prompt), and a runner that
//! records every command's output for later scanning.

#![allow(dead_code)]

use std::cell::RefCell;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

pub mod pty;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tresor");

/// Fast Argon2id costs for password slots (the defaults take a while).
pub const FAST_KDF: [&str; 6] = ["--kdf-memory", "8", "--kdf-passes", "1", "--kdf-lanes", "1"];

/// Whether an inherited variable could unlock a vault or redirect tresor.
pub fn is_tresor_var(key: &OsStr) -> bool {
    key.to_str().is_some_and(|k| {
        k.starts_with("TRESOR_") || k == "KEYSTORE_PASSWORD" || k == "SECRETS_STORE_PASSWORD"
    })
}

/// A command for `program` with every tresor-related variable removed, in
/// a new session (no controlling terminal: a prompt can never block).
pub fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if is_tresor_var(&key) {
            cmd.env_remove(&key);
        }
    }
    for key in [
        "TRESOR_VAULT",
        "TRESOR_KEY_FILE",
        "TRESOR_KEY",
        "TRESOR_PASSWORD",
        "TRESOR_NEW_PASSWORD",
        "TRESOR_RECOVERY_KEY",
        "TRESOR_LOCK_TIMEOUT",
        "KEYSTORE_PASSWORD",
        "SECRETS_STORE_PASSWORD",
    ] {
        cmd.env_remove(key);
    }
    // SAFETY: setsid is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd
}

/// What one run of the binary produced.
#[derive(Clone, Debug)]
pub struct Out {
    /// The arguments, for messages.
    pub args: Vec<String>,
    /// The exit code.
    pub code: i32,
    /// Raw stdout.
    pub stdout: Vec<u8>,
    /// Raw stderr.
    pub stderr: Vec<u8>,
}

impl Out {
    fn describe(&self) -> String {
        format!(
            "tresor {:?}\nexit code: {}\nstdout: {}\nstderr: {}",
            self.args,
            self.code,
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        )
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.code(0)
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n{}", self.describe());
        self
    }

    /// Stdout as text (lossy).
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text (lossy).
    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Asserts that stderr contains each of `needles`.
    #[track_caller]
    pub fn err_has(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(
                self.err().contains(n),
                "stderr lacks {n:?}\n{}",
                self.describe()
            );
        }
        self
    }

    /// Stdout parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.describe()))
    }

    /// Stdout parsed as JSON lines.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.out()
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("line {l:?} is not JSON ({e})\n{}", self.describe()))
            })
            .collect()
    }

    /// Stderr parsed as the `--json` error object.
    #[track_caller]
    pub fn err_json(&self) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_slice(&self.stderr)
            .unwrap_or_else(|e| panic!("stderr is not JSON ({e})\n{}", self.describe()));
        assert_eq!(
            v["error"]["exit_code"].as_i64(),
            Some(i64::from(self.code)),
            "{}",
            self.describe()
        );
        v
    }
}

/// A private temporary folder holding a vault, and a runner for the CLI.
pub struct Tresor {
    /// The folder; removed on drop.
    pub dir: TempDir,
    /// `<dir>/vault/vault.db`.
    pub vault: PathBuf,
    /// `<dir>/key` (created by [`Tresor::with_key`]).
    pub key: PathBuf,
    /// Variables every run gets (e.g. the credential).
    defaults: Vec<(String, OsString)>,
    /// Every run so far.
    pub log: RefCell<Vec<Out>>,
}

impl Default for Tresor {
    fn default() -> Self {
        Self::new()
    }
}

impl Tresor {
    /// A fresh folder without a vault and without a default credential.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let vault = dir.path().join("vault").join("vault.db");
        let key = dir.path().join("key");
        Self {
            dir,
            vault,
            key,
            defaults: Vec::new(),
            log: RefCell::new(Vec::new()),
        }
    }

    /// A fresh vault unlocked by a key file (`TRESOR_KEY_FILE` set for
    /// every later run), without a recovery slot.
    pub fn with_key() -> Self {
        let mut t = Self::new();
        let key = t.key.display().to_string();
        t.run(&["--key-file", &key, "init", "--no-recovery"]).ok();
        assert!(t.key.is_file(), "init did not write the key file");
        t.set_default("TRESOR_KEY_FILE", &key);
        t
    }

    /// A fresh vault with a (cheap) password slot; `TRESOR_PASSWORD` set for
    /// every later run. The password may be weak (`--weak-password`): tests
    /// use short ones.
    pub fn with_password(password: &str) -> Self {
        let mut t = Self::new();
        let mut args = vec!["init", "--password", "--no-recovery", "--weak-password"];
        args.extend(FAST_KDF);
        t.cmd(&args).env("TRESOR_PASSWORD", password).run().ok();
        t.set_default("TRESOR_PASSWORD", password);
        t
    }

    /// Sets a variable for every later run.
    pub fn set_default(&mut self, key: &str, value: impl AsRef<OsStr>) {
        self.defaults.retain(|(k, _)| k != key);
        self.defaults
            .push((key.to_string(), value.as_ref().to_os_string()));
    }

    /// Removes a default variable.
    pub fn clear_default(&mut self, key: &str) {
        self.defaults.retain(|(k, _)| k != key);
    }

    /// A path inside the temp folder.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file inside the temp folder (creating parents) and returns
    /// its path.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Writes a key file inside the temp folder, 0600 as a key file must
    /// be (tresor refuses one that group or others can read).
    pub fn write_key(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.write(rel, bytes);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    /// A runner for `tresor ARGS` in this folder.
    pub fn cmd<S: AsRef<OsStr>>(&self, args: &[S]) -> Run<'_> {
        self.cmd_via(&[], args)
    }

    /// A runner for `WRAPPER… tresor ARGS` (e.g. `keyctl session -`), with
    /// the same folder and environment as [`Tresor::cmd`].
    pub fn cmd_via<S: AsRef<OsStr>>(&self, wrapper: &[&str], args: &[S]) -> Run<'_> {
        let mut cmd = match wrapper.split_first() {
            None => clean_command(BIN),
            Some((program, rest)) => {
                let mut c = clean_command(program);
                c.args(rest).arg(BIN);
                c
            }
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("TRESOR_VAULT", &self.vault)
            .env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.dir.path().join("xdg"))
            // No developer's own tresor.toml.
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg-config"));
        for (k, v) in &self.defaults {
            cmd.env(k, v);
        }
        Run {
            t: self,
            cmd,
            stdin: None,
            args: args
                .iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect(),
        }
    }

    /// Runs `tresor ARGS` with stdin at end of file.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Out {
        self.cmd(args).run()
    }

    /// Runs `tresor ARGS` with `stdin` piped in.
    pub fn run_in<S: AsRef<OsStr>>(&self, args: &[S], stdin: &[u8]) -> Out {
        self.cmd(args).stdin(stdin).run()
    }

    /// Audit entries as JSON (`audit log --json`).
    pub fn audit(&self) -> Vec<serde_json::Value> {
        self.run(&["audit", "log", "--json"]).ok().json_lines()
    }

    /// Every regular file under the temp folder, recursively.
    pub fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let p = entry.unwrap().path();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                if meta.is_dir() {
                    walk(&p, out);
                } else if meta.is_file() {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out.sort();
        out
    }
}

/// One pending run of the binary.
pub struct Run<'a> {
    t: &'a Tresor,
    cmd: Command,
    stdin: Option<Vec<u8>>,
    args: Vec<String>,
}

impl Run<'_> {
    /// The command itself, for a test that wires its pipes by hand.
    pub fn into_command(self) -> Command {
        self.cmd
    }

    /// Pipes `bytes` to stdin (then closes it).
    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = Some(bytes.to_vec());
        self
    }

    /// Sets a variable for this run.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Removes a variable for this run.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.cmd.env_remove(key);
        self
    }

    /// Runs to completion, records the output, and checks that the process
    /// did not panic.
    pub fn run(mut self) -> Out {
        self.cmd
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("spawn tresor");
        let writer = child.stdin.take().map(|mut pipe| {
            let bytes = self.stdin.take().unwrap_or_default();
            std::thread::spawn(move || {
                // The process may exit without reading everything.
                let _ = pipe.write_all(&bytes);
            })
        });
        let output = child.wait_with_output().expect("wait for tresor");
        if let Some(w) = writer {
            w.join().unwrap();
        }
        let out = Out {
            args: self.args,
            code: output.status.code().unwrap_or(-1),
            stdout: output.stdout,
            stderr: output.stderr,
        };
        assert!(
            !out.err().contains("panicked") && out.code != 101 && out.code >= 0,
            "tresor panicked or was killed\n{}",
            out.describe()
        );
        self.t.log.borrow_mut().push(out.clone());
        out
    }
}

/// The audit entries (as `audit log --json` prints them) of one operation.
pub fn entries_of<'a>(
    entries: &'a [serde_json::Value],
    operation: &str,
) -> Vec<&'a serde_json::Value> {
    entries
        .iter()
        .filter(|e| e["operation"] == operation)
        .collect()
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Deterministic filler bytes (xorshift64*).
pub fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Standard padded base64.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64 (as `get --json` prints `value_base64`).
pub fn unbase64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("valid base64")
}
