//! Sealed records: secret headers and versions written, found, opened and
//! pruned, under the data key each names.

use super::*;

impl Vault {
    // ------------------------------------------------------------- internals

    pub(super) fn put_in_tx(
        &mut self,
        name: &SecretName,
        value: &SecretValue,
        options: &PutOptions,
    ) -> Result<u64> {
        let bidx = self.keys.blind_index(name.as_str());
        let now = now_ms();
        let found = self.find(name, &bidx)?;
        let current_version = match &found {
            Some((_, h)) if h.deleted_at.is_none() => h.current.unwrap_or(0),
            _ => 0,
        };
        if let Some(expected) = options.expect_version
            && expected != current_version
        {
            return Err(Error::Conflict {
                store: STORE.into(),
                name: name.to_string(),
                expected,
                found: current_version,
            });
        }
        let fresh = found.is_none();
        let (owner, mut header) = match found {
            Some(found) => found,
            None => {
                let id: i64 = self
                    .conn
                    .prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM secrets")
                    .and_then(|mut s| s.query_row([], |r| r.get(0)))
                    .map_err(|e| self.db(e))?;
                let header = Header {
                    name: name.to_string(),
                    metadata: Metadata::new(),
                    created_at: now,
                    updated_at: now,
                    max_versions: None,
                    current: None,
                    previous: None,
                    pending: None,
                    next_version: 1,
                    deleted_at: None,
                };
                // Row ids are reused after a purge; the record id is new.
                (Owner::new(id), header)
            }
        };
        let version = header.next_version;
        let body = VersionBody {
            value: value.expose_secret(),
            created_at: now,
            actor: &self.actor,
            reason: options.reason.as_deref(),
            fingerprint: self.keys.fingerprint(value.expose_secret()),
        };
        let plain = encode(
            &body,
            value.len() + self.actor.len() + options.reason.as_ref().map_or(0, String::len),
        );
        let aad = owner.aad(
            RecordKind::SecretVersion,
            &self.vault_id,
            version,
            self.write_key,
        );
        let sealed = seal(self.write_dek(), &aad, &plain);
        drop(plain);
        header.next_version = version + 1;
        header.updated_at = now;
        header.deleted_at = None;
        header
            .metadata
            .extend(options.metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        validate_metadata(&header.metadata)?;
        if options.stage {
            header.pending = Some(version);
        } else {
            header.previous = header.current;
            header.current = Some(version);
        }
        self.write_header(owner, &header, &bidx, fresh)?;
        self.conn
            .prepare_cached(
                "INSERT INTO versions(secret_id, version, key_id, body) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![owner.id, version, self.write_key, sealed]))
            .map_err(|e| self.db(e))?;
        let max = header.max_versions.unwrap_or(self.settings.max_versions) as u64;
        if version > max {
            self.prune(owner.id, &header, max)?;
        }
        Ok(version)
    }

    /// Destroys the oldest unlabelled versions beyond `max`.
    pub(super) fn prune(&mut self, id: i64, header: &Header, max: u64) -> Result<()> {
        let live: Vec<u64> = self
            .conn
            .prepare_cached("SELECT version FROM versions WHERE secret_id = ?1 AND body IS NOT NULL ORDER BY version")
            .and_then(|mut s| s.query_map([id], |r| r.get(0))?.collect())
            .map_err(|e| self.db(e))?;
        let mut excess = live.len().saturating_sub(max as usize);
        let now = now_ms();
        for version in live {
            if excess == 0 {
                break;
            }
            if labels_at(header, version).is_empty() {
                self.conn
                    .prepare_cached(
                        "UPDATE versions SET body = NULL, destroyed_at = ?3 WHERE secret_id = ?1 AND version = ?2",
                    )
                    .and_then(|mut s| s.execute(params![id, version, now]))
                    .map_err(|e| self.db(e))?;
                excess -= 1;
            }
        }
        Ok(())
    }

    pub(super) fn find(
        &self,
        name: &SecretName,
        bidx: &[u8; 32],
    ) -> Result<Option<(Owner, Header)>> {
        let row: Option<(i64, u32, Vec<u8>, Vec<u8>)> = self
            .conn
            .prepare_cached("SELECT id, header_key, header, uid FROM secrets WHERE bidx = ?1")
            .and_then(|mut s| {
                s.query_row([&bidx[..]], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
            })
            .map_err(|e| self.db(e))?;
        match row {
            Some((id, key, blob, uid)) => {
                let owner = Owner::from_row(id, &uid, "secret")?;
                Ok(Some((owner, self.open_header(owner, key, &blob, name)?)))
            }
            None => Ok(None),
        }
    }

    /// A secret that exists and is not soft-deleted.
    pub(super) fn live(&self, name: &SecretName) -> Result<(Owner, Header, [u8; 32])> {
        let bidx = self.keys.blind_index(name.as_str());
        match self.find(name, &bidx)? {
            Some((owner, header)) if header.deleted_at.is_none() => Ok((owner, header, bidx)),
            _ => Err(not_found(name, None)),
        }
    }

    pub(super) fn require_live_version(
        &self,
        id: i64,
        name: &SecretName,
        version: u64,
    ) -> Result<()> {
        let body: Option<bool> = self
            .conn
            .prepare_cached(
                "SELECT body IS NOT NULL FROM versions WHERE secret_id = ?1 AND version = ?2",
            )
            .and_then(|mut s| s.query_row(params![id, version], |r| r.get(0)).optional())
            .map_err(|e| self.db(e))?;
        match body {
            Some(true) => Ok(()),
            Some(false) => Err(Error::NotFound {
                store: STORE.into(),
                what: format!("'{name}' version {version} (destroyed)"),
            }),
            None => Err(not_found(name, Some(Selector::Version(version)))),
        }
    }

    pub(super) fn store_header(
        &self,
        owner: Owner,
        header: &Header,
        bidx: &[u8; 32],
    ) -> Result<()> {
        self.write_header(owner, header, bidx, false)
    }

    /// Writes a secret's header row: a new row when `fresh` (the secret
    /// was just created), else the row whose id is `owner`'s, replaced.
    pub(super) fn write_header(
        &self,
        owner: Owner,
        header: &Header,
        bidx: &[u8; 32],
        fresh: bool,
    ) -> Result<()> {
        let plain = encode(header, 128 + header.name.len());
        let aad = owner.aad(RecordKind::SecretHeader, &self.vault_id, 0, self.write_key);
        let sealed = seal(self.write_dek(), &aad, &plain);
        // A new secret's row is a plain INSERT: an upsert makes SQLite keep
        // a statement journal (a copy of every page the statement touches,
        // so that it could undo just itself), a twentieth of an import's
        // time. OR FAIL: a clash (never legitimate: the name was looked up
        // by its `bidx` first) fails the statement without undoing its own
        // partial change, which needs no journal either; every caller is
        // inside `Vault::transaction`, whose rollback undoes everything.
        const INSERT: &str = "INSERT OR FAIL INTO secrets(id, bidx, header, header_key, current, previous, pending, next_version, deleted_at, uid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
        const UPSERT: &str = "INSERT INTO secrets(id, bidx, header, header_key, current, previous, pending, next_version, deleted_at, uid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(id) DO UPDATE SET header = excluded.header, header_key = excluded.header_key,
                   current = excluded.current, previous = excluded.previous, pending = excluded.pending,
                   next_version = excluded.next_version, deleted_at = excluded.deleted_at, uid = excluded.uid";
        self.conn
            .prepare_cached(if fresh { INSERT } else { UPSERT })
            .and_then(|mut s| {
                s.execute(params![
                    owner.id,
                    &bidx[..],
                    sealed,
                    self.write_key,
                    header.current,
                    header.previous,
                    header.pending,
                    header.next_version,
                    header.deleted_at,
                    &owner.uid[..]
                ])
            })
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Opens the current version found by the hot path of `get`: its
    /// header must name the secret, not be deleted, and call `version`
    /// current (the columns alone are not trusted).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open_current(
        &self,
        owner: Owner,
        header_key: u32,
        header: &[u8],
        version: u64,
        key_id: u32,
        body: &[u8],
        name: &SecretName,
    ) -> Result<Secret> {
        let header = self.open_header(owner, header_key, header, name)?;
        if header.deleted_at.is_some() || header.current != Some(version) {
            return Err(self.integrity(format!("labels of '{name}' do not match its header")));
        }
        let value = self.open_value(owner, version, key_id, body, name)?;
        Ok(Secret {
            name: name.clone(),
            version,
            value,
        })
    }

    pub(super) fn open_header(
        &self,
        owner: Owner,
        key_id: u32,
        blob: &[u8],
        name: &SecretName,
    ) -> Result<Header> {
        let header = self.open_header_any(owner, key_id, blob)?;
        if header.name != name.as_str() {
            return Err(self.integrity(format!(
                "the record found for '{name}' belongs to another secret"
            )));
        }
        Ok(header)
    }

    pub(super) fn open_header_any(&self, owner: Owner, key_id: u32, blob: &[u8]) -> Result<Header> {
        let key = self.dek(key_id)?;
        let aad = owner.aad(RecordKind::SecretHeader, &self.vault_id, 0, key_id);
        let plain = open(key, &aad, blob).map_err(|_| {
            self.integrity(format!(
                "the header of secret {} does not decrypt",
                owner.id
            ))
        })?;
        decode_owned(&plain, "a secret header")
    }

    pub(super) fn open_version(
        &self,
        owner: Owner,
        version: u64,
        key_id: u32,
        blob: &[u8],
        name: &SecretName,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let key = self.dek(key_id)?;
        let aad = owner.aad(RecordKind::SecretVersion, &self.vault_id, version, key_id);
        open(key, &aad, blob)
            .map_err(|_| self.integrity(format!("'{name}' version {version} does not decrypt")))
    }

    pub(super) fn open_value(
        &self,
        owner: Owner,
        version: u64,
        key_id: u32,
        blob: &[u8],
        name: &SecretName,
    ) -> Result<SecretValue> {
        let plain = self.open_version(owner, version, key_id, blob, name)?;
        let body: VersionBody = decode(&plain, "a version record")?;
        Ok(SecretValue::copy_from(body.value))
    }

    pub(crate) fn dek(&self, key_id: u32) -> Result<&Key> {
        self.data_keys.get(&key_id).ok_or_else(|| {
            self.key_missed.set(true);
            self.integrity(format!(
                "record names data key {key_id}, which the vault lacks"
            ))
        })
    }

    pub(crate) fn write_dek(&self) -> &Key {
        // load_data_keys guarantees the write key is loaded.
        &self.data_keys[&self.write_key]
    }
}
