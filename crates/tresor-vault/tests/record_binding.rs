//! Records are bound to their owner (issue 8, L1): SQLite hands a purged
//! secret's row id to the next secret, so a version row copied from an old
//! file must not open as the new secret's value; likewise a deleted named
//! key's material must not come back under the key made again with its
//! name. And a format-1 vault (tests/fixtures/format1, made by the last
//! format-1 build) migrates on its first unlock with everything intact.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use rusqlite::{Connection, params};
use tresor_core::{DeleteMode, Error, Label, PutOptions, Selector};
use tresor_crypto::slot::Credential;
use tresor_vault::{AuditFilter, FORMAT_VERSION, KeyType, LockedVault, OpenOptions, Vault};

/// The sealed row of a version as stored: key id and body.
fn version_row(db: &Path, secret_id: i64, version: u64) -> (u32, Vec<u8>) {
    Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT key_id, body FROM versions WHERE secret_id = ?1 AND version = ?2",
            params![secret_id, version],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

fn secret_id(db: &Path) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row("SELECT id FROM secrets", [], |r| r.get(0))
        .unwrap()
}

fn copy_of(path: &Path, to: &str) -> PathBuf {
    let copy = path.with_file_name(to);
    fs::copy(path, &copy).unwrap();
    copy
}

fn assert_integrity<T: std::fmt::Debug>(result: tresor_core::Result<T>, what: &str) {
    match result {
        Err(Error::Integrity { .. }) => {}
        other => panic!("{what}: expected an integrity error, got {other:?}"),
    }
}

#[test]
fn a_purged_secrets_version_does_not_replay_into_the_secret_reusing_its_row_id() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut vault) = new_vault(dir.path());
    vault
        .put(
            &name("old/a"),
            &value(b"value of old/a"),
            &PutOptions::default(),
        )
        .unwrap();
    drop(vault); // the last connection checkpoints the WAL into the file
    let old_copy = copy_of(&path, "old-copy.db");
    let old_id = secret_id(&old_copy);

    let mut vault = reopen(&path);
    vault.delete(&name("old/a"), DeleteMode::Purge).unwrap();
    vault
        .put(
            &name("new/b"),
            &value(b"value of new/b"),
            &PutOptions::default(),
        )
        .unwrap();
    drop(vault);
    // The precondition of the attack: new/b sits in old/a's row.
    assert_eq!(secret_id(&path), old_id, "the row id was reused");

    // Splice old/a's version 1 (from the old copy) into new/b's version 1.
    let (key_id, body) = version_row(&old_copy, old_id, 1);
    let changed = Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE versions SET key_id = ?3, body = ?4 WHERE secret_id = ?1 AND version = ?2",
            params![old_id, 1, key_id, body],
        )
        .unwrap();
    assert_eq!(changed, 1);

    let mut vault = reopen(&path);
    let got = vault.get(&name("new/b"), Selector::Label(Label::Current));
    if let Ok(secret) = &got {
        assert!(
            secret.value.expose_secret() != b"value of old/a",
            "the purged secret's value replayed into new/b"
        );
    }
    assert_integrity(got, "get of the spliced version");
    assert_integrity(
        vault.get(&name("new/b"), Selector::Version(1)),
        "get by number",
    );
    assert_integrity(vault.history(&name("new/b")), "history");
    assert_integrity(vault.verify(), "verify");
}

#[test]
fn a_deleted_named_keys_material_does_not_come_back_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut vault) = new_vault(dir.path());
    let n = name("app/orders");
    let envelope = {
        let mut keys = vault.keys();
        keys.create(&n, KeyType::Aes256Gcm).unwrap();
        keys.encrypt(&n, b"card 4111").unwrap()
    };
    drop(vault);
    let old_copy = copy_of(&path, "old-copy.db");
    let (id, data_key, body): (i64, u32, Vec<u8>) = Connection::open(&old_copy)
        .unwrap()
        .query_row(
            "SELECT key_id_ref, data_key, body FROM named_key_versions WHERE version = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();

    let mut vault = reopen(&path);
    {
        let mut keys = vault.keys();
        keys.delete(&n).unwrap();
        assert_eq!(keys.create(&n, KeyType::Aes256Gcm).unwrap().latest, 2);
    }
    drop(vault);
    // Put the destroyed version 1 back (the key keeps its row id).
    let conn = Connection::open(&path).unwrap();
    let sealed: i64 = conn
        .query_row(
            "SELECT count(*) FROM named_key_versions WHERE key_id_ref = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sealed, 1, "the made-again key keeps the row id");
    conn.execute(
        "INSERT INTO named_key_versions(key_id_ref, version, data_key, body) VALUES (?1, 1, ?2, ?3)",
        params![id, data_key, body],
    )
    .unwrap();
    drop(conn);

    let mut vault = reopen(&path);
    let mut keys = vault.keys();
    keys.config(&n, 1).unwrap();
    let opened = keys.decrypt(&envelope);
    if let Ok(plain) = &opened {
        assert!(
            plain.expose_secret() != b"card 4111",
            "a destroyed version's envelope opened again"
        );
    }
    assert_integrity(opened, "decrypt with the resurrected version");
    drop(keys);
    assert_integrity(vault.verify(), "verify");
}

// ------------------------------------------------------------- migration

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1")
}

