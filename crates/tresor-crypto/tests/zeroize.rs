//! Keys, credentials, recovery keys and opened plaintexts are wiped before
//! their memory goes back to the allocator.
//!
//! This test binary installs a global allocator that wraps the system one
//! and, while armed, searches every buffer it frees (including the old buffer
//! of every `realloc`) for marker byte patterns before releasing it. The
//! markers are the secrets themselves: a chosen key or plaintext, or the
//! bytes a derivation is known to give (computed first and kept on the
//! stack). Each test asserts that no freed buffer held a marker. A positive
//! control proves the detector sees an ordinary `Vec` freed without wiping.
//!
//! The tests take one lock, so only one of them arms the detector at a time.

use std::hint::black_box;

use tresor_crypto::slot::{
    Credential, PasswordParams, RecoveryKey, SlotParams, unwrap_master, wrap_master,
};
use tresor_crypto::{Key, RecordAad, RecordKind, VaultKeys, open, seal};
use zeroize::Zeroizing;

// ---------------------------------------------------------------------------
// The detecting allocator. It never allocates itself: markers live in static
// atomics and the search reads the freed buffer in place.

#[path = "../../tresor-core/tests/support/detector.rs"]
mod detector;
use detector::*;

// ---------------------------------------------------------------------------
// Inputs. Every marker lives in static memory or on the stack.

const KEY_MARKER: &[u8; 32] = b"tresor-zeroize-KEY-MARKER-32byte";
const PLAIN_MARKER: &[u8; 24] = b"tresor-zeroize-PLAIN-7q!";
const VAULT_ID: [u8; 16] = [0x5c; 16];

/// A copy of a key's bytes, on the stack.
fn stack_copy(key: &Key) -> [u8; 32] {
    *black_box(key.expose_secret())
}

/// Standard base64 with padding of `input` into `out`; returns the length.
fn base64(input: &[u8], out: &mut [u8]) -> usize {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut n = 0;
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            out[n + i] = if i <= chunk.len() {
                ALPHABET[(v >> (18 - 6 * i) & 63) as usize]
            } else {
                b'='
            };
        }
        n += 4;
    }
    n
}

/// `N` distinctive bytes, different for each seed.
fn pattern<const N: usize>(seed: u8) -> [u8; N] {
    std::array::from_fn(|i| seed.wrapping_add((i as u8).wrapping_mul(37)) ^ 0xa5)
}

// ---------------------------------------------------------------------------
// The tests.

/// The detector works: a key-sized and a large Vec freed with a marker in
/// them are seen, and so is the old buffer of a String that grew.
#[test]
fn positive_control_detector_sees_unwiped_buffers() {
    let serial = serial();
    let armed = arm(&serial, &[KEY_MARKER]);
    drop(black_box(KEY_MARKER.to_vec()));
    assert_eq!(armed.disarm(), 1, "detector missed a plain Vec");

    let armed = arm(&serial, &[PLAIN_MARKER]);
    let mut big = vec![0u8; 100_000];
    big[77_777..77_777 + PLAIN_MARKER.len()].copy_from_slice(PLAIN_MARKER);
    drop(black_box(big));
    assert_eq!(armed.disarm(), 1, "detector missed a large Vec");

    let armed = arm(&serial, &[PLAIN_MARKER]);
    let mut grown = String::from(std::str::from_utf8(PLAIN_MARKER).unwrap());
    grown.push('x'); // reallocates: the old buffer is freed holding the marker
    let grown = black_box(grown);
    assert_eq!(
        armed.disarm(),
        1,
        "detector missed the old buffer of a realloc"
    );
    drop(grown);
}

