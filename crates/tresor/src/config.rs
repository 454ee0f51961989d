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
    /// Where each profile's `stores` list starts, for later problems.
    profile_at: BTreeMap<String, Position>,
    /// Where each store option is, for later problems.
    option_at: BTreeMap<(String, String), Position>,
}

/// Where a config file was looked for and found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// `--config PATH` or `TRESOR_CONFIG`: must exist. The user's explicit
    /// choice, so it needs no approval.
    Explicit(PathBuf),
    /// `./tresor.toml`: came with the folder, so it is used only once the
    /// user approved it ([`crate::trust`]).
    Project(PathBuf),
    /// `$XDG_CONFIG_HOME/tresor/config.toml`: the user's own.
    User(PathBuf),
    /// No config: the user vault alone.
    None,
}

impl Discovery {
    /// The file, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Discovery::Explicit(p) | Discovery::Project(p) | Discovery::User(p) => Some(p),
            Discovery::None => None,
        }
    }

    /// How it was found: `explicit`, `project`, `user` or `none`.
    pub fn how(&self) -> &'static str {
        match self {
            Discovery::Explicit(_) => "explicit",
            Discovery::Project(_) => "project",
            Discovery::User(_) => "user",
            Discovery::None => "none",
        }
    }
}

/// Finds the config file: `explicit` (`--config`), else `TRESOR_CONFIG`,
/// else `./tresor.toml`, else `$XDG_CONFIG_HOME/tresor/config.toml`
/// (`~/.config/tresor/config.toml` when `XDG_CONFIG_HOME` is unset).
pub fn discover(explicit: Option<&Path>) -> Discovery {
    if let Some(p) = explicit {
        return Discovery::Explicit(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
        return Discovery::Explicit(PathBuf::from(p));
    }
    let local = PathBuf::from(PROJECT_FILE);
    if local.is_file() {
        return Discovery::Project(local);
    }
    match user_config_path() {
        Some(p) if p.is_file() => Discovery::User(p),
        _ => Discovery::None,
    }
}

/// The project config's name, looked for in the current folder.
pub const PROJECT_FILE: &str = "tresor.toml";
/// Largest config file read.
pub const MAX_CONFIG_LEN: u64 = 1024 * 1024;

/// The user config file: `$XDG_CONFIG_HOME/tresor/config.toml`, else
/// `~/.config/tresor/config.toml`.
pub fn user_config_path() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("tresor").join("config.toml"))
}

/// A config file's bytes, read once from one open descriptor whose owner
/// and mode were checked on that descriptor (not on the path, which could
/// be swapped in between), with their SHA-256 and the file's canonical
/// path. What is approved ([`crate::trust`]) and what is parsed are these
/// same bytes.
///
/// Refused: anything but a regular file, a file owned by another user
/// (root's files excepted), a file group or others may write, a file larger
/// than [`MAX_CONFIG_LEN`], text that is not UTF-8.
#[derive(Clone)]
pub struct ConfigFile {
    path: PathBuf,
    canonical: PathBuf,
    sha256: [u8; 32],
    text: String,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The text may hold literal credentials.
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .field("canonical", &self.canonical)
            .field("sha256", &self.sha256_hex())
            .finish_non_exhaustive()
    }
}

impl ConfigFile {
    /// Opens `path`, checks the open file, reads it.
    pub fn read(path: &Path) -> Result<Self> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;

        let io = |source| Error::Io {
            store: "config".into(),
            path: path.to_path_buf(),
            source,
        };
        // O_NONBLOCK: a FIFO planted under the name must not hang the open.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => {
                    Error::Validation(format!("the config file {} does not exist", path.display()))
                }
                _ => io(source),
            })?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(Error::Validation(format!(
                "the config file {} is not a regular file",
                path.display()
            )));
        }
        if let Some(why) = unsafe_owner_or_mode(&meta) {
            return Err(Error::Validation(format!(
                "the config file {} {why}: tresor refuses it, since whoever can change it decides                  which servers receive your tokens and values. {}",
                path.display(),
                fix_hint(path, &meta)
            )));
        }
        let mut bytes = Vec::new();
        (&file)
            .take(MAX_CONFIG_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_CONFIG_LEN {
            return Err(Error::Validation(format!(
                "the config file {} is larger than {MAX_CONFIG_LEN} bytes",
                path.display()
            )));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest.as_ref());
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::Validation(format!(
                "the config file {} is not UTF-8 text",
                path.display()
            ))
        })?;
        let canonical = opened_path(&file)
            .or_else(|| std::fs::canonicalize(path).ok())
            .ok_or_else(|| {
                Error::Validation(format!(
                    "cannot find the absolute path of the config file {}",
                    path.display()
                ))
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            canonical,
            sha256,
            text,
        })
    }

    /// The path it was read from, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The canonical absolute path of the file that was opened.
    pub fn canonical(&self) -> &Path {
        &self.canonical
    }

    /// The SHA-256 of its bytes.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// The SHA-256 of its bytes, lower-case hex.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Its text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Parses it; every problem is in the error, one per line.
    pub fn parse(&self) -> Result<Config> {
        Config::parse(&self.text, Some(&self.path)).map_err(|problems| problems_error(&problems))
    }
}

