//! Wrong credentials are refused without touching the vault's files, and
//! paths that are not a usable vault give typed errors, never panics.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use tresor_core::{Error, PutOptions, Selector};
use tresor_crypto::slot::{Credential, RecoveryKey, new_key_file_text};
use tresor_vault::{FORMAT_VERSION, LockedVault, OpenOptions, Vault};
use zeroize::Zeroizing;

const PASSWORD: &str = "correct horse battery staple";

/// The env var that turns `read_only_child` from a no-op into the check.
const CHILD_ENV: &str = "TRESOR_TEST_READ_ONLY_CHILD";

fn password(p: &str) -> Credential {
    Credential::password(Zeroizing::new(p.into()))
}

/// The vault file and its WAL, by content; a missing WAL is `None`.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    db: Vec<u8>,
    wal: Option<Vec<u8>>,
}

fn snapshot(path: &Path) -> Snapshot {
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    Snapshot {
        db: fs::read(path).unwrap(),
        wal: fs::read(&wal).ok(),
    }
}

fn assert_same(before: &Snapshot, after: &Snapshot, what: &str) {
    assert!(
        before.db == after.db,
        "{what}: vault.db changed ({} bytes before, {} after)",
        before.db.len(),
        after.db.len()
    );
    assert!(
        before.wal == after.wal,
        "{what}: vault.db-wal changed ({:?} bytes before, {:?} after)",
        before.wal.as_ref().map(Vec::len),
        after.wal.as_ref().map(Vec::len)
    );
}

fn open(path: &Path) -> tresor_core::Result<LockedVault> {
    LockedVault::open(path, &OpenOptions::default())
}

/// A vault with a key-file slot, a recovery slot, a password slot and two
/// secrets; returns its path and recovery key, closed.
fn populated_vault(dir: &Path) -> (PathBuf, RecoveryKey) {
    let path = dir.join("vault.db");
    let created = Vault::create(&path, &key(), &create_options()).unwrap();
    let recovery = created.recovery.expect("a recovery key was asked for");
    let mut vault = created.vault;
    vault
        .add_slot(&password(PASSWORD), &fast_password_params(), Some("pw"))
        .unwrap();
    for (n, v) in [("db/password", &b"hunter2"[..]), ("api/token", b"tok-1")] {
        vault
            .put(&name(n), &value(v), &PutOptions::default())
            .unwrap();
    }
    drop(vault);
    (path, recovery)
}

fn assert_auth(result: tresor_core::Result<Vault>, what: &str) {
    match result {
        Err(Error::Auth { reason, .. }) => {
            assert!(!reason.is_empty(), "{what}: empty reason");
        }
        Err(e) => panic!("{what}: expected an Auth error, got {} ({e})", e.kind()),
        Ok(_) => panic!("{what}: the vault unlocked"),
    }
}

fn wrong_credentials() -> Vec<(&'static str, Credential)> {
    vec![
        ("wrong password", password("correct horse battery stapler")),
        ("empty password", password("")),
        (
            "wrong key file",
            Credential::key_material(new_key_file_text().as_bytes()).unwrap(),
        ),
        ("wrong recovery key", RecoveryKey::generate().credential()),
    ]
}

fn right_credentials_still_work(path: &Path, recovery: &RecoveryKey) {
    for (what, credential) in [
        ("password", password(PASSWORD)),
        ("key file", key()),
        ("recovery key", recovery.credential()),
    ] {
        let mut vault = open(path)
            .unwrap()
            .unlock(&credential)
            .unwrap_or_else(|e| panic!("the right {what} failed: {e}"));
        let got = vault
            .get(&name("db/password"), Selector::default())
            .unwrap();
        assert_eq!(got.value.expose_secret(), b"hunter2", "read with {what}");
        assert_eq!(got.version, 1);
    }
}

#[test]
fn wrong_credentials_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, recovery) = populated_vault(dir.path());
    let before = snapshot(&path);
    assert!(before.wal.is_none(), "a closed vault leaves no WAL behind");
    for (what, credential) in wrong_credentials() {
        assert_auth(open(&path).unwrap().unlock(&credential), what);
        assert_same(&before, &snapshot(&path), what);
    }
    right_credentials_still_work(&path, &recovery);
}

