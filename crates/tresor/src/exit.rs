//! Exit codes: the one table from the library's error kinds to the code a
//! program reports for them. The `tresor` CLI exits with these codes and
//! prints the family in its `--json` errors; the Python package gives each
//! exception class the same `exit_code`. The remedy hints (which flag or
//! command fixes an error) stay with the CLI.
//!
//! ```
//! use tresor::exit::{ExitCode, code};
//!
//! let e = tresor::Error::NotFound { store: "vault".into(), what: "'db/password'".into() };
//! assert_eq!(code(&e), ExitCode::NotFound);
//! assert_eq!(code(&e) as u8, 1);
//! ```

use tresor_core::Error;

/// Process exit codes, one per error family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// No such secret, version or label (a soft-deleted secret is not found).
    NotFound = 1,
    /// Bad usage or input: arguments, names, values, metadata, options.
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

/// The exit code for an error.
pub fn code(e: &Error) -> ExitCode {
    row(e).0
}

/// The family of an error as the CLI's `--json` errors name it (`kind`:
/// `not_found`, `validation`, `locked`, …, unchanged since before the
/// library's kinds were split); the finer kind is [`Error::kind`].
pub fn json_kind(e: &Error) -> &'static str {
    row(e).1
}

/// The one table: each kind's exit code and `--json` family.
fn row(e: &Error) -> (ExitCode, &'static str) {
    use ExitCode::{Conflict, Integrity, Locked, NotFound, Unavailable, Usage};
    match e {
        Error::NotFound { .. } | Error::Deleted { .. } => (NotFound, "not_found"),
        Error::Auth { .. } | Error::PassphraseNeeded { .. } | Error::NoSuchSlot { .. } => {
            (Locked, "auth")
        }
        Error::Locked { .. } | Error::NoCredential { .. } | Error::CredentialNeeded { .. } => {
            (Locked, "locked")
        }
        Error::Integrity { .. } => (Integrity, "integrity"),
        Error::Conflict { .. } => (Conflict, "conflict"),
        Error::Io { .. } => (Unavailable, "io"),
        Error::Unavailable { .. } | Error::NoVault { .. } | Error::Stale { .. } => {
            (Unavailable, "unavailable")
        }
        Error::InvalidName { .. } => (Usage, "invalid_name"),
        Error::Unsupported { .. } => (Usage, "unsupported"),
        Error::ReadOnly { .. } => (Usage, "read_only"),
        Error::Validation(_)
        | Error::Untrusted { .. }
        | Error::UnsafePath { .. }
        | Error::Exists { .. }
        | Error::TooLarge { .. }
        | Error::Malformed { .. }
        | Error::InvalidOption { .. }
        | Error::UnsupportedFormat { .. }
        | Error::SlotsUnavailable { .. }
        | Error::WrongKeyType { .. }
        | Error::KeyBudgetSpent { .. }
        | Error::KeyLabel { .. }
        | Error::WeakPassword { .. }
        | Error::RuleFailed { .. } => (Usage, "validation"),
        // A kind added to the library later: a usage error until it has
        // its own row.
        _ => (Usage, "validation"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_has_its_documented_code() {
        let cases: [(Error, u8); 8] = [
            (
                Error::NotFound {
                    store: "v".into(),
                    what: "'a'".into(),
                },
                1,
            ),
            (
                Error::Deleted {
                    store: "v".into(),
                    name: "a".into(),
                },
                1,
            ),
            (Error::Validation("x".into()), 2),
            (
                Error::Auth {
                    store: "v".into(),
                    reason: "x".into(),
                },
                3,
            ),
            (
                Error::Integrity {
                    store: "v".into(),
                    detail: "x".into(),
                },
                4,
            ),
            (
                Error::Conflict {
                    store: "v".into(),
                    name: "a".into(),
                    expected: 1,
                    found: 2,
                },
                5,
            ),
            (
                Error::Unavailable {
                    store: "v".into(),
                    reason: "x".into(),
                },
                6,
            ),
            (
                Error::NoVault {
                    path: "/nowhere".into(),
                },
                6,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(code(&e) as u8, want, "{e}");
        }
    }

    #[test]
    fn json_kinds_of_the_older_kinds_are_unchanged() {
        let older = [
            Error::NotFound {
                store: "v".into(),
                what: "'a'".into(),
            },
            Error::Auth {
                store: "v".into(),
                reason: "x".into(),
            },
            Error::Locked {
                store: "v".into(),
                hint: "x".into(),
            },
            Error::Integrity {
                store: "v".into(),
                detail: "x".into(),
            },
            Error::Unavailable {
                store: "v".into(),
                reason: "x".into(),
            },
            Error::ReadOnly { store: "v".into() },
            Error::Validation("x".into()),
        ];
        for e in older {
            assert_eq!(json_kind(&e), e.kind(), "{e:?}");
        }
        // The newer kinds keep the family they had as text.
        assert_eq!(
            json_kind(&Error::NoVault { path: "/v".into() }),
            "unavailable"
        );
        assert_eq!(
            json_kind(&Error::NoCredential {
                store: "v".into(),
                password_slot: true
            }),
            "locked"
        );
        assert_eq!(
            json_kind(&Error::Exists { path: "/o".into() }),
            "validation"
        );
    }
}