/// A private copy of the format-1 fixture vault.
fn format1_vault(dir: &Path) -> PathBuf {
    let path = dir.join("vault.db");
    fs::copy(fixture_dir().join("vault.db"), &path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Unlocks a copy of the fixture with its password slot. (Its key-file slot
/// was made with the test key of its time, 37 bytes of base64 text, which
/// the strict key format of issue 8 L6 no longer accepts.)
fn reopen_fixture(path: &Path) -> Vault {
    let password = Credential::password(zeroize::Zeroizing::new("fixture-password".into()));
    LockedVault::open(path, &OpenOptions::default())
        .unwrap()
        .unlock(&password)
        .unwrap()
}

fn format_of(path: &Path) -> u64 {
    let bytes: Vec<u8> = Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT value FROM meta WHERE key = 'format_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    u64::from_be_bytes(bytes.try_into().unwrap())
}

fn current(vault: &mut Vault, n: &str) -> Vec<u8> {
    vault
        .get(&name(n), Selector::Label(Label::Current))
        .unwrap()
        .value
        .expose_secret()
        .to_vec()
}

#[test]
fn a_format_1_vault_migrates_on_unlock_and_keeps_everything() {
    assert_eq!(FORMAT_VERSION, 2);
    let dir = tempfile::tempdir().unwrap();
    let path = format1_vault(dir.path());
    assert_eq!(format_of(&path), 1);

    let mut vault = reopen_fixture(&path);
    assert_eq!(format_of(&path), 2, "migrated on the first unlock");
    // The copy of the format-1 file, private.
    let copy = dir.path().join("vault.db.pre-v2");
    let mode = fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(format_of(&copy), 1);

    // Every record was rewritten: nothing is left under format-1 data.
    let report = vault.verify().unwrap();
    assert_eq!(report.secrets, 7, "{report:?}");
    assert_eq!(report.named_keys, 4, "{report:?}");

    // Values, labels, metadata, history.
    assert_eq!(current(&mut vault, "new/b"), b"value of new/b");
    assert_eq!(current(&mut vault, "app/db"), b"db v3");
    assert_eq!(current(&mut vault, "app/staged"), b"staged v1");
    let pending = vault
        .get(&name("app/staged"), Selector::Label(Label::Pending))
        .unwrap();
    assert_eq!(pending.value.expose_secret(), b"staged v2");
    assert_eq!(current(&mut vault, "app/rolled"), b"rolled v1");
    assert_eq!(current(&mut vault, "app/binary"), [0, 159, 146, 150, 255]);
    assert_eq!(current(&mut vault, "app/pruned"), b"pruned v5");
    let meta = vault.metadata(&name("app/db")).unwrap();
    assert_eq!(meta.get("owner").map(String::as_str), Some("ops"));
    let history = vault.history(&name("app/db")).unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].reason.as_deref(), Some("first"));
    let pruned = vault.history(&name("app/pruned")).unwrap();
    let destroyed: Vec<u64> = pruned
        .iter()
        .filter(|v| v.destroyed_at.is_some())
        .map(|v| v.version)
        .collect();
    assert_eq!(destroyed, [1, 2]);
    assert_eq!(vault.settings().max_versions, 3);
    assert!(matches!(
        vault.get(&name("app/deleted"), Selector::Label(Label::Current)),
        Err(Error::Deleted { .. })
    ));
    let deleted = vault.list("", true).unwrap();
    assert_eq!(deleted.len(), 1);
    vault.undelete(&name("app/deleted")).unwrap();
    assert_eq!(current(&mut vault, "app/deleted"), b"deleted v1");

    // Named keys: every envelope the fixture made opens, but the deleted
    // incarnation's; new envelopes work.
    let envelopes = fs::read_to_string(fixture_dir().join("envelopes.txt")).unwrap();
    {
        let mut keys = vault.keys();
        for line in envelopes.lines() {
            let mut f = line.split(' ');
            let (n, version, envelope) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            let result = keys.decrypt(envelope);
            if n == "nk/gone" && version == "1" {
                assert!(matches!(result, Err(Error::NotFound { .. })), "{line}");
            } else {
                let expected = format!("{n} v{version}");
                assert_eq!(result.unwrap().expose_secret(), expected.as_bytes());
            }
        }
        let info = keys.info(&name("nk/aes")).unwrap();
        assert_eq!((info.latest, info.key_type), (2, KeyType::Aes256Gcm));
        let e = keys.encrypt(&name("nk/aes"), b"after").unwrap();
        assert_eq!(keys.decrypt(&e).unwrap().expose_secret(), b"after");
        keys.rotate(&name("nk/xchacha")).unwrap();
    }

    // The audit log: the fixture's entries, then the migration's.
    let log = vault.audit_log(&AuditFilter::default()).unwrap();
    let before = fs::read_to_string(fixture_dir().join("audit.txt")).unwrap();
    let before: Vec<&str> = before.lines().collect();
    for (line, entry) in before.iter().zip(&log) {
        let got = format!(
            "{} {} {} {}",
            entry.seq,
            entry.operation.as_str().replace(' ', "_"),
            entry.name.as_deref().unwrap_or("-"),
            entry.result
        );
        assert_eq!(&got, line);
    }
    let migrate = &log[before.len()];
    assert_eq!(migrate.operation, "migrate");
    assert_eq!(migrate.reason.as_deref(), Some("vault format 1 to 2"));
    assert_eq!(vault.audit_verify().unwrap(), log.len() as u64);
    drop(vault);

    // The password slot survives, a second open migrates nothing again.
    let password = Credential::password(zeroize::Zeroizing::new("fixture-password".into()));
    let mut vault = LockedVault::open(&path, &OpenOptions::default())
        .unwrap()
        .unlock(&password)
        .unwrap();
    let entries = vault.audit_log(&AuditFilter::default()).unwrap();
    assert_eq!(
        entries.iter().filter(|e| e.operation == "migrate").count(),
        1
    );
    vault.verify().unwrap();
}

/// The row id reuse the fixture holds (old/a purged, new/b in its row): a
/// copy of old/a's format-1 version row, spliced into new/b after the
/// migration, is refused.
#[test]
fn a_migrated_vault_refuses_the_purged_secrets_format_1_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = format1_vault(dir.path());
    let row = fs::read_to_string(fixture_dir().join("purged-row.txt")).unwrap();
    let f: Vec<&str> = row.split_whitespace().collect();
    let (id, version, key_id): (i64, u64, u32) = (
        f[0].parse().unwrap(),
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
    );
    let body: Vec<u8> = (0..f[3].len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&f[3][i..i + 2], 16).unwrap())
        .collect();
    let rows: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM secrets WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        rows, 1,
        "new/b holds old/a's row id (the generator checked)"
    );

    drop(reopen_fixture(&path)); // migrates
    Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE versions SET key_id = ?3, body = ?4 WHERE secret_id = ?1 AND version = ?2",
            params![id, version, key_id, body],
        )
        .unwrap();
    let mut vault = reopen_fixture(&path);
    assert_integrity(
        vault.get(&name("new/b"), Selector::Label(Label::Current)),
        "get",
    );
    assert_integrity(vault.verify(), "verify");
}

