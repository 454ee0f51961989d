//! The in-memory cache of named keys behind every use: tables made on
//! first use, material unwrapped once, freshness against other processes,
//! and uses counted into audit groups.

use super::*;

impl Keys<'_> {
    // ------------------------------------------------------------ internals

    /// Creates the tables in a vault made before them (once per unlocked
    /// vault), and empties the cache when another connection has committed.
    pub(super) fn prepare(&mut self) -> Result<()> {
        let v = &mut *self.vault;
        if !v.named_keys.ready {
            if !tables_exist(v)? {
                v.transaction(|v| {
                    v.conn()
                        .execute_batch(schema::CREATE_NAMED_KEYS)
                        .map_err(|e| v.db(e))
                })?;
            }
            v.named_keys.ready = true;
        }
        // Asking SQLite costs about as much as an envelope: once per
        // interval is enough to see other processes' changes promptly.
        let now = Instant::now();
        if v.named_keys
            .checked_at
            .is_some_and(|t| now.duration_since(t) < CACHE_CHECK_INTERVAL)
        {
            return Ok(());
        }
        let version: i64 = v
            .conn()
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| v.db(e))?;
        if v.named_keys.data_version != Some(version) {
            // Another connection committed: it may have rekeyed, re-sealing
            // the key versions under data keys this handle lacks, or changed
            // the settings (`audit_reads`).
            v.ensure_keys_current()?;
            v.refresh_settings()?;
            v.named_keys.keys.clear();
            v.named_keys.data_version = Some(version);
        }
        v.named_keys.checked_at = Some(now);
        Ok(())
    }

    pub(super) fn before_change(&mut self) -> Result<()> {
        self.flush()?;
        self.vault.named_keys.checked_at = None;
        self.prepare()
    }

    /// Drops what the cache holds about `name` (its material is wiped).
    pub(super) fn forget(&mut self, name: &SecretName) {
        self.vault.named_keys.keys.remove(name.as_str());
    }

    pub(super) fn encrypt_latest(
        &mut self,
        name: &SecretName,
        plaintext: &[u8],
    ) -> Result<(String, u32)> {
        self.prepare()?;
        let state = self.cached(name)?;
        let (latest, owner, key_type) = (state.latest, state.owner, state.key_type);
        if !key_type.seals_envelopes() {
            return Err(no_envelopes(name, key_type));
        }
        if key_type == KeyType::Aes256Gcm {
            // Loaded first: a destroyed version is reported as such.
            self.material(name, latest)?;
            self.count_encryption(name, owner, latest)?;
        }
        let (key_type, key) = self.material(name, latest)?;
        let envelope = seal_envelope(key_type, key, name.as_str(), latest, plaintext)
            .map_err(|_| no_envelopes(name, key_type))?;
        Ok((envelope, latest))
    }

    /// Loads the versions an age use gets into the cache; returns their
    /// numbers, newest first.
    pub(super) fn age_versions(&mut self, name: &SecretName, purpose: AgeUse) -> Result<Vec<u32>> {
        self.prepare()?;
        let state = self.cached(name)?;
        if state.key_type != KeyType::AgeX25519 {
            return Err(Error::WrongKeyType {
                name: name.to_string(),
                key_type: state.key_type.to_string(),
                purpose: "do not encrypt or decrypt files: that needs an age key",
            });
        }
        let (owner, latest, min) = (state.owner, state.latest, state.min_decrypt);
        let wanted = match purpose {
            AgeUse::Recipient | AgeUse::Encrypt => latest..=latest,
            AgeUse::Decrypt => min..=latest,
        };
        let mut versions = Vec::new();
        for version in wanted.rev() {
            if self.vault.named_keys.keys[name.as_str()]
                .material
                .contains_key(&version)
            {
                versions.push(version);
            } else if let Some(key) = load_material(self.vault, owner, name, version)? {
                if let Some(state) = self.vault.named_keys.keys.get_mut(name.as_str()) {
                    state.material.insert(version, key);
                }
                versions.push(version);
            }
        }
        if versions.is_empty() {
            return Err(destroyed(name, latest));
        }
        Ok(versions)
    }

    /// Parses and opens an envelope. The outer error: no valid key name
    /// (nothing to name in the audit entry); the inner one: the named key
    /// refused it.
    pub(super) fn open_envelope(&mut self, text: &str) -> Result<(SecretName, Result<Opened>)> {
        let envelope = Envelope::parse(text).map_err(envelope_error)?;
        let name = SecretName::new(envelope.name).map_err(|_| Error::Integrity {
            store: STORE.into(),
            detail: "the envelope's key name breaks the naming rule: it was altered".into(),
        })?;
        let result = self.open_with(&name, &envelope);
        Ok((name, result))
    }

    pub(super) fn open_with(
        &mut self,
        name: &SecretName,
        envelope: &Envelope<'_>,
    ) -> Result<Opened> {
        self.prepare()?;
        let version = envelope.version;
        let state = self.cached(name)?;
        let (owner, latest, min) = (state.owner, state.latest, state.min_decrypt);
        if !state.key_type.seals_envelopes() {
            return Err(no_envelopes(name, state.key_type));
        }
        if version > latest {
            return Err(Error::NotFound {
                store: STORE.into(),
                what: format!("named key '{name}' version {version}"),
            });
        }
        if version < min {
            if load_material(self.vault, owner, name, version)?.is_none() {
                return Err(destroyed(name, version));
            }
            return Err(Error::Validation(format!(
                "the envelope uses version {version} of named key '{name}', below its minimum \
                 decryption version {min}; lowering the minimum to {version} would allow it \
                 again"
            )));
        }
        let (key_type, key) = self.material(name, version)?;
        let plain = envelope.open(key_type, key).map_err(|_| Error::Integrity {
            store: STORE.into(),
            detail: format!(
                "the envelope for named key '{name}' version {version} does not decrypt: it was \
                 altered, or made by another vault or an earlier key of that name"
            ),
        })?;
        Ok((plain, version))
    }

    /// The cached header of a live key, read from the vault on a miss.
    pub(super) fn cached(&mut self, name: &SecretName) -> Result<&Cached> {
        if !self.vault.named_keys.keys.contains_key(name.as_str()) {
            let (owner, header, _) = live(self.vault, name)?;
            self.vault.named_keys.keys.insert(
                name.to_string(),
                Cached {
                    owner,
                    key_type: header.key_type,
                    latest: header.latest,
                    min_decrypt: header.min_decrypt,
                    material: HashMap::new(),
                },
            );
        }
        Ok(&self.vault.named_keys.keys[name.as_str()])
    }

    /// The material of one version, unwrapped on first use.
    pub(super) fn material(&mut self, name: &SecretName, version: u32) -> Result<(KeyType, &Key)> {
        let state = self.cached(name)?;
        let (owner, loaded) = (state.owner, state.material.contains_key(&version));
        if !loaded {
            let key = load_material(self.vault, owner, name, version)?
                .ok_or_else(|| destroyed(name, version))?;
            if let Some(state) = self.vault.named_keys.keys.get_mut(name.as_str()) {
                state.material.insert(version, key);
            }
        }
        let state = &self.vault.named_keys.keys[name.as_str()];
        Ok((state.key_type, &state.material[&version]))
    }

    /// Counts one use into its group; writes the groups once the interval
    /// has passed.
    pub(super) fn record(
        &mut self,
        op: Operation,
        name: Option<&SecretName>,
        versions: &[u64],
        result: &'static str,
    ) -> Result<()> {
        // Successful uses are read-like and follow `audit_reads`; every
        // failure (an altered or foreign envelope, a version below the
        // minimum, an unknown key, a wrong age identity) is always recorded.
        if !self.vault.settings().audit_reads && result == "ok" {
            return Ok(());
        }
        let group = self.uses.iter_mut().find(|u| {
            u.op == op && u.result == result && u.versions == versions && u.name.as_ref() == name
        });
        match group {
            Some(u) => u.calls += 1,
            None => self.uses.push(Use {
                op,
                name: name.cloned(),
                versions: versions.to_vec(),
                result,
                calls: 1,
            }),
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        if self.uses.len() >= MAX_GROUPS || since.elapsed() >= AUDIT_INTERVAL {
            self.flush()?;
        }
        Ok(())
    }
}
