//! Anchors (`tresor audit anchor`, `audit verify --anchor`): a vault file
//! replaced by an older copy of itself holds an intact, older chain that
//! no check inside the file can tell from the real one; an anchor kept
//! elsewhere can.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use rusqlite::Connection;
use tresor_core::{Error, PutOptions, Selector};
use tresor_vault::{AuditAnchor, Settings};

/// The vault file's bytes with nothing left in its WAL (every handle closed).
fn copy_of(path: &Path) -> Vec<u8> {
    assert!(
        fs::metadata(wal(path)).map_or(true, |m| m.len() == 0),
        "a handle is still open"
    );
    fs::read(path).unwrap()
}

fn wal(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", path.display()))
}

/// Puts an older copy of the file back in place, as an attacker would.
fn restore(path: &Path, bytes: &[u8]) {
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{suffix}", path.display()));
    }
    fs::write(path, bytes).unwrap();
}

fn put(path: &Path, n: &str, val: &[u8]) {
    reopen(path)
        .put(&name(n), &value(val), &PutOptions::default())
        .unwrap();
}

fn assert_integrity<T: std::fmt::Debug>(r: tresor_core::Result<T>, needle: &str) {
    match r {
        Err(e @ Error::Integrity { .. }) => {
            assert!(e.to_string().contains(needle), "{e}")
        }
        other => panic!("expected an integrity error ({needle}), got {other:?}"),
    }
}

#[test]
fn anchors_name_the_head_and_keep_verifying_as_the_chain_grows() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    v.put(&name("a"), &value(b"1"), &PutOptions::default())
        .unwrap();
    let first = v.audit_anchor().unwrap();
    assert_eq!(first.seq, v.audit_verify().unwrap());
    assert_eq!(first.vault_id, v.id());
    // Round trip through the text form, as a user keeps it.
    let first = AuditAnchor::parse(&first.to_string()).unwrap();
    v.put(&name("a"), &value(b"2"), &PutOptions::default())
        .unwrap();
    v.get(&name("a"), Selector::default()).unwrap();
    let second = v.audit_anchor().unwrap();
    assert!(second.seq > first.seq);
    let n = v.audit_verify().unwrap();
    assert_eq!(v.audit_verify_anchor(&first).unwrap(), n);
    assert_eq!(v.audit_verify_anchor(&second).unwrap(), n);
    drop(v);
    // A plain rekey re-seals nothing: anchors hold.
    let mut v = reopen(&path);
    v.rekey().unwrap();
    assert!(v.audit_verify_anchor(&first).is_ok());
    assert!(v.audit_verify_anchor(&second).is_ok());
    // A re-encryption re-seals every entry, so every MAC changes: older
    // anchors can no longer be checked, and say so; a new one can.
    v.rekey_reencrypt().unwrap();
    assert_integrity(v.audit_verify_anchor(&second), "take a new anchor");
    let third = v.audit_anchor().unwrap();
    v.put(&name("a"), &value(b"3"), &PutOptions::default())
        .unwrap();
    assert!(v.audit_verify_anchor(&third).is_ok());
}

#[test]
fn a_whole_file_rolled_back_passes_alone_but_not_against_an_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let (path, v) = new_vault(dir.path());
    drop(v);
    put(&path, "db/password", b"old");
    let old = copy_of(&path);
    put(&path, "db/password", b"new");
    let anchor = reopen(&path).audit_anchor().unwrap();

    restore(&path, &old);
    let mut v = reopen(&path);
    // The limit, stated in VAULT-FORMAT.md: from inside the file an older
    // copy is a consistent vault.
    assert!(v.audit_verify().is_ok());
    assert!(v.verify().is_ok());
    assert_eq!(
        v.get(&name("db/password"), Selector::default())
            .unwrap()
            .value
            .expose_secret(),
        b"old"
    );
    assert_integrity(v.audit_verify_anchor(&anchor), "rolled back");
    drop(v);

    // Written on after the rollback: the chain grows past the anchor's
    // entry, which is now another one.
    for i in 0..5 {
        put(&path, "other", &[i]);
    }
    let mut v = reopen(&path);
    assert!(v.audit_verify().unwrap() > anchor.seq);
    assert_integrity(v.audit_verify_anchor(&anchor), "forked");
}

#[test]
fn read_entries_cut_off_with_an_older_head_are_found_by_an_anchor() {
    // What the chain alone cannot show: entries that recorded no new
    // version or data key (reads here), cut off with an older head put
    // back. The anchor can.
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    v.put(&name("a"), &value(b"1"), &PutOptions::default())
        .unwrap();
    drop(v);
    let c = Connection::open(&path).unwrap();
    let head: (i64, Vec<u8>, Vec<u8>) = c
        .query_row(
            "SELECT at, body, mac FROM audit WHERE seq = ?1",
            [i64::MAX],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    drop(c);
    let mut v = reopen(&path);
    for _ in 0..3 {
        v.get(&name("a"), Selector::default()).unwrap();
    }
    let anchor = v.audit_anchor().unwrap();
    drop(v);
    let c = Connection::open(&path).unwrap();
    c.execute(
        "DELETE FROM audit WHERE seq > ?1 AND seq < ?2",
        [head.0, i64::MAX],
    )
    .unwrap();
    c.execute(
        "UPDATE audit SET at = ?1, body = ?2, mac = ?3 WHERE seq = ?4",
        rusqlite::params![head.0, head.1, head.2, i64::MAX],
    )
    .unwrap();
    drop(c);
    let mut v = reopen(&path);
    assert_eq!(v.audit_verify().unwrap(), head.0 as u64);
    assert_integrity(v.audit_verify_anchor(&anchor), "rolled back");
}

#[test]
fn anchors_of_another_vault_or_from_before_a_master_rekey_do_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    v.set_settings(Settings::default()).unwrap();
    let before = v.audit_anchor().unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let (_, mut other) = new_vault(other_dir.path());
    let foreign = other.audit_anchor().unwrap();
    assert_integrity(v.audit_verify_anchor(&foreign), "belongs to vault");
    // An anchor edited to name another entry, or with its MAC changed,
    // fails its tag.
    let edited = AuditAnchor {
        seq: before.seq - 1,
        ..before
    };
    assert_integrity(v.audit_verify_anchor(&edited), "audit key");

    let key = key();
    v.rekey_master(&[&key], true, false).unwrap();
    assert_integrity(v.audit_verify_anchor(&before), "master-key rekey");
    let after = v.audit_anchor().unwrap();
    drop(v);
    assert!(reopen(&path).audit_verify_anchor(&after).is_ok());
}
