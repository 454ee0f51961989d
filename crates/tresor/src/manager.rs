//! The manager: every configured store behind one set of operations.
//!
//! # Routing
//!
//! - **Reads** ask the stores in priority order (lower first); the first
//!   store that has the secret answers. `NotFound` (and `Unsupported`, e.g.
//!   a version selector on a store without versions) goes on to the next
//!   store. An unavailable store (server down, timeout) is skipped with one
//!   warning per store per process unless it is `required`, which fails the
//!   read. A store with `cache = true` answers from its offline copy in the
//!   local vault when it is unavailable, with a warning giving the copy's age.
//! - **Writes** go to the first writable store (not `read_only`, not a
//!   read-only kind such as `env`), or to the store named. A write is never
//!   redirected to another store because the first one is down: it fails.
//! - **Delete, history, undelete** act on one store: the one named, else the
//!   store that answers a read of the name (delete, history), else the first
//!   writable store that knows the deleted name (undelete). Deleting from one
//!   store can uncover a copy in a lower-priority store; `list` shows such
//!   shadowed copies.
//! - **List** merges every store that can list: each name once, from the
//!   store that would answer a read, with the stores it shadows.
//! - **Offline** (`--offline`): remote stores (openbao, aws, azure) are never
//!   contacted; those with `cache = true` answer from their offline copies,
//!   the rest are skipped with a warning. Local stores answer as usual.
//!   `max_age` bounds the age of any offline copy used.
//!
//! # The offline cache
//!
//! A copy lives in the local vault as an ordinary encrypted secret named
//! `.tresor/cache/<store>/<name>`, with metadata `tresor.source`,
//! `tresor.version` and `tresor.fetched_at` (ms since the epoch). It is
//! rewritten only when the value or version changed; otherwise only its
//! `tresor.fetched_at` moves. Names under `.tresor/` are reserved: the
//! manager refuses them and leaves them out of listings.
//!
//! ```
//! use tresor::{CreateOptions, Credential, SecretName, SecretValue, Selector, Tresor, Vault};
//!
//! let dir = tempfile::tempdir()?;
//! let key = Credential::key_material(tresor::new_key_file_text().as_bytes()).unwrap();
//! let vault = Vault::create(&dir.path().join("v.db"), &key, &CreateOptions::default())?.vault;
//! let env = tresor::stores::env::Env::from_map(
//!     [("GITHUB_TOKEN".to_string(), b"from-env".to_vec())].into(),
//! );
//! let mut tresor = Tresor::builder()
//!     .vault("local", vault, 50)
//!     .store("env", env, 10)
//!     .build()?;
//! let name = SecretName::new("github/token")?;
//! // env (priority 10) answers first; writes go to the first writable store.
//! assert_eq!(tresor.get(&name, Selector::default())?.store, "env");
//! let written = tresor.set(&name, &SecretValue::copy_from(b"from-vault"), &Default::default())?;
//! assert_eq!(written.store, "local");
//! let found = tresor.get_from("local", &name, Selector::default())?;
//! assert_eq!(found.secret.value.expose_secret(), b"from-vault");
//! let listed = tresor.list("")?;
//! assert_eq!((listed.entries[0].store.as_str(), listed.entries[0].shadowed.clone()), ("env", vec!["local".to_string()]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use zeroize::Zeroizing;

use tresor_core::{
    DeleteMode, Error, Health, Metadata, PutOptions, Result, Secret, SecretInfo, SecretName,
    SecretValue, Selector, Store, VersionInfo,
};
use tresor_stores::StoreOptions;
use tresor_vault::{LockedVault, OpenOptions, Vault};

use crate::config::{Config, CredentialSource, OptionValue, StoreConfig, StoreKind};

/// Names under this prefix are the manager's own (offline copies, doctor
/// probes): refused for users, hidden from listings.
pub const RESERVED_PREFIX: &str = ".tresor/";
/// Where offline copies live in the local vault: `.tresor/cache/<store>/<name>`.
pub const CACHE_PREFIX: &str = ".tresor/cache/";
/// Metadata key of an offline copy: the store it came from.
pub const CACHE_SOURCE: &str = "tresor.source";
/// Metadata key of an offline copy: the version the store gave.
pub const CACHE_VERSION: &str = "tresor.version";
/// Metadata key of an offline copy: when it was fetched (ms since the epoch).
pub const CACHE_FETCHED_AT: &str = "tresor.fetched_at";
/// How long a store that was found unavailable is not asked again.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Opens and unlocks a vault file (the local vault, or a `kind = "vault"`
/// store's `path`).
pub type VaultOpener = Box<dyn FnMut(&Path) -> Result<Vault> + Send>;
/// Reads a `SEC/name` (or `SEC/name#version`) reference's text for
/// [`check_config`].
pub type SecretLookup<'a> = dyn FnMut(&SecretName, Option<u64>) -> Result<Zeroizing<String>> + 'a;
/// Receives each warning (a skipped store, an offline copy used).
pub type WarningSink = Box<dyn FnMut(&str) + Send>;

/// How a store takes part, as `tresor.toml` says.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct StoreSettings {
    /// Lower is asked first.
    pub priority: i64,
    /// Never written to.
    pub read_only: bool,
    /// Reads fail when it is unavailable.
    pub required: bool,
    /// Keep offline copies of what it answers in the local vault.
    pub cache: bool,
    /// The store is on another machine: offline mode does not contact it.
    pub remote: bool,
}

impl StoreSettings {
    /// Priority `priority`, writable, optional, no cache.
    pub fn new(priority: i64) -> Self {
        Self {
            priority,
            read_only: false,
            required: false,
            cache: false,
            remote: false,
        }
    }
}

/// A value found, and where.
#[derive(Debug)]
pub struct Found {
    /// The secret.
    pub secret: Secret,
    /// The store that answered.
    pub store: String,
    /// Set when the answer is an offline copy rather than the store itself.
    pub cached: Option<CachedCopy>,
}

/// About an offline copy that answered a read.
#[derive(Clone, Debug, Serialize)]
pub struct CachedCopy {
    /// When it was fetched, ms since the epoch.
    pub fetched_at: i64,
    /// Its age.
    pub age_seconds: u64,
}

/// Where a write went.
#[derive(Clone, Debug, Serialize)]
pub struct Written {
    /// The store.
    pub store: String,
    /// The version it created.
    pub version: u64,
}

/// One name of a merged listing.
#[derive(Clone, Debug, Serialize)]
pub struct Listed {
    /// The entry, from the store that would answer a read.
    #[serde(flatten)]
    pub info: SecretInfo,
    /// That store.
    pub store: String,
    /// Lower-priority stores that hold the same name.
    pub shadowed: Vec<String>,
    /// Listed from an offline copy.
    pub cached: bool,
}