/// `Key::from_slice`, `Key::random` and `Key::derive`: every key's box is
/// wiped on drop, derived keys included.
#[test]
fn keys_are_wiped_on_drop() {
    let serial = serial();
    // The derived bytes, computed first and kept on the stack.
    let derived = {
        let k = Key::from_slice(KEY_MARKER).unwrap();
        stack_copy(&k.derive(b"salt", b"tresor zeroize test"))
    };

    let armed = arm(&serial, &[KEY_MARKER, &derived]);
    let key = Key::from_slice(KEY_MARKER).unwrap();
    let child = key.derive(b"salt", b"tresor zeroize test");
    assert_eq!(child.expose_secret(), &derived);
    black_box(key.mac(&[b"data"]));
    drop(child);
    drop(key);
    assert_no_leak(armed.disarm(), "Key::from_slice / Key::derive");

    // A random key: its bytes are known only once made.
    for _ in 0..4 {
        let key = Key::random();
        let bytes = stack_copy(&key);
        let child = key.derive(&VAULT_ID, b"tresor zeroize test");
        let child_bytes = stack_copy(&child);
        let armed = arm(&serial, &[&bytes, &child_bytes]);
        drop(child);
        drop(key);
        assert_no_leak(armed.disarm(), "Key::random");
    }
}

/// `VaultKeys::derive`: the master key and the four keys it derives.
#[test]
fn vault_keys_are_wiped_on_drop() {
    let serial = serial();
    let expected: [[u8; 32]; 4] = {
        let master = Key::from_slice(KEY_MARKER).unwrap();
        let keys = VaultKeys::derive(&master, &VAULT_ID);
        [&keys.index, &keys.audit, &keys.wrap, &keys.fingerprint].map(stack_copy)
    };
    let armed = arm(
        &serial,
        &[
            KEY_MARKER,
            &expected[0],
            &expected[1],
            &expected[2],
            &expected[3],
        ],
    );
    let master = Key::from_slice(KEY_MARKER).unwrap();
    let keys = VaultKeys::derive(&master, &VAULT_ID);
    assert_eq!(keys.wrap.expose_secret(), &expected[2]);
    black_box(keys.blind_index("openai/api_key"));
    black_box(keys.fingerprint(b"value"));
    black_box(keys.audit_mac(&[0; 32], 1, 2, b"body"));
    drop(keys);
    drop(master);
    assert_no_leak(armed.disarm(), "VaultKeys::derive");
}

/// `Credential::password`: the password and the Argon2id slot key.
#[test]
fn password_credential_is_wiped_on_drop() {
    let serial = serial();
    const PASSWORD: &str = "correct horse battery staple 7q!";
    let params = SlotParams::Password(PasswordParams::new(8 * 1024, 1, 1).unwrap());
    let expected = {
        let cred = Credential::password(Zeroizing::new(PASSWORD.to_string()));
        stack_copy(&cred.slot_key(&params, &VAULT_ID).unwrap())
    };
    let armed = arm(&serial, &[PASSWORD.as_bytes(), &expected]);
    let cred = Credential::password(Zeroizing::new(PASSWORD.to_string()));
    let key = cred.slot_key(&params, &VAULT_ID).unwrap();
    assert_eq!(key.expose_secret(), &expected);
    drop(key);
    drop(cred);
    assert_no_leak(armed.disarm(), "Credential::password / Argon2id");
}

