//! Transcript tests of every `tresor` command, in text and `--json` form,
//! and of the documented exit codes: 0 ok, 1 not found, 2 usage, 3 locked or
//! wrong credential, 4 integrity, 5 conflict, 6 unavailable.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The recovery key in `text`: 13 groups of 4 base32 characters.
fn recovery_key_in(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|w| {
            let groups: Vec<&str> = w.split('-').collect();
            groups.len() == 13
                && groups.iter().all(|g| {
                    g.len() == 4
                        && g.bytes()
                            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
                })
        })
        .map(str::to_string)
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

// ------------------------------------------------------------------ init

#[test]
fn init_shows_the_recovery_key_on_stderr_and_it_unlocks() {
    let mut t = Tresor::new();
    let key = t.key.display().to_string();
    let o = t.run(&["--key-file", &key, "init"]);
    o.ok().err_has(&[
        "created vault",
        "wrote a new key file",
        "Recovery key (shown once",
    ]);
    assert!(o.stdout.is_empty(), "init printed on stdout: {}", o.out());
    let recovery = recovery_key_in(&o.err()).expect("a recovery key on stderr");
    assert_eq!(mode(&t.key), 0o600, "key file mode");
    assert_eq!(mode(&t.vault), 0o600, "vault file mode");
    assert_eq!(mode(t.vault.parent().unwrap()), 0o700, "vault folder mode");

    t.set_default("TRESOR_KEY_FILE", &key);
    t.run_in(&["set", "r/secret"], b"s3cret").ok();
    // The recovery key alone unlocks.
    t.clear_default("TRESOR_KEY_FILE");
    let o = t
        .cmd(&["get", "r/secret"])
        .env("TRESOR_RECOVERY_KEY", &recovery)
        .run();
    assert_eq!(o.ok().stdout, b"s3cret");
    let slots = t
        .cmd(&["--json", "keyslot", "list"])
        .env("TRESOR_RECOVERY_KEY", &recovery)
        .run()
        .ok()
        .json();
    let kinds: Vec<&str> = slots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["key-file", "recovery"]);

    // Another vault's (well-formed) recovery key is a wrong key: exit 3.
    let other = Tresor::new();
    let o = other
        .run(&["--key-file", &other.key.display().to_string(), "init"])
        .ok()
        .clone();
    let foreign = recovery_key_in(&o.err()).unwrap();
    assert_ne!(foreign, recovery);
    t.cmd(&["get", "r/secret"])
        .env("TRESOR_RECOVERY_KEY", &foreign)
        .run()
        .code(3)
        .err_has(&["wrong recovery key"]);
    // A malformed one is a usage error that names the variable.
    t.cmd(&["get", "r/secret"])
        .env("TRESOR_RECOVERY_KEY", "AAAA-BBBB")
        .run()
        .code(2)
        .err_has(&["TRESOR_RECOVERY_KEY"]);
}

#[test]
fn init_json_carries_the_recovery_key() {
    let t = Tresor::new();
    let key = t.key.display().to_string();
    let o = t.run(&["--json", "--key-file", &key, "init"]);
    o.ok();
    assert!(o.stderr.is_empty(), "--json init wrote stderr: {}", o.err());
    let j = o.json();
    assert_eq!(j["path"], t.vault.display().to_string());
    assert_eq!(j["key_file_created"], key);
    assert_eq!(j["recovery_key_file"], Value::Null);
    assert!(j["unlock"].as_str().unwrap().contains("key file"));
    let recovery = j["recovery_key"].as_str().unwrap();
    assert_eq!(recovery_key_in(recovery).as_deref(), Some(recovery));
    t.cmd(&["ls"])
        .env("TRESOR_RECOVERY_KEY", recovery)
        .run()
        .ok();
    // A second init refuses to overwrite.
    t.run(&["--key-file", &key, "init"])
        .code(2)
        .err_has(&["already exists"]);
}

#[test]
fn init_recovery_key_out_writes_a_private_file() {
    let t = Tresor::new();
    let out = t.path("recovery.txt");
    let mut args = vec![
        "--json",
        "init",
        "--password",
        "--weak-password",
        "--recovery-key-out",
        out.to_str().unwrap(),
    ];
    args.extend(FAST_KDF);
    let o = t.cmd(&args).env("TRESOR_PASSWORD", "init-pw").run();
    o.ok();
    let j = o.json();
    assert_eq!(j["recovery_key"], Value::Null, "the key is not shown");
    assert_eq!(j["recovery_key_file"], out.display().to_string());
    assert_eq!(j["unlock"], "password");
    assert_eq!(mode(&out), 0o600);
    let text = std::fs::read_to_string(&out).unwrap();
    let recovery = recovery_key_in(&text).expect("the key in the file");
    assert_eq!(text, format!("{recovery}\n"));
    assert!(!o.err().contains(&recovery) && !o.out().contains(&recovery));

    // Text mode says where the key went, without showing it.
    let t2 = Tresor::new();
    let out2 = t2.path("rk");
    let mut args = vec![
        "init",
        "--password",
        "--weak-password",
        "--recovery-key-out",
        out2.to_str().unwrap(),
    ];
    args.extend(FAST_KDF);
    let o = t2.cmd(&args).env("TRESOR_PASSWORD", "pw").run();
    o.ok().err_has(&["recovery key written to"]);
    let k2 = recovery_key_in(&std::fs::read_to_string(&out2).unwrap()).unwrap();
    assert!(!o.err().contains(&k2));

    // The recovery key unlocks; the password does too.
    t.cmd(&["set", "x"])
        .stdin(b"v")
        .env("TRESOR_RECOVERY_KEY", &recovery)
        .run()
        .ok();
    let o = t.cmd(&["get", "x"]).env("TRESOR_PASSWORD", "init-pw").run();
    assert_eq!(o.ok().stdout, b"v");
}

// -------------------------------------------------------- secret lifecycle

