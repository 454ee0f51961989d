//! The options of one store, as `tresor.toml` gives them: the handshake
//! between the manager (which parses the file and resolves `ENV/` and `SEC/`
//! references) and each store module (which turns options into a client).
//!
//! Every store module offers `from_options(&StoreOptions) -> Result<Self>`.
//! It reads the keys it knows with [`StoreOptions::get`] and friends, then
//! calls [`StoreOptions::finish`], which rejects any key nobody read, so a
//! typo in `tresor.toml` is an error that names the store and the key rather
//! than a silently ignored setting.
//!
//! ```
//! use std::time::Duration;
//! use tresor_stores::options::StoreOptions;
//!
//! let opts = StoreOptions::new("team")
//!     .with("address", "http://127.0.0.1:8200")
//!     .with("timeout", "2s")
//!     .with("insecure", "true");
//! assert_eq!(opts.require("address")?, "http://127.0.0.1:8200");
//! assert_eq!(opts.duration("timeout")?, Some(Duration::from_secs(2)));
//! assert_eq!(opts.bool("insecure")?, Some(true));
//! opts.finish()?;
//!
//! let typo = StoreOptions::new("team").with("adress", "http://x");
//! assert!(typo.get("address").is_none());
//! assert!(typo.finish().unwrap_err().to_string().contains("adress"));
//! # Ok::<(), tresor_core::Error>(())
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration;

use tresor_core::{Error, Result};
use zeroize::Zeroizing;

/// One store's options: text values (TOML scalars are given as their text),
/// references already resolved. Values may be credentials (a token resolved
/// from `SEC/…`), so they are kept in zeroizing strings and never printed.
pub struct StoreOptions {
    store: String,
    values: BTreeMap<String, Zeroizing<String>>,
    read: RefCell<BTreeSet<String>>,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys only: values may be credentials.
        f.debug_struct("StoreOptions")
            .field("store", &self.store)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl StoreOptions {
    /// No options yet, for the store named `store` (its name in `tresor.toml`).
    pub fn new(store: impl Into<String>) -> Self {
        Self {
            store: store.into(),
            values: BTreeMap::new(),
            read: RefCell::new(BTreeSet::new()),
        }
    }

    /// Adds (or replaces) one option.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(key, value);
        self
    }

    /// Adds (or replaces) one option.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.values.insert(key.into(), Zeroizing::new(value.into()));
    }

    /// The store's name, for errors and logs.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// Every key given, read or not.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// The option `key`, if given; marks it read.
    pub fn get(&self, key: &str) -> Option<&str> {
        let value = self.values.get(key)?;
        self.read.borrow_mut().insert(key.to_string());
        Some(value.as_str())
    }

    /// The option `key`, or an [`Error::InvalidOption`] naming the store
    /// and the key.
    pub fn require(&self, key: &str) -> Result<&str> {
        self.get(key)
            .ok_or_else(|| invalid_option(&self.store, key, "is required"))
    }

    /// The option `key` parsed with `FromStr`; the error names the store, the
    /// key and the expected form (`what`), never the value.
    pub fn parse<T: FromStr>(&self, key: &str, what: &str) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.invalid(key, what)),
        }
    }

    /// A boolean option: `true`/`false` (also `yes`/`no`, `1`/`0`).
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key).map(str::trim) {
            None => Ok(None),
            Some("true" | "yes" | "1") => Ok(Some(true)),
            Some("false" | "no" | "0") => Ok(Some(false)),
            Some(_) => Err(self.invalid(key, "true or false")),
        }
    }

    /// A duration option, in tresor's one duration syntax
    /// ([`parse_duration`]: `500ms`, `5s`, `2m`, `1h30m`; a bare number is
    /// seconds).
    pub fn duration(&self, key: &str) -> Result<Option<Duration>> {
        match self.get(key) {
            None => Ok(None),
            Some(text) => parse_duration(text)
                .map(Some)
                .ok_or_else(|| self.invalid(key, "a duration such as 500ms, 5s or 2m")),
        }
    }

    /// Fails when an option was given that no one read: a typo, or an
    /// option of another store kind.
    pub fn finish(&self) -> Result<()> {
        let read = self.read.borrow();
        let unknown: Vec<&str> = self
            .values
            .keys()
            .filter(|k| !read.contains(*k))
            .map(String::as_str)
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            let others: Vec<String> = unknown[1..].iter().map(|k| format!("'{k}'")).collect();
            let problem = if others.is_empty() {
                "unknown option".to_string()
            } else {
                format!("unknown option (so are {})", others.join(", "))
            };
            Err(invalid_option(&self.store, unknown[0], &problem))
        }
    }

    fn invalid(&self, key: &str, what: &str) -> Error {
        invalid_option(&self.store, key, &format!("must be {what}"))
    }
}

/// The [`Error::InvalidOption`] for `option` of `store`: `problem` says what
/// is wrong, never the value.
pub fn invalid_option(store: &str, option: &str, problem: &str) -> Error {
    Error::InvalidOption {
        store: store.to_string(),
        option: option.to_string(),
        problem: problem.to_string(),
    }
}

/// The option that lets a remote store send requests over plain `http://`
/// to a host that is not this machine.
pub const INSECURE_HTTP: &str = "insecure_http";

