use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::*;

fn name(s: &str) -> SecretName {
    SecretName::new(s).unwrap()
}

#[test]
fn version_tokens_carry_the_number() {
    let t = version_token(7);
    assert_eq!(t, "tresor-version-00000000000000000007");
    assert!((32..=64).contains(&t.len()), "ClientRequestToken length");
    assert_eq!(token_number(&t), Some(7));
    assert_eq!(token_number(&version_token(u64::MAX)), Some(u64::MAX));
    for foreign in [
        "EXAMPLE1-90ab-cdef-fedc-ba987SECRET1",
        "tresor-version-0000000000000000000x",
        "tresor-version-00000000000000000000",
        "tresor-version-7",
    ] {
        assert_eq!(token_number(foreign), None, "{foreign}");
    }
}

#[test]
fn foreign_versions_number_after_the_one_before() {
    let v = |id: &str, t: i64| (id.to_string(), t, Vec::new());
    let numbered = number_versions(vec![
        v(&version_token(2), 20),
        v("uuid-b", 30),
        v("uuid-a", 10),
        v(&version_token(4), 40),
        v("uuid-c", 40),
    ]);
    let got: Vec<(&str, u64)> = numbered.iter().map(|v| (v.id.as_str(), v.number)).collect();
    assert_eq!(
        got,
        [
            ("uuid-a", 1),
            (version_token(2).as_str(), 2),
            ("uuid-b", 3),
            (version_token(4).as_str(), 4),
            ("uuid-c", 5),
        ]
    );
}

#[test]
fn options_are_checked_before_any_call() {
    let bad = |o: AwsOptions| Aws::connect(o).unwrap_err().kind();
    let base = || AwsOptions {
        region: Some("us-east-1".to_string()),
        ..AwsOptions::default()
    };
    assert_eq!(
        bad(AwsOptions {
            endpoint: Some("127.0.0.1:5000".into()),
            ..base()
        }),
        "invalid_option"
    );
    // Plain http:// to another machine needs insecure_http.
    assert_eq!(
        bad(AwsOptions {
            endpoint: Some("http://sm.example:5000".into()),
            ..base()
        }),
        "invalid_option"
    );
    Aws::connect(AwsOptions {
        endpoint: Some("http://sm.example:5000".into()),
        insecure_http: true,
        ..base()
    })
    .unwrap();
    assert_eq!(
        bad(AwsOptions {
            max_attempts: 0,
            ..base()
        }),
        "invalid_option"
    );
    assert_eq!(
        bad(AwsOptions {
            recovery_window_days: 3,
            ..base()
        }),
        "invalid_option"
    );
    assert_eq!(
        bad(AwsOptions {
            prefix: "team space/".into(),
            ..base()
        }),
        "invalid_option"
    );
    let store = Aws::connect(AwsOptions {
        prefix: "team/".into(),
        ..base()
    })
    .unwrap();
    assert_eq!(store.id(&name("a/b")), "team/a/b");
    assert!(format!("{store:?}").contains("us-east-1"));
}

#[test]
fn from_options_reads_every_key_and_rejects_the_rest() {
    let o = StoreOptions::new("team")
        .with("region", "eu-west-1")
        .with("endpoint", "http://127.0.0.1:1")
        .with("prefix", "p/")
        .with("connect_timeout", "500ms")
        .with("timeout", "2s")
        .with("max_attempts", "4")
        .with("recovery_window_days", "7");
    let store = Aws::from_options(&o).unwrap();
    assert_eq!(
        (store.name(), store.region(), store.prefix()),
        ("team", "eu-west-1", "p/")
    );
    assert!(
        store
            .attempts
            .contains("4 attempts within 2000 ms, 500 ms to connect"),
        "{}",
        store.attempts
    );
    let o = StoreOptions::new("team")
        .with("region", "eu-west-1")
        .with("timeout", "soon-secret");
    let e = Aws::from_options(&o).unwrap_err().to_string();
    assert!(e.contains("timeout") && !e.contains("soon-secret"), "{e}");
    let o = StoreOptions::new("team")
        .with("region", "eu-west-1")
        .with("endpont", "http://x");
    assert!(
        Aws::from_options(&o)
            .unwrap_err()
            .to_string()
            .contains("endpont")
    );
}