#[test]
fn set_get_ls_history_rotate_promote_rollback_rm_undelete_purge() {
    let t = Tresor::with_key();

    // set: JSON on stdout, or a status line on stderr; --quiet: nothing.
    let o = t
        .cmd(&["--json", "set", "app/db", "--reason", "first"])
        .stdin(b"pw-1\n")
        .run();
    o.ok();
    assert_eq!(
        o.json(),
        json!({"name": "app/db", "version": 1, "store": "vault"})
    );
    assert!(o.stderr.is_empty());
    let o = t.run_in(&["set", "app/db"], b"pw-2");
    o.ok().err_has(&["app/db: set version 2"]);
    assert!(o.stdout.is_empty());
    let o = t.run_in(&["-q", "set", "app/api"], b"key-1");
    o.ok();
    assert!(o.stdout.is_empty() && o.stderr.is_empty());

    // get: current, by version, by label, as JSON.
    assert_eq!(t.run(&["get", "app/db"]).ok().stdout, b"pw-2");
    assert_eq!(
        t.run(&["get", "app/db", "--version", "1"]).ok().stdout,
        b"pw-1"
    );
    assert_eq!(
        t.run(&["get", "app/db", "--label", "previous"]).ok().stdout,
        b"pw-1"
    );
    assert_eq!(
        t.run(&["--json", "get", "app/db"]).ok().json(),
        json!({"name": "app/db", "version": 2, "value": "pw-2", "store": "vault"})
    );

    // ls (and its alias), with and without a prefix.
    let ls = t.run(&["--json", "ls"]).ok().json();
    assert_eq!(names(&ls), ["app/api", "app/db"]);
    assert_eq!(ls[1]["current"], 2);
    assert_eq!(ls[1]["latest"], 2);
    assert_eq!(ls[1]["pending"], Value::Null);
    assert_eq!(ls[1]["deleted_at"], Value::Null);
    assert_eq!(
        names(&t.run(&["--json", "list", "app/d"]).ok().json()),
        ["app/db"]
    );
    assert_eq!(t.run(&["--json", "ls", "nothing/"]).ok().json(), json!([]));
    let text = t.run(&["ls"]).ok().out();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[1].starts_with("app/db") && lines[1].contains(" v2 "));

    // history: oldest first, labels, reason, length; never values.
    let h = t.run(&["--json", "history", "app/db"]).ok().json();
    assert_eq!(h.as_array().unwrap().len(), 2);
    assert_eq!(h[0]["version"], 1);
    assert_eq!(h[0]["reason"], "first");
    assert_eq!(h[0]["labels"], json!(["previous"]));
    assert_eq!(h[0]["len"], 4);
    assert_eq!(h[1]["labels"], json!(["current"]));
    assert!(!h[1]["actor"].as_str().unwrap().is_empty());
    let text = t.run(&["history", "app/db"]).ok().out();
    assert!(text.contains("reason: first") && text.contains("current"));
    assert!(!text.contains("pw-1") && !text.contains("pw-2"));

    // rotate --generate N --charset hex.
    let o = t.run(&[
        "--json",
        "rotate",
        "app/db",
        "--generate",
        "32",
        "--charset",
        "hex",
        "--reason",
        "rotation",
    ]);
    assert_eq!(
        o.ok().json(),
        json!({"name": "app/db", "version": 3, "store": "vault"})
    );
    let v3 = t.run(&["get", "app/db"]).ok().stdout.clone();
    assert_eq!(v3.len(), 32);
    assert!(
        v3.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)),
        "not lowercase hex: {v3:?}"
    );
    assert!(!o.out().contains(std::str::from_utf8(&v3).unwrap()));
    t.run(&["rotate", "app/db", "--generate", "8"])
        .ok()
        .err_has(&["app/db: rotated version 4"]);
    let v4 = t.run(&["get", "app/db"]).ok().stdout.clone();
    assert_eq!(v4.len(), 8);
    assert!(v4.iter().all(u8::is_ascii_alphanumeric));

    // rotate --stage: pending until promote.
    let o = t.run_in(&["--json", "rotate", "app/db", "--stage"], b"pw-5");
    assert_eq!(
        o.ok().json(),
        json!({"name": "app/db", "version": 5, "store": "vault"})
    );
    assert_eq!(t.run(&["get", "app/db"]).ok().stdout, v4);
    assert_eq!(
        t.run(&["get", "app/db", "--label", "pending"]).ok().stdout,
        b"pw-5"
    );
    let ls = t.run(&["--json", "ls", "app/db"]).ok().json();
    assert_eq!(ls[0]["pending"], 5);
    assert_eq!(ls[0]["current"], 4);
    assert!(t.run(&["ls"]).ok().out().contains("pending v5"));
    let h = t.run(&["--json", "history", "app/db"]).ok().json();
    assert_eq!(h[4]["labels"], json!(["pending"]));

    // promote.
    let o = t.run(&["--json", "promote", "app/db", "--reason", "go"]);
    assert_eq!(
        o.ok().json(),
        json!({"name": "app/db", "version": 5, "store": "vault"})
    );
    assert_eq!(t.run(&["get", "app/db"]).ok().stdout, b"pw-5");
    assert_eq!(
        t.run(&["get", "app/db", "--label", "previous"]).ok().stdout,
        v4
    );
    t.run(&["get", "app/db", "--label", "pending"])
        .code(1)
        .err_has(&["app/db", "pending"]);
    t.run(&["promote", "app/db"])
        .code(1)
        .err_has(&["app/db", "pending"]);

    // rollback: current moves back, history is kept.
    let o = t.run(&["--json", "rollback", "app/db", "1", "--reason", "bad"]);
    assert_eq!(
        o.ok().json(),
        json!({"name": "app/db", "version": 1, "store": "vault"})
    );
    assert_eq!(t.run(&["get", "app/db"]).ok().stdout, b"pw-1");
    assert_eq!(
        t.run(&["get", "app/db", "--version", "5"]).ok().stdout,
        b"pw-5"
    );
    let ls = t.run(&["--json", "ls", "app/db"]).ok().json();
    assert_eq!(
        (ls[0]["current"].clone(), ls[0]["latest"].clone()),
        (json!(1), json!(5))
    );
    t.run(&["rollback", "app/db", "2"])
        .ok()
        .err_has(&["app/db: current is now version 2"]);
    t.run(&["rollback", "app/db", "9"])
        .code(1)
        .err_has(&["app/db", "9"]);

    // rm (soft): hidden, listed under --deleted, undeletable.
    let o = t.run(&["--json", "rm", "app/db"]);
    assert_eq!(
        o.ok().json(),
        json!({"name": "app/db", "deleted": true, "purged": false, "store": "vault"})
    );
    // A read says it is deleted and how to restore it (still exit 1).
    t.run(&["get", "app/db"]).code(1).err_has(&[
        "'app/db' is deleted",
        "hint:",
        "tresor undelete app/db",
    ]);
    let e = t.run(&["--json", "get", "app/db"]).code(1).err_json();
    assert_eq!(
        (e["error"]["kind"].clone(), e["error"]["type"].clone()),
        (json!("not_found"), json!("deleted"))
    );
    t.run(&["get", "app/db", "--version", "1"]).code(1);
    t.run(&["rm", "app/db"]).code(1).err_has(&["app/db"]);
    assert_eq!(names(&t.run(&["--json", "ls"]).ok().json()), ["app/api"]);
    let deleted = t.run(&["--json", "ls", "--deleted"]).ok().json();
    assert_eq!(names(&deleted), ["app/db"]);
    assert!(deleted[0]["deleted_at"].as_i64().unwrap() > 0);
    assert!(t.run(&["ls", "--deleted"]).ok().out().contains("deleted "));
    t.run(&["delete", "app/api"])
        .ok()
        .err_has(&["app/api: deleted (undo with `tresor undelete`)"]);

    // undelete.
    let o = t.run(&["--json", "undelete", "app/db"]);
    assert_eq!(
        o.ok().json(),
        json!({"name": "app/db", "deleted": false, "store": "vault"})
    );
    assert_eq!(t.run(&["get", "app/db"]).ok().stdout, b"pw-2");
    t.run(&["undelete", "app/api"])
        .ok()
        .err_has(&["app/api: restored"]);
    t.run(&["undelete", "app/db"])
        .code(2)
        .err_has(&["'app/db' is not deleted"]);
    assert_eq!(t.run(&["--json", "ls", "--deleted"]).ok().json(), json!([]));

    // rm --purge: every version destroyed; a new secret starts over.
    let o = t.run(&["--json", "rm", "app/db", "--purge"]);
    assert_eq!(
        o.ok().json(),
        json!({"name": "app/db", "deleted": true, "purged": true, "store": "vault"})
    );
    t.run(&["get", "app/db"]).code(1);
    t.run(&["history", "app/db"]).code(1);
    t.run(&["undelete", "app/db"]).code(1);
    assert_eq!(t.run(&["--json", "ls", "--deleted"]).ok().json(), json!([]));
    let o = t.run_in(&["--json", "set", "app/db"], b"new");
    assert_eq!(o.ok().json()["version"], 1);
    // Versions of the purged secret are gone for good.
    t.run(&["rollback", "app/db", "5"])
        .code(1)
        .err_has(&["app/db", "5"]);
    t.run(&["get", "app/db", "--version", "2"]).code(1);
    assert_eq!(t.run(&["get", "app/db"]).ok().stdout, b"new");
    t.run(&["rm", "app/api", "--purge"])
        .ok()
        .err_has(&["app/api: purged"]);
    let report = t.run(&["--json", "verify"]).ok().json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["report"]["secrets"], 1);
    assert_eq!(report["report"]["versions"], 1);
}

