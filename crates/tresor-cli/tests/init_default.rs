//! `tresor init`'s default first slot, with the keychains of
//! `scripts/services exec` answering (gnome-keyring on a throwaway D-Bus, a
//! fresh kernel session keyring).
//!
//! Built only with the `service-tests` feature; scripts/test runs it as
//! `scripts/services exec -- cargo test -p tresor-cli --features service-tests --test init_default`.
//! A missing service fails the test: nothing here skips.

mod common;

use common::Tresor;

fn require_services() -> String {
    assert_eq!(
        std::env::var("TRESOR_TEST_KEYUTILS").as_deref(),
        Ok("1"),
        "run these tests under `scripts/services exec -- ...` (a fresh session keyring)"
    );
    let bus = std::env::var("TRESOR_TEST_SECRET_SERVICE_BUS")
        .expect("TRESOR_TEST_SECRET_SERVICE_BUS is not set: run under scripts/services exec");
    assert_eq!(
        std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_default(),
        bus,
        "DBUS_SESSION_BUS_ADDRESS is not the scripts/services bus"
    );
    bus
}

fn kinds(t: &Tresor, recovery: &str) -> Vec<String> {
    let slots = t
        .cmd(&["--json", "keyslot", "list"])
        .env("TRESOR_RECOVERY_KEY", recovery)
        .run()
        .ok()
        .json();
    slots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_string())
        .collect()
}

/// Deletes the keychain entry `init` made, from its --json report.
fn delete_entry(report: &serde_json::Value) {
    let backend =
        tresor::KeychainBackend::parse(report["keychain"]["backend"].as_str().unwrap()).unwrap();
    let account = report["keychain"]["account"].as_str().unwrap();
    let rest = account.strip_prefix("vault-").unwrap();
    let (hex, slot) = rest.split_once("-slot-").unwrap();
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    tresor::keychain::delete(&id, slot.parse().unwrap(), backend).unwrap();
}

/// No flags, a Secret Service answering: a keychain slot and the recovery
/// key; the vault then unlocks with nothing set.
#[test]
fn init_defaults_to_the_secret_service_and_a_recovery_key() {
    let bus = require_services();
    let t = Tresor::new();
    let o = t
        .cmd(&["--json", "init"])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus)
        .run();
    let report = o.ok().json();
    assert_eq!(report["unlock"], "keychain (secret-service)");
    assert_eq!(report["keychain"]["backend"], "secret-service");
    let recovery = report["recovery_key"].as_str().unwrap().to_string();
    assert_eq!(kinds(&t, &recovery), ["keychain", "recovery"]);
    t.cmd(&["set", "a/b"]).stdin(b"v").run().ok();
    assert_eq!(t.cmd(&["get", "a/b"]).run().ok().out().trim_end(), "v");
    delete_entry(&report);
    // With the entry gone, the recovery key still opens the vault.
    t.cmd(&["get", "a/b"])
        .env("TRESOR_RECOVERY_KEY", &recovery)
        .run()
        .ok();
}

/// No session bus: kernel keyutils answers, but its keys do not survive a
/// reboot, so `init` does not pick it unasked (no terminal here: a clear
/// error and no vault); `--keychain` takes it, warning about reboots.
#[test]
fn init_takes_keyutils_only_when_asked() {
    require_services();
    let t = Tresor::new();
    t.cmd(&["init"])
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .run()
        .code(3)
        .err_has(&[
            "no lasting keychain answered",
            "TRESOR_PASSWORD",
            "--keychain",
        ]);
    assert!(!t.vault.exists(), "no vault may be left behind");
    let o = t
        .cmd(&["init", "--keychain"])
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .run();
    o.ok()
        .err_has(&["keyutils", "Recovery key (shown once", "reboot"]);
    let t2 = Tresor::new();
    let report = t2
        .cmd(&["--json", "init", "--keychain"])
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .run()
        .ok()
        .json();
    assert_eq!(report["keychain"]["backend"], "keyutils");
    t2.cmd(&["ls"])
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .run()
        .ok();
    delete_entry(&report);
}

/// --no-keychain, or a credential in the environment, overrides the
/// keychain; with neither a keychain nor a terminal nor a variable, a clear
/// error and no vault.
#[test]
fn explicit_choices_override_the_keychain() {
    require_services();
    // Short test passwords: --weak-password (tests/password_strength.rs).
    let mut args = vec!["--json", "init", "--no-keychain", "--weak-password"];
    args.extend(common::FAST_KDF);
    let t = Tresor::new();
    let report = t
        .cmd(&args)
        .env("TRESOR_PASSWORD", "pw-1")
        .run()
        .ok()
        .json();
    assert_eq!(report["unlock"], "TRESOR_PASSWORD");
    let recovery = report["recovery_key"].as_str().unwrap().to_string();
    assert_eq!(kinds(&t, &recovery), ["password", "recovery"]);

    // TRESOR_PASSWORD alone is an explicit choice too.
    let mut args = vec!["--json", "init", "--weak-password"];
    args.extend(common::FAST_KDF);
    let t = Tresor::new();
    let report = t
        .cmd(&args)
        .env("TRESOR_PASSWORD", "pw-2")
        .run()
        .ok()
        .json();
    assert_eq!(report["unlock"], "TRESOR_PASSWORD");

    // So is a key file.
    let t = Tresor::new();
    let key = t.key.display().to_string();
    let report = t
        .cmd(&["--json", "--key-file", &key, "init"])
        .run()
        .ok()
        .json();
    assert!(report["unlock"].as_str().unwrap().starts_with("key file"));

    // Nothing at all, with the keychain refused: exit 3, what to set, no vault.
    let t = Tresor::new();
    t.cmd(&["init", "--no-keychain"]).run().code(3).err_has(&[
        "TRESOR_PASSWORD",
        "TRESOR_KEY",
        "--no-keychain",
    ]);
    assert!(!t.vault.exists());
    // --password and --keychain do not go together.
    t.cmd(&["init", "--password", "--keychain"]).run().code(2);
}