/// A merged listing.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Listing {
    /// The names, sorted.
    pub entries: Vec<Listed>,
    /// Stores that cannot list names, or were skipped, with why.
    pub not_listed: Vec<(String, String)>,
}

/// A row of `tresor stores`.
#[derive(Clone, Debug, Serialize)]
pub struct StoreStatus {
    /// The store's name.
    pub name: String,
    /// Its kind (`None` for a store given in code).
    pub kind: Option<StoreKind>,
    /// Its settings.
    #[serde(flatten)]
    pub settings: StoreSettings,
    /// Whether it can be used now.
    pub available: bool,
    /// Why not, or what it is.
    pub detail: String,
    /// Where its credentials come from, as the config says (empty for a
    /// store given in code).
    pub credentials: Vec<CredentialSource>,
    /// Where it sends requests (see [`StoreConfig::destination`]).
    pub sends_to: Option<String>,
}

/// What `doctor` found about one store.
#[derive(Clone, Debug, Serialize)]
pub struct Checkup {
    /// The store's name.
    pub name: String,
    /// Its kind.
    pub kind: Option<StoreKind>,
    /// Whether reads fail without it.
    pub required: bool,
    /// It answered.
    pub reachable: bool,
    /// It accepted our credentials.
    pub authenticated: bool,
    /// The write/read/delete probe: `ok`, `skipped` or `failed`.
    pub probe: &'static str,
    /// Details of the probe (why skipped or failed).
    pub probe_detail: String,
    /// The scratch name was removed again (`None`: nothing was written).
    pub cleaned_up: Option<bool>,
    /// Wall time of the whole check.
    pub latency_ms: f64,
    /// The store's own summary.
    pub detail: String,
    /// Offline copies kept for it (`None`: no cache).
    pub cached_copies: Option<usize>,
    /// Reachable, authenticated and the probe passed or was skipped.
    pub healthy: bool,
    /// Where its credentials come from, as the config says.
    pub credentials: Vec<CredentialSource>,
    /// Where it sends requests.
    pub sends_to: Option<String>,
}

/// Every store of a config (or given in code) behind one API. See the
/// [module docs](self) for the routing rules.
pub struct Tresor {
    entries: Vec<Entry>,
    local: Local,
    opener: VaultOpener,
    offline: bool,
    max_age: Option<Duration>,
    warn: WarningSink,
    warned: BTreeSet<String>,
}

struct Entry {
    name: String,
    kind: Option<StoreKind>,
    settings: StoreSettings,
    state: State,
    down: Option<(Instant, Error)>,
    credentials: Vec<CredentialSource>,
    sends_to: Option<String>,
}

enum State {
    /// Built on first use, from the config.
    Config(Box<StoreConfig>),
    /// The local vault.
    Local,
    /// Another vault file.
    Vault(Box<Vault>),
    /// Any other store.
    Ready(Box<dyn Store>),
}

enum Local {
    Path(PathBuf),
    Open(Box<Vault>),
}

