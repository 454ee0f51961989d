//! New passwords below the minimum strength (zxcvbn score 3 of 4) are
//! refused at `init`, `passwd` and `keyslot add --password`, from
//! TRESOR_NEW_PASSWORD (and, at init, TRESOR_PASSWORD) as on a prompt
//! (tests/tty.rs), saying why without the password and naming
//! --weak-password; with --weak-password they are taken.

mod common;

use common::*;

/// Weak: a common word, a year and a symbol.
const WEAK: &str = "Sunshine2024!";
/// Strong: four uncommon words.
const STRONG: &str = "ochre-lantern-quiver-basalt";
const STRONG2: &str = "marigold-thicket-ferrous-plinth";

#[track_caller]
fn refused(o: &Out) {
    o.code(2)
        .err_has(&["too weak", "at least 3", "--weak-password"]);
    assert!(
        !o.err().contains(WEAK),
        "the password was echoed: {}",
        o.err()
    );
    assert!(
        !o.out().contains(WEAK),
        "the password was echoed: {}",
        o.out()
    );
}

#[test]
fn init_refuses_a_weak_password_unless_allowed() {
    for var in ["TRESOR_NEW_PASSWORD", "TRESOR_PASSWORD"] {
        let t = Tresor::new();
        let mut args = vec!["init", "--password", "--no-recovery"];
        args.extend(FAST_KDF);
        refused(&t.cmd(&args).env(var, WEAK).run());
        assert!(
            !t.vault.exists(),
            "{var}: a vault was made with a weak password"
        );
        // Without --password, a password in the environment is the choice.
        refused(&t.cmd(&["init", "--no-keychain"]).env(var, WEAK).run());
        assert!(!t.vault.exists());
        // --json: the kind says what happened.
        let e = t
            .cmd(&["--json", "init", "--password"])
            .env(var, WEAK)
            .run()
            .code(2)
            .err_json();
        assert_eq!(e["error"]["type"], "weak_password");
        assert_eq!(e["error"]["kind"], "validation");
        assert!(!e.to_string().contains(WEAK));

        args.push("--weak-password");
        t.cmd(&args).env(var, WEAK).run().ok();
        let got = t.cmd(&["ls"]).env("TRESOR_PASSWORD", WEAK).run();
        got.ok();
    }
    // A strong password needs no flag; TRESOR_NEW_PASSWORD wins over
    // TRESOR_PASSWORD.
    let t = Tresor::new();
    let mut args = vec!["init", "--password", "--no-recovery"];
    args.extend(FAST_KDF);
    t.cmd(&args)
        .env("TRESOR_NEW_PASSWORD", STRONG)
        .env("TRESOR_PASSWORD", WEAK)
        .run()
        .ok();
    t.cmd(&["ls"]).env("TRESOR_PASSWORD", STRONG).run().ok();
}

#[test]
fn passwd_and_keyslot_add_refuse_a_weak_password_unless_allowed() {
    let mut t = Tresor::new();
    let mut args = vec!["init", "--password", "--no-recovery"];
    args.extend(FAST_KDF);
    t.cmd(&args).env("TRESOR_NEW_PASSWORD", STRONG).run().ok();
    t.set_default("TRESOR_PASSWORD", STRONG);

    let mut passwd = vec!["passwd"];
    passwd.extend(FAST_KDF);
    refused(&t.cmd(&passwd).env("TRESOR_NEW_PASSWORD", WEAK).run());
    // Nothing changed: the old password still opens.
    t.run(&["ls"]).ok();
    t.cmd(&passwd)
        .env("TRESOR_NEW_PASSWORD", STRONG2)
        .run()
        .ok();
    t.set_default("TRESOR_PASSWORD", STRONG2);
    t.run(&["ls"]).ok();

    let mut add = vec!["keyslot", "add", "--password"];
    add.extend(FAST_KDF);
    refused(&t.cmd(&add).env("TRESOR_NEW_PASSWORD", WEAK).run());
    let slots = t.run(&["--json", "keyslot", "list"]).ok().json();
    assert_eq!(slots.as_array().unwrap().len(), 1, "a weak slot was added");
    add.push("--weak-password");
    t.cmd(&add).env("TRESOR_NEW_PASSWORD", WEAK).run().ok();
    t.cmd(&["ls"]).env("TRESOR_PASSWORD", WEAK).run().ok();
    passwd.push("--weak-password");
    passwd.extend(["--slot", "2"]);
    t.cmd(&passwd)
        .env("TRESOR_NEW_PASSWORD", "Winter2025?")
        .run()
        .ok();
}

/// --help says where a new password comes from and how it is judged.
#[test]
fn help_documents_the_new_password_variable() {
    let t = Tresor::new();
    let top = t.run(&["--help"]).ok().out();
    assert!(
        top.contains("TRESOR_NEW_PASSWORD") && top.contains("--weak-password"),
        "{top}"
    );
    for cmd in [
        &["init", "--help"][..],
        &["passwd", "--help"],
        &["keyslot", "add", "--help"],
    ] {
        let help = t.run(cmd).ok().out();
        assert!(
            help.contains("TRESOR_NEW_PASSWORD") && help.contains("--weak-password"),
            "{cmd:?}: {help}"
        );
    }
}
