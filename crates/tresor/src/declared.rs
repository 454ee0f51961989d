//! Declared secrets: what an application needs (`[secrets]` in
//! `tresor.toml`, see [`crate::config::Declared`]), fetched through the
//! manager for `tresor check`, `run` and `env`.
//!
//! ```
//! use tresor::config::Config;
//! use tresor::declared::Origin;
//! use tresor::{CreateOptions, Credential, SecretName, SecretValue, Tresor, Vault};
//!
//! let config = Config::parse(r#"
//! [secrets]
//! API_KEY = "app/api_key"
//! LOG_LEVEL = { name = "app/log_level", default = "info" }
//! TOKEN = { name = "app/token", required = false }
//! "#, None).map_err(|p| p[0].to_string())?;
//!
//! let dir = tempfile::tempdir()?;
//! let key = Credential::key_material(tresor::new_key_file_text().as_bytes()).unwrap();
//! let vault = Vault::create(&dir.path().join("v.db"), &key, &CreateOptions::default())?.vault;
//! let mut tresor = Tresor::builder().vault("local", vault, 50).build()?;
//! tresor.set(&SecretName::new("app/api_key")?, &SecretValue::copy_from(b"k-123"), &Default::default())?;
//!
//! let fetched = tresor.fetch_declared(config.declared(None)?);
//! assert_eq!(fetched[0].value.as_ref().unwrap().expose_secret(), b"k-123");
//! assert_eq!(fetched[0].origin, Origin::Store("local".into()));
//! assert_eq!(fetched[1].origin, Origin::Default);
//! assert_eq!(fetched[2].origin, Origin::Missing);
//! // Only required secrets without a value stop a program.
//! let mut fetched = fetched;
//! tresor::declared::require(&mut fetched)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use tresor_core::{Error, Result, SecretValue, Selector};

use crate::Tresor;
pub use crate::config::{Declared, Generate};

/// Where a declared secret's value came from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "store")]
pub enum Origin {
    /// The store named answered.
    Store(String),
    /// No store has it; the declaration's `default` was used.
    Default,
    /// No store has it and there is no default.
    Missing,
    /// A store failed (unavailable, locked, …): see [`Fetched::error`].
    Failed,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Store(s) => write!(f, "store {s}"),
            Origin::Default => f.write_str("default"),
            Origin::Missing => f.write_str("missing"),
            Origin::Failed => f.write_str("failed"),
        }
    }
}

/// One declared secret and what the manager found for it.
#[derive(Debug)]
pub struct Fetched {
    /// The declaration.
    pub declared: Declared,
    /// The value (zeroized when dropped), when there is one.
    pub value: Option<SecretValue>,
    /// Where it came from.
    pub origin: Origin,
    /// Why the read failed, when [`Origin::Failed`].
    pub error: Option<Error>,
}

impl Fetched {
    /// Whether a program may start without this one: it has a value, or it
    /// is not required.
    pub fn satisfied(&self) -> bool {
        self.value.is_some() || !self.declared.required
    }
}

/// Fails when a required declared secret has no value: with the first
/// store error met (a locked vault, a store down), taken out of its
/// [`Fetched`], else `NotFound` naming every such variable and secret.
/// Never a value.
pub fn require(fetched: &mut [Fetched]) -> Result<()> {
    if let Some(e) = fetched
        .iter_mut()
        .filter(|f| f.declared.required)
        .find_map(|f| f.error.take())
    {
        return Err(e);
    }
    let unmet: Vec<String> = fetched
        .iter()
        .filter(|f| !f.satisfied())
        .map(|f| format!("{} ('{}')", f.declared.var, f.declared.name))
        .collect();
    if unmet.is_empty() {
        return Ok(());
    }
    Err(Error::NotFound {
        store: "the configured stores".into(),
        what: format!("required declared secret {}", unmet.join(", ")),
    })
}

impl Tresor {
    /// The secrets declared for this manager's profile (set when it was
    /// built from a config; empty otherwise).
    pub fn declared(&self) -> &[Declared] {
        &self.declared
    }

    /// Reads every declared secret through the usual routing (stores by
    /// priority, offline copies, warnings), one result per declaration in
    /// order. A secret no store has takes its `default` if it has one.
    /// Store failures are kept per secret, so a caller can report them all
    /// ([`require`] turns them into one error).
    pub fn fetch_declared(&mut self, declared: &[Declared]) -> Vec<Fetched> {
        let requests: Vec<_> = declared
            .iter()
            .map(|d| (d.name.clone(), Selector::default()))
            .collect();
        let answers = self.get_many(&requests);
        declared
            .iter()
            .zip(answers)
            .map(|(d, answer)| match answer {
                Ok(found) => Fetched {
                    declared: d.clone(),
                    value: Some(found.secret.value),
                    origin: Origin::Store(found.store),
                    error: None,
                },
                Err(Error::NotFound { .. } | Error::Deleted { .. }) => match &d.default {
                    Some(text) => Fetched {
                        declared: d.clone(),
                        value: Some(SecretValue::copy_from(text.as_bytes())),
                        origin: Origin::Default,
                        error: None,
                    },
                    None => Fetched {
                        declared: d.clone(),
                        value: None,
                        origin: Origin::Missing,
                        error: None,
                    },
                },
                Err(e) => Fetched {
                    declared: d.clone(),
                    value: None,
                    origin: Origin::Failed,
                    error: Some(e),
                },
            })
            .collect()
    }
}
