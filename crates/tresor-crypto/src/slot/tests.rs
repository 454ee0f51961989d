//! Key slots: round trips, refusals and known answers.

use super::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn password_slot_round_trip_and_wrong_password() {
    let params = SlotParams::Password(PasswordParams::new(8 * 1024, 1, 1).unwrap());
    let vid = [3; 16];
    let mk = Key::random();
    let good = Credential::password(Zeroizing::new("correct horse".into()));
    let aad = slot_aad(&vid, 1, SlotKind::Password);
    let wrapped = wrap_master(&good.slot_key(&params, &vid).unwrap(), &mk, &aad);
    let back = unwrap_master(&good.slot_key(&params, &vid).unwrap(), &wrapped, &aad).unwrap();
    assert_eq!(back.expose_secret(), mk.expose_secret());
    let bad = Credential::password(Zeroizing::new("wrong".into()));
    assert!(unwrap_master(&bad.slot_key(&params, &vid).unwrap(), &wrapped, &aad).is_err());
    // The slot is bound to its id and kind.
    let other = slot_aad(&vid, 2, SlotKind::Password);
    assert!(unwrap_master(&good.slot_key(&params, &vid).unwrap(), &wrapped, &other).is_err());
}

/// Exactly the format tresor writes: base64 of 32 bytes, with or
/// without one newline. Passwords, raw bytes, other lengths, whitespace
/// around the text and non-canonical base64 are refused.
#[test]
fn key_material_accepts_exactly_base64_of_32_bytes() {
    let text = new_key_file_text();
    assert_eq!(text.len(), KEY_FILE_TEXT_LEN + 1);
    let material = |t: &[u8]| match Credential::key_material(t) {
        Ok(c) if c.kind() == SlotKind::KeyFile => Ok(c.expose_bytes().unwrap().to_vec()),
        Ok(_) => panic!("key_material gives key material"),
        Err(e) => Err(e),
    };
    let m = material(text.as_bytes()).unwrap();
    assert_eq!(m.len(), 32);
    let bare = text.trim_end();
    assert_eq!(material(bare.as_bytes()).unwrap(), m);
    assert_eq!(material(format!("{bare}\r\n").as_bytes()).unwrap(), m);

    let engine = base64::engine::general_purpose::STANDARD;
    let refused: Vec<Vec<u8>> = vec![
        b"correct horse battery staple, 40 chars!!".to_vec(),
        vec![9u8; 40],
        vec![9u8; 32],
        b"short".to_vec(),
        engine.encode([7u8; 48]).into_bytes(),
        engine.encode([7u8; 31]).into_bytes(),
        format!(" {bare}").into_bytes(),
        format!("{bare}\n\n").into_bytes(),
        format!("{bare} ").into_bytes(),
        bare.trim_end_matches('=').as_bytes().to_vec(),
        // The last character carries unused bits: only one spelling is canonical.
        // (a canonical last character has its two low bits clear).
        format!("{}B=", &bare[..42]).into_bytes(),
        Vec::new(),
    ];
    for t in refused {
        let e = material(&t).unwrap_err().to_string();
        assert!(
            e.contains("TRESOR_PASSWORD") && e.contains("Argon2id"),
            "{e}"
        );
        assert!(e.contains("base64 of 32 random bytes"), "{e}");
    }
}

#[test]
fn recovery_key_text_round_trips() {
    let key = RecoveryKey::generate();
    let shown = key.expose_display();
    assert_eq!(shown.len(), 52 + 12);
    let back = RecoveryKey::parse(&shown.to_lowercase().replace('-', " ")).unwrap();
    assert_eq!(&back.0[..], &key.0[..]);
    assert!(RecoveryKey::parse("ABCD-EFGH").is_err());
}

/// Pins Argon2id and the key-file derivation (VAULT-FORMAT.md).
#[test]
fn slot_keys_match_known_answers() {
    let p = PasswordParams {
        m_kib: 8 * 1024,
        t: 1,
        p: 1,
        salt: [0x11; 16],
    };
    let key = argon2id(b"password", &p).unwrap();
    assert_eq!(hex(key.expose_secret()), KAT_ARGON2);
    let material = Credential(Inner::KeyMaterial(Zeroizing::new(vec![0x22; 32])));
    let key = material
        .slot_key(&SlotParams::KeyFile, &[0x33; 16])
        .unwrap();
    assert_eq!(hex(key.expose_secret()), KAT_KEY_FILE);
}

