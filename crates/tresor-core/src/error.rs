//! The one error type every tresor operation returns.

use std::path::PathBuf;
use std::time::Duration;

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
    /// The secret was soft-deleted: not found for reads, and restorable.
    #[error("{store}: '{name}' is deleted")]
    Deleted {
        /// The store.
        store: String,
        /// The secret.
        name: String,
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
    /// No vault file exists at the path.
    #[error("no vault at {}", path.display())]
    NoVault {
        /// Where the vault was looked for.
        path: PathBuf,
    },
    /// The unlock chain found no credential to try and could not ask for
    /// one (no terminal, no prompt callback).
    #[error(
        "{store} is locked: no credential was found{}",
        if *password_slot { "" } else { ", and it has no password slot to ask for" }
    )]
    NoCredential {
        /// The store.
        store: String,
        /// Whether the vault has a password slot a prompt could open.
        password_slot: bool,
    },
    /// A file is encrypted to a passphrase and none was given.
    #[error("{what} is encrypted to a passphrase, and none was given")]
    PassphraseNeeded {
        /// What needs it.
        what: String,
    },
    /// A project config file is not on the user's trust list, or changed
    /// since it was approved. Nothing in it was used.
    #[error(
        "the project config {} {}, so it is not used: a config decides which servers receive \
         your credentials",
        path.display(),
        if *changed { "changed since you approved it" } else { "is not trusted" }
    )]
    Untrusted {
        /// The config file.
        path: PathBuf,
        /// The file was approved once and its bytes changed since.
        changed: bool,
    },
    /// tresor refuses a path: a link, a FIFO, a device, a file owned by
    /// someone else or open to other users.
    #[error("{}: {problem}", path.display())]
    UnsafePath {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A write would replace something that exists; tresor does not
    /// overwrite it.
    #[error("{} already exists; it is not overwritten", path.display())]
    Exists {
        /// The path.
        path: PathBuf,
    },
    /// Input is larger than tresor accepts.
    #[error("{what} is too large: the limit is {limit} bytes")]
    TooLarge {
        /// What was too large (a value, a header, a file).
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// Input could not be read as what it should be: a key file, a
    /// recovery key, metadata, an import, a header.
    #[error("{what}: {problem}")]
    Malformed {
        /// What was read (names a file or variable, never holds a value).
        what: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A store or config option is missing, unknown or wrong.
    #[error("store '{store}': option '{option}': {problem}")]
    InvalidOption {
        /// The store (or config section).
        store: String,
        /// The option.
        option: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A file's format version is one this build does not read.
    #[error("{what} has format {found}, which this build does not read (it reads {supported})")]
    UnsupportedFormat {
        /// The file.
        what: String,
        /// The version found.
        found: String,
        /// What this build reads.
        supported: String,
    },
    /// A master-key rotation found key slots no credential was given for;
    /// the caller may give them or choose to drop them.
    #[error("no credential was given for key slot(s) {}", slots.join(", "))]
    SlotsUnavailable {
        /// The slots, as `ID (kind)`.
        slots: Vec<String>,
    },
    /// A store was unreachable and its offline copy is older than allowed.
    #[error(
        "store '{store}' is unavailable and the offline copy of '{name}' is {} old, more than \
         the {} allowed",
        human_age(*age),
        human_age(*max_age)
    )]
    Stale {
        /// The store.
        store: String,
        /// The secret.
        name: String,
        /// The copy's age.
        age: Duration,
        /// The age allowed.
        max_age: Duration,
    },
    /// A named key is of another type than the operation needs.
    #[error("named key '{name}' is of type {key_type}; keys of that type {purpose}")]
    WrongKeyType {
        /// The key.
        name: String,
        /// Its type.
        key_type: String,
        /// What keys of that type are for.
        purpose: &'static str,
    },
    /// A version of an AES-256-GCM named key has sealed as many envelopes
    /// as random 96-bit nonces allow.
    #[error(
        "named key '{name}' version {version} has sealed the {limit} envelopes an AES-256-GCM \
         key version may seal (random 96-bit nonces: beyond that a repeated nonce becomes \
         likely enough to expose the key); a new version seals anew (older envelopes keep \
         opening), and for high volume a key of type xchacha20-poly1305, whose 192-bit \
         nonces need no count, suits"
    )]
    KeyBudgetSpent {
        /// The key.
        name: String,
        /// The spent version.
        version: u32,
        /// The budget.
        limit: u64,
    },
    /// A PKCS#11 key label names no usable key.
    #[error("{token}: the key labelled '{label}' {problem}")]
    KeyLabel {
        /// The token (and module).
        token: String,
        /// The label.
        label: String,
        /// What is wrong.
        problem: String,
    },
    /// A value failed a validation rule (a preset or a config `[[rules]]`
    /// entry). Names the secret, the rule and the check, never the value.
    #[error(
        "{} does not pass validation rule '{rule}' ({origin}): {problem}",
        name.as_ref().map_or_else(|| "the value".to_string(), |n| format!("'{n}'"))
    )]
    RuleFailed {
        /// The secret, when the value was about to be stored under a name.
        name: Option<String>,
        /// The rule's name.
        rule: String,
        /// Where the rule comes from: `preset`, or the config file and line.
        origin: String,
        /// Which check failed, in words that never hold the value.
        problem: String,
    },
    /// Input broke a rule no other kind covers.
    #[error("{0}")]
    Validation(String),
}

