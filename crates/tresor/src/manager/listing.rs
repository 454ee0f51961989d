//! Listings merged across stores: the store that would answer a read,
//! the stores it shadows, soft-deleted names.

#[allow(unused_imports)]
use super::*;

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
    /// The stores of `not_listed` already reported through the warning
    /// callback ([`crate::Builder::on_warning`]): a front end need not say
    /// them again.
    pub warned: Vec<String>,
}

impl Tresor {
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

    pub(super) fn list_at(&mut self, prefix: &str, indices: &[usize]) -> Result<Listing> {
        let mut merged: BTreeMap<String, Listed> = BTreeMap::new();
        let mut not_listed = Vec::new();
        let mut warned = Vec::new();
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
                        warned.push(store.clone());
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
            warned,
        })
    }
}
