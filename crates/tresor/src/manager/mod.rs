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
//! let written = tresor.set(&name, &SecretValue::copy_from(b"ghp_fromthevault0123456789abcdefghijklmn"), &Default::default())?;
//! assert_eq!(written.store, "local");
//! let found = tresor.get_from("local", &name, Selector::default())?;
//! assert_eq!(found.secret.value.expose_secret(), b"ghp_fromthevault0123456789abcdefghijklmn");
//! let listed = tresor.list("")?;
//! assert_eq!((listed.entries[0].store.as_str(), listed.entries[0].shadowed.clone()), ("env", vec!["local".to_string()]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use zeroize::Zeroizing;

use tresor_core::rules::RuleSet;
use tresor_core::{
    Capabilities, DeleteMode, Error, Health, Metadata, PutOptions, Result, Secret, SecretInfo,
    SecretName, SecretValue, Selector, Store, VersionInfo,
};
use tresor_stores::StoreOptions;
use tresor_vault::{LockedVault, Vault, Versions};

use crate::config::{Config, CredentialSource, OptionValue, StoreConfig, StoreKind};

mod build;
mod builder;
mod cache;
mod check;
mod doctor;
mod listing;
mod moving;
mod write;

pub use builder::Builder;
pub use cache::cache_name;
pub use check::check_config;
pub use doctor::{Checkup, StoreStatus};
pub use listing::{Listed, Listing};
pub use moving::{LOCAL_STORE, StoreWriter};
pub use write::{History, Imported};

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

/// Every store of a config (or given in code) behind one API. See the
/// [module docs](self) for the routing rules.
pub struct Tresor {
    entries: Vec<Entry>,
    rules: RuleSet,
    local: Local,
    opener: VaultOpener,
    offline: bool,
    max_age: Option<Duration>,
    warn: WarningSink,
    warned: BTreeSet<String>,
    /// Why the current read may have missed the name: a store that could
    /// hold it was unavailable, or its offline copy too old.
    missed: Option<Error>,
    /// Stores the current read skipped, and why: warned about only when
    /// another store answers (otherwise the read's error says it).
    skipped: Vec<(String, String)>,
    /// The secrets the config declares for the profile in use.
    pub(crate) declared: Vec<crate::config::Declared>,
    /// Answers fetched ahead, in parallel across remote stores, by
    /// [`Tresor::get_many`]: (store index, name, selector) → answer.
    prefetched: Prefetched,
}

type Prefetched = std::collections::HashMap<(usize, SecretName, String), Result<Secret>>;
/// One entry of [`Prefetched`].
type PrefetchedAnswer = ((usize, SecretName, String), Result<Secret>);