#[test]
fn wrong_credentials_change_nothing_while_another_process_has_a_wal() {
    let dir = tempfile::tempdir().unwrap();
    let (path, recovery) = populated_vault(dir.path());
    // Another handle keeps the vault open with uncheckpointed writes.
    let mut holder = reopen(&path);
    for i in 0..5u8 {
        holder
            .put(&name("db/password"), &value(&[i]), &PutOptions::default())
            .unwrap();
    }
    let before = snapshot(&path);
    let wal_len = before.wal.as_ref().map_or(0, Vec::len);
    assert!(wal_len > 0, "the holder's writes sit in the WAL");
    for (what, credential) in wrong_credentials() {
        assert_auth(open(&path).unwrap().unlock(&credential), what);
        assert_same(&before, &snapshot(&path), what);
    }
    // The same with a one-shot (CLI-style) open that skips the checkpoint.
    let cli = OpenOptions {
        no_checkpoint_on_close: true,
        ..OpenOptions::default()
    };
    for (what, credential) in wrong_credentials() {
        assert_auth(
            LockedVault::open(&path, &cli).unwrap().unlock(&credential),
            what,
        );
        assert_same(&before, &snapshot(&path), what);
    }
    drop(holder);
    let mut vault = reopen(&path);
    let got = vault
        .get(&name("db/password"), Selector::default())
        .unwrap();
    assert_eq!(got.version, 6);
    assert_eq!(got.value.expose_secret(), &[4]);
    drop(vault);
    right_credentials_still_work_at(&path, &recovery);
}

fn right_credentials_still_work_at(path: &Path, recovery: &RecoveryKey) {
    for credential in [password(PASSWORD), key(), recovery.credential()] {
        open(path).unwrap().unlock(&credential).unwrap();
    }
}

#[test]
fn a_credential_kind_without_a_slot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, vault) = new_vault(dir.path());
    drop(vault);
    let before = snapshot(&path);
    assert_auth(
        open(&path).unwrap().unlock(&password(PASSWORD)),
        "password on a vault without a password slot",
    );
    assert_same(&before, &snapshot(&path), "no password slot");
}

/// Opens, unlocks, reads and verifies; the first error, wherever it comes.
fn open_unlock_read(path: &Path) -> tresor_core::Result<Vault> {
    let mut vault = open(path)?.unlock(&key())?;
    vault.get(&name("db/password"), Selector::default())?;
    vault.verify()?;
    Ok(vault)
}

/// The error must be one of the typed families a user can act on; an I/O or
/// availability error must name the file.
fn assert_typed(result: tresor_core::Result<Vault>, path: &Path, what: &str) -> Error {
    let e = match result {
        Ok(_) => panic!("{what}: opened as a vault"),
        Err(e) => e,
    };
    assert!(
        matches!(
            e,
            Error::Io { .. }
                | Error::Unavailable { .. }
                | Error::NoVault { .. }
                | Error::Integrity { .. }
        ),
        "{what}: expected Io, Unavailable, NoVault or Integrity, got {} ({e})",
        e.kind()
    );
    if matches!(
        e,
        Error::Io { .. } | Error::Unavailable { .. } | Error::NoVault { .. }
    ) {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            e.to_string().contains(&file),
            "{what}: the message does not name {file}: {e}"
        );
    }
    println!("{what}: {} error: {e}", e.kind());
    e
}

#[test]
fn a_directory_is_not_a_vault() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    fs::create_dir(&path).unwrap();
    let e = assert_typed(open_unlock_read(&path), &path, "a directory");
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert!(e.to_string().contains("directory"), "{e}");
    assert!(
        fs::read_dir(&path).unwrap().next().is_none(),
        "nothing was created in it"
    );
}

#[test]
fn a_missing_vault_is_unavailable_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let e = assert_typed(open_unlock_read(&path), &path, "a missing file");
    assert!(matches!(e, Error::NoVault { .. }), "{e}");
    assert!(!path.exists(), "opening created the file");
    assert!(fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn an_empty_file_is_not_a_vault_and_stays_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    fs::write(&path, b"").unwrap();
    let e = assert_typed(open_unlock_read(&path), &path, "an empty file");
    assert!(matches!(e, Error::Integrity { .. }), "{e}");
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        0,
        "the empty file was written to"
    );
}

#[test]
fn a_truncated_vault_gives_an_integrity_error() {
    let dir = tempfile::tempdir().unwrap();
    let (real, _) = populated_vault(dir.path());
    let bytes = fs::read(&real).unwrap();
    assert!(bytes.len() > 4096, "the real vault spans several pages");
    for len in [
        1000usize,
        100,
        4096,
        4096 + 1000,
        bytes.len() - 4096,
        // The last byte that is not zero, and all after it: SQLite fills a
        // short read with zeros, so cutting a last byte that was zero (one
        // run in 256, where it ends a random MAC) gives back the same file.
        bytes.iter().rposition(|&b| b != 0).unwrap(),
    ] {
        let path = dir.path().join(format!("cut-{len}.db"));
        fs::write(&path, &bytes[..len]).unwrap();
        let e = assert_typed(
            open_unlock_read(&path),
            &path,
            &format!("the first {len} bytes of a vault"),
        );
        assert!(
            matches!(e, Error::Integrity { .. } | Error::Io { .. }),
            "{len}: {e}"
        );
    }
}

