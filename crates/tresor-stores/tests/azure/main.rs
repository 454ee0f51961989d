//! The Azure Key Vault store: the SDK's real `SecretClient` over an
//! in-process fake of the Key Vault REST API (`fake.rs`), in the plain
//! `cargo test` (no service, no network). Not a test against Azure itself.

mod fake;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use azure_security_keyvault_secrets::models::{
    SecretAttributes, SecretClientUpdateSecretPropertiesOptions, UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use fake::{FakeCredential, FakeKeyVault, Fault, TOKEN, VAULT};
use tresor_core::{
    DeleteMode, Error, Label, Metadata, PutOptions, SecretName, SecretValue, Selector, Store,
};
use tresor_stores::azure::{
    AzureCredential, AzureKeyVault, AzureOptions, BINARY_CONTENT_TYPE, TEXT_CONTENT_TYPE,
    VERSION_TAG,
};
use tresor_stores::conformance::{Fixture, seed_by_put};

fn name(s: &str) -> SecretName {
    SecretName::new(s).unwrap()
}

fn value(b: &[u8]) -> SecretValue {
    SecretValue::copy_from(b)
}

fn options(fake: &Arc<FakeKeyVault>, credential: Arc<FakeCredential>) -> AzureOptions {
    let mut o = AzureOptions::new(VAULT, AzureCredential::Custom(credential));
    o.transport = Some(fake.clone());
    o.timeout = Duration::from_secs(5);
    o
}

fn store(fake: &Arc<FakeKeyVault>) -> AzureKeyVault {
    AzureKeyVault::connect(options(fake, Arc::default())).unwrap()
}

/// The SDK's client on the fake, for what the store does not do itself
/// (as another tool, or the Azure portal, would).
fn sdk(fake: &Arc<FakeKeyVault>) -> (SecretClient, tokio::runtime::Runtime) {
    use azure_core::http::{ClientOptions, Transport};
    let options = SecretClientOptions {
        client_options: ClientOptions {
            transport: Some(Transport::new(fake.clone())),
            ..ClientOptions::default()
        },
        ..SecretClientOptions::default()
    };
    let client =
        SecretClient::new(VAULT, Arc::new(FakeCredential::default()), Some(options)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (client, runtime)
}

/// A fresh fake vault per store.
struct AzureFixture;

impl Fixture for AzureFixture {
    fn store(&mut self, seed: &[(SecretName, SecretValue)]) -> Box<dyn Store> {
        let mut s = store(&FakeKeyVault::new());
        seed_by_put(&mut s, seed);
        Box::new(s)
    }
}

mod conformance {
    tresor_stores::conformance_tests!(super::AzureFixture);
}

#[test]
fn the_first_request_meets_the_challenge_without_its_body() {
    let fake = FakeKeyVault::new();
    let credential = Arc::new(FakeCredential::default());
    let mut s = AzureKeyVault::connect(options(&fake, credential.clone())).unwrap();
    assert_eq!(
        credential.calls.load(Ordering::SeqCst),
        0,
        "nothing sent yet"
    );
    // A write first: its value must not travel before the token does.
    s.put(
        &name("a/b"),
        &value(b"tresor-challenge-canary"),
        &PutOptions::default(),
    )
    .unwrap();
    let seen = fake.seen();
    assert_eq!(
        (seen[0].authorized, seen[0].status),
        (false, 401),
        "{seen:?}"
    );
    assert!(seen.iter().skip(1).all(|r| r.authorized), "{seen:?}");
    assert!(
        seen.iter()
            .filter(|r| !r.authorized)
            .all(|r| r.body_len == 0),
        "a body went out without a token: {seen:?}"
    );
    assert_eq!(
        *credential.scopes.lock().unwrap(),
        ["https://vault.azure.net/.default"],
        "the scope comes from the challenge's resource"
    );
    // The scope is remembered: no second challenge.
    s.get(&name("a/b"), Selector::default()).unwrap();
    assert_eq!(fake.seen().iter().filter(|r| r.status == 401).count(), 1);
    assert!(TOKEN.starts_with("fake"));
}

#[test]
fn a_challenge_for_another_domain_is_refused_and_nothing_is_sent() {
    let fake = FakeKeyVault::new();
    fake.state().challenge_resource = "https://vault.attacker.example".to_string();
    let credential = Arc::new(FakeCredential::default());
    let mut s = AzureKeyVault::connect(options(&fake, credential.clone())).unwrap();
    let e = s
        .put(
            &name("a/b"),
            &value(b"tresor-domain-canary"),
            &PutOptions::default(),
        )
        .unwrap_err();
    assert_eq!(e.kind(), "auth", "{e}");
    assert!(!format!("{e} {e:?}").contains("tresor-domain-canary"));
    assert_eq!(
        credential.calls.load(Ordering::SeqCst),
        0,
        "no token asked for"
    );
    assert!(fake.seen().iter().all(|r| r.body_len == 0));
    assert!(fake.state().secrets.is_empty());
}

#[test]
fn a_refused_credential_is_an_auth_error() {
    let fake = FakeKeyVault::new();
    let credential = Arc::new(FakeCredential {
        fail: true,
        ..FakeCredential::default()
    });
    let mut s = AzureKeyVault::connect(options(&fake, credential)).unwrap();
    let e = s.get(&name("a/b"), Selector::default()).unwrap_err();
    assert_eq!(e.kind(), "auth", "{e}");
    let health = s.health();
    // Reachable, not authenticated, and the detail says why.
    assert!(
        health.reachable && !health.authenticated && health.detail.contains("no token"),
        "{health:?}"
    );
}

#[test]
fn names_map_to_key_vault_names_and_back() {
    let fake = FakeKeyVault::new();
    let mut s = store(&fake);
    s.put(
        &name("openai/api_key"),
        &value(b"sk-1"),
        &PutOptions::default(),
    )
    .unwrap();
    s.put(
        &name("OpenAI/api_key"),
        &value(b"sk-2"),
        &PutOptions::default(),
    )
    .unwrap();
    {
        let state = fake.state();
        let names: Vec<&str> = state.secrets.values().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["0open0a0i-api03key", "openai-api03key"]);
    }
    // Other tools' secrets: listed under the name they decode to, or left out.
    fake.insert("db-password", "pw", None);
    fake.insert("Legacy-Name", "x", None);
    fake.insert("double--dash", "x", None);
    let listed: Vec<String> = s
        .list("")
        .unwrap()
        .into_iter()
        .map(|i| i.name.to_string())
        .collect();
    assert_eq!(listed, ["OpenAI/api_key", "db/password", "openai/api_key"]);
    let got = s.get(&name("db/password"), Selector::default()).unwrap();
    assert_eq!((got.version, got.value.expose_secret()), (1, &b"pw"[..]));
    let too_long = name(&"A".repeat(100));
    let e = s
        .put(&too_long, &value(b"x"), &PutOptions::default())
        .unwrap_err();
    assert_eq!(e.kind(), "too_large", "{e}");
    assert!(e.to_string().contains("127"), "{e}");
}

#[test]
fn binary_values_are_base64_under_their_content_type() {
    let fake = FakeKeyVault::new();
    let mut s = store(&fake);
    let bytes: Vec<u8> = vec![0, 0xff, 0x80, b'a'];
    s.put(&name("bin"), &value(&bytes), &PutOptions::default())
        .unwrap();
    let stored = fake.latest("bin").unwrap();
    assert_eq!(stored.value, "AP+AYQ==");
    assert_eq!(stored.content_type.as_deref(), Some(BINARY_CONTENT_TYPE));
    assert_eq!(
        s.get(&name("bin"), Selector::default())
            .unwrap()
            .value
            .expose_secret(),
        bytes
    );
    s.put(
        &name("text"),
        &value("é ✓".as_bytes()),
        &PutOptions::default(),
    )
    .unwrap();
    let stored = fake.latest("text").unwrap();
    assert_eq!(
        (stored.value.as_str(), stored.content_type.as_deref()),
        ("é ✓", Some(TEXT_CONTENT_TYPE))
    );
    // Another tool's value that looks like base64 stays text.
    fake.insert("foreign", "AP+AYQ==", Some("application/json"));
    let got = s.get(&name("foreign"), Selector::default()).unwrap();
    assert_eq!(got.value.expose_secret(), b"AP+AYQ==");
    // A value over Key Vault's 25 KiB, refused before anything is sent.
    let sent = fake.seen().len();
    let e = s
        .put(
            &name("big"),
            &value(&vec![b'x'; 25 * 1024 + 1]),
            &PutOptions::default(),
        )
        .unwrap_err();
    assert_eq!(e.kind(), "too_large", "{e}");
    assert_eq!(fake.seen().len(), sent);
}

#[test]
fn versions_follow_creation_order_with_tags_breaking_ties() {
    let fake = FakeKeyVault::new();
    fake.state().page_size = 2; // version lists span pages
    let mut s = store(&fake);
    let n = name("app/token");
    // All in the same second: the tresor-version tag orders them.
    for (i, v) in [b"one", b"two", b"thr", b"fou", b"fiv"].iter().enumerate() {
        let got = s.put(&n, &value(*v), &PutOptions::default()).unwrap();
        assert_eq!(got, i as u64 + 1);
    }
    // Another tool's write, a second later, without a tag: version 6.
    fake.state().now += 1;
    fake.insert("app-token", "six", None);
    for (number, bytes) in [(1, b"one"), (3, b"thr"), (6, b"six")] {
        let got = s.get(&n, Selector::Version(number)).unwrap();
        assert_eq!(got.value.expose_secret(), bytes, "version {number}");
    }
    assert_eq!(s.get(&n, Selector::default()).unwrap().version, 6);
    let previous = s.get(&n, Selector::Label(Label::Previous)).unwrap();
    assert_eq!(
        (previous.version, previous.value.expose_secret()),
        (5, &b"fiv"[..])
    );
    let history = s.history(&n).unwrap();
    let numbers: Vec<u64> = history.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
    assert_eq!(history[5].labels, [Label::Current]);
    assert_eq!(history[4].labels, [Label::Previous]);
    assert_eq!(history[0].created_at, 1_795_608_000_000);
    // tresor's next write counts every version.
    fake.state().now += 1;
    assert_eq!(
        s.put(&n, &value(b"sev"), &PutOptions::default()).unwrap(),
        7
    );
    let tag = fake.latest("app-token").unwrap().tags.unwrap()[VERSION_TAG].clone();
    assert_eq!(tag, "7");

    // A disabled version (Key Vault's UpdateSecretProperties) reads as not
    // found, and current/previous step over it.
    let latest_id = fake.latest("app-token").unwrap().id;
    let (client, rt) = sdk(&fake);
    let update = UpdateSecretPropertiesParameters {
        secret_attributes: Some(SecretAttributes {
            enabled: Some(false),
            ..SecretAttributes::default()
        }),
        ..UpdateSecretPropertiesParameters::default()
    };
    let updated = rt
        .block_on(client.update_secret_properties(
            "app-token",
            update.try_into().unwrap(),
            Some(SecretClientUpdateSecretPropertiesOptions {
                secret_version: Some(latest_id),
                ..SecretClientUpdateSecretPropertiesOptions::default()
            }),
        ))
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(updated.attributes.unwrap().enabled, Some(false));
    assert!(updated.value.is_none());
    let current = s.get(&n, Selector::default()).unwrap();
    assert_eq!(current.version, 6);
    assert_eq!(
        s.get(&n, Selector::Label(Label::Previous)).unwrap().version,
        5
    );
    let e = s.get(&n, Selector::Version(7)).unwrap_err();
    assert!(
        e.kind() == "not_found" && e.to_string().contains("disabled"),
        "{e}"
    );
    assert_eq!(
        s.get(&n, Selector::Version(0)).unwrap_err().kind(),
        "not_found"
    );
    assert_eq!(
        s.get(&n, Selector::Label(Label::Pending))
            .unwrap_err()
            .kind(),
        "unsupported"
    );
}

#[test]
fn metadata_is_the_current_versions_tags() {
    let fake = FakeKeyVault::new();
    let mut s = store(&fake);
    let n = name("svc/key");
    let with = |pairs: &[(&str, &str)]| PutOptions {
        metadata: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..PutOptions::default()
    };
    s.put(&n, &value(b"1"), &with(&[("owner", "ops"), ("env", "dev")]))
        .unwrap();
    s.put(&n, &value(b"2"), &with(&[("env", "prod")])).unwrap();
    let info = s.list("svc/").unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(
        info[0].metadata,
        Metadata::from([
            ("env".to_string(), "prod".to_string()),
            ("owner".to_string(), "ops".to_string()),
        ])
    );
    assert_eq!((info[0].current, info[0].latest), (2, 2));
    assert_eq!(info[0].updated_at, 1_795_608_000_000);
    let tags = fake.latest("svc-key").unwrap().tags.unwrap();
    assert_eq!(tags.len(), 3, "{tags:?}");
    let e = s
        .put(&n, &value(b"3"), &with(&[(VERSION_TAG, "99")]))
        .unwrap_err();
    assert_eq!(e.kind(), "malformed", "{e}");
    let many: Vec<(String, String)> = (0..13).map(|i| (format!("k{i}"), "v".into())).collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let e = s.put(&n, &value(b"3"), &with(&refs)).unwrap_err();
    assert!(e.to_string().contains("at most 14"), "{e}");
    assert_eq!(s.get(&n, Selector::default()).unwrap().version, 2);
}

#[test]
fn listing_follows_next_links_across_pages() {
    let fake = FakeKeyVault::new();
    fake.state().page_size = 2;
    let mut s = store(&fake);
    for i in 0..7 {
        s.put(
            &name(&format!("p/s{i}")),
            &value(b"v"),
            &PutOptions::default(),
        )
        .unwrap();
    }
    s.put(&name("q/other"), &value(b"v"), &PutOptions::default())
        .unwrap();
    let listed = s.list("p/").unwrap();
    assert_eq!(listed.len(), 7);
    assert!(
        fake.seen().iter().filter(|r| r.path == "/secrets").count() >= 4,
        "8 secrets in pages of 2"
    );
    s.delete(&name("p/s3"), DeleteMode::Soft).unwrap();
    assert_eq!(s.list("p/").unwrap().len(), 6);
}

#[test]
fn deleted_names_are_kept_until_recovered_or_purged() {
    let fake = FakeKeyVault::new();
    let mut s = store(&fake);
    let n = name("gone/soon");
    s.put(&n, &value(b"v1"), &PutOptions::default()).unwrap();
    s.put(&n, &value(b"v2"), &PutOptions::default()).unwrap();
    s.delete(&n, DeleteMode::Soft).unwrap();
    assert!(fake.state().deleted.contains_key("gone-soon"));
    // Key Vault's view, through the SDK: one deleted secret, recoverable.
    let (client, rt) = sdk(&fake);
    let deleted = rt
        .block_on(client.get_deleted_secret("gone-soon", None))
        .unwrap()
        .into_model()
        .unwrap();
    assert!(
        deleted
            .recovery_id
            .unwrap()
            .ends_with("/deletedsecrets/gone-soon")
    );
    assert!(deleted.value.is_none());
    let listed: Vec<_> = rt.block_on(async {
        use futures::StreamExt as _;
        client
            .list_deleted_secret_properties(None)
            .unwrap()
            .collect::<Vec<_>>()
            .await
    });
    assert_eq!(listed.len(), 1);
    assert!(listed[0].as_ref().unwrap().deleted_date.is_some());
    let e = s
        .put(&n, &value(b"v3"), &PutOptions::default())
        .unwrap_err();
    assert!(
        e.kind() == "validation" && e.to_string().contains("undelete or purge"),
        "{e}"
    );
    assert_eq!(
        s.delete(&n, DeleteMode::Soft).unwrap_err().kind(),
        "not_found"
    );
    s.undelete(&n).unwrap();
    let got = s.get(&n, Selector::default()).unwrap();
    assert_eq!((got.version, got.value.expose_secret()), (2, &b"v2"[..]));
    // Purging a soft-deleted secret purges it directly.
    s.delete(&n, DeleteMode::Soft).unwrap();
    s.delete(&n, DeleteMode::Purge).unwrap();
    assert!(fake.state().deleted.is_empty() && fake.state().secrets.is_empty());
    assert_eq!(s.undelete(&n).unwrap_err().kind(), "not_found");
    assert_eq!(
        s.delete(&n, DeleteMode::Purge).unwrap_err().kind(),
        "not_found"
    );
    assert_eq!(
        s.put(&n, &value(b"new"), &PutOptions::default()).unwrap(),
        1
    );
}

#[test]
fn throttling_and_server_errors_are_retried_honouring_retry_after() {
    let fake = FakeKeyVault::new();
    let mut s = store(&fake);
    let n = name("r/t");
    s.put(&n, &value(b"v"), &PutOptions::default()).unwrap();
    fake.fault(Fault::Status(429, Some(1), "Too many requests"));
    fake.fault(Fault::Status(503, None, "Service unavailable"));
    fake.fault(Fault::Reset);
    let before = fake.seen().len();
    let t0 = Instant::now();
    let got = s.get(&n, Selector::default()).unwrap();
    assert_eq!(got.value.expose_secret(), b"v");
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 honoured"
    );
    let statuses: Vec<u16> = fake.seen()[before..].iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [429, 503, 0, 200, 200],
        "3 retries, then list and get"
    );
}

