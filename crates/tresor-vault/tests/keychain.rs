//! Keychain slots against the real keychains: gnome-keyring's Secret Service
//! on the throwaway D-Bus of `scripts/services`, and kernel keyutils in the
//! fresh session keyring `scripts/services exec` gives its command.
//!
//! Built only with the `service-tests` feature; scripts/test runs it as
//! `scripts/services exec -- cargo test -p tresor-vault --features service-tests --test keychain`.
//! A missing service fails the test: nothing here skips.
#![allow(missing_docs)]

mod common;

use tresor_core::Selector;
use tresor_crypto::slot::{Credential, KeychainBackend, SlotKind, new_keychain_key};
use tresor_vault::{LockedVault, OpenOptions, keychain};

use common::{fast_password_params, name, new_vault, value};

/// Panics unless `scripts/services` set up the throwaway Secret Service bus
/// and this process talks to it (never a desktop's real keyring).
fn require_secret_service() {
    let bus = std::env::var("TRESOR_TEST_SECRET_SERVICE_BUS").unwrap_or_else(|_| {
        panic!(
            "TRESOR_TEST_SECRET_SERVICE_BUS is not set: run these tests under \
             `scripts/services exec -- cargo test ... --features service-tests --test keychain`"
        )
    });
    let session = std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_default();
    assert_eq!(
        session, bus,
        "DBUS_SESSION_BUS_ADDRESS is not the scripts/services bus TRESOR_TEST_SECRET_SERVICE_BUS"
    );
    assert_eq!(
        keychain::default_backend(),
        KeychainBackend::SecretService,
        "no Secret Service answers on {bus} (is gnome-keyring running? scripts/services status)"
    );
}

/// Panics unless running inside `scripts/services exec` (a fresh kernel
/// session keyring).
fn require_keyutils() {
    assert_eq!(
        std::env::var("TRESOR_TEST_KEYUTILS").as_deref(),
        Ok("1"),
        "TRESOR_TEST_KEYUTILS is not 1: run these tests under `scripts/services exec -- ...`, \
         which gives them a fresh kernel session keyring"
    );
}

/// Adds a keychain slot, unlocks with nothing but the keychain entry,
/// rejects a tampered entry, and removes the slot and its entry.
fn slot_round_trip(backend: KeychainBackend) {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut vault) = new_vault(dir.path());
    let secret = name("app/token");
    vault
        .put(&secret, &value(b"s3cr3t"), &Default::default())
        .unwrap();
    let vault_id = vault.id();
    let credential = new_keychain_key(backend);
    let slot = vault
        .add_slot_with(&credential, &fast_password_params(), Some("kc"), |id| {
            keychain::store(&vault_id, id, &credential)
        })
        .unwrap();
    let info = vault.slots().unwrap();
    let info = info.iter().find(|s| s.id == slot).unwrap();
    assert_eq!(info.kind, SlotKind::Keychain);
    assert_eq!(info.backend, Some(backend));
    drop(vault);

    // Unlock through the keychain alone.
    let locked = LockedVault::open(&path, &OpenOptions::default()).unwrap();
    assert_eq!(locked.keychain_slots().unwrap(), vec![(slot, backend)]);
    let read = keychain::load(&vault_id, slot, backend).unwrap();
    let mut vault = locked.unlock_any(&[read]).unwrap();
    assert_eq!(vault.unlocked_slot(), Some(slot));
    let got = vault.get(&secret, Selector::default()).unwrap();
    assert_eq!(got.value.expose_secret(), b"s3cr3t");

    // Another key under the same account opens nothing.
    let other = new_keychain_key(backend);
    keychain::store(&vault_id, slot, &other).unwrap();
    drop(vault);
    let locked = LockedVault::open(&path, &OpenOptions::default()).unwrap();
    let read = keychain::load(&vault_id, slot, backend).unwrap();
    let Err(err) = locked.unlock_any(&[read]) else {
        panic!("a wrong key must fail")
    };
    assert!(err.to_string().contains("keychain"), "{err}");
    keychain::store(&vault_id, slot, &credential).unwrap();

    // Remove the slot, then its entry; a second delete is not an error.
    let mut vault = common::reopen(&path);
    vault.remove_slot(slot).unwrap();
    keychain::delete(&vault_id, slot, backend).unwrap();
    let Err(err) = keychain::load(&vault_id, slot, backend) else {
        panic!("the entry is gone")
    };
    assert!(err.to_string().contains(backend.as_str()), "{err}");
    keychain::delete(&vault_id, slot, backend).unwrap();
}

#[test]
fn secret_service_slot_round_trip() {
    require_secret_service();
    slot_round_trip(KeychainBackend::SecretService);
}

#[test]
fn keyutils_slot_round_trip() {
    require_keyutils();
    slot_round_trip(KeychainBackend::Keyutils);
}

/// A failed add leaves neither a slot nor (through the caller) an entry.
#[test]
fn failed_store_cancels_the_slot() {
    require_keyutils();
    let dir = tempfile::tempdir().unwrap();
    let (_path, mut vault) = new_vault(dir.path());
    let before = vault.slots().unwrap().len();
    let credential = new_keychain_key(KeychainBackend::Keyutils);
    let Err(err) = vault.add_slot_with(&credential, &fast_password_params(), None, |_| {
        Err(tresor_core::Error::Validation("refused".into()))
    }) else {
        panic!("the add fails")
    };
    assert!(err.to_string().contains("refused"));
    assert_eq!(vault.slots().unwrap().len(), before);
}

/// An entry that is not 32 bytes of base64 is refused, naming the backend.
#[test]
fn malformed_entry_is_refused() {
    require_keyutils();
    let vault_id = [0x5a; 16];
    let short = Credential::keychain(KeychainBackend::Keyutils, vec![1u8; 8].into());
    keychain::store(&vault_id, 1, &short).unwrap();
    let Err(err) = keychain::load(&vault_id, 1, KeychainBackend::Keyutils) else {
        panic!("8 bytes are refused")
    };
    assert!(err.to_string().contains("keyutils"), "{err}");
    keychain::delete(&vault_id, 1, KeychainBackend::Keyutils).unwrap();
}