impl std::fmt::Debug for Tresor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tresor")
            .field(
                "stores",
                &self.entries.iter().map(|e| &e.name).collect::<Vec<_>>(),
            )
            .field("offline", &self.offline)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Tresor`]: from a config, or store by store in code.
pub struct Builder {
    config: Option<Config>,
    profile: Option<String>,
    vault_path: Option<PathBuf>,
    local_vault: Option<Vault>,
    opener: Option<VaultOpener>,
    stores: Vec<(String, StoreSettings, State)>,
    offline: bool,
    max_age: Option<Duration>,
    warn: Option<WarningSink>,
}

impl Tresor {
    /// The manager as the environment configures it: the config file found
    /// by [`config::discover`](crate::config::discover) (a project's
    /// `./tresor.toml` only once the user approved it, see [`crate::trust`];
    /// otherwise this fails before anything is unlocked or contacted), the profile from
    /// `TRESOR_PROFILE` or the file, the local vault from `TRESOR_VAULT` or
    /// its default path, unlocked by the unlock chain's non-interactive
    /// steps ([`Unlock::from_environment`](crate::Unlock::from_environment),
    /// then keychain slots). With no config, the one store is the user vault,
    /// named `vault`.
    ///
    /// ```standalone_crate
    /// use tresor::{CreateOptions, Credential, SecretName, SecretValue, Selector, Tresor, Vault};
    ///
    /// // A vault unlocked by a key file, and a tresor.toml putting the
    /// // environment in front of it, as a deployment would set them up.
    /// let dir = tempfile::tempdir()?;
    /// let key_file = dir.path().join("key");
    /// std::fs::write(&key_file, tresor::new_key_file_text())?;
    /// // A key file must be the user's own, closed to group and others.
    /// use std::os::unix::fs::PermissionsExt as _;
    /// std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))?;
    /// let key = Credential::key_material(&std::fs::read(&key_file)?).unwrap();
    /// let vault_path = dir.path().join("vault.db");
    /// drop(Vault::create(&vault_path, &key, &CreateOptions::default())?);
    /// let config = dir.path().join("tresor.toml");
    /// std::fs::write(&config, "[[stores]]\nname = \"env\"\nkind = \"env\"\n\
    ///     prefix = \"DOC_\"\npriority = 10\n\n\
    ///     [[stores]]\nname = \"local\"\nkind = \"vault\"\npriority = 50\n")?;
    /// // SAFETY: this example runs alone in its process (standalone_crate).
    /// unsafe {
    ///     std::env::set_var("TRESOR_CONFIG", &config);
    ///     std::env::set_var("TRESOR_VAULT", &vault_path);
    ///     std::env::set_var("TRESOR_KEY_FILE", &key_file);
    ///     std::env::set_var("DOC_APP_TOKEN", "from-the-environment");
    /// }
    ///
    /// let mut tresor = Tresor::open()?;
    /// let token = SecretName::new("app/token")?;
    /// let found = tresor.get(&token, Selector::default())?;
    /// assert_eq!((found.store.as_str(), found.secret.value.expose_secret()),
    ///            ("env", &b"from-the-environment"[..]));
    /// // Writes skip the read-only environment and land in the vault.
    /// let db = SecretName::new("app/db")?;
    /// let written = tresor.set(&db, &SecretValue::copy_from(b"s3cret"), &Default::default())?;
    /// assert_eq!(written.store, "local");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open() -> Result<Self> {
        let mut b = Self::builder();
        if let Some(config) = Config::discover_and_load(None)? {
            b = b.config(config);
        }
        b.build()
    }

    /// A builder with nothing in it.
    pub fn builder() -> Builder {
        Builder {
            config: None,
            profile: None,
            vault_path: None,
            local_vault: None,
            opener: None,
            stores: Vec::new(),
            offline: false,
            max_age: None,
            warn: None,
        }
    }

    /// The store names, in the order reads ask them.
    pub fn store_names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// Reads `name`: the first store, in priority order, that has it.
    pub fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Found> {
        check_name(name)?;
        for i in 0..self.entries.len() {
            if let Some(found) = self.read_one(i, name, selector, false)? {
                return Ok(found);
            }
        }
        Err(Error::NotFound {
            store: self.store_names().join(", "),
            what: format!("'{name}'"),
        })
    }

    /// Reads `name` from the store named `store` only.
    pub fn get_from(
        &mut self,
        store: &str,
        name: &SecretName,
        selector: Selector,
    ) -> Result<Found> {
        check_name(name)?;
        let i = self.index(store)?;
        match self.read_one(i, name, selector, true)? {
            Some(found) => Ok(found),
            None => Err(Error::NotFound {
                store: store.to_string(),
                what: format!("'{name}'"),
            }),
        }
    }

    /// Writes `name` to the first writable store.
    pub fn set(
        &mut self,
        name: &SecretName,
        value: &SecretValue,
        options: &PutOptions,
    ) -> Result<Written> {
        let i = self.first_writable()?;
        self.put_at(i, name, value, options)
    }

    /// Writes `name` to the store named `store`.
    pub fn set_in(
        &mut self,
        store: &str,
        name: &SecretName,
        value: &SecretValue,
        options: &PutOptions,
    ) -> Result<Written> {
        let i = self.index(store)?;
        self.put_at(i, name, value, options)
    }

    /// Deletes `name` from the store named, or the store that answers a
    /// read of it. Returns that store's name.
    pub fn delete(
        &mut self,
        name: &SecretName,
        mode: DeleteMode,
        store: Option<&str>,
    ) -> Result<String> {
        let i = self.owner(name, store)?;
        self.refuse_offline(i)?;
        self.checked(i, |s| s.delete(name, mode))?;
        if self.entries[i].settings.cache {
            let copy = cache_name(&self.entries[i].name, name);
            if let Some(copy) = copy
                && let Ok(vault) = self.local_vault()
            {
                let _ = vault.delete(&copy, DeleteMode::Purge);
            }
        }
        Ok(self.entries[i].name.clone())
    }

    /// Restores a soft-deleted `name` in the store named, or the first
    /// writable store that knows it.
    pub fn undelete(&mut self, name: &SecretName, store: Option<&str>) -> Result<String> {
        check_name(name)?;
        if let Some(store) = store {
            let i = self.index(store)?;
            self.refuse_offline(i)?;
            self.checked(i, |s| s.undelete(name))?;
            return Ok(store.to_string());
        }
        for i in 0..self.entries.len() {
            if !self.writable(i) || (self.offline && self.is_remote(i)) {
                continue;
            }
            match self.checked(i, |s| s.undelete(name)) {
                Ok(()) => return Ok(self.entries[i].name.clone()),
                Err(Error::NotFound { .. } | Error::Unsupported { .. }) => continue,
                Err(e) if is_unavailable(&e) && !self.entries[i].settings.required => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::NotFound {
            store: self.store_names().join(", "),
            what: format!("deleted '{name}'"),
        })
    }

    /// Every version of `name`, from the store named or the one that
    /// answers a read of it.
    pub fn history(
        &mut self,
        name: &SecretName,
        store: Option<&str>,
    ) -> Result<(String, Vec<VersionInfo>)> {
        let i = self.owner(name, store)?;
        self.refuse_offline(i)?;
        let h = self.checked(i, |s| s.history(name))?;
        Ok((self.entries[i].name.clone(), h))
    }

    /// Runs `f` on the vault that holds `name` (the store named, or the one
    /// that answers a read): for vault-only operations such as promote,
    /// rollback and metadata. Another kind of store is `Unsupported`.
    pub fn with_vault<T>(
        &mut self,
        name: &SecretName,
        store: Option<&str>,
        operation: &'static str,
        f: impl FnOnce(&mut Vault) -> Result<T>,
    ) -> Result<(String, T)> {
        let i = self.owner(name, store)?;
        let store_name = self.entries[i].name.clone();
        let vault = self.vault_at(i, operation)?;
        f(vault).map(|t| (store_name, t))
    }

    /// Soft-deleted names of every vault store (or the one named).
    pub fn list_deleted(&mut self, prefix: &str, store: Option<&str>) -> Result<Listing> {
        let mut out = Listing::default();
        let indices: Vec<usize> = match store {
            Some(s) => vec![self.index(s)?],
            None => (0..self.entries.len()).collect(),
        };
        for i in indices {
            let name = self.entries[i].name.clone();
            match self.vault_at(i, "listing deleted secrets") {
                Ok(vault) => {
                    for info in vault.list(prefix, true)? {
                        if !info.name.as_str().starts_with(RESERVED_PREFIX) {
                            out.entries.push(Listed {
                                info,
                                store: name.clone(),
                                shadowed: Vec::new(),
                                cached: false,
                            });
                        }
                    }
                }
                Err(e @ Error::Unsupported { .. }) if store.is_none() => {
                    out.not_listed.push((name, e.to_string()))
                }
                Err(e) => return Err(e),
            }
        }
        out.entries
            .sort_by(|a, b| a.info.name.as_str().cmp(b.info.name.as_str()));
        Ok(out)
    }

    /// Names under `prefix` across every store, merged (see the module docs).
    pub fn list(&mut self, prefix: &str) -> Result<Listing> {
        let all: Vec<usize> = (0..self.entries.len()).collect();
        self.list_at(prefix, &all)
    }

    /// Names under `prefix` in the store named `store`.
    pub fn list_in(&mut self, store: &str, prefix: &str) -> Result<Listing> {
        let i = self.index(store)?;
        let listing = self.list_at(prefix, &[i])?;
        if let Some((_, why)) = listing.not_listed.first() {
            return Err(Error::Validation(format!("store '{store}': {why}")));
        }
        Ok(listing)
    }

    /// The stores, with their settings and whether each can be used now.
    /// Vaults are opened but not unlocked; other stores are asked for their
    /// health.
    pub fn status(&mut self) -> Vec<StoreStatus> {
        (0..self.entries.len())
            .map(|i| {
                let (available, detail) = self.availability(i);
                let e = &self.entries[i];
                StoreStatus {
                    name: e.name.clone(),
                    kind: e.kind,
                    settings: e.settings,
                    available,
                    detail,
                    credentials: e.credentials.clone(),
                    sends_to: e.sends_to.clone(),
                }
            })
            .collect()
    }

    /// Probes every store: reachable, authenticated, and a write / read /
    /// delete round trip on a scratch name under `.tresor/doctor/` (skipped
    /// for read-only stores), cleaned up whatever happens.
    pub fn doctor(&mut self) -> Vec<Checkup> {
        (0..self.entries.len()).map(|i| self.checkup(i)).collect()
    }

    /// Whether the manager runs offline.
    pub fn offline(&self) -> bool {
        self.offline
    }

    // ---- reads ----

    /// One store's answer: `Ok(None)` to go on to the next store.
    fn read_one(
        &mut self,
        i: usize,
        name: &SecretName,
        selector: Selector,
        only: bool,
    ) -> Result<Option<Found>> {
        if self.offline && self.is_remote(i) {
            if self.entries[i].settings.cache {
                let found = self.cached_read(i, name, selector, "offline")?;
                if found.is_none() && only {
                    return Err(Error::NotFound {
                        store: self.entries[i].name.clone(),
                        what: format!("an offline copy of '{name}'"),
                    });
                }
                return Ok(found);
            }
            let store = self.entries[i].name.clone();
            if only {
                return Err(Error::Unavailable {
                    store,
                    reason: "offline mode, and the store keeps no offline copies (cache = true)"
                        .into(),
                });
            }
            self.warn_once(
                &store,
                &format!("offline: store '{store}' was not asked (it keeps no offline copies)"),
            );
            return Ok(None);
        }
        match self.checked(i, |s| s.get(name, selector)) {
            Ok(secret) => {
                if self.entries[i].settings.cache {
                    self.keep_copy(i, &secret);
                }
                Ok(Some(Found {
                    secret,
                    store: self.entries[i].name.clone(),
                    cached: None,
                }))
            }
            Err(Error::NotFound { .. }) if !only => Ok(None),
            Err(Error::Unsupported { .. }) if !only => Ok(None),
            Err(e) if is_unavailable(&e) => {
                if self.entries[i].settings.cache
                    && let Some(found) = self.cached_read(i, name, selector, &e.to_string())?
                {
                    return Ok(Some(found));
                }
                if self.entries[i].settings.required || only {
                    return Err(e);
                }
                let store = self.entries[i].name.clone();
                self.warn_once(&store, &format!("{e}; skipped (optional store)"));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The offline copy of `name` kept for store `i`, if there is one young
    /// enough; warns that it answers.
    fn cached_read(
        &mut self,
        i: usize,
        name: &SecretName,
        selector: Selector,
        why: &str,
    ) -> Result<Option<Found>> {
        let store = self.entries[i].name.clone();
        let Some(copy) = cache_name(&store, name) else {
            return Ok(None);
        };
        let max_age = self.max_age;
        let vault = self.local_vault()?;
        let meta = match vault.metadata(&copy) {
            Ok(m) => m,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let fetched_at: i64 = meta
            .get(CACHE_FETCHED_AT)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let version: u64 = meta
            .get(CACHE_VERSION)
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        match selector {
            Selector::Label(tresor_core::Label::Current) => {}
            Selector::Version(v) if v == version => {}
            _ => return Ok(None),
        }
        let age = Duration::from_millis(now_ms().saturating_sub(fetched_at).max(0) as u64);
        if let Some(max) = max_age
            && age > max
        {
            let text = format!(
                "{why}; the offline copy of '{name}' from store '{store}' is {} old, more than the {} allowed",
                human_age(age),
                human_age(max)
            );
            self.emit(&text);
            return Ok(None);
        }
        let mut secret = vault.get(&copy, Selector::default())?;
        secret.name = name.clone();
        secret.version = version;
        let text = format!(
            "{why}; '{name}' comes from the offline copy of store '{store}', fetched {} ago",
            human_age(age)
        );
        self.emit(&text);
        Ok(Some(Found {
            secret,
            store,
            cached: Some(CachedCopy {
                fetched_at,
                age_seconds: age.as_secs(),
            }),
        }))
    }

    /// Keeps (or refreshes) the offline copy of a value store `i` gave.
    /// A failure is a warning: the read itself succeeded.
    fn keep_copy(&mut self, i: usize, secret: &Secret) {
        let store = self.entries[i].name.clone();
        let Some(copy) = cache_name(&store, &secret.name) else {
            self.emit(&format!(
                "'{}' is too long to keep an offline copy of (store '{store}')",
                secret.name
            ));
            return;
        };
        if let Err(e) = self.write_copy(&store, &copy, secret) {
            self.emit(&format!(
                "could not keep an offline copy of '{}' from store '{store}': {e}",
                secret.name
            ));
        }
    }

    fn write_copy(&mut self, store: &str, copy: &SecretName, secret: &Secret) -> Result<()> {
        let vault = self.local_vault()?;
        let now = now_ms().to_string();
        let version = secret.version.to_string();
        let same = match vault.metadata(copy) {
            Ok(meta) if meta.get(CACHE_VERSION) == Some(&version) => {
                let old = vault.get(copy, Selector::default())?;
                old.value.expose_secret() == secret.value.expose_secret()
            }
            Ok(_) | Err(Error::NotFound { .. }) => false,
            Err(e) => return Err(e),
        };
        if same {
            vault.update_metadata(copy, &[(CACHE_FETCHED_AT.to_string(), Some(now))])?;
            return Ok(());
        }
        let metadata: Metadata = [
            (CACHE_SOURCE.to_string(), store.to_string()),
            (CACHE_VERSION.to_string(), version),
            (CACHE_FETCHED_AT.to_string(), now),
        ]
        .into();
        vault.put(
            copy,
            &secret.value,
            &PutOptions {
                reason: Some(format!("offline copy of store '{store}'")),
                metadata,
                ..PutOptions::default()
            },
        )?;
        Ok(())
    }

    // ---- writes and routing ----

    fn put_at(
        &mut self,
        i: usize,
        name: &SecretName,
        value: &SecretValue,
        options: &PutOptions,
    ) -> Result<Written> {
        check_name(name)?;
        self.refuse_offline(i)?;
        if self.entries[i].settings.read_only {
            return Err(Error::ReadOnly {
                store: format!("store '{}' (read_only = true)", self.entries[i].name),
            });
        }
        let version = self.checked(i, |s| s.put(name, value, options))?;
        if self.entries[i].settings.cache && !options.stage {
            let secret = Secret {
                name: name.clone(),
                version,
                value: SecretValue::copy_from(value.expose_secret()),
            };
            self.keep_copy(i, &secret);
        }
        Ok(Written {
            store: self.entries[i].name.clone(),
            version,
        })
    }

    fn first_writable(&mut self) -> Result<usize> {
        (0..self.entries.len())
            .find(|&i| self.writable(i))
            .ok_or_else(|| {
                Error::Validation(format!(
                    "no writable store: {} are all read-only",
                    self.store_names().join(", ")
                ))
            })
    }

    /// Whether store `i` takes writes, as far as is known without
    /// contacting it.
    fn writable(&mut self, i: usize) -> bool {
        let e = &self.entries[i];
        if e.settings.read_only || e.kind == Some(StoreKind::Env) {
            return false;
        }
        match &e.state {
            State::Ready(s) => !s.capabilities().read_only,
            _ => true,
        }
    }

    /// The store that holds `name`: the one named, else the one answering a
    /// read.
    fn owner(&mut self, name: &SecretName, store: Option<&str>) -> Result<usize> {
        check_name(name)?;
        if let Some(s) = store {
            return self.index(s);
        }
        let found = self.get(name, Selector::default())?;
        if found.cached.is_some() {
            return Err(Error::Unavailable {
                store: found.store,
                reason: format!("only an offline copy of '{name}' is at hand"),
            });
        }
        self.index(&found.store)
    }

    fn refuse_offline(&self, i: usize) -> Result<()> {
        if self.offline && self.is_remote(i) {
            return Err(Error::Unavailable {
                store: self.entries[i].name.clone(),
                reason: "offline mode: remote stores are not contacted".into(),
            });
        }
        Ok(())
    }

    fn index(&self, store: &str) -> Result<usize> {
        self.entries
            .iter()
            .position(|e| e.name == store)
            .ok_or_else(|| {
                Error::Validation(format!(
                    "no store named '{store}' (stores: {})",
                    self.store_names().join(", ")
                ))
            })
    }

    fn is_remote(&self, i: usize) -> bool {
        self.entries[i].settings.remote
    }

    // ---- listing ----

    fn list_at(&mut self, prefix: &str, indices: &[usize]) -> Result<Listing> {
        let mut merged: BTreeMap<String, Listed> = BTreeMap::new();
        let mut not_listed = Vec::new();
        for &i in indices {
            let store = self.entries[i].name.clone();
            let cache = self.entries[i].settings.cache;
            let from_cache = |this: &mut Self| -> Result<Vec<SecretInfo>> {
                let vault = this.local_vault()?;
                let base = format!("{CACHE_PREFIX}{store}/");
                let infos = vault.list(&format!("{base}{prefix}"), false)?;
                Ok(infos
                    .into_iter()
                    .filter_map(|mut info| {
                        let rest = info.name.as_str().strip_prefix(&base)?;
                        info.name = SecretName::new(rest).ok()?;
                        info.metadata.retain(|k, _| !k.starts_with("tresor."));
                        Some(info)
                    })
                    .collect())
            };
            let (infos, cached) = if self.offline && self.is_remote(i) {
                if !cache {
                    not_listed.push((store.clone(), "offline, and no offline copies".into()));
                    continue;
                }
                (from_cache(self)?, true)
            } else {
                match self.checked(i, |s| s.list(prefix)) {
                    Ok(infos) => (infos, false),
                    Err(e @ Error::Unsupported { .. }) => {
                        not_listed.push((store.clone(), e.to_string()));
                        continue;
                    }
                    Err(e) if is_unavailable(&e) && cache => {
                        self.emit(&format!("{e}; listing its offline copies instead"));
                        (from_cache(self)?, true)
                    }
                    Err(e) if is_unavailable(&e) && !self.entries[i].settings.required => {
                        self.warn_once(&store, &format!("{e}; skipped (optional store)"));
                        not_listed.push((store.clone(), e.to_string()));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            };
            for info in infos {
                if info.name.as_str().starts_with(RESERVED_PREFIX) {
                    continue;
                }
                match merged.get_mut(info.name.as_str()) {
                    Some(first) => first.shadowed.push(store.clone()),
                    None => {
                        merged.insert(
                            info.name.as_str().to_string(),
                            Listed {
                                info,
                                store: store.clone(),
                                shadowed: Vec::new(),
                                cached,
                            },
                        );
                    }
                }
            }
        }
        Ok(Listing {
            entries: merged.into_values().collect(),
            not_listed,
        })
    }

    // ---- stores, doctor ----

    fn availability(&mut self, i: usize) -> (bool, String) {
        if self.offline && self.is_remote(i) {
            return (false, "offline mode".into());
        }
        let vault_path = match &self.entries[i].state {
            State::Local => Some(self.local_path()),
            State::Config(c) if c.kind == StoreKind::Vault => Some(
                c.options
                    .get("path")
                    .and_then(|v| match v {
                        OptionValue::Text(p) => Some(PathBuf::from(p)),
                        _ => None,
                    })
                    .unwrap_or_else(|| self.local_path()),
            ),
            State::Vault(v) => Some(v.path().to_path_buf()),
            _ => None,
        };
        if let Some(path) = vault_path {
            if matches!(&self.local, Local::Open(v) if v.path() == path) {
                return (true, format!("{} (unlocked)", path.display()));
            }
            return match LockedVault::open(&path, &open_options()) {
                Ok(_) => (true, path.display().to_string()),
                Err(e) => (false, e.to_string()),
            };
        }
        match self.checked(i, |s| Ok(s.health())) {
            Ok(h) => (h.reachable && h.authenticated, h.detail),
            Err(e) => (false, e.to_string()),
        }
    }

    fn checkup(&mut self, i: usize) -> Checkup {
        let start = Instant::now();
        let name = self.entries[i].name.clone();
        let mut c = Checkup {
            name: name.clone(),
            kind: self.entries[i].kind,
            required: self.entries[i].settings.required,
            reachable: false,
            authenticated: false,
            probe: "skipped",
            probe_detail: String::new(),
            cleaned_up: None,
            latency_ms: 0.0,
            detail: String::new(),
            cached_copies: None,
            healthy: false,
            credentials: self.entries[i].credentials.clone(),
            sends_to: self.entries[i].sends_to.clone(),
        };
        if self.entries[i].settings.cache {
            c.cached_copies = self
                .local_vault()
                .and_then(|v| v.list(&format!("{CACHE_PREFIX}{name}/"), false))
                .map(|l| l.len())
                .ok();
        }
        if self.offline && self.is_remote(i) {
            c.detail = "offline mode: not contacted".into();
            c.probe_detail = "offline".into();
            c.latency_ms = ms(start.elapsed());
            return c;
        }
        // Forget an earlier failure: the doctor always asks.
        self.entries[i].down = None;
        let health = self.checked(i, |s| Ok(s.health()));
        match health {
            Ok(Health {
                reachable,
                authenticated,
                detail,
            }) => {
                c.reachable = reachable;
                c.authenticated = authenticated;
                c.detail = detail;
            }
            Err(e) => {
                c.reachable = !is_unavailable(&e);
                c.detail = e.to_string();
            }
        }
        if c.reachable && c.authenticated {
            if !self.writable(i) {
                c.probe_detail = "read-only store: the write probe is skipped".into();
            } else {
                self.probe(i, &mut c);
            }
        } else {
            c.probe_detail = "store not usable".into();
        }
        c.healthy = c.reachable && c.authenticated && c.probe != "failed";
        if !c.healthy && c.cached_copies.is_some_and(|n| n > 0) {
            c.detail.push_str("; reads fall back to its offline copies");
        }
        c.latency_ms = ms(start.elapsed());
        c
    }

    /// Write, read back, delete a random scratch name; the delete runs
    /// whenever the write may have happened, whatever else failed.
    fn probe(&mut self, i: usize, c: &mut Checkup) {
        let mut random = [0u8; 12];
        let _ = getrandom::fill(&mut random);
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let Ok(scratch) = SecretName::new(format!(".tresor/doctor/{hex}")) else {
            return;
        };
        let mut expected = Zeroizing::new([0u8; 32]);
        let _ = getrandom::fill(&mut expected[..]);
        let value = SecretValue::copy_from(&expected[..]);
        let options = PutOptions {
            reason: Some("tresor doctor probe".into()),
            ..PutOptions::default()
        };
        let written = self.checked(i, |s| s.put(&scratch, &value, &options));
        let read = match &written {
            Ok(_) => self
                .checked(i, |s| s.get(&scratch, Selector::default()))
                .and_then(|got| {
                    if got.value.expose_secret() == &expected[..] {
                        Ok(())
                    } else {
                        Err(Error::Integrity {
                            store: c.name.clone(),
                            detail: "the probe read back another value than it wrote".into(),
                        })
                    }
                }),
            Err(_) => Ok(()),
        };
        // A failed write may still have landed (a timeout after the server
        // acted), and it marked the store down: ask it anyway.
        self.entries[i].down = None;
        let cleanup = self.checked(i, |s| s.delete(&scratch, DeleteMode::Purge));
        c.cleaned_up = Some(match (&written, &cleanup) {
            (_, Ok(())) => true,
            // Nothing was written, and there is nothing to remove.
            (Err(_), Err(Error::NotFound { .. })) => true,
            _ => false,
        });
        let failure = written.err().or(read.err()).or(cleanup
            .err()
            .filter(|e| !matches!(e, Error::NotFound { .. })));
        match failure {
            None => {
                c.probe = "ok";
                c.probe_detail = "write, read back and delete of a scratch secret".into();
            }
            Some(e) => {
                c.probe = "failed";
                c.probe_detail = e.to_string();
            }
        }
    }

    // ---- plumbing ----

    /// Runs `f` on store `i`, building it first if needed; an unavailable
    /// store is remembered (and not asked again for a while).
    fn checked<T>(&mut self, i: usize, f: impl FnOnce(&mut dyn Store) -> Result<T>) -> Result<T> {
        if let Some((since, e)) = &self.entries[i].down {
            if since.elapsed() < RETRY_AFTER {
                return Err(clone_unavailable(e));
            }
            self.entries[i].down = None;
        }
        let result = self.store_at(i).and_then(f);
        if let Err(e) = &result
            && is_unavailable(e)
        {
            self.entries[i].down = Some((Instant::now(), clone_unavailable(e)));
        }
        result
    }

    fn store_at(&mut self, i: usize) -> Result<&mut dyn Store> {
        if let State::Config(c) = &self.entries[i].state {
            let c = (**c).clone();
            let state = self.build(&c)?;
            self.entries[i].state = state;
        }
        if matches!(self.entries[i].state, State::Local) {
            return Ok(self.local_vault()? as &mut dyn Store);
        }
        match &mut self.entries[i].state {
            State::Vault(v) => Ok(&mut **v as &mut dyn Store),
            State::Ready(s) => Ok(&mut **s),
            State::Local | State::Config(_) => unreachable!("built and handled above"),
        }
    }

    fn vault_at(&mut self, i: usize, operation: &'static str) -> Result<&mut Vault> {
        self.refuse_offline(i)?;
        if let State::Config(c) = &self.entries[i].state
            && c.kind == StoreKind::Vault
        {
            self.store_at(i)?;
        }
        if matches!(self.entries[i].state, State::Local) {
            return self.local_vault();
        }
        let store = self.entries[i].name.clone();
        match &mut self.entries[i].state {
            State::Vault(v) => Ok(v),
            _ => Err(Error::Unsupported { store, operation }),
        }
    }

    /// Builds the store a config entry describes: references resolved,
    /// then the kind's `from_options`.
    fn build(&mut self, c: &StoreConfig) -> Result<State> {
        let mut options = StoreOptions::new(c.name.clone());
        for (key, value) in &c.options {
            let text = self.resolve(&c.name, key, value)?;
            options.insert(key.clone(), text.as_str());
        }
        if c.kind == StoreKind::Vault {
            let path = options.get("path").map(PathBuf::from);
            options.finish()?;
            return match path {
                Some(p) if p != self.local_path() => Ok(State::Vault(Box::new((self.opener)(&p)?))),
                _ => Ok(State::Local),
            };
        }
        let store = build_store(c.kind, &options)?;
        // Plain http:// to another machine was allowed by insecure_http:
        // said on every use, not once.
        let url_key = match c.kind {
            StoreKind::Openbao => Some("address"),
            StoreKind::Aws => Some("endpoint"),
            _ => None,
        };
        if let Some(key) = url_key
            && let Some(url) = options.get(key)
        {
            let insecure = options
                .bool(tresor_stores::options::INSECURE_HTTP)?
                .unwrap_or(false);
            if let Some(warning) = tresor_stores::options::plain_http(&c.name, key, url, insecure)?
            {
                self.emit(&warning);
            }
        }
        Ok(State::Ready(store))
    }

    /// The text of one option: a literal, an environment variable or a
    /// secret of the local vault.
    fn resolve(
        &mut self,
        store: &str,
        key: &str,
        value: &OptionValue,
    ) -> Result<Zeroizing<String>> {
        match value {
            OptionValue::Text(t) => Ok(Zeroizing::new(t.clone())),
            OptionValue::Env(var) => std::env::var(var).map(Zeroizing::new).map_err(|_| {
                Error::Validation(format!(
                    "store '{store}': option '{key}' refers to ENV/{var}, which is not set"
                ))
            }),
            OptionValue::Secret(name, version) => {
                let selector = version.map_or(Selector::default(), Selector::Version);
                let secret = self.local_vault()?.get(name, selector).map_err(|e| match e {
                    Error::NotFound { .. } => Error::Validation(format!(
                        "store '{store}': option '{key}' refers to {}, which the local vault does not hold",
                        value.describe()
                    )),
                    e => e,
                })?;
                let text = secret.value.expose_text().ok_or_else(|| {
                    Error::Validation(format!(
                        "store '{store}': option '{key}': {} is not UTF-8 text",
                        value.describe()
                    ))
                })?;
                Ok(Zeroizing::new(text.to_string()))
            }
        }
    }

    /// The local vault (offline copies, `SEC/` references, stores of kind
    /// vault without a path), opened on first use.
    pub fn local_vault(&mut self) -> Result<&mut Vault> {
        if let Local::Path(p) = &self.local {
            let vault = (self.opener)(&p.clone())?;
            self.local = Local::Open(Box::new(vault));
        }
        match &mut self.local {
            Local::Open(v) => Ok(v),
            Local::Path(_) => unreachable!("opened above"),
        }
    }

    fn local_path(&self) -> PathBuf {
        match &self.local {
            Local::Path(p) => p.clone(),
            Local::Open(v) => v.path().to_path_buf(),
        }
    }

    fn warn_once(&mut self, store: &str, text: &str) {
        if self.warned.insert(store.to_string()) {
            self.emit(text);
        }
    }

    fn emit(&mut self, text: &str) {
        (self.warn)(text);
    }
}

impl Builder {
    /// Takes the stores (and default profile) of a config.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Uses this profile of the config (else `TRESOR_PROFILE`, else the
    /// config's `profile = …`).
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// The local vault's file (default: [`vault_path`](crate::vault_path)).
    pub fn vault_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.vault_path = Some(path.into());
        self
    }

    /// How vault files are unlocked (default: the unlock chain's
    /// non-interactive steps).
    pub fn vault_opener(
        mut self,
        opener: impl FnMut(&Path) -> Result<Vault> + Send + 'static,
    ) -> Self {
        self.opener = Some(Box::new(opener));
        self
    }

    /// Adds an unlocked vault as a store; the first one added is also the
    /// local vault (offline copies, `SEC/` references).
    pub fn vault(mut self, name: impl Into<String>, vault: Vault, priority: i64) -> Self {
        let settings = StoreSettings::new(priority);
        if self.local_vault.is_none() && self.vault_path.is_none() {
            self.local_vault = Some(vault);
            self.stores.push((name.into(), settings, State::Local));
        } else {
            self.stores
                .push((name.into(), settings, State::Vault(Box::new(vault))));
        }
        self
    }

    /// Adds any store at `priority` (writable unless the store says it is
    /// read-only; optional; no cache).
    pub fn store(
        self,
        name: impl Into<String>,
        store: impl Store + 'static,
        priority: i64,
    ) -> Self {
        self.store_with(name, store, StoreSettings::new(priority))
    }

    /// Adds any store with explicit settings.
    pub fn store_with(
        mut self,
        name: impl Into<String>,
        store: impl Store + 'static,
        settings: StoreSettings,
    ) -> Self {
        self.stores
            .push((name.into(), settings, State::Ready(Box::new(store))));
        self
    }

    /// Offline mode: remote stores are not contacted (see the module docs).
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// The oldest offline copy a read may use.
    pub fn max_age(mut self, max_age: Option<Duration>) -> Self {
        self.max_age = max_age;
        self
    }

    /// Where warnings go (default: standard error, `tresor: warning: …`).
    pub fn on_warning(mut self, sink: impl FnMut(&str) + Send + 'static) -> Self {
        self.warn = Some(Box::new(sink));
        self
    }

    /// The manager. With no stores (no config, or a config that declares
    /// none, and none added), one store: the user vault, named `vault`.
    pub fn build(self) -> Result<Tresor> {
        let local = match (self.local_vault, self.vault_path) {
            (Some(v), _) => Local::Open(Box::new(v)),
            (None, Some(p)) => Local::Path(p),
            (None, None) => Local::Path(crate::vault_path(None)?),
        };
        let mut entries = Vec::new();
        if let Some(config) = &self.config {
            let profile = config.profile_name(self.profile.as_deref());
            for c in config.stores_for(profile.as_deref())? {
                entries.push(Entry {
                    name: c.name.clone(),
                    kind: Some(c.kind),
                    settings: StoreSettings {
                        priority: c.priority,
                        read_only: c.read_only,
                        required: c.required,
                        cache: c.cache,
                        remote: c.kind.is_remote(),
                    },
                    state: State::Config(Box::new(c.clone())),
                    down: None,
                    credentials: c.credentials(),
                    sends_to: c.destination(),
                });
            }
        } else if let Some(p) = &self.profile {
            return Err(Error::Validation(format!(
                "profile '{p}' asked for, but there is no config file (tresor.toml)"
            )));
        }
        for (name, settings, state) in self.stores {
            let kind = matches!(state, State::Local | State::Vault(_)).then_some(StoreKind::Vault);
            if entries.iter().any(|e: &Entry| e.name == name) {
                return Err(Error::Validation(format!("two stores are named '{name}'")));
            }
            entries.push(Entry {
                name,
                kind,
                settings,
                state,
                down: None,
                credentials: Vec::new(),
                sends_to: None,
            });
        }
        // A config that declares no stores (say, the user's config.toml
        // holding only `[pkcs11] modules`) leaves the default: the vault.
        if entries.is_empty() && self.config.as_ref().is_none_or(|c| c.stores.is_empty()) {
            entries.push(Entry {
                name: "vault".into(),
                kind: Some(StoreKind::Vault),
                // The only store: nothing works without it.
                settings: StoreSettings {
                    required: true,
                    ..StoreSettings::new(crate::config::DEFAULT_PRIORITY)
                },
                state: State::Local,
                down: None,
                credentials: vec![CredentialSource {
                    option: None,
                    kind: "none",
                    from: "none sent anywhere (the user vault, unlocked by the unlock chain)"
                        .into(),
                }],
                sends_to: None,
            });
        }
        entries.sort_by_key(|e| e.settings.priority);
        Ok(Tresor {
            entries,
            local,
            opener: self
                .opener
                .unwrap_or_else(|| Box::new(unlock_from_environment)),
            offline: self.offline,
            max_age: self.max_age,
            warn: self
                .warn
                .unwrap_or_else(|| Box::new(|w| eprintln!("tresor: warning: {w}"))),
            warned: BTreeSet::new(),
        })
    }
}

/// The store of kind `kind` from its options: one arm per kind, each
/// behind its cargo feature. (`vault` is built by the manager itself.)
pub fn build_store(kind: StoreKind, options: &StoreOptions) -> Result<Box<dyn Store>> {
    match kind {
        StoreKind::Env => {
            #[cfg(feature = "env")]
            return Ok(Box::new(tresor_stores::env::Env::from_options(options)?));
            #[cfg(not(feature = "env"))]
            return Err(not_in_build(kind, options));
        }
        StoreKind::Openbao => {
            #[cfg(feature = "openbao")]
            return Ok(Box::new(tresor_stores::openbao::OpenBao::from_options(
                options,
            )?));
            #[cfg(not(feature = "openbao"))]
            return Err(not_in_build(kind, options));
        }
        StoreKind::Keychain => {
            #[cfg(feature = "keychain-store")]
            return Ok(Box::new(tresor_stores::keychain::Keychain::from_options(
                options,
            )?));
            #[cfg(not(feature = "keychain-store"))]
            return Err(not_in_build(kind, options));
        }
        StoreKind::Aws => {
            #[cfg(feature = "aws")]
            return Ok(Box::new(tresor_stores::aws::Aws::from_options(options)?));
            #[cfg(not(feature = "aws"))]
            return Err(not_in_build(kind, options));
        }
        StoreKind::Azure => {
            #[cfg(feature = "azure")]
            return Ok(Box::new(tresor_stores::azure::AzureKeyVault::from_options(
                options,
            )?));
            #[cfg(not(feature = "azure"))]
            return Err(not_in_build(kind, options));
        }
        StoreKind::Vault => Err(Error::Validation(format!(
            "store '{}': vault stores are opened by the manager",
            options.store()
        ))),
    }
}

/// Checks a store's options as [`build_store`] would read them, without
/// contacting anything. (`vault`: the option `path` only.)
pub fn check_store_options(kind: StoreKind, options: &StoreOptions) -> Result<()> {
    match kind {
        StoreKind::Vault => {
            options.get("path");
            options.finish()
        }
        StoreKind::Env => build_store(kind, options).map(drop),
        StoreKind::Openbao => {
            #[cfg(feature = "openbao")]
            return tresor_stores::openbao::OpenBaoOptions::from_options(options).map(drop);
            #[cfg(not(feature = "openbao"))]
            return Err(not_in_build(kind, options));
        }
        // Opening a keychain probes the OS (D-Bus, keyutils): check the
        // options only, as the store reads them.
        StoreKind::Keychain => {
            #[cfg(feature = "keychain-store")]
            return check_keychain_options(options);
            #[cfg(not(feature = "keychain-store"))]
            return Err(not_in_build(kind, options));
        }
        // Their from_options builds a client without contacting the service.
        StoreKind::Aws | StoreKind::Azure => build_store(kind, options).map(drop),
    }
}

/// The keychain store's options, read as `Keychain::from_options` reads
/// them, without opening the keychain.
#[cfg(feature = "keychain-store")]
fn check_keychain_options(options: &StoreOptions) -> Result<()> {
    options.parse::<tresor_stores::keychain::Backend>(
        "backend",
        "auto, secret-service, keyutils or native",
    )?;
    options.get("service");
    options.finish()
}

#[cfg(not(all(
    feature = "env",
    feature = "openbao",
    feature = "aws",
    feature = "azure",
    feature = "keychain-store"
)))]
fn not_in_build(kind: StoreKind, options: &StoreOptions) -> Error {
    Error::Validation(format!(
        "store '{}': this build of tresor has no {kind} store",
        options.store()
    ))
}

/// Checks what parsing cannot: each store's references resolve (`ENV/`
/// variables set, `SEC/` secrets held by the local vault, through `secret`)
/// and its options are the ones its kind reads, without contacting any
/// store. Each problem points at the option concerned.
pub fn check_config(config: &Config, secret: &mut SecretLookup<'_>) -> Vec<crate::config::Problem> {
    let mut problems = Vec::new();
    for store in &config.stores {
        let at = |key: &str| config.option_position(&store.name, key).unwrap_or(store.at);
        let mut options = StoreOptions::new(store.name.clone());
        let mut resolved = true;
        for (key, value) in &store.options {
            let text = match value {
                OptionValue::Text(t) => Ok(Zeroizing::new(t.clone())),
                OptionValue::Env(var) => std::env::var(var)
                    .map(Zeroizing::new)
                    .map_err(|_| format!("ENV/{var} is not set")),
                OptionValue::Secret(name, version) => secret(name, *version).map_err(|e| match e {
                    Error::NotFound { .. } => {
                        format!("{} is not in the local vault", value.describe())
                    }
                    e => format!("{} cannot be read: {e}", value.describe()),
                }),
            };
            match text {
                Ok(t) => options.insert(key.clone(), t.as_str()),
                Err(why) => {
                    resolved = false;
                    problems.push(config.problem(
                        at(key),
                        format!("store '{}': option '{key}': {why}", store.name),
                    ));
                }
            }
        }
        if !resolved {
            continue;
        }
        if let Err(e) = check_store_options(store.kind, &options) {
            let message = e.to_string();
            let mentioned: Vec<&String> = store
                .options
                .keys()
                .filter(|k| message.contains(&format!("'{k}'")))
                .collect();
            if message.contains("unknown option") && !mentioned.is_empty() {
                for key in mentioned {
                    problems.push(config.problem(
                        at(key),
                        format!(
                            "store '{}': unknown option '{key}' for the {} store kind",
                            store.name, store.kind
                        ),
                    ));
                }
            } else {
                let pos = mentioned.first().map_or(store.at, |k| at(k));
                problems.push(config.problem(pos, message));
            }
        }
    }
    problems
}

/// The default vault opener: `TRESOR_KEY_FILE`, `TRESOR_KEY`,
/// `TRESOR_PASSWORD`…, `TRESOR_RECOVERY_KEY`, then keychain slots.
pub fn unlock_from_environment(path: &Path) -> Result<Vault> {
    let locked = LockedVault::open(path, &open_options())?;
    if let Some(unlock) = crate::Unlock::from_environment(None)? {
        return locked.unlock(&unlock.credential);
    }
    let (found, mut errors) = crate::keychain_credentials(&locked)?;
    if !found.is_empty() {
        return locked.unlock_any(&found);
    }
    Err(errors.pop().unwrap_or_else(crate::Unlock::missing))
}

fn open_options() -> OpenOptions {
    OpenOptions {
        lock_timeout: crate::lock_timeout().unwrap_or(Duration::from_secs(30)),
        no_checkpoint_on_close: false,
    }
}

/// `.tresor/cache/<store>/<name>`, if that fits the name length limit.
pub fn cache_name(store: &str, name: &SecretName) -> Option<SecretName> {
    SecretName::new(format!("{CACHE_PREFIX}{store}/{name}")).ok()
}

fn check_name(name: &SecretName) -> Result<()> {
    if name.as_str().starts_with(RESERVED_PREFIX) {
        return Err(Error::Validation(format!(
            "names under {RESERVED_PREFIX} are reserved for tresor's offline copies and probes"
        )));
    }
    Ok(())
}

fn is_unavailable(e: &Error) -> bool {
    // A vault file that is not there is unavailable like a server that is down.
    matches!(
        e,
        Error::Unavailable { .. } | Error::Io { .. } | Error::NoVault { .. }
    )
}

fn clone_unavailable(e: &Error) -> Error {
    match e {
        Error::Unavailable { store, reason } => Error::Unavailable {
            store: store.clone(),
            reason: reason.clone(),
        },
        other => Error::Unavailable {
            store: "store".into(),
            reason: other.to_string(),
        },
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

pub use tresor_core::human_age;