impl Error {
    /// A short machine-readable kind, used in `--json` errors and audit
    /// results. Stable: scripts and stored audit entries rely on it. Exit
    /// codes and remedy hints are the CLI's (`tresor-cli/src/exit.rs`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Auth { .. } => "auth",
            Error::Conflict { .. } => "conflict",
            Error::Integrity { .. } => "integrity",
            Error::InvalidName { .. } => "invalid_name",
            Error::Io { .. } => "io",
            Error::Locked { .. } => "locked",
            Error::NotFound { .. } => "not_found",
            Error::Deleted { .. } => "deleted",
            Error::ReadOnly { .. } => "read_only",
            Error::Unavailable { .. } => "unavailable",
            Error::Unsupported { .. } => "unsupported",
            Error::NoVault { .. } => "no_vault",
            Error::NoCredential { .. } => "no_credential",
            Error::PassphraseNeeded { .. } => "passphrase_needed",
            Error::Untrusted { .. } => "untrusted_config",
            Error::UnsafePath { .. } => "unsafe_path",
            Error::Exists { .. } => "exists",
            Error::TooLarge { .. } => "too_large",
            Error::Malformed { .. } => "malformed",
            Error::InvalidOption { .. } => "invalid_option",
            Error::UnsupportedFormat { .. } => "unsupported_format",
            Error::SlotsUnavailable { .. } => "slots_unavailable",
            Error::Stale { .. } => "stale",
            Error::WrongKeyType { .. } => "wrong_key_type",
            Error::KeyBudgetSpent { .. } => "key_budget_spent",
            Error::KeyLabel { .. } => "key_label",
            Error::RuleFailed { .. } => "rule_failed",
            Error::Validation(_) => "validation",
        }
    }
}

/// A duration as people say it: `45s`, `12m 5s`, `3h 20m`, `2d 4h`.
pub fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_stable_and_messages_name_no_value() {
        let nf = Error::NotFound {
            store: "vault".into(),
            what: "'a'".into(),
        };
        assert_eq!(nf.kind(), "not_found");
        assert_eq!(Error::Validation("x".into()).kind(), "validation");
        let conflict = Error::Conflict {
            store: "v".into(),
            name: "a".into(),
            expected: 1,
            found: 2,
        };
        assert_eq!(conflict.kind(), "conflict");
        assert_eq!(
            conflict.to_string(),
            "v: conflict on 'a': expected version 1, found 2"
        );
        let stale = Error::Stale {
            store: "bao".into(),
            name: "db/pw".into(),
            age: Duration::from_secs(7260),
            max_age: Duration::from_secs(3600),
        };
        assert_eq!(
            stale.to_string(),
            "store 'bao' is unavailable and the offline copy of 'db/pw' is 2h 1m old, more than \
             the 1h 0m allowed"
        );
    }

    #[test]
    fn library_messages_name_no_cli_flag_or_command() {
        let errors = [
            Error::NoVault { path: "/v".into() },
            Error::NoCredential {
                store: "vault".into(),
                password_slot: false,
            },
            Error::PassphraseNeeded {
                what: "f.age".into(),
            },
            Error::Untrusted {
                path: "/p/tresor.toml".into(),
                changed: true,
            },
            Error::SlotsUnavailable {
                slots: vec!["2 (keychain)".into()],
            },
            Error::KeyBudgetSpent {
                name: "app/k".into(),
                version: 1,
                limit: 1 << 32,
            },
        ];
        for e in errors {
            let text = e.to_string();
            assert!(!text.contains("--") && !text.contains("tresor "), "{text}");
        }
    }

    #[test]
    fn human_age_rounds_down_to_two_units() {
        assert_eq!(human_age(Duration::from_secs(59)), "59s");
        assert_eq!(human_age(Duration::from_secs(61)), "1m 1s");
        assert_eq!(human_age(Duration::from_secs(90_000)), "1d 1h");
    }
}
