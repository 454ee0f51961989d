//! Writes: to the first writable store, or the one named; deletes and
//! restores in the store that holds the name.

use super::*;
#[allow(unused_imports)]
use tresor_core::rules::RuleSet;

impl Tresor {
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

    pub(super) fn put_at(
        &mut self,
        i: usize,
        name: &SecretName,
        value: &SecretValue,
        options: &PutOptions,
    ) -> Result<Written> {
        self.admit_store(i)?;
        admit(&self.rules, name, value, options)?;
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

    /// Whether store `i` may be written now: not offline-refused, not
    /// `read_only` in the config.
    pub(super) fn admit_store(&self, i: usize) -> Result<()> {
        self.refuse_offline(i)?;
        if self.entries[i].settings.read_only {
            return Err(Error::ReadOnly {
                store: format!("store '{}' (read_only = true)", self.entries[i].name),
            });
        }
        Ok(())
    }

    pub(super) fn first_writable(&mut self) -> Result<usize> {
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
    pub(super) fn writable(&mut self, i: usize) -> bool {
        let e = &self.entries[i];
        if e.settings.read_only || e.kind == Some(StoreKind::Env) {
            return false;
        }
        match &e.state {
            State::Ready(s) => !s.capabilities().read_only,
            _ => true,
        }
    }
}

/// The checks every write of a value goes through, whichever path carries
/// it ([`Tresor::set`], [`Tresor::set_many_in`], a [`super::StoreWriter`]):
/// the one place rules on names and values are applied.
pub(super) fn admit(
    rules: &RuleSet,
    name: &SecretName,
    value: &SecretValue,
    options: &PutOptions,
) -> Result<()> {
    check_name(name)?;
    // Every value written through the manager (set, rotate, staging,
    // import, migrate, sync) meets the rules for its name, unless the caller
    // skipped them on purpose; the vault's audit entry then records that.
    if !options.unvalidated {
        rules.check(name, value)?;
    }
    Ok(())
}

/// A secret's versions to write, oldest first, each with its options.
pub type History = (SecretName, Vec<(SecretValue, PutOptions)>);

/// What an import wrote.
#[derive(Clone, Debug, Serialize)]
pub struct Imported {
    /// The store written to.
    pub store: String,
    /// How many secrets were written.
    pub written: usize,
}

impl Tresor {
    /// Writes every item to the store named (or the first writable one),
    /// all or nothing: into a vault in one transaction (one audit entry per
    /// secret); into any other store one by one, and when a write fails,
    /// the ones before it are undone (new names deleted, changed ones
    /// written back). `progress` is called with the count written so far.
    pub fn import(
        &mut self,
        store: Option<&str>,
        items: &[(SecretName, SecretValue)],
        reason: Option<&str>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Imported> {
        let options = PutOptions {
            reason: reason.map(str::to_string),
            ..PutOptions::default()
        };
        self.import_with(store, items, &options, progress)
    }

    /// [`Tresor::import`] with every item written under `options` (its
    /// reason; with `unvalidated` the rules are skipped and a vault's audit
    /// entry for each secret carries the flag `unvalidated`).
    pub fn import_with(
        &mut self,
        store: Option<&str>,
        items: &[(SecretName, SecretValue)],
        options: &PutOptions,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Imported> {
        let i = match store {
            Some(s) => self.index(s)?,
            None => self.first_writable()?,
        };
        self.admit_store(i)?;
        // Every value meets the rules for its name, as on every write path
        // (unless the caller skipped them on purpose).
        for (name, value) in items {
            admit(&self.rules, name, value, options)?;
        }
        let store_name = self.entries[i].name.clone();
        match self.vault_at(i, "import") {
            Ok(vault) => {
                vault.put_many_with(items, options, &mut *progress)?;
            }
            Err(Error::Unsupported { .. }) => {
                let mut undo: Vec<(SecretName, Option<SecretValue>)> = Vec::new();
                let mut failure = None;
                for (n, (name, value)) in items.iter().enumerate() {
                    let before = match self.checked(i, |s| s.get(name, Selector::default())) {
                        Ok(found) => Some(found.value),
                        Err(Error::NotFound { .. } | Error::Deleted { .. }) => None,
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    };
                    if let Err(e) = self.checked(i, |s| s.put(name, value, options)) {
                        failure = Some(e);
                        break;
                    }
                    undo.push((name.clone(), before));
                    progress(n + 1);
                }
                if let Some(e) = failure {
                    for (name, before) in undo.into_iter().rev() {
                        let _ = match before {
                            Some(v) => self
                                .checked(i, |s| s.put(&name, &v, &PutOptions::default()))
                                .map(drop),
                            None => self.checked(i, |s| s.delete(&name, DeleteMode::Purge)),
                        };
                    }
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
        Ok(Imported {
            store: store_name,
            written: items.len(),
        })
    }
}

impl Tresor {
    /// Writes whole histories (an export bundle read back) to the store
    /// named or the first writable one: into a vault every version, oldest
    /// first, with its reason and metadata, in one transaction; into a store
    /// without versions only each secret's last version, all or nothing as
    /// [`Tresor::import`].
    pub fn import_histories(
        &mut self,
        store: Option<&str>,
        items: &[History],
        reason: Option<&str>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Imported> {
        let i = match store {
            Some(s) => self.index(s)?,
            None => self.first_writable()?,
        };
        self.admit_store(i)?;
        // A bundle restores tresor's own history: the current (last) version
        // of each secret meets today's rules; older versions are kept as
        // they were written.
        for (name, versions) in items {
            match versions.last() {
                Some((value, options)) => admit(&self.rules, name, value, options)?,
                None => check_name(name)?,
            }
        }
        let store_name = self.entries[i].name.clone();
        match self.vault_at(i, "import") {
            Ok(vault) => {
                vault.put_histories(items, reason, &mut *progress)?;
                Ok(Imported {
                    store: store_name,
                    written: items.len(),
                })
            }
            Err(Error::Unsupported { .. }) => {
                let last: Vec<(SecretName, SecretValue)> = items
                    .iter()
                    .filter_map(|(name, versions)| {
                        versions
                            .last()
                            .map(|(v, _)| (name.clone(), SecretValue::copy_from(v.expose_secret())))
                    })
                    .collect();
                let options = PutOptions {
                    reason: reason.map(str::to_string),
                    unvalidated: items
                        .iter()
                        .any(|(_, v)| v.last().is_some_and(|(_, o)| o.unvalidated)),
                    ..PutOptions::default()
                };
                self.import_with(Some(&store_name), &last, &options, progress)
            }
            Err(e) => Err(e),
        }
    }
}