/// A fake Secrets Manager: answers each request (one per connection)
/// with `answer(operation, body)`; counts requests per operation.
struct Fake {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

type Answer = Box<dyn FnMut(&str, &str) -> (u16, String) + Send>;

fn fake(mut answer: Answer) -> Fake {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream);
            let (mut length, mut target) = (0, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("x-amz-target:") {
                    target = line.trim().rsplit('.').next().unwrap_or("").to_string();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            log.lock().unwrap().push(target.clone());
            let (status, reply) = answer(&target, &String::from_utf8_lossy(&body));
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.1\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    Fake { url, seen }
}

impl Fake {
    fn store(&self) -> Aws {
        let credentials = aws_sdk_secretsmanager::config::Credentials::new(
            "AKIDTEST",
            "test-secret",
            None,
            None,
            "test",
        );
        Aws::connect_with(
            AwsOptions {
                region: Some("us-east-1".to_string()),
                endpoint: Some(self.url.clone()),
                timeout: Duration::from_secs(2),
                connect_timeout: Duration::from_millis(500),
                ..AwsOptions::default()
            },
            Some(credentials),
        )
        .unwrap()
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn error(code: &str, message: &str) -> (u16, String) {
    (
        400,
        format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
    )
}

const CURRENT_V3: &str = r#"{"Name":"a/b","VersionId":"tresor-version-00000000000000000003","SecretString":"v","VersionStages":["AWSCURRENT"]}"#;

#[test]
fn reads_retry_on_5xx_and_throttling() {
    let mut script = vec![
        (
            500,
            r#"{"__type":"InternalServiceError","message":"boom"}"#.to_string(),
        ),
        error("ThrottlingException", "slow down"),
        (200, CURRENT_V3.to_string()),
    ]
    .into_iter();
    let f = fake(Box::new(move |_, _| script.next().unwrap()));
    let got = f.store().get(&name("a/b"), Selector::default()).unwrap();
    assert_eq!((got.version, got.value.expose_secret()), (3, &b"v"[..]));
    assert_eq!(f.seen().len(), 3);

    let f = fake(Box::new(|_, _| (503, "{}".to_string())));
    let e = f
        .store()
        .get(&name("a/b"), Selector::default())
        .unwrap_err();
    assert_eq!(e.kind(), "unavailable", "{e}");
    assert_eq!(f.seen().len(), 3, "bounded by max_attempts");
}

#[test]
fn writes_retry_safely_under_their_token() {
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let kept = tokens.clone();
    let described = r#"{"Name":"a/b","VersionIdsToStages":{"tresor-version-00000000000000000001":["AWSCURRENT"]}}"#;
    let mut puts = 0;
    let f = fake(Box::new(move |op, body| match op {
        "DescribeSecret" => (200, described.to_string()),
        "PutSecretValue" => {
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            kept.lock()
                .unwrap()
                .push(json["ClientRequestToken"].as_str().unwrap().to_string());
            puts += 1;
            if puts == 1 {
                (500, r#"{"__type":"InternalServiceError"}"#.to_string())
            } else {
                (200, r#"{"VersionId":"tresor-version-00000000000000000002","VersionStages":["AWSCURRENT"]}"#.to_string())
            }
        }
        _ => error("InvalidRequestException", op),
    }));
    let v = f
        .store()
        .put(
            &name("a/b"),
            &SecretValue::copy_from(b"x"),
            &PutOptions::default(),
        )
        .unwrap();
    assert_eq!(v, 2);
    let tokens = tokens.lock().unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(tokens.iter().all(|t| t == &version_token(2)), "{tokens:?}");
}

#[test]
fn a_write_that_collides_counts_unlabelled_versions_and_goes_on() {
    // Version 3 exists without a label (another tool removed it), so
    // DescribeSecret's map ends at 2 and the first write collides.
    let described = r#"{"Name":"a/b","VersionIdsToStages":{"tresor-version-00000000000000000002":["AWSCURRENT"]}}"#;
    let listed = format!(
        r#"{{"Versions":[{{"VersionId":"{}","VersionStages":[]}},{{"VersionId":"{}","VersionStages":["AWSCURRENT"]}},{{"VersionId":"{}","VersionStages":[]}}]}}"#,
        version_token(1),
        version_token(2),
        version_token(3)
    );
    let f = fake(Box::new(move |op, body| match op {
        "DescribeSecret" => (200, described.to_string()),
        "ListSecretVersionIds" => (200, listed.clone()),
        "PutSecretValue" if body.contains(&version_token(3)) => error(EXISTS, "token in use"),
        "PutSecretValue" => (200, r#"{"VersionStages":["AWSCURRENT"]}"#.to_string()),
        _ => error("InvalidRequestException", op),
    }));
    let v = f
        .store()
        .put(
            &name("a/b"),
            &SecretValue::copy_from(b"x"),
            &PutOptions::default(),
        )
        .unwrap();
    assert_eq!(v, 4);
    assert_eq!(
        f.seen(),
        [
            "DescribeSecret",
            "PutSecretValue",
            "DescribeSecret",
            "ListSecretVersionIds",
            "PutSecretValue"
        ]
    );
}

#[test]
fn a_write_error_never_shows_the_service_message() {
    // Secrets Manager's validation messages can quote the input.
    let f = fake(Box::new(|op, _| match op {
        "DescribeSecret" => error(NOT_FOUND, "no such secret"),
        _ => error("ValidationException", "Value 'tresor-fake-canary' is bad"),
    }));
    let e = f
        .store()
        .put(
            &name("a/b"),
            &SecretValue::copy_from(b"tresor-fake-canary"),
            &PutOptions::default(),
        )
        .unwrap_err();
    assert_eq!(e.kind(), "validation");
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("ValidationException"), "{shown}");
    assert!(!shown.contains("tresor-fake-canary"), "{shown}");
}

#[test]
fn service_errors_map_to_tresor_errors() {
    let f = fake(Box::new(|op, _| match op {
        "GetSecretValue" => error("AccessDeniedException", "not allowed"),
        "DeleteSecret" => error(
            INVALID_REQUEST,
            "You tried to perform the operation on a secret that's currently marked deleted.",
        ),
        _ => error("ExpiredTokenException", "expired"),
    }));
    let mut store = f.store();
    let e = store.get(&name("a/b"), Selector::default()).unwrap_err();
    assert_eq!(e.kind(), "auth", "{e}");
    assert!(
        e.to_string().contains("AccessDeniedException: not allowed"),
        "{e}"
    );
    let e = store.delete(&name("a/b"), DeleteMode::Soft).unwrap_err();
    assert_eq!(e.kind(), "not_found", "{e}");
    let h = store.health();
    assert!(h.reachable && !h.authenticated, "{}", h.detail);
    assert!(
        h.detail
            .contains("permission denied (ExpiredTokenException"),
        "{}",
        h.detail
    );
}

#[test]
fn version_listings_follow_next_tokens() {
    let pages = AtomicUsize::new(0);
    let f = fake(Box::new(move |op, body| match op {
        "DescribeSecret" => (200, r#"{"Name":"a/b"}"#.to_string()),
        "ListSecretVersionIds" => {
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            let page = pages.fetch_add(1, Ordering::SeqCst);
            assert_eq!(
                json["NextToken"].as_str(),
                ["", "p2"].get(page).copied().filter(|t| !t.is_empty())
            );
            let (ids, next) = if page == 0 {
                (1..=100, r#","NextToken":"p2""#)
            } else {
                (101..=102, "")
            };
            let versions: Vec<String> = ids
                .map(|n| {
                    format!(
                        r#"{{"VersionId":"{}","VersionStages":[]}}"#,
                        version_token(n)
                    )
                })
                .collect();
            (
                200,
                format!(r#"{{"Versions":[{}]{next}}}"#, versions.join(",")),
            )
        }
        _ => error("InvalidRequestException", op),
    }));
    let history = f.store().history(&name("a/b")).unwrap();
    assert_eq!(history.len(), 102);
    assert_eq!(history.last().unwrap().version, 102);
}

#[test]
fn a_silent_server_is_unavailable_within_the_bound() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let f = Fake {
        url: format!("http://{}", listener.local_addr().unwrap()),
        seen: Arc::default(),
    };
    let t0 = std::time::Instant::now();
    let e = f
        .store()
        .get(&name("a/b"), Selector::default())
        .unwrap_err();
    assert_eq!(e.kind(), "unavailable", "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
    // `timeout` (2 s) bounds every attempt and pause together.
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    drop(listener);
}

/// Called from a task of another tokio runtime, the store refuses instead of
/// panicking in (or blocking) that runtime; before, tokio panicked.
#[test]
fn a_call_from_inside_a_runtime_is_refused() {
    let f = fake(Box::new(|_, _| (200, "{}".to_string())));
    let mut store = f.store();
    let outer = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let e = outer.block_on(async { store.get(&name("a/b"), Selector::default()) });
    let e = e.unwrap_err();
    assert_eq!(e.kind(), "unavailable", "{e}");
    assert!(e.to_string().contains("spawn_blocking"), "{e}");
    assert!(f.seen().is_empty(), "nothing was sent: {:?}", f.seen());
    // And it still works from a plain thread, and drops inside a runtime.
    let h = store.health();
    assert!(h.reachable, "{}", h.detail);
    outer.block_on(async move { drop(store) });
}
