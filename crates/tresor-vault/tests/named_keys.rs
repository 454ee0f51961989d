//! Named encryption keys: envelopes round trip under both key types; every
//! altered envelope is refused with an integrity error; rotation, the
//! minimum decryption version, rewrap and delete behave as documented; the
//! vault file never holds key material or plaintext in the clear; other
//! processes' changes show within the cache-check interval.

mod common;

use std::thread::sleep;

use common::*;
use proptest::prelude::*;
use rusqlite::Connection;
use tresor_core::{Error, SecretName};
use tresor_vault::{AuditFilter, CACHE_CHECK_INTERVAL, KeyType, Vault, envelope_key};

fn create(vault: &mut Vault, key: &str, key_type: KeyType) -> SecretName {
    let n = name(key);
    vault.keys().create(&n, key_type).unwrap();
    n
}

/// Replaces the character at byte `i` of an ASCII envelope.
fn with_char(envelope: &str, i: usize, c: char) -> String {
    let mut s = envelope.to_string();
    s.replace_range(i..i + 1, &c.to_string());
    s
}

fn data_start(envelope: &str) -> usize {
    envelope.rfind(':').unwrap() + 1
}

#[test]
fn envelopes_round_trip_under_both_key_types() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut vault) = new_vault(dir.path());
    let payloads: Vec<Vec<u8>> = vec![
        vec![],
        b"x".to_vec(),
        b"card 4111 1111 1111 1111".to_vec(),
        (0..=255u8).collect(),
        vec![0xa5; 1024 * 1024],
    ];
    for key_type in KeyType::ENVELOPE {
        let n = create(&mut vault, &format!("app/{key_type}"), key_type);
        let mut keys = vault.keys();
        for p in &payloads {
            let env = keys.encrypt(&n, p).unwrap();
            let prefix = format!("tresor:v1:app/{key_type}:1:");
            assert!(env.starts_with(&prefix), "{}", &env[..40]);
            let data = &env[prefix.len()..];
            assert!(
                data.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "unpadded base64url"
            );
            // nonce ‖ ciphertext ‖ tag, base64url without padding
            let raw = key_type.nonce_len() + p.len() + 16;
            assert_eq!(data.len(), (raw * 4).div_ceil(3));
            assert_eq!(keys.decrypt(&env).unwrap().expose_secret(), &p[..]);
            // A fresh nonce every time.
            assert_ne!(keys.encrypt(&n, p).unwrap(), env);
        }
        let info = keys.info(&n).unwrap();
        assert_eq!(
            (info.key_type, info.latest, info.min_decryption_version),
            (key_type, 1, 1)
        );
    }
}

#[test]
fn keys_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut vault) = new_vault(dir.path());
    let n = create(&mut vault, "app/orders", KeyType::XChaCha20Poly1305);
    let env = vault.keys().encrypt(&n, b"kept").unwrap();
    drop(vault);
    let mut vault = reopen(&path);
    assert_eq!(vault.keys().decrypt(&env).unwrap().expose_secret(), b"kept");
    let list = vault.keys().list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].key_type, KeyType::XChaCha20Poly1305);
    let report = vault.verify().unwrap();
    assert_eq!((report.named_keys, report.named_key_versions), (1, 1));
}

#[test]
fn creating_an_existing_key_is_refused_and_names_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut vault) = new_vault(dir.path());
    let n = create(&mut vault, "app/orders", KeyType::default());
    let err = vault.keys().create(&n, KeyType::default()).unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err}");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(SecretName::new("app:orders").is_err());
    assert!(matches!(
        vault.keys().rotate(&name("app/none")).unwrap_err(),
        Error::NotFound { .. }
    ));
    assert!(matches!(
        vault.keys().encrypt(&name("app/none"), b"x").unwrap_err(),
        Error::NotFound { .. }
    ));
}

