//! `tresor export` and `tresor import bundle`: metadata only by default,
//! values only encrypted, read back exactly; damaged bundles refused whole.

mod common;

use common::Tresor;

const CANARY: &str = "canary-export-51c0";

fn seeded() -> Tresor {
    let t = Tresor::with_key();
    t.run_in(&["set", "db/password"], b"v1-old").ok();
    t.run_in(
        &[
            "set",
            "db/password",
            "--meta",
            "owner=ops",
            "--reason",
            "rotated",
        ],
        CANARY.as_bytes(),
    )
    .ok();
    t.run_in(&["set", "api/token"], &[0u8, 255, 10, 13]).ok();
    t
}

#[test]
fn the_default_export_holds_metadata_and_no_value() {
    let t = seeded();
    let out = t.run(&["export"]);
    out.ok();
    let doc: serde_json::Value = serde_json::from_str(&out.out()).unwrap();
    assert!(!out.out().contains(CANARY));
    assert!(!out.out().contains("v1-old"));
    let db = doc["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "db/password")
        .unwrap();
    assert_eq!(db["current"], 2);
    assert_eq!(db["metadata"]["owner"], "ops");
    assert_eq!(db["versions"][1]["reason"], "rotated");
    assert!(db["versions"][0].get("value").is_none());
    let only = t.run(&["export", "--prefix", "api/"]);
    only.ok();
    let doc: serde_json::Value = serde_json::from_str(&only.out()).unwrap();
    assert_eq!(doc["secrets"].as_array().unwrap().len(), 1);
}

#[test]
fn a_bundle_round_trips_every_version_and_metadata_and_a_damaged_one_writes_nothing() {
    let t = seeded();
    let pass = t.write_key("pass.txt", b"correct horse battery staple\n");
    let bundle = t.path("backup.age");
    t.run(&[
        "export",
        "--passphrase-file",
        pass.to_str().unwrap(),
        "-o",
        bundle.to_str().unwrap(),
    ])
    .ok()
    .err_has(&["exported 2 secrets (3 versions)"]);
    let bytes = std::fs::read(&bundle).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    assert!(!String::from_utf8_lossy(&bytes).contains(CANARY));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Into a second vault.
    let u = Tresor::with_key();
    let copy = u.write("backup.age", &bytes);
    let pass2 = u.write_key("pass.txt", b"correct horse battery staple\n");
    // Truncated and altered copies: exit 4, nothing written, no value shown.
    let cut = u.write("cut.age", &bytes[..bytes.len() - 20]);
    let mut flipped = bytes.clone();
    let at = flipped.len() - 30;
    flipped[at] ^= 1;
    let flipped = u.write("flipped.age", &flipped);
    for bad in [&cut, &flipped] {
        let out = u.run(&[
            "import",
            "bundle",
            bad.to_str().unwrap(),
            "--passphrase-file",
            pass2.to_str().unwrap(),
        ]);
        out.code(4)
            .err_has(&["age file was modified, truncated or damaged"]);
        assert!(!out.err().contains(CANARY));
    }
    let wrong = u.write_key("wrong.txt", b"nope\n");
    u.run(&[
        "import",
        "bundle",
        copy.to_str().unwrap(),
        "--passphrase-file",
        wrong.to_str().unwrap(),
    ])
    .code(3);
    assert!(
        u.run(&["--json", "ls"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );

    u.run(&[
        "import",
        "bundle",
        copy.to_str().unwrap(),
        "--passphrase-file",
        pass2.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        u.run(&["get", "db/password", "--version", "1"]).ok().out(),
        "v1-old"
    );
    assert_eq!(u.run(&["get", "db/password"]).ok().out(), CANARY);
    assert_eq!(
        u.run(&["get", "api/token"]).ok().stdout,
        vec![0u8, 255, 10, 13]
    );
    let h = u.run(&["--json", "history", "db/password"]).ok().json();
    assert_eq!(h[1]["reason"], "rotated", "{h}");
    let meta = u.run(&["--json", "meta", "db/password"]).ok().json();
    assert_eq!(meta["owner"], "ops", "{meta}");
}

#[test]
fn plaintext_needs_its_flag_a_new_0600_file_and_warns() {
    let t = seeded();
    let out_path = t.path("plain.json");
    t.run(&["export", "--plaintext"])
        .code(2)
        .err_has(&["-o OUT"]);
    let out = t.run(&[
        "export",
        "--plaintext",
        "--prefix",
        "db/",
        "-o",
        out_path.to_str().unwrap(),
    ]);
    out.ok().err_has(&["warning", "in the clear"]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    assert_eq!(doc, serde_json::json!({"db/password": CANARY}));
    // Never over an existing file.
    t.run(&["export", "--plaintext", "-o", out_path.to_str().unwrap()])
        .code(2);
}

#[test]
fn dtpy_export_reads_back_through_import() {
    let t = seeded();
    let ks = t.path("data/myapp.v3keystore");
    std::fs::create_dir_all(ks.parent().unwrap()).unwrap();
    t.cmd(&[
        "export",
        "--format",
        "dtpy",
        "--prefix",
        "db/",
        "--password-env",
        "KP",
        "-o",
        ks.to_str().unwrap(),
    ])
    .env("KP", "pw")
    .run()
    .ok();
    let u = Tresor::with_key();
    u.cmd(&[
        "import",
        "dtpy",
        t.path("data").to_str().unwrap(),
        "--password-env",
        "KP",
    ])
    .env("KP", "pw")
    .run()
    .ok();
    assert_eq!(u.run(&["get", "db/password"]).ok().out(), CANARY);
}
