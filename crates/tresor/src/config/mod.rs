//! `tresor.toml`: where it is found, what it may say, and every problem in
//! it with its file, line and column.
//!
//! A config decides where tokens and values are sent, so it is read only
//! from files the user controls ([`ConfigFile`]: owned by the user or root,
//! not writable by group or others), and a project's `./tresor.toml` only
//! once the user approved it ([`crate::trust`]; see
//! [`Config::discover_and_load`]).
//!
//! ```
//! use tresor::config::{Config, StoreKind};
//!
//! let text = r#"
//! [[stores]]
//! name = "env"
//! kind = "env"
//! prefix = "APP_"
//! priority = 10
//!
//! [[stores]]
//! name = "local"
//! kind = "vault"
//! priority = 50
//! "#;
//! let config = Config::parse(text, None).map_err(|p| p[0].to_string())?;
//! assert_eq!(config.stores[0].name, "env");
//! assert_eq!(config.stores[1].kind, StoreKind::Vault);
//!
//! let problems = Config::parse("[[stores]]\nname = \"x\"\nkind = \"floppy\"\n", None).unwrap_err();
//! assert_eq!((problems[0].line, problems[0].column), (3, 8));
//! assert!(problems[0].message.contains("unknown kind"));
//! # Ok::<(), String>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};
use tresor_core::{Error, Result, SecretName};

/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "TRESOR_CONFIG";
/// Environment variable naming the profile.
pub const PROFILE_ENV: &str = "TRESOR_PROFILE";
/// Priority of a store that gives none.
pub const DEFAULT_PRIORITY: i64 = 100;
/// Highest priority number accepted.
pub const MAX_PRIORITY: i64 = 1_000_000;

mod discover;
mod parse;
mod rules;
mod secrets;
#[cfg(test)]
mod tests;

pub(crate) use discover::unsafe_owner_or_mode;
pub use discover::{
    ConfigFile, Discovery, MAX_CONFIG_LEN, PROJECT_FILE, discover, user_config_path,
};
pub use secrets::{Declared, Generate, MAX_VAR_LEN, valid_var_name};

/// The kinds of store a config can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Amazon Secrets Manager.
    Aws,
    /// Azure Key Vault.
    Azure,
    /// Environment variables (read-only).
    Env,
    /// The OS keychain.
    Keychain,
    /// OpenBao / HashiCorp Vault KV v2.
    Openbao,
    /// An embedded tresor vault file.
    Vault,
}

impl StoreKind {
    /// Every kind, as written in `tresor.toml`.
    pub const ALL: [StoreKind; 6] = [
        StoreKind::Vault,
        StoreKind::Keychain,
        StoreKind::Env,
        StoreKind::Openbao,
        StoreKind::Aws,
        StoreKind::Azure,
    ];

    /// The kind as written in `tresor.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Aws => "aws",
            StoreKind::Azure => "azure",
            StoreKind::Env => "env",
            StoreKind::Keychain => "keychain",
            StoreKind::Openbao => "openbao",
            StoreKind::Vault => "vault",
        }
    }

    /// Parses a kind name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Whether the store lives on another machine (a network service): such
    /// stores may keep an offline cache, and `--offline` never contacts them.
    pub fn is_remote(self) -> bool {
        matches!(self, StoreKind::Openbao | StoreKind::Aws | StoreKind::Azure)
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[stores]]` entry.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Its name, unique in the file.
    pub name: String,
    /// Its kind.
    pub kind: StoreKind,
    /// Lower is asked first; ties keep the file's order.
    pub priority: i64,
    /// Never written to, even if the store could be.
    pub read_only: bool,
    /// Reads fail when the store is unavailable instead of skipping it.
    pub required: bool,
    /// Successful reads are also kept, encrypted, in the local vault, as a
    /// fallback when the store is unavailable.
    pub cache: bool,
    /// The store's own options (`address`, `prefix`, `path`, …), as text,
    /// references (`ENV/…`, `SEC/…`) not yet resolved.
    pub options: BTreeMap<String, OptionValue>,
    /// Where the entry starts.
    pub at: Position,
}

/// A store option as written: plain text or a reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionValue {
    /// A literal (TOML numbers and booleans as their text).
    Text(String),
    /// `ENV/VAR`: the environment variable's value.
    Env(String),
    /// `SEC/name` or `SEC/name#N`: a secret of the local vault.
    Secret(SecretName, Option<u64>),
}

