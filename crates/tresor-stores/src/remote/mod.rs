//! The plumbing the remote stores (`openbao`, `aws`, `azure`) share, so
//! each of them keeps only its protocol: one meaning of the time limits, one
//! retry policy, one guard around the private tokio runtime, one mapping of
//! HTTP statuses to tresor errors, one way to shorten what a server says.
//!
//! # Time limits: `timeout` and `connect_timeout`
//!
//! Every remote store reads the same two options, with the same meaning:
//!
//! - `timeout` (default [`DEFAULT_TIMEOUT`], 10 s): the longest one
//!   operation's request to the service may take, **every attempt and the
//!   pauses between them included**. When it has passed, no further attempt
//!   starts and the operation is [`Error::Unavailable`]. (An operation that
//!   needs several requests, such as a write that first reads the secret's
//!   state, gives each request this limit.)
//! - `connect_timeout` (default [`DEFAULT_CONNECT_TIMEOUT`], 5 s): the
//!   longest one attempt may take to open its connection (TCP and TLS).
//!
//! Both are durations such as `500ms`, `5s` or `2m` and must be more than 0.
//!
//! # Retries
//!
//! See [`retry`]: up to three attempts, jittered exponential backoff from
//! 100 ms, never past the `timeout`. Idempotent requests (reads) are tried
//! again after 408, 429, 5xx and broken connections; writes only where the
//! service surely did nothing (429, 503, a refused connection). The AWS and
//! Azure SDKs run the retries themselves, configured from the same policy.

use std::time::Duration;

use tresor_core::{Error, Result};

use crate::StoreOptions;

pub(crate) mod retry;
#[cfg(any(feature = "aws", feature = "azure"))]
pub(crate) mod runtime;
#[cfg(test)]
mod tests;

/// The default `timeout`: one operation's request, retries included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default `connect_timeout`: one attempt's connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest message of a service (or error chain) shown in an error.
const MAX_MESSAGE: usize = 200;

/// A remote store's time limits (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The whole request, every attempt and pause included.
    pub timeout: Duration,
    /// Opening one attempt's connection.
    pub connect_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl Limits {
    /// The options `timeout` and `connect_timeout`, defaults for those not
    /// given; zero is an [`Error::InvalidOption`].
    pub(crate) fn from_options(options: &StoreOptions) -> Result<Self> {
        let defaults = Self::default();
        let limits = Self {
            timeout: options.duration("timeout")?.unwrap_or(defaults.timeout),
            connect_timeout: options
                .duration("connect_timeout")?
                .unwrap_or(defaults.connect_timeout),
        };
        limits.check(options.store())?;
        Ok(limits)
    }

    /// Both limits are more than zero.
    pub(crate) fn check(&self, store: &str) -> Result<()> {
        for (option, value) in [
            ("timeout", self.timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if value.is_zero() {
                return Err(Error::InvalidOption {
                    store: store.to_string(),
                    option: option.to_string(),
                    problem: "must be more than 0".to_string(),
                });
            }
        }
        Ok(())
    }

    /// The connect timeout, never longer than the whole request.
    pub(crate) fn connect(&self) -> Duration {
        self.connect_timeout.min(self.timeout)
    }
}

/// The tresor error for an HTTP answer of `status` about `what` (e.g.
/// `'a/b'`), `detail` saying what the service said (no body, no value):
/// 401 and 403 refuse the credentials, 404 is not found, 408, 429 and 5xx
/// are the service's trouble, anything else a refused request.
pub(crate) fn status_error(store: &str, what: &str, status: u16, detail: &str) -> Error {
    match status {
        401 | 403 => Error::Auth {
            store: store.to_string(),
            reason: format!("{what}: permission denied ({detail})"),
        },
        404 => Error::NotFound {
            store: store.to_string(),
            what: what.to_string(),
        },
        408 | 429 | 500..=599 => Error::Unavailable {
            store: store.to_string(),
            reason: format!("{what}: {detail}"),
        },
        _ => refused(store, what, detail),
    }
}

/// The service refused a request as invalid (a 4xx other than the above,
/// or its own error code): nothing a retry or other credentials would fix.
pub(crate) fn refused(store: &str, what: &str, detail: &str) -> Error {
    Error::Validation(format!("{store}: {what}: refused ({detail})"))
}

/// The service could not be reached or did not answer in time.
#[cfg_attr(not(any(feature = "openbao", feature = "aws")), allow(dead_code))]
pub(crate) fn unreachable(store: &str, what: &str, detail: &str) -> Error {
    Error::Unavailable {
        store: store.to_string(),
        reason: format!("{what}: {detail}"),
    }
}

/// A value larger than the service takes.
pub(crate) fn too_large(store: &str, name: &tresor_core::SecretName, limit: usize) -> Error {
    Error::TooLarge {
        what: format!("{store}: the value for '{name}'"),
        limit: limit as u64,
    }
}

/// A version's entry in `history` for the stores whose `current` and
/// `previous` are derived from the versions (OpenBao, Azure): no actor, no
/// reason, no length (unknown without reading the value).
#[cfg_attr(not(any(feature = "openbao", feature = "azure")), allow(dead_code))]
pub(crate) fn derived_version(
    number: u64,
    created_at: i64,
    destroyed_at: Option<i64>,
    (current, previous): (Option<u64>, Option<u64>),
) -> tresor_core::VersionInfo {
    use tresor_core::Label;
    let labels = [(current, Label::Current), (previous, Label::Previous)]
        .into_iter()
        .filter(|(at, _)| *at == Some(number))
        .map(|(_, label)| label)
        .collect();
    tresor_core::VersionInfo {
        version: number,
        created_at,
        actor: String::new(),
        reason: None,
        labels,
        destroyed_at,
        len: 0,
    }
}

/// At most [`MAX_MESSAGE`] characters of `message`, trimmed, with an
/// ellipsis when cut (service messages can be long; they hold no values).
pub(crate) fn shorten(message: &str) -> String {
    shorten_to(message, MAX_MESSAGE)
}

/// At most `max` characters of `message`, trimmed, with an ellipsis when cut.
pub(crate) fn shorten_to(message: &str, max: usize) -> String {
    let message = message.trim();
    if message.chars().count() > max {
        format!("{}…", message.chars().take(max).collect::<String>())
    } else {
        message.to_string()
    }
}

/// `": s"`, or nothing when `s` is empty.
#[cfg_attr(not(any(feature = "openbao", feature = "aws")), allow(dead_code))]
pub(crate) fn colon(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

/// An error and its sources in words, each said once, shortened
/// (transport errors hold no request or response bodies).
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    shorten(&parts.join(": "))
}
