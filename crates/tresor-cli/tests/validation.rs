//! Validation on the write paths: presets and `[[rules]]` refuse a value
//! with exit 2 naming the rule (never the value); `--no-validate` overrides
//! and the audit entry says so.

mod common;

use common::Tresor;

const BAD: &str = "hf_this-is-not-an-openai-key";
const GOOD: &str = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCDEF";

fn last_set(t: &Tresor, name: &str) -> serde_json::Value {
    t.audit()
        .into_iter()
        .rev()
        .find(|e| e["operation"] == "set" && e["name"] == name)
        .expect("a set entry")
}

#[test]
fn set_and_rotate_refuse_a_value_failing_its_preset() {
    let t = Tresor::with_key();
    let out = t.run_in(&["set", "openai/api_key"], BAD.as_bytes());
    out.code(2).err_has(&[
        "'openai/api_key'",
        "validation rule 'openai' (preset)",
        "must start with \"sk-\"",
        "--no-validate",
    ]);
    assert!(!out.err().contains(BAD) && !out.out().contains(BAD));
    // Nothing was stored.
    t.run(&["get", "openai/api_key"]).code(1);

    let json = t.run_in(&["--json", "set", "openai/api_key"], BAD.as_bytes());
    let e = &json.code(2).err_json()["error"];
    assert_eq!(
        (
            e["kind"].as_str(),
            e["type"].as_str(),
            e["exit_code"].as_i64()
        ),
        (Some("validation"), Some("rule_failed"), Some(2))
    );
    assert!(!json.err().contains(BAD));

    t.run_in(&["set", "openai/api_key"], GOOD.as_bytes()).ok();
    for args in [
        vec!["rotate", "openai/api_key"],
        vec!["rotate", "openai/api_key", "--stage"],
    ] {
        let out = t.run_in(&args, b"sk-ant-api03-abcdefghijklmnopqrstuvwxyz");
        out.code(2)
            .err_has(&["validation rule 'openai'", "which is an Anthropic key"]);
        assert!(!out.err().contains("abcdefghijklmnopqrstuvwxyz"));
    }
    assert_eq!(t.run(&["get", "openai/api_key"]).ok().out(), GOOD);
    // Lengths are said (they are not secret), never the characters.
    t.run_in(&["set", "aws/access_key_id"], b"AKIA123")
        .code(2)
        .err_has(&["'aws-access-key-id'"]);
    // Names outside every pattern take any value.
    t.run_in(&["set", "db/password"], b"x").ok();
}