#[test]
fn rollback_to_a_pruned_or_purged_version_fails() {
    let t = Tresor::with_key();
    t.run(&["settings", "max_versions=2"]).ok();
    for v in ["one", "two", "three"] {
        t.run_in(&["set", "p/x"], v.as_bytes()).ok();
    }
    // Version 1 was pruned (destroyed), 2 and 3 live.
    let h = t.run(&["--json", "history", "p/x"]).ok().json();
    assert!(h[0]["destroyed_at"].as_i64().unwrap() > 0, "{h}");
    assert_eq!(h[0]["len"], 0);
    assert!(t.run(&["history", "p/x"]).ok().out().contains("destroyed"));
    t.run(&["rollback", "p/x", "1"])
        .code(1)
        .err_has(&["'p/x' version 1 (destroyed)"]);
    t.run(&["get", "p/x", "--version", "1"])
        .code(1)
        .err_has(&["destroyed"]);
    assert_eq!(t.run(&["get", "p/x"]).ok().stdout, b"three");
    t.run(&["rollback", "p/x", "2"]).ok();
    assert_eq!(t.run(&["get", "p/x"]).ok().stdout, b"two");

    t.run(&["rm", "--purge", "p/x"]).ok();
    t.run(&["rollback", "p/x", "2"]).code(1).err_has(&["p/x"]);
    t.run(&["rollback", "p/x", "3"]).code(1);
    t.run(&["verify"]).ok();
}

#[test]
fn metadata_is_set_merged_removed_and_shown() {
    let t = Tresor::with_key();
    t.run_in(
        &["set", "m/x", "--meta", "owner=ops", "--meta", "env=dev"],
        b"v",
    )
    .ok();
    assert_eq!(
        t.run(&["--json", "meta", "m/x"]).ok().json(),
        json!({"env": "dev", "owner": "ops"})
    );
    let o = t.run(&["--json", "meta", "m/x", "env=prod", "url=https://x/y?a=b"]);
    assert_eq!(
        o.ok().json(),
        json!({"env": "prod", "owner": "ops", "url": "https://x/y?a=b"})
    );
    // KEY= removes; text form is KEY=VALUE lines.
    let o = t.run(&["meta", "m/x", "owner="]);
    assert_eq!(o.ok().out(), "env=prod\nurl=https://x/y?a=b\n");
    assert_eq!(
        t.run(&["meta", "m/x"]).ok().out(),
        "env=prod\nurl=https://x/y?a=b\n"
    );
    // Metadata shows in ls --json and survives a new version.
    t.run_in(&["set", "m/x"], b"v2").ok();
    let ls = t.run(&["--json", "ls", "m/"]).ok().json();
    assert_eq!(
        ls[0]["metadata"],
        json!({"env": "prod", "url": "https://x/y?a=b"})
    );
    // Errors.
    t.run(&["meta", "m/x", "novalue"])
        .code(2)
        .err_has(&["KEY=VALUE"]);
    t.run(&["meta", "m/x", "=v"]).code(2);
    let long = format!("k={}", "v".repeat(513));
    t.run(&["meta", "m/x", &long]).code(2).err_has(&["512"]);
    t.run(&["meta", "m/missing", "a=b"])
        .code(1)
        .err_has(&["m/missing"]);
    t.run(&["rm", "m/x"]).ok();
    t.run(&["meta", "m/x"]).code(1).err_has(&["m/x"]);
    t.run(&["meta", "m/x", "a=b"]).code(1).err_has(&["m/x"]);
}

// ------------------------------------------------------------- key slots