/// Why a file with this metadata must not be trusted as config (or trust
/// list), or `None`: it must be owned by the current user or by root, and
/// not writable by group or others.
pub(crate) fn unsafe_owner_or_mode(meta: &std::fs::Metadata) -> Option<String> {
    use tresor_core::perm::{Closed, Owners, check};
    check(meta, Owners::MeOrRoot, Closed::ToWriters)
        .err()
        .map(|why| why.to_string())
}

fn fix_hint(path: &Path, meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let word = crate::trust::shell_word(&path.display().to_string());
    let me = tresor_core::perm::current_uid();
    if meta.uid() != me && meta.uid() != 0 {
        format!(
            "Use a config of your own (copy it after reviewing it: `cp {word} ~/my-tresor.toml`)"
        )
    } else {
        format!("Fix it with `chmod go-w {word}`")
    }
}

/// The path of the file `file` has open (Linux: `/proc/self/fd`), so the
/// path recorded is the file that was read, whatever the name pointed at.
fn opened_path(file: &std::fs::File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    (link.is_absolute() && !link.to_string_lossy().ends_with(" (deleted)")).then_some(link)
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
                        Error::Validation(format!("{m} (named by --config or {CONFIG_ENV})"))
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
        let mut p = Parser {
            text,
            file: path.map(Path::to_path_buf),
            problems: Vec::new(),
            declared: BTreeSet::new(),
            named_at: BTreeMap::new(),
        };
        let config = p.document();
        p.problems.sort_by_key(|x| (x.line, x.column));
        (config, p.problems)
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

/// Top-level keys other features read (`tresor check`, `run`, validation
/// rules; `pkcs11`, the allowed PKCS#11 modules, read from the user's own
/// config only by `pkcs11_allow`): accepted here, checked by those features.
const OTHER_TOP_LEVEL: [&str; 3] = ["secrets", "rules", "pkcs11"];
/// Keys of a `[[stores]]` entry the manager reads; the rest are the store's
/// own options.
const STORE_KEYS: [&str; 6] = ["name", "kind", "priority", "read_only", "required", "cache"];

struct Parser<'t> {
    text: &'t str,
    file: Option<PathBuf>,
    problems: Vec<Problem>,
    /// Every store name given, valid entry or not.
    declared: BTreeSet<String>,
    /// Where each profile names each store.
    named_at: BTreeMap<(String, String), Position>,
}

