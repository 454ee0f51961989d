use std::time::Duration;

use super::retry::{
    ATTEMPTS, Deadline, FIRST_BACKOFF, Idempotence, MAX_BACKOFF, backoff, next_pause, retry_io,
    retry_status,
};
use super::*;

#[test]
fn limits_read_both_options_and_refuse_zero() {
    let limits = Limits::from_options(&StoreOptions::new("s")).unwrap();
    assert_eq!(limits, Limits::default());
    assert_eq!(
        (limits.timeout, limits.connect_timeout),
        (Duration::from_secs(10), Duration::from_secs(5))
    );
    let limits = Limits::from_options(
        &StoreOptions::new("s")
            .with("timeout", "2s")
            .with("connect_timeout", "3s"),
    )
    .unwrap();
    assert_eq!(limits.timeout, Duration::from_secs(2));
    // The connection never gets longer than the whole request.
    assert_eq!(limits.connect(), Duration::from_secs(2));
    for option in ["timeout", "connect_timeout"] {
        let e = Limits::from_options(&StoreOptions::new("s").with(option, "0s")).unwrap_err();
        assert_eq!(e.kind(), "invalid_option", "{e}");
        assert!(e.to_string().contains(option), "{e}");
    }
}

#[test]
fn statuses_map_to_one_error_each() {
    let kind = |status| status_error("s", "'a/b'", status, "HTTP x").kind();
    assert_eq!(kind(401), "auth");
    assert_eq!(kind(403), "auth");
    assert_eq!(kind(404), "not_found");
    for status in [408, 429, 500, 502, 503, 504] {
        assert_eq!(kind(status), "unavailable", "{status}");
    }
    assert_eq!(kind(400), "validation");
    let e = status_error("team", "'a/b'", 403, "HTTP 403: denied");
    assert_eq!(
        e.to_string(),
        "team: 'a/b': permission denied (HTTP 403: denied)"
    );
}

#[test]
fn messages_are_shortened_and_chained_once() {
    let long = "x".repeat(500);
    let short = shorten(&format!("  {long}  "));
    assert_eq!(short.chars().count(), MAX_MESSAGE + 1);
    assert!(short.ends_with('…'));
    assert_eq!(shorten(" kept "), "kept");
    assert_eq!(colon(""), "");
    assert_eq!(colon("why"), ": why");

    #[derive(Debug)]
    struct Wrapper(std::io::Error);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "request failed: {}", self.0)
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let e = Wrapper(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "refused",
    ));
    // The source's text is already in its wrapper's: said once.
    assert_eq!(error_chain(&e), "request failed: refused");
}

#[test]
fn reads_retry_more_than_writes() {
    use Idempotence::{Idempotent, Unsafe};
    for status in [408, 429, 500, 503] {
        assert!(retry_status(status, Idempotent), "{status}");
    }
    for status in [200, 400, 401, 403, 404, 409] {
        assert!(!retry_status(status, Idempotent), "{status}");
    }
    assert!(retry_status(429, Unsafe) && retry_status(503, Unsafe));
    assert!(!retry_status(500, Unsafe) && !retry_status(408, Unsafe));
    use std::io::ErrorKind;
    assert!(retry_io(ErrorKind::ConnectionRefused, Unsafe));
    assert!(retry_io(ErrorKind::ConnectionReset, Idempotent));
    assert!(!retry_io(ErrorKind::ConnectionReset, Unsafe));
    assert!(!retry_io(ErrorKind::PermissionDenied, Idempotent));
}

#[test]
fn backoff_grows_with_bounded_jitter_and_a_ceiling() {
    for attempt in 1..=3 {
        let base = FIRST_BACKOFF * 2u32.pow(attempt - 1);
        let b = backoff(attempt);
        assert!(b >= base && b <= base * 3 / 2, "{attempt}: {b:?}");
    }
    assert!(backoff(30) <= MAX_BACKOFF * 3 / 2);
}

#[test]
fn no_attempt_starts_past_the_deadline_or_the_count() {
    let far = Deadline::after(Duration::from_secs(60));
    assert!(next_pause(1, &far).is_some());
    assert_eq!(next_pause(ATTEMPTS, &far), None);
    let near = Deadline::after(Duration::from_millis(50));
    assert_eq!(next_pause(1, &near), None, "a 100 ms pause ends too late");
    let passed = Deadline::after(Duration::ZERO);
    assert_eq!(passed.remaining(), Duration::ZERO);
    assert!(!passed.allows(Duration::ZERO));
}

#[cfg(any(feature = "aws", feature = "azure"))]
#[test]
fn the_runtime_refuses_callers_inside_another_and_drops_anywhere() {
    use super::runtime::{InsideRuntime, Runtime};
    let store = Runtime::new("s").unwrap();
    assert_eq!(store.block_on(async { 7 }), Ok(7));
    let outer = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let inside = outer.block_on(async { store.block_on(async { 7 }) });
    assert_eq!(inside, Err(InsideRuntime));
    let e = InsideRuntime.error("s", "'a/b'");
    assert_eq!(e.kind(), "unavailable");
    assert!(e.to_string().contains("spawn_blocking"), "{e}");
    // Dropped in a task of another runtime: no panic, no block.
    outer.block_on(async move { drop(store) });
}
