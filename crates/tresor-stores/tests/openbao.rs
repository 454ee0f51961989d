//! The OpenBao store against a real `bao server -dev` (feature
//! `service-tests`; scripts/test runs it under `scripts/services exec`).
//!
//! Every test gets a fresh KV v2 mount of its own, made with the root token
//! from TRESOR_TEST_BAO_ADDR / TRESOR_TEST_BAO_TOKEN. The tests fail, never
//! skip, when those are missing.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{Value, json};
use tresor_core::{
    DeleteMode, Label, Metadata, PutOptions, SecretName, SecretValue, Selector, Store,
};
use tresor_stores::conformance::{Fixture, seed_by_put};
use tresor_stores::openbao::{Auth, OpenBao, OpenBaoOptions};

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run these tests under scripts/services exec \
             (cargo test -p tresor-stores --features service-tests --test openbao)"
        )
    })
}

fn addr() -> String {
    env("TRESOR_TEST_BAO_ADDR")
}

fn root_token() -> String {
    env("TRESOR_TEST_BAO_TOKEN")
}

/// A raw call with the root token, for test setup.
fn admin(method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}/v1/{path}", addr());
    let token = root_token();
    let mut response = match method {
        "GET" => agent.get(&url).header("X-Vault-Token", &token).call(),
        "DELETE" => agent.delete(&url).header("X-Vault-Token", &token).call(),
        _ => agent
            .post(&url)
            .header("X-Vault-Token", &token)
            .send_json(body.unwrap_or(json!({}))),
    }
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A fresh KV v2 mount, ready for writes.
fn fresh_mount() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let mount = format!(
        "t{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let (status, body) = admin(
        "POST",
        &format!("sys/mounts/{mount}"),
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert!(
        status == 204 || status == 200,
        "mount {mount}: {status} {body}"
    );
    // A new KV v2 mount upgrades itself for a moment before it takes writes.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = admin("GET", &format!("{mount}/config"), None);
        if status == 200 {
            let (s, _) = admin("GET", &format!("{mount}/metadata/probe"), None);
            if s == 404 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "mount {mount} not ready: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    mount
}

fn store_on(mount: &str) -> OpenBao {
    let mut options = OpenBaoOptions::new(addr(), Auth::Token(SecretString::from(root_token())));
    options.mount = mount.to_string();
    options.name = "bao-test".to_string();
    OpenBao::connect(options).unwrap()
}

struct BaoFixture {
    mount: Option<String>,
}

impl Fixture for BaoFixture {
    fn store(&mut self, seed: &[(SecretName, SecretValue)]) -> Box<dyn Store> {
        let mount = fresh_mount();
        let mut store = store_on(&mount);
        seed_by_put(&mut store, seed);
        self.mount = Some(mount);
        Box::new(store)
    }

    fn second_handle(&mut self) -> Option<Box<dyn Store>> {
        Some(Box::new(store_on(self.mount.as_ref()?)))
    }
}

mod conformance {
    tresor_stores::conformance_tests!(super::BaoFixture { mount: None });
}

fn name(s: &str) -> SecretName {
    SecretName::new(s).unwrap()
}

fn value(b: &[u8]) -> SecretValue {
    SecretValue::copy_from(b)
}

#[test]
fn a_dead_server_is_unavailable_fast() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let options = OpenBaoOptions::new(
        format!("http://127.0.0.1:{port}"),
        Auth::Token(SecretString::from("t".to_string())),
    );
    let mut store = OpenBao::connect(options).unwrap();
    let t0 = Instant::now();
    let err = store.get(&name("a/b"), Selector::default()).unwrap_err();
    assert_eq!(err.kind(), "unavailable", "{err}");
    let shown = err.to_string();
    assert!(
        shown.contains("openbao") && shown.contains("3 attempts"),
        "{shown}"
    );
    let err = store
        .put(
            &name("a/b"),
            &value(b"tresor-dead-canary"),
            &PutOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), "unavailable", "{err}");
    assert!(!format!("{err} {err:?}").contains("tresor-dead-canary"));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let health = store.health();
    assert!(!health.reachable, "{}", health.detail);
}

#[test]
fn a_wrong_token_is_an_auth_error() {
    let mount = fresh_mount();
    let mut options =
        OpenBaoOptions::new(addr(), Auth::Token(SecretString::from("nope".to_string())));
    options.mount = mount;
    let mut store = OpenBao::connect(options).unwrap();
    let err = store.get(&name("a/b"), Selector::default()).unwrap_err();
    assert_eq!(err.kind(), "auth", "{err}");
    assert!(err.to_string().contains("403"), "{err}");
    let health = store.health();
    assert!(
        health.reachable && !health.authenticated,
        "{}",
        health.detail
    );
    assert!(
        health.detail.contains("token refused: HTTP 403"),
        "{}",
        health.detail
    );
}

