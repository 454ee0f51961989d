//! Messages that say what is true, and output that lines up (issue 13):
//! "locked" only where a vault exists and nothing opened it; what to give
//! when nothing was given; `status` says how the vault would unlock;
//! `history` columns, `keyslot list`'s header, `rollback`'s wording.

mod common;

use common::*;

#[test]
fn nothing_is_locked_that_was_never_tried() {
    // init with nothing to make a slot from: what to give, not "locked".
    let t = Tresor::new();
    let o = t.run(&["init", "--no-keychain"]);
    o.code(3).err_has(&[
        "a credential for the new vault's first key slot",
        "no terminal",
        "TRESOR_NEW_PASSWORD",
        "--key-file",
    ]);
    assert!(!o.err().contains("locked"), "{}", o.err());

    // keyslot add --password without a terminal names the variable.
    let t = Tresor::with_key();
    let o = t.run(&["keyslot", "add", "--password"]);
    o.code(3)
        .err_has(&["a new password is needed", "TRESOR_NEW_PASSWORD"]);
    assert!(!o.err().contains("locked"), "{}", o.err());

    // A password for a vault without a password slot: exactly that, and
    // no "check the password" beside it.
    let o = t
        .cmd(&["get", "x"])
        .env_remove("TRESOR_KEY_FILE")
        .env("TRESOR_PASSWORD", "whatever")
        .run();
    o.code(3)
        .err_has(&["vault has no password slot, so TRESOR_PASSWORD cannot open it"]);
    assert!(!o.err().contains("check the password"), "{}", o.err());
    let e = t
        .cmd(&["--json", "get", "x"])
        .env_remove("TRESOR_KEY_FILE")
        .env("TRESOR_PASSWORD", "whatever")
        .run()
        .code(3)
        .err_json();
    assert_eq!(e["error"]["type"], "no_such_slot");

    // A vault that exists with no credential at all: that one is locked.
    t.cmd(&["ls"])
        .env_remove("TRESOR_KEY_FILE")
        .run()
        .code(3)
        .err_has(&["locked", "no credential was found"]);
}

#[test]
fn decrypting_a_passphrase_file_without_a_terminal_names_the_file_flag() {
    let t = Tresor::new();
    let plain = t.write("plain", b"some text");
    let pass = t.write("pass", b"a long enough passphrase here\n");
    let sealed = t.path("plain.age");
    t.run(&[
        "encrypt",
        "--passphrase-file",
        pass.to_str().unwrap(),
        "-o",
        sealed.to_str().unwrap(),
        plain.to_str().unwrap(),
    ])
    .ok();
    let o = t.run(&["decrypt", sealed.to_str().unwrap()]);
    o.code(3)
        .err_has(&["is encrypted to a passphrase", "--passphrase-file"]);
    assert!(!o.err().contains("locked"), "{}", o.err());
    let o = t.run(&["encrypt", "--passphrase", plain.to_str().unwrap()]);
    o.code(3).err_has(&["--passphrase-file"]);
    assert!(!o.err().contains("locked"), "{}", o.err());
}

#[test]
fn a_tampered_envelope_is_the_envelopes_fault_not_the_vaults() {
    let t = Tresor::with_key();
    t.run(&["key", "create", "app/k"]).ok();
    let env = t.run_in(&["key", "encrypt", "app/k"], b"hello").ok().out();
    let mut bad = env.trim().to_string();
    let last = bad.pop().unwrap();
    bad.push(if last == 'A' { 'B' } else { 'A' });
    let o = t.run_in(&["key", "decrypt"], bad.as_bytes());
    o.code(4).err_has(&["envelope"]);
    let hint = o.err();
    let hint = hint.lines().find(|l| l.starts_with("hint:")).unwrap_or("");
    assert!(
        hint.contains("envelope") && !hint.contains("vault may be tampered"),
        "{hint}"
    );
}

