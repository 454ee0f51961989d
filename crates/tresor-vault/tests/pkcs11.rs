//! PKCS#11 slots against a real token: the SoftHSM2 token `scripts/services`
//! sets up (SOFTHSM2_CONF, TRESOR_TEST_PKCS11_MODULE / _TOKEN / _PIN).
//!
//! Built only with the `service-tests` feature; scripts/test runs it as
//! `scripts/services exec -- cargo test -p tresor-vault --features service-tests --test pkcs11`.
//! A missing token fails the test: nothing here skips. Each test uses key
//! labels of its own, so the tests share the token safely.
#![allow(missing_docs)]

mod common;

use tresor_core::{Error, Selector};
use tresor_crypto::slot::{SlotKind, SlotParams};
use tresor_vault::pkcs11::{self, ModulePolicy, ModuleTrust, TokenKey};
use tresor_vault::{LockedVault, OpenOptions};

use common::{fast_password_params, name, new_vault, value};

struct Token {
    module: String,
    token: String,
    pin: String,
}

/// The scripts/services token; panics (fails the test) when it is not set up.
/// Also returns a guard that runs the tests one at a time: one of them
/// talks to the module with its own client, and PKCS#11 logins are per
/// process, so a logout elsewhere would cut its session short.
fn token() -> (Token, std::sync::MutexGuard<'static, ()>) {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: run these tests under `scripts/services exec -- cargo test \
                 -p tresor-vault --features service-tests --test pkcs11`"
            )
        })
    };
    let _conf = var("SOFTHSM2_CONF");
    let token = Token {
        module: var("TRESOR_TEST_PKCS11_MODULE"),
        token: var("TRESOR_TEST_PKCS11_TOKEN"),
        pin: var("TRESOR_TEST_PKCS11_PIN"),
    };
    (token, guard)
}

/// A key label no other test (or earlier run) uses.
fn unique_label(what: &str) -> String {
    let mut r = [0u8; 6];
    tresor_crypto::random_bytes(&mut r);
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    format!("tresor-test-{what}-{hex}")
}

impl Token {
    fn key<'a>(&'a self, label: &'a str) -> TokenKey<'a> {
        TokenKey {
            module: &self.module,
            token: &self.token,
            key_label: label,
        }
    }
}

/// Adds a PKCS#11 slot (making the token key), unlocks with nothing but the
/// token and its PIN, and removes the slot.
#[test]
fn slot_round_trip_with_only_the_token() {
    let (t, _serial) = token();
    let label = unique_label("round-trip");
    let dir = tempfile::tempdir().unwrap();
    let (path, mut vault) = new_vault(dir.path());
    let secret = name("app/token");
    vault
        .put(&secret, &value(b"s3cr3t"), &Default::default())
        .unwrap();
    let vault_id = vault.id();

    assert!(!pkcs11::key_exists(t.key(&label), &t.pin, &ModulePolicy::default()).unwrap());
    let made =
        pkcs11::new_slot(&vault_id, t.key(&label), &t.pin, &ModulePolicy::default()).unwrap();
    assert!(made.key_created, "the token had no key labelled {label}");
    assert!(pkcs11::key_exists(t.key(&label), &t.pin, &ModulePolicy::default()).unwrap());
    let slot = vault
        .add_slot(&made.credential, &fast_password_params(), Some("hsm"))
        .unwrap();
    let info = vault.slots().unwrap();
    let info = info.iter().find(|s| s.id == slot).unwrap();
    assert_eq!(info.kind, SlotKind::Pkcs11);
    assert_eq!(info.label.as_deref(), Some("hsm"));
    let loc = info.pkcs11.as_ref().unwrap();
    assert_eq!(loc.module, t.module);
    assert_eq!(loc.token, t.token);
    assert_eq!(loc.key_label, label);
    assert_eq!(loc.mechanism, "aes-gcm");
    assert!(!loc.serial.is_empty());
    drop(vault);

    // A second slot under the same (now existing) key: no new key.
    let again =
        pkcs11::new_slot(&vault_id, t.key(&label), &t.pin, &ModulePolicy::default()).unwrap();
    assert!(!again.key_created);

    // Unlock through the token alone.
    let locked = LockedVault::open(&path, &OpenOptions::default()).unwrap();
    let slots = locked.pkcs11_slots().unwrap();
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].0, slot);
    let cred = pkcs11::load(
        &vault_id,
        slot,
        &slots[0].1,
        &t.pin,
        &ModulePolicy::default(),
    )
    .unwrap();
    let mut vault = locked.unlock_any(&[cred]).unwrap();
    assert_eq!(vault.unlocked_slot(), Some(slot));
    let got = vault.get(&secret, Selector::default()).unwrap();
    assert_eq!(got.value.expose_secret(), b"s3cr3t");

    // rekey --master rewraps the slot with the token's credential, and it
    // still opens afterwards.
    let cred = pkcs11::load(
        &vault_id,
        slot,
        &slots[0].1,
        &t.pin,
        &ModulePolicy::default(),
    )
    .unwrap();
    let key = common::key();
    // (The recovery slot has no credential here: dropped.)
    let out = vault.rekey_master(&[&key, &cred], true, false).unwrap();
    assert!(out.report.slots_rewrapped.contains(&slot));
    drop(vault);
    let locked = LockedVault::open(&path, &OpenOptions::default()).unwrap();
    let (id, params) = locked.pkcs11_slots().unwrap().remove(0);
    let cred = pkcs11::load(&vault_id, id, &params, &t.pin, &ModulePolicy::default()).unwrap();
    let mut vault = locked.unlock(&cred).unwrap();

    // Remove the slot: the vault no longer has one to open with the token.
    vault.remove_slot(slot).unwrap();
    drop(vault);
    let locked = LockedVault::open(&path, &OpenOptions::default()).unwrap();
    assert!(locked.pkcs11_slots().unwrap().is_empty());
    assert!(matches!(locked.unlock(&cred), Err(Error::Auth { .. })));
    assert!(pkcs11::destroy_key(t.key(&label), &t.pin, &ModulePolicy::default()).unwrap());
}