#[test]
fn every_altered_envelope_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut vault) = new_vault(dir.path());
    let a = create(&mut vault, "app/a", KeyType::Aes256Gcm);
    create(&mut vault, "app/b", KeyType::Aes256Gcm);
    let x = create(&mut vault, "app/x", KeyType::XChaCha20Poly1305);
    let mut keys = vault.keys();
    keys.rotate(&a).unwrap();
    let old = {
        // An envelope of version 1 of app/a, made before the rotation above
        // would not exist; rewrap is not used so both versions stay live.
        let env = keys.encrypt(&a, b"the plaintext").unwrap();
        assert!(env.starts_with("tresor:v1:app/a:2:"));
        env
    };
    for env in [old.clone(), keys.encrypt(&x, b"the plaintext").unwrap()] {
        let start = data_start(&env);
        // Every character of the data replaced by two others.
        for i in start..env.len() {
            for c in ['A', 'g', '-', '_'] {
                if env.as_bytes()[i] == c as u8 {
                    continue;
                }
                let bad = with_char(&env, i, c);
                let err = keys.decrypt(&bad).unwrap_err();
                assert!(matches!(err, Error::Integrity { .. }), "{i} {c}: {err}");
                assert!(keys.rewrap(&bad).is_err());
            }
        }
        // Characters outside base64url, padding, truncation, extension.
        for bad in [
            with_char(&env, start + 3, '+'),
            with_char(&env, start + 3, '/'),
            format!("{env}="),
            env[..env.len() - 1].to_string(),
            env[..start + 10].to_string(),
            format!("{env}A"),
            format!("{env}AAAA"),
        ] {
            let err = keys.decrypt(&bad).unwrap_err();
            assert!(matches!(err, Error::Integrity { .. }), "{bad}: {err}");
        }
    }
    // Moved to another existing key or version: integrity; to one that does
    // not exist: not found.
    let moved = old.replacen("tresor:v1:app/a:2:", "tresor:v1:app/b:1:", 1);
    assert!(matches!(
        keys.decrypt(&moved).unwrap_err(),
        Error::Integrity { .. }
    ));
    let moved = old.replacen("tresor:v1:app/a:2:", "tresor:v1:app/a:1:", 1);
    assert!(matches!(
        keys.decrypt(&moved).unwrap_err(),
        Error::Integrity { .. }
    ));
    let moved = old.replacen("tresor:v1:app/a:2:", "tresor:v1:app/a:3:", 1);
    let err = keys.decrypt(&moved).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("'app/a' version 3"), "{err}");
    let moved = old.replacen("tresor:v1:app/a:2:", "tresor:v1:app/zz:2:", 1);
    let err = keys.decrypt(&moved).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    // A name that breaks the naming rule, a broken header.
    for bad in [
        old.replacen("app/a", "app//a", 1),
        old.replacen("app/a", "../a", 1),
        old.replacen(":2:", ":02:", 1),
        old.replacen(":2:", "::", 1),
        old.replacen(":2:", ":-2:", 1),
        old.replacen(":2:", ":99999999999:", 1),
    ] {
        let err = keys.decrypt(&bad).unwrap_err();
        assert!(matches!(err, Error::Integrity { .. }), "{bad}: {err}");
    }
    // Not an envelope at all, or another format version: validation.
    for bad in [
        "hello",
        "",
        " tresor:v1:app/a:1:AAAA",
        "tresor:v2:app/a:1:AAAA",
    ] {
        let err = keys.decrypt(bad).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Malformed { .. } | Error::UnsupportedFormat { .. }
            ),
            "{bad}: {err}"
        );
    }
    drop(keys);
    // An envelope from another vault, under a key of the same name.
    let other_dir = tempfile::tempdir().unwrap();
    let (_, mut other) = new_vault(other_dir.path());
    let a2 = create(&mut other, "app/a", KeyType::Aes256Gcm);
    other.keys().rotate(&a2).unwrap();
    let foreign = other.keys().encrypt(&a2, b"the plaintext").unwrap();
    assert!(matches!(
        vault.keys().decrypt(&foreign).unwrap_err(),
        Error::Integrity { .. }
    ));
}