impl Parser<'_> {
    fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Position { line, column }
    }

    fn problem(&mut self, offset: usize, message: impl Into<String>) {
        let at = self.position(offset);
        self.problems.push(Problem {
            file: self.file.clone(),
            line: at.line,
            column: at.column,
            message: message.into(),
        });
    }

    fn document(&mut self) -> Config {
        let mut config = Config {
            path: self.file.clone(),
            ..Config::default()
        };
        let (root, errors) = DeTable::parse_recoverable(self.text);
        for e in errors {
            let offset = e.span().map_or(0, |s| s.start);
            let message = format!("TOML syntax: {}", e.message().trim());
            self.problem(offset, message);
        }
        let root = root.into_inner();
        let mut profile_default: Option<Spanned<String>> = None;
        for (key, value) in root.iter() {
            match key.get_ref().as_ref() {
                "profile" => match value.get_ref() {
                    DeValue::String(s) => {
                        profile_default = Some(Spanned::new(value.span(), s.to_string()))
                    }
                    other => self.problem(
                        value.span().start,
                        format!("profile must be a string, not {}", other.type_str()),
                    ),
                },
                "stores" => self.stores(value, &mut config),
                "profiles" => self.profiles(value, &mut config),
                k if OTHER_TOP_LEVEL.contains(&k) => {}
                k => self.problem(
                    key.span().start,
                    format!(
                        "unknown top-level key '{k}' (expected profile, stores, profiles, secrets, rules or pkcs11)"
                    ),
                ),
            }
        }
        // Cross references, now that every store and profile is known.
        let mut later = Vec::new();
        for (pname, profile) in &config.profiles {
            for s in &profile.stores {
                if !self.declared.contains(s) {
                    later.push((
                        self.named_at[&(pname.clone(), s.clone())],
                        format!("profile '{pname}' names store '{s}', which is not defined"),
                    ));
                }
            }
        }
        if let Some(p) = profile_default {
            if config.profiles.contains_key(p.get_ref()) {
                config.profile = Some(p.get_ref().clone());
            } else {
                later.push((
                    self.position(p.span().start),
                    format!(
                        "profile = \"{}\" names no [profiles.{}] table",
                        p.get_ref(),
                        p.get_ref()
                    ),
                ));
            }
        }
        for (at, message) in later {
            self.problems.push(config.problem(at, message));
        }
        config
    }

    fn stores(&mut self, value: &Spanned<DeValue<'_>>, config: &mut Config) {
        let DeValue::Array(items) = value.get_ref() else {
            self.problem(
                value.span().start,
                "stores must be an array of tables: write each store as [[stores]]",
            );
            return;
        };
        let mut seen: BTreeMap<String, Position> = BTreeMap::new();
        for item in items.iter() {
            let DeValue::Table(table) = item.get_ref() else {
                self.problem(item.span().start, "each entry of stores must be a table");
                continue;
            };
            let name = match table.get("name").map(|v| (v.span(), v.get_ref())) {
                Some((span, DeValue::String(s))) => Some((span, s.to_string())),
                _ => None,
            };
            let mut duplicate = false;
            if let Some((span, name)) = &name {
                if let Some(first) = seen.get(name) {
                    let message = format!(
                        "duplicate store name '{name}' (first defined at line {})",
                        first.line
                    );
                    self.problem(span.start, message);
                    duplicate = true;
                } else {
                    let at = self.position(item.span().start);
                    seen.insert(name.clone(), at);
                    self.declared.insert(name.clone());
                }
            }
            // A duplicate is still checked, so every problem shows at once.
            if let Some(store) = self.store(item.span().start, table, config)
                && !duplicate
            {
                config.stores.push(store);
            }
        }
    }

    fn store(
        &mut self,
        start: usize,
        table: &DeTable<'_>,
        config: &mut Config,
    ) -> Option<StoreConfig> {
        let at = self.position(start);
        let name = match table.get("name").map(|v| (v.span(), v.get_ref())) {
            Some((span, DeValue::String(s))) => {
                if valid_store_name(s) {
                    Some(s.to_string())
                } else {
                    self.problem(
                        span.start,
                        format!("store name {s:?} is not valid: use 1 to 64 of A-Z a-z 0-9 . _ -"),
                    );
                    None
                }
            }
            Some((span, other)) => {
                self.problem(
                    span.start,
                    format!("name must be a string, not {}", other.type_str()),
                );
                None
            }
            None => {
                self.problem(start, "this store has no name (add name = \"…\")");
                None
            }
        };
        let label = name.clone().unwrap_or_else(|| "?".into());
        let kind = match table.get("kind").map(|v| (v.span(), v.get_ref())) {
            Some((span, DeValue::String(s))) => match StoreKind::parse(s) {
                Some(k) => Some(k),
                None => {
                    self.problem(
                        span.start,
                        format!(
                            "store '{label}': unknown kind {s:?} (expected one of: {})",
                            StoreKind::ALL.map(StoreKind::as_str).join(", ")
                        ),
                    );
                    None
                }
            },
            Some((span, other)) => {
                self.problem(
                    span.start,
                    format!(
                        "store '{label}': kind must be a string, not {}",
                        other.type_str()
                    ),
                );
                None
            }
            None => {
                self.problem(
                    start,
                    format!(
                        "store '{label}' has no kind (vault, keychain, env, openbao, aws or azure)"
                    ),
                );
                None
            }
        };
        let priority = match table.get("priority") {
            None => DEFAULT_PRIORITY,
            Some(v) => match v.get_ref() {
                DeValue::Integer(i) => {
                    match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                        Ok(n) if (0..=MAX_PRIORITY).contains(&n) => n,
                        _ => {
                            self.problem(
                            v.span().start,
                            format!(
                                "store '{label}': priority must be a whole number from 0 to {MAX_PRIORITY}"
                            ),
                        );
                            DEFAULT_PRIORITY
                        }
                    }
                }
                other => {
                    self.problem(
                        v.span().start,
                        format!(
                            "store '{label}': priority must be a whole number from 0 to {MAX_PRIORITY}, not {}",
                            other.type_str()
                        ),
                    );
                    DEFAULT_PRIORITY
                }
            },
        };
        let mut flag = |key: &str| -> bool {
            match table.get(key) {
                None => false,
                Some(v) => match v.get_ref() {
                    DeValue::Boolean(b) => *b,
                    other => {
                        self.problem(
                            v.span().start,
                            format!(
                                "store '{label}': {key} must be true or false, not {}",
                                other.type_str()
                            ),
                        );
                        false
                    }
                },
            }
        };
        let read_only = flag("read_only");
        let required = flag("required");
        let cache = flag("cache");
        let mut options = BTreeMap::new();
        for (key, value) in table.iter() {
            let key_text = key.get_ref().as_ref();
            if STORE_KEYS.contains(&key_text) {
                continue;
            }
            let text = match value.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Integer(i) => i.as_str().to_string(),
                DeValue::Float(f) => f.as_str().to_string(),
                DeValue::Boolean(b) => b.to_string(),
                other => {
                    self.problem(
                        value.span().start,
                        format!(
                            "store '{label}': option '{key_text}' must be a string, number or boolean, not {}",
                            other.type_str()
                        ),
                    );
                    continue;
                }
            };
            match OptionValue::parse(&text) {
                Ok(v) => {
                    options.insert(key_text.to_string(), v);
                }
                Err(e) => self.problem(
                    value.span().start,
                    format!("store '{label}': option '{key_text}': {e}"),
                ),
            }
            let pos = self.position(key.span().start);
            config
                .option_at
                .insert((label.clone(), key_text.to_string()), pos);
        }
        let kind = kind?;
        if cache && !kind.is_remote() {
            let offset = table.get("cache").map_or(start, |v| v.span().start);
            self.problem(
                offset,
                format!(
                    "store '{label}': cache = true is for remote stores (openbao, aws, azure), not {kind}"
                ),
            );
        }
        Some(StoreConfig {
            name: name?,
            kind,
            priority,
            read_only,
            required,
            cache,
            options,
            at,
        })
    }

    fn profiles(&mut self, value: &Spanned<DeValue<'_>>, config: &mut Config) {
        let DeValue::Table(table) = value.get_ref() else {
            self.problem(
                value.span().start,
                "profiles must be a table of [profiles.NAME] tables",
            );
            return;
        };
        for (key, value) in table.iter() {
            let pname = key.get_ref().to_string();
            let DeValue::Table(body) = value.get_ref() else {
                self.problem(
                    value.span().start,
                    format!("profile '{pname}' must be a table: [profiles.{pname}]"),
                );
                continue;
            };
            for (k, _) in body.iter() {
                if k.get_ref().as_ref() != "stores" {
                    self.problem(
                        k.span().start,
                        format!(
                            "profile '{pname}': unknown key '{}' (expected stores)",
                            k.get_ref()
                        ),
                    );
                }
            }
            let Some(list) = body.get("stores") else {
                self.problem(
                    key.span().start,
                    format!("profile '{pname}' has no stores = [\"…\"] list"),
                );
                continue;
            };
            let at = self.position(list.span().start);
            let DeValue::Array(items) = list.get_ref() else {
                self.problem(
                    list.span().start,
                    format!("profile '{pname}': stores must be a list of store names"),
                );
                continue;
            };
            let mut stores = Vec::new();
            for item in items.iter() {
                match item.get_ref() {
                    DeValue::String(s) if !stores.contains(&s.to_string()) => {
                        let at = self.position(item.span().start);
                        self.named_at.insert((pname.clone(), s.to_string()), at);
                        stores.push(s.to_string())
                    }
                    DeValue::String(s) => self.problem(
                        item.span().start,
                        format!("profile '{pname}' names store '{s}' twice"),
                    ),
                    other => self.problem(
                        item.span().start,
                        format!(
                            "profile '{pname}': stores must hold store names, not {}",
                            other.type_str()
                        ),
                    ),
                }
            }
            if stores.is_empty() && items.iter().next().is_none() {
                self.problem(
                    list.span().start,
                    format!("profile '{pname}' uses no store"),
                );
            }
            config.profile_at.insert(pname.clone(), at);
            config.profiles.insert(pname, Profile { stores });
        }
    }
}

