//! Versions, labels, deletion, metadata, check-and-set, pruning and slots.

mod common;

use common::*;
use tresor_core::{DeleteMode, Error, Label, PutOptions, Selector};
use tresor_crypto::slot::Credential;
use tresor_vault::{AuditFilter, LockedVault, OpenOptions, Settings, Vault};
use zeroize::Zeroizing;

fn put(v: &mut tresor_vault::Vault, n: &str, val: &[u8]) -> u64 {
    v.put(&name(n), &value(val), &PutOptions::default())
        .unwrap()
}

fn get(v: &mut tresor_vault::Vault, n: &str, sel: Selector) -> Result<Vec<u8>, Error> {
    v.get(&name(n), sel)
        .map(|s| s.value.expose_secret().to_vec())
}

#[test]
fn versions_labels_rollback_and_promote() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut v) = new_vault(dir.path());
    assert_eq!(put(&mut v, "db/password", b"one"), 1);
    assert_eq!(put(&mut v, "db/password", b"two"), 2);
    assert_eq!(
        get(&mut v, "db/password", Selector::default()).unwrap(),
        b"two"
    );
    assert_eq!(
        get(&mut v, "db/password", Selector::Label(Label::Previous)).unwrap(),
        b"one"
    );
    assert_eq!(
        get(&mut v, "db/password", Selector::Version(1)).unwrap(),
        b"one"
    );
    v.rollback(&name("db/password"), 1, Some("bad deploy"))
        .unwrap();
    assert_eq!(
        get(&mut v, "db/password", Selector::default()).unwrap(),
        b"one"
    );
    assert_eq!(
        get(&mut v, "db/password", Selector::Label(Label::Previous)).unwrap(),
        b"two"
    );
    // Staged rotation.
    let staged = v
        .put(
            &name("db/password"),
            &value(b"three"),
            &PutOptions {
                stage: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(staged, 3);
    assert_eq!(
        get(&mut v, "db/password", Selector::default()).unwrap(),
        b"one"
    );
    assert_eq!(
        get(&mut v, "db/password", Selector::Label(Label::Pending)).unwrap(),
        b"three"
    );
    assert_eq!(v.promote(&name("db/password"), None).unwrap(), 3);
    assert_eq!(
        get(&mut v, "db/password", Selector::default()).unwrap(),
        b"three"
    );
    assert!(matches!(
        get(&mut v, "db/password", Selector::Label(Label::Pending)),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        v.promote(&name("db/password"), None),
        Err(Error::NotFound { .. })
    ));
    let history = v.history(&name("db/password")).unwrap();
    assert_eq!(
        history.iter().map(|h| h.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(history[2].labels, vec![Label::Current]);
    assert_eq!(history[0].labels, vec![Label::Previous]);
    assert!(matches!(
        get(&mut v, "db/password", Selector::Version(9)),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        v.rollback(&name("db/password"), 9, None),
        Err(Error::NotFound { .. })
    ));
    v.verify().unwrap();
}

#[test]
fn soft_delete_undelete_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    put(&mut v, "a/b", b"x");
    v.delete(&name("a/b"), DeleteMode::Soft).unwrap();
    // Deleted, not merely missing: the error says so (and exit 1 in the CLI).
    assert!(matches!(
        get(&mut v, "a/b", Selector::default()),
        Err(Error::Deleted { name, .. }) if name == "a/b"
    ));
    assert!(v.list("", false).unwrap().is_empty());
    assert_eq!(v.list("", true).unwrap().len(), 1);
    v.undelete(&name("a/b")).unwrap();
    assert_eq!(get(&mut v, "a/b", Selector::default()).unwrap(), b"x");
    put(&mut v, "a/b", b"y");
    v.delete(&name("a/b"), DeleteMode::Purge).unwrap();
    assert!(matches!(
        get(&mut v, "a/b", Selector::Version(1)),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        v.undelete(&name("a/b")),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        v.rollback(&name("a/b"), 1, None),
        Err(Error::NotFound { .. })
    ));
    v.verify().unwrap();
    drop(v);
    let mut v = reopen(&path);
    assert!(v.history(&name("a/b")).is_err());
}

#[test]
fn check_and_set_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut v) = new_vault(dir.path());
    let cas = |n| PutOptions {
        expect_version: Some(n),
        ..Default::default()
    };
    assert_eq!(v.put(&name("k"), &value(b"1"), &cas(0)).unwrap(), 1);
    let err = v.put(&name("k"), &value(b"2"), &cas(0)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                expected: 0,
                found: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(v.put(&name("k"), &value(b"2"), &cas(1)).unwrap(), 2);
    // The refused attempt is audited.
    let log = v
        .audit_log(&AuditFilter {
            name: Some("k".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(log.iter().any(|e| e.result == "conflict"));
}

#[test]
fn max_versions_prunes_oldest_unlabelled() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut v) = new_vault(dir.path());
    v.set_settings(Settings {
        max_versions: 3,
        ..Settings::default()
    })
    .unwrap();
    for i in 1..=6u8 {
        put(&mut v, "p", &[i]);
    }
    let history = v.history(&name("p")).unwrap();
    let live: Vec<u64> = history
        .iter()
        .filter(|h| h.destroyed_at.is_none())
        .map(|h| h.version)
        .collect();
    assert_eq!(live, vec![4, 5, 6]);
    assert!(matches!(
        get(&mut v, "p", Selector::Version(1)),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(get(&mut v, "p", Selector::Version(4)).unwrap(), vec![4]);
    v.verify().unwrap();
}

#[test]
fn metadata_merges_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut v) = new_vault(dir.path());
    let mut meta = tresor_core::Metadata::new();
    meta.insert("owner".into(), "ops".into());
    v.put(
        &name("m"),
        &value(b"x"),
        &PutOptions {
            metadata: meta,
            ..Default::default()
        },
    )
    .unwrap();
    let m = v
        .update_metadata(
            &name("m"),
            &[
                ("url".into(), Some("https://x".into())),
                ("owner".into(), None),
            ],
        )
        .unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(v.metadata(&name("m")).unwrap()["url"], "https://x");
    assert!(
        v.update_metadata(&name("m"), &[("k".into(), Some("v".repeat(600)))])
            .is_err()
    );
    assert_eq!(v.metadata(&name("m")).unwrap().len(), 1);
}

#[test]
fn value_limit_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut v) = new_vault(dir.path());
    let big = vec![7u8; 1024 * 1024];
    assert_eq!(
        v.put(&name("big"), &value(&big), &PutOptions::default())
            .unwrap(),
        1
    );
    assert_eq!(get(&mut v, "big", Selector::default()).unwrap(), big);
    let too_big = vec![7u8; 1024 * 1024 + 1];
    let err = v
        .put(&name("big"), &value(&too_big), &PutOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert_eq!(v.history(&name("big")).unwrap().len(), 1);
}

#[test]
fn slots_password_keyfile_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let created = tresor_vault::Vault::create(&path, &key(), &create_options()).unwrap();
    let recovery = created.recovery.unwrap();
    let mut v = created.vault;
    put(&mut v, "s", b"secret");
    let pw = Credential::password(Zeroizing::new("pw one".into()));
    let id = v.add_slot(&pw, &fast_password_params(), None).unwrap();
    let slots = v.slots().unwrap();
    assert_eq!(slots.len(), 3);
    drop(v);
    let open = || LockedVault::open(&path, &OpenOptions::default()).unwrap();
    let mut v = open().unlock(&pw).unwrap();
    assert_eq!(get(&mut v, "s", Selector::default()).unwrap(), b"secret");
    let pw2 = Credential::password(Zeroizing::new("pw two".into()));
    v.change_slot(id, &pw2, &fast_password_params()).unwrap();
    drop(v);
    assert!(matches!(open().unlock(&pw), Err(Error::Auth { .. })));
    open().unlock(&pw2).unwrap();
    let rk = tresor_crypto::slot::RecoveryKey::parse(&recovery.expose_display()).unwrap();
    let mut v = open().unlock(&rk.credential()).unwrap();
    // The last everyday slot cannot be removed; others can.
    v.remove_slot(1).unwrap();
    let err = v.remove_slot(id).unwrap_err();
    assert!(err.to_string().contains("last"), "{err}");
    drop(v);
    assert!(matches!(open().unlock(&key()), Err(Error::Auth { .. })));
}

