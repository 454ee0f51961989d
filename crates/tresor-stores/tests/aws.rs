//! The AWS Secrets Manager store against a real moto server (feature
//! `service-tests`; scripts/test runs it under `scripts/services exec`).
//!
//! Every test works under a name prefix of its own on the one moto server
//! from TRESOR_TEST_AWS_ENDPOINT (credentials and region from the AWS_*
//! variables scripts/services exports). The tests fail, never skip, when the
//! endpoint is missing.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::primitives::Blob;
use tresor_core::{
    DeleteMode, Label, Metadata, PutOptions, SecretName, SecretValue, Selector, Store,
};
use tresor_stores::StoreOptions;
use tresor_stores::aws::{Aws, AwsOptions};
use tresor_stores::conformance::{Fixture, seed_by_put};

fn endpoint() -> String {
    std::env::var("TRESOR_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "TRESOR_TEST_AWS_ENDPOINT is not set: run these tests under scripts/services exec \
             (cargo test -p tresor-stores --features service-tests --test aws)"
        )
    })
}

/// A prefix no other test (or earlier run on the same server) uses.
fn fresh_prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}-{}/",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

fn store_under(prefix: &str) -> Aws {
    Aws::connect(AwsOptions {
        name: "aws-test".to_string(),
        endpoint: Some(endpoint()),
        prefix: prefix.to_string(),
        ..AwsOptions::default()
    })
    .unwrap()
}

struct AwsFixture {
    prefix: Option<String>,
}

impl Fixture for AwsFixture {
    fn store(&mut self, seed: &[(SecretName, SecretValue)]) -> Box<dyn Store> {
        let prefix = fresh_prefix();
        let mut store = store_under(&prefix);
        seed_by_put(&mut store, seed);
        self.prefix = Some(prefix);
        Box::new(store)
    }

    fn second_handle(&mut self) -> Option<Box<dyn Store>> {
        Some(Box::new(store_under(self.prefix.as_ref()?)))
    }
}

mod conformance {
    tresor_stores::conformance_tests!(super::AwsFixture { prefix: None });
}

fn name(s: &str) -> SecretName {
    SecretName::new(s).unwrap()
}

fn value(b: &[u8]) -> SecretValue {
    SecretValue::copy_from(b)
}

/// The raw SDK client on the same server, for setup and for checking what
/// the store wrote.
fn raw(store: &Aws) -> aws_sdk_secretsmanager::Client {
    store.client().clone()
}

#[test]
fn staging_labels_map_to_current_previous_and_pending() {
    let mut store = store_under(&fresh_prefix());
    let n = name("db/password");
    assert_eq!(
        store
            .put(&n, &value(b"one"), &PutOptions::default())
            .unwrap(),
        1
    );
    let staged = PutOptions {
        stage: true,
        ..PutOptions::default()
    };
    assert_eq!(store.put(&n, &value(b"two"), &staged).unwrap(), 2);
    let current = store.get(&n, Selector::default()).unwrap();
    assert_eq!(
        (current.version, current.value.expose_secret()),
        (1, &b"one"[..])
    );
    let pending = store.get(&n, Selector::Label(Label::Pending)).unwrap();
    assert_eq!(
        (pending.version, pending.value.expose_secret()),
        (2, &b"two"[..])
    );
    let listed = store.list("db/").unwrap();
    assert_eq!(
        (listed[0].current, listed[0].latest, listed[0].pending),
        (1, 2, Some(2))
    );

    // Promote: AWSCURRENT moves to 2, Secrets Manager moves AWSPREVIOUS to 1.
    store.set_label(&n, Label::Current, 2).unwrap();
    let current = store.get(&n, Selector::default()).unwrap();
    assert_eq!(
        (current.version, current.value.expose_secret()),
        (2, &b"two"[..])
    );
    let previous = store.get(&n, Selector::Label(Label::Previous)).unwrap();
    assert_eq!(previous.version, 1);
    let history = store.history(&n).unwrap();
    let labels: Vec<_> = history
        .iter()
        .map(|v| (v.version, v.labels.contains(&Label::Current)))
        .collect();
    assert_eq!(labels, [(1, false), (2, true)]);
    assert!(history[0].labels.contains(&Label::Previous), "{history:?}");

    // The ids are tresor's tokens, and AWS's own labels say the same.
    let out = store
        .block_on(
            raw(&store)
                .describe_secret()
                .secret_id(format!("{}db/password", store.prefix()))
                .send(),
        )
        .unwrap();
    let stages = out.version_ids_to_stages().unwrap();
    let v2 = &stages["tresor-version-00000000000000000002"];
    assert!(v2.contains(&"AWSCURRENT".to_string()), "{stages:?}");

    let missing = store.set_label(&n, Label::Current, 9).unwrap_err();
    assert_eq!(missing.kind(), "not_found", "{missing}");
    let no_pending = store
        .get(&name("db/other"), Selector::Label(Label::Pending))
        .unwrap_err();
    assert_eq!(no_pending.kind(), "not_found");
    let staged_new = store
        .put(&name("db/new"), &value(b"x"), &staged)
        .unwrap_err();
    assert_eq!(staged_new.kind(), "not_found", "{staged_new}");
}