struct Entry {
    name: String,
    kind: Option<StoreKind>,
    settings: StoreSettings,
    state: State,
    down: Option<(Instant, Error)>,
    credentials: Vec<CredentialSource>,
    sends_to: Option<String>,
    /// The config entry it was built from, kept to open more connections.
    config: Option<Box<StoreConfig>>,
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

impl Tresor {
    /// The manager as the environment configures it: the config file found
    /// by [`config::discover`](crate::config::discover) (a project's
    /// `./tresor.toml` only once the user approved it, see [`crate::trust`];
    /// otherwise this fails before anything is unlocked or contacted), the profile from
    /// `TRESOR_PROFILE` or the file, the local vault from `TRESOR_VAULT` or
    /// its default path, opened by the unlock chain ([`crate::Unlock`]:
    /// key files and environment, keychain slots, an unlock session,
    /// PKCS#11 slots with `TRESOR_PKCS11_PIN`; no prompt). With no config,
    /// the one store is the user vault, named `vault`.
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
            rules: None,
        }
    }

    /// The store names, in the order reads ask them.
    pub fn store_names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// Reads `name`: the first store, in priority order, that has it.
    pub fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Found> {
        check_name(name)?;
        // With one store its own answer is the answer: a destroyed version
        // or an unreachable server says so, not a bare "not found".
        let only = self.entries.len() == 1;
        self.missed = None;
        self.skipped.clear();
        for i in 0..self.entries.len() {
            if let Some(found) = self.read_one(i, name, selector, only)? {
                self.missed = None;
                for (store, text) in std::mem::take(&mut self.skipped) {
                    self.warn_once(&store, &text);
                }
                return Ok(found);
            }
        }
        // A store that could hold the name did not answer: "not found"
        // would be a guess.
        if let Some(e) = self.missed.take() {
            // The error names one store; every other store that was down
            // is one warning each, so none goes unsaid and none is said
            // twice.
            let named = match &e {
                Error::Unavailable { store, .. } | Error::Stale { store, .. } => {
                    Some(store.clone())
                }
                _ => None,
            };
            for (store, text) in std::mem::take(&mut self.skipped) {
                if named.as_deref() != Some(store.as_str()) {
                    self.warn_once(&store, &text);
                }
            }
            return Err(e);
        }
        Err(Error::NotFound {
            store: self.store_names().join(", "),
            what: format!("'{name}'"),
        })
    }

    /// Reads several names, each as [`Tresor::get`] would, answers in the
    /// order asked. With two or more remote stores (openbao, aws, azure)
    /// in use, each is asked for every name at once, one thread per store,
    /// before the usual routing picks the answers: the wait is the slowest
    /// store's, not their sum.
    pub fn get_many(&mut self, requests: &[(SecretName, Selector)]) -> Vec<Result<Found>> {
        if requests.len() > 1 {
            self.prefetch_vault(requests);
            if !self.offline {
                self.prefetch(requests);
            }
        }
        let out = requests
            .iter()
            .map(|(name, selector)| self.get(name, *selector))
            .collect();
        self.prefetched.clear();
        out
    }

    /// Reads several names from the store named `store` only, each as
    /// [`Tresor::get_from`] would, answers in the order asked. A vault
    /// store answers them all in one transaction ([`Vault::get_many`]: one
    /// commit for the batch's audit entries) instead of one each.
    pub fn get_many_from(
        &mut self,
        store: &str,
        requests: &[(SecretName, Selector)],
    ) -> Vec<Result<Found>> {
        if requests.len() > 1
            && let Ok(i) = self.index(store)
        {
            self.prefetch_vault_at(i, requests);
        }
        let out = requests
            .iter()
            .map(|(name, selector)| self.get_from(store, name, *selector))
            .collect();
        self.prefetched.clear();
        out
    }

    /// When a vault is the first store asked, reads every name from it in
    /// one transaction ([`Vault::get_many`]): one commit for the batch, and
    /// only reads the routing would make anyway (it asks that store first).
    fn prefetch_vault(&mut self, requests: &[(SecretName, Selector)]) {
        self.prefetch_vault_at(0, requests);
    }

    /// Reads every name from store `i`, when it is a vault, in one
    /// transaction, for the reads that follow to take.
    fn prefetch_vault_at(&mut self, i: usize, requests: &[(SecretName, Selector)]) {
        let is_vault = self
            .entries
            .get(i)
            .is_some_and(|e| e.kind == Some(StoreKind::Vault) && e.down.is_none());
        if !is_vault || requests.iter().any(|(n, _)| check_name(n).is_err()) {
            return;
        }
        // A vault that does not open is left for the reads to report.
        let Ok(vault) = self.vault_at(i, "get") else {
            return;
        };
        let answers = vault.get_many(requests);
        for ((name, selector), answer) in requests.iter().zip(answers) {
            self.prefetched
                .insert((i, name.clone(), selector.to_string()), answer);
        }
    }

    fn prefetch(&mut self, requests: &[(SecretName, Selector)]) {
        let remote: Vec<usize> = (0..self.entries.len())
            .filter(|&i| {
                self.is_remote(i)
                    && self.entries[i]
                        .down
                        .as_ref()
                        .is_none_or(|(since, _)| since.elapsed() >= RETRY_AFTER)
                    && requests.iter().all(|(n, _)| check_name(n).is_ok())
            })
            .collect();
        if remote.len() < 2 {
            return;
        }
        // Built one by one (a failure is left for the read to report).
        let ready: Vec<usize> = remote
            .into_iter()
            .filter(|&i| self.store_at(i).is_ok())
            .collect();
        let answers: Vec<Vec<PrefetchedAnswer>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .entries
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| ready.contains(i))
                .filter_map(|(i, e)| match &mut e.state {
                    State::Ready(store) => Some((i, store)),
                    _ => None,
                })
                .map(|(i, store)| {
                    scope.spawn(move || {
                        let mut out = Vec::with_capacity(requests.len());
                        for (name, selector) in requests {
                            let answer = store.get(name, *selector);
                            let down = matches!(&answer, Err(e) if is_unavailable(e));
                            out.push(((i, name.clone(), selector.to_string()), answer));
                            // A store that is down is not asked again.
                            if down {
                                break;
                            }
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        self.prefetched = answers.into_iter().flatten().collect();
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

    /// Every version of `name`, from the store named or the one that
    /// answers a read of it.
    pub fn history(
        &mut self,
        name: &SecretName,
        store: Option<&str>,
    ) -> Result<(String, Vec<VersionInfo>)> {
        self.history_of(name, store, false)
    }

    /// [`Tresor::history`], with a soft-deleted secret's versions when
    /// `deleted`; without, a soft-deleted secret of a vault is
    /// [`Error::Deleted`], as for `get`.
    pub fn history_of(
        &mut self,
        name: &SecretName,
        store: Option<&str>,
        deleted: bool,
    ) -> Result<(String, Vec<VersionInfo>)> {
        let i = if deleted {
            // A soft-deleted secret answers no read: find its store by name.
            match store {
                Some(s) => self.index(s)?,
                None => self.owner_of_deleted(name)?,
            }
        } else {
            self.owner(name, store)?
        };
        self.refuse_offline(i)?;
        let is_vault = match &self.entries[i].state {
            State::Local | State::Vault(_) => true,
            State::Config(c) => c.kind == StoreKind::Vault,
            _ => false,
        };
        let h = if is_vault {
            self.vault_at(i, "history")?.history_of(name, deleted)?
        } else {
            self.checked(i, |s| s.history(name))?
        };
        Ok((self.entries[i].name.clone(), h))
    }

    /// The store holding `name` soft-deleted: the one store, or the first
    /// vault whose deleted listing has it.
    fn owner_of_deleted(&mut self, name: &SecretName) -> Result<usize> {
        check_name(name)?;
        if self.entries.len() == 1 {
            return Ok(0);
        }
        let listing = self.list_deleted(name.as_str(), None)?;
        let store = listing
            .entries
            .iter()
            .find(|l| l.info.name == *name)
            .map(|l| l.store.clone())
            .ok_or_else(|| Error::NotFound {
                store: "stores".into(),
                what: format!("deleted '{name}'"),
            })?;
        self.index(&store)
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

    /// The validation rules writes are checked against.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Checks `value` against the validation rule named `rule_name` (a
    /// config rule's `name`, else a preset such as `openai`), as declared
    /// secrets' `rule = "…"` asks. An unknown name is
    /// [`Error::Validation`], a failed check [`Error::RuleFailed`].
    pub fn validate_rule(&self, rule_name: &str, value: &SecretValue) -> Result<()> {
        self.rules.check_rule(rule_name, value)
    }

    /// Checks the value about to be stored under `name` against the rules
    /// for that name ([`Error::RuleFailed`] names the rule, never the
    /// value). Every write checks this itself unless
    /// [`PutOptions::unvalidated`] says not to.
    pub fn validate(&self, name: &SecretName, value: &SecretValue) -> Result<()> {
        self.rules.check(name, value)
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
                    if let Some(stale) = self.stale_for(i) {
                        return Err(stale);
                    }
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
        let answer = match self
            .prefetched
            .remove(&(i, name.clone(), selector.to_string()))
        {
            Some(answer) => self.note_unavailable(i, answer),
            None => self.checked(i, |s| s.get(name, selector)),
        };
        match answer {
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
            Err(Error::NotFound { .. } | Error::Deleted { .. }) if !only => Ok(None),
            Err(Error::Unsupported { .. }) if !only => Ok(None),
            Err(e) if is_unavailable(&e) => {
                if self.entries[i].settings.cache
                    && let Some(found) = self.cached_read(i, name, selector, &e.to_string())?
                {
                    return Ok(Some(found));
                }
                // An offline copy too old to use says more than the outage.
                let stale = self.stale_for(i);
                if self.entries[i].settings.required || only {
                    return Err(stale.unwrap_or(e));
                }
                match stale {
                    Some(stale) => self.missed = Some(stale),
                    None => {
                        let store = self.entries[i].name.clone();
                        self.skipped
                            .push((store, format!("{e}; skipped (optional store)")));
                        self.missed.get_or_insert(clone_unavailable(&e));
                    }
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The `Stale` error `cached_read` left for store `i`, taken out.
    fn stale_for(&mut self, i: usize) -> Option<Error> {
        match &self.missed {
            Some(Error::Stale { store, .. }) if *store == self.entries[i].name => {
                self.missed.take()
            }
            _ => None,
        }
    }

    // ---- writes and routing ----

    /// The store that holds `name`: the one named, else the one answering a
    /// read.
    fn owner(&mut self, name: &SecretName, store: Option<&str>) -> Result<usize> {
        check_name(name)?;
        if let Some(s) = store {
            return self.index(s);
        }
        // One store owns every name: no read (which the vault would audit)
        // to find out.
        if self.entries.len() == 1 {
            return Ok(0);
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

    // ---- stores, doctor ----

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
        self.note_unavailable(i, result)
    }

    /// Remembers store `i` as unavailable when `result` says so.
    fn note_unavailable<T>(&mut self, i: usize, result: Result<T>) -> Result<T> {
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

/// The store of kind `kind` from its options; the kinds and their cargo
/// features live in [`tresor_stores::registry`]. (`vault` is built by the
/// manager itself.)
pub fn build_store(kind: StoreKind, options: &StoreOptions) -> Result<Box<dyn Store>> {
    tresor_stores::registry::build(kind.as_str(), options)
}

/// Checks a store's options as [`build_store`] would read them, without
/// contacting anything (see [`tresor_stores::registry::check_options`]).
pub fn check_store_options(kind: StoreKind, options: &StoreOptions) -> Result<()> {
    tresor_stores::registry::check_options(kind.as_str(), options)
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
