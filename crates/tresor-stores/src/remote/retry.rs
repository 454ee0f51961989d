//! The retry policy of the remote stores: how many attempts, which answers
//! are worth another one, how long to pause, and the deadline no attempt
//! starts after. The openbao store runs this loop itself; the SDK stores
//! (aws, azure) hand the same figures to their SDK's retry layer.
#![cfg_attr(not(feature = "openbao"), allow(dead_code))]

use std::time::{Duration, Instant};

/// Attempts per request, the first included.
pub(crate) const ATTEMPTS: u32 = 3;
/// The first pause; doubled per retry, plus up to 50 % jitter.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between two attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Whether a request may be sent twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Idempotence {
    /// Reads and other idempotent calls.
    Idempotent,
    /// Writes: sent again only where the service surely did nothing.
    Unsafe,
}

/// Whether an answer of `status` is worth another attempt.
pub(crate) fn retry_status(status: u16, idempotence: Idempotence) -> bool {
    match idempotence {
        Idempotence::Idempotent => matches!(status, 408 | 429 | 500..=599),
        Idempotence::Unsafe => matches!(status, 429 | 503),
    }
}

/// Whether a transport failure is worth another attempt: a refused
/// connection always (nothing was sent), a broken one only when the request
/// is idempotent.
pub(crate) fn retry_io(kind: std::io::ErrorKind, idempotence: Idempotence) -> bool {
    use std::io::ErrorKind;
    match kind {
        ErrorKind::ConnectionRefused => true,
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::UnexpectedEof => idempotence == Idempotence::Idempotent,
        _ => false,
    }
}

/// The pause after attempt `attempt` (1-based): 100 ms, 200 ms, 400 ms, …
/// up to [`MAX_BACKOFF`], plus up to 50 % jitter.
pub(crate) fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let base = (FIRST_BACKOFF * 2u32.pow(attempt.saturating_sub(1).min(10))).min(MAX_BACKOFF);
    let jitter = RandomState::new().hash_one(attempt) % 1000;
    base + base * u32::try_from(jitter).unwrap_or(0) / 2000
}

/// The end of a request's `timeout`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline(Instant);

impl Deadline {
    /// `timeout` from now.
    pub(crate) fn after(timeout: Duration) -> Self {
        Self(Instant::now() + timeout)
    }

    /// The time left (zero once passed).
    pub(crate) fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Whether an attempt after a pause of `pause` would still start in time.
    pub(crate) fn allows(&self, pause: Duration) -> bool {
        pause < self.remaining()
    }
}

/// Whether to try again after attempt `attempt` (1-based) failed in a way
/// worth retrying, and the pause before it: only while attempts are left
/// and the pause ends before the deadline.
pub(crate) fn next_pause(attempt: u32, deadline: &Deadline) -> Option<Duration> {
    if attempt >= ATTEMPTS {
        return None;
    }
    let pause = backoff(attempt);
    deadline.allows(pause).then_some(pause)
}