/// `Credential::key_material`: the material decoded from a key file's
/// text and the slot key; and text it refuses (a passphrase, base64 of the
/// wrong length, base64 that goes bad at its end) leaves no copy either.
#[test]
fn key_material_is_wiped_on_drop() {
    let serial = serial();
    let slot_key_of = |text: &[u8]| {
        let cred = Credential::key_material(text).unwrap();
        stack_copy(&cred.slot_key(&SlotParams::KeyFile, &VAULT_ID).unwrap())
    };
    let run = |text: &[u8], markers: &[&[u8]], what: &str| {
        let expected = slot_key_of(text);
        let mut all = markers.to_vec();
        all.push(&expected);
        let armed = arm(&serial, &all);
        let cred = Credential::key_material(text).unwrap();
        let key = cred.slot_key(&SlotParams::KeyFile, &VAULT_ID).unwrap();
        assert_eq!(key.expose_secret(), &expected);
        drop(key);
        drop(cred);
        assert_no_leak(armed.disarm(), what);
    };
    let refused = |text: &[u8], markers: &[&[u8]], what: &str| {
        let armed = arm(&serial, markers);
        let err = Credential::key_material(text).unwrap_err();
        assert!(err.to_string().contains("TRESOR_PASSWORD"), "{err}");
        drop(err);
        assert_no_leak(armed.disarm(), what);
    };

    // Base64 of 32 marker bytes (as a key file holds it, with a newline).
    let material: [u8; 32] = pattern(1);
    let mut text = [0u8; 45];
    let n = base64(&material, &mut text);
    assert_eq!(n, 44);
    text[n] = b'\n';
    run(&text, &[&material], "key_material (base64)");

    // A passphrase of 40 characters: refused, not copied.
    let phrase: [u8; 40] = *b"correct-horse-battery-staple-zeroize-40c";
    refused(&phrase, &[&phrase], "key_material (a passphrase)");

    // Base64 of 48 bytes: the wrong length, refused before decoding.
    let long: [u8; 48] = pattern(2);
    let mut text = [0u8; 64];
    assert_eq!(base64(&long, &mut text), 64);
    refused(
        &text,
        &[&text[..], &long[..]],
        "key_material (base64 of 48 bytes)",
    );

    // 44 characters that are base64 up to their last four: the decoder has
    // written most of the decoded bytes before it finds the bad character.
    let bad: [u8; 32] = pattern(4);
    let mut text = [0u8; 44];
    base64(&bad, &mut text);
    text[40..].copy_from_slice(b"!!!!");
    refused(
        &text,
        &[&text[..40], &bad[..24]],
        "key_material (base64, bad tail)",
    );
}

/// `RecoveryKey::generate`, `display` and `parse`, and its credential: the
/// key bytes, its text (grouped, and ungrouped as parsing cleans it), and
/// the slot key.
#[test]
fn recovery_key_is_wiped_on_drop() {
    let serial = serial();
    for _ in 0..3 {
        let generated = RecoveryKey::generate();
        let mut bytes = [0u8; 32];
        let credential = generated.credential();
        let m = credential
            .expose_bytes()
            .expect("a recovery key gives a recovery credential");
        bytes.copy_from_slice(m);
        drop(credential);
        let mut grouped = [0u8; 64];
        grouped.copy_from_slice(generated.expose_display().as_bytes());
        let mut plain = [0u8; 52];
        for (p, c) in plain.iter_mut().zip(grouped.iter().filter(|c| **c != b'-')) {
            *p = *c;
        }
        // Typed in lower case with spaces: still the same key.
        let mut typed = grouped;
        for c in typed.iter_mut() {
            *c = if *c == b'-' {
                b' '
            } else {
                c.to_ascii_lowercase()
            };
        }
        let expected = {
            let cred = generated.credential();
            stack_copy(&cred.slot_key(&SlotParams::Recovery, &VAULT_ID).unwrap())
        };
        drop(generated);

        let armed = arm(
            &serial,
            &[
                &bytes,
                &grouped,
                &plain,
                &plain[..16],
                &plain[20..36],
                &expected,
            ],
        );
        let text = std::str::from_utf8(&grouped).unwrap();
        let parsed = RecoveryKey::parse(text).unwrap();
        let shown = parsed.expose_display();
        assert_eq!(shown.as_bytes(), &grouped[..]);
        let again = RecoveryKey::parse(std::str::from_utf8(&typed).unwrap()).unwrap();
        // Mistyped keys are refused, and what was decoded of them is wiped.
        let mut bad = typed;
        bad[63] = b'1'; // not in the base32 alphabet
        assert!(RecoveryKey::parse(std::str::from_utf8(&bad).unwrap()).is_err());
        assert!(RecoveryKey::parse(std::str::from_utf8(&typed[..62]).unwrap()).is_err());
        let cred = again.credential();
        let key = cred.slot_key(&SlotParams::Recovery, &VAULT_ID).unwrap();
        assert_eq!(key.expose_secret(), &expected);
        drop(key);
        drop(cred);
        drop(again);
        drop(shown);
        drop(parsed);
        assert_no_leak(armed.disarm(), "RecoveryKey::parse / display / credential");
    }

    // A fresh key, displayed: known only once made, so checked on drop.
    let generated = RecoveryKey::generate();
    let shown = generated.expose_display();
    let mut grouped = [0u8; 64];
    grouped.copy_from_slice(shown.as_bytes());
    let armed = arm(&serial, &[&grouped]);
    drop(shown);
    drop(generated);
    assert_no_leak(armed.disarm(), "RecoveryKey::generate / display");
}