#[test]
fn passwords_passwd_and_password_slots() {
    let mut t = Tresor::with_password("pw-one");
    t.run_in(&["set", "k/s"], b"value").ok();
    let slots = t.run(&["--json", "keyslot", "list"]).ok().json();
    assert_eq!(slots.as_array().unwrap().len(), 1);
    assert_eq!(slots[0]["kind"], "password");
    assert_eq!(slots[0]["argon2"], json!([8192, 1, 1]));

    // passwd with TRESOR_NEW_PASSWORD.
    let mut args = vec!["--json", "passwd", "--weak-password"];
    args.extend(FAST_KDF);
    let o = t.cmd(&args).env("TRESOR_NEW_PASSWORD", "pw-two").run();
    assert_eq!(o.ok().json(), json!({"slot": 1, "changed": true}));
    t.run(&["get", "k/s"]).code(3).err_has(&["wrong password"]);
    t.set_default("TRESOR_PASSWORD", "pw-two");
    assert_eq!(t.run(&["get", "k/s"]).ok().stdout, b"value");
    // Without a new password and without a terminal: locked, naming the variable.
    t.run(&["passwd"]).code(3).err_has(&["TRESOR_NEW_PASSWORD"]);

    // keyslot add --password.
    let mut args = vec![
        "--json",
        "keyslot",
        "add",
        "--password",
        "--weak-password",
        "--label",
        "backup",
    ];
    args.extend(FAST_KDF);
    let o = t.cmd(&args).env("TRESOR_NEW_PASSWORD", "pw-three").run();
    assert_eq!(
        o.ok().json(),
        json!({"slot": 2, "kind": "password", "key_file_created": null})
    );
    for pw in ["pw-two", "pw-three"] {
        let o = t.cmd(&["get", "k/s"]).env("TRESOR_PASSWORD", pw).run();
        assert_eq!(o.ok().stdout, b"value", "{pw}");
    }
    // The other password variables work too.
    for var in ["KEYSTORE_PASSWORD", "SECRETS_STORE_PASSWORD"] {
        let o = t
            .cmd(&["get", "k/s"])
            .env_remove("TRESOR_PASSWORD")
            .env(var, "pw-three")
            .run();
        assert_eq!(o.ok().stdout, b"value", "{var}");
    }
    let text = t.run(&["keyslot", "list"]).ok().out();
    assert!(text.contains("backup") && text.contains("argon2id m=8MiB t=1 p=1"));

    // passwd changes the slot that unlocked.
    let mut args = vec!["--json", "passwd", "--weak-password"];
    args.extend(FAST_KDF);
    let o = t
        .cmd(&args)
        .env("TRESOR_PASSWORD", "pw-three")
        .env("TRESOR_NEW_PASSWORD", "pw-four")
        .run();
    assert_eq!(o.ok().json(), json!({"slot": 2, "changed": true}));
    t.cmd(&["get", "k/s"])
        .env("TRESOR_PASSWORD", "pw-three")
        .run()
        .code(3);
    t.cmd(&["get", "k/s"])
        .env("TRESOR_PASSWORD", "pw-four")
        .run()
        .ok();
    t.run(&["get", "k/s"]).ok();
    // --slot picks one explicitly; a bad slot id is not found.
    let mut args = vec!["passwd", "--slot", "9", "--weak-password"];
    args.extend(FAST_KDF);
    t.cmd(&args)
        .env("TRESOR_NEW_PASSWORD", "x")
        .run()
        .code(1)
        .err_has(&["key slot 9"]);

    // keyslot remove; never the last.
    let o = t.run(&["--json", "keyslot", "remove", "1"]);
    assert_eq!(o.ok().json(), json!({"slot": 1, "removed": true}));
    t.run(&["get", "k/s"]).code(3);
    t.set_default("TRESOR_PASSWORD", "pw-four");
    t.run(&["keyslot", "rm", "2"])
        .code(2)
        .err_has(&["last password or key-file slot"]);
    t.run(&["keyslot", "remove", "7"])
        .code(1)
        .err_has(&["key slot 7"]);
    let slots = t.run(&["--json", "keyslot", "ls"]).ok().json();
    assert_eq!(slots.as_array().unwrap().len(), 1);
    assert_eq!(slots[0]["id"], 2);
    assert_eq!(t.run(&["get", "k/s"]).ok().stdout, b"value");
}

#[test]
fn key_file_slots() {
    let t = Tresor::with_key();
    t.run_in(&["set", "k/s"], b"value").ok();
    let new = t.path("new.key");
    let new_s = new.display().to_string();

    // keyslot add --key-file NEW, unlocking with TRESOR_KEY_FILE=old.
    let o = t.run(&["--json", "--key-file", &new_s, "keyslot", "add"]);
    assert_eq!(
        o.ok().json(),
        json!({"slot": 2, "kind": "key-file", "key_file_created": new_s})
    );
    assert_eq!(mode(&new), 0o600);
    let text = std::fs::read_to_string(&new).unwrap();
    assert_ne!(text, std::fs::read_to_string(&t.key).unwrap());

    // The new key opens it: by variable, by flag, and as TRESOR_KEY text.
    let o = t.cmd(&["get", "k/s"]).env("TRESOR_KEY_FILE", &new).run();
    assert_eq!(o.ok().stdout, b"value");
    let o = t
        .cmd(&["--key-file", &new_s, "get", "k/s"])
        .env_remove("TRESOR_KEY_FILE")
        .run();
    assert_eq!(o.ok().stdout, b"value");
    let o = t
        .cmd(&["get", "k/s"])
        .env_remove("TRESOR_KEY_FILE")
        .env("TRESOR_KEY", text.trim())
        .run();
    assert_eq!(o.ok().stdout, b"value");
    // --key-file wins over TRESOR_KEY_FILE (here a valid key).
    let o = t.run(&["--key-file", &new_s, "get", "k/s"]);
    assert_eq!(o.ok().stdout, b"value");
    let foreign = Tresor::with_key();
    t.run(&["--key-file", foreign.key.to_str().unwrap(), "get", "k/s"])
        .code(3)
        .err_has(&["wrong key"]);

    // An existing file is reused, not overwritten.
    let third = t.path("third.key");
    t.run(&["--key-file", third.to_str().unwrap(), "keyslot", "add"])
        .ok()
        .err_has(&["added key-file key slot 3", "wrote a new key file"]);
    let third_text = std::fs::read(&third).unwrap();
    let o = t.run(&[
        "--json",
        "--key-file",
        third.to_str().unwrap(),
        "keyslot",
        "add",
    ]);
    assert_eq!(o.ok().json()["key_file_created"], Value::Null);
    assert_eq!(std::fs::read(&third).unwrap(), third_text);

    // keyslot add needs --password or --key-file.
    t.run(&["keyslot", "add"])
        .code(2)
        .err_has(&["--password or --key-file"]);

    // Remove the old slot: the old key stops working.
    t.cmd(&["keyslot", "remove", "1"])
        .env("TRESOR_KEY_FILE", &new)
        .run()
        .ok()
        .err_has(&["removed key slot 1"]);
    t.run(&["get", "k/s"]).code(3).err_has(&["wrong key"]);
    let slots = t
        .cmd(&["--json", "keyslot", "list"])
        .env("TRESOR_KEY_FILE", &new)
        .run()
        .ok()
        .json();
    let ids: Vec<u64> = slots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 3, 4]);
    assert!(
        slots
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["kind"] == "key-file")
    );
    for id in ["3", "4"] {
        t.cmd(&["keyslot", "remove", id])
            .env("TRESOR_KEY_FILE", &new)
            .run()
            .ok();
    }
    t.cmd(&["keyslot", "remove", "2"])
        .env("TRESOR_KEY_FILE", &new)
        .run()
        .code(2)
        .err_has(&["last"]);
}

// ------------------------------------------------------------------ audit

