//! Canary tests: a recognisable value and name go through every command,
//! succeeding and failing ones alike. The value may only ever be printed by
//! `get`; it never shows on stderr or in the audit log; and neither the value,
//! the name (nor any segment of it) nor the password is ever written in the
//! clear to any file in the vault's folder or the test's temp dir.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const VALUE: &str = "CANARY-7f3a9c-do-not-leak";
const NAME: &str = "canary-name-b81e/tok3n-5d2e";
const SEGMENTS: [&str; 2] = ["canary-name-b81e", "tok3n-5d2e"];
const NEW_PASSWORD: &str = "PWSLOT-canary-0c5e21";
const CHANGED_PASSWORD: &str = "PWCHANGED-canary-9a4d7f";

/// Variants of the canary value, one per version; each contains [`VALUE`].
fn v(n: u32) -> String {
    format!("{VALUE}/v{n}")
}

/// Whether this run is a `get` printing a value on stdout.
fn prints_value(o: &Out) -> bool {
    let cmd = o
        .args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str);
    cmd == Some("get") && o.code == 0 && !o.args.iter().any(|a| a == "--out" || a == "-o")
}

/// Checks every recorded run: `needle` may appear on stdout only where
/// `allowed` says so, never on stderr.
fn assert_outputs_clean(t: &Tresor, needle: &str, allowed: impl Fn(&Out) -> bool) {
    let log = t.log.borrow();
    assert!(log.len() > 10, "too few runs recorded: {}", log.len());
    for o in log.iter() {
        assert!(
            !contains(&o.stderr, needle.as_bytes()),
            "{needle:?} on stderr of tresor {:?}: {}",
            o.args,
            o.err()
        );
        if !allowed(o) {
            assert!(
                !contains(&o.stdout, needle.as_bytes()),
                "{needle:?} on stdout of tresor {:?}: {}",
                o.args,
                o.out()
            );
        }
    }
}

/// Scans every file under the temp dir except `excluded` folders as raw
/// bytes for each needle; returns the files scanned.
fn assert_files_clean(t: &Tresor, needles: &[&str], excluded: &[PathBuf]) -> Vec<PathBuf> {
    let files: Vec<PathBuf> = t
        .files()
        .into_iter()
        .filter(|f| !excluded.iter().any(|e| f.starts_with(e)))
        .collect();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let rel = f.strip_prefix(t.dir.path()).unwrap().display().to_string();
        for n in needles {
            assert!(
                !contains(&bytes, n.as_bytes()),
                "{n:?} in the clear in {rel} ({} bytes)",
                bytes.len()
            );
            assert!(!rel.contains(n), "{n:?} in a file name: {rel}");
        }
    }
    files
}

/// The scan covered the vault file and its WAL and shared-memory files
/// (whichever exist), and they hold enough bytes for the scan to mean
/// something.
fn assert_vault_files_scanned(files: &[PathBuf], vault: &Path, min_bytes: u64) {
    assert!(
        files.iter().any(|f| f == vault),
        "the vault was not scanned"
    );
    let prefix = vault.file_name().unwrap().to_str().unwrap();
    let mut total = 0;
    for entry in std::fs::read_dir(vault.parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(prefix)
        {
            assert!(files.contains(&path), "{} was not scanned", path.display());
            total += std::fs::metadata(&path).unwrap().len();
        }
    }
    assert!(
        total >= min_bytes,
        "the vault files hold {total} bytes: too little for a meaningful scan"
    );
}

