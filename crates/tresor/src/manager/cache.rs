//! Offline copies: what the manager keeps of a remote store's answers in
//! the local vault (`.tresor/cache/<store>/<name>`) and when it reads them.

#[allow(unused_imports)]
use super::*;

/// `.tresor/cache/<store>/<name>`, if that fits the name length limit.
pub fn cache_name(store: &str, name: &SecretName) -> Option<SecretName> {
    SecretName::new(format!("{CACHE_PREFIX}{store}/{name}")).ok()
}

impl Tresor {
    /// The offline copy of `name` kept for store `i`, if there is one young
    /// enough; warns that it answers.
    pub(super) fn cached_read(
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
            // Not a warning: the read's error (see `Tresor::get`).
            self.missed = Some(Error::Stale {
                store,
                name: name.to_string(),
                age,
                max_age: max,
            });
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
    pub(super) fn keep_copy(&mut self, i: usize, secret: &Secret) {
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

    pub(super) fn write_copy(
        &mut self,
        store: &str,
        copy: &SecretName,
        secret: &Secret,
    ) -> Result<()> {
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
}