#[test]
fn audit_log_filters_and_verify() {
    let t = Tresor::with_key();
    t.run_in(&["set", "a/one", "--reason", "initial"], b"1")
        .ok();
    t.run_in(&["set", "a/two"], b"2").ok();
    t.run(&["get", "a/one"]).ok();
    t.run(&["get", "a/missing"]).code(1);
    t.run_in(&["set", "a/one", "--expect-version", "9"], b"x")
        .code(5);
    t.run(&["rm", "a/two"]).ok();
    t.run(&["ls"]).ok();
    t.run(&["history", "a/one"]).ok();

    let all = t.audit();
    let rows: Vec<(String, String, String)> = all
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().unwrap().to_string(),
                e["name"].as_str().unwrap_or("-").to_string(),
                e["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = [
        ("init", "-", "ok"),
        ("set", "a/one", "ok"),
        ("set", "a/two", "ok"),
        ("get", "a/one", "ok"),
        ("get", "a/missing", "not_found"),
        ("set", "a/one", "conflict"),
        ("delete", "a/two", "ok"),
        ("list", "-", "ok"),
        ("history", "a/one", "ok"),
    ];
    let expect: Vec<(String, String, String)> = expect
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(rows, expect);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e["seq"], i + 1);
        assert!(e["at"].as_i64().unwrap() > 1_600_000_000_000);
        assert_eq!(e["store"], "vault");
        assert!(!e["actor"].as_str().unwrap().is_empty());
    }
    assert_eq!(all[1]["reason"], "initial");
    assert_eq!(all[1]["versions"], json!([1]));
    assert_eq!(all[3]["versions"], json!([1]));

    // --name, -n, --writes-only.
    let one = t
        .run(&["--json", "audit", "log", "--name", "a/one"])
        .ok()
        .json_lines();
    assert_eq!(one.len(), 4);
    assert!(one.iter().all(|e| e["name"] == "a/one"));
    let last2 = t
        .run(&["--json", "audit", "log", "-n", "2"])
        .ok()
        .json_lines();
    assert_eq!(last2, all[all.len() - 2..]);
    let last_one = t
        .run(&["--json", "audit", "log", "--name", "a/one", "-n", "1"])
        .ok()
        .json_lines();
    assert_eq!(last_one.len(), 1);
    assert_eq!(last_one[0]["operation"], "history");
    let writes = t
        .run(&["--json", "audit", "log", "--writes-only"])
        .ok()
        .json_lines();
    assert_eq!(writes.len(), 5, "{writes:?}");
    assert!(
        writes
            .iter()
            .all(|e| !["get", "list", "history"].contains(&e["operation"].as_str().unwrap()))
    );

    // Text form: one line per entry.
    let text = t.run(&["audit", "log"]).ok().out();
    assert_eq!(text.lines().count(), all.len());
    assert!(text.lines().nth(1).unwrap().contains("a/one"));
    assert!(text.contains("reason: initial"));
    assert!(text.contains("conflict"));

    // Reading the log adds nothing; verify counts every entry.
    let o = t.run(&["--json", "audit", "verify"]);
    assert_eq!(o.ok().json(), json!({"ok": true, "entries": all.len()}));
    t.run(&["audit", "verify"])
        .ok()
        .err_has(&[&format!("audit chain intact: {} entries", all.len())]);
    let v = t.run(&["--json", "verify"]).ok().json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["report"]["secrets"], 2);
    assert_eq!(v["report"]["versions"], 2);
    assert_eq!(v["report"]["destroyed_versions"], 0);
    assert_eq!(v["report"]["data_keys"], 1);
    assert_eq!(v["report"]["audit_entries"], all.len());
    let text = t.run(&["verify"]).ok().out();
    assert!(text.starts_with("ok: 2 secrets, 2 versions"), "{text}");
    assert!(t.run(&["-q", "verify"]).ok().stdout.is_empty());
}

#[test]
fn settings_show_change_and_audit_reads_false_stops_read_entries() {
    let t = Tresor::with_key();
    t.run_in(&["set", "s/x"], b"v").ok();
    assert_eq!(
        t.run(&["--json", "settings"]).ok().json(),
        json!({"audit_reads": true, "max_versions": 20, "max_value_len": 1_048_576})
    );
    assert_eq!(
        t.run(&["settings"]).ok().out(),
        "audit_reads=true\nmax_versions=20\nmax_value_len=1048576\n"
    );

    let n0 = t.audit().len();
    t.run(&["get", "s/x"]).ok();
    t.run(&["ls"]).ok();
    t.run(&["history", "s/x"]).ok();
    assert_eq!(t.audit().len(), n0 + 3, "reads are audited by default");

    let o = t.run(&["--json", "settings", "audit_reads=false"]);
    assert_eq!(o.ok().json()["audit_reads"], false);
    let n1 = t.audit().len();
    assert_eq!(n1, n0 + 4, "the settings change is audited");
    assert_eq!(t.audit().last().unwrap()["operation"], "settings");
    t.run(&["get", "s/x"]).ok();
    t.run(&["get", "s/missing"]).code(1);
    t.run(&["ls"]).ok();
    t.run(&["history", "s/x"]).ok();
    assert_eq!(
        t.audit().len(),
        n1,
        "reads were audited with audit_reads=false"
    );
    // Writes still are.
    t.run_in(&["set", "s/x"], b"v2").ok();
    assert_eq!(t.audit().len(), n1 + 1);
    assert!(
        t.run(&["settings"])
            .ok()
            .out()
            .contains("audit_reads=false")
    );
    t.run(&["settings", "audit_reads=true"]).ok();
    t.run(&["get", "s/x"]).ok();
    assert_eq!(t.audit().last().unwrap()["operation"], "get");

    // Bad settings.
    t.run(&["settings", "audit_reads=maybe"])
        .code(2)
        .err_has(&["audit_reads", "true or false"]);
    t.run(&["settings", "max_versions=0"]).code(2);
    t.run(&["settings", "bogus=1"])
        .code(2)
        .err_has(&["unknown setting"]);
    t.run(&["settings", "max_versions"]).code(2);
    assert_eq!(
        t.run(&["--json", "settings"]).ok().json()["max_versions"],
        20
    );
    t.run(&["verify"]).ok();
}

#[test]
fn a_mistyped_command_suggests_the_nearest() {
    let t = Tresor::new();
    // Swapped letters, which clap's own suggestions miss.
    t.run(&["gte", "a/b"])
        .code(2)
        .err_has(&["unrecognized subcommand 'gte'", "did you mean 'get'?"]);
    t.run(&["mr", "a/b"])
        .code(2)
        .err_has(&["did you mean 'rm'?"]);
    let e = t.run(&["--json", "gte"]).code(2).err_json();
    assert_eq!(e["error"]["hint"], "did you mean 'get'?");
    // Nothing near: no guess.
    let far = t.run(&["zzz"]);
    far.code(2);
    assert!(!far.err().contains("did you mean"), "{}", far.err());
}

#[test]
fn completions_for_bash() {
    let t = Tresor::new();
    let o = t.run(&["completions", "bash"]);
    let script = o.ok().out();
    assert!(script.contains("_tresor()"), "no completion function");
    assert!(script.contains("complete -F _tresor"));
    for cmd in [
        "init",
        "set",
        "get",
        "rotate",
        "keyslot",
        "audit",
        "--expect-version",
    ] {
        assert!(script.contains(cmd), "{cmd} missing from completions");
    }
    assert!(!t.vault.exists(), "completions touched the vault");
    t.run(&["completions", "zsh"]).ok();
    t.run(&["completions", "tcsh-ish"]).code(2);

    // A reader that stops early (`tresor completions bash | head -3`): no
    // panic (it was exit 134, clap_complete's write failing).
    for _ in 0..3 {
        let mut child = t
            .cmd(&["completions", "bash"])
            .into_command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{:?}: {err}", out.status);
        assert!(!err.contains("panicked"), "{err}");
    }
}

// ------------------------------------------------------------ exit codes

