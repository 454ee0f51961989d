//! `tresor audit log --writes-only`: changes and failed unlocks only; every
//! read and every use of a named key, of any type, is left out.

mod common;

use std::path::Path;

use common::*;

fn p(path: &Path) -> String {
    path.display().to_string()
}

fn operations(entries: &[serde_json::Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["operation"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn writes_only_leaves_out_reads_and_every_named_key_use() {
    let t = Tresor::with_key();
    // Changes.
    t.run_in(&["set", "app/db"], b"s3cret-value\n").ok();
    t.run(&["key", "create", "app/env"]).ok();
    t.run(&["key", "create", "app/files", "--type", "age"]).ok();
    t.run(&["key", "rotate", "app/files"]).ok();
    // Reads and uses: a secret read, envelope uses, and age-key uses.
    t.run(&["get", "app/db"]).ok();
    t.run(&["ls"]).ok();
    let env = t
        .run_in(&["key", "encrypt", "app/env"], b"payload")
        .ok()
        .out();
    t.run_in(&["key", "decrypt"], env.as_bytes()).ok();
    t.run(&["key", "recipient", "app/files"]).ok();
    let plain = t.write("plain", b"file contents");
    let sealed = t.path("plain.age");
    t.run(&[
        "encrypt",
        "--key",
        "app/files",
        "-o",
        &p(&sealed),
        &p(&plain),
    ])
    .ok();
    t.run(&["decrypt", "--key", "app/files", &p(&sealed)]).ok();
    // A failed unlock, folded into the log by the next unlock.
    t.cmd(&["get", "app/db"])
        .env_remove("TRESOR_KEY_FILE")
        .env("TRESOR_KEY", base64(&[7u8; 32]))
        .run()
        .code(3);
    t.run(&["ls"]).ok();

    let all = operations(&t.audit());
    let uses = [
        "get",
        "list",
        "key encrypt",
        "key decrypt",
        "key recipient",
        "key encrypt file",
        "key decrypt file",
    ];
    for op in uses.iter().chain(&["unlock_failed"]) {
        assert!(all.iter().any(|o| o == op), "{op} missing from {all:?}");
    }

    let writes = operations(
        &t.run(&["--json", "audit", "log", "--writes-only"])
            .ok()
            .json_lines(),
    );
    for op in uses {
        assert!(!writes.iter().any(|o| o == op), "{op} in {writes:?}");
    }
    assert_eq!(
        writes,
        [
            "init",
            "set",
            "key create",
            "key create",
            "key rotate",
            "unlock_failed"
        ],
        "every change and the failed unlock, in order"
    );

    // The human form filters the same way.
    let text = t.run(&["audit", "log", "--writes-only"]).ok().out();
    assert!(
        !text.contains("key recipient") && !text.contains(" file "),
        "{text}"
    );
    assert!(text.contains("key rotate"), "{text}");
}