#[test]
fn the_canary_never_leaks_through_any_command_or_file() {
    let t = Tresor::new();
    let inputs = t.path("inputs");
    let outputs = t.path("outputs");
    std::fs::create_dir_all(&outputs).unwrap();
    let key = t.key.display().to_string();
    let mut t = t;
    // init, with a recovery key shown on stderr.
    t.run(&["--key-file", &key, "init"])
        .ok()
        .err_has(&["Recovery key"]);
    t.set_default("TRESOR_KEY_FILE", &key);

    // set via stdin and via --file.
    t.run_in(&["set", NAME], format!("{}\n", v(1)).as_bytes())
        .ok();
    let f2 = t.write("inputs/v2", v(2).as_bytes());
    t.run(&[
        "set",
        NAME,
        "--file",
        f2.to_str().unwrap(),
        "--reason",
        "from a file",
        "--meta",
        "owner=ops",
    ])
    .ok();
    t.run_in(&["--json", "set", "other/secret"], b"unrelated")
        .ok();

    // get: stdout, --json, --out, by version and label.
    assert_eq!(t.run(&["get", NAME]).ok().out(), v(2));
    let j = t.run(&["--json", "get", NAME]).ok().json();
    assert_eq!(j["value"], v(2));
    let out = outputs.join("value");
    t.run(&["get", NAME, "--out", out.to_str().unwrap()]).ok();
    t.run(&[
        "--json",
        "get",
        NAME,
        "--version",
        "1",
        "--out",
        out.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), v(1));
    t.run(&["get", NAME, "--label", "previous"]).ok();

    // ls, history (text and JSON).
    for args in [
        vec!["ls"],
        vec!["--json", "ls"],
        vec!["ls", SEGMENTS[0]],
        vec!["history", NAME],
        vec!["--json", "history", NAME],
    ] {
        t.run(&args).ok();
    }

    // rotate, rotate --stage, promote, rollback.
    t.run_in(&["rotate", NAME, "--reason", "scheduled"], v(3).as_bytes())
        .ok();
    let f4 = t.write("inputs/v4", v(4).as_bytes());
    t.run(&[
        "--json",
        "rotate",
        NAME,
        "--stage",
        "--file",
        f4.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(t.run(&["get", NAME, "--label", "pending"]).ok().out(), v(4));
    t.run(&["promote", NAME]).ok();
    t.run(&["--json", "promote", NAME]).code(1);
    t.run(&["rotate", NAME, "--generate", "24"]).ok();
    t.run(&["rollback", NAME, "2"]).ok();
    t.run(&["--json", "rollback", NAME, "3"]).ok();

    // meta.
    t.run(&["meta", NAME, "env=prod", "owner="]).ok();
    t.run(&["--json", "meta", NAME]).ok();

    // rm, ls --deleted, failing get, undelete.
    t.run(&["rm", NAME]).ok();
    t.run(&["ls", "--deleted"]).ok();
    t.run(&["--json", "ls", "--deleted"]).ok();
    t.run(&["get", NAME]).code(1);
    t.run(&["undelete", NAME]).ok();

    // Failing commands: conflict, not found, too large, bad label, wrong key.
    t.run_in(&["set", NAME, "--expect-version", "99"], v(9).as_bytes())
        .code(5);
    t.run_in(
        &["--json", "set", NAME, "--expect-version", "0"],
        v(9).as_bytes(),
    )
    .code(5);
    t.run(&["get", NAME, "--version", "42"]).code(1);
    t.run(&["--json", "get", &format!("{}/missing", SEGMENTS[0])])
        .code(1);
    t.run(&["get", NAME, "--label", "pending"]).code(1);
    t.run(&["get", NAME, "--label", "bogus"]).code(2);
    t.run(&["settings", "max_value_len=64"]).ok();
    let big = format!("{}{}", v(10), "x".repeat(100));
    t.run_in(&["set", NAME], big.as_bytes()).code(2);
    t.run_in(&["--json", "rotate", NAME], big.as_bytes())
        .code(2);
    t.run(&["settings", "max_value_len=1048576"]).ok();
    let foreign = Tresor::with_key();
    t.cmd(&["get", NAME])
        .env("TRESOR_KEY_FILE", &foreign.key)
        .run()
        .code(3);
    t.cmd(&["set", NAME])
        .stdin(v(11).as_bytes())
        .env_remove("TRESOR_KEY_FILE")
        .run()
        .code(3);
    t.run_in(&["set", "bad name"], v(12).as_bytes()).code(2);
    // A value refused by a validation rule is not echoed.
    t.run_in(&["set", "openai/canary"], v(13).as_bytes())
        .code(2);
    t.run_in(&["--json", "rotate", "openai/canary"], v(13).as_bytes())
        .code(2);

    // scan finds the stored value in a file (outside the temp dir, which
    // must never hold it) and prints only the name and place.
    let planted = tempfile::tempdir().unwrap();
    let lines: String = (1..=12).map(|n| format!("x = {}\n", v(n))).collect();
    std::fs::write(planted.path().join("leak.txt"), lines).unwrap();
    let dir = planted.path().to_str().unwrap();
    assert!(t.run(&["scan", dir]).code(1).out().contains(NAME));
    t.run(&["--json", "scan", dir]).code(1);

    // Audit, verify, key slots, settings, passwd.
    for args in [
        vec!["audit", "log"],
        vec!["--json", "audit", "log"],
        vec!["audit", "log", "--name", NAME],
        vec!["--json", "audit", "log", "--name", NAME, "-n", "3"],
        vec!["audit", "verify"],
        vec!["--json", "audit", "verify"],
        vec!["verify"],
        vec!["--json", "verify"],
        vec!["keyslot", "list"],
        vec!["--json", "keyslot", "list"],
        vec!["settings"],
        vec!["--json", "settings"],
    ] {
        t.run(&args).ok();
    }
    let mut args = vec!["keyslot", "add", "--password"];
    args.extend(FAST_KDF);
    t.cmd(&args)
        .env("TRESOR_NEW_PASSWORD", NEW_PASSWORD)
        .run()
        .ok();
    let mut args = vec!["--json", "passwd"];
    args.extend(FAST_KDF);
    t.cmd(&args)
        .env_remove("TRESOR_KEY_FILE")
        .env("TRESOR_PASSWORD", NEW_PASSWORD)
        .env("TRESOR_NEW_PASSWORD", CHANGED_PASSWORD)
        .run()
        .ok();
    t.cmd(&["get", NAME])
        .env_remove("TRESOR_KEY_FILE")
        .env("TRESOR_PASSWORD", NEW_PASSWORD)
        .run()
        .code(3);
    assert_eq!(
        t.cmd(&["get", NAME])
            .env_remove("TRESOR_KEY_FILE")
            .env("TRESOR_PASSWORD", CHANGED_PASSWORD)
            .run()
            .ok()
            .out(),
        v(3)
    );

    // The audit log names the secret (it is not secret) but holds no value.
    let audit = t.run(&["audit", "log"]).ok().out();
    assert!(audit.contains(NAME), "the audit log lacks the name");
    assert!(!audit.contains(VALUE));

    // Mid-way, with the WAL full of records: scan every file.
    let excluded = [inputs.clone(), outputs.clone()];
    let needles = [
        VALUE,
        NAME,
        SEGMENTS[0],
        SEGMENTS[1],
        NEW_PASSWORD,
        CHANGED_PASSWORD,
    ];
    let files = assert_files_clean(&t, &needles, &excluded);
    assert_vault_files_scanned(&files, &t.vault, 32 * 1024);
    // The scanner itself works: the test's own inputs do hold the canary.
    assert!(contains(&std::fs::read(&f2).unwrap(), VALUE.as_bytes()));
    assert!(contains(&std::fs::read(&out).unwrap(), VALUE.as_bytes()));

    // rm --purge at the end: gone from every command and file.
    t.run(&["rm", "--purge", NAME]).ok();
    t.run(&["get", NAME]).code(1);
    t.run(&["history", NAME]).code(1);
    t.run(&["--json", "ls", "--deleted"]).ok();
    t.run(&["verify"]).ok();
    let files = assert_files_clean(&t, &needles, &excluded);
    assert_vault_files_scanned(&files, &t.vault, 8 * 1024);

    // Outputs: the value only from a successful get; passwords nowhere.
    let gets = t.log.borrow().iter().filter(|o| prints_value(o)).count();
    assert!(gets >= 5, "too few value-printing gets: {gets}");
    assert!(
        t.log
            .borrow()
            .iter()
            .filter(|o| prints_value(o))
            .all(|o| contains(&o.stdout, VALUE.as_bytes())),
        "a get did not print the canary: the leak check would be vacuous"
    );
    assert_outputs_clean(&t, VALUE, prints_value);
    assert_outputs_clean(&t, NEW_PASSWORD, |_| false);
    assert_outputs_clean(&t, CHANGED_PASSWORD, |_| false);
}

#[test]
fn a_password_never_leaks_into_output_or_files() {
    const PASSWORD: &str = "PW-canary-3e8b1a-secret";
    const PASSWORD2: &str = "PW2-canary-c47d09-secret";
    let mut t = Tresor::new();
    let mut args = vec!["init", "--password"];
    args.extend(FAST_KDF);
    t.cmd(&args)
        .env("TRESOR_PASSWORD", PASSWORD)
        .run()
        .ok()
        .err_has(&["Recovery key"]);
    t.set_default("TRESOR_PASSWORD", PASSWORD);

    t.run_in(&["set", NAME], VALUE.as_bytes()).ok();
    assert_eq!(t.run(&["get", NAME]).ok().out(), VALUE);
    t.run(&["--json", "get", NAME]).ok();
    t.run(&["ls"]).ok();
    t.run(&["--json", "keyslot", "list"]).ok();
    t.run(&["keyslot", "list"]).ok();
    // A wrong password attempt does not echo what was tried.
    t.cmd(&["get", NAME])
        .env("TRESOR_PASSWORD", PASSWORD2)
        .run()
        .code(3);
    t.cmd(&["--json", "get", NAME])
        .env("TRESOR_PASSWORD", PASSWORD2)
        .run()
        .code(3);
    // KEYSTORE_PASSWORD is read too.
    t.cmd(&["get", NAME])
        .env_remove("TRESOR_PASSWORD")
        .env("KEYSTORE_PASSWORD", PASSWORD)
        .run()
        .ok();
    let mut args = vec!["passwd"];
    args.extend(FAST_KDF);
    t.cmd(&args)
        .env("TRESOR_NEW_PASSWORD", PASSWORD2)
        .run()
        .ok();
    t.run(&["get", NAME]).code(3);
    t.set_default("TRESOR_PASSWORD", PASSWORD2);
    t.run(&["get", NAME]).ok();
    t.run(&["audit", "log"]).ok();
    t.run(&["--json", "audit", "log"]).ok();
    t.run(&["verify"]).ok();
    t.run(&["settings"]).ok();
    assert!(t.log.borrow().len() > 15);

    for pw in [PASSWORD, PASSWORD2] {
        assert_outputs_clean(&t, pw, |_| false);
    }
    assert_outputs_clean(&t, VALUE, prints_value);
    let files = assert_files_clean(&t, &[PASSWORD, PASSWORD2, VALUE, NAME], &[]);
    assert_vault_files_scanned(&files, &t.vault, 32 * 1024);
}

#[test]
fn the_canary_never_leaks_through_the_manager() {
    let t = Tresor::with_key();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    t.write(
        "tresor.toml",
        format!(
            "[[stores]]\nname = \"env\"\nkind = \"env\"\nprefix = \"CNRY_\"\npriority = 10\n\n\
             [[stores]]\nname = \"local\"\nkind = \"vault\"\npriority = 50\n\n\
             [[stores]]\nname = \"team\"\nkind = \"openbao\"\naddress = \"http://127.0.0.1:{port}\"\n\
             token = \"SEC/bao/token\"\ncache = true\nconnect_timeout = \"300ms\"\npriority = 100\n"
        )
        .as_bytes(),
    );
    // A project config is used once the user approved it.
    t.run(&["config", "trust"]).ok();
    t.run_in(&["set", "bao/token", "--store", "local"], v(9).as_bytes())
        .ok();
    t.run_in(&["set", NAME], v(1).as_bytes()).ok();
    t.run_in(&["rotate", NAME, "--reason", "r"], v(2).as_bytes())
        .ok();
    for args in [
        vec!["get", NAME],
        vec!["get", NAME, "--json"],
        vec!["get", NAME, "--store", "local"],
        vec!["get", NAME, "--store", "team"],
        vec!["get", NAME, "--offline"],
        vec!["get", NAME, "--max-age", "1s"],
        vec!["ls"],
        vec!["ls", "--json"],
        vec!["history", NAME],
        vec!["history", NAME, "--json"],
        vec!["meta", NAME],
        vec!["stores"],
        vec!["stores", "--json"],
        vec!["doctor"],
        vec!["doctor", "--json"],
        vec!["config", "check"],
        vec!["config", "check", "--json"],
        vec!["get", "missing/name"],
    ] {
        t.run(&args);
    }
    t.cmd(&["get", NAME])
        .env("CNRY_CANARY_NAME_B81E_TOK3N_5D2E", v(3))
        .run()
        .ok();
    t.run_in(&["set", NAME, "--store", "team"], v(4).as_bytes())
        .code(6);
    t.run_in(&["set", NAME, "--store", "env"], v(5).as_bytes())
        .code(2);
    t.run(&["rm", NAME]).ok();
    t.run(&["undelete", NAME]).ok();
    assert_outputs_clean(&t, VALUE, prints_value);
    assert_files_clean(&t, &[VALUE, SEGMENTS[0], SEGMENTS[1]], &[]);
    for e in t.audit() {
        assert!(!e.to_string().contains(VALUE), "{e}");
    }
}
