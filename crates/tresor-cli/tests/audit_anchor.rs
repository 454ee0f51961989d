//! `tresor audit anchor` and `tresor audit verify --anchor`: the vault file
//! replaced by an older copy of itself passes every check made inside it,
//! and fails against an anchor kept elsewhere.

mod common;

use std::path::Path;

use common::*;

fn restore(path: &Path, bytes: &[u8]) {
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn anchors_find_a_vault_file_rolled_back_to_an_older_copy() {
    let t = Tresor::with_key();
    t.run_in(&["set", "db/password"], b"old").ok();
    // An older copy of the vault (its WAL too: a one-shot process leaves
    // a small one on purpose).
    let vault_copy = std::fs::read(&t.vault).unwrap();
    let wal_copy = std::fs::read(format!("{}-wal", t.vault.display())).ok();

    t.run_in(&["set", "db/password"], b"new").ok();
    let anchor = t.run(&["audit", "anchor"]).ok().out().trim().to_string();
    assert!(anchor.starts_with("tresor-audit-anchor:v1:"), "{anchor}");
    let j = t.run(&["--json", "audit", "anchor"]).ok().json();
    assert_eq!(j["anchor"], anchor.as_str());
    assert!(j["seq"].as_u64().unwrap() >= 3);
    assert_eq!(j["mac"].as_str().unwrap().len(), 64);
    let ok = t.run(&["audit", "verify", "--anchor", &anchor]);
    ok.ok();
    assert!(
        ok.err().contains("holds the anchored entry"),
        "{}",
        ok.err()
    );

    // The older copy put back: intact from the inside…
    restore(&t.vault, &vault_copy);
    if let Some(wal) = &wal_copy {
        std::fs::write(format!("{}-wal", t.vault.display()), wal).unwrap();
    }
    assert_eq!(t.run(&["get", "db/password"]).ok().out(), "old");
    t.run(&["audit", "verify"]).ok();
    t.run(&["verify"]).ok();
    // …but not against the anchor.
    t.run(&["audit", "verify", "--anchor", &anchor])
        .code(4)
        .err_has(&["rolled back"]);
    let e = t
        .run(&["--json", "audit", "verify", "--anchor", &anchor])
        .code(4)
        .err_json();
    assert_eq!(e["error"]["exit_code"], 4);

    // Not an anchor: a usage error.
    t.run(&["audit", "verify", "--anchor", "tresor-audit-anchor:v1:zz"])
        .code(2)
        .err_has(&["--anchor", "tresor audit anchor"]);
}
