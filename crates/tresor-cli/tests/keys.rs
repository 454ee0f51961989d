//! `tresor key …`: named encryption keys, driven through the real binary,
//! in text and `--json` form, with the documented exit codes; and a canary
//! plaintext that only `key decrypt` ever prints.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::json;

const PLAINTEXT: &str = "KEYS-CANARY-41d9e0-plaintext";

/// `key encrypt NAME` with `stdin`; returns the envelope line.
fn encrypt(t: &Tresor, name: &str, stdin: &[u8]) -> String {
    let o = t.run_in(&["key", "encrypt", name], stdin);
    o.ok();
    let out = o.out();
    assert!(out.ends_with('\n') && out.lines().count() == 1, "{out:?}");
    out.trim_end().to_string()
}

#[test]
fn create_list_encrypt_decrypt() {
    let t = Tresor::with_key();
    t.run(&["key", "create", "app/orders"])
        .ok()
        .err_has(&["created named key app/orders (aes256-gcm), version 1"]);
    let o = t.run(&[
        "--json",
        "key",
        "create",
        "app/x",
        "--type",
        "xchacha20-poly1305",
    ]);
    let info = o.ok().json();
    assert_eq!(info["name"], "app/x");
    assert_eq!(info["type"], "xchacha20-poly1305");
    assert_eq!(info["latest_version"], 1);
    assert_eq!(info["min_decryption_version"], 1);

    let list = t.run(&["--json", "key", "list"]).ok().json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app/orders", "app/x"]);
    let text = t.run(&["key", "ls"]).ok().out();
    assert!(
        text.contains("app/orders") && text.contains("aes256-gcm"),
        "{text}"
    );
    assert!(text.contains("xchacha20-poly1305"), "{text}");

    for key in ["app/orders", "app/x"] {
        // Bytes exactly as read: a trailing newline is kept.
        let env = encrypt(&t, key, format!("{PLAINTEXT}\n").as_bytes());
        assert!(env.starts_with(&format!("tresor:v1:{key}:1:")), "{env}");
        let o = t.run_in(&["key", "decrypt"], format!("{env}\n").as_bytes());
        assert_eq!(o.ok().out(), format!("{PLAINTEXT}\n"));
        let o = t.run_in(&["--json", "key", "decrypt"], env.as_bytes());
        assert_eq!(
            o.ok().json(),
            json!({"name": key, "version": 1, "plaintext": format!("{PLAINTEXT}\n")})
        );
    }

    // Binary data through files: --in, --out (0600), plaintext_base64.
    let data = filler(100_000, 7);
    let input = t.write("data.bin", &data);
    let o = t.run(&[
        "--json",
        "key",
        "encrypt",
        "app/orders",
        "--in",
        input.to_str().unwrap(),
    ]);
    let body = o.ok().json();
    assert_eq!(
        (&body["name"], &body["version"]),
        (&json!("app/orders"), &json!(1))
    );
    let env = body["envelope"].as_str().unwrap().to_string();
    let env_file = t.write("data.env", env.as_bytes());
    let out = t.path("out/data.plain");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    t.run(&[
        "key",
        "decrypt",
        "--in",
        env_file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let o = t.run_in(&["--json", "key", "decrypt"], env.as_bytes());
    assert_eq!(
        unbase64(o.ok().json()["plaintext_base64"].as_str().unwrap()),
        data
    );

    // An empty plaintext (stdin at end of file) is a valid one.
    let env = t.run(&["key", "encrypt", "app/orders"]).ok().out();
    assert_eq!(
        t.run_in(&["key", "decrypt"], env.as_bytes()).ok().stdout,
        b""
    );
}

#[test]
fn rotate_rewrap_and_the_minimum_decryption_version() {
    let t = Tresor::with_key();
    t.run(&["key", "create", "app/orders"]).ok();
    let v1 = encrypt(&t, "app/orders", PLAINTEXT.as_bytes());
    t.run(&["key", "rotate", "app/orders"])
        .ok()
        .err_has(&["app/orders: rotated to version 2"]);
    let o = t.run(&["--json", "key", "rotate", "app/orders"]);
    assert_eq!(o.ok().json(), json!({"name": "app/orders", "version": 3}));
    let v3 = encrypt(&t, "app/orders", PLAINTEXT.as_bytes());
    assert!(v3.starts_with("tresor:v1:app/orders:3:"));

    let rewrapped = t.run_in(&["key", "rewrap"], v1.as_bytes()).ok().out();
    assert!(rewrapped.starts_with("tresor:v1:app/orders:3:") && rewrapped.ends_with('\n'));
    assert!(!rewrapped.contains(PLAINTEXT));
    let o = t.run_in(&["--json", "key", "rewrap"], v1.as_bytes());
    let body = o.ok().json();
    assert_eq!(
        (&body["name"], &body["version"]),
        (&json!("app/orders"), &json!(3))
    );

    let o = t.run(&[
        "--json",
        "key",
        "config",
        "app/orders",
        "--min-decryption-version",
        "3",
    ]);
    let info = o.ok().json();
    assert_eq!(
        (&info["latest_version"], &info["min_decryption_version"]),
        (&json!(3), &json!(3))
    );
    let o = t.run_in(&["key", "decrypt"], v1.as_bytes());
    o.code(2)
        .err_has(&["version 1", "minimum decryption version 3"]);
    assert!(o.stdout.is_empty());
    t.run_in(&["key", "rewrap"], v1.as_bytes()).code(2);
    let o = t.run_in(&["--json", "key", "decrypt"], v1.as_bytes());
    assert_eq!(o.code(2).err_json()["error"]["kind"], "validation");
    assert_eq!(
        t.run_in(&["key", "decrypt"], rewrapped.as_bytes())
            .ok()
            .out(),
        PLAINTEXT
    );
    t.run(&[
        "key",
        "config",
        "app/orders",
        "--min-decryption-version",
        "4",
    ])
    .code(2);
    t.run(&[
        "key",
        "config",
        "app/orders",
        "--min-decryption-version",
        "0",
    ])
    .code(2);
    t.run(&[
        "key",
        "config",
        "app/orders",
        "--min-decryption-version",
        "1",
    ])
    .ok()
    .err_has(&["minimum decryption version 1"]);
    assert_eq!(
        t.run_in(&["key", "decrypt"], v1.as_bytes()).ok().out(),
        PLAINTEXT
    );
}

#[test]
fn failures_have_their_exit_codes() {
    let t = Tresor::with_key();
    t.run(&["key", "create", "app/orders"]).ok();
    let env = encrypt(&t, "app/orders", PLAINTEXT.as_bytes());

    // 2: usage and invalid input.
    t.run(&["key", "create", "app/orders"])
        .code(2)
        .err_has(&["already exists"]);
    t.run(&["key", "create", "bad name"]).code(2);
    t.run(&["key", "create", "app/k", "--type", "rsa"]).code(2);
    t.run(&["key", "config", "app/orders"]).code(2);
    for input in [
        "hello",
        "tresor:v2:app/orders:1:AAAA",
        &format!("{env}\n{env}"),
    ] {
        let o = t.run_in(&["--json", "key", "decrypt"], input.as_bytes());
        o.code(2).err_json();
    }
    // 1: unknown key or version.
    t.run(&["key", "encrypt", "app/none"]).code(1);
    t.run(&["key", "rotate", "app/none"]).code(1);
    let other = env.replacen("app/orders:1:", "app/none:1:", 1);
    t.run_in(&["key", "decrypt"], other.as_bytes()).code(1);
    let later = env.replacen("app/orders:1:", "app/orders:2:", 1);
    t.run_in(&["key", "decrypt"], later.as_bytes()).code(1);
    // 4: an altered envelope.
    let start = env.rfind(':').unwrap() + 1;
    for i in [start, start + 5, env.len() - 2] {
        let mut bad = env.clone();
        let c = if &bad[i..i + 1] == "A" { "B" } else { "A" };
        bad.replace_range(i..i + 1, c);
        let o = t.run_in(&["--json", "key", "decrypt"], bad.as_bytes());
        assert_eq!(o.code(4).err_json()["error"]["kind"], "integrity");
        assert!(o.stdout.is_empty());
        t.run_in(&["key", "rewrap"], bad.as_bytes()).code(4);
    }
    t.run_in(&["key", "decrypt"], &env.as_bytes()[..env.len() - 4])
        .code(4);
    // 3: the wrong key file.
    let wrong = t.write_key("wrong.key", tresor_key_text().as_bytes());
    t.cmd(&["key", "list"])
        .env("TRESOR_KEY_FILE", &wrong)
        .run()
        .code(3);
}

/// The text of a fresh key file (base64 of 32 bytes).
fn tresor_key_text() -> String {
    format!("{}\n", base64(&filler(32, 99)))
}

#[test]
fn delete_needs_its_flag_and_destroys_the_key() {
    let t = Tresor::with_key();
    t.run(&["key", "create", "app/orders"]).ok();
    let env = encrypt(&t, "app/orders", PLAINTEXT.as_bytes());
    t.run(&["key", "delete", "app/orders"])
        .code(2)
        .err_has(&["--yes-destroy-data"]);
    assert_eq!(
        t.run_in(&["key", "decrypt"], env.as_bytes()).ok().out(),
        PLAINTEXT
    );
    let o = t.run(&["--json", "key", "rm", "app/orders", "--yes-destroy-data"]);
    assert_eq!(
        o.ok().json(),
        json!({"name": "app/orders", "deleted": true})
    );
    t.run_in(&["key", "decrypt"], env.as_bytes()).code(1);
    t.run(&["key", "delete", "app/orders", "--yes-destroy-data"])
        .code(1);
    assert_eq!(t.run(&["--json", "key", "list"]).ok().json(), json!([]));
    // The name can be made again; its versions continue after the old ones.
    let info = t
        .run(&["--json", "key", "create", "app/orders"])
        .ok()
        .json();
    assert_eq!(info["latest_version"], 2);
    t.run_in(&["key", "decrypt"], env.as_bytes())
        .code(1)
        .err_has(&["destroyed"]);
    let o = t.run(&["--json", "verify"]);
    let report = &o.ok().json()["report"];
    assert_eq!(
        (&report["named_keys"], &report["named_key_versions"]),
        (&json!(1), &json!(1))
    );
}

#[test]
fn the_plaintext_shows_only_where_it_was_asked_for() {
    let t = Tresor::with_key();
    t.run(&["key", "create", "app/orders"]).ok();
    let env = encrypt(&t, "app/orders", PLAINTEXT.as_bytes());
    t.run_in(&["key", "decrypt"], env.as_bytes()).ok();
    t.run(&["key", "rotate", "app/orders"]).ok();
    let newer = t.run_in(&["key", "rewrap"], env.as_bytes()).ok().out();
    t.run(&[
        "key",
        "config",
        "app/orders",
        "--min-decryption-version",
        "2",
    ])
    .ok();
    t.run_in(&["key", "decrypt"], env.as_bytes()).code(2);
    let mut bad = newer.trim_end().to_string();
    bad.pop();
    t.run_in(&["key", "decrypt"], bad.as_bytes()).code(4);
    let audit = t.audit();
    let ops: Vec<&str> = audit
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    for op in [
        "key create",
        "key encrypt",
        "key decrypt",
        "key rewrap",
        "key rotate",
        "key config",
    ] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    let writes = t
        .run(&["--json", "audit", "log", "--writes-only"])
        .ok()
        .out();
    assert!(!writes.contains("key decrypt") && writes.contains("key rotate"));

    for o in t.log.borrow().iter() {
        assert!(!contains(&o.stderr, PLAINTEXT.as_bytes()), "{:?}", o.args);
        let decrypt_ok = o.args.iter().any(|a| a == "decrypt") && o.code == 0;
        if !decrypt_ok {
            assert!(!contains(&o.stdout, PLAINTEXT.as_bytes()), "{:?}", o.args);
        }
    }
    for file in t.files() {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !contains(&bytes, PLAINTEXT.as_bytes()),
            "{}",
            file.display()
        );
    }
}