#[test]
fn exit_1_not_found_names_the_secret() {
    let t = Tresor::with_key();
    t.run_in(&["set", "nf/live"], b"v").ok();
    t.run_in(&["set", "nf/gone"], b"v").ok();
    t.run(&["rm", "nf/gone"]).ok();
    let cases: &[&[&str]] = &[
        &["get", "nf/missing"],
        &["get", "nf/gone"],
        &["get", "nf/live", "--version", "7"],
        &["get", "nf/live", "--label", "pending"],
        &["history", "nf/missing"],
        &["rm", "nf/missing"],
        &["rm", "nf/gone"],
        &["undelete", "nf/missing"],
        &["promote", "nf/live"],
        &["promote", "nf/gone"],
        &["rollback", "nf/live", "3"],
        &["rollback", "nf/gone", "1"],
        &["meta", "nf/missing"],
        &["meta", "nf/gone", "a=b"],
    ];
    for args in cases {
        let o = t.run(args);
        o.code(1).err_has(&[args[1]]);
        let mut json_args = vec!["--json"];
        json_args.extend(*args);
        let o = t.run(&json_args);
        let e = o.code(1).err_json();
        assert_eq!(e["error"]["kind"], "not_found", "{args:?}");
        assert!(e["error"]["message"].as_str().unwrap().contains(args[1]));
    }
    // Not found changes nothing.
    assert_eq!(t.run(&["get", "nf/live"]).ok().stdout, b"v");
    t.run(&["verify"]).ok();
}

#[test]
fn exit_2_usage_bad_names_and_flags() {
    let t = Tresor::with_key();
    let long = "x".repeat(257);
    let bad_names = [
        "",
        "..",
        ".",
        "a/../b",
        "a/./b",
        "../a",
        "with space",
        "tab\there",
        "/lead",
        "trail/",
        "a//b",
        "naïve",
        "semi;colon",
        long.as_str(),
    ];
    for name in bad_names {
        for cmd in ["get", "set", "history", "rm", "meta"] {
            let o = t.cmd(&[cmd, "--", name]).stdin(b"value").run();
            o.code(2)
                .err_has(&["invalid secret name", "segments joined by '/'"]);
        }
        let e = t.run(&["--json", "get", "--", name]).code(2).err_json();
        assert_eq!(e["error"]["kind"], "invalid_name");
    }
    // 256 bytes is fine, 257 is not.
    t.run_in(&["set", &"y".repeat(256)], b"v").ok();
    t.run(&["get", &long])
        .code(2)
        .err_has(&["longer than 256 bytes"]);
    assert_eq!(names(&t.run(&["--json", "ls"]).ok().json()).len(), 1);

    // Bad flags and arguments (clap's usage errors are exit 2 too).
    let cases: &[&[&str]] = &[
        &["--bogus"],
        &["get"],
        &["get", "x", "--bogus"],
        &["get", "x", "--version", "one"],
        &["get", "x", "--version", "1", "--label", "current"],
        &["get", "x", "--label", "newest"],
        &["set", "x", "--generate", "0"],
        &["set", "x", "--generate", "5000"],
        &["set", "x", "--file", "f", "--generate", "4"],
        &["set", "x", "--charset", "hex"],
        &["set", "x", "--encoding", "base64"],
        &["set", "x", "--meta", "novalue"],
        &["rotate", "x", "--charset", "klingon", "--generate", "3"],
        &["rollback", "x"],
        &["rollback", "x", "minus-one"],
        &["keyslot", "remove", "one"],
        &["audit", "log", "-n", "many"],
        &["nosuchcommand"],
        &["completions"],
        &["init", "--kdf-memory", "0", "--password"],
    ];
    for args in cases {
        let o = t.run(args);
        o.code(2);
        assert!(!o.stderr.is_empty(), "{args:?}: no message");
        // With --json the same usage error is one JSON object on stderr.
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let e = t.run(&with_json).code(2).err_json();
        assert!(e["error"]["kind"].is_string(), "{args:?}: {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(
            !message.is_empty() && !message.starts_with("error:"),
            "{args:?}: {message}"
        );
    }
    // Errors found by the argument parser itself are of kind "usage".
    for args in [
        &["--json", "--bogus"][..],
        &["--json", "get"],
        &["--json", "nosuchcommand"],
    ] {
        let e = t.run(args).code(2).err_json();
        assert_eq!(e["error"]["kind"], "usage", "{args:?}");
    }
    // --help still prints help (exit 0), with or without --json.
    for args in [&["--json", "--help"][..], &["get", "--help", "--json"][..]] {
        let o = t.run(args);
        o.ok();
        assert!(o.out().contains("Usage:"), "{args:?}: {}", o.out());
    }
    // A malformed key file or TRESOR_KEY is a usage error naming it.
    let junk = t.write("junk.key", b"short");
    t.cmd(&["ls"])
        .env("TRESOR_KEY_FILE", &junk)
        .run()
        .code(2)
        .err_has(&["junk.key"]);
    t.cmd(&["ls"])
        .env_remove("TRESOR_KEY_FILE")
        .env("TRESOR_KEY", "short")
        .run()
        .code(2)
        .err_has(&["TRESOR_KEY"]);
    t.cmd(&["ls"])
        .env("TRESOR_LOCK_TIMEOUT", "soon")
        .run()
        .code(2)
        .err_has(&["TRESOR_LOCK_TIMEOUT"]);
    t.run(&["verify"]).ok();
}

#[test]
fn exit_3_wrong_credentials_and_no_credential_without_a_terminal() {
    let t = Tresor::with_key();
    t.run_in(&["set", "c/x"], b"v").ok();
    // A well-formed key of another vault.
    let other = Tresor::with_key();
    t.cmd(&["get", "c/x"])
        .env("TRESOR_KEY_FILE", &other.key)
        .run()
        .code(3)
        .err_has(&["wrong key"]);
    let e = t
        .cmd(&["--json", "get", "c/x"])
        .env("TRESOR_KEY_FILE", &other.key)
        .run()
        .code(3)
        .err_json();
    assert_eq!(e["error"]["kind"], "auth");
    // A password for a vault without a password slot.
    t.cmd(&["get", "c/x"])
        .env_remove("TRESOR_KEY_FILE")
        .env("TRESOR_PASSWORD", "guess")
        .run()
        .code(3)
        .err_has(&["no password slot"]);
    // No credential, no terminal: locked, saying what to set. This vault
    // has no password slot, so a password is not among the remedies.
    let cases: [&[&str]; 4] = [&["get", "c/x"], &["ls"], &["audit", "log"], &["verify"]];
    for args in cases {
        let o = t.cmd(args).env_remove("TRESOR_KEY_FILE").run();
        o.code(3).err_has(&[
            "locked",
            "no password slot",
            "TRESOR_KEY_FILE",
            "TRESOR_KEY ",
        ]);
        assert!(!o.err().contains("TRESOR_PASSWORD"), "{}", o.err());
    }
    let o = t
        .cmd(&["set", "c/x"])
        .stdin(b"new")
        .env_remove("TRESOR_KEY_FILE")
        .run();
    o.code(3)
        .err_has(&["TRESOR_KEY_FILE", "TRESOR_RECOVERY_KEY"]);
    let e = t
        .cmd(&["--json", "ls"])
        .env_remove("TRESOR_KEY_FILE")
        .run()
        .code(3)
        .err_json();
    assert_eq!(e["error"]["kind"], "locked");
    // init without any credential (and, with --no-keychain, without a
    // keychain probe: this plain test run must not touch a real keychain)
    // is refused the same way.
    let fresh = Tresor::new();
    fresh
        .run(&["init", "--no-keychain"])
        .code(3)
        .err_has(&["TRESOR_KEY_FILE", "TRESOR_PASSWORD"]);
    assert!(!fresh.vault.exists());

    // Wrong password on a password vault.
    let p = Tresor::with_password("right");
    p.cmd(&["ls"])
        .env("TRESOR_PASSWORD", "wrong")
        .run()
        .code(3)
        .err_has(&["wrong password"]);
    // Nothing changed.
    assert_eq!(t.run(&["get", "c/x"]).ok().stdout, b"v");
}

