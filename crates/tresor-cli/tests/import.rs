//! `tresor import` from the files secrets live in now: all or nothing,
//! counted, bad entries named by place and never by value (issue 10).

mod common;

use common::Tresor;

/// A value no message may contain.
const CANARY: &str = "canary-7f3a9c-value";

fn names(t: &Tresor) -> Vec<String> {
    t.run(&["--json", "ls"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

fn get(t: &Tresor, name: &str) -> String {
    t.run(&["get", name]).ok().out()
}

#[test]
fn seed_001_legacy_config_moves_in_and_leaves_a_backup_with_a_warning() {
    let t = Tresor::with_key();
    let config = t.write(
        "home/.model-forge/config.json",
        br#"{"default_provider": "openai",
            "providers": {
              "openai": {"base_url": "https://api.openai.com", "credentials": {"api_key": "sk-openai-000000000000000001"}},
              "anthropic": {"credentials": {"api_key": "sk-ant-api03-000000000000000002", "admin_key": "sk-ant-admin01-000000000000000003"}},
              "local": {"base_url": "http://localhost"}
            }}"#,
    );
    let out = t.run(&[
        "--json",
        "import",
        "legacy-config",
        config.to_str().unwrap(),
    ]);
    out.ok();
    let report = out.json();
    assert_eq!(report["imported"], 3);
    assert_eq!(
        report["counts"],
        serde_json::json!({"anthropic": 2, "openai": 1})
    );
    assert!(
        out.err().contains("still holds the plaintext"),
        "{}",
        out.err()
    );
    assert_eq!(get(&t, "openai/api_key"), "sk-openai-000000000000000001");
    assert_eq!(
        get(&t, "anthropic/admin_key"),
        "sk-ant-admin01-000000000000000003"
    );
    assert!(!config.exists());
    assert!(t.path("home/.model-forge/config.json.backup").is_file());
    // The audit log has one import entry per secret, with the reason.
    let imports = t
        .audit()
        .into_iter()
        .filter(|e| e["operation"] == "import")
        .count();
    assert_eq!(imports, 3);
}

#[test]
fn shred_removes_the_legacy_config_instead_of_keeping_a_backup() {
    let t = Tresor::with_key();
    let config = t.write(
        "c/config.json",
        br#"{"providers": {"p": {"credentials": {"k": "v1"}}}}"#,
    );
    t.run(&[
        "import",
        "legacy-config",
        config.to_str().unwrap(),
        "--shred",
    ])
    .ok()
    .err_has(&["imported 1 secrets", "shredded"]);
    assert!(!config.exists());
    assert!(!t.path("c/config.json.backup").exists());
    assert_eq!(get(&t, "p/k"), "v1");
}

#[test]
fn a_failed_legacy_import_leaves_the_file_untouched_and_writes_nothing() {
    let t = Tresor::with_key();
    let body = format!(
        r#"{{"providers": {{"good": {{"credentials": {{"k": "v"}}}}, "bad": {{"credentials": {{"n": {{"nested": "{CANARY}"}}}}}}}}}}"#
    );
    let config = t.write("c/config.json", body.as_bytes());
    let out = t.run(&["import", "legacy-config", config.to_str().unwrap()]);
    out.code(2);
    out.err_has(&["providers.bad.credentials.n", "an object"]);
    assert!(!out.err().contains(CANARY));
    assert_eq!(std::fs::read(&config).unwrap(), body.as_bytes());
    assert!(names(&t).is_empty());
}

#[test]
fn dotenv_quotes_export_comments_multiline_and_literal_references() {
    let t = Tresor::with_key();
    let env = t.write(
        ".env",
        b"# a comment\n\
          export DB_USER=alice\n\
          DB_PASSWORD=\"p a s s\\\"w\" # trailing comment\n\
          SINGLE='no $escapes \\n here'\n\
          PEM=\"-----BEGIN KEY-----\n\
          abc\n\
          -----END KEY-----\"\n\
          REF=${HOME}/x # comment\n\
          \n",
    );
    let out = t.run(&[
        "--json",
        "import",
        "dotenv",
        env.to_str().unwrap(),
        "--prefix",
        "app",
    ]);
    out.ok();
    assert_eq!(out.json()["counts"], serde_json::json!({"app": 5}));
    assert_eq!(get(&t, "app/DB_USER"), "alice");
    assert_eq!(get(&t, "app/DB_PASSWORD"), "p a s s\"w");
    assert_eq!(get(&t, "app/SINGLE"), "no $escapes \\n here");
    assert_eq!(
        get(&t, "app/PEM"),
        "-----BEGIN KEY-----\nabc\n-----END KEY-----"
    );
    assert_eq!(get(&t, "app/REF"), "${HOME}/x");
    // The source stays (programs may still read it).
    assert!(env.exists());
}

#[test]
fn malformed_input_is_named_by_place_with_no_value_and_nothing_written() {
    let t = Tresor::with_key();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "json",
            format!("{{\"a\": \"{CANARY}\",\n \"b\": {CANARY}}}"),
            vec!["line 2", "invalid JSON"],
        ),
        (
            "json",
            format!("{{\"a\": \"{CANARY}\""),
            vec!["line 1", "ends early"],
        ),
        (
            "json",
            format!("[\"{CANARY}\"]"),
            vec!["an array", "not an object"],
        ),
        (
            "dotenv",
            format!("A=1\nB=\"{CANARY}\n"),
            vec!["line 2", "never closed"],
        ),
        (
            "dotenv",
            format!("A=1\n{CANARY}\n"),
            vec!["line 2", "no '='"],
        ),
        (
            "secrets-yaml",
            format!("secrets:\n  - name: a\n    value: [{CANARY}\n"),
            vec!["line"],
        ),
        (
            "secrets-yaml",
            format!("secrets:\n  - name: a\n    value: {CANARY}\n    file: x\n"),
            vec!["secrets[0]", "both value and file"],
        ),
        (
            "legacy-config",
            format!("{{\"x\": \"{CANARY}\"}}"),
            vec!["no \"providers\""],
        ),
    ];
    for (i, (format, body, needles)) in cases.iter().enumerate() {
        let file = t.write(&format!("bad{i}"), body.as_bytes());
        let out = t.run(&["import", format, file.to_str().unwrap()]);
        out.code(2);
        out.err_has(needles);
        assert!(!out.err().contains(CANARY), "case {i}: {}", out.err());
        assert!(file.exists(), "case {i}: a failed import keeps its source");
    }
    assert!(names(&t).is_empty());
}