impl OptionValue {
    /// Parses `ENV/…` and `SEC/…` references; anything else is text.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        if let Some(var) = text.strip_prefix("ENV/") {
            if var.is_empty() || var.contains('=') || var.contains('\0') {
                return Err(format!("{text:?} is not a valid ENV/VARIABLE reference"));
            }
            return Ok(OptionValue::Env(var.to_string()));
        }
        if let Some(rest) = text.strip_prefix("SEC/") {
            let (name, version) = match rest.rsplit_once('#') {
                Some((name, v)) => match v.parse::<u64>() {
                    Ok(v) if v > 0 => (name, Some(v)),
                    _ => return Err(format!("{text:?}: the version after # must be 1 or more")),
                },
                None => (rest, None),
            };
            let name = SecretName::new(name).map_err(|e| format!("{text:?}: {e}"))?;
            return Ok(OptionValue::Secret(name, version));
        }
        Ok(OptionValue::Text(text.to_string()))
    }

    /// A value that is not a credential (an address, a region), as
    /// written: the literal itself, or the reference.
    pub fn describe_plain(&self) -> String {
        match self {
            OptionValue::Text(t) => t.clone(),
            other => other.describe(),
        }
    }

    /// How the value is described in messages: references as written,
    /// literals not at all (they may be credentials).
    pub fn describe(&self) -> String {
        match self {
            OptionValue::Text(_) => "a literal".into(),
            OptionValue::Env(v) => format!("ENV/{v}"),
            OptionValue::Secret(n, None) => format!("SEC/{n}"),
            OptionValue::Secret(n, Some(v)) => format!("SEC/{n}#{v}"),
        }
    }
}

/// Where one credential of a store comes from, as its config says: shown
/// by `tresor stores` and `doctor` so the user sees what a config sends
/// where. Never the credential itself.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CredentialSource {
    /// The option that gives it (`token`, `secret_id`, `client_secret`), or
    /// `None` for a credential the store finds by itself.
    pub option: Option<String>,
    /// `secret` (a `SEC/…` reference to the local vault), `env` (an
    /// `ENV/…` reference), `literal` (written in the config), `ambient`
    /// (found by the store: environment variables, credential files,
    /// metadata services, a CLI login) or `none`.
    pub kind: &'static str,
    /// `SEC/bao/token`, `ENV/BAO_TOKEN`, or what the store reads.
    pub from: String,
}

impl CredentialSource {
    fn of(option: &str, value: &OptionValue) -> Self {
        Self {
            option: Some(option.to_string()),
            kind: match value {
                OptionValue::Secret(..) => "secret",
                OptionValue::Env(_) => "env",
                OptionValue::Text(_) => "literal",
            },
            from: match value {
                OptionValue::Text(_) => "a literal in the config".to_string(),
                other => other.describe(),
            },
        }
    }

    fn ambient(from: impl Into<String>) -> Self {
        Self {
            option: None,
            kind: "ambient",
            from: from.into(),
        }
    }

    fn none(from: impl Into<String>) -> Self {
        Self {
            option: None,
            kind: "none",
            from: from.into(),
        }
    }
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.option, self.kind) {
            (Some(o), _) => write!(f, "{o} from {}", self.from),
            (None, "ambient") => write!(f, "ambient: {}", self.from),
            (None, _) => f.write_str(&self.from),
        }
    }
}

