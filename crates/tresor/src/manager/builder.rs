//! Building a [`Tresor`]: from a config, or store by store in code, and
//! how its vault files are opened (the unlock chain).

#[allow(unused_imports)]
use super::*;

/// Builds a [`Tresor`]: from a config, or store by store in code.
pub struct Builder {
    pub(super) config: Option<Config>,
    pub(super) profile: Option<String>,
    pub(super) vault_path: Option<PathBuf>,
    pub(super) local_vault: Option<Vault>,
    pub(super) opener: Option<VaultOpener>,
    pub(super) stores: Vec<(String, StoreSettings, State)>,
    pub(super) offline: bool,
    pub(super) max_age: Option<Duration>,
    pub(super) warn: Option<WarningSink>,
    pub(super) rules: Option<RuleSet>,
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

    /// How vault files are opened: through this unlock chain (default:
    /// [`Unlock::new`](crate::Unlock::new), every step without a prompt).
    /// The CLI gives its chain a PIN and a password prompt.
    pub fn unlock(mut self, unlock: crate::Unlock) -> Self {
        self.opener = Some(opener_of(unlock));
        self
    }

    /// How vault files are opened, for callers that hold their own vaults
    /// (tests, embedders); most want [`Builder::unlock`].
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

    /// The validation rules every write is checked against (default: the
    /// config's, which are the presets plus its `[[rules]]`; with no config,
    /// the presets). [`RuleSet::none`] turns validation off.
    pub fn rules(mut self, rules: RuleSet) -> Self {
        self.rules = Some(rules);
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
        let mut declared = Vec::new();
        if let Some(config) = &self.config {
            let profile = config.profile_name(self.profile.as_deref());
            declared = config.declared(profile.as_deref())?.to_vec();
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
        let rules = self
            .rules
            .or_else(|| self.config.as_ref().map(|c| c.rules.clone()))
            .unwrap_or_default();
        Ok(Tresor {
            rules,
            entries,
            local,
            opener: self
                .opener
                .unwrap_or_else(|| opener_of(crate::Unlock::new())),
            offline: self.offline,
            max_age: self.max_age,
            warn: self
                .warn
                .unwrap_or_else(|| Box::new(|w| eprintln!("tresor: warning: {w}"))),
            warned: BTreeSet::new(),
            missed: None,
            skipped: Vec::new(),
            declared,
            prefetched: Default::default(),
        })
    }
}

/// A vault opener that runs `unlock`'s chain.
fn opener_of(mut unlock: crate::Unlock) -> VaultOpener {
    Box::new(move |path: &Path| unlock.open(path).map(|u| u.vault))
}