#[test]
fn random_bytes_are_not_a_vault() {
    let dir = tempfile::tempdir().unwrap();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for (i, len) in [1usize, 99, 100, 512, 4096, 65536].into_iter().enumerate() {
        let noise: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let path = dir.path().join(format!("noise-{i}.db"));
        fs::write(&path, &noise).unwrap();
        let e = assert_typed(
            open_unlock_read(&path),
            &path,
            &format!("{len} random bytes"),
        );
        assert!(
            matches!(e, Error::Integrity { .. }),
            "{len} random bytes: {e}"
        );
        assert_eq!(
            fs::read(&path).unwrap(),
            noise,
            "{len} random bytes were rewritten"
        );
    }
    // A real SQLite database that is not a vault.
    let path = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(conn);
    let e = assert_typed(open_unlock_read(&path), &path, "another SQLite database");
    assert!(matches!(e, Error::Integrity { .. }), "{e}");
}

#[test]
fn a_newer_format_version_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = populated_vault(dir.path());
    let newer = FORMAT_VERSION + 1;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let changed = conn
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'format_version'",
            [&newer.to_be_bytes()[..]],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let before = snapshot(&path);
    let e = match open(&path) {
        Ok(_) => panic!("a format {newer} vault was opened"),
        Err(e) => e,
    };
    let msg = e.to_string();
    assert!(msg.contains(&format!("format {newer}")), "{msg}");
    assert!(msg.contains(&format!("format {FORMAT_VERSION}")), "{msg}");
    assert!(
        matches!(e, Error::UnsupportedFormat { .. }),
        "{}: {msg}",
        e.kind()
    );
    assert_same(&before, &snapshot(&path), "refused newer format");
}

// ---------------------------------------------------------------- read-only

/// What a read-only vault gives: a typed error (opening, unlocking or
/// writing), never a panic, and the file is unchanged.
fn check_read_only(path: &Path) {
    let before = fs::read(path).unwrap();
    let mut stage = "open";
    let result = (|| -> tresor_core::Result<()> {
        let locked = open(path)?;
        stage = "unlock";
        let mut vault = locked.unlock(&key())?;
        stage = "get (which appends a read audit entry)";
        let got = vault.get(&name("db/password"), Selector::default())?;
        assert_eq!(got.value.expose_secret(), b"hunter2");
        stage = "put";
        vault.put(&name("db/password"), &value(b"new"), &PutOptions::default())?;
        Ok(())
    })();
    match result {
        Ok(()) => panic!("a write to a read-only vault succeeded"),
        Err(e) => {
            assert!(
                matches!(
                    e,
                    Error::Io { .. } | Error::Unavailable { .. } | Error::Integrity { .. }
                ),
                "read-only vault, {stage}: expected Io, Unavailable or Integrity, got {} ({e})",
                e.kind()
            );
            assert!(e.to_string().contains("vault.db"), "{e}");
            println!("read-only vault fails at {stage}: {} error: {e}", e.kind());
        }
    }
    assert!(
        fs::read(path).unwrap() == before,
        "the read-only file changed"
    );
    println!("READ-ONLY CHECK DONE");
}

#[test]
fn read_only_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    assert_ne!(
        unsafe { libc::geteuid() },
        0,
        "the child must not run as root"
    );
    check_read_only(Path::new(&path));
}

#[test]
fn a_read_only_vault_gives_a_typed_error() {
    const NOBODY: u32 = 65534;
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("ro");
    fs::create_dir(&dir).unwrap();
    let (path, _) = populated_vault(&dir);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        // Root ignores permissions: hand the files to `nobody` and run the
        // check in a child process that drops to it.
        std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
        std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o500)).unwrap();
    if root {
        use std::os::unix::process::CommandExt;
        // The test binary usually lives under root's home (0700), which
        // `nobody` cannot traverse: run a private, readable copy instead.
        let exe = tmp.path().join("read-only-child");
        fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new(&exe)
            .args([
                "--exact",
                "read_only_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("READ-ONLY CHECK DONE"),
            "the read-only check as uid {NOBODY} failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
        print!("{stdout}");
    } else {
        check_read_only(&path);
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
}
