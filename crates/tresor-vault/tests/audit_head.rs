//! The audit chain head is keyed: cutting entries off the end of the chain
//! and pointing the head at an earlier entry, copying that entry's MAC, is
//! found by `audit_verify`.

mod common;

use common::*;
use rusqlite::Connection;
use tresor_core::{Error, PutOptions};

const HEAD: i64 = i64::MAX;

#[test]
fn truncating_the_tail_and_rewriting_the_head_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    for i in 0..5 {
        v.put(
            &name("a"),
            &value(format!("v{i}").as_bytes()),
            &PutOptions::default(),
        )
        .unwrap();
    }
    let entries = v.audit_verify().unwrap();
    drop(v);

    let c = Connection::open(&path).unwrap();
    let keep = entries as i64 - 2;
    let mac: Vec<u8> = c
        .query_row("SELECT mac FROM audit WHERE seq = ?1", [keep], |r| r.get(0))
        .unwrap();
    c.execute(
        "DELETE FROM audit WHERE seq > ?1 AND seq < ?2",
        [keep, HEAD],
    )
    .unwrap();
    // The attacker knows the last kept entry's MAC and can copy it; the
    // head's tag needs the audit key, so the old tag stays.
    c.execute(
        "UPDATE audit SET at = ?1, body = ?2 WHERE seq = ?3",
        rusqlite::params![keep, mac, HEAD],
    )
    .unwrap();
    drop(c);

    let mut v = reopen(&path);
    let err = v.audit_verify().unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(matches!(v.verify(), Err(Error::Integrity { .. })));
}

#[test]
fn an_untouched_chain_verifies_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    v.put(&name("a"), &value(b"x"), &PutOptions::default())
        .unwrap();
    drop(v);
    assert_eq!(reopen(&path).audit_verify().unwrap(), 2);
}

#[test]
fn a_malformed_head_is_an_integrity_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    v.put(&name("a"), &value(b"x"), &PutOptions::default())
        .unwrap();
    drop(v);
    let c = Connection::open(&path).unwrap();
    c.execute("UPDATE audit SET body = X'' WHERE seq = ?1", [HEAD])
        .unwrap();
    drop(c);
    let mut v = reopen(&path);
    let err = v
        .put(&name("a"), &value(b"y"), &PutOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(
        err.to_string().contains("audit chain head is malformed"),
        "{err}"
    );
    assert!(matches!(v.audit_verify(), Err(Error::Integrity { .. })));
}

/// Copies the head row as it is now, to put back later (an attacker's old
/// copy of the file holds one).
fn head_row(path: &std::path::Path) -> (i64, Vec<u8>, Vec<u8>) {
    let c = Connection::open(path).unwrap();
    c.query_row(
        "SELECT at, body, mac FROM audit WHERE seq = ?1",
        [HEAD],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

/// Removes the entries after `row`'s and puts `row` back as the head.
fn cut_back_to(path: &std::path::Path, row: &(i64, Vec<u8>, Vec<u8>)) {
    let c = Connection::open(path).unwrap();
    c.execute(
        "DELETE FROM audit WHERE seq > ?1 AND seq < ?2",
        [row.0, HEAD],
    )
    .unwrap();
    c.execute(
        "UPDATE audit SET at = ?1, body = ?2, mac = ?3 WHERE seq = ?4",
        rusqlite::params![row.0, row.1, row.2, HEAD],
    )
    .unwrap();
}

#[test]
fn emptying_the_audit_table_is_detected() {
    // The attack of issue 8: `DELETE FROM audit` passed both checks with
    // "0 entries".
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    v.put(&name("a"), &value(b"x"), &PutOptions::default())
        .unwrap();
    drop(v);
    let c = Connection::open(&path).unwrap();
    c.execute("DELETE FROM audit", []).unwrap();
    drop(c);

    let mut v = reopen(&path);
    let err = v.audit_verify().unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(err.to_string().contains("head is missing"), "{err}");
    assert!(matches!(v.verify(), Err(Error::Integrity { .. })));
    // Nor does a write start a new chain over the hole.
    let err = v
        .put(&name("a"), &value(b"y"), &PutOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(matches!(v.audit_verify(), Err(Error::Integrity { .. })));
}

#[test]
fn cutting_off_the_newest_entries_with_the_head_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    for i in 0..4 {
        v.put(&name("a"), &value(&[i]), &PutOptions::default())
            .unwrap();
    }
    drop(v);
    let c = Connection::open(&path).unwrap();
    c.execute("DELETE FROM audit WHERE seq > 2", []).unwrap();
    drop(c);
    let mut v = reopen(&path);
    assert!(matches!(v.audit_verify(), Err(Error::Integrity { .. })));
    assert!(matches!(v.verify(), Err(Error::Integrity { .. })));
}

#[test]
fn an_older_head_put_back_is_detected_by_what_was_written_after_it() {
    // An older copy of the head row (its tag is genuine) put back, with the
    // entries after it removed: the chain ends exactly at that head. The
    // secret versions written after it still lie in the vault, and no entry
    // records them any more.
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    v.put(&name("a"), &value(b"1"), &PutOptions::default())
        .unwrap();
    drop(v);
    let old = head_row(&path);
    let mut v = reopen(&path);
    v.put(&name("a"), &value(b"2"), &PutOptions::default())
        .unwrap();
    v.put(&name("b"), &value(b"1"), &PutOptions::default())
        .unwrap();
    drop(v);
    cut_back_to(&path, &old);

    let mut v = reopen(&path);
    let err = v.audit_verify().unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("no entry of the audit chain records"),
        "{err}"
    );
    assert!(matches!(v.verify(), Err(Error::Integrity { .. })));
}

#[test]
fn an_older_head_put_back_is_detected_by_a_data_key_made_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    v.put(&name("a"), &value(b"1"), &PutOptions::default())
        .unwrap();
    drop(v);
    let old = head_row(&path);
    let mut v = reopen(&path);
    v.rekey().unwrap();
    drop(v);
    cut_back_to(&path, &old);
    let mut v = reopen(&path);
    let err = v.audit_verify().unwrap_err();
    assert!(err.to_string().contains("data key 2"), "{err}");
    assert!(matches!(v.verify(), Err(Error::Integrity { .. })));
}

#[test]
fn a_head_without_its_tag_is_not_extended() {
    // Pointing the head at an earlier entry without the audit key leaves
    // the old tag; a later write must not seal that cut under a new tag.
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    for i in 0..3 {
        v.put(&name("r"), &value(&[i]), &PutOptions::default())
            .unwrap();
    }
    drop(v);
    let c = Connection::open(&path).unwrap();
    let mac: Vec<u8> = c
        .query_row("SELECT mac FROM audit WHERE seq = 2", [], |r| r.get(0))
        .unwrap();
    c.execute("DELETE FROM audit WHERE seq > 2 AND seq < ?1", [HEAD])
        .unwrap();
    c.execute(
        "UPDATE audit SET at = 2, body = ?1 WHERE seq = ?2",
        rusqlite::params![mac, HEAD],
    )
    .unwrap();
    drop(c);
    let mut v = reopen(&path);
    let err = v
        .put(&name("r"), &value(b"z"), &PutOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(matches!(v.audit_verify(), Err(Error::Integrity { .. })));
}
