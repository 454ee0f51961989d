//! Unit tests of named keys (private parts: caches, budgets, layouts).

use rusqlite::Connection;
use tresor_crypto::slot::{Credential, new_key_file_text};

use super::*;
use crate::CreateOptions;

fn vault(dir: &std::path::Path) -> Vault {
    let credential = Credential::key_material(new_key_file_text().as_bytes()).unwrap();
    let options = CreateOptions {
        recovery: false,
        ..CreateOptions::default()
    };
    Vault::create(&dir.join("vault.db"), &credential, &options)
        .unwrap()
        .vault
}

fn name(s: &str) -> SecretName {
    SecretName::new(s).unwrap()
}

#[test]
fn payload_layouts_are_pinned() {
    let header = KeyHeader {
        name: "k".into(),
        key_type: KeyType::XChaCha20Poly1305,
        created_at: 1,
        min_decrypt: 2,
        latest: 3,
        deleted_at: None,
    };
    // version byte, len 1 + 'k', variant 1, zigzag(1) = 2, 2, 3, None
    assert_eq!(&encode(&header, 8)[..], &[1, 1, b'k', 1, 2, 2, 3, 0]);
    let material = [7u8; 32];
    let body = KeyVersionBody {
        material: &material,
        created_at: -1,
    };
    let mut expected = vec![1u8, 32];
    expected.extend([7u8; 32]);
    expected.push(1); // zigzag(-1)
    assert_eq!(&encode(&body, 8)[..], &expected[..]);
}

#[test]
fn age_keys_store_type_2_and_lend_versions_by_use() {
    // The header of an age key: variant index 2, the rest unchanged.
    let header = KeyHeader {
        name: "k".into(),
        key_type: KeyType::AgeX25519,
        created_at: 1,
        min_decrypt: 1,
        latest: 1,
        deleted_at: None,
    };
    assert_eq!(&encode(&header, 8)[..], &[1, 1, b'k', 2, 2, 1, 1, 0]);

    let dir = tempfile::tempdir().unwrap();
    let mut v = vault(dir.path());
    let n = name("app/age");
    let mut keys = v.keys();
    keys.create(&n, KeyType::AgeX25519).unwrap();
    keys.rotate(&n).unwrap();
    keys.rotate(&n).unwrap();
    keys.config(&n, 2).unwrap();
    let lent = |keys: &mut Keys<'_>, purpose| {
        keys.age_use(&n, purpose, |lent| {
            let versions: Vec<u32> = lent.iter().map(|(v, _)| *v).collect();
            let distinct = lent
                .iter()
                .map(|(_, k)| *k.expose_secret())
                .collect::<std::collections::HashSet<_>>()
                .len();
            Ok(((versions, distinct), lent.first().map(|(v, _)| *v)))
        })
        .unwrap()
    };
    assert_eq!(lent(&mut keys, AgeUse::Decrypt), (vec![3, 2], 2));
    assert_eq!(lent(&mut keys, AgeUse::Encrypt), (vec![3], 1));
    assert_eq!(lent(&mut keys, AgeUse::Recipient), (vec![3], 1));
    // Envelopes are refused both ways, and other keys are refused for files.
    assert!(matches!(
        keys.encrypt(&n, b"x"),
        Err(Error::WrongKeyType { .. })
    ));
    assert!(matches!(
        keys.decrypt("tresor:v1:app/age:3:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        Err(Error::WrongKeyType { .. })
    ));
    let aes = name("app/aes");
    keys.create(&aes, KeyType::Aes256Gcm).unwrap();
    let r = keys.age_use(&aes, AgeUse::Encrypt, |_| Ok(((), None)));
    assert!(matches!(r, Err(Error::WrongKeyType { .. })));
    // A failure inside the use is returned and audited as such.
    let r: Result<()> = keys.age_use(&n, AgeUse::Decrypt, |_| {
        Err(Error::Auth {
            store: "f".into(),
            reason: "no match".into(),
        })
    });
    assert!(matches!(r, Err(Error::Auth { .. })));
    drop(keys);
    let log = v.audit_log(&crate::AuditFilter::default()).unwrap();
    let ops: Vec<(&str, &[u64], &str)> = log
        .iter()
        .filter(|e| e.operation.as_str().contains("file") || e.operation == "key recipient")
        .map(|e| (e.operation.as_str(), &e.versions[..], e.result.as_str()))
        .collect();
    assert_eq!(
        ops,
        [
            ("key decrypt file", &[3u64][..], "ok"),
            ("key encrypt file", &[3][..], "ok"),
            ("key recipient", &[3][..], "ok"),
            ("key encrypt file", &[][..], "wrong_key_type"),
            ("key decrypt file", &[][..], "auth"),
        ]
    );
}

#[test]
fn blind_index_differs_from_a_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(dir.path());
    let keys = v.vault_keys();
    assert_ne!(blind_index(keys, "a/b"), keys.blind_index("a/b"));
    assert_eq!(
        blind_index(keys, "a/b"),
        keys.index.mac(&[b"key:a/b".as_slice()])
    );
}

