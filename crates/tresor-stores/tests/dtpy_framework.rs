//! The `dtpy` store against the real dtPyAppFramework (PyPI 4.4.1): keystores
//! made by the framework's own `LocalSecretStore` are read by tresor, and
//! tresor's writes are read back by the framework. Needs `TRESOR_TEST_PYTHON`
//! (the venv of `scripts/python-venv`); fails without it.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use tresor_core::{DeleteMode, Error, PutOptions, SecretName, SecretValue, Selector, Store};
use tresor_stores::dtpy::{Dtpy, DtpyOptions};
use zeroize::Zeroizing;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dtpy/framework.py");

fn python() -> String {
    std::env::var("TRESOR_TEST_PYTHON").expect(
        "TRESOR_TEST_PYTHON is not set: run `eval \"$(scripts/python-venv)\"` first \
         (the venv with dtpyappframework 4.4.1)",
    )
}

/// Runs framework.py; `password` None: the framework's machine password.
fn framework(cmd: &str, dir: &Path, password: Option<&str>, stdin: &str) -> (i32, Value) {
    let mut c = Command::new(python());
    c.arg(SCRIPT).arg(cmd).arg(dir).arg("myapp");
    c.env_remove("KEYSTORE_PASSWORD")
        .env_remove("CONTAINER_MODE");
    if let Some(p) = password {
        c.env("KEYSTORE_PASSWORD", p);
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    if code != 0 && code != 3 {
        panic!(
            "framework.py {cmd} failed ({code}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (code, value)
}

fn store(dir: &Path, password: Option<&str>, all: bool) -> Dtpy {
    Dtpy::open(DtpyOptions {
        all,
        ..DtpyOptions::new(
            dir.join("myapp.v3keystore"),
            password.map(|p| Zeroizing::new(p.to_string())),
        )
    })
    .unwrap()
}

fn get(s: &mut Dtpy, name: &str) -> Vec<u8> {
    s.get(&SecretName::new(name).unwrap(), Selector::default())
        .unwrap()
        .value
        .expose_secret()
        .to_vec()
}

fn names(s: &mut Dtpy) -> Vec<String> {
    s.list("")
        .unwrap()
        .into_iter()
        .map(|i| i.name.to_string())
        .collect()
}

#[test]
fn a_framework_keystore_reads_in_tresor_and_tresor_writes_read_in_the_framework() {
    let dir = tempfile::tempdir().unwrap();
    let seed = json!({
        "secrets": {"db_password": "hunter2-Ünïcødé-密码-🔑", "api.key": "k-1", "smtp/user": "u@example.com"},
        "settings": {"app.timeout": 30, "feature.on": true},
    });
    framework("make", dir.path(), Some("Pässw0rd"), &seed.to_string());

    let mut s = store(dir.path(), Some("Pässw0rd"), false);
    assert_eq!(
        get(&mut s, "db_password"),
        "hunter2-Ünïcødé-密码-🔑".as_bytes()
    );
    assert_eq!(get(&mut s, "smtp/user"), b"u@example.com");
    // Settings: readable by name (numbers and booleans as their JSON text),
    // listed only with `all`; the INDEX entry is never a secret.
    assert_eq!(get(&mut s, "app.timeout"), b"30");
    assert_eq!(get(&mut s, "feature.on"), b"true");
    assert_eq!(names(&mut s), ["api.key", "db_password", "smtp/user"]);
    let index = SecretName::new("User_Local_Store.INDEX").unwrap();
    assert!(matches!(
        s.get(&index, Selector::default()),
        Err(Error::NotFound { .. })
    ));
    let mut all = store(dir.path(), Some("Pässw0rd"), true);
    assert_eq!(
        names(&mut all),
        [
            "api.key",
            "app.timeout",
            "db_password",
            "feature.on",
            "smtp/user"
        ]
    );

    // tresor writes: a new secret, a changed one, a deleted one.
    let put = |s: &mut Dtpy, n: &str, v: &[u8]| {
        s.put(
            &SecretName::new(n).unwrap(),
            &SecretValue::copy_from(v),
            &PutOptions::default(),
        )
        .unwrap();
    };
    put(&mut s, "new/token", "tök-🔑".as_bytes());
    put(&mut s, "api.key", b"k-2");
    s.delete(&SecretName::new("smtp/user").unwrap(), DeleteMode::Purge)
        .unwrap();

    let (code, read) = framework("read", dir.path(), Some("Pässw0rd"), "");
    assert_eq!(code, 0);
    assert_eq!(
        read["secrets"],
        json!({"db_password": "hunter2-Ünïcødé-密码-🔑", "api.key": "k-2", "new/token": "tök-🔑"})
    );
    assert_eq!(read["all"]["app.timeout"], json!(30));
    // No lock file or temporary file is left behind.
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["myapp.v3keystore"]);
}

#[test]
fn a_wrong_password_is_auth_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    framework(
        "make",
        dir.path(),
        Some("right"),
        &json!({"secrets": {"a": "1"}}).to_string(),
    );
    let path = dir.path().join("myapp.v3keystore");
    let before = std::fs::read(&path).unwrap();
    let mut s = store(dir.path(), Some("wrong"), false);
    let name = SecretName::new("a").unwrap();
    let e = s.get(&name, Selector::default()).unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    let e = s
        .put(&name, &SecretValue::copy_from(b"x"), &PutOptions::default())
        .unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // And tresor's own writes with the wrong password are refused by the
    // framework too.
    let (code, _) = framework("read", dir.path(), Some("wrong"), "");
    assert_eq!(code, 3);
}

#[test]
fn the_machine_password_opens_a_desktop_keystore_with_nothing_typed() {
    let dir = tempfile::tempdir().unwrap();
    framework(
        "make",
        dir.path(),
        None,
        &json!({"secrets": {"desk": "top"}}).to_string(),
    );
    let mut s = store(dir.path(), None, false);
    assert_eq!(get(&mut s, "desk"), b"top");
    s.put(
        &SecretName::new("more").unwrap(),
        &SecretValue::copy_from(b"m"),
        &PutOptions::default(),
    )
    .unwrap();
    let (_, read) = framework("read", dir.path(), None, "");
    assert_eq!(read["secrets"], json!({"desk": "top", "more": "m"}));
}

/// Holds the framework's lock (Python's `filelock` on `<file>.lock`, as the
/// framework takes it) for `secs` seconds: prints `locked` once it holds it,
/// and `releasing <time>` while still holding it, just before letting go.
const HOLD_LOCK: &str = r#"
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1] + ".lock")
with lock:
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    print("releasing", time.time(), flush=True)
"#;

