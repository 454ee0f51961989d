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

#[test]
fn auto_and_from_options_pick_the_secret_service_on_its_bus() {
    require_secret_service();
    let service = fresh_service();
    let options = StoreOptions::new("login").with("service", service.as_str());
    let mut store = Keychain::from_options(&options).unwrap();
    assert_eq!(store.backend(), Backend::SecretService);
    assert_eq!((store.name(), store.service()), ("login", service.as_str()));
    let health = store.health();
    assert!(
        health.reachable && health.authenticated,
        "{}",
        health.detail
    );
    let options = StoreOptions::new("kernel")
        .with("backend", "keyutils")
        .with("service", service.as_str());
    require_keyutils();
    let mut kernel = Keychain::from_options(&options).unwrap();
    assert_eq!(kernel.backend(), Backend::Keyutils);
    assert!(kernel.health().reachable);
}

#[test]
fn listing_sees_only_its_own_service_on_the_secret_service() {
    let mut a = open(Backend::SecretService, &fresh_service());
    let mut b = open(Backend::SecretService, &fresh_service());
    a.put(&name("app/one"), &value(b"1"), &PutOptions::default())
        .unwrap();
    a.put(&name("app/two"), &value(b"2"), &PutOptions::default())
        .unwrap();
    b.put(&name("app/three"), &value(b"3"), &PutOptions::default())
        .unwrap();
    let listed: Vec<String> = a
        .list("app/")
        .unwrap()
        .iter()
        .map(|i| i.name.to_string())
        .collect();
    assert_eq!(listed, ["app/one", "app/two"]);
    a.delete(&name("app/one"), DeleteMode::Purge).unwrap();
    let listed: Vec<String> = a
        .list("")
        .unwrap()
        .iter()
        .map(|i| i.name.to_string())
        .collect();
    assert_eq!(listed, ["app/two"]);
    assert_eq!(b.list("").unwrap().len(), 1);
}

#[test]
fn an_entry_written_by_secret_tool_reads_back() {
    let mut store = open(Backend::SecretService, &fresh_service());
    let status = std::process::Command::new("secret-tool")
        .args([
            "store",
            "--label",
            "tresor test",
            "service",
            store.service(),
            "username",
            "ext/token",
        ])
        .stdin({
            use std::io::Write;
            let mut child_in = tempfile::tempfile().unwrap();
            child_in.write_all(b"from-secret-tool").unwrap();
            use std::io::Seek;
            child_in.rewind().unwrap();
            child_in
        })
        .status()
        .expect("secret-tool (libsecret-tools, installed by scripts/services)");
    assert!(status.success());
    let got = store.get(&name("ext/token"), Selector::default()).unwrap();
    assert_eq!(got.value.expose_secret(), b"from-secret-tool");
    assert!(
        store
            .list("ext/")
            .unwrap()
            .iter()
            .any(|i| i.name.as_str() == "ext/token")
    );
}

#[test]
fn keyutils_cannot_list_and_nothing_soft_deletes() {
    for backend in [Backend::Keyutils, Backend::SecretService] {
        let mut store = open(backend, &fresh_service());
        let n = name("k/v");
        store
            .put(&n, &value(b"first"), &PutOptions::default())
            .unwrap();
        assert_eq!(
            store
                .put(&n, &value(b"second"), &PutOptions::default())
                .unwrap(),
            1
        );
        let got = store.get(&n, Selector::default()).unwrap();
        assert_eq!(
            (got.version, got.value.expose_secret()),
            (1, &b"second"[..])
        );
        let e = store.delete(&n, DeleteMode::Soft).unwrap_err();
        assert_eq!(e.kind(), "unsupported", "{e}");
        assert_eq!(
            store.get(&n, Selector::Version(2)).unwrap_err().kind(),
            "unsupported"
        );
        assert_eq!(store.history(&n).unwrap_err().kind(), "unsupported");
        if backend == Backend::Keyutils {
            assert_eq!(store.list("").unwrap_err().kind(), "unsupported");
            let big = value(&vec![7; 32_768]);
            assert_eq!(
                store
                    .put(&n, &big, &PutOptions::default())
                    .unwrap_err()
                    .kind(),
                "too_large"
            );
        }
        store.delete(&n, DeleteMode::Purge).unwrap();
        assert_eq!(
            store.get(&n, Selector::default()).unwrap_err().kind(),
            "not_found"
        );
        assert_eq!(
            store.delete(&n, DeleteMode::Purge).unwrap_err().kind(),
            "not_found"
        );
    }
}