#[test]
fn new_vaults_have_the_tables_and_both_ddls_agree() {
    let fresh = Connection::open_in_memory().unwrap();
    fresh.execute_batch(schema::CREATE).unwrap();
    let later = Connection::open_in_memory().unwrap();
    later
        .execute_batch(
            "CREATE TABLE data_keys(id INTEGER PRIMARY KEY, wrapped BLOB NOT NULL,
             created_at INTEGER NOT NULL, retired_at INTEGER);",
        )
        .unwrap();
    later.execute_batch(schema::CREATE_NAMED_KEYS).unwrap();
    later.execute_batch(schema::CREATE_NAMED_KEYS).unwrap();
    let sql = |c: &Connection| -> Vec<String> {
        c.prepare("SELECT sql FROM sqlite_master WHERE name LIKE 'named_key%' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    let normalize = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(normalize(sql(&fresh)).len(), 2);
    assert_eq!(normalize(sql(&fresh)), normalize(sql(&later)));
}

#[test]
fn material_is_cached_after_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = vault(dir.path());
    let n = name("app/k");
    let mut keys = v.keys();
    keys.create(&n, KeyType::Aes256Gcm).unwrap();
    let env = keys.encrypt(&n, b"x").unwrap();
    assert_eq!(keys.vault.named_keys.keys[n.as_str()].material.len(), 1);
    keys.rotate(&n).unwrap();
    assert!(!keys.vault.named_keys.keys.contains_key(n.as_str()));
    keys.decrypt(&env).unwrap();
    keys.encrypt(&n, b"y").unwrap();
    let cached = &keys.vault.named_keys.keys[n.as_str()];
    assert_eq!((cached.latest, cached.material.len()), (2, 2));
}

#[test]
fn uses_are_audited_in_groups() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = vault(dir.path());
    let n = name("app/k");
    {
        let mut keys = v.keys();
        keys.create(&n, KeyType::default()).unwrap();
        for _ in 0..5 {
            let env = keys.encrypt(&n, b"x").unwrap();
            keys.decrypt(&env).unwrap();
        }
        assert!(keys.decrypt("tresor:v1:app/k:9:AAAA").is_err());
        assert_eq!(keys.uses.len(), 3);
    }
    let log = v.audit_log(&crate::AuditFilter::default()).unwrap();
    let ops: Vec<(String, Vec<u64>, String, Option<String>)> = log
        .iter()
        .filter(|e| e.operation.as_str().starts_with("key "))
        .map(|e| {
            (
                e.operation.to_string(),
                e.versions.clone(),
                e.result.clone(),
                e.reason.clone(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        vec![
            (
                "key create".into(),
                vec![1],
                "ok".into(),
                Some("type aes256-gcm".into())
            ),
            (
                "key encrypt".into(),
                vec![1],
                "ok".into(),
                Some("5 calls".into())
            ),
            (
                "key decrypt".into(),
                vec![1],
                "ok".into(),
                Some("5 calls".into())
            ),
            (
                "key decrypt".into(),
                vec![],
                "not_found".into(),
                Some("1 call".into())
            ),
        ]
    );
    assert_eq!(v.audit_verify().unwrap(), log.len() as u64);
}

/// The `sealed` column of a version of the vault's first named key,
/// read by another connection.
fn sealed(path: &std::path::Path, version: u32) -> u64 {
    Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT sealed FROM named_key_versions
             WHERE key_id_ref = (SELECT min(id) FROM named_keys) AND version = ?1",
            [version],
            |r| r.get(0),
        )
        .unwrap()
}

fn low_budget() -> Budget {
    Budget {
        limit: 10,
        warn_at: 6,
        block: 4,
    }
}

#[test]
fn gcm_encryptions_are_counted_in_durable_blocks_warned_and_refused_past_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let mut v = vault(dir.path());
    v.named_keys.budget = low_budget();
    let n = name("app/k");
    let mut keys = v.keys();
    let info = keys.create(&n, KeyType::Aes256Gcm).unwrap();
    assert_eq!(
        (info.encryptions, info.encryption_budget),
        (Some(0), Some(GCM_BUDGET))
    );
    let first = keys.encrypt(&n, b"x").unwrap();
    // The block is committed before the envelope is handed out.
    assert_eq!(sealed(&path, 1), 4);
    for _ in 0..3 {
        keys.encrypt(&n, b"x").unwrap();
    }
    assert_eq!(sealed(&path, 1), 4, "no write within a block");
    assert!(keys.take_budget_warnings().is_empty());
    // The next block reaches past the warning mark (6).
    keys.rewrap(&first).unwrap();
    assert_eq!(sealed(&path, 1), 8);
    let warnings = keys.take_budget_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert_eq!((w.name.as_str(), w.version, w.sealed), ("app/k", 1, 8));
    let text = w.to_string();
    assert!(text.contains("rotate it soon"), "{text}");
    assert!(text.contains("xchacha20-poly1305"), "{text}");
    // The remedy command is the caller's to name.
    assert!(!text.contains("tresor ") && !text.contains("--"), "{text}");
    assert!(keys.take_budget_warnings().is_empty(), "taken once");
    for _ in 6..=10 {
        keys.encrypt(&n, b"x").unwrap();
    }
    assert_eq!(sealed(&path, 1), 10, "the last block is cut at the limit");
    // The 11th encryption is refused, and says what to do.
    let e = keys.encrypt(&n, b"x").unwrap_err();
    assert!(
        matches!(&e, Error::KeyBudgetSpent { name, version: 1, limit: 10 } if name == "app/k"),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains("xchacha20-poly1305"), "{msg}");
    assert!(!msg.contains("tresor ") && !msg.contains("--"), "{msg}");
    assert!(keys.rewrap(&first).is_err());
    assert_eq!(sealed(&path, 1), 10);
    assert_eq!(keys.info(&n).unwrap().encryptions, Some(10));
    // Decryption is not counted; a rotation starts a fresh count.
    assert_eq!(keys.decrypt(&first).unwrap().expose_secret(), b"x");
    assert_eq!(keys.rotate(&n).unwrap(), 2);
    let newer = keys.encrypt(&n, b"y").unwrap();
    assert!(newer.starts_with("tresor:v1:app/k:2:"));
    assert_eq!(sealed(&path, 2), 4);
    assert_eq!(keys.info(&n).unwrap().encryptions, Some(4));
    drop(keys);
    // Refusals are audited like any failed use.
    let log = v.audit_log(&crate::AuditFilter::default()).unwrap();
    assert!(
        log.iter()
            .any(|e| e.operation == "key encrypt" && e.result == "key_budget_spent")
    );
    // XChaCha20-Poly1305 keys are not counted.
    let x = name("app/x");
    let mut keys = v.keys();
    let info = keys.create(&x, KeyType::XChaCha20Poly1305).unwrap();
    assert_eq!(info.encryptions, None);
    for _ in 0..20 {
        keys.encrypt(&x, b"x").unwrap();
    }
}

