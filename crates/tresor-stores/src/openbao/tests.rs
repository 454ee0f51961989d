use super::*;
use crate::remote::retry::ATTEMPTS;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn name(s: &str) -> SecretName {
    SecretName::new(s).unwrap()
}

#[test]
fn from_options_reads_every_key_and_rejects_the_rest() {
    use crate::StoreOptions;
    let base = || StoreOptions::new("team").with("address", "https://bao.example:8200/");
    let o = OpenBaoOptions::from_options(
        &base()
            .with("role_id", "r")
            .with("secret_id", "s3cr3t-id")
            .with("approle_mount", "ci")
            .with("mount", "kv")
            .with("namespace", "ns1")
            .with("ca_file", "/etc/ca.pem")
            .with("timeout", "1500ms")
            .with("connect_timeout", "2"),
    )
    .unwrap();
    assert!(
        matches!(&o.auth, Auth::AppRole { mount, role_id, .. } if mount == "ci" && role_id == "r")
    );
    assert_eq!(
        (o.mount.as_str(), o.namespace.as_deref()),
        ("kv", Some("ns1"))
    );
    assert_eq!(o.timeout, Duration::from_millis(1500));
    assert_eq!(o.connect_timeout, Duration::from_secs(2));
    let err = |opts: StoreOptions| OpenBaoOptions::from_options(&opts).unwrap_err().to_string();
    assert!(err(base().with("token", "t").with("adress", "x")).contains("'adress'"));
    assert!(err(base().with("token", "t").with("role_id", "r")).contains("not both"));
    assert!(err(base().with("role_id", "r")).contains("'secret_id'"));
    assert!(err(base().with("token", "t").with("approle_mount", "m")).contains("approle_mount"));
    assert!(err(StoreOptions::new("team").with("token", "t")).contains("'address'"));
    // The environment's token only when the config asks for it.
    assert!(err(base()).contains("token_from_env = true"));
    assert!(err(base().with("token_from_env", "true").with("token", "t")).contains("no 'token'"));
    // Plain http:// only to this machine, unless insecure_http = true.
    let at = |address: &str| {
        StoreOptions::new("team")
            .with("address", address)
            .with("token", "t")
    };
    assert!(err(at("http://bao.example:8200")).contains("insecure_http = true"));
    let o =
        OpenBaoOptions::from_options(&at("http://bao.example:8200").with("insecure_http", "true"))
            .unwrap();
    assert!(o.insecure_http);
    assert!(
        !OpenBaoOptions::from_options(&at("http://localhost:8200"))
            .unwrap()
            .insecure_http
    );
    let plain = OpenBaoOptions::new(
        "http://10.1.2.3:8200",
        Auth::Token(SecretString::from("t".to_string())),
    );
    assert_eq!(
        OpenBao::connect(plain).unwrap_err().kind(),
        "invalid_option"
    );
    let e = err(base()
        .with("token", "tok-value")
        .with("timeout", "soon-secret"));
    assert!(
        e.contains("timeout") && !e.contains("soon-secret") && !e.contains("tok-value"),
        "{e}"
    );
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

#[test]
fn values_encode_as_text_or_base64() {
    let text = encode_put(&SecretValue::copy_from("héllo \"q\"\n".as_bytes()), None);
    let parsed: Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(parsed, json!({"data": {"value": "héllo \"q\"\n"}}));
    let bin = encode_put(&SecretValue::copy_from(&[0, 0xff, 0x80]), Some(3));
    let parsed: Value = serde_json::from_slice(&bin).unwrap();
    assert_eq!(
        parsed,
        json!({"data": {"value_base64": "AP+A"}, "options": {"cas": 3}})
    );
}

#[test]
fn entries_decode_by_shape() {
    let v = decode_value(object(json!({"value": "sk-1"}))).unwrap();
    assert_eq!(v.expose_secret(), b"sk-1");
    let v = decode_value(object(json!({"value_base64": "AP+A"}))).unwrap();
    assert_eq!(v.expose_secret(), [0, 0xff, 0x80]);
    let v = decode_value(object(json!({"user": "u", "password": "p"}))).unwrap();
    assert_eq!(v.expose_secret(), br#"{"password":"p","user":"u"}"#);
    // A non-string "value" is another shape too.
    let v = decode_value(object(json!({"value": 5}))).unwrap();
    assert_eq!(v.expose_secret(), br#"{"value":5}"#);
    let e = decode_value(object(json!({"value_base64": "not base64!"}))).unwrap_err();
    assert!(!e.contains("not base64!"), "{e}");
}

#[test]
fn round_trips_through_the_codec() {
    for bytes in [b"plain".to_vec(), (0..=255u8).collect(), Vec::new()] {
        let body = encode_put(&SecretValue::copy_from(&bytes), None);
        let mut parsed: Value = serde_json::from_slice(&body).unwrap();
        let data = object(parsed["data"].take());
        assert_eq!(decode_value(data).unwrap().expose_secret(), bytes);
    }
}

fn meta(versions: Value) -> KvMetadata {
    let latest = versions
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.parse::<u64>().unwrap())
        .max()
        .unwrap();
    KvMetadata::parse(&json!({
        "current_version": latest,
        "versions": versions,
        "custom_metadata": {"owner": "ops"},
        "updated_time": "2026-11-25T12:00:00.5Z",
    }))
    .unwrap()
}

fn live(t: &str) -> Value {
    json!({"created_time": t, "deletion_time": "", "destroyed": false})
}

#[test]
fn labels_derive_from_versions() {
    let t = "2026-11-25T12:00:00Z";
    let deleted = json!({"created_time": t, "deletion_time": t, "destroyed": false});
    let destroyed = json!({"created_time": t, "deletion_time": "", "destroyed": true});
    let m = meta(json!({"1": live(t), "2": live(t), "3": live(t)}));
    assert_eq!((m.current(), m.previous()), (Some(3), Some(2)));
    assert_eq!(m.custom["owner"], "ops");
    assert_eq!(m.updated_at, 1_795_608_000_500);
    let m = meta(json!({"1": live(t), "2": deleted.clone(), "3": live(t)}));
    assert_eq!((m.current(), m.previous()), (Some(3), Some(1)));
    let m = meta(json!({"1": live(t), "2": destroyed.clone()}));
    assert_eq!((m.current(), m.previous()), (None, None));
    let m = meta(json!({"1": live(t), "2": deleted}));
    assert_eq!(m.current(), None);
    let h = meta(json!({"1": destroyed, "2": live(t), "3": live(t)})).history();
    assert_eq!(h.len(), 3);
    assert_eq!(h[0].destroyed_at, Some(0));
    assert_eq!(h[1].labels, [Label::Previous]);
    assert_eq!(h[2].labels, [Label::Current]);
}

#[test]
fn times_parse_as_utc_milliseconds() {
    assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_time("2026-11-25T12:00:00.123456789Z"),
        Some(1_795_608_000_123)
    );
    assert_eq!(
        parse_time("2026-11-25T13:00:00+01:00"),
        Some(1_795_608_000_000)
    );
    assert_eq!(parse_time("2000-02-29T00:00:01Z"), Some(951_782_401_000));
    assert_eq!(parse_time(""), None);
    assert_eq!(parse_time("yesterday"), None);
}

#[test]
fn errors_join_vault_messages() {
    let reply = Reply {
        status: 400,
        body: Zeroizing::new(
            br#"{"errors":["check-and-set parameter did not match the current version"]}"#.to_vec(),
        ),
    };
    assert!(is_cas_error(&reply.errors()));
    let long = "x".repeat(500);
    let m = error_messages(&json!({"errors": ["a", long]}));
    assert!(m.starts_with("a; xxx") && m.chars().count() < 210, "{m}");
    assert_eq!(error_messages(&json!({})), "");
}

#[test]
fn options_are_checked() {
    let auth = || Auth::Token(SecretString::from("t".to_string()));
    let bad_addr = OpenBao::connect(OpenBaoOptions::new("127.0.0.1:8200", auth()));
    assert_eq!(bad_addr.unwrap_err().kind(), "invalid_option");
    for mount in ["", "a//b", "../x", "a b"] {
        let mut o = OpenBaoOptions::new("http://127.0.0.1:1", auth());
        o.mount = mount.to_string();
        assert_eq!(
            OpenBao::connect(o).unwrap_err().kind(),
            "invalid_option",
            "{mount:?}"
        );
    }
    let mut o = OpenBaoOptions::new("http://127.0.0.1:1/", auth());
    o.mount = "/team/kv/".to_string();
    let store = OpenBao::connect(o).unwrap();
    assert_eq!(
        (store.address(), store.mount()),
        ("http://127.0.0.1:1", "team/kv")
    );
    let shown = format!("{store:?} {:?}", auth());
    assert!(!shown.contains("\"t\""), "{shown}");
}

/// A one-thread HTTP server answering each connection with the next
/// scripted (status, body); counts the requests it read.
fn fake_server(script: Vec<(u16, &'static str)>) -> (String, Arc<AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for (status, body) in script {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut request_body = vec![0; length];
            let _ = reader.read_exact(&mut request_body);
            counter.fetch_add(1, Ordering::SeqCst);
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, seen)
}

fn client(addr: &str) -> OpenBao {
    client_within(addr, Duration::from_secs(5))
}

/// A client whose requests, retries included, end within `timeout`.
fn client_within(addr: &str, timeout: Duration) -> OpenBao {
    let mut o = OpenBaoOptions::new(addr, Auth::Token(SecretString::from("t".to_string())));
    o.timeout = timeout;
    OpenBao::connect(o).unwrap()
}

const DATA: &str = r#"{"data":{"data":{"value":"v"},"metadata":{"version":4}}}"#;

#[test]
fn reads_retry_on_429_and_5xx() {
    let (addr, seen) = fake_server(vec![(503, "{}"), (429, "{}"), (200, DATA)]);
    let got = client(&addr)
        .get(&name("a/b"), Selector::default())
        .unwrap();
    assert_eq!((got.version, got.value.expose_secret()), (4, &b"v"[..]));
    assert_eq!(seen.load(Ordering::SeqCst), 3);

    let (addr, seen) = fake_server(vec![(500, r#"{"errors":["boom"]}"#); 4]);
    let err = client(&addr)
        .get(&name("a/b"), Selector::default())
        .unwrap_err();
    assert_eq!(err.kind(), "unavailable", "{err}");
    assert!(err.to_string().contains("HTTP 500: boom"), "{err}");
    assert_eq!(seen.load(Ordering::SeqCst), ATTEMPTS as usize);
}

#[test]
fn writes_retry_only_where_nothing_happened() {
    let (addr, seen) = fake_server(vec![(500, "{}"), (200, r#"{"data":{"version":2}}"#)]);
    let err = client(&addr)
        .put(
            &name("a/b"),
            &SecretValue::copy_from(b"tresor-w-canary"),
            &PutOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), "unavailable", "{err}");
    assert!(!format!("{err:?}").contains("tresor-w-canary"));
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "a 500 on a write is not retried"
    );

    let (addr, seen) = fake_server(vec![(503, "{}"), (200, r#"{"data":{"version":2}}"#)]);
    let v = client(&addr)
        .put(
            &name("a/b"),
            &SecretValue::copy_from(b"x"),
            &PutOptions::default(),
        )
        .unwrap();
    assert_eq!((v, seen.load(Ordering::SeqCst)), (2, 2));
}

#[test]
fn statuses_map_to_errors() {
    let denied = r#"{"errors":["permission denied"]}"#;
    let (addr, _) = fake_server(vec![
        (403, denied),
        (404, "{}"),
        (400, r#"{"errors":["bad"]}"#),
    ]);
    let mut store = client(&addr);
    let err = store.get(&name("a/b"), Selector::default()).unwrap_err();
    assert_eq!(err.kind(), "auth", "{err}");
    assert_eq!(
        err.to_string(),
        "openbao: 'a/b': permission denied (HTTP 403: permission denied)"
    );
    let err = store.get(&name("a/b"), Selector::Version(2)).unwrap_err();
    assert_eq!(err.to_string(), "openbao: 'a/b' version 2 not found");
    let err = store
        .put(
            &name("a/b"),
            &SecretValue::copy_from(b"x"),
            &PutOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), "validation", "{err}");
    assert!(err.to_string().contains("HTTP 400: bad"), "{err}");
}

#[test]
fn a_silent_server_is_unavailable_within_the_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let t0 = std::time::Instant::now();
    let err = client_within(&addr, Duration::from_millis(500))
        .get(&name("a/b"), Selector::default())
        .unwrap_err();
    assert_eq!(err.kind(), "unavailable", "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    drop(listener);
}

/// `timeout` bounds the retries too: no attempt starts when its pause would
/// end past it (before, each attempt had the whole timeout to itself).
#[test]
fn retries_stop_at_the_timeout() {
    let (addr, seen) = fake_server(vec![(500, r#"{"errors":["boom"]}"#); 4]);
    let err = client_within(&addr, Duration::from_millis(300))
        .get(&name("a/b"), Selector::default())
        .unwrap_err();
    assert_eq!(err.kind(), "unavailable", "{err}");
    // 1st attempt, a pause of 100-150 ms, 2nd attempt; a pause of 200 ms
    // or more would end past the 300 ms.
    assert_eq!(seen.load(Ordering::SeqCst), 2, "{err}");
}