impl StoreConfig {
    /// Where the store's credentials come from (see [`CredentialSource`]),
    /// read from the options as written: nothing is resolved.
    pub fn credentials(&self) -> Vec<CredentialSource> {
        let given = |keys: &[&str]| -> Vec<CredentialSource> {
            keys.iter()
                .filter_map(|k| self.options.get(*k).map(|v| CredentialSource::of(k, v)))
                .collect()
        };
        let flag = |key: &str| matches!(self.options.get(key), Some(OptionValue::Text(t)) if matches!(t.trim(), "true" | "yes" | "1"));
        match self.kind {
            StoreKind::Openbao => {
                let mut out = given(&["token", "role_id", "secret_id"]);
                if flag("token_from_env") {
                    out.push(CredentialSource::ambient(
                        "the environment's BAO_TOKEN, else VAULT_TOKEN (token_from_env = true)",
                    ));
                }
                if out.is_empty() {
                    out.push(CredentialSource::none(
                        "none given (the store cannot start)",
                    ));
                }
                out
            }
            StoreKind::Aws => {
                let profile = self.options.get("profile").map_or(
                    "AWS_PROFILE or default".to_string(),
                    OptionValue::describe_plain,
                );
                vec![CredentialSource::ambient(format!(
                    "the AWS default chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, \
                     the shared credentials of profile {profile}, web identity, container or \
                     instance metadata"
                ))]
            }
            StoreKind::Azure => {
                let mut out = given(&["client_secret"]);
                let credential = match self.options.get("credential") {
                    Some(OptionValue::Text(t)) => t.as_str(),
                    _ if !out.is_empty() => "client-secret",
                    _ => "developer-tools",
                };
                match credential {
                    "managed-identity" => out.push(CredentialSource::ambient(
                        "the Azure managed identity of this machine",
                    )),
                    "developer-tools" => out.push(CredentialSource::ambient(
                        "the Azure CLI / Azure Developer CLI login",
                    )),
                    _ => {}
                }
                out
            }
            StoreKind::Env => vec![CredentialSource::none(
                "none (reads this process's environment)",
            )],
            StoreKind::Keychain => vec![CredentialSource::none(
                "none (the OS keychain of this user)",
            )],
            StoreKind::Vault => vec![CredentialSource::none(
                "none sent anywhere (a local vault file, unlocked by the unlock chain)",
            )],
        }
    }

    /// Where the store sends requests, credentials and values: its
    /// `address`, `endpoint` or `vault_url` as written (a reference is
    /// shown as written), the provider's own service, or `None` for a store
    /// on this machine.
    pub fn destination(&self) -> Option<String> {
        let option = |k: &str| self.options.get(k).map(OptionValue::describe_plain);
        match self.kind {
            StoreKind::Openbao => Some(option("address").unwrap_or_else(|| "(no address)".into())),
            StoreKind::Aws => Some(option("endpoint").unwrap_or_else(|| {
                format!(
                    "AWS Secrets Manager ({})",
                    option("region").map_or("the default chain's region".to_string(), |r| r)
                )
            })),
            StoreKind::Azure => {
                Some(option("vault_url").unwrap_or_else(|| "(no vault_url)".into()))
            }
            StoreKind::Env | StoreKind::Keychain | StoreKind::Vault => None,
        }
    }
}

/// A `[profiles.NAME]` table.
#[derive(Clone, Debug)]
pub struct Profile {
    /// The stores it uses, by name, in the order given.
    pub stores: Vec<String>,
    /// The secrets declared for it: the top level's `[secrets]` with its
    /// own `[profiles.NAME.secrets]` merged over them.
    pub secrets: Vec<Declared>,
}

/// A 1-based line and column in the config file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

/// One problem found in a config file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file, when the text came from one.
    pub file: Option<PathBuf>,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
    /// What is wrong; never an option's value.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_ref()
            .map_or_else(|| "tresor.toml".to_string(), |p| p.display().to_string());
        write!(f, "{file}:{}:{}: {}", self.line, self.column, self.message)
    }
}

/// A parsed `tresor.toml`.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The file it came from.
    pub path: Option<PathBuf>,
    /// The top-level `profile = "…"` default.
    pub profile: Option<String>,
    /// The stores, in file order.
    pub stores: Vec<StoreConfig>,
    /// The profiles.
    pub profiles: BTreeMap<String, Profile>,
    /// The top-level `[secrets]`, in file order.
    pub secrets: Vec<Declared>,
    /// Validation rules: the presets and the `[[rules]]` entries (see
    /// [`tresor_core::rules`]).
    pub rules: tresor_core::rules::RuleSet,
    /// Where each profile's `stores` list starts, for later problems.
    profile_at: BTreeMap<String, Position>,
    /// Where each store option is, for later problems.
    option_at: BTreeMap<(String, String), Position>,
}

impl Config {
    /// Reads and parses a file (owner and mode checked, see
    /// [`ConfigFile`]), without asking whether it is trusted: for files the
    /// user named (`--config`, `TRESOR_CONFIG`) and the user config. Every
    /// problem is in the error, one per line.
    pub fn load(path: &Path) -> Result<Self> {
        ConfigFile::read(path)?.parse()
    }