#[test]
fn reservations_survive_a_crash_and_are_never_handed_out_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let text = new_key_file_text();
    let credential = || Credential::key_material(text.as_bytes()).unwrap();
    let options = CreateOptions {
        recovery: false,
        ..CreateOptions::default()
    };
    let budget = Budget {
        warn_at: 100,
        ..low_budget()
    };
    let mut first = Vault::create(&path, &credential(), &options).unwrap().vault;
    first.named_keys.budget = budget;
    let n = name("app/k");
    first.keys().create(&n, KeyType::Aes256Gcm).unwrap();
    first.keys().encrypt(&n, b"x").unwrap();
    assert_eq!(sealed(&path, 1), 4);
    // The process dies: no drop, no flush. Its reserved block is in the file.
    std::mem::forget(first);

    let mut second = crate::LockedVault::open(&path, &crate::OpenOptions::default())
        .unwrap()
        .unlock(&credential())
        .unwrap();
    second.named_keys.budget = budget;
    let mut keys = second.keys();
    // Counts 5 on (the crashed process's 2 to 4 are forfeited).
    keys.encrypt(&n, b"x").unwrap();
    assert_eq!(sealed(&path, 1), 8);
    drop(keys);
    // A clean end gives back the unused rest: 5 numbers are used.
    drop(second);
    assert_eq!(sealed(&path, 1), 5);
    let mut third = crate::LockedVault::open(&path, &crate::OpenOptions::default())
        .unwrap()
        .unlock(&credential())
        .unwrap();
    third.named_keys.budget = budget;
    // Not while another process has reserved after it.
    let mut fourth = crate::LockedVault::open(&path, &crate::OpenOptions::default())
        .unwrap()
        .unlock(&credential())
        .unwrap();
    fourth.named_keys.budget = budget;
    third.keys().encrypt(&n, b"x").unwrap(); // reserves 5..9, uses 5
    fourth.keys().encrypt(&n, b"x").unwrap(); // reserves 9..10 (the limit), uses 9
    assert_eq!(sealed(&path, 1), 10);
    drop(third);
    assert_eq!(sealed(&path, 1), 10, "fourth's block follows third's");
    assert!(fourth.keys().encrypt(&n, b"x").is_err());
    drop(fourth);
    assert_eq!(sealed(&path, 1), 10);
}

#[test]
fn reseal_keeps_every_envelope_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = vault(dir.path());
    let n = name("app/k");
    let env = {
        let mut keys = v.keys();
        keys.create(&n, KeyType::XChaCha20Poly1305).unwrap();
        keys.rotate(&n).unwrap();
        keys.encrypt(&n, b"kept").unwrap()
    };
    let other = VaultKeys::derive(&Key::random(), &v.id());
    let records = v.transaction(|v| reseal(v, None)).unwrap();
    assert_eq!(records, 3);
    v.named_keys = Cache::default();
    assert_eq!(v.keys().decrypt(&env).unwrap().expose_secret(), b"kept");
    // Under another index key the key is no longer found by this vault's.
    v.transaction(|v| reseal(v, Some(&other))).unwrap();
    v.named_keys = Cache::default();
    assert!(matches!(
        v.keys().decrypt(&env).unwrap_err(),
        Error::NotFound { .. }
    ));
}
