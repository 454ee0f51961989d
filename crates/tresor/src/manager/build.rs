//! Stores made from config entries on first use: references (`ENV/`,
//! `SEC/`) resolved, then the kind's constructor.

#[allow(unused_imports)]
use super::*;

impl Tresor {
    /// Builds the store a config entry describes: references resolved,
    /// then the kind's `from_options`.
    pub(super) fn build(&mut self, c: &StoreConfig) -> Result<State> {
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
    pub(super) fn resolve(
        &mut self,
        store: &str,
        key: &str,
        value: &OptionValue,
    ) -> Result<Zeroizing<String>> {
        match value {
            OptionValue::Text(t) => Ok(Zeroizing::new(t.clone())),
            OptionValue::Env(var) => {
                std::env::var(var)
                    .map(Zeroizing::new)
                    .map_err(|_| Error::InvalidOption {
                        store: store.into(),
                        option: key.into(),
                        problem: format!("refers to ENV/{var}, which is not set"),
                    })
            }
            OptionValue::Secret(name, version) => {
                let selector = version.map_or(Selector::default(), Selector::Version);
                let secret = self
                    .local_vault()?
                    .get(name, selector)
                    .map_err(|e| match e {
                        Error::NotFound { .. } | Error::Deleted { .. } => Error::InvalidOption {
                            store: store.into(),
                            option: key.into(),
                            problem: format!(
                                "refers to {}, which the local vault does not hold",
                                value.describe()
                            ),
                        },
                        e => e,
                    })?;
                let text = secret
                    .value
                    .expose_text()
                    .ok_or_else(|| Error::InvalidOption {
                        store: store.into(),
                        option: key.into(),
                        problem: format!("{} is not UTF-8 text", value.describe()),
                    })?;
                Ok(Zeroizing::new(text.to_string()))
            }
        }
    }
}