#[test]
fn audit_chain_records_operations_and_never_values() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut v) = new_vault(dir.path());
    put(&mut v, "x", b"CANARY-VALUE");
    get(&mut v, "x", Selector::default()).unwrap();
    let _ = get(&mut v, "missing", Selector::default());
    let log = v.audit_log(&AuditFilter::default()).unwrap();
    let ops: Vec<_> = log
        .iter()
        .map(|e| (e.operation.as_str(), e.result.as_str()))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("init", "ok"),
            ("set", "ok"),
            ("get", "ok"),
            ("get", "not_found")
        ]
    );
    assert!(!format!("{log:?}").contains("CANARY"));
    assert_eq!(v.audit_verify().unwrap(), 4);
    v.set_settings(Settings {
        audit_reads: false,
        ..Settings::default()
    })
    .unwrap();
    get(&mut v, "x", Selector::default()).unwrap();
    assert_eq!(v.audit_verify().unwrap(), 5);
}

/// A one-shot process's vault keeps its WAL bounded: `bound_wal` (run on
/// drop when opened with `no_checkpoint_on_close`) checkpoints and truncates
/// a WAL past its bound, leaves a small one alone, never waits on another
/// process's reader, and loses nothing.
#[test]
fn one_shot_processes_keep_the_wal_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    drop(Vault::create(&path, &key(), &create_options()).unwrap());
    let one_shot = OpenOptions {
        lock_timeout: std::time::Duration::from_secs(60),
        no_checkpoint_on_close: true,
    };
    let open = || {
        LockedVault::open(&path, &one_shot)
            .unwrap()
            .unlock(&key())
            .unwrap()
    };
    let wal = dir.path().join("vault.db-wal");
    let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());

    // Small: left alone.
    let mut v = open();
    put(&mut v, "wal/small", b"v");
    assert!(!v.bound_wal(), "a small WAL was truncated");
    assert!(wal_len() > 0);

    // Past the bound, with another process's reader in the way: no wait,
    // no truncation.
    for i in 0..200 {
        put(
            &mut v,
            &format!("wal/s{i}"),
            format!("value-{i}").as_bytes(),
        );
    }
    let big = wal_len();
    assert!(big > 64 * 4096, "the WAL did not grow: {big} bytes");
    let reader = rusqlite::Connection::open(&path).unwrap();
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM secrets;")
        .unwrap();
    let start = std::time::Instant::now();
    assert!(!v.bound_wal(), "truncated under a live reader");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "bound_wal waited on the reader ({:?})",
        start.elapsed()
    );
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);

    // Dropping a one-shot vault truncates it; every value is still there.
    drop(v);
    assert_eq!(wal_len(), 0, "drop left a WAL past its bound");
    let mut v = open();
    put(&mut v, "wal/after", b"after");
    drop(v);
    assert!(wal_len() > 0 && wal_len() < 64 * 4096);
    let mut v = reopen(&path);
    for i in 0..200 {
        assert_eq!(
            get(&mut v, &format!("wal/s{i}"), Selector::default()).unwrap(),
            format!("value-{i}").as_bytes()
        );
    }
    assert_eq!(
        get(&mut v, "wal/after", Selector::default()).unwrap(),
        b"after"
    );
    v.verify().unwrap();
}

