//! Store-by-store operations for moving secrets between stores (migrate,
//! sync): always on the store named, strict (an offline copy never answers,
//! an unavailable store is an error, not a skip), with the local vault
//! reachable by the name [`LOCAL_STORE`] when no configured store has it.

use super::write::admit;
#[allow(unused_imports)]
use super::*;
use tresor_core::rules::RuleSet;

/// The name the local vault answers to in `migrate` and `sync` when no
/// configured store has that name.
pub const LOCAL_STORE: &str = "vault";

impl Tresor {
    /// The index of store `store`; the local vault as [`LOCAL_STORE`] when
    /// no configured store has that name.
    fn index_or_local(&mut self, store: &str) -> Result<usize> {
        if let Some(i) = self.entries.iter().position(|e| e.name == store) {
            return Ok(i);
        }
        if store == LOCAL_STORE {
            self.entries.push(Entry {
                name: LOCAL_STORE.into(),
                kind: Some(StoreKind::Vault),
                settings: StoreSettings::new(i64::MAX),
                state: State::Local,
                down: None,
                credentials: Vec::new(),
                sends_to: None,
                config: None,
            });
            return Ok(self.entries.len() - 1);
        }
        self.index(store).map_err(|_| {
            Error::Validation(format!(
                "no store named '{store}' (stores: {}, and {LOCAL_STORE} for the local vault)",
                self.store_names().join(", ")
            ))
        })
    }

    /// Asks the store named again at its next use, even if it was found
    /// unavailable a moment ago (a rollback after a failed write must try).
    pub fn retry_now(&mut self, store: &str) -> Result<()> {
        let i = self.index_or_local(store)?;
        self.entries[i].down = None;
        Ok(())
    }

    /// Whether the stores named `a` and `b` are one and the same vault
    /// file (two names for the local vault, say).
    pub fn same_store(&mut self, a: &str, b: &str) -> Result<bool> {
        if a == b {
            return Ok(true);
        }
        let (i, j) = (self.index_or_local(a)?, self.index_or_local(b)?);
        let path = |this: &mut Self, i: usize| -> Result<Option<PathBuf>> {
            if this.entries[i].kind != Some(StoreKind::Vault) {
                return Ok(None);
            }
            this.refuse_offline(i)?;
            this.store_at(i)?;
            Ok(match &this.entries[i].state {
                State::Local => Some(this.local_path()),
                State::Vault(v) => Some(v.path().to_path_buf()),
                _ => None,
            })
        };
        let (pa, pb) = (path(self, i)?, path(self, j)?);
        Ok(pa.is_some() && pa == pb)
    }

    /// What the store named can do; `read_only` also when the config makes
    /// it so or its kind never takes writes.
    pub fn store_capabilities(&mut self, store: &str) -> Result<Capabilities> {
        let i = self.index_or_local(store)?;
        self.refuse_offline(i)?;
        let mut caps = self.checked(i, |s| Ok(s.capabilities()))?;
        if !self.writable(i) {
            caps.read_only = true;
        }
        Ok(caps)
    }

    /// The live secrets under `prefix` in the store named, as it lists them
    /// (tresor's own `.tresor/` names left out).
    pub fn list_store(&mut self, store: &str, prefix: &str) -> Result<Vec<SecretInfo>> {
        let i = self.index_or_local(store)?;
        self.refuse_offline(i)?;
        let mut infos = self.checked(i, |s| s.list(prefix))?;
        infos.retain(|info| !info.name.as_str().starts_with(RESERVED_PREFIX));
        Ok(infos)
    }

    /// Reads `name` from the store named, from the store itself only.
    pub fn read_in(
        &mut self,
        store: &str,
        name: &SecretName,
        selector: Selector,
    ) -> Result<Secret> {
        check_name(name)?;
        let i = self.index_or_local(store)?;
        self.refuse_offline(i)?;
        self.checked(i, |s| s.get(name, selector))
    }

    /// Reads the current value of each name from the store named, from the
    /// store itself only: from a vault in one transaction with one audit
    /// entry per read ([`Vault::get_many`]), from any other store one read
    /// after another. Answers in the order asked.
    pub fn read_many_in(
        &mut self,
        store: &str,
        names: &[SecretName],
    ) -> Result<Vec<Result<Secret>>> {
        for name in names {
            check_name(name)?;
        }
        let i = self.index_or_local(store)?;
        self.refuse_offline(i)?;
        if self.entries[i].kind == Some(StoreKind::Vault) {
            let requests: Vec<(SecretName, Selector)> = names
                .iter()
                .map(|n| (n.clone(), Selector::default()))
                .collect();
            let vault = self.vault_at(i, "get")?;
            return Ok(vault.get_many(&requests));
        }
        Ok(names
            .iter()
            .map(|name| self.checked(i, |s| s.get(name, Selector::default())))
            .collect())
    }

    /// Every version of `name` in the store named, oldest first.
    pub fn history_in(&mut self, store: &str, name: &SecretName) -> Result<Vec<VersionInfo>> {
        check_name(name)?;
        let i = self.index_or_local(store)?;
        self.refuse_offline(i)?;
        self.checked(i, |s| s.history(name))
    }