/// Keychain slot keys: HKDF with their own info, bound to the backend-free
/// slot parameters and the vault id.
#[test]
fn keychain_slot_key_is_hkdf_with_its_own_info() {
    let bytes = vec![0x22; 32];
    let vid = [0x33; 16];
    let cred = Credential::keychain(KeychainBackend::Keyutils, Zeroizing::new(bytes.clone()));
    assert_eq!(cred.kind(), SlotKind::Keychain);
    let params = SlotParams::Keychain {
        backend: KeychainBackend::SecretService,
    };
    assert_eq!(params.kind(), SlotKind::Keychain);
    let key = cred.slot_key(&params, &vid).unwrap();
    assert_eq!(
        key.expose_secret(),
        hkdf(&bytes, &vid, KEYCHAIN_INFO).expose_secret()
    );
    let as_key_file = Credential(Inner::KeyMaterial(Zeroizing::new(bytes)));
    let other = as_key_file.slot_key(&SlotParams::KeyFile, &vid).unwrap();
    assert_ne!(key.expose_secret(), other.expose_secret());
    assert!(cred.slot_key(&SlotParams::KeyFile, &vid).is_err());
    for b in [KeychainBackend::SecretService, KeychainBackend::Keyutils] {
        assert_eq!(KeychainBackend::parse(b.as_str()), Some(b));
    }
    assert_eq!(SlotKind::parse("keychain"), Some(SlotKind::Keychain));
    assert_eq!(SlotKind::Keychain as u8, 4);
}

/// PKCS#11 slot keys: HKDF of the token-unwrapped bytes with their own
/// info, so the same bytes give another key than in any other kind.
#[test]
fn pkcs11_slot_key_matches_known_answer() {
    let params = SlotParams::Pkcs11(Pkcs11Params {
        module: "/m.so".into(),
        token_label: "t".into(),
        token_serial: "s".into(),
        key_label: "k".into(),
        key_id: vec![1],
        mechanism: Pkcs11Mechanism::AesGcm,
        wrapped: vec![],
    });
    assert_eq!(params.kind(), SlotKind::Pkcs11);
    let SlotParams::Pkcs11(inner) = &params else {
        unreachable!()
    };
    let cred = Credential::pkcs11(inner.clone(), Zeroizing::new(vec![0x22; 32]));
    assert_eq!(cred.kind(), SlotKind::Pkcs11);
    assert_eq!(format!("{cred:?}"), "Credential::Pkcs11([redacted])");
    let key = cred.slot_key(&params, &[0x33; 16]).unwrap();
    assert_eq!(hex(key.expose_secret()), KAT_PKCS11);
    let keychain = Credential::keychain(KeychainBackend::Keyutils, Zeroizing::new(vec![0x22; 32]));
    let other = keychain
        .slot_key(
            &SlotParams::Keychain {
                backend: KeychainBackend::Keyutils,
            },
            &[0x33; 16],
        )
        .unwrap();
    assert_ne!(key.expose_secret(), other.expose_secret());
    assert!(cred.slot_key(&SlotParams::Recovery, &[0x33; 16]).is_err());
    assert_eq!(SlotKind::parse("pkcs11"), Some(SlotKind::Pkcs11));
    assert_eq!(SlotKind::Pkcs11 as u8, 5);
    assert_eq!(
        pkcs11_wrap_aad(&[0x33; 16]),
        [&b"tresor v1 pkcs11 wrap"[..], &[0x33; 16]].concat()
    );
}

const KAT_PKCS11: &str = "998b2f28378a35772760e5707d1625f772f42669848fddfe4479a02235c1c416";
const KAT_ARGON2: &str = "53f33cdc442bdacd1c693394f8b9f19c917bbacf289828f4b62f94a46cc1ff8e";
const KAT_KEY_FILE: &str = "70d637916c2ccab213c69f3f46e5b9a6c415ea597598ab54ce74926b2c574e7c";