#[test]
fn a_write_waits_for_the_frameworks_lock_held_by_python_then_writes() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    framework(
        "make",
        dir.path(),
        Some("lock-pw"),
        &json!({"secrets": {"db_password": "pw-1"}}).to_string(),
    );
    let keystore = dir.path().join("myapp.v3keystore");
    let mut holder = Command::new(python())
        .arg("-c")
        .arg(HOLD_LOCK)
        .arg(&keystore)
        .arg("1.5")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(holder.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "locked");

    // While Python holds the lock, tresor's write waits for it.
    let mut s = store(dir.path(), Some("lock-pw"), false);
    s.put(
        &SecretName::new("api/token").unwrap(),
        &SecretValue::copy_from(b"written-after-the-lock"),
        &PutOptions::default(),
    )
    .unwrap();
    let wrote_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let released = lines.next().unwrap().unwrap();
    let released_at: f64 = released
        .strip_prefix("releasing ")
        .expect("the holder released the lock")
        .parse()
        .unwrap();
    assert!(holder.wait().unwrap().success());
    assert!(
        wrote_at >= released_at,
        "tresor wrote at {wrote_at}, while the framework still held its lock ({released_at})"
    );

    // The write is complete and the framework reads it, INDEX included.
    let (code, read) = framework("read", dir.path(), Some("lock-pw"), "");
    assert_eq!(code, 0);
    assert_eq!(
        read["secrets"],
        json!({"db_password": "pw-1", "api/token": "written-after-the-lock"})
    );
}