#[test]
fn rotation_and_minimum_decryption_version() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut vault) = new_vault(dir.path());
    let n = create(&mut vault, "app/orders", KeyType::Aes256Gcm);
    let mut keys = vault.keys();
    let v1 = keys.encrypt(&n, b"one").unwrap();
    assert_eq!(keys.rotate(&n).unwrap(), 2);
    let v2 = keys.encrypt(&n, b"two").unwrap();
    assert!(v2.starts_with("tresor:v1:app/orders:2:"));
    assert_eq!(keys.rotate(&n).unwrap(), 3);
    let v3 = keys.encrypt(&n, b"three").unwrap();
    assert_eq!(envelope_key(&v3).unwrap(), (n.clone(), 3));
    for (env, plain) in [(&v1, "one"), (&v2, "two"), (&v3, "three")] {
        assert_eq!(keys.decrypt(env).unwrap().expose_secret(), plain.as_bytes());
    }

    let info = keys.config(&n, 2).unwrap();
    assert_eq!((info.latest, info.min_decryption_version), (3, 2));
    let err = keys.decrypt(&v1).unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("version 1") && msg.contains("minimum decryption version 2"),
        "{msg}"
    );
    assert!(
        keys.rewrap(&v1).is_err(),
        "rewrap must not bypass the minimum"
    );
    assert_eq!(keys.decrypt(&v2).unwrap().expose_secret(), b"two");

    // Bounds: 1 ..= latest.
    for bad in [0, 4, u32::MAX] {
        let err = keys.config(&n, bad).unwrap_err();
        assert!(matches!(err, Error::Validation(_)), "{bad}: {err}");
    }
    // Lowering it again lets old envelopes open: the material was kept.
    keys.config(&n, 1).unwrap();
    assert_eq!(keys.decrypt(&v1).unwrap().expose_secret(), b"one");
}

#[test]
fn rewrap_moves_envelopes_to_the_newest_version() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut vault) = new_vault(dir.path());
    let n = create(&mut vault, "app/orders", KeyType::XChaCha20Poly1305);
    let mut keys = vault.keys();
    let v1 = keys.encrypt(&n, b"payload").unwrap();
    keys.rotate(&n).unwrap();
    keys.rotate(&n).unwrap();
    let rewrapped = keys.rewrap(&v1).unwrap();
    assert!(rewrapped.starts_with("tresor:v1:app/orders:3:"));
    // Rewrapping the newest version still gives a fresh envelope.
    let again = keys.rewrap(&rewrapped).unwrap();
    assert!(again.starts_with("tresor:v1:app/orders:3:") && again != rewrapped);
    keys.config(&n, 3).unwrap();
    assert!(keys.decrypt(&v1).is_err());
    assert_eq!(
        keys.decrypt(&rewrapped).unwrap().expose_secret(),
        b"payload"
    );
    assert_eq!(keys.decrypt(&again).unwrap().expose_secret(), b"payload");
}

#[test]
fn delete_destroys_the_material() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut vault) = new_vault(dir.path());
    let n = create(&mut vault, "app/orders", KeyType::Aes256Gcm);
    let keep = create(&mut vault, "app/keep", KeyType::Aes256Gcm);
    let mut keys = vault.keys();
    keys.rotate(&n).unwrap();
    let v2 = keys.encrypt(&n, b"gone").unwrap();
    let kept = keys.encrypt(&keep, b"kept").unwrap();
    keys.delete(&n).unwrap();
    let err = keys.decrypt(&v2).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(matches!(
        keys.encrypt(&n, b"x").unwrap_err(),
        Error::NotFound { .. }
    ));
    assert!(matches!(
        keys.delete(&n).unwrap_err(),
        Error::NotFound { .. }
    ));
    assert_eq!(
        keys.list()
            .unwrap()
            .iter()
            .map(|k| k.name.as_str())
            .collect::<Vec<_>>(),
        ["app/keep"]
    );
    assert_eq!(keys.decrypt(&kept).unwrap().expose_secret(), b"kept");
    drop(keys);
    let conn = Connection::open(&path).unwrap();
    let rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM named_key_versions v JOIN named_keys k ON k.id = v.key_id_ref
             WHERE k.deleted_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 0, "the deleted key's versions are gone");
    drop(conn);

    // The name can be used again; versions continue, so the old envelope
    // reports its version destroyed instead of failing to decrypt.
    let info = vault.keys().create(&n, KeyType::XChaCha20Poly1305).unwrap();
    assert_eq!((info.latest, info.min_decryption_version), (3, 3));
    let err = vault.keys().decrypt(&v2).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("destroyed"), "{err}");
    let fresh = vault.keys().encrypt(&n, b"new").unwrap();
    assert!(fresh.starts_with("tresor:v1:app/orders:3:"));
    let report = vault.verify().unwrap();
    assert_eq!((report.named_keys, report.named_key_versions), (2, 2));
}

