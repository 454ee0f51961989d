//! `tresor keyslot add --pkcs11` and the unlock chain's PKCS#11 step,
//! against the SoftHSM2 token of `scripts/services exec`.
//!
//! Built only with the `service-tests` feature; scripts/test runs it as
//! `scripts/services exec -- cargo test -p tresor-cli --features service-tests --test pkcs11`.
//! A missing token fails the test: nothing here skips.

mod common;

use common::{Tresor, entries_of};

struct Token {
    module: String,
    token: String,
    pin: String,
    /// Held for the whole test: the tests take turns. A SoftHSM2 module
    /// that initialises while another process rewrites the token's files
    /// can miss the token for the rest of the process (seen when tests
    /// adding slots ran beside one that loads the module in process).
    _serial: std::sync::MutexGuard<'static, ()>,
}

fn token() -> Token {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: run these tests under `scripts/services exec -- cargo test \
                 -p tresor-cli --features service-tests --test pkcs11`"
            )
        })
    };
    assert!(
        std::env::var_os("SOFTHSM2_CONF").is_some(),
        "SOFTHSM2_CONF is not set: run under scripts/services exec"
    );
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    Token {
        module: var("TRESOR_TEST_PKCS11_MODULE"),
        token: var("TRESOR_TEST_PKCS11_TOKEN"),
        pin: var("TRESOR_TEST_PKCS11_PIN"),
        _serial: serial,
    }
}

fn unique_label(what: &str) -> String {
    let mut r = [0u8; 6];
    getrandom::fill(&mut r).unwrap();
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    format!("tresor-cli-{what}-{hex}")
}

impl Token {
    fn add_args<'a>(&'a self, key_label: &'a str) -> Vec<&'a str> {
        vec![
            "keyslot",
            "add",
            "--pkcs11",
            "--module",
            &self.module,
            "--token",
            &self.token,
            "--key-label",
            key_label,
        ]
    }

    fn destroy(&self, key_label: &str) -> bool {
        tresor::pkcs11::destroy_key(
            tresor::pkcs11::TokenKey {
                module: &self.module,
                token: &self.token,
                key_label,
            },
            &self.pin,
            &tresor::pkcs11::ModulePolicy::default(),
        )
        .unwrap()
    }
}

/// Add a slot (the token key is made and the CLI says so), list it, unlock
/// with only the token and its PIN, then remove it.
#[test]
fn pkcs11_slot_flow() {
    let tk = token();
    let label = unique_label("flow");
    let mut t = Tresor::with_key();
    t.cmd(&["set", "db/password"]).stdin(b"hunter2").run().ok();

    let mut args = vec!["--json"];
    args.extend(tk.add_args(&label));
    args.extend(["--label", "hsm"]);
    let added = t.cmd(&args).env("TRESOR_PKCS11_PIN", &tk.pin).run();
    let added = added.ok().json();
    assert_eq!(added["kind"], "pkcs11");
    assert_eq!(added["token"], tk.token.as_str());
    assert_eq!(added["key_label"], label.as_str());
    assert_eq!(added["module"], tk.module.as_str());
    assert_eq!(added["key_created"], true);
    // SoftHSM2's module lives in a root-owned system folder: nothing to record.
    assert_eq!(added["module_allowed"]["by"], "system-library");
    assert!(!t.path("xdg-config/tresor/config.toml").exists());
    let slot = added["slot"].as_u64().unwrap();

    // A second slot on the same key: the text output says nothing was made.
    let again = t
        .cmd(&tk.add_args(&label))
        .env("TRESOR_PKCS11_PIN", &tk.pin)
        .run();
    again.ok().err_has(&["added pkcs11 key slot", &tk.token]);
    assert!(
        !again.err().contains("created AES-256 key"),
        "{}",
        again.err()
    );
    let first = t.cmd(&["--json", "keyslot", "list"]).run().ok().json();
    let second = first.as_array().unwrap().last().unwrap()["id"]
        .as_u64()
        .unwrap();
    t.cmd(&["keyslot", "remove", &second.to_string()])
        .run()
        .ok();

    // Listed with kind, label, date and the token.
    let list = t.cmd(&["keyslot", "list"]).run().ok().out();
    let row = list
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{slot} ")))
        .unwrap_or_else(|| panic!("slot {slot} not listed:\n{list}"));
    assert!(
        row.contains("pkcs11") && row.contains("hsm") && row.contains(&tk.token),
        "{row}"
    );
    assert!(row.contains(&label), "{row}");
    let json = t.cmd(&["--json", "keyslot", "list"]).run().ok().json();
    for s in json.as_array().unwrap() {
        assert!(s["kind"].is_string() && s["created_at"].is_i64(), "{s}");
        assert!(s.get("label").is_some(), "{s}");
    }
    let entry = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == slot)
        .unwrap();
    assert_eq!(entry["kind"], "pkcs11");
    assert_eq!(entry["label"], "hsm");
    assert_eq!(entry["pkcs11"]["token"], tk.token.as_str());
    assert_eq!(entry["pkcs11"]["key_label"], label.as_str());
    assert!(entry["pkcs11"].get("wrapped").is_none());

    // No key file, no password: the token and its PIN unlock.
    t.clear_default("TRESOR_KEY_FILE");
    let got = t
        .cmd(&["get", "db/password"])
        .env("TRESOR_PKCS11_PIN", &tk.pin)
        .run();
    let got = got.ok();
    assert_eq!(got.out().trim_end(), "hunter2");
    // The note says whose PIN the variable was taken as: token and module.
    let module_file = std::path::Path::new(&tk.module).file_name().unwrap();
    assert!(
        got.err()
            .contains(&format!("as the PIN of PKCS#11 token '{}'", tk.token))
            && got.err().contains(&*module_file.to_string_lossy()),
        "{}",
        got.err()
    );

    // A wrong PIN: exit 3, the token named, the PIN nowhere.
    let wrong = t
        .cmd(&["get", "db/password"])
        .env("TRESOR_PKCS11_PIN", "wrong-pin-7781")
        .run();
    wrong.code(3).err_has(&["wrong PIN", &tk.token]);
    assert!(!wrong.err().contains("wrong-pin-7781"));
    assert!(!wrong.out().contains("wrong-pin-7781"));
    // The refused PIN is audited (folded in by the next unlock), without it.
    let entries = t
        .cmd(&["audit", "log", "--json"])
        .env("TRESOR_PKCS11_PIN", &tk.pin)
        .run()
        .ok()
        .json_lines();
    let failed = entries_of(&entries, "unlock_failed");
    assert_eq!(failed.len(), 1, "{entries:?}");
    let reason = failed[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("pkcs11 slot") && reason.contains(&tk.token),
        "{reason}"
    );
    assert!(!format!("{entries:?}").contains("wrong-pin-7781"));

    // No PIN and no terminal: a clear error naming the variable.
    t.cmd(&["get", "db/password"])
        .run()
        .code(3)
        .err_has(&["TRESOR_PKCS11_PIN", &tk.token]);

    // Remove the slot (unlocked by the key file): the token no longer opens
    // the vault, and the key stays on the token.
    let key = t.key.clone();
    let removed = t
        .cmd(&["--json", "keyslot", "remove", &slot.to_string()])
        .env("TRESOR_KEY_FILE", &key)
        .run();
    let removed = removed.ok().json();
    assert_eq!(removed["removed"], true);
    assert_eq!(removed["token_key_kept"], true);
    let after = t
        .cmd(&["get", "db/password"])
        .env("TRESOR_PKCS11_PIN", &tk.pin)
        .run();
    after.code(3);
    assert!(tk.destroy(&label), "the token key was kept");
}