#[test]
fn status_says_how_the_vault_would_unlock() {
    let t = Tresor::with_key();
    let key = t.key.display().to_string();
    let text = t.run(&["status"]).ok().out();
    assert!(
        text.contains(&format!("opens with key file {key} (TRESOR_KEY_FILE)")),
        "{text}"
    );
    assert!(!text.contains("locked"), "{text}");
    let j = t.run(&["--json", "status"]).ok().json();
    assert_eq!(j["unlocked"], false);
    assert_eq!(
        j["would_unlock_with"],
        format!("key file {key} (TRESOR_KEY_FILE)")
    );
    // --key-file says so.
    let text = t
        .cmd(&["--key-file", &key, "status"])
        .env_remove("TRESOR_KEY_FILE")
        .run()
        .ok()
        .out();
    assert!(text.contains("(--key-file)"), "{text}");
    // Nothing to unlock with: locked, and saying why.
    let text = t
        .cmd(&["status"])
        .env_remove("TRESOR_KEY_FILE")
        .run()
        .ok()
        .out();
    assert!(text.contains("locked (no credential found"), "{text}");
    // A credential of a kind the vault has no slot for.
    let j = t
        .cmd(&["--json", "status"])
        .env_remove("TRESOR_KEY_FILE")
        .env("TRESOR_PASSWORD", "whatever")
        .run()
        .ok()
        .json();
    assert_eq!(j["would_unlock_with"], serde_json::Value::Null);
    assert!(
        j["unlock_problem"]
            .as_str()
            .unwrap()
            .contains("no password slot"),
        "{j}"
    );
}

#[test]
fn history_columns_line_up_and_rollback_says_what_is_current() {
    let t = Tresor::with_key();
    for (v, reason) in [("one", "first"), ("two", "second"), ("three", "third")] {
        t.run_in(&["set", "db/password", "--reason", reason], v.as_bytes())
            .ok();
    }
    // v1 has no label, v2 is previous, v3 current: the reasons line up.
    let text = t.run(&["history", "db/password"]).ok().out();
    let at: Vec<usize> = text
        .lines()
        .map(|l| l.find("reason:").unwrap_or_else(|| panic!("{text}")))
        .collect();
    assert_eq!(at.len(), 3, "{text}");
    assert!(
        at.windows(2).all(|w| w[0] == w[1]),
        "columns differ:\n{text}"
    );
    assert!(text.lines().next().unwrap().contains(" - "), "{text}");

    let o = t.run(&["rollback", "db/password", "1"]);
    o.ok().err_has(&["db/password: current is now version 1"]);
    assert!(!o.err().contains("rolled back"), "{}", o.err());
}

#[test]
fn keyslot_list_has_a_header_row() {
    let t = Tresor::with_key();
    let text = t.run(&["keyslot", "list"]).ok().out();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    for column in ["ID", "KIND", "LABEL", "CREATED", "DETAILS"] {
        assert!(header.contains(column), "{text}");
    }
    let row = lines.next().unwrap();
    assert!(row.trim_start().starts_with("1  key-file"), "{text}");
    // The columns start where the header's do.
    assert_eq!(header.find("KIND"), row.find("key-file"), "{text}");
    // JSON has no header.
    let j = t.run(&["--json", "keyslot", "list"]).ok().json();
    assert_eq!(j.as_array().unwrap().len(), 1);
}

#[test]
fn history_of_a_deleted_secret_is_not_found_unless_asked() {
    let t = Tresor::with_key();
    t.run_in(&["set", "app/old"], b"v").ok();
    t.run(&["rm", "app/old"]).ok();
    t.run(&["history", "app/old"]).code(1).err_has(&[
        "'app/old' is deleted",
        "tresor undelete app/old",
        "--deleted",
    ]);
    let e = t.run(&["--json", "history", "app/old"]).code(1).err_json();
    assert_eq!(e["error"]["kind"], "not_found");
    let h = t
        .run(&["--json", "history", "app/old", "--deleted"])
        .ok()
        .json();
    assert_eq!(h.as_array().unwrap().len(), 1);
    // Restored, it answers again without the flag.
    t.run(&["undelete", "app/old"]).ok();
    t.run(&["history", "app/old"]).ok();
}
