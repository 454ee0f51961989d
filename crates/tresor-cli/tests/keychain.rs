//! `tresor keyslot add --keychain` and the unlock chain's keychain step,
//! against the real keychains of `scripts/services exec` (gnome-keyring on a
//! throwaway D-Bus, and a fresh kernel session keyring).
//!
//! Built only with the `service-tests` feature; scripts/test runs it as
//! `scripts/services exec -- cargo test -p tresor-cli --features service-tests --test keychain`.
//! A missing service fails the test: nothing here skips.

mod common;

use common::Tresor;

fn require_secret_service() -> String {
    let bus = std::env::var("TRESOR_TEST_SECRET_SERVICE_BUS").unwrap_or_else(|_| {
        panic!(
            "TRESOR_TEST_SECRET_SERVICE_BUS is not set: run these tests under \
             `scripts/services exec -- cargo test ... --features service-tests --test keychain`"
        )
    });
    assert_eq!(
        std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_default(),
        bus,
        "DBUS_SESSION_BUS_ADDRESS is not the scripts/services bus TRESOR_TEST_SECRET_SERVICE_BUS"
    );
    bus
}

fn require_keyutils() {
    assert_eq!(
        std::env::var("TRESOR_TEST_KEYUTILS").as_deref(),
        Ok("1"),
        "TRESOR_TEST_KEYUTILS is not 1: run these tests under `scripts/services exec -- ...`, \
         which gives them a fresh kernel session keyring"
    );
}

/// `keyslot add --keychain`, then every command unlocks with no credential
/// in the environment and no terminal; `keyslot remove` deletes the entry.
/// `bus` is the D-Bus address tresor sees (None: no session bus at all).
fn keychain_slot_flow(bus: Option<&str>, backend: &str) {
    let mut t = Tresor::with_key();
    let with_bus = |mut run: common::Run<'_>| {
        run = match bus {
            Some(b) => run.env("DBUS_SESSION_BUS_ADDRESS", b),
            None => run.env_remove("DBUS_SESSION_BUS_ADDRESS"),
        };
        run.run()
    };
    with_bus(t.cmd(&["set", "db/password"]).stdin(b"hunter2")).ok();
    let added = with_bus(t.cmd(&["--json", "keyslot", "add", "--keychain", "--label", "kc"]));
    let added = added.ok().json();
    assert_eq!(added["kind"], "keychain");
    assert_eq!(added["backend"], backend);
    let slot = added["slot"].as_u64().unwrap();
    assert!(
        added["account"]
            .as_str()
            .unwrap()
            .ends_with(&format!("-slot-{slot}"))
    );

    // Listed with its backend.
    let list = with_bus(t.cmd(&["keyslot", "list"])).ok().out();
    let row = list
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{slot} ")))
        .unwrap_or_else(|| panic!("slot {slot} not listed:\n{list}"));
    assert!(row.contains("keychain") && row.contains(backend), "{row}");
    let json = with_bus(t.cmd(&["--json", "keyslot", "list"])).ok().json();
    let entry = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == slot)
        .unwrap();
    assert_eq!(entry["backend"], backend);

    // No key file, no password, no terminal: the keychain unlocks.
    t.clear_default("TRESOR_KEY_FILE");
    let got = with_bus(t.cmd(&["get", "db/password"])).ok().out();
    assert_eq!(got.trim_end(), "hunter2");
    // status says so, without unlocking.
    let status = with_bus(t.cmd(&["status"])).ok().out();
    assert!(status.contains("opens with its keychain slot"), "{status}");

    // Removing the slot (unlocked by the key file) deletes the entry: the
    // keychain no longer unlocks, and the error names the backend.
    let key = t.key.clone();
    let removed = with_bus(
        t.cmd(&["--json", "keyslot", "remove", &slot.to_string()])
            .env("TRESOR_KEY_FILE", &key),
    );
    assert_eq!(removed.ok().json()["keychain_entry_deleted"], true);
    // The vault still has a key-file slot: with nothing else, the
    // no-credential error (no keychain slot left to try).
    with_bus(t.cmd(&["get", "db/password"])).code(3);
}

#[test]
fn secret_service_slot_via_cli() {
    let bus = require_secret_service();
    keychain_slot_flow(Some(&bus), "secret-service");
}

#[test]
fn keyutils_slot_via_cli_without_a_session_bus() {
    require_keyutils();
    keychain_slot_flow(None, "keyutils");
}

/// A keychain slot whose entry is gone: the error names the backend.
#[test]
fn missing_entry_is_reported_with_its_backend() {
    require_keyutils();
    let t = Tresor::with_key();
    let added = t
        .cmd(&[
            "--json",
            "keyslot",
            "add",
            "--keychain",
            "--backend",
            "keyutils",
        ])
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .run();
    let slot = added.ok().json()["slot"].as_u64().unwrap();
    // Remove the entry behind tresor's back.
    let account = added.json()["account"].as_str().unwrap().to_string();
    let hex = account
        .strip_prefix("vault-")
        .and_then(|a| a.split('-').next())
        .unwrap();
    let mut vault_id = [0u8; 16];
    for (i, b) in vault_id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    tresor::keychain::load(&vault_id, slot as u32, tresor::KeychainBackend::Keyutils)
        .expect("the entry is in the session keyring");
    tresor::keychain::delete(&vault_id, slot as u32, tresor::KeychainBackend::Keyutils).unwrap();
    let o = t
        .cmd(&["get", "anything"])
        .env_remove("TRESOR_KEY_FILE")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .run();
    o.err_has(&["keyutils", &format!("slot {slot}")]);
    assert_ne!(o.code, 0);
}
