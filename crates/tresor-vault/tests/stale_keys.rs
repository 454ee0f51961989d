//! A handle unlocked before another one rekeyed (issue 8: "a concurrent
//! rekey breaks the audit log for good"). Every write transaction checks,
//! under the write lock, that its keys are the vault's current ones: after
//! `rekey` or `rekey --reencrypt` it reloads the data keys and writes under
//! the new one; after `rekey --master` it fails cleanly (`Auth`) and writes
//! nothing. The vault stays whole either way.

mod common;

use std::path::Path;

use common::*;
use rusqlite::Connection;
use tresor_core::{Error, Label, PutOptions, Selector};
use tresor_vault::{AuditFilter, KeyType, Vault};

fn put(v: &mut Vault, n: &str, val: &[u8]) -> u64 {
    v.put(&name(n), &value(val), &PutOptions::default())
        .unwrap()
}

fn get(v: &mut Vault, n: &str) -> Vec<u8> {
    v.get(&name(n), Selector::Label(Label::Current))
        .unwrap()
        .value
        .expose_secret()
        .to_vec()
}

/// A fresh handle's full check: records, chain, the log readable.
fn whole(path: &Path) {
    let mut fresh = reopen(path);
    fresh.verify().unwrap();
    fresh.audit_verify().unwrap();
    fresh.audit_log(&AuditFilter::default()).unwrap();
}

/// Data key ids used by records written after the vault's own rows.
fn key_ids_of_entries_after(path: &Path, seq: i64) -> Vec<u32> {
    let c = Connection::open(path).unwrap();
    let mut s = c
        .prepare("SELECT DISTINCT key_id FROM audit WHERE seq > ?1 AND seq < ?2")
        .unwrap();
    s.query_map([seq, i64::MAX], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_stale_handle_writes_under_the_key_a_reencryption_made() {
    // The scenario: a process unlocked, another ran
    // `rekey --reencrypt` (destroying the old data key), then the first
    // wrote and audited its reads.
    let dir = tempfile::tempdir().unwrap();
    let (path, mut a) = new_vault(dir.path());
    put(&mut a, "app/one", b"1");
    let mut stale = reopen(&path);
    assert_eq!(get(&mut stale, "app/one"), b"1");

    a.rekey_reencrypt().unwrap();
    let entries = a.audit_verify().unwrap() as i64;
    drop(a);

    // Reads of records re-sealed under the new key, writes, audited reads.
    assert_eq!(get(&mut stale, "app/one"), b"1");
    put(&mut stale, "app/two", b"2");
    assert_eq!(get(&mut stale, "app/two"), b"2");
    stale.history(&name("app/one")).unwrap();
    stale.list("", false).unwrap();
    // Only the new data key (2) was used.
    assert_eq!(key_ids_of_entries_after(&path, entries), vec![2]);
    // The stale handle's own checks and a further rotation work.
    stale.audit_verify().unwrap();
    stale.rekey_reencrypt().unwrap();
    drop(stale);
    whole(&path);
}

#[test]
fn a_stale_handle_never_writes_under_a_retired_key() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut a) = new_vault(dir.path());
    let mut stale = reopen(&path);
    a.rekey().unwrap();
    let entries = a.audit_verify().unwrap() as i64;
    drop(a);
    put(&mut stale, "app/one", b"1");
    assert_eq!(get(&mut stale, "app/one"), b"1");
    assert_eq!(key_ids_of_entries_after(&path, entries), vec![2]);
    let c = Connection::open(&path).unwrap();
    let (header_key, version_key): (u32, u32) = c
        .query_row(
            "SELECT s.header_key, v.key_id FROM secrets s JOIN versions v ON v.secret_id = s.id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((header_key, version_key), (2, 2));
    drop(c);
    drop(stale);
    whole(&path);
}

#[test]
fn a_stale_handle_after_a_master_rekey_fails_cleanly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut a) = new_vault(dir.path());
    put(&mut a, "app/one", b"1");
    let mut stale = reopen(&path);
    a.rekey_master(&[&key()], true, false).unwrap();
    let entries = a.audit_verify().unwrap();
    drop(a);

    let rekeyed = |e: Error| {
        assert!(matches!(e, Error::Auth { .. }), "{e}");
        assert!(
            e.to_string().contains("rekeyed by another process")
                && e.to_string().contains("run the command again"),
            "{e}"
        );
    };
    rekeyed(
        stale
            .put(&name("app/two"), &value(b"2"), &PutOptions::default())
            .unwrap_err(),
    );
    // An audited read is a write transaction too.
    rekeyed(
        stale
            .get(&name("app/one"), Selector::default())
            .unwrap_err(),
    );
    rekeyed(stale.audit_verify().unwrap_err());
    rekeyed(stale.verify().unwrap_err());
    rekeyed(stale.rekey_reencrypt().unwrap_err());
    rekeyed(stale.keys().rotate(&name("app/one")).unwrap_err());
    drop(stale);
    let mut fresh = reopen(&path);
    assert_eq!(
        fresh.audit_verify().unwrap(),
        entries,
        "nothing was appended"
    );
    assert_eq!(get(&mut fresh, "app/one"), b"1");
    drop(fresh);
    whole(&path);
}

#[test]
fn unaudited_reads_of_a_stale_handle_follow_every_rekey_level() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut a) = new_vault(dir.path());
    put(&mut a, "app/one", b"1");
    let mut s = a.settings().clone();
    s.audit_reads = false;
    a.set_settings(s).unwrap();
    let mut stale = reopen(&path);
    assert_eq!(get(&mut stale, "app/one"), b"1");
    a.rekey_reencrypt().unwrap();
    // Re-sealed under a key the stale handle has never seen.
    assert_eq!(get(&mut stale, "app/one"), b"1");
    assert_eq!(stale.list("", false).unwrap().len(), 1);
    stale.metadata(&name("app/one")).unwrap();
    a.rekey_master(&[&key()], true, false).unwrap();
    // Not "not found": the keys are gone.
    let e = stale
        .get(&name("app/one"), Selector::default())
        .unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    let e = stale.list("", false).unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    drop((a, stale));
    whole(&path);
}

#[test]
fn named_key_uses_of_a_stale_handle_are_audited_under_the_new_key() {
    // `tresor decrypt --key` holding the vault while another process
    // re-encrypts: its grouped audit entries are flushed later.
    let dir = tempfile::tempdir().unwrap();
    let (path, mut a) = new_vault(dir.path());
    a.keys()
        .create(&name("app/orders"), KeyType::Aes256Gcm)
        .unwrap();
    let mut stale = reopen(&path);
    let mut keys = stale.keys();
    let envelope = keys.encrypt(&name("app/orders"), b"card").unwrap();
    a.rekey_reencrypt().unwrap();
    assert_eq!(keys.decrypt(&envelope).unwrap().expose_secret(), b"card");
    keys.rotate(&name("app/orders")).unwrap();
    let newer = keys.rewrap(&envelope).unwrap();
    keys.flush().unwrap();
    drop(keys);
    drop(stale);
    let mut b = reopen(&path);
    assert_eq!(b.keys().decrypt(&newer).unwrap().expose_secret(), b"card");
    drop((a, b));
    whole(&path);
}
