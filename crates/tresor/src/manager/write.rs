//! Writes: to the first writable store, or the one named; deletes and
//! restores in the store that holds the name.

#[allow(unused_imports)]
use super::*;

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
        check_name(name)?;
        // Every value written through the manager (set, rotate, staging,
        // and whatever later writes through here) meets the rules for its
        // name, unless the caller skipped them on purpose; the vault's
        // audit entry then records that it did.
        if !options.unvalidated {
            self.rules.check(name, value)?;
        }
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