#[test]
fn text_is_secret_string_and_bytes_are_secret_binary() {
    let mut store = store_under(&fresh_prefix());
    let client = raw(&store);
    let bytes: Vec<u8> = vec![0, 0xff, 0xfe, b'a', 0x80];
    store
        .put(&name("bin"), &value(&bytes), &PutOptions::default())
        .unwrap();
    store
        .put(
            &name("text"),
            &value("héllo".as_bytes()),
            &PutOptions::default(),
        )
        .unwrap();
    let bin = store
        .block_on(
            client
                .get_secret_value()
                .secret_id(format!("{}bin", store.prefix()))
                .send(),
        )
        .unwrap();
    assert_eq!(
        (bin.secret_string(), bin.secret_binary().map(|b| b.as_ref())),
        (None, Some(&bytes[..]))
    );
    let text = store
        .block_on(
            client
                .get_secret_value()
                .secret_id(format!("{}text", store.prefix()))
                .send(),
        )
        .unwrap();
    assert_eq!(text.secret_string(), Some("héllo"));
    assert_eq!(
        store
            .get(&name("bin"), Selector::default())
            .unwrap()
            .value
            .expose_secret(),
        bytes
    );

    // A binary secret another tool wrote reads back byte for byte.
    store
        .block_on(
            client
                .create_secret()
                .name(format!("{}foreign-bin", store.prefix()))
                .secret_binary(Blob::new(vec![1, 2, 3, 0]))
                .send(),
        )
        .unwrap();
    let got = store
        .get(&name("foreign-bin"), Selector::default())
        .unwrap();
    assert_eq!(
        (got.version, got.value.expose_secret()),
        (1, &[1u8, 2, 3, 0][..])
    );

    let too_big = store
        .put(
            &name("big"),
            &value(&vec![b'x'; 65_537]),
            &PutOptions::default(),
        )
        .unwrap_err();
    assert_eq!(too_big.kind(), "too_large", "{too_big}");
}

#[test]
fn versions_written_by_other_tools_are_numbered_in_order() {
    let mut store = store_under(&fresh_prefix());
    let client = raw(&store);
    let id = format!("{}legacy", store.prefix());
    store
        .block_on(
            client
                .create_secret()
                .name(&id)
                .secret_string("v-one")
                .send(),
        )
        .unwrap();
    store
        .block_on(
            client
                .put_secret_value()
                .secret_id(&id)
                .secret_string("v-two")
                .send(),
        )
        .unwrap();
    let n = name("legacy");
    let got = store.get(&n, Selector::default()).unwrap();
    assert_eq!((got.version, got.value.expose_secret()), (2, &b"v-two"[..]));
    assert_eq!(
        store
            .get(&n, Selector::Version(1))
            .unwrap()
            .value
            .expose_secret(),
        b"v-one"
    );
    // tresor's next write continues the numbering.
    assert_eq!(
        store
            .put(&n, &value(b"v-three"), &PutOptions::default())
            .unwrap(),
        3
    );
    let cas = PutOptions {
        expect_version: Some(3),
        ..PutOptions::default()
    };
    assert_eq!(store.put(&n, &value(b"v-four"), &cas).unwrap(), 4);
    let numbers: Vec<u64> = store
        .history(&n)
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    assert_eq!(store.list("leg").unwrap()[0].current, 4);
}

#[test]
fn listing_pages_through_more_than_100_secrets() {
    let prefix = fresh_prefix();
    let mut store = store_under(&prefix);
    let client = raw(&store);
    for i in 0..105 {
        store
            .block_on(
                client
                    .create_secret()
                    .name(format!("{prefix}many/s{i:03}"))
                    .secret_string("x")
                    .send(),
            )
            .unwrap();
    }
    store
        .put(&name("other/one"), &value(b"x"), &PutOptions::default())
        .unwrap();
    let listed = store.list("many/").unwrap();
    assert_eq!(listed.len(), 105);
    assert_eq!(listed[0].name.as_str(), "many/s000");
    assert_eq!(listed[104].name.as_str(), "many/s104");
    assert_eq!(store.list("").unwrap().len(), 106);
    // The service's name filter ignores case; tresor's prefix does not.
    assert!(store.list("MANY/").unwrap().is_empty());
}