    /// The config found by [`discover`], or `None` when there is none. A
    /// project config (`./tresor.toml`) must be approved in the user's trust
    /// list ([`crate::trust`]) with exactly the bytes read, or this fails
    /// (exit 2) before anything is unlocked, resolved or contacted.
    pub fn discover_and_load(explicit: Option<&Path>) -> Result<Option<Self>> {
        match discover(explicit) {
            Discovery::Explicit(p) => Self::load(&p)
                .map_err(|e| match e {
                    Error::Validation(m) if m.ends_with("does not exist") => {
                        Error::Validation(format!("{m} (named explicitly or by {CONFIG_ENV})"))
                    }
                    e => e,
                })
                .map(Some),
            Discovery::User(p) => Self::load(&p).map(Some),
            Discovery::Project(p) => {
                let file = ConfigFile::read(&p)?;
                crate::trust::TrustList::open()?.check(&file)?;
                file.parse().map(Some)
            }
            Discovery::None => Ok(None),
        }
    }

    /// Parses config text. On failure, every problem found, in file order.
    pub fn parse(text: &str, path: Option<&Path>) -> std::result::Result<Self, Vec<Problem>> {
        let (config, problems) = Self::parse_lenient(text, path);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// Parses config text, keeping what is valid: the config holds the
    /// stores and profiles without problems, next to every problem found
    /// (for `tresor config check`, which goes on to check references).
    pub fn parse_lenient(text: &str, path: Option<&Path>) -> (Self, Vec<Problem>) {
        parse::parse(text, path)
    }

    /// The store named `name`.
    pub fn store(&self, name: &str) -> Option<&StoreConfig> {
        self.stores.iter().find(|s| s.name == name)
    }

    /// The profile in effect: `explicit` (`--profile`), else
    /// `TRESOR_PROFILE`, else the file's `profile = …`, else none (every
    /// store).
    pub fn profile_name(&self, explicit: Option<&str>) -> Option<String> {
        explicit
            .map(str::to_string)
            .or_else(|| std::env::var(PROFILE_ENV).ok().filter(|v| !v.is_empty()))
            .or_else(|| self.profile.clone())
    }

    /// The stores a profile uses, sorted by priority (ties: the profile's
    /// order); with no profile, every store, sorted by priority (ties: file
    /// order).
    pub fn stores_for(&self, profile: Option<&str>) -> Result<Vec<&StoreConfig>> {
        let mut chosen: Vec<&StoreConfig> = match profile {
            None => self.stores.iter().collect(),
            Some(name) => {
                let p = self.profiles.get(name).ok_or_else(|| {
                    Error::Validation(format!(
                        "no profile '{name}' in {}{}",
                        self.file_name(),
                        if self.profiles.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " (profiles: {})",
                                self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                            )
                        }
                    ))
                })?;
                p.stores
                    .iter()
                    .map(|s| {
                        self.store(s).ok_or_else(|| {
                            Error::Validation(format!("profile '{name}' names no store '{s}'"))
                        })
                    })
                    .collect::<Result<_>>()?
            }
        };
        chosen.sort_by_key(|s| s.priority);
        Ok(chosen)
    }

    /// The secrets declared for `profile` (see [`Config::profile_name`]):
    /// its `[profiles.NAME.secrets]` merged over `[secrets]`, or `[secrets]`
    /// alone with no profile. An unknown profile is an error.
    pub fn declared(&self, profile: Option<&str>) -> Result<&[Declared]> {
        match profile {
            None => Ok(&self.secrets),
            Some(name) => self
                .profiles
                .get(name)
                .map(|p| p.secrets.as_slice())
                .ok_or_else(|| {
                    Error::Validation(format!("no profile '{name}' in {}", self.file_name()))
                }),
        }
    }

    /// Where option `key` of store `store` is written, for problems found
    /// after parsing (references, store options).
    pub fn option_position(&self, store: &str, key: &str) -> Option<Position> {
        self.option_at
            .get(&(store.to_string(), key.to_string()))
            .copied()
    }

    /// A problem at `at` in this file.
    pub fn problem(&self, at: Position, message: impl Into<String>) -> Problem {
        Problem {
            file: self.path.clone(),
            line: at.line,
            column: at.column,
            message: message.into(),
        }
    }

    fn file_name(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "tresor.toml".to_string(), |p| p.display().to_string())
    }
}

/// Several problems as one validation error, one per line.
pub fn problems_error(problems: &[Problem]) -> Error {
    Error::Validation(
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_store_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