#[test]
fn approle_login_gets_a_working_token() {
    let mount = fresh_mount();
    let approle = format!("approle-{mount}");
    let (s, b) = admin(
        "POST",
        &format!("sys/auth/{approle}"),
        Some(json!({"type": "approle"})),
    );
    assert!(s == 204 || s == 200, "enable approle: {s} {b}");
    let policy = format!("p-{mount}");
    let rules = format!(
        "path \"{mount}/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }}"
    );
    let (s, b) = admin(
        "POST",
        &format!("sys/policies/acl/{policy}"),
        Some(json!({ "policy": rules })),
    );
    assert!(s == 204 || s == 200, "policy: {s} {b}");
    let (s, b) = admin(
        "POST",
        &format!("auth/{approle}/role/app"),
        Some(json!({"token_policies": [policy], "token_ttl": "2s", "token_max_ttl": "2s"})),
    );
    assert!(s == 204 || s == 200, "role: {s} {b}");
    let (_, b) = admin("GET", &format!("auth/{approle}/role/app/role-id"), None);
    let role_id = b["data"]["role_id"].as_str().unwrap().to_string();
    let (_, b) = admin("POST", &format!("auth/{approle}/role/app/secret-id"), None);
    let secret_id = b["data"]["secret_id"].as_str().unwrap().to_string();

    let options = |secret_id: &str| {
        let mut o = OpenBaoOptions::new(
            addr(),
            Auth::AppRole {
                role_id: role_id.clone(),
                secret_id: SecretString::from(secret_id.to_string()),
                mount: approle.clone(),
            },
        );
        o.mount = mount.clone();
        o
    };
    let mut store = OpenBao::connect(options(&secret_id)).unwrap();
    let n = name("app/key");
    assert_eq!(
        store
            .put(&n, &value(b"v1"), &PutOptions::default())
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .get(&n, Selector::default())
            .unwrap()
            .value
            .expose_secret(),
        b"v1"
    );
    let health = store.health();
    assert!(health.authenticated, "{}", health.detail);
    // The token expires after 2 s; the store logs in again on the 403.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        store
            .get(&n, Selector::default())
            .unwrap()
            .value
            .expose_secret(),
        b"v1"
    );

    let err = OpenBao::connect(options("00000000-0000-0000-0000-000000000000")).unwrap_err();
    assert_eq!(err.kind(), "auth", "{err}");
    assert!(!err.to_string().contains(&secret_id), "{err}");
}

#[test]
fn binary_values_use_a_marker_and_foreign_entries_read_as_json() {
    let mount = fresh_mount();
    let mut store = store_on(&mount);
    let bin: Vec<u8> = (0..=255u8).collect();
    let n = name("bin/blob");
    store.put(&n, &value(&bin), &PutOptions::default()).unwrap();
    assert_eq!(
        store
            .get(&n, Selector::default())
            .unwrap()
            .value
            .expose_secret(),
        bin
    );
    let (_, raw) = admin("GET", &format!("{mount}/data/bin/blob"), None);
    assert!(raw["data"]["data"]["value_base64"].is_string(), "{raw}");

    let (s, b) = admin(
        "POST",
        &format!("{mount}/data/foreign/db"),
        Some(json!({"data": {"user": "u", "password": "p"}})),
    );
    assert_eq!(s, 200, "{b}");
    let got = store.get(&name("foreign/db"), Selector::default()).unwrap();
    assert_eq!(got.value.expose_secret(), br#"{"password":"p","user":"u"}"#);
}

#[test]
fn versions_labels_metadata_and_history() {
    let mount = fresh_mount();
    let mut store = store_on(&mount);
    let n = name("svc/token");
    let meta = Metadata::from([("owner".to_string(), "ops".to_string())]);
    let with_meta = PutOptions {
        metadata: meta,
        ..PutOptions::default()
    };
    for (i, v) in [b"one", b"two", b"six"].iter().enumerate() {
        assert_eq!(store.put(&n, &value(*v), &with_meta).unwrap(), i as u64 + 1);
    }
    let more = PutOptions {
        metadata: Metadata::from([("url".to_string(), "https://x".to_string())]),
        ..PutOptions::default()
    };
    assert_eq!(store.put(&n, &value(b"four"), &more).unwrap(), 4);
    let got = |store: &mut OpenBao, s| store.get(&n, s).unwrap();
    assert_eq!(
        got(&mut store, Selector::Version(2)).value.expose_secret(),
        b"two"
    );
    let prev = got(&mut store, Selector::Label(Label::Previous));
    assert_eq!((prev.version, prev.value.expose_secret()), (3, &b"six"[..]));
    assert_eq!(
        store
            .get(&n, Selector::Label(Label::Pending))
            .unwrap_err()
            .kind(),
        "unsupported"
    );
    assert_eq!(
        store.get(&n, Selector::Version(0)).unwrap_err().kind(),
        "not_found"
    );
    let listed = store.list("svc/").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].current, listed[0].latest), (4, 4));
    assert_eq!(listed[0].metadata["owner"], "ops");
    assert_eq!(listed[0].metadata["url"], "https://x");
    assert!(listed[0].updated_at > 1_700_000_000_000);
    let history = store.history(&n).unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(history[3].labels, [Label::Current]);
    assert_eq!(history[2].labels, [Label::Previous]);
    assert!(history[0].created_at > 1_700_000_000_000);

    // Soft delete hides the newest version; previous is not promoted.
    store.delete(&n, DeleteMode::Soft).unwrap();
    assert_eq!(
        store.get(&n, Selector::default()).unwrap_err().kind(),
        "not_found"
    );
    assert_eq!(
        store
            .get(&n, Selector::Label(Label::Previous))
            .unwrap_err()
            .kind(),
        "not_found"
    );
    assert!(store.list("").unwrap().is_empty());
    store.undelete(&n).unwrap();
    assert_eq!(got(&mut store, Selector::default()).version, 4);

    // Nested folders list by plain string prefix.
    for n in ["a/b/c/d", "a/b/e", "a/bx", "ab/c"] {
        store
            .put(&name(n), &value(b"x"), &PutOptions::default())
            .unwrap();
    }
    let names = |store: &mut OpenBao, p| {
        store
            .list(p)
            .unwrap()
            .into_iter()
            .map(|i| i.name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&mut store, "a/b"), ["a/b/c/d", "a/b/e", "a/bx"]);
    assert_eq!(names(&mut store, "a/b/"), ["a/b/c/d", "a/b/e"]);
    assert_eq!(names(&mut store, "a"), ["a/b/c/d", "a/b/e", "a/bx", "ab/c"]);
    assert_eq!(names(&mut store, "a/b/c/d"), ["a/b/c/d"]);
    let health = store.health();
    assert!(
        health.reachable && health.authenticated,
        "{}",
        health.detail
    );
}