/// 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_store_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<(usize, usize, String)> {
        Config::parse(text, None)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.line, p.column, p.message))
            .collect()
    }

    #[test]
    fn the_design_sketch_parses() {
        let text = r#"
profile = "dev"

[[stores]]
name = "local"
kind = "vault"
priority = 50

[[stores]]
name = "team"
kind = "openbao"
address = "http://127.0.0.1:8200"
mount = "secret"
token = "ENV/BAO_TOKEN"
priority = 100
read_only = false
required = false
cache = true

[[stores]]
name = "env"
kind = "env"
prefix = "MODEL_FORGE_"
priority = 10

[profiles.dev]
stores = ["local", "env"]

[profiles.prod]
stores = ["team"]

[secrets]
OPENAI_API_KEY = { name = "openai/api_key", required = true, rule = "openai" }

[[rules]]
pattern = "huggingface/*"
prefix = "hf_"
"#;
        let c = Config::parse(text, None).unwrap();
        assert_eq!(c.stores.len(), 3);
        let team = c.store("team").unwrap();
        assert_eq!(team.kind, StoreKind::Openbao);
        assert!(team.cache && !team.required && !team.read_only);
        assert_eq!(team.options["token"], OptionValue::Env("BAO_TOKEN".into()));
        assert_eq!(team.options["mount"], OptionValue::Text("secret".into()));
        assert_eq!(c.profile.as_deref(), Some("dev"));
        let all: Vec<&str> = c
            .stores_for(None)
            .unwrap()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(all, ["env", "local", "team"]);
        let dev: Vec<&str> = c
            .stores_for(Some("dev"))
            .unwrap()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(dev, ["env", "local"]);
        assert!(c.stores_for(Some("nope")).is_err());
        assert_eq!(c.option_position("team", "token").unwrap().line, 14);
    }

    #[test]
    fn every_problem_is_reported_with_its_line_and_column() {
        let text = r#"profile = "staging"
colour = "blue"

[[stores]]
name = "a"
kind = "floppy"

[[stores]]
name = "a"
kind = "env"
priority = -3

[[stores]]
kind = "vault"
read_only = "yes"

[[stores]]
name = "bad name!"
kind = "env"

[[stores]]
name = "c"
kind = "vault"
cache = true
token = "SEC/../x"
nested = { a = 1 }

[profiles.prod]
stores = ["a", "ghost"]
"#;
        let got = problems(text);
        let want: &[(usize, usize, &str)] = &[
            (
                1,
                11,
                "profile = \"staging\" names no [profiles.staging] table",
            ),
            (2, 1, "unknown top-level key 'colour'"),
            (6, 8, "unknown kind \"floppy\""),
            (9, 8, "duplicate store name 'a' (first defined at line 4)"),
            (11, 12, "priority must be a whole number"),
            (13, 1, "this store has no name"),
            (15, 13, "read_only must be true or false, not string"),
            (18, 8, "store name \"bad name!\" is not valid"),
            (24, 9, "cache = true is for remote stores"),
            (25, 9, "option 'token': \"SEC/../x\""),
            (
                26,
                10,
                "option 'nested' must be a string, number or boolean",
            ),
            (
                29,
                16,
                "profile 'prod' names store 'ghost', which is not defined",
            ),
        ];
        for (line, column, text) in want {
            assert!(
                got.iter()
                    .any(|(l, c, m)| l == line && c == column && m.contains(text)),
                "missing {line}:{column} {text:?} in {got:#?}"
            );
        }
        assert_eq!(got.len(), want.len(), "{got:#?}");
    }

    #[test]
    fn syntax_errors_point_at_the_line() {
        let got = problems("[[stores]]\nname = \"a\"\nkind = \n");
        assert_eq!(got[0].0, 3, "{got:?}");
        assert!(got[0].2.starts_with("TOML syntax"), "{got:?}");
        let got = problems("[[stores]]\nname = \"a\"\nname = \"b\"\nkind = \"env\"\n");
        assert_eq!(got[0].0, 3, "{got:?}");
    }

    #[test]
    fn references_parse() {
        assert_eq!(
            OptionValue::parse("ENV/BAO_TOKEN").unwrap(),
            OptionValue::Env("BAO_TOKEN".into())
        );
        assert_eq!(
            OptionValue::parse("SEC/bao/token#2").unwrap(),
            OptionValue::Secret(SecretName::new("bao/token").unwrap(), Some(2))
        );
        assert!(OptionValue::parse("ENV/").is_err());
        assert!(OptionValue::parse("SEC/a#0").is_err());
        assert_eq!(
            OptionValue::parse("plain").unwrap(),
            OptionValue::Text("plain".into())
        );
    }
}
