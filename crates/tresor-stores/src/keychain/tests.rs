//! The store's logic over keyring-core's mock store, which needs no
//! keychain; tests/keychain.rs runs the same suite on the real ones.

use super::*;
use crate::conformance::{self, Fixture, seed_by_put};

impl Keychain {
    fn over(store: Arc<CredentialStore>, service: &str) -> Self {
        Self {
            name: "keychain-mock".to_string(),
            service: service.to_string(),
            backend: Backend::Keyutils,
            store,
        }
    }
}

struct MockFixture(Option<Arc<CredentialStore>>);

impl Fixture for MockFixture {
    fn store(&mut self, seed: &[(SecretName, SecretValue)]) -> Box<dyn Store> {
        let backing: Arc<CredentialStore> = keyring_core::mock::Store::new().unwrap();
        let mut store = Keychain::over(backing.clone(), DEFAULT_SERVICE);
        seed_by_put(&mut store, seed);
        self.0 = Some(backing);
        Box::new(store)
    }

    fn second_handle(&mut self) -> Option<Box<dyn Store>> {
        Some(Box::new(Keychain::over(self.0.clone()?, DEFAULT_SERVICE)))
    }
}

#[test]
fn the_conformance_suite_passes_over_the_mock() {
    conformance::run_all(&mut MockFixture(None));
}

#[test]
fn backends_parse_and_print() {
    for b in [
        Backend::Auto,
        Backend::Native,
        Backend::Keyutils,
        Backend::SecretService,
    ] {
        assert_eq!(b.as_str().parse::<Backend>(), Ok(b));
    }
    assert!("gnome".parse::<Backend>().is_err());
}

#[test]
fn from_options_rejects_bad_backends_and_unknown_keys() {
    let o = StoreOptions::new("kc").with("backend", "kwallet-secret");
    let e = Keychain::from_options(&o).unwrap_err().to_string();
    assert!(
        e.contains("backend") && !e.contains("kwallet-secret"),
        "{e}"
    );
    let o = StoreOptions::new("kc")
        .with("backend", "keyutils")
        .with("servce", "x");
    let e = Keychain::from_options(&o).unwrap_err().to_string();
    assert!(e.contains("servce"), "{e}");
    let o = StoreOptions::new("kc").with("service", "");
    assert_eq!(
        Keychain::from_options(&o).unwrap_err().kind(),
        "invalid_option"
    );
}

#[test]
fn errors_that_carry_secret_bytes_never_show_them() {
    let backing: Arc<CredentialStore> = keyring_core::mock::Store::new().unwrap();
    let mut store = Keychain::over(backing.clone(), "svc");
    let n = SecretName::new("a/b").unwrap();
    store
        .put(&n, &SecretValue::copy_from(b"x"), &PutOptions::default())
        .unwrap();
    let canary = b"tresor-keychain-canary".to_vec();
    for injected in [
        KeyringError::BadEncoding(canary.clone()),
        KeyringError::BadDataFormat(canary.clone(), "bad".into()),
    ] {
        let entry = Entry::new_in_store(&backing, "svc", "a/b").unwrap();
        let cred: &keyring_core::mock::Cred = entry.as_any().downcast_ref().unwrap();
        cred.set_error(injected);
        let e = store.get(&n, Selector::default()).unwrap_err();
        assert_eq!(e.kind(), "integrity");
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("tresor-keychain-canary"), "{shown}");
        assert!(
            !shown.contains("116, 114, 101"),
            "bytes as numbers: {shown}"
        );
    }
    let entry = Entry::new_in_store(&backing, "svc", "a/b").unwrap();
    let cred: &keyring_core::mock::Cred = entry.as_any().downcast_ref().unwrap();
    cred.set_error(KeyringError::NoStorageAccess("locked".into()));
    assert_eq!(
        store.get(&n, Selector::default()).unwrap_err().kind(),
        "locked"
    );
    let big = SecretValue::copy_from(&vec![0; KEYUTILS_MAX_VALUE_LEN + 1]);
    let e = store.put(&n, &big, &PutOptions::default()).unwrap_err();
    assert_eq!(e.kind(), "too_large", "{e}");
}