/// The token key was destroyed: unlocking says so, naming module, token and
/// key, with exit code 6 (unavailable); adding with a wrong PIN is exit 3.
#[test]
fn absent_token_key_and_wrong_pin_on_add() {
    let tk = token();
    let label = unique_label("absent");
    let mut t = Tresor::with_key();
    t.cmd(&["set", "app/key"]).stdin(b"v").run().ok();

    let wrong = t
        .cmd(&tk.add_args(&label))
        .env("TRESOR_PKCS11_PIN", "bad-pin-4242")
        .run();
    wrong.code(3).err_has(&["wrong PIN"]);
    assert!(!wrong.err().contains("bad-pin-4242"));
    // Nothing was added, and no key was made.
    let slots = t.cmd(&["--json", "keyslot", "list"]).run().ok().json();
    assert_eq!(slots.as_array().unwrap().len(), 1);

    t.cmd(&tk.add_args(&label))
        .env("TRESOR_PKCS11_PIN", &tk.pin)
        .run()
        .ok()
        .err_has(&["created AES-256 key", &label]);
    assert!(tk.destroy(&label));
    t.clear_default("TRESOR_KEY_FILE");
    let o = t
        .cmd(&["get", "app/key"])
        .env("TRESOR_PKCS11_PIN", &tk.pin)
        .run();
    o.code(6).err_has(&[&tk.module, &tk.token, &label]);

    // A module path that does not exist is refused before anything else.
    let mut args = tk.add_args(&label);
    args[4] = "/nonexistent/libpkcs11.so";
    t.cmd(&args)
        .env("TRESOR_PKCS11_PIN", &tk.pin)
        .env("TRESOR_KEY_FILE", &t.key)
        .run()
        .code(6)
        .err_has(&["/nonexistent/libpkcs11.so"]);
}