#[test]
fn check_and_set_races_have_one_winner() {
    let mount = fresh_mount();
    let n = name("race/key");
    let mut seed = store_on(&mount);
    seed.put(&n, &value(b"start"), &PutOptions::default())
        .unwrap();
    let options = PutOptions {
        expect_version: Some(1),
        ..PutOptions::default()
    };
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let mount = &mount;
                let n = &n;
                let options = &options;
                s.spawn(move || {
                    store_on(mount).put(n, &value(format!("writer {i}").as_bytes()), options)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wins: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(wins, [&2], "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert_eq!(e.kind(), "conflict", "{e}");
            assert!(e.to_string().contains("expected version 1, found 2"), "{e}");
        }
    }
}

/// A `bao server -dev -dev-tls` of this test's own (the shared dev server
/// speaks plain HTTP): a generated CA, certificate and key in `dir`.
struct TlsBao {
    child: std::process::Child,
    dir: tempfile::TempDir,
    addr: String,
    token: String,
}

impl Drop for TlsBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsBao {
    fn start() -> Self {
        let bin = env("TRESOR_TEST_BAO_BIN");
        let dir = tempfile::tempdir().unwrap();
        // The cluster listener takes the next port: find two free ones.
        let port = loop {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let p = l.local_addr().unwrap().port();
            if p < 65535 && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
                break p;
            }
        };
        let token = format!("tls-root-{}", std::process::id());
        let log = std::fs::File::create(dir.path().join("bao.log")).unwrap();
        let child = std::process::Command::new(&bin)
            .args([
                "server",
                "-dev",
                "-dev-tls",
                "-dev-no-store-token",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
                &format!("-dev-tls-cert-dir={}", dir.path().display()),
            ])
            .env("HOME", dir.path())
            .env("BAO_DEV_ROOT_TOKEN_ID", &token)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let mut bao = TlsBao {
            child,
            dir,
            addr: format!("https://127.0.0.1:{port}"),
            token,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if bao.ca().is_file() {
                let mut store = bao.store(Some(bao.ca()));
                if store.health().authenticated {
                    break;
                }
            }
            if let Some(status) = bao.child.try_wait().unwrap() {
                panic!(
                    "bao -dev-tls exited ({status}): {}",
                    std::fs::read_to_string(bao.dir.path().join("bao.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "bao -dev-tls did not come up: {}",
                std::fs::read_to_string(bao.dir.path().join("bao.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        bao
    }

    fn ca(&self) -> std::path::PathBuf {
        self.dir.path().join("vault-ca.pem")
    }

    fn store(&self, ca_file: Option<std::path::PathBuf>) -> OpenBao {
        let mut options = OpenBaoOptions::new(
            self.addr.clone(),
            Auth::Token(SecretString::from(self.token.clone())),
        );
        options.ca_file = ca_file;
        options.timeout = Duration::from_secs(3);
        options.connect_timeout = Duration::from_secs(3);
        OpenBao::connect(options).unwrap()
    }
}

/// TLS with the server's own CA file: round trip; without it (system
/// roots, which do not hold the dev CA) every call is refused as a
/// certificate problem, with no value in the error; a file that holds no
/// certificate is refused when the store is made.
#[test]
fn tls_trusts_a_given_ca_file_and_nothing_else() {
    let bao = TlsBao::start();
    let mut store = bao.store(Some(bao.ca()));
    let n = name("tls/api_key");
    store
        .put(&n, &value(b"tresor-tls-canary"), &PutOptions::default())
        .unwrap();
    let got = store.get(&n, Selector::default()).unwrap();
    assert_eq!(got.value.expose_secret(), b"tresor-tls-canary");

    let mut untrusting = bao.store(None);
    let err = untrusting.get(&n, Selector::default()).unwrap_err();
    assert_eq!(err.kind(), "unavailable", "{err}");
    let shown = format!("{err} {err:?}").to_lowercase();
    assert!(shown.contains("certificate"), "{shown}");
    let err = untrusting
        .put(&n, &value(b"tresor-tls-canary-2"), &PutOptions::default())
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("tresor-tls-canary"));
    assert!(!untrusting.health().reachable || !untrusting.health().authenticated);
    // Nothing was written by the refused put.
    assert_eq!(store.get(&n, Selector::default()).unwrap().version, 1);

    let bogus = bao.dir.path().join("not-a-ca.pem");
    std::fs::write(&bogus, "no certificate here\n").unwrap();
    let mut options = OpenBaoOptions::new(
        bao.addr.clone(),
        Auth::Token(SecretString::from(bao.token.clone())),
    );
    options.ca_file = Some(bogus);
    let Err(err) = OpenBao::connect(options) else {
        panic!("a CA file without certificates was accepted");
    };
    assert!(err.to_string().contains("not-a-ca.pem"), "{err}");
}

/// A raw call inside namespace `ns`, for test setup.
fn admin_ns(ns: &str, path: &str, body: Value) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(&format!("{}/v1/{path}", addr()))
        .header("X-Vault-Token", &root_token())
        .header("X-Vault-Namespace", ns)
        .send_json(body)
        .unwrap_or_else(|e| panic!("POST {ns}/{path}: {e}"));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A store with `namespace` reads and writes inside that OpenBao namespace
/// only: the same mount and name elsewhere are other secrets.
#[test]
fn a_namespace_keeps_its_secrets_apart() {
    // The same mount path at the root and inside the namespace.
    let mount = fresh_mount();
    let ns = format!("ns{}", mount.replace('-', ""));
    let (status, body) = admin("POST", &format!("sys/namespaces/{ns}"), Some(json!({})));
    assert!(
        status == 200 || status == 204,
        "namespace {ns}: {status} {body}"
    );
    let (status, body) = admin_ns(
        &ns,
        &format!("sys/mounts/{mount}"),
        json!({"type": "kv", "options": {"version": "2"}}),
    );
    assert!(
        status == 200 || status == 204,
        "mount in {ns}: {status} {body}"
    );
    let in_ns = |ns: Option<&str>| {
        let mut options =
            OpenBaoOptions::new(addr(), Auth::Token(SecretString::from(root_token())));
        options.mount = mount.clone();
        options.namespace = ns.map(str::to_string);
        OpenBao::connect(options).unwrap()
    };
    let mut store = in_ns(Some(&ns));
    let n = name("team/db_password");
    // A new KV v2 mount upgrades itself for a moment before it takes writes.
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = store.put(&n, &value(b"in-the-namespace"), &PutOptions::default()) {
        assert!(Instant::now() < deadline, "{e}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = in_ns(Some(&ns)).get(&n, Selector::default()).unwrap();
    assert_eq!(got.value.expose_secret(), b"in-the-namespace");
    // The root's mount of the same path does not hold it, and a write there
    // does not touch the namespace's copy.
    let mut root = in_ns(None);
    let err = root.get(&n, Selector::default()).unwrap_err();
    assert_eq!(err.kind(), "not_found", "{err}");
    root.put(&n, &value(b"at-the-root"), &PutOptions::default())
        .unwrap();
    let got = store.get(&n, Selector::default()).unwrap();
    assert_eq!(
        (got.value.expose_secret(), got.version),
        (&b"in-the-namespace"[..], 1)
    );
    let listed = store.list("team/").unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
}