#[test]
fn metadata_is_tags() {
    let mut store = store_under(&fresh_prefix());
    let n = name("svc/token");
    let with = |k: &str, v: &str| PutOptions {
        metadata: Metadata::from([(k.to_string(), v.to_string())]),
        ..PutOptions::default()
    };
    store.put(&n, &value(b"a"), &with("owner", "ops")).unwrap();
    store
        .put(&n, &value(b"b"), &with("url", "https://example.invalid"))
        .unwrap();
    let info = &store.list("svc/").unwrap()[0];
    assert_eq!(info.metadata.get("owner").map(String::as_str), Some("ops"));
    assert_eq!(info.metadata.len(), 2, "{:?}", info.metadata);
    for (k, v) in [("aws:reserved", "x"), ("long", &"v".repeat(257)[..])] {
        let e = store.put(&n, &value(b"c"), &with(k, v)).unwrap_err();
        assert_eq!(e.kind(), "malformed", "{e}");
    }
    assert_eq!(
        store
            .get(&n, Selector::default())
            .unwrap()
            .value
            .expose_secret(),
        b"b"
    );
}

#[test]
fn a_secret_scheduled_for_deletion_hides_refuses_writes_and_comes_back() {
    let mut store = store_under(&fresh_prefix());
    let n = name("soft/x");
    let canary = b"tresor-aws-canary-7c1d";
    store
        .put(&n, &value(canary), &PutOptions::default())
        .unwrap();
    store.delete(&n, DeleteMode::Soft).unwrap();
    let e = store.get(&n, Selector::default()).unwrap_err();
    assert_eq!(e.kind(), "not_found", "{e}");
    assert!(e.to_string().contains("deleted"), "{e}");
    let e = store.delete(&n, DeleteMode::Soft).unwrap_err();
    assert_eq!(e.kind(), "not_found", "{e}");
    let e = store
        .put(&n, &value(canary), &PutOptions::default())
        .unwrap_err();
    assert_eq!(e.kind(), "validation", "{e}");
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(!shown.contains("tresor-aws-canary"), "{shown}");
    }
    store.undelete(&n).unwrap();
    assert_eq!(
        store
            .get(&n, Selector::default())
            .unwrap()
            .value
            .expose_secret(),
        canary
    );
    store.delete(&n, DeleteMode::Soft).unwrap();
    store.delete(&n, DeleteMode::Purge).unwrap();
    assert_eq!(store.undelete(&n).unwrap_err().kind(), "not_found");
}

#[test]
fn from_options_reaches_moto() {
    let prefix = fresh_prefix();
    let options = StoreOptions::new("from-toml")
        .with("endpoint", endpoint())
        .with("region", "us-east-1")
        .with("prefix", prefix.as_str())
        .with("timeout", "2s")
        .with("connect_timeout", "1s")
        .with("max_attempts", "2")
        .with("recovery_window_days", "7");
    let mut store = Aws::from_options(&options).unwrap();
    assert_eq!(store.name(), "from-toml");
    store
        .put(&name("a"), &value(b"x"), &PutOptions::default())
        .unwrap();
    let health = store.health();
    assert!(
        health.reachable && health.authenticated,
        "{}",
        health.detail
    );
    let typo = StoreOptions::new("t")
        .with("endpoint", endpoint())
        .with("prefx", "p/");
    let e = Aws::from_options(&typo).unwrap_err().to_string();
    assert!(e.contains("prefx"), "{e}");
}

#[test]
fn a_closed_port_is_unavailable_fast() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut store = Aws::connect(AwsOptions {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: Some("us-east-1".to_string()),
        ..AwsOptions::default()
    })
    .unwrap();
    let t0 = Instant::now();
    let err = store.get(&name("a/b"), Selector::default()).unwrap_err();
    assert_eq!(err.kind(), "unavailable", "{err}");
    eprintln!("closed port: {err} after {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let err = store
        .put(
            &name("a/b"),
            &value(b"tresor-dead-canary"),
            &PutOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), "unavailable", "{err}");
    assert!(!format!("{err} {err:?}").contains("tresor-dead-canary"));
    let health = store.health();
    assert!(!health.reachable, "{}", health.detail);
}

#[test]
fn a_silent_server_times_out() {
    // Accepts connections (the kernel's backlog does) and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut store = Aws::connect(AwsOptions {
        endpoint: Some(format!("http://{}", listener.local_addr().unwrap())),
        region: Some("us-east-1".to_string()),
        timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        max_attempts: 2,
        ..AwsOptions::default()
    })
    .unwrap();
    let t0 = Instant::now();
    let err = store.get(&name("a/b"), Selector::default()).unwrap_err();
    let took = t0.elapsed();
    assert_eq!(err.kind(), "unavailable", "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    // 2 attempts of at most 600 ms plus backoff, well under the 3.2 s bound.
    eprintln!("silent server: {err} after {took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    drop(listener);
}
