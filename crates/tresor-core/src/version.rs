//! Versions and labels.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A staging label pointing at one version of a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// The version readers get by default.
    Current,
    /// A new version staged by `rotate --stage`, made current by `promote`.
    Pending,
    /// The version that was current before the last change.
    Previous,
}

impl Label {
    /// The label's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Current => "current",
            Label::Pending => "pending",
            Label::Previous => "previous",
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Label {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "current" => Ok(Label::Current),
            "previous" => Ok(Label::Previous),
            "pending" => Ok(Label::Pending),
            _ => Err(Error::Validation(format!(
                "unknown label {s:?}: use current, previous or pending"
            ))),
        }
    }
}

/// Which version of a secret to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selector {
    /// The version a label points at.
    Label(Label),
    /// A version number (1, 2, 3…).
    Version(u64),
}

impl Default for Selector {
    fn default() -> Self {
        Selector::Label(Label::Current)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Label(l) => write!(f, "label {l}"),
            Selector::Version(v) => write!(f, "version {v}"),
        }
    }
}

/// What is known about one version of a secret, without its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The version number.
    pub version: u64,
    /// When it was written, in milliseconds since the Unix epoch (UTC).
    pub created_at: i64,
    /// Who wrote it (OS user).
    pub actor: String,
    /// Why, if the writer said.
    pub reason: Option<String>,
    /// The labels that point at it.
    pub labels: Vec<Label>,
    /// When its value was destroyed (pruned or purged), if it was.
    pub destroyed_at: Option<i64>,
    /// Length of the value in bytes (0 once destroyed).
    pub len: usize,
}