/// `open`: the plaintext it returns, small or large, is wiped on drop, and
/// a failed open leaves no plaintext behind. So is an unwrapped master key.
#[test]
fn opened_plaintext_is_wiped_on_drop() {
    let serial = serial();
    let aad = RecordAad {
        kind: RecordKind::SecretVersion,
        vault_id: VAULT_ID,
        row: 1,
        version: 1,
        key_id: 1,
    }
    .bytes();
    for len in [PLAIN_MARKER.len(), 4096, 300_000] {
        let mut plaintext = Zeroizing::new(vec![0u8; len]);
        for (i, b) in plaintext.iter_mut().enumerate() {
            *b = PLAIN_MARKER[i % PLAIN_MARKER.len()];
        }
        let key = Key::from_slice(KEY_MARKER).unwrap();
        let blob = seal(&key, &aad, &plaintext);

        let armed = arm(&serial, &[PLAIN_MARKER, KEY_MARKER]);
        let plain = open(&key, &aad, &blob).unwrap();
        assert!(plain[..] == plaintext[..]);
        drop(plain);
        let mut wrong_aad = aad;
        wrong_aad[46] ^= 1;
        assert!(open(&key, &wrong_aad, &blob).is_err());
        let mut tampered = blob.clone();
        tampered[30] ^= 1;
        assert!(open(&key, &aad, &tampered).is_err());
        drop(key);
        assert_no_leak(armed.disarm(), &format!("open of {len} bytes"));
        drop(plaintext);
    }

    // wrap_master / unwrap_master.
    let slot_key = Key::random();
    let aad = b"tresor zeroize slot aad";
    let wrapped = {
        let master = Key::from_slice(KEY_MARKER).unwrap();
        wrap_master(&slot_key, &master, aad)
    };
    let armed = arm(&serial, &[KEY_MARKER]);
    let master = unwrap_master(&slot_key, &wrapped, aad).unwrap();
    assert_eq!(master.expose_secret(), KEY_MARKER);
    drop(master);
    assert_no_leak(armed.disarm(), "unwrap_master");
}

/// `new_key_file_text`: the text and the key material read back from it.
#[test]
fn key_file_text_is_wiped_on_drop() {
    let serial = serial();
    let text = tresor_crypto::slot::new_key_file_text();
    let mut copy = [0u8; 45];
    copy.copy_from_slice(text.as_bytes());
    assert_eq!(copy[44], b'\n');
    let credential = Credential::key_material(&copy).unwrap();
    let m = credential
        .expose_bytes()
        .expect("a key file gives key material");
    let mut material = [0u8; 32];
    material.copy_from_slice(m);
    drop(credential);
    let armed = arm(&serial, &[&copy[..44], &material]);
    let cred = Credential::key_material(text.as_bytes()).unwrap();
    drop(cred);
    drop(text);
    assert_no_leak(armed.disarm(), "new_key_file_text / key_material");
}