#[test]
fn retries_are_bounded() {
    let fake = FakeKeyVault::new();
    let mut o = options(&fake, Arc::default());
    o.retries = 2;
    let mut s = AzureKeyVault::connect(o).unwrap();
    s.put(&name("r/b"), &value(b"v"), &PutOptions::default())
        .unwrap();
    for _ in 0..5 {
        fake.fault(Fault::Status(500, None, "Internal error"));
    }
    let before = fake.seen().len();
    let e = s.get(&name("r/b"), Selector::default()).unwrap_err();
    assert_eq!(e.kind(), "unavailable", "{e}");
    assert!(e.to_string().contains("HTTP 500"), "{e}");
    assert_eq!(fake.seen().len() - before, 3, "1 attempt + 2 retries");
}

#[test]
fn a_hanging_vault_is_unavailable_within_the_timeout() {
    let fake = FakeKeyVault::new();
    let mut o = options(&fake, Arc::default());
    o.timeout = Duration::from_millis(400);
    let mut s = AzureKeyVault::connect(o).unwrap();
    s.put(&name("h/x"), &value(b"v"), &PutOptions::default())
        .unwrap();
    fake.fault(Fault::Hang);
    let t0 = Instant::now();
    let e = s.get(&name("h/x"), Selector::default()).unwrap_err();
    assert_eq!(e.kind(), "unavailable", "{e}");
    assert!(e.to_string().contains("no answer"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // The store still works afterwards.
    assert_eq!(
        s.get(&name("h/x"), Selector::default())
            .unwrap()
            .value
            .expose_secret(),
        b"v"
    );
    fake.fault(Fault::Hang);
    let health = s.health();
    assert!(!health.reachable, "{health:?}");
    assert!(s.health().reachable);
}

/// The SDK's own HTTP client (reqwest) on the store's runtime, against a
/// local port that accepts connections and never answers (not even the TLS
/// handshake), and against a closed port.
#[test]
fn a_dead_server_is_unavailable_within_the_timeout_over_real_http() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = format!("https://{}", listener.local_addr().unwrap());
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("https://{}", l.local_addr().unwrap())
    };
    for (url, says) in [(silent, "no answer"), (closed, "refused")] {
        let mut o = AzureOptions::new(
            &url,
            AzureCredential::Custom(Arc::new(FakeCredential::default())),
        );
        o.timeout = Duration::from_millis(800);
        o.retries = 1;
        let mut s = AzureKeyVault::connect(o).unwrap();
        let t0 = Instant::now();
        let e = s
            .get(&name("dead/server"), Selector::default())
            .unwrap_err();
        assert_eq!(e.kind(), "unavailable", "{url}: {e}");
        assert!(e.to_string().contains(says), "{url}: {e}");
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "{url}: {:?}",
            t0.elapsed()
        );
        let h = s.health();
        assert!(!h.reachable && !h.authenticated, "{url}: {h:?}");
    }
    drop(listener);
}