#[test]
fn a_vault_claiming_format_1_with_format_2_tables_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut vault) = new_vault(dir.path());
    vault
        .put(&name("a/b"), &value(b"v"), &PutOptions::default())
        .unwrap();
    drop(vault);
    Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'format_version'",
            [&1u64.to_be_bytes()[..]],
        )
        .unwrap();
    let before = fs::read(&path).unwrap();
    let e = LockedVault::open(&path, &OpenOptions::default())
        .and_then(|l| l.unlock(&key()))
        .unwrap_err();
    assert!(matches!(e, Error::Integrity { .. }), "{e}");
    assert!(e.to_string().contains("format 1"), "{e}");
    assert_eq!(fs::read(&path).unwrap(), before);
    assert!(!dir.path().join("vault.db.pre-v2").exists());
}

/// The record id is in the associated data: changing a row's `uid` (to
/// another secret's, say) breaks its header and versions.
#[test]
fn an_edited_record_id_is_an_integrity_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut vault) = new_vault(dir.path());
    for n in ["a/one", "a/two"] {
        vault
            .put(&name(n), &value(n.as_bytes()), &PutOptions::default())
            .unwrap();
    }
    drop(vault);
    let conn = Connection::open(&path).unwrap();
    let uids: Vec<Vec<u8>> = conn
        .prepare("SELECT uid FROM secrets ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(uids.len(), 2);
    assert!(uids.iter().all(|u| u.len() == 16) && uids[0] != uids[1]);
    conn.execute(
        "UPDATE secrets SET uid = ?1 WHERE id = (SELECT max(id) FROM secrets)",
        [&uids[0]],
    )
    .unwrap();
    drop(conn);
    let mut vault = reopen(&path);
    assert_eq!(
        vault
            .get(&name("a/one"), Selector::Label(Label::Current))
            .unwrap()
            .value
            .expose_secret(),
        b"a/one"
    );
    assert_integrity(
        vault.get(&name("a/two"), Selector::Label(Label::Current)),
        "get under an edited uid",
    );
    assert_integrity(vault.verify(), "verify");
}
