//! The keychain store against the real keychains: gnome-keyring's Secret
//! Service on the throwaway D-Bus of `scripts/services`, and kernel keyutils
//! in the fresh session keyring `scripts/services exec` gives its command.
//!
//! Built only with the `service-tests` feature; scripts/test runs it as
//! `scripts/services exec -- cargo test -p tresor-stores --features service-tests --test keychain`.
//! A missing service fails the test: nothing here skips. Every store the
//! tests make has a service name of its own, so tests never see each other's
//! entries.

use std::sync::atomic::{AtomicU32, Ordering};

use tresor_core::{DeleteMode, PutOptions, SecretName, SecretValue, Selector, Store};
use tresor_stores::StoreOptions;
use tresor_stores::conformance::{Fixture, seed_by_put};
use tresor_stores::keychain::{Backend, Keychain, KeychainOptions};

/// Panics unless `scripts/services` set up the throwaway Secret Service bus
/// and this process talks to it (never a desktop's real keyring).
fn require_secret_service() {
    let bus = std::env::var("TRESOR_TEST_SECRET_SERVICE_BUS").unwrap_or_else(|_| {
        panic!(
            "TRESOR_TEST_SECRET_SERVICE_BUS is not set: run these tests under \
             `scripts/services exec -- cargo test -p tresor-stores --features service-tests --test keychain`"
        )
    });
    let session = std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_default();
    assert_eq!(
        session, bus,
        "DBUS_SESSION_BUS_ADDRESS is not the scripts/services bus TRESOR_TEST_SECRET_SERVICE_BUS"
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

fn fresh_service() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "tresor-test-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

fn open(backend: Backend, service: &str) -> Keychain {
    match backend {
        Backend::SecretService => require_secret_service(),
        _ => require_keyutils(),
    }
    let store = Keychain::open(KeychainOptions {
        name: format!("keychain-{}", backend.as_str()),
        backend,
        service: service.to_string(),
    })
    .unwrap_or_else(|e| panic!("{}: {e}", backend.as_str()));
    assert_eq!(store.backend(), backend);
    store
}

struct KeychainFixture {
    backend: Backend,
    service: Option<String>,
}

impl Fixture for KeychainFixture {
    fn store(&mut self, seed: &[(SecretName, SecretValue)]) -> Box<dyn Store> {
        let service = fresh_service();
        let mut store = open(self.backend, &service);
        seed_by_put(&mut store, seed);
        self.service = Some(service);
        Box::new(store)
    }

    fn second_handle(&mut self) -> Option<Box<dyn Store>> {
        Some(Box::new(open(self.backend, self.service.as_ref()?)))
    }
}

mod secret_service {
    tresor_stores::conformance_tests!(super::KeychainFixture {
        backend: tresor_stores::keychain::Backend::SecretService,
        service: None,
    });
}

mod keyutils {
    tresor_stores::conformance_tests!(super::KeychainFixture {
        backend: tresor_stores::keychain::Backend::Keyutils,
        service: None,
    });
}

fn name(s: &str) -> SecretName {
    SecretName::new(s).unwrap()
}

fn value(b: &[u8]) -> SecretValue {
    SecretValue::copy_from(b)
}