#[test]
fn a_call_from_inside_an_async_runtime_is_refused_not_a_panic() {
    let fake = FakeKeyVault::new();
    let mut s = store(&fake);
    s.put(&name("rt/x"), &value(b"v"), &PutOptions::default())
        .unwrap();
    let outer = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let e = outer
        .block_on(async { s.get(&name("rt/x"), Selector::default()) })
        .unwrap_err();
    assert!(
        e.kind() == "unavailable" && e.to_string().contains("spawn_blocking"),
        "{e}"
    );
    let got = std::thread::scope(|t| {
        t.spawn(|| s.get(&name("rt/x"), Selector::default()))
            .join()
            .unwrap()
    });
    assert_eq!(got.unwrap().value.expose_secret(), b"v");
    // Made and dropped inside a task: neither panics.
    outer.block_on(async {
        let s = store(&fake);
        drop(s);
    });
}

/// Captures every tracing event and span field as text.
mod capture {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    #[derive(Clone, Default)]
    pub struct Capture(pub Arc<Mutex<String>>);

    struct Text<'a>(&'a mut String);

    impl Visit for Text<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!("{}={value:?} ", field.name()));
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &Attributes<'_>) -> Id {
            span.record(&mut Text(&mut self.0.lock().unwrap()));
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, values: &Record<'_>) {
            values.record(&mut Text(&mut self.0.lock().unwrap()));
        }
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut text = self.0.lock().unwrap();
            text.push_str(event.metadata().target());
            text.push(' ');
            event.record(&mut Text(&mut text));
            text.push('\n');
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}

