//! The manager against a real OpenBao dev server (scripts/services):
//! writes and reads through tresor.toml, SEC/ token references, the offline
//! cache (fallback with its age when the server is gone, --offline,
//! --max-age), and doctor's probe leaving nothing behind.
//!
//! Needs TRESOR_TEST_BAO_ADDR and TRESOR_TEST_BAO_TOKEN; fails without them.
//! Run: `scripts/services exec -- cargo test -p tresor-cli
//! --features tresor-cli/service-tests --test manager_services`.

mod common;

use common::*;

fn bao() -> (String, String) {
    let addr = std::env::var("TRESOR_TEST_BAO_ADDR")
        .expect("TRESOR_TEST_BAO_ADDR is not set: run under scripts/services exec");
    let token = std::env::var("TRESOR_TEST_BAO_TOKEN")
        .expect("TRESOR_TEST_BAO_TOKEN is not set: run under scripts/services exec");
    (addr, token)
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A unique folder of names for this test in the shared `secret/` mount.
fn unique(prefix: &str) -> String {
    let mut b = [0u8; 6];
    getrandom_fill(&mut b);
    format!(
        "{prefix}{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

fn getrandom_fill(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(buf)
        .unwrap();
}

fn write_config(t: &Tresor, address: &str, token: &str, extra: &str) {
    let text = format!(
        r#"[[stores]]
name = "local"
kind = "vault"
priority = 50

[[stores]]
name = "team"
kind = "openbao"
address = "{address}"
token = "{token}"
cache = true
connect_timeout = "500ms"
timeout = "2s"
priority = 10
{extra}
"#
    );
    t.write("tresor.toml", text.as_bytes());
    // A project config is used once the user approved it (tests/config_trust.rs).
    t.run(&["config", "trust"]).ok();
}

fn curl_list(addr: &str, token: &str, path: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "-X", "LIST", "-H"])
        .arg(format!("X-Vault-Token: {token}"))
        .arg(format!("{addr}/v1/secret/metadata/{path}"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn reads_writes_and_the_offline_cache_against_openbao() {
    let (addr, token) = bao();
    let mut t = Tresor::with_key();
    t.set_default("TEST_BAO_TOKEN", &token);
    write_config(&t, &addr, "ENV/TEST_BAO_TOKEN", "");
    let dir = unique("mgr");
    let name = format!("{dir}/db/password");

    let set = t
        .run_in(&["set", &name, "--json"], b"s3cret-canary-1")
        .ok()
        .json();
    assert_eq!(
        (set["store"].as_str(), set["version"].as_u64()),
        (Some("team"), Some(1))
    );
    let got = t.run(&["get", &name, "--json"]).ok().json();
    assert_eq!(
        (got["value"].as_str(), got["store"].as_str()),
        (Some("s3cret-canary-1"), Some("team"))
    );
    assert!(got.get("cached_age_seconds").is_none());
    t.run_in(
        &["set", &format!("{dir}/local-only"), "--store", "local"],
        b"x",
    )
    .ok();
    let ls = t.run(&["ls", &dir, "--json"]).ok().json();
    let stores: Vec<(&str, &str)> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["store"].as_str().unwrap()))
        .collect();
    assert_eq!(stores.len(), 2, "{stores:?}");
    assert!(stores.contains(&(name.as_str(), "team")), "{stores:?}");

    // The server is gone (same store name, dead address): the offline copy
    // answers, with a warning giving its age.
    write_config(
        &t,
        &format!("http://127.0.0.1:{}", closed_port()),
        "ENV/TEST_BAO_TOKEN",
        "",
    );
    let out = t.run(&["get", &name, "--json"]);
    let got = out.ok().json();
    assert_eq!(got["value"], "s3cret-canary-1");
    assert_eq!(got["store"], "team");
    assert!(got["cached_age_seconds"].as_u64().is_some(), "{got}");
    out.err_has(&["offline copy of store 'team'", "ago"]);
    // --max-age bounds the copy: too old is not found, and says why.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // Too old is unavailable (exit 6), said once, with the flag that
    // accepts it.
    let stale = t.run(&["get", &name, "--max-age", "1s"]);
    stale.code(6).err_has(&[
        "offline copy",
        "more than the 1s allowed",
        "hint:",
        "--max-age",
    ]);
    assert!(!stale.err().contains("skipped"), "{}", stale.err());
    assert_eq!(
        stale.err().matches("is unavailable").count(),
        1,
        "{}",
        stale.err()
    );
    // Writes are never redirected: the store is down.
    t.run_in(&["set", &name], b"x").code(6);

    // --offline with the server up: only the cache is used.
    write_config(&t, &addr, "ENV/TEST_BAO_TOKEN", "");
    let out = t.run(&["get", &name, "--offline"]);
    assert_eq!(out.ok().out(), "s3cret-canary-1");
    out.err_has(&["offline"]);
    t.run_in(&["set", &name, "--offline"], b"x").code(6);
    t.run(&["ls", &dir, "--offline", "--json"]).ok();

    // The copies are ordinary records of the local vault: verify and the
    // audit chain agree, and no value is in the audit log.
    t.run(&["verify"]).ok();
    t.run(&["audit", "verify"]).ok();
    let audit = t.run(&["audit", "log", "--json"]).ok().out();
    assert!(audit.contains("offline copy of store 'team'"), "{audit}");
    assert!(!audit.contains("s3cret-canary-1"));
    for f in t.files() {
        assert!(
            !contains(&std::fs::read(&f).unwrap(), b"s3cret-canary-1"),
            "{f:?}"
        );
    }
}

#[test]
fn sec_references_and_doctor_against_openbao() {
    let (addr, token) = bao();
    let t = Tresor::with_key();
    // A config file named but missing is a usage error.
    t.cmd(&["get", "x"])
        .env("TRESOR_CONFIG", "/nonexistent/tresor.toml")
        .run()
        .code(2)
        .err_has(&["does not exist"]);
    // The token lives in the local vault.
    t.run_in(&["set", "bao/token"], token.as_bytes()).ok();
    write_config(&t, &addr, "SEC/bao/token", "required = true");
    t.run(&["config", "check"]).ok();
    let name = format!("{}/x", unique("mgr"));
    t.run_in(&["set", &name], b"v").ok();
    assert_eq!(t.run(&["get", &name]).ok().out(), "v");

    let start = std::time::Instant::now();
    let d = t.run(&["doctor", "--json"]).ok().json();
    let elapsed = start.elapsed();
    assert_eq!(d["ok"], true, "{d}");
    let team = d["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "team")
        .unwrap()
        .clone();
    assert_eq!(team["reachable"], true);
    assert_eq!(team["authenticated"], true);
    assert_eq!(team["probe"], "ok");
    assert_eq!(team["cleaned_up"], true);
    assert!(team["latency_ms"].as_f64().unwrap() > 0.0);
    // Nothing is left under .tresor/doctor/ on the server.
    let listed = curl_list(&addr, &token, ".tresor/doctor/");
    assert!(!listed.contains("\"keys\""), "{listed}");
    eprintln!("doctor wall time with every store up: {elapsed:?}");

    // An unresolvable SEC/ reference is a config problem with its line.
    write_config(&t, &addr, "SEC/bao/missing", "");
    t.run(&["config", "check"]).code(2).err_has(&["1 problem"]);
    let out = t.run(&["config", "check"]);
    assert!(out.out().contains("tresor.toml:10:1: store 'team': option 'token': SEC/bao/missing is not in the local vault"), "{}", out.out());
}