#[test]
fn the_file_holds_no_material_name_or_plaintext_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut vault) = new_vault(dir.path());
    let n = create(&mut vault, "canary-key-name-7f3a", KeyType::Aes256Gcm);
    let plaintext = b"canary-plaintext-9c41e2";
    let env = vault.keys().encrypt(&n, plaintext).unwrap();
    vault.keys().decrypt(&env).unwrap();
    vault.keys().rewrap(&env).unwrap();
    let log = vault.audit_log(&AuditFilter::default()).unwrap();
    let text = format!("{log:?}");
    assert!(!text.contains("canary-plaintext"), "{text}");
    assert!(text.contains("key encrypt") && text.contains("key rewrap"));
    drop(vault);
    let mut bytes = std::fs::read(&path).unwrap();
    if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
        bytes.extend(wal);
    }
    for needle in [&b"canary-key-name"[..], b"canary-plaintext"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{} in the file",
            String::from_utf8_lossy(needle)
        );
    }
}

#[test]
fn audit_entries_name_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut vault) = new_vault(dir.path());
    let n = create(&mut vault, "app/orders", KeyType::Aes256Gcm);
    {
        let mut keys = vault.keys();
        let env = keys.encrypt(&n, b"x").unwrap();
        keys.rotate(&n).unwrap();
        keys.config(&n, 2).unwrap();
        assert!(keys.decrypt(&env).is_err());
        keys.list().unwrap();
        keys.delete(&n).unwrap();
    }
    let filter = AuditFilter {
        name: Some("app/orders".into()),
        ..AuditFilter::default()
    };
    let ops: Vec<(String, String)> = vault
        .audit_log(&filter)
        .unwrap()
        .into_iter()
        .map(|e| (e.operation.to_string(), e.result))
        .collect();
    let expect = [
        ("key create", "ok"),
        ("key encrypt", "ok"),
        ("key rotate", "ok"),
        ("key config", "ok"),
        ("key decrypt", "validation"),
        ("key delete", "ok"),
    ];
    assert_eq!(
        ops,
        expect
            .iter()
            .map(|(o, r)| (o.to_string(), r.to_string()))
            .collect::<Vec<_>>()
    );
    let writes = AuditFilter {
        writes_only: true,
        ..filter
    };
    let ops: Vec<String> = vault
        .audit_log(&writes)
        .unwrap()
        .into_iter()
        .map(|e| e.operation.to_string())
        .collect();
    assert_eq!(
        ops,
        ["key create", "key rotate", "key config", "key delete"]
    );
    // A refused change is recorded too.
    assert!(vault.keys().rotate(&name("app/none")).is_err());
    let last = vault
        .audit_log(&AuditFilter::default())
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (last.operation.as_str(), last.result.as_str()),
        ("key rotate", "not_found")
    );
    vault.audit_verify().unwrap();
}

#[test]
fn other_processes_changes_show_within_the_check_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut app) = new_vault(dir.path());
    let n = create(&mut app, "app/orders", KeyType::Aes256Gcm);
    let mut admin = reopen(&path);
    let mut keys = app.keys();
    let v1 = keys.encrypt(&n, b"x").unwrap();
    admin.keys().rotate(&n).unwrap();
    admin.keys().config(&n, 2).unwrap();
    sleep(CACHE_CHECK_INTERVAL * 2);
    let err = keys.decrypt(&v1).unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err}");
    assert!(
        keys.encrypt(&n, b"x")
            .unwrap()
            .starts_with("tresor:v1:app/orders:2:")
    );
    admin.keys().delete(&n).unwrap();
    sleep(CACHE_CHECK_INTERVAL * 2);
    assert!(matches!(
        keys.encrypt(&n, b"x").unwrap_err(),
        Error::NotFound { .. }
    ));
}