#[test]
fn invalid_names_suggest_the_mapped_name_and_rename_invalid_maps_them() {
    let t = Tresor::with_key();
    let file = t.write(
        "j.json",
        format!(r#"{{"good": "1", "my key!": "{CANARY}"}}"#).as_bytes(),
    );
    let out = t.run(&["--json", "import", "json", file.to_str().unwrap()]);
    out.code(2);
    let e = out.err_json();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'my_key_'"),
        "{e}"
    );
    assert!(
        e["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("--rename-invalid"),
        "{e}"
    );
    assert!(!out.err().contains(CANARY));
    assert!(names(&t).is_empty());

    let out = t.run(&[
        "--json",
        "import",
        "json",
        file.to_str().unwrap(),
        "--rename-invalid",
    ]);
    out.ok();
    assert_eq!(
        out.json()["renamed"],
        serde_json::json!([{"from": "my key!", "to": "my_key_"}])
    );
    assert_eq!(get(&t, "my_key_"), CANARY);
}

#[test]
fn empty_values_and_duplicates_are_refused_as_set_refuses_them() {
    let t = Tresor::with_key();
    let file = t.write("j.json", br#"{"a": "1", "b": ""}"#);
    t.run(&["import", "json", file.to_str().unwrap()])
        .code(2)
        .err_has(&["key 'b'", "empty", "--allow-empty"]);
    assert!(names(&t).is_empty());
    t.run(&["import", "json", file.to_str().unwrap(), "--allow-empty"])
        .ok();
    assert_eq!(get(&t, "b"), "");

    let dup = t.write("d.env", b"X=1\nX=2\n");
    t.run(&["import", "dotenv", dup.to_str().unwrap(), "--prefix", "d"])
        .code(2)
        .err_has(&["line 2", "'d/X' is given twice", "line 1"]);
    t.run(&["get", "d/X"]).code(1);
}

#[test]
fn dry_run_counts_and_writes_nothing() {
    let t = Tresor::with_key();
    let file = t.write("j.json", br#"{"a/x": "1", "a/y": "2", "b": "3"}"#);
    let out = t.run(&[
        "--json",
        "import",
        "json",
        file.to_str().unwrap(),
        "--dry-run",
    ]);
    out.ok();
    let r = out.json();
    assert_eq!(r["would_import"], 3);
    assert_eq!(r["counts"], serde_json::json!({"a": 2, "(top level)": 1}));
    assert!(names(&t).is_empty());
}

#[test]
fn env_map_reads_values_from_the_environment() {
    let t = Tresor::with_key();
    let map = t.write("map", b"# name=VARIABLE\nci/token=CI_TOKEN_FOR_TEST\n");
    t.cmd(&["import", "env-map", map.to_str().unwrap()])
        .env("CI_TOKEN_FOR_TEST", "tok-1")
        .run()
        .ok();
    assert_eq!(get(&t, "ci/token"), "tok-1");
    let missing = t.write("map2", b"a=UNSET_VAR_FOR_TEST\n");
    t.run(&["import", "env-map", missing.to_str().unwrap()])
        .code(2)
        .err_has(&["line 1", "UNSET_VAR_FOR_TEST is not set"]);
}

#[test]
fn secrets_yaml_values_files_and_shredding() {
    let t = Tresor::with_key();
    t.write(
        "data/cert.pem",
        b"-----BEGIN CERT-----\nxyz\n-----END CERT-----\n",
    );
    t.write("data/blob.bin", &[0u8, 159, 146, 150]);
    let yaml = t.write(
        "data/secrets.yaml",
        b"secrets:\n\
          \x20 - name: db_password\n    value: \"s3cret\"\n\
          \x20 - name: port\n    value: 12345\n\
          \x20 - name: tls_cert\n    file: cert.pem\n\
          \x20 - name: blob\n    file: blob.bin\n    store_as: base64\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&yaml, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = t.run(&["import", "secrets-yaml", yaml.to_str().unwrap()]);
    out.ok();
    out.err_has(&["readable by other users", "imported 4 secrets", "shredded"]);
    assert!(!yaml.exists());
    assert_eq!(get(&t, "db_password"), "s3cret");
    assert_eq!(get(&t, "port"), "12345");
    assert_eq!(
        get(&t, "tls_cert"),
        "-----BEGIN CERT-----\nxyz\n-----END CERT-----\n"
    );
    assert_eq!(get(&t, "blob"), "AJ+Slg==");
}

#[test]
fn a_file_that_is_gone_or_outside_is_named_and_nothing_is_written() {
    let t = Tresor::with_key();
    // A file the YAML names is gone by the time it is read.
    let yaml = t.write(
        "data/secrets.yaml",
        format!("secrets:\n  - name: a\n    value: {CANARY}\n  - name: b\n    file: gone.pem\n")
            .as_bytes(),
    );
    let out = t.run(&["import", "secrets-yaml", yaml.to_str().unwrap()]);
    out.code(6);
    out.err_has(&["gone.pem"]);
    assert!(!out.err().contains(CANARY));
    assert!(yaml.exists(), "a failed import keeps secrets.yaml");
    t.write("outside.pem", b"x");
    let yaml2 = t.write(
        "data/s2.yaml",
        b"secrets:\n  - name: b\n    file: ../outside.pem\n",
    );
    t.run(&["import", "secrets-yaml", yaml2.to_str().unwrap()])
        .code(2)
        .err_has(&["'..' is not allowed"]);
    // The import source itself missing.
    t.run(&["import", "json", t.path("nope.json").to_str().unwrap()])
        .code(6)
        .err_has(&["nope.json"]);
    assert!(names(&t).is_empty());
}

#[test]
fn a_hundred_thousand_entries_import_in_one_transaction() {
    // Correctness at scale (speed is in scripts/bench-import).
    let t = Tresor::with_key();
    let mut body = String::from("{");
    for i in 0..20_000 {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!("\"bulk/s{i:06}\": \"v{i}\""));
    }
    body.push('}');
    let file = t.write("big.json", body.as_bytes());
    let r = t
        .run(&["--json", "import", "json", file.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(r["imported"], 20_000);
    assert_eq!(get(&t, "bulk/s019999"), "v19999");
}

#[test]
fn a_secrets_yaml_beside_the_vault_is_auto_imported_and_a_bad_one_blocks_nothing() {
    let t = Tresor::with_key();
    t.run_in(&["set", "existing"], b"e").ok();
    let yaml = t.write(
        "vault/secrets.yaml",
        b"secrets:\n  - name: auto/one\n    value: \"a1\"\n",
    );
    // Any command that opens the stores imports it first.
    let out = t.run(&["get", "auto/one"]);
    out.ok();
    assert_eq!(out.out(), "a1");
    assert!(out.err().contains("imported 1 secrets"), "{}", out.err());
    assert!(!yaml.exists());

    let bad = format!("secrets:\n  - name: x\n    value: [{CANARY}\n");
    let yaml = t.write("vault/secrets.yaml", bad.as_bytes());
    let out = t.run(&["get", "existing"]);
    out.ok();
    assert_eq!(out.out(), "e");
    assert!(out.err().contains("left in place"), "{}", out.err());
    assert!(!out.err().contains(CANARY));
    assert_eq!(std::fs::read(&yaml).unwrap(), bad.as_bytes());
}

#[test]
fn rewrite_replaces_values_with_sec_references_and_leaves_no_plaintext() {
    let t = Tresor::with_key();
    let env = t.write(
        "app/.env",
        format!(
            "# settings\nexport DB_USER=alice\nDB_PASSWORD=\"{CANARY}\nline2\"\nPORT=5432 # kept\n"
        )
        .as_bytes(),
    );
    t.run(&[
        "import",
        "dotenv",
        env.to_str().unwrap(),
        "--prefix",
        "app",
        "--rewrite",
    ])
    .ok();
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        "# settings\nexport DB_USER=SEC/app/DB_USER\nDB_PASSWORD=SEC/app/DB_PASSWORD\nPORT=SEC/app/PORT\n"
    );
    assert_eq!(get(&t, "app/DB_PASSWORD"), format!("{CANARY}\nline2"));

    let config = t.write(
        "c/config.json",
        format!(r#"{{"default": "acme", "providers": {{"acme": {{"base_url": "u", "credentials": {{"api_key": "{CANARY}"}}}}}}}}"#)
            .as_bytes(),
    );
    t.run(&[
        "import",
        "legacy-config",
        config.to_str().unwrap(),
        "--rewrite",
    ])
    .ok();
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(
        doc["providers"]["acme"]["credentials"]["api_key"],
        "SEC/acme/api_key"
    );
    assert_eq!(doc["providers"]["acme"]["base_url"], "u");
    assert!(!t.path("c/config.json.backup").exists());
    let yaml = t.write("s.yaml", b"secrets: []\n");
    t.run(&[
        "import",
        "secrets-yaml",
        yaml.to_str().unwrap(),
        "--rewrite",
    ])
    .code(2)
    .err_has(&["--rewrite applies to"]);
}