/// A vault made with a PKCS#11 slot and a key file survives `rekey --master`
/// with both credentials: the token still opens it afterwards.
#[test]
fn rekey_master_rewraps_the_pkcs11_slot() {
    let tk = token();
    let label = unique_label("rekey");
    let mut t = Tresor::with_key();
    t.cmd(&["set", "a/b"]).stdin(b"v1").run().ok();
    t.cmd(&tk.add_args(&label))
        .env("TRESOR_PKCS11_PIN", &tk.pin)
        .run()
        .ok();
    let out = t
        .cmd(&["--json", "rekey", "--master"])
        .env("TRESOR_PKCS11_PIN", &tk.pin)
        .run();
    let report = out.ok().json();
    assert_eq!(
        report["report"]["slots_rewrapped"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    t.clear_default("TRESOR_KEY_FILE");
    let got = t
        .cmd(&["get", "a/b"])
        .env("TRESOR_PKCS11_PIN", &tk.pin)
        .run();
    assert_eq!(got.ok().out().trim_end(), "v1");
    assert!(tk.destroy(&label));
}

/// A copy of the module outside the system folders: `keyslot add --pkcs11
/// --module COPY` records it in the user's own config (`[pkcs11] modules`,
/// the file made 0600), and the token then unlocks through it. With the
/// entry gone, the slot is unavailable (exit 6; the message names the path
/// and how to allow it) and the PIN is not used; with it back, it opens.
#[test]
fn a_module_outside_system_folders_needs_the_users_list() {
    use std::os::unix::fs::PermissionsExt as _;
    let tk = token();
    let label = unique_label("allow");
    let mut t = Tresor::with_key();
    t.cmd(&["set", "a/b"]).stdin(b"v1").run().ok();
    let copy = t.path("modules/libsofthsm2-copy.so");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&tk.module, &copy).unwrap();
    let copy_s = copy.to_str().unwrap();

    let mut args = vec!["--json"];
    args.extend(tk.add_args(&label));
    args[5] = copy_s;
    let added = t
        .cmd(&args)
        .env("TRESOR_PKCS11_PIN", &tk.pin)
        .run()
        .ok()
        .json();
    assert_eq!(added["module"], copy_s);
    assert_eq!(added["module_allowed"]["by"], "config");
    assert_eq!(added["module_allowed"]["added"], true);
    let config = t.path("xdg-config/tresor/config.toml");
    assert_eq!(added["module_allowed"]["config"], config.to_str().unwrap());
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("[pkcs11]") && text.contains(copy_s), "{text}");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    t.clear_default("TRESOR_KEY_FILE");
    let got = t
        .cmd(&["get", "a/b"])
        .env("TRESOR_PKCS11_PIN", &tk.pin)
        .run();
    assert_eq!(got.ok().out().trim_end(), "v1");
    // The PIN's use names the token and the module.
    got.err_has(&["TRESOR_PKCS11_PIN", &tk.token, copy_s]);

    // Not listed: unavailable, and no PIN is handed to it.
    std::fs::write(&config, "# nothing allowed\n").unwrap();
    let refused = t
        .cmd(&["get", "a/b"])
        .env("TRESOR_PKCS11_PIN", &tk.pin)
        .run();
    refused.code(6).err_has(&[
        copy_s,
        "[pkcs11] modules",
        "tresor keyslot add --pkcs11 --module",
    ]);
    assert!(!refused.err().contains("using TRESOR_PKCS11_PIN"));

    // Listed again by hand: it opens.
    std::fs::write(&config, format!("[pkcs11]\nmodules = [\"{copy_s}\"]\n")).unwrap();
    let got = t
        .cmd(&["get", "a/b"])
        .env("TRESOR_PKCS11_PIN", &tk.pin)
        .run();
    assert_eq!(got.ok().out().trim_end(), "v1");

    // A second add on the same module records nothing new.
    let key = t.key.clone();
    let again = t
        .cmd(&args)
        .env("TRESOR_PKCS11_PIN", &tk.pin)
        .env("TRESOR_KEY_FILE", &key)
        .run()
        .ok()
        .json();
    assert_eq!(again["module_allowed"]["by"], "config");
    assert_eq!(again["module_allowed"]["added"], false);
    assert!(tk.destroy(&label));
}

/// The unlock chain's PKCS#11 step stops at the first slot that opens
/// (`first_only`); `rekey --master` asks for every slot. The token's PIN is
/// asked once either way.
#[test]
fn the_unlock_chain_stops_at_the_first_pkcs11_slot_that_opens() {
    let tk = token();
    let (first, second) = (unique_label("first"), unique_label("second"));
    let t = Tresor::with_key();
    for label in [&first, &second] {
        t.cmd(&tk.add_args(label))
            .env("TRESOR_PKCS11_PIN", &tk.pin)
            .run()
            .ok();
    }
    let locked = tresor::LockedVault::open(&t.vault, &tresor::OpenOptions::default()).unwrap();
    assert_eq!(locked.pkcs11_slots().unwrap().len(), 2);
    let policy = tresor::pkcs11::ModulePolicy::default();
    for (first_only, opened) in [(true, 1), (false, 2)] {
        let mut asked = 0;
        let (found, errors) = tresor::pkcs11_credentials(&locked, &policy, first_only, |_, _| {
            asked += 1;
            Ok(Some(zeroize::Zeroizing::new(tk.pin.clone())))
        })
        .unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(found.len(), opened, "first_only = {first_only}");
        assert_eq!(asked, 1);
    }
    drop(locked);
    assert!(tk.destroy(&first) && tk.destroy(&second));
}
