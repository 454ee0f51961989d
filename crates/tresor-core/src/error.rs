//! The one error type every tresor operation returns.

use std::path::PathBuf;

/// Shorthand for results with tresor's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong. Messages name the store and the secret, never a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Authentication failed: wrong password, key file or token.
    #[error("{store}: {reason}")]
    Auth {
        /// The store that refused.
        store: String,
        /// Why, without secret material.
        reason: String,
    },
    /// A check-and-set write found another version than it expected.
    #[error("{store}: conflict on '{name}': expected version {expected}, found {found}")]
    Conflict {
        /// The store.
        store: String,
        /// The secret.
        name: String,
        /// The version the writer expected (0: the secret must not exist).
        expected: u64,
        /// The version found (0: the secret does not exist).
        found: u64,
    },
    /// Data failed an integrity check: a tampered or corrupt file, a wrong
    /// record, a broken audit chain.
    #[error("{store}: integrity check failed: {detail}")]
    Integrity {
        /// The store.
        store: String,
        /// Which record or check failed.
        detail: String,
    },
    /// The name breaks the naming rule.
    #[error("invalid secret name \"{name}\": {problem}; {rule}")]
    InvalidName {
        /// The rejected name, escaped and shortened.
        name: String,
        /// What is wrong with it.
        problem: &'static str,
        /// The rule.
        rule: &'static str,
    },
    /// A file or OS operation failed.
    #[error("{store}: {path}: {source}")]
    Io {
        /// The store.
        store: String,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The store is locked and no key was given.
    #[error("{store} is locked: {hint}")]
    Locked {
        /// The store.
        store: String,
        /// How to unlock it.
        hint: String,
    },
    /// No such secret, version or label.
    #[error("{store}: {what} not found")]
    NotFound {
        /// The store.
        store: String,
        /// What was looked for, e.g. `'db/password' version 3`.
        what: String,
    },
    /// The store is read-only.
    #[error("{store} is read-only")]
    ReadOnly {
        /// The store.
        store: String,
    },
    /// The store cannot be reached or used now (lock timeout, server down).
    #[error("{store} is unavailable: {reason}")]
    Unavailable {
        /// The store.
        store: String,
        /// Why, and what to do about it.
        reason: String,
    },
    /// The store cannot do this at all.
    #[error("{store} does not support {operation}")]
    Unsupported {
        /// The store.
        store: String,
        /// The operation.
        operation: &'static str,
    },
    /// Input broke a rule other than naming: a value too large, bad metadata,
    /// a format version this build does not know.
    #[error("{0}")]
    Validation(String),
}

/// Process exit codes of the `tresor` CLI, one per error family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// No such secret, version or label (a soft-deleted secret is not found).
    NotFound = 1,
    /// Bad usage or input: arguments, names, values, metadata.
    Usage = 2,
    /// Locked, or the wrong password or key.
    Locked = 3,
    /// Integrity failure: tampering, corruption, a broken audit chain.
    Integrity = 4,
    /// A check-and-set conflict.
    Conflict = 5,
    /// The store is unavailable: I/O errors, lock timeouts, servers down.
    Unavailable = 6,
}

impl Error {
    /// The CLI exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::NotFound { .. } => ExitCode::NotFound,
            Error::InvalidName { .. }
            | Error::Validation(_)
            | Error::Unsupported { .. }
            | Error::ReadOnly { .. } => ExitCode::Usage,
            Error::Auth { .. } | Error::Locked { .. } => ExitCode::Locked,
            Error::Integrity { .. } => ExitCode::Integrity,
            Error::Conflict { .. } => ExitCode::Conflict,
            Error::Io { .. } | Error::Unavailable { .. } => ExitCode::Unavailable,
        }
    }

    /// A short machine-readable kind, used in `--json` errors and audit results.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Auth { .. } => "auth",
            Error::Conflict { .. } => "conflict",
            Error::Integrity { .. } => "integrity",
            Error::InvalidName { .. } => "invalid_name",
            Error::Io { .. } => "io",
            Error::Locked { .. } => "locked",
            Error::NotFound { .. } => "not_found",
            Error::ReadOnly { .. } => "read_only",
            Error::Unavailable { .. } => "unavailable",
            Error::Unsupported { .. } => "unsupported",
            Error::Validation(_) => "validation",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_match_the_documented_table() {
        let nf = Error::NotFound {
            store: "vault".into(),
            what: "'a'".into(),
        };
        assert_eq!(nf.exit_code() as u8, 1);
        assert_eq!(Error::Validation("x".into()).exit_code() as u8, 2);
        let auth = Error::Auth {
            store: "vault".into(),
            reason: "wrong password".into(),
        };
        assert_eq!(auth.exit_code() as u8, 3);
        let integ = Error::Integrity {
            store: "vault".into(),
            detail: "x".into(),
        };
        assert_eq!(integ.exit_code() as u8, 4);
        let conflict = Error::Conflict {
            store: "v".into(),
            name: "a".into(),
            expected: 1,
            found: 2,
        };
        assert_eq!(conflict.exit_code() as u8, 5);
        let un = Error::Unavailable {
            store: "v".into(),
            reason: "x".into(),
        };
        assert_eq!(un.exit_code() as u8, 6);
        assert_eq!(
            conflict.to_string(),
            "v: conflict on 'a': expected version 1, found 2"
        );
    }
}