    /// For each name, the versions of it the store named still holds with
    /// their values, oldest first (with `all_versions` false, only the
    /// current one), and which is current: what a migration copies. From a
    /// vault in one read transaction with one audit entry per secret
    /// ([`Vault::versions_many`]); from any other store by its history and
    /// one read per version. Answers in the order asked; a version pruned
    /// between the history and its read is left out.
    pub fn versions_in(
        &mut self,
        store: &str,
        names: &[SecretName],
        all_versions: bool,
    ) -> Result<Vec<Result<Versions>>> {
        for name in names {
            check_name(name)?;
        }
        let i = self.index_or_local(store)?;
        self.refuse_offline(i)?;
        if self.entries[i].kind == Some(StoreKind::Vault) {
            let vault = self.vault_at(i, "reading versions")?;
            return vault.versions_many(names, all_versions);
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            out.push(self.versions_one(i, name, all_versions));
        }
        Ok(out)
    }

    fn versions_one(
        &mut self,
        i: usize,
        name: &SecretName,
        all_versions: bool,
    ) -> Result<Versions> {
        let current = self.checked(i, |s| s.get(name, Selector::default()))?;
        let mut values = Vec::new();
        if all_versions {
            for v in self.checked(i, |s| s.history(name))? {
                if v.destroyed_at.is_some() || v.version == current.version {
                    continue;
                }
                match self.checked(i, |s| s.get(name, Selector::Version(v.version))) {
                    Ok(found) => values.push((v.version, found.value)),
                    // Pruned between the history and the read.
                    Err(Error::NotFound { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        values.push((current.version, current.value));
        values.sort_by_key(|(n, _)| *n);
        Ok(Versions {
            current: current.version,
            values,
        })
    }

    /// Writes `name` to the store named (the local vault too, as
    /// [`LOCAL_STORE`]); returns the new version.
    pub fn write_in(
        &mut self,
        store: &str,
        name: &SecretName,
        value: &SecretValue,
        options: &PutOptions,
    ) -> Result<u64> {
        let i = self.index_or_local(store)?;
        self.put_at(i, name, value, options).map(|w| w.version)
    }

    /// Writes many secrets to the store named: one transaction in a vault
    /// (all or nothing), one write after another elsewhere. Every value
    /// passes the write checks before anything is written.
    pub fn set_many_in(
        &mut self,
        store: &str,
        items: &[(SecretName, SecretValue)],
        reason: Option<&str>,
    ) -> Result<Vec<u64>> {
        let i = self.index_or_local(store)?;
        self.admit_store(i)?;
        let options = PutOptions {
            reason: reason.map(str::to_string),
            ..PutOptions::default()
        };
        for (name, value) in items {
            admit(&self.rules, name, value, &options)?;
        }
        if self.entries[i].kind == Some(StoreKind::Vault) {
            let vault = self.vault_at(i, "writing many secrets")?;
            return vault.put_many(items, reason, |_| {});
        }
        items
            .iter()
            .map(|(name, value)| self.put_at(i, name, value, &options).map(|w| w.version))
            .collect()
    }

    /// Deletes `name` from the store named.
    pub fn delete_in(&mut self, store: &str, name: &SecretName, mode: DeleteMode) -> Result<()> {
        let i = self.index_or_local(store)?;
        let store = self.entries[i].name.clone();
        self.delete(name, mode, Some(&store)).map(|_| ())
    }

    /// Up to `n` independent connections to the store named, for writing
    /// from several threads at once: each is built afresh from the store's
    /// config entry. Empty when the store cannot be opened twice (a vault
    /// file, a store given in code): the caller writes through the manager.
    pub fn store_writers(&mut self, store: &str, n: usize) -> Result<Vec<StoreWriter>> {
        let i = self.index_or_local(store)?;
        self.admit_store(i)?;
        let Some(config) = self.entries[i].config.clone() else {
            return Ok(Vec::new());
        };
        if config.kind == StoreKind::Vault {
            return Ok(Vec::new());
        }
        let mut writers = Vec::with_capacity(n);
        for _ in 0..n {
            match self.build(&config)? {
                State::Ready(store) => writers.push(StoreWriter {
                    store,
                    name: config.name.clone(),
                    rules: self.rules.clone(),
                }),
                _ => return Ok(Vec::new()),
            }
        }
        Ok(writers)
    }
}

/// One connection of its own to a store, for a worker thread (see
/// [`Tresor::store_writers`]). Writes pass the same checks as the
/// manager's.
pub struct StoreWriter {
    store: Box<dyn Store>,
    name: String,
    rules: RuleSet,
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWriter")
            .field("store", &self.name)
            .finish_non_exhaustive()
    }
}

impl StoreWriter {
    /// The store's name.
    pub fn store(&self) -> &str {
        &self.name
    }

    /// Writes a new value; returns its version.
    pub fn put(
        &mut self,
        name: &SecretName,
        value: &SecretValue,
        options: &PutOptions,
    ) -> Result<u64> {
        admit(&self.rules, name, value, options)?;
        self.store.put(name, value, options)
    }

    /// Reads one version.
    pub fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Secret> {
        check_name(name)?;
        self.store.get(name, selector)
    }

    /// Deletes.
    pub fn delete(&mut self, name: &SecretName, mode: DeleteMode) -> Result<()> {
        check_name(name)?;
        self.store.delete(name, mode)
    }
}
