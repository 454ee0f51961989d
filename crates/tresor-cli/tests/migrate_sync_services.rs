//! `tresor migrate` and `tresor sync` against real services
//! (scripts/services): vault ↔ OpenBao with every version, AWS Secrets
//! Manager (moto) → vault, vault → the Secret Service keychain, sync
//! between a vault and OpenBao (a change, a delete, a conflict, an
//! interrupted run), and an OpenBao target that goes down mid-migration
//! (exit 6, nothing half-written, a re-run completes).
//!
//! Needs the scripts/services environment; fails without it. Run:
//! `scripts/services exec -- cargo test -p tresor-cli
//! --features tresor-cli/service-tests --test migrate_sync_services`.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn env(var: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run under scripts/services exec"))
}

fn unique(prefix: &str) -> String {
    use std::io::Read;
    let mut b = [0u8; 6];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    format!(
        "{prefix}{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// The local vault (`vault`, declared so that `set --store vault` works
/// too), a second vault file `b`, OpenBao `team` at
/// `addr`, moto `cloud`, the Secret Service keychain `login` (its own
/// service name), and `env` reading `MIG_*`.
fn setup(addr: &str, token: &str) -> Tresor {
    let mut t = Tresor::with_key();
    t.set_default("TEST_BAO_TOKEN", token);
    let b = t.path("b.db");
    t.run(&["--vault", b.to_str().unwrap(), "init", "--no-recovery"])
        .ok();
    let config = format!(
        r#"[[stores]]
name = "vault"
kind = "vault"
priority = 60

[[stores]]
name = "b"
kind = "vault"
path = "{b}"
priority = 20

[[stores]]
name = "team"
kind = "openbao"
address = "{addr}"
token = "ENV/TEST_BAO_TOKEN"
connect_timeout = "500ms"
timeout = "2s"
priority = 10

[[stores]]
name = "cloud"
kind = "aws"
region = "us-east-1"
endpoint = "{aws}"
priority = 30

[[stores]]
name = "login"
kind = "keychain"
backend = "secret-service"
service = "{service}"
priority = 40

[[stores]]
name = "env"
kind = "env"
prefix = "MIG_"
priority = 50
"#,
        b = b.display(),
        aws = env("TRESOR_TEST_AWS_ENDPOINT"),
        service = unique("tresor-migrate-test-"),
    );
    t.write("tresor.toml", config.as_bytes());
    t.run(&["config", "trust"]).ok();
    t
}

fn bao() -> (String, String) {
    (env("TRESOR_TEST_BAO_ADDR"), env("TRESOR_TEST_BAO_TOKEN"))
}

fn set(t: &Tresor, store: &str, name: &str, value: &str) {
    t.run_in(&["set", name, "--store", store], value.as_bytes())
        .ok();
}

fn get(t: &Tresor, store: &str, name: &str) -> Option<String> {
    let out = t.run(&["get", name, "--store", store]);
    (out.code == 0).then(|| out.out())
}

fn no_value_printed(t: &Tresor, values: &[&str]) {
    for out in t.log.borrow().iter() {
        if out.args.first().is_some_and(|a| a == "get") {
            continue;
        }
        for v in values {
            assert!(
                !contains(&out.stdout, v.as_bytes()) && !contains(&out.stderr, v.as_bytes()),
                "a value appeared in the output of {:?}",
                out.args
            );
        }
    }
}

#[test]
fn vault_to_openbao_and_back_with_every_version() {
    let (addr, token) = bao();
    let t = setup(&addr, &token);
    let dir = unique("mig");
    let db = format!("{dir}/db");
    let api = format!("{dir}/api");
    for v in ["canary-v1", "canary-v2", "canary-v3"] {
        set(&t, "vault", &db, v);
    }
    set(&t, "vault", &api, "canary-api");
    let prefix = format!("{dir}/");
    let report = t
        .run(&[
            "migrate", "--from", "vault", "--to", "team", "--prefix", &prefix, "--jobs", "4",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(report["copied"], 2, "{report}");
    let history = t
        .run(&["history", &db, "--store", "team", "--json"])
        .ok()
        .json();
    assert_eq!(history.as_array().unwrap().len(), 3, "{history}");
    for (v, value) in [("1", "canary-v1"), ("2", "canary-v2"), ("3", "canary-v3")] {
        let got = t
            .run(&["get", &db, "--store", "team", "--version", v])
            .ok()
            .out();
        assert_eq!(got, value);
    }
    // And back, into the second vault file, with the source deleted.
    let back = t
        .run(&[
            "migrate",
            "--from",
            "team",
            "--to",
            "b",
            "--prefix",
            &prefix,
            "--delete-source",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(
        (back["copied"].as_u64(), back["source_deleted"].as_u64()),
        (Some(2), Some(2))
    );
    let history = t
        .run(&["history", &db, "--store", "b", "--json"])
        .ok()
        .json();
    assert_eq!(history.as_array().unwrap().len(), 3);
    assert_eq!(get(&t, "b", &db).as_deref(), Some("canary-v3"));
    assert_eq!(get(&t, "team", &db), None);
    no_value_printed(&t, &["canary-v1", "canary-v2", "canary-v3", "canary-api"]);
}

#[test]
fn aws_to_vault_and_vault_to_keychain() {
    let (addr, token) = bao();
    let mut t = setup(&addr, &token);
    let dir = unique("aws");
    let prefix = format!("{dir}/");
    set(&t, "cloud", &format!("{dir}/one"), "canary-aws-1");
    set(&t, "cloud", &format!("{dir}/one"), "canary-aws-2");
    set(&t, "cloud", &format!("{dir}/two"), "canary-aws-3");
    let report = t
        .run(&[
            "migrate", "--from", "cloud", "--to", "vault", "--prefix", &prefix, "--json",
        ])
        .ok()
        .json();
    assert_eq!(report["copied"], 2, "{report}");
    assert_eq!(
        get(&t, "vault", &format!("{dir}/one")).as_deref(),
        Some("canary-aws-2")
    );
    let history = t
        .run(&[
            "history",
            &format!("{dir}/one"),
            "--store",
            "vault",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(
        history.as_array().unwrap().len(),
        2,
        "both versions: {history}"
    );

    // The local vault into the keychain: one value per name there.
    let report = t
        .run(&[
            "migrate", "--from", "vault", "--to", "login", "--prefix", &prefix, "--json",
        ])
        .ok()
        .json();
    assert_eq!(report["copied"], 2, "{report}");
    assert_eq!(
        get(&t, "login", &format!("{dir}/one")).as_deref(),
        Some("canary-aws-2")
    );
    assert_eq!(
        get(&t, "login", &format!("{dir}/two")).as_deref(),
        Some("canary-aws-3")
    );
    // Again: already there.
    let again = t
        .run(&[
            "migrate", "--from", "vault", "--to", "login", "--prefix", &prefix, "--json",
        ])
        .ok()
        .json();
    assert_eq!(again["unchanged"], 2);
    for n in ["one", "two"] {
        t.run(&["rm", &format!("{dir}/{n}"), "--store", "login", "--purge"])
            .ok();
        t.run(&["rm", &format!("{dir}/{n}"), "--store", "cloud", "--purge"])
            .ok();
    }
    // env → vault through the same command (no service, for completeness).
    t.set_default("MIG_ENVSVC_TOKEN", "canary-env");
    t.run(&[
        "migrate", "--from", "env", "--to", "b", "--prefix", "envsvc/",
    ])
    .ok();
    assert_eq!(get(&t, "b", "envsvc/token").as_deref(), Some("canary-env"));
    no_value_printed(
        &t,
        &["canary-aws-1", "canary-aws-2", "canary-aws-3", "canary-env"],
    );
}

fn actions(report: &serde_json::Value) -> Vec<(String, String)> {
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn sync_a_vault_with_openbao() {
    let (addr, token) = bao();
    let t = setup(&addr, &token);
    let dir = unique("sync");
    let prefix = format!("{dir}/");
    let (x, y, z) = (format!("{dir}/x"), format!("{dir}/y"), format!("{dir}/z"));
    set(&t, "vault", &x, "canary-x");
    set(&t, "vault", &y, "canary-y");
    set(&t, "team", &z, "canary-z");
    let sync = |extra: &[&str]| {
        let mut args = vec!["sync", "vault", "team", "--prefix", &prefix, "--json"];
        args.extend(extra);
        t.run(&args)
    };
    let first = sync(&[]).ok().json();
    assert_eq!(first["changes"].as_array().unwrap().len(), 3, "{first}");
    assert_eq!(get(&t, "team", &x).as_deref(), Some("canary-x"));
    assert_eq!(get(&t, "vault", &z).as_deref(), Some("canary-z"));
    let idle = sync(&[]).ok().json();
    assert_eq!(
        (
            idle["read"].as_u64(),
            idle["changes"].as_array().unwrap().len()
        ),
        (Some(0), 0),
        "{idle}"
    );

    // Changed in OpenBao: into the vault.
    set(&t, "team", &x, "canary-x2");
    let changed = sync(&[]).ok().json();
    assert_eq!(actions(&changed), [(x.clone(), "copy_b_to_a".to_string())]);
    assert_eq!(get(&t, "vault", &x).as_deref(), Some("canary-x2"));

    // Deleted in the vault: a soft delete in OpenBao.
    t.run(&["rm", &y, "--store", "vault"]).ok();
    let deleted = sync(&[]).ok().json();
    assert_eq!(actions(&deleted), [(y.clone(), "delete_in_b".to_string())]);
    assert_eq!(get(&t, "team", &y), None);
    t.run(&["undelete", &y, "--store", "team"]).ok();
    assert_eq!(get(&t, "team", &y).as_deref(), Some("canary-y"));
    t.run(&["rm", &y, "--store", "team"]).ok();

    // Both changed: a conflict, then settled by the newer change.
    set(&t, "vault", &z, "canary-z-vault");
    std::thread::sleep(Duration::from_millis(20));
    set(&t, "team", &z, "canary-z-team");
    let out = sync(&[]);
    out.code(5);
    assert_eq!(actions(&out.json()), [(z.clone(), "conflict".to_string())]);
    assert_eq!(get(&t, "vault", &z).as_deref(), Some("canary-z-vault"));
    let settled = sync(&["--prefer", "newer"]).ok().json();
    assert_eq!(actions(&settled), [(z.clone(), "copy_b_to_a".to_string())]);
    assert_eq!(get(&t, "vault", &z).as_deref(), Some("canary-z-team"));

    // An interrupted sync (many names to copy) re-runs cleanly.
    // MIG_<DIR>_BULK_K001 lists as <dir>/bulk_k001 in the env store.
    let bulk = format!("{dir}/bulk_");
    let mut t = t;
    for i in 0..150 {
        t.set_default(
            &format!("MIG_{}_BULK_K{i:03}", dir.to_uppercase()),
            format!("canary-b{i}"),
        );
    }
    t.run(&[
        "migrate", "--from", "env", "--to", "vault", "--prefix", &bulk,
    ])
    .ok();
    let mut child = t
        .cmd(&["sync", "vault", "team", "--prefix", &prefix])
        .into_command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let _ = child.kill();
    let _ = child.wait();
    let rerun = t
        .run(&["sync", "vault", "team", "--prefix", &prefix, "--json"])
        .ok()
        .json();
    assert_eq!(rerun["conflicts"], 0, "{rerun}");
    assert_eq!(
        get(&t, "team", &format!("{bulk}k149")).as_deref(),
        Some("canary-b149")
    );
    let calm = t
        .run(&["sync", "vault", "team", "--prefix", &prefix, "--json"])
        .ok()
        .json();
    assert_eq!(calm["changes"].as_array().unwrap().len(), 0, "{calm}");
    no_value_printed(&t, &["canary-x", "canary-y", "canary-z", "canary-b1"]);
}

/// An OpenBao dev server of this test's own, on `port`.
fn start_bao(port: u16, token: &str, dir: &std::path::Path) -> std::process::Child {
    let bin = env("TRESOR_TEST_BAO_BIN");
    let child = std::process::Command::new(&bin)
        .args([
            "server",
            "-dev",
            "-dev-no-store-token",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .env("HOME", dir)
        .env("BAO_DEV_ROOT_TOKEN_ID", token)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "bao did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The KV mount answers once unsealed.
    std::thread::sleep(Duration::from_millis(500));
    child
}

#[test]
fn a_target_that_goes_down_mid_migration() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let token = unique("root-");
    let addr = format!("http://127.0.0.1:{port}");
    let mut t = setup(&addr, &token);
    let n = 400;
    for i in 0..n {
        t.set_default(&format!("MIG_DOWN_K{i:03}"), format!("canary-down-{i}"));
    }
    t.run(&[
        "migrate", "--from", "env", "--to", "vault", "--prefix", "down/",
    ])
    .ok();
    let mut server = start_bao(port, &token, t.dir.path());

    let child = t
        .cmd(&[
            "migrate", "--from", "vault", "--to", "team", "--prefix", "down/", "--json",
        ])
        .into_command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    server.kill().unwrap();
    server.wait().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err: serde_json::Value = serde_json::from_slice(
        out.stderr
            .split(|b| *b == b'\n')
            .rfind(|l| l.starts_with(b"{\"error\""))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(err["error"]["kind"], "unavailable", "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("team"),
        "{err}"
    );
    assert!(
        err["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("run the same command again"),
        "{err}"
    );
    assert!(!contains(&out.stderr, b"canary-down-"));
    assert!(
        out.stdout.is_empty(),
        "no report of a migration that did not finish"
    );

    // Back up (a dev server starts empty): the same command completes.
    let _server = KillOnDrop(start_bao(port, &token, t.dir.path()));
    let report = t
        .run(&[
            "migrate", "--from", "vault", "--to", "team", "--prefix", "down/", "--json",
        ])
        .ok()
        .json();
    assert_eq!(report["copied"].as_u64(), Some(n), "{report}");
    assert_eq!(
        get(&t, "team", "down/k399").as_deref(),
        Some("canary-down-399")
    );
    let listed = t
        .run(&["ls", "down/", "--store", "team", "--json"])
        .ok()
        .json();
    assert_eq!(listed.as_array().unwrap().len() as u64, n);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
