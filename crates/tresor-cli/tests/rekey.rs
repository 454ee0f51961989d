//! `tresor rekey`: data-key rotation, re-encryption and master-key rotation
//! through the CLI.

mod common;

use common::*;

fn fill(t: &Tresor) {
    for i in 0..5 {
        t.run_in(
            &["set", &format!("app/k{i}")],
            format!("value-{i}").as_bytes(),
        )
        .ok();
    }
}

fn check(t: &Tresor) {
    for i in 0..5 {
        let out = t.run(&["get", &format!("app/k{i}")]);
        out.ok();
        assert_eq!(out.out(), format!("value-{i}"));
    }
    t.run(&["verify"]).ok();
}

#[test]
fn rekey_and_reencrypt_keep_every_value() {
    let t = Tresor::with_key();
    fill(&t);
    let out = t.run(&["--json", "rekey"]);
    assert_eq!(out.ok().json()["data_key"], 2);
    check(&t);
    let out = t.run(&["--json", "rekey", "--reencrypt"]);
    let report = out.ok().json();
    assert_eq!(report["data_key"], 3);
    assert_eq!(report["retired_data_keys"], serde_json::json!([1, 2]));
    check(&t);
    let ops: Vec<String> = t
        .audit()
        .iter()
        .map(|e| e["operation"].as_str().unwrap().to_string())
        .collect();
    assert!(ops.contains(&"rekey".to_string()) && ops.contains(&"rekey --reencrypt".to_string()));
    // The re-encryption's entry names the new key and every key it retired.
    let audit = t.audit();
    let entry = entries_of(&audit, "rekey --reencrypt")[0];
    assert_eq!(entry["versions"], serde_json::json!([3, 1, 2]), "{entry}");
}

#[test]
fn master_rekey_needs_every_slot_or_drops_them_when_asked() {
    let t = Tresor::new();
    let key = t.key.display().to_string();
    let init = t.run(&["--json", "--key-file", &key, "init"]);
    let old_recovery = init.ok().json()["recovery_key"]
        .as_str()
        .unwrap()
        .to_string();
    let mut t = t;
    t.set_default("TRESOR_KEY_FILE", &key);
    fill(&t);

    // The recovery slot has no credential here: refused, nothing changes.
    t.run(&["rekey", "--master"])
        .code(2)
        .err_has(&["2 (recovery)", "--drop-unavailable-slots"]);
    check(&t);

    let out = t.run(&[
        "--json",
        "rekey",
        "--master",
        "--drop-unavailable-slots",
        "--new-recovery-key",
    ]);
    let body = out.ok().json();
    assert_eq!(body["report"]["master"], true);
    assert_eq!(body["report"]["slots_dropped"], serde_json::json!([2]));
    let new_recovery = body["recovery_key"].as_str().unwrap().to_string();
    assert_ne!(new_recovery, old_recovery);
    check(&t);

    // The old recovery key no longer unlocks; the new one does.
    t.cmd(&["get", "app/k0"])
        .env_remove("TRESOR_KEY_FILE")
        .env("TRESOR_RECOVERY_KEY", &old_recovery)
        .run()
        .code(3);
    let out = t
        .cmd(&["get", "app/k0"])
        .env_remove("TRESOR_KEY_FILE")
        .env("TRESOR_RECOVERY_KEY", &new_recovery)
        .run();
    assert_eq!(out.ok().out(), "value-0");
}
