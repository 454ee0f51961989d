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