#[test]
fn no_value_reaches_an_error_or_a_log_line() {
    const CANARY: &str = "tresor-azure-canary-93b1";
    let fake = FakeKeyVault::new();
    let capture = capture::Capture::default();
    let mut errors: Vec<Error> = Vec::new();
    tracing::subscriber::with_default(capture.clone(), || {
        let mut o = options(&fake, Arc::default());
        o.retries = 1;
        let mut s = AzureKeyVault::connect(o).unwrap();
        let n = name("leak/check");
        s.put(&n, &value(CANARY.as_bytes()), &PutOptions::default())
            .unwrap();
        s.get(&n, Selector::default()).unwrap();
        s.put(&n, &value(&[0xff, 0xfe]), &PutOptions::default())
            .unwrap();
        s.get(&n, Selector::Version(1)).unwrap();
        // Servers that echo the value in their error messages.
        for status in [400, 500, 403, 409] {
            for _ in 0..2 {
                fake.fault(Fault::OnWrite(status, CANARY));
            }
            errors.extend(
                s.put(&n, &value(CANARY.as_bytes()), &PutOptions::default())
                    .err(),
            );
            fake.state().faults.clear();
            for _ in 0..2 {
                fake.fault(Fault::Status(status, Some(0), CANARY));
            }
            errors.extend(s.get(&n, Selector::default()).err());
            fake.state().faults.clear();
        }
        errors.extend(
            s.put(
                &n,
                &value(CANARY.as_bytes()),
                &PutOptions {
                    expect_version: Some(1),
                    ..PutOptions::default()
                },
            )
            .err(),
        );
        s.delete(&n, DeleteMode::Purge).unwrap();
    });
    assert!(errors.len() >= 8, "{errors:?}");
    for e in &errors {
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(CANARY), "{shown}");
        assert!(
            !shown.contains("/w=="),
            "the binary value's base64: {shown}"
        );
    }
    let logged = capture.0.lock().unwrap().clone();
    assert!(
        logged.contains("Request") && logged.contains("REDACTED"),
        "the capture saw the SDK's request log: {logged}"
    );
    assert!(!logged.contains(CANARY), "a log line holds the value");
    assert!(!logged.contains(TOKEN), "a log line holds the token");
}

#[test]
fn health_reports_reachable_and_authenticated() {
    let fake = FakeKeyVault::new();
    let mut s = store(&fake);
    let h = s.health();
    assert!(h.reachable && h.authenticated, "{h:?}");
    assert!(h.detail.contains(VAULT), "{h:?}");
    fake.fault(Fault::Status(403, None, "Caller is not authorized"));
    let h = s.health();
    assert!(h.reachable && !h.authenticated, "{h:?}");
}