#[test]
fn tampered_rows_are_integrity_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut vault) = new_vault(dir.path());
    let a = create(&mut vault, "app/a", KeyType::Aes256Gcm);
    let b = create(&mut vault, "app/b", KeyType::Aes256Gcm);
    let env_a = vault.keys().encrypt(&a, b"a").unwrap();
    vault.keys().rotate(&b).unwrap();
    drop(vault);
    let edit = |sql: &str| {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(sql).unwrap();
    };
    let check = |what: &str| {
        let mut vault = reopen(&path);
        let err = vault.keys().decrypt(&env_a).unwrap_err();
        assert!(
            matches!(err, Error::Integrity { .. }),
            "{what}: decrypt gave {err}"
        );
        let err = vault.verify().unwrap_err();
        assert!(
            matches!(err, Error::Integrity { .. }),
            "{what}: verify gave {err}"
        );
    };
    let pristine = std::fs::read(&path).unwrap();
    let restore = || {
        let _ = std::fs::remove_file(path.with_extension("db-wal"));
        let _ = std::fs::remove_file(path.with_extension("db-shm"));
        std::fs::write(&path, &pristine).unwrap();
    };
    // Swap the two keys' blind indexes.
    edit(
        "CREATE TEMP TABLE b AS SELECT id, bidx FROM named_keys;
         UPDATE named_keys SET bidx = X'00' WHERE id = 1;
         UPDATE named_keys SET bidx = (SELECT bidx FROM b WHERE id = 1) WHERE id = 2;
         UPDATE named_keys SET bidx = (SELECT bidx FROM b WHERE id = 2) WHERE id = 1;",
    );
    check("swapped blind indexes");
    restore();
    // A plaintext column edited.
    edit("UPDATE named_keys SET min_decrypt = 1, latest = 2 WHERE id = 1");
    check("edited columns");
    restore();
    // Key b's version 1 material moved into key a's row.
    edit(
        "DELETE FROM named_key_versions WHERE key_id_ref = 1;
         UPDATE named_key_versions SET key_id_ref = 1 WHERE key_id_ref = 2 AND version = 1",
    );
    check("moved material");
    restore();
    // A flipped byte in the sealed material.
    edit(
        "UPDATE named_key_versions SET body = substr(body, 1, 30) || X'00' || substr(body, 32) WHERE key_id_ref = 1",
    );
    check("flipped material");
    restore();
    let mut vault = reopen(&path);
    assert_eq!(vault.keys().decrypt(&env_a).unwrap().expose_secret(), b"a");
    vault.verify().unwrap();
}

#[test]
fn a_vault_made_before_named_keys_gets_its_tables_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let (path, vault) = new_vault(dir.path());
    drop(vault);
    Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE named_key_versions; DROP TABLE named_keys;")
        .unwrap();
    let mut vault = reopen(&path);
    assert_eq!(vault.verify().unwrap().named_keys, 0);
    assert!(vault.keys().list().unwrap().is_empty());
    let n = create(&mut vault, "app/orders", KeyType::Aes256Gcm);
    let env = vault.keys().encrypt(&n, b"x").unwrap();
    drop(vault);
    let mut vault = reopen(&path);
    assert_eq!(vault.keys().decrypt(&env).unwrap().expose_secret(), b"x");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn envelopes_round_trip_through_the_vault(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2048), 1..8),
        rotations in 0u32..4,
        xchacha in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut vault) = new_vault(dir.path());
        let key_type = if xchacha { KeyType::XChaCha20Poly1305 } else { KeyType::Aes256Gcm };
        let n = create(&mut vault, "prop/key", key_type);
        let mut keys = vault.keys();
        let mut envelopes = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            if i as u32 % 2 == 1 && (i as u32 / 2) < rotations {
                keys.rotate(&n).unwrap();
            }
            envelopes.push(keys.encrypt(&n, p).unwrap());
        }
        let latest = keys.info(&n).unwrap().latest;
        for (env, p) in envelopes.iter().zip(&payloads) {
            let plain = keys.decrypt(env).unwrap();
            prop_assert_eq!(plain.expose_secret(), &p[..]);
            let newer = keys.rewrap(env).unwrap();
            prop_assert_eq!(envelope_key(&newer).unwrap().1, latest);
            let plain = keys.decrypt(&newer).unwrap();
            prop_assert_eq!(plain.expose_secret(), &p[..]);
        }
    }
}
