//! Named-key envelopes (`tresor:v1:<name>:<version>:<base64url>`), as
//! `tresor key decrypt` and `key rewrap` read them.
//!
//! The input is the envelope text. It is split by `Envelope::parse` and, if
//! it parses, opened with a fixed key of each type; then it is decrypted
//! and rewrapped through a working copy of the fixture vault, whose named
//! keys `app/aes` (AES-256-GCM, two versions, minimum 1), `app/xchacha`
//! (XChaCha20-Poly1305) and `app/age` (age) sealed the seeds. A text
//! that opens must have parsed, and a rewrapped envelope must open to the
//! same plaintext.

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use tresor::Vault;
use tresor_crypto::{Envelope, Key, KeyType};

#[path = "common.rs"]
mod common;

/// Execs between fresh copies of the fixture vault (uses are audited in
/// groups, so the working copy grows slowly with the names tried).
const REFRESH: u32 = 5000;

struct Working {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    vault: Option<Vault>,
    runs: u32,
}

thread_local! {
    static WORKING: RefCell<Working> = RefCell::new({
        let dir = common::workdir();
        let path = dir.path().join("vault.db");
        Working { _dir: dir, path, vault: None, runs: 0 }
    });
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Envelope::parse(text);
    if let Ok(envelope) = &parsed {
        for key_type in KeyType::ALL {
            let key = Key::from_slice(&[7; 32]).expect("32 bytes");
            if key_type.seals_envelopes() {
                let _ = envelope.open(key_type, &key);
            }
        }
    }
    WORKING.with_borrow_mut(|w| {
        w.runs += 1;
        if w.vault.is_none() || w.runs % REFRESH == 0 {
            w.vault = None;
            w.vault = Some(common::fixture_vault(&w.path));
        }
        let vault = w.vault.as_mut().expect("opened above");
        let mut keys = vault.keys();
        let opened = keys.decrypt(text);
        if opened.is_ok() {
            assert!(parsed.is_ok(), "an envelope that does not parse opened");
        }
        if let Ok(rewrapped) = keys.rewrap(text) {
            let again = keys
                .decrypt(&rewrapped)
                .expect("a rewrapped envelope opens");
            let first = opened.expect("an envelope that rewraps also opens");
            assert_eq!(again.expose_secret(), first.expose_secret());
        }
    });
});