/// A bulk write (`put_many`, an import) appends one entry per secret in
/// order and moves the chain head once: the chain verifies, a reopened
/// handle extends it, and a later single write links to the last entry.
#[test]
fn a_bulk_write_chains_one_entry_per_secret_and_the_chain_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut v) = new_vault(dir.path());
    let items: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| (name(n), value(n.as_bytes())))
        .collect();
    assert_eq!(v.put_many(&items, Some("bulk"), |_| {}).unwrap(), [1, 1, 1]);
    assert_eq!(v.audit_verify().unwrap(), 4);
    put(&mut v, "a", b"a2");
    let log = v.audit_log(&AuditFilter::default()).unwrap();
    let rows: Vec<_> = log
        .iter()
        .map(|e| (e.seq, e.operation.as_str(), e.name.clone()))
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, "init", None),
            (2, "import", Some("a".to_string())),
            (3, "import", Some("b".to_string())),
            (4, "import", Some("c".to_string())),
            (5, "set", Some("a".to_string())),
        ]
    );
    assert_eq!(v.audit_verify().unwrap(), 5);
    // An empty batch writes nothing and leaves the chain as it was.
    assert!(v.put_many(&[], None, |_| {}).unwrap().is_empty());
    assert_eq!(v.audit_verify().unwrap(), 5);
}