#[test]
fn exit_4_integrity_garbage_empty_and_truncated_vaults() {
    let t = Tresor::with_key();
    for i in 0..20 {
        t.run_in(&["set", &format!("i/{i}")], &filler(3000, i)).ok();
    }
    // Purging checkpoints the WAL into the main file.
    t.run_in(&["set", "i/gone"], b"x").ok();
    t.run(&["rm", "--purge", "i/gone"]).ok();
    let real = std::fs::read(&t.vault).unwrap();
    assert!(real.len() > 40_000, "the vault file holds the data");

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", filler(8192, 99)),
        ("text", b"hello, this is not a database\n".to_vec()),
        ("empty", Vec::new()),
        ("first-2000", real[..2000].to_vec()),
        ("first-4096", real[..4096].to_vec()),
        ("half", real[..real.len() / 2].to_vec()),
        ("lacking-a-page", real[..real.len() - 4096].to_vec()),
    ];
    for (what, bytes) in cases {
        let path = t.write(&format!("bad/{what}.db"), &bytes);
        let commands: [&[&str]; 4] = [&["ls"], &["get", "i/1"], &["verify"], &["keyslot", "list"]];
        for args in commands {
            let o = t.cmd(args).env("TRESOR_VAULT", &path).run();
            o.code(4);
            let err = o.err();
            assert!(
                err.contains("not a tresor vault") || err.contains("integrity check failed"),
                "{what} {args:?}: unclear message: {err}"
            );
            assert!(err.contains(&path.display().to_string()), "{what}: {err}");
        }
        let e = t
            .cmd(&["--json", "ls"])
            .env("TRESOR_VAULT", &path)
            .run()
            .code(4)
            .err_json();
        assert_eq!(e["error"]["kind"], "integrity");
        // Nothing was written into the damaged file.
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{what} was modified");
    }
    // The real vault is fine.
    t.run(&["verify"]).ok();
}

#[test]
fn exit_5_conflict_on_expect_version() {
    let t = Tresor::with_key();
    let o = t.run_in(
        &["--json", "set", "cas/x", "--expect-version", "0"],
        b"first-VAL",
    );
    assert_eq!(o.ok().json()["version"], 1);
    let o = t.run_in(&["set", "cas/x", "--expect-version", "0"], b"second-VAL");
    o.code(5).err_has(&[
        "conflict on 'cas/x'",
        "expected version 0, found 1",
        "read it again",
    ]);
    assert!(!o.err().contains("second-VAL") && !o.err().contains("first-VAL"));
    t.run_in(&["set", "cas/x", "--expect-version", "1"], b"v2")
        .ok();
    let o = t.run_in(
        &["--json", "set", "cas/x", "--expect-version", "1"],
        b"third-VAL",
    );
    let e = o.code(5).err_json();
    assert_eq!(e["error"]["kind"], "conflict");
    assert!(e["error"]["message"].as_str().unwrap().contains("cas/x"));
    assert!(!o.err().contains("third-VAL"));
    // The conflicts stored nothing and are audited.
    assert_eq!(t.run(&["get", "cas/x"]).ok().stdout, b"v2");
    let h = t.run(&["--json", "history", "cas/x"]).ok().json();
    assert_eq!(h.as_array().unwrap().len(), 2);
    let conflicts = t
        .audit()
        .iter()
        .filter(|e| e["result"] == "conflict")
        .count();
    assert_eq!(conflicts, 2);
    // A soft-deleted secret counts as version 0.
    t.run(&["rm", "cas/x"]).ok();
    t.run_in(&["set", "cas/x", "--expect-version", "2"], b"v")
        .code(5)
        .err_has(&["found 0"]);
    t.run_in(&["set", "cas/x", "--expect-version", "0"], b"v3")
        .ok();
    assert_eq!(t.run(&["get", "cas/x"]).ok().stdout, b"v3");
}

/// Holds SQLite's write lock on `vault` from another process until killed.
fn hold_write_lock(vault: &Path) -> std::process::Child {
    const SCRIPT: &str = "import sqlite3, sys, time\n\
        c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
        c.execute('BEGIN IMMEDIATE')\n\
        print('locked', flush=True)\n\
        time.sleep(60)\n";
    let mut child = clean_command("python3")
        .args(["-c", SCRIPT])
        .arg(vault)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (with its sqlite3 module) is needed to hold a vault lock");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked", "python3 did not take the lock");
    child
}

#[test]
fn exit_6_unavailable_missing_directory_and_lock_timeout() {
    let t = Tresor::with_key();
    // No vault there.
    let missing = t.path("nowhere/vault.db");
    let o = t.cmd(&["get", "x"]).env("TRESOR_VAULT", &missing).run();
    o.code(6).err_has(&["no vault at", "tresor init"]);
    let e = t
        .cmd(&["--json", "ls"])
        .env("TRESOR_VAULT", &missing)
        .run()
        .code(6)
        .err_json();
    // The family scripts match on stays; the exact kind and the remedy
    // come beside it.
    assert_eq!(e["error"]["kind"], "unavailable");
    assert_eq!(e["error"]["type"], "no_vault");
    assert!(
        e["error"]["hint"].as_str().unwrap().contains("tresor init"),
        "{e}"
    );
    assert!(!missing.exists(), "a read created the vault");
    // The vault path is a directory.
    let dir = t.path("a-directory");
    std::fs::create_dir(&dir).unwrap();
    t.cmd(&["ls"])
        .env("TRESOR_VAULT", &dir)
        .run()
        .code(6)
        .err_has(&["is a directory"]);
    // --vault wins over TRESOR_VAULT.
    t.run(&["--vault", dir.to_str().unwrap(), "ls"]).code(6);

    // Another process holds the write lock: exit 6 after the timeout.
    t.run_in(&["set", "lock/x"], b"before").ok();
    let mut holder = hold_write_lock(&t.vault);
    let start = Instant::now();
    let o = t
        .cmd(&["set", "lock/x"])
        .stdin(b"during")
        .env("TRESOR_LOCK_TIMEOUT", "0.5")
        .run();
    let waited = start.elapsed();
    holder.kill().unwrap();
    holder.wait().unwrap();
    o.code(6).err_has(&["TRESOR_LOCK_TIMEOUT", "locked"]);
    assert!(!o.err().contains("during"));
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(10),
        "waited {waited:?} for a 0.5 s lock timeout"
    );
    // Released: the write goes through and the refused one left no trace.
    assert_eq!(t.run(&["get", "lock/x"]).ok().stdout, b"before");
    t.run_in(&["set", "lock/x"], b"after").ok();
    let h = t.run(&["--json", "history", "lock/x"]).ok().json();
    assert_eq!(h.as_array().unwrap().len(), 2);
    t.run(&["verify"]).ok();
}

