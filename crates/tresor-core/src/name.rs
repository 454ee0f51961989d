//! Secret names: `/`-separated segments of `[A-Za-z0-9._-]`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// The rule, as shown to users in every name error.
const RULE: &str = "a name is segments joined by '/', each made of A-Z a-z 0-9 . _ -, \
                    never '.' or '..', at most 256 bytes in all";

/// A validated secret name such as `openai/api_key` or `db.prod/password`.
///
/// Names are not secret (they appear in errors and the audit log), but the
/// vault still stores them encrypted.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretName(String);

impl SecretName {
    /// Checks `name` against the naming rule.
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        match problem(&name) {
            None => Ok(Self(name)),
            Some(problem) => Err(Error::InvalidName {
                name: printable(&name),
                problem,
                rule: RULE,
            }),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this name lies under `prefix` (`db` matches `db/password` and
    /// `db.prod/x` alike: the prefix is a plain string prefix).
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.0.starts_with(prefix)
    }
}

/// What is wrong with `name`, if anything.
fn problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("the name is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Some("the name is longer than 256 bytes");
    }
    for segment in name.split('/') {
        if segment.is_empty() {
            return Some("the name has an empty segment (leading, trailing or double '/')");
        }
        if segment == "." || segment == ".." {
            return Some("the name has a '.' or '..' segment");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Some("the name has a character outside A-Z a-z 0-9 . _ - /");
        }
    }
    None
}

/// A bounded, escaped copy of a rejected name for error messages.
fn printable(name: &str) -> String {
    let mut out: String = name.chars().take(64).flat_map(char::escape_debug).collect();
    if name.chars().count() > 64 {
        out.push('…');
    }
    out
}

impl TryFrom<String> for SecretName {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::new(value)
    }
}

impl std::str::FromStr for SecretName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl From<SecretName> for String {
    fn from(value: SecretName) -> Self {
        value.0
    }
}

impl AsRef<str> for SecretName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretName({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn accepts_the_documented_examples() {
        for ok in [
            "openai/api_key",
            "db.prod/password",
            "a",
            "A-b_c.d/e",
            "x/.hidden",
            "a/b/c/d",
        ] {
            assert!(SecretName::new(ok).is_ok(), "{ok}");
        }
        assert!(SecretName::new("x".repeat(256)).is_ok());
    }

    #[test]
    fn rejects_bad_names_with_the_rule() {
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            ".",
            "..",
            "a/../b",
            "a/./b",
            "with space",
            "tab\t",
            "naïve",
            "semi;colon",
            "a\\b",
            "new\nline",
        ] {
            let err = SecretName::new(bad).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("segments joined by '/'"), "{bad:?}: {msg}");
        }
        assert!(SecretName::new("x".repeat(257)).is_err());
    }

    #[test]
    fn rejected_names_are_escaped_and_bounded_in_messages() {
        let msg = SecretName::new(format!("bad\n{}", "y".repeat(500)))
            .unwrap_err()
            .to_string();
        assert!(!msg.contains('\n'));
        assert!(msg.len() < 600);
    }

    proptest! {
        #[test]
        fn valid_names_round_trip(name in "[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}){0,5}") {
            let parsed = SecretName::new(name.clone()).unwrap();
            prop_assert_eq!(parsed.as_str(), name.as_str());
            let json = serde_json_like(&parsed);
            prop_assert_eq!(json, name);
        }
    }

    fn serde_json_like(name: &SecretName) -> String {
        String::from(name.clone())
    }
}