/// The token key never leaves the token: sensitive, not extractable; its
/// value reads back as nothing.
#[test]
fn the_token_key_is_not_extractable() {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;

    let (t, _serial) = token();
    let label = unique_label("attrs");
    let made = pkcs11::new_slot(&[7; 16], t.key(&label), &t.pin, &ModulePolicy::default()).unwrap();
    assert!(made.key_created);
    let (Some(params), Some(bytes)) = (
        made.credential.pkcs11_params(),
        made.credential.expose_bytes(),
    ) else {
        panic!("not a pkcs11 credential")
    };
    assert_eq!(bytes.len(), 32);
    assert_eq!(params.wrapped.len(), 12 + 32 + 16);
    assert_eq!(params.key_id.len(), 16);
    // The wrapped bytes do not contain the plain ones.
    assert!(!params.wrapped.windows(32).any(|w| w == bytes));

    // Look at the key with an independent client. (The module may already
    // be initialised in this process by tresor: that is fine.)
    let ctx = Pkcs11::new(&t.module).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == t.token)
        .unwrap();
    let session = ctx.open_ro_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&AuthPin::from(t.pin.as_str())));
    let handle = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap()[0];
    let attrs = session
        .get_attributes(
            handle,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Token,
                AttributeType::Value,
            ],
        )
        .unwrap();
    assert!(attrs.contains(&Attribute::Sensitive(true)), "{attrs:?}");
    assert!(attrs.contains(&Attribute::Extractable(false)), "{attrs:?}");
    assert!(attrs.contains(&Attribute::Token(true)), "{attrs:?}");
    assert!(
        !attrs
            .iter()
            .any(|a| matches!(a, Attribute::Value(v) if !v.is_empty())),
        "the key's value was readable: {attrs:?}"
    );
    drop(session);
    assert!(pkcs11::destroy_key(t.key(&label), &t.pin, &ModulePolicy::default()).unwrap());
}

/// A wrong PIN is an Auth error that does not contain the PIN.
#[test]
fn wrong_pin_is_an_auth_error() {
    let (t, _serial) = token();
    let label = unique_label("wrong-pin");
    let err = match pkcs11::new_slot(
        &[1; 16],
        t.key(&label),
        "999999-wrong",
        &ModulePolicy::default(),
    ) {
        Err(e) => e,
        Ok(_) => panic!("a wrong PIN made a slot"),
    };
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&t.token) && text.contains("wrong PIN"),
        "{text}"
    );
    assert!(!text.contains("999999-wrong"), "{text}");

    // The same on unlock.
    let made = pkcs11::new_slot(&[1; 16], t.key(&label), &t.pin, &ModulePolicy::default()).unwrap();
    let Some(params) = made.credential.pkcs11_params() else {
        panic!()
    };
    let err = pkcs11::load(
        &[1; 16],
        1,
        params,
        "999999-wrong",
        &ModulePolicy::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(pkcs11::destroy_key(t.key(&label), &t.pin, &ModulePolicy::default()).unwrap());
}