#[test]
fn no_validate_overrides_and_the_audit_entry_records_it() {
    let t = Tresor::with_key();
    t.run_in(&["set", "github/token", "--no-validate"], BAD.as_bytes())
        .ok();
    assert_eq!(t.run(&["get", "github/token"]).ok().out(), BAD);
    let entry = last_set(&t, "github/token");
    assert_eq!(
        entry["flags"],
        serde_json::json!(["unvalidated"]),
        "{entry}"
    );
    assert!(!entry.to_string().contains(BAD));
    // The human log shows it too.
    t.run(&["audit", "log"]).ok();
    assert!(
        t.run(&["audit", "log"])
            .out()
            .contains("flags: unvalidated")
    );

    t.run_in(
        &["rotate", "github/token", "--no-validate", "--stage"],
        b"still wrong",
    )
    .ok();
    assert_eq!(
        last_set(&t, "github/token")["flags"],
        serde_json::json!(["unvalidated"])
    );
    // A validated write carries no flag.
    t.run_in(
        &["rotate", "github/token"],
        b"ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    )
    .ok();
    assert_eq!(last_set(&t, "github/token")["flags"], serde_json::json!([]));
    t.run(&["audit", "verify"]).ok();
}

#[test]
fn config_rules_apply_replace_presets_and_are_checked_with_positions() {
    let mut t = Tresor::with_key();
    let config = t.write(
        "cfg/tresor.toml",
        br#"[[rules]]
pattern = "db/*"
name = "db-password"
min_len = 12
charset = "printable"

[[rules]]
pattern = ["openai/legacy", "openai/old_*"]
skip = true

[[rules]]
pattern = "certs/*"
pem = "CERTIFICATE"

[[rules]]
pattern = "keys/*"
base64 = true
regex = "[A-Za-z0-9+/]{8,}={0,2}"
"#,
    );
    t.set_default("TRESOR_CONFIG", &config);
    let out = t.run_in(&["set", "db/main"], b"short");
    out.code(2).err_has(&[
        "validation rule 'db-password'",
        "tresor.toml:1)",
        "at least 12 characters long (it is 5)",
    ]);
    t.run_in(&["set", "db/main"], b"long enough pass").ok();
    // skip = true switches the openai preset off for these names only.
    t.run_in(&["set", "openai/legacy"], b"anything").ok();
    t.run_in(&["set", "openai/old_key"], b"anything").ok();
    t.run_in(&["set", "openai/new"], b"anything").code(2);
    t.run_in(
        &["set", "certs/ca"],
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .ok();
    t.run_in(
        &["set", "certs/ca"],
        b"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
    )
    .code(2)
    .err_has(&["labelled \"CERTIFICATE\""]);
    t.run_in(&["set", "keys/k"], b"aGVsbG8gd29ybGQ=").ok();
    t.run_in(&["set", "keys/k"], b"hello world!")
        .code(2)
        .err_has(&["base64"]);
    t.run(&["config", "check"]).ok();

    // Problems are reported with line and column, never silently ignored.
    let bad = t.write(
        "cfg/bad.toml",
        b"[[rules]]\npattern = \"a/*\"\nmin_len = \"ten\"\n\n[[rules]]\npattern = \"b/*\"\nregex = \"(\"\n\n[[rules]]\npattern = \"c/*\"\n\n[[rules]]\npattern = \"d/*\"\npreset = \"nope\"\nwhatever = 1\n",
    );
    let out = t.cmd(&["config", "check"]).env("TRESOR_CONFIG", &bad).run();
    out.code(2);
    for line in [
        "bad.toml:3:11: rules[1]: min_len must be a whole number",
        "bad.toml:7:9: rules[2]: regex \"(\"",
        "bad.toml:9:1: rules[3]: a rule with no checks",
        "bad.toml:14:10: rules[4]: unknown preset 'nope'",
        "bad.toml:15:1: rules[4]: unknown key 'whatever'",
    ] {
        assert!(out.out().contains(line), "{line}\n{}", out.out());
    }
    // A broken config stops writes before anything is stored.
    t.cmd(&["set", "a/x"])
        .env("TRESOR_CONFIG", &bad)
        .stdin(b"v")
        .run()
        .code(2);
}

fn last_import(t: &Tresor, name: &str) -> serde_json::Value {
    t.audit()
        .into_iter()
        .rev()
        .find(|e| e["operation"] == "import" && e["name"] == name)
        .expect("an import entry")
}

#[test]
fn import_no_validate_overrides_and_each_audit_entry_records_it() {
    let t = Tresor::with_key();
    let file = t.write(
        "in.json",
        format!(r#"{{"github/token": "{BAD}", "db/password": "pw-000000000001"}}"#).as_bytes(),
    );
    let file = file.to_str().unwrap();
    // Refused whole without the flag, naming the rule and not the value.
    let out = t.run(&["import", "json", file]);
    out.code(2).err_has(&["'github/token'", "validation rule"]);
    assert!(!out.err().contains(BAD));
    t.run(&["get", "db/password"]).code(1);

    t.run(&["import", "json", file, "--no-validate"]).ok();
    assert_eq!(t.run(&["get", "github/token"]).ok().out(), BAD);
    for name in ["github/token", "db/password"] {
        let entry = last_import(&t, name);
        assert_eq!(
            entry["flags"],
            serde_json::json!(["unvalidated"]),
            "{entry}"
        );
        assert!(!entry.to_string().contains(BAD));
    }
    // A validated import carries no flag.
    let good = t.write("good.json", br#"{"db/other": "pw-000000000002"}"#);
    t.run(&["import", "json", good.to_str().unwrap()]).ok();
    assert_eq!(last_import(&t, "db/other")["flags"], serde_json::json!([]));
    t.run(&["audit", "verify"]).ok();
}

#[test]
fn bundle_import_no_validate_overrides_and_each_audit_entry_records_it() {
    let t = Tresor::with_key();
    t.run_in(&["set", "github/token", "--no-validate"], BAD.as_bytes())
        .ok();
    let pass = t.write_key("pass.txt", b"correct horse battery staple\n");
    let bundle = t.path("backup.age");
    t.run(&[
        "export",
        "--passphrase-file",
        pass.to_str().unwrap(),
        "-o",
        bundle.to_str().unwrap(),
    ])
    .ok();

    let u = Tresor::with_key();
    let copy = u.write("backup.age", &std::fs::read(&bundle).unwrap());
    let pass = u.write_key("pass.txt", b"correct horse battery staple\n");
    let args = [
        "import",
        "bundle",
        copy.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ];
    let out = u.run(&args);
    out.code(2).err_has(&["'github/token'", "validation rule"]);
    assert!(!out.err().contains(BAD));
    let mut flagged = args.to_vec();
    flagged.push("--no-validate");
    u.run(&flagged).ok();
    assert_eq!(u.run(&["get", "github/token"]).ok().out(), BAD);
    assert_eq!(
        last_import(&u, "github/token")["flags"],
        serde_json::json!(["unvalidated"])
    );
    u.run(&["audit", "verify"]).ok();
}