/// Checks a remote store's URL (`address`, `endpoint`) against the plain-HTTP
/// rule: `https://` always passes; `http://` passes for a loopback host
/// (`localhost`, `127.0.0.0/8`, `::1`), and for any other host only when
/// `insecure_http` is true. Then the answer is `Ok(Some(warning))`: the text
/// the caller shows on every use, since tokens and values cross the network
/// in clear. Anything else (another scheme, a host that cannot be read) is
/// refused. The error names the store and the option, and how to fix it.
///
/// ```
/// use tresor_stores::options::plain_http;
///
/// assert_eq!(plain_http("team", "address", "https://bao.example:8200", false)?, None);
/// assert_eq!(plain_http("team", "address", "http://127.0.0.1:8200", false)?, None);
/// assert_eq!(plain_http("team", "address", "http://[::1]:8200", false)?, None);
/// let refused = plain_http("team", "address", "http://bao.example:8200", false).unwrap_err();
/// assert!(refused.to_string().contains("insecure_http = true"));
/// assert!(plain_http("team", "address", "http://bao.example:8200", true)?.is_some());
/// # Ok::<(), tresor_core::Error>(())
/// ```
pub fn plain_http(
    store: &str,
    key: &str,
    url: &str,
    insecure_http: bool,
) -> Result<Option<String>> {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(None);
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return Err(invalid_option(
            store,
            key,
            "must start with https:// (or http:// for this machine)",
        ));
    };
    match url_host(rest) {
        Some(host) if is_loopback_host(&host) => Ok(None),
        Some(host) if insecure_http => Ok(Some(format!(
            "store '{store}': {key} {url:?} is plain http:// to {host}, not this machine \
             (insecure_http = true): its token and every value cross the network unencrypted"
        ))),
        Some(host) => Err(invalid_option(
            store,
            key,
            &format!(
                "{url:?} is plain http:// to {host}, which is not this machine: its token and \
                 values would cross the network unencrypted. Use https://, or add \
                 insecure_http = true to the store if you accept that"
            ),
        )),
        None => Err(invalid_option(
            store,
            key,
            "has no host name tresor can read",
        )),
    }
}

/// Whether `host` (as `url_host` gives it) is this machine: `localhost`,
/// an address in `127.0.0.0/8`, or `::1` (also as `::ffff:127.x.y.z`).
pub fn is_loopback_host(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(std::net::IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// The host of a URL after its `scheme://`: lower case, without user info,
/// port or brackets. `None` when it holds a character no host name or
/// address has, so that a URL another parser would read differently is
/// never taken for a loopback one.
fn url_host(after_scheme: &str) -> Option<String> {
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    // Only what RFC 3986 allows in an authority; one `@` at most.
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:@[]".contains(&b);
    if !authority.bytes().all(allowed) || authority.matches('@').count() > 1 {
        return None;
    }
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        let (inside, after) = v6.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        inside
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
    valid.then(|| host.to_string())
}

/// `500ms`, `5s`, `2m`, `1h30m`, `7d`, or a bare number of seconds: the one
/// duration syntax of tresor, [`tresor_core::parse_duration`].
pub use tresor_core::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_reject_junk() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        for bad in ["", "s", "5 parsecs", "-1s", "1e400"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn errors_name_store_and_key_but_never_the_value() {
        let opts = StoreOptions::new("team")
            .with("timeout", "hunter2-secret")
            .with("retries", "many-secret");
        let err = opts.duration("timeout").unwrap_err().to_string();
        assert!(err.contains("team") && err.contains("timeout"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = opts
            .parse::<u32>("retries", "a count")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("retries") && !err.contains("many-secret"),
            "{err}"
        );
        assert!(!format!("{opts:?}").contains("secret\""));
        assert!(!format!("{opts:?}").contains("hunter2"));
        assert!(
            opts.require("address")
                .unwrap_err()
                .to_string()
                .contains("address")
        );
        opts.finish().unwrap();
    }

    #[test]
    fn plain_http_is_for_this_machine_only() {
        for ok in [
            "http://127.0.0.1:8200",
            "http://127.8.9.10",
            "http://localhost:8200/",
            "HTTP://LocalHost.:1",
            "http://[::1]:8200",
            "http://[::ffff:127.0.0.1]:1",
            "https://bao.example.com",
            "https://10.0.0.1:8200",
        ] {
            assert_eq!(plain_http("s", "address", ok, false).unwrap(), None, "{ok}");
        }
        for refused in [
            "http://10.0.0.1:8200",
            "http://bao.example.com",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "http://127.0.0.1@evil.example/",
            "http://127.0.0.1:80@evil.example:8200",
            "http://[::2]:1",
            "http://2130706433",
            "http://evil.example\\@127.0.0.1",
            "http://",
            "ftp://127.0.0.1",
            "127.0.0.1:8200",
        ] {
            let e = plain_http("s", "address", refused, false).unwrap_err();
            assert!(e.to_string().contains("store 's'"), "{refused}: {e}");
        }
        let warning = plain_http("s", "address", "http://10.0.0.1:8200", true)
            .unwrap()
            .unwrap();
        assert!(
            warning.contains("unencrypted") && warning.contains("10.0.0.1"),
            "{warning}"
        );
        // The flag does not make a broken URL acceptable.
        assert!(plain_http("s", "address", "http://a b", true).is_err());
    }

    #[test]
    fn finish_lists_every_unread_key() {
        let opts = StoreOptions::new("s")
            .with("a", "1")
            .with("b", "2")
            .with("c", "3");
        opts.get("b");
        let err = opts.finish().unwrap_err().to_string();
        assert!(
            err.contains("'a'") && err.contains("'c'") && !err.contains("'b'"),
            "{err}"
        );
        assert_eq!(opts.bool("a").unwrap(), Some(true));
        let bad = StoreOptions::new("s").with("flag", "maybe");
        assert!(
            bad.bool("flag")
                .unwrap_err()
                .to_string()
                .contains("true or false")
        );
    }
}