/// The token key is gone, or the token is another: Unavailable naming the
/// module, the token and the key label.
#[test]
fn absent_key_or_token_is_unavailable() {
    let (t, _serial) = token();
    let label = unique_label("absent");
    let dir = tempfile::tempdir().unwrap();
    let (path, mut vault) = new_vault(dir.path());
    let made =
        pkcs11::new_slot(&vault.id(), t.key(&label), &t.pin, &ModulePolicy::default()).unwrap();
    let slot = vault
        .add_slot(&made.credential, &fast_password_params(), None)
        .unwrap();
    drop(vault);
    assert!(pkcs11::destroy_key(t.key(&label), &t.pin, &ModulePolicy::default()).unwrap());

    let locked = LockedVault::open(&path, &OpenOptions::default()).unwrap();
    let (id, params) = locked.pkcs11_slots().unwrap().remove(0);
    assert_eq!(id, slot);
    let err =
        pkcs11::load(&locked.id(), id, &params, &t.pin, &ModulePolicy::default()).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let text = err.to_string();
    for needle in [&t.module, &t.token, &label] {
        assert!(text.contains(needle.as_str()), "{text} lacks {needle}");
    }

    let mut other = params.clone();
    other.token_label = "no-such-token".into();
    let err = pkcs11::load(&locked.id(), id, &other, &t.pin, &ModulePolicy::default()).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("no-such-token") && text.contains(&t.module) && text.contains(&t.token),
        "{text}"
    );
}

/// Bytes wrapped for another vault do not open here (the token's AES-GCM
/// binds the vault id), and a slot's params are what the vault stores.
#[test]
fn wrapped_bytes_are_bound_to_the_vault() {
    let (t, _serial) = token();
    let label = unique_label("bound");
    let made = pkcs11::new_slot(&[1; 16], t.key(&label), &t.pin, &ModulePolicy::default()).unwrap();
    let Some(params) = made.credential.pkcs11_params() else {
        panic!()
    };
    let err = pkcs11::load(&[2; 16], 1, params, &t.pin, &ModulePolicy::default()).unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(pkcs11::load(&[1; 16], 1, params, &t.pin, &ModulePolicy::default()).is_ok());
    let p = SlotParams::Pkcs11(params.clone());
    assert_eq!(p.kind(), SlotKind::Pkcs11);
    assert!(pkcs11::destroy_key(t.key(&label), &t.pin, &ModulePolicy::default()).unwrap());
}

/// The module path of a slot is not trusted: a copy of the token's module
/// in a temporary folder (not a root-owned system library) is refused
/// before it is loaded, with a message naming the path and how to allow it;
/// once the policy lists it (the user's `[pkcs11] modules`), it loads and
/// the slot opens. The real module, under /usr/lib, is a system library.
#[test]
fn modules_load_only_when_listed_or_system_libraries() {
    let (t, _serial) = token();
    let system = ModulePolicy::default();
    let resolved = std::fs::canonicalize(&t.module).unwrap();
    assert_eq!(
        system.check(&t.module).unwrap(),
        (resolved, ModuleTrust::SystemLibrary),
        "the SoftHSM2 module should be a root-owned system library"
    );

    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("libsofthsm2-copy.so");
    std::fs::copy(&t.module, &copy).unwrap();
    let copy = copy.to_str().unwrap().to_string();
    let label = unique_label("copied-module");
    let key = TokenKey {
        module: &copy,
        token: &t.token,
        key_label: &label,
    };

    let err = match pkcs11::new_slot(&[3; 16], key, &t.pin, &system) {
        Err(e) => e,
        Ok(_) => panic!("a module outside the policy was used"),
    };
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let text = err.to_string();
    for needle in [copy.as_str(), t.token.as_str(), "[pkcs11] modules"] {
        assert!(text.contains(needle), "{needle:?} missing: {text}");
    }
    // The CLI adds its command as a hint; the library names none.
    assert!(!text.contains("tresor keyslot"), "{text}");
    assert!(!text.contains(&t.pin), "{text}");

    let listed = ModulePolicy::new(vec![copy.clone().into()], None);
    let made = pkcs11::new_slot(&[3; 16], key, &t.pin, &listed).unwrap();
    let Some(params) = made.credential.pkcs11_params() else {
        panic!()
    };
    assert_eq!(params.module, copy);
    let err = pkcs11::load(&[3; 16], 1, params, &t.pin, &system).unwrap_err();
    assert!(err.to_string().contains("[pkcs11] modules"), "{err}");
    assert!(pkcs11::load(&[3; 16], 1, params, &t.pin, &listed).is_ok());
    assert!(pkcs11::destroy_key(key, &t.pin, &listed).unwrap());
}