#[test]
fn errors_name_the_secret_and_never_contain_the_value() {
    const VALUE: &str = "VALUE-must-not-leak-4d1e";
    let t = Tresor::with_key();
    let name = "err/target";
    t.run_in(&["set", name], VALUE.as_bytes()).ok();
    t.run(&["settings", "max_value_len=64"]).ok();
    let long_value = format!("{VALUE}{}", "z".repeat(64));
    let value_file = t.write("in/value", VALUE.as_bytes());

    let failures: Vec<(Vec<&str>, &[u8], i32)> = vec![
        (
            vec!["set", name, "--expect-version", "7"],
            VALUE.as_bytes(),
            5,
        ),
        (
            vec![
                "set",
                name,
                "--expect-version",
                "0",
                "--file",
                value_file.to_str().unwrap(),
            ],
            b"".as_slice(),
            5,
        ),
        (vec!["set", name], long_value.as_bytes(), 2),
        (vec!["rotate", name, "--stage"], long_value.as_bytes(), 2),
        (vec!["get", name, "--version", "4"], b"".as_slice(), 1),
        (vec!["get", name, "--label", "pending"], b"".as_slice(), 1),
        (vec!["promote", name], b"".as_slice(), 1),
        (vec!["rollback", name, "2"], b"".as_slice(), 1),
        (vec!["undelete", name], b"".as_slice(), 2),
    ];
    for (args, stdin, code) in &failures {
        for json in [false, true] {
            let mut full = if json { vec!["--json"] } else { vec![] };
            full.extend(args.iter().copied());
            let o = t.cmd(&full).stdin(stdin).run();
            o.code(*code).err_has(&[name]);
            assert!(
                !o.err().contains(VALUE) && !o.out().contains(VALUE),
                "{full:?} leaked the value: {}",
                o.err()
            );
        }
    }
    t.run(&["rm", name]).ok();
    for args in [vec!["get", name], vec!["rm", name], vec!["meta", name]] {
        let o = t.run(&args);
        o.code(1).err_has(&[name]);
        assert!(!o.err().contains(VALUE));
    }
}

#[test]
fn a_failed_init_or_keyslot_add_leaves_no_new_key_file() {
    let t = Tresor::with_key();
    // init over an existing vault: refused, and no stray key is made.
    let stray = t.path("stray.key");
    t.run(&["--key-file", stray.to_str().unwrap(), "init"])
        .code(2)
        .err_has(&["already exists"]);
    assert!(
        !stray.exists(),
        "a failed init left a key file that opens nothing"
    );
    // keyslot add with a wrong or missing credential: same.
    let new = t.path("new.key");
    let other = Tresor::with_key();
    t.cmd(&["--key-file", new.to_str().unwrap(), "keyslot", "add"])
        .env("TRESOR_KEY_FILE", &other.key)
        .run()
        .code(3);
    assert!(!new.exists(), "a failed keyslot add left a key file");
    t.cmd(&["--key-file", new.to_str().unwrap(), "keyslot", "add"])
        .env_remove("TRESOR_KEY_FILE")
        .run()
        .code(3);
    assert!(!new.exists(), "a failed keyslot add left a key file");
    // An existing key file is never removed on failure.
    let existing = t.write_key("existing.key", &std::fs::read(&other.key).unwrap());
    t.cmd(&["--key-file", existing.to_str().unwrap(), "keyslot", "add"])
        .env("TRESOR_KEY_FILE", &other.key)
        .run()
        .code(3);
    assert!(
        existing.exists(),
        "a failed keyslot add removed a key file it did not make"
    );
    t.run(&["--key-file", existing.to_str().unwrap(), "init"])
        .code(2);
    assert!(
        existing.exists(),
        "a failed init removed a key file it did not make"
    );
    // The successful path still keeps the file.
    t.run(&["--key-file", new.to_str().unwrap(), "keyslot", "add"])
        .ok();
    assert!(new.exists());
    t.cmd(&["ls"]).env("TRESOR_KEY_FILE", &new).run().ok();
}

/// `keyslot add --pkcs11` checks its arguments before touching a module or
/// the vault (the token itself is exercised in tests/pkcs11.rs).
#[test]
fn pkcs11_slot_arguments_are_checked_up_front() {
    let t = Tresor::with_key();
    t.run(&[
        "keyslot",
        "add",
        "--pkcs11",
        "--token",
        "t",
        "--key-label",
        "k",
    ])
    .code(2)
    .err_has(&["--pkcs11 needs --module PATH"]);
    t.run(&[
        "keyslot",
        "add",
        "--pkcs11",
        "--module",
        "/x.so",
        "--key-label",
        "k",
    ])
    .code(2)
    .err_has(&["--token LABEL"]);
    t.run(&["keyslot", "add", "--module", "/x.so"]).code(2);
    t.run(&["keyslot", "add", "--pkcs11", "--keychain"]).code(2);
    t.cmd(&[
        "keyslot",
        "add",
        "--pkcs11",
        "--module",
        "/nonexistent/libp11.so",
        "--token",
        "t",
        "--key-label",
        "k",
    ])
    .env("TRESOR_PKCS11_PIN", "pin-31337")
    .run()
    .code(6)
    .err_has(&["/nonexistent/libp11.so", "no such file"]);
    let slots = t.run(&["--json", "keyslot", "list"]).ok().json();
    assert_eq!(slots.as_array().unwrap().len(), 1);
    // The help teaches the flags and the PIN variable.
    t.run(&["keyslot", "add", "--help"])
        .ok()
        .out()
        .contains("TRESOR_PKCS11_PIN")
        .then_some(())
        .expect("keyslot add --help names TRESOR_PKCS11_PIN");
}

/// Each `tresor get` appends an audit entry to the WAL; one-shot runs skip
/// SQLite's checkpoint on close but truncate a WAL past 64 frames on exit,
/// so it never grows with the number of runs (every run's open reads all of
/// it) and no value is lost.
#[test]
fn many_runs_keep_the_wal_bounded() {
    let t = Tresor::with_key();
    t.run_in(&["set", "wal/value"], b"kept").ok();
    let wal = t.vault.with_extension("db-wal");
    let mut largest = 0;
    for _ in 0..150 {
        assert_eq!(t.run(&["get", "wal/value"]).ok().stdout, b"kept");
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    // 150 audited reads write several hundred frames; the bound is 64 frames
    // (plus the frames of the run that crossed it).
    let frame = 4096 + 24;
    assert!(
        largest <= 72 * frame,
        "the WAL reached {largest} bytes ({} frames)",
        largest / frame
    );
    assert!(t.audit().len() >= 150);
    t.run(&["verify"]).ok();
}
