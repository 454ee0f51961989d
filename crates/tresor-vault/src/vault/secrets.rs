//! Secrets: reads (get, list, history, metadata) and writes (put, import,
//! delete, undelete, rollback, promote, metadata), each audited.

use super::*;

/// Audit entries of a bulk write appended (and the chain head moved) per
/// this many secrets: the head is not rewritten after every entry, and the
/// entries waiting stay few (memory flat in the size of an import).
const AUDIT_BATCH: usize = 1024;
impl Vault {
    // ---------------------------------------------------------------- reads

    /// Reads one version of a secret. A soft-deleted secret is not found.
    pub fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Secret> {
        self.refresh_settings()?;
        if !self.settings.audit_reads {
            let result = self.fresh(|v| v.get_unaudited(name, selector));
            if let Err(e @ Error::Integrity { .. }) = &result {
                // A record that does not decrypt is always recorded, reads
                // audited or not (best effort: the error is the answer).
                let _ = self.audit_write(Operation::Get, Some(name), vec![], e.kind(), None, false);
            }
            return result;
        }
        // The read and its audit entry share one transaction: one lock
        // round trip instead of two, and the entry commits with the read.
        self.exec_cached("PRAGMA synchronous=NORMAL")?;
        let result = self.transaction(|v| {
            let result = v.get_unaudited(name, selector);
            let (versions, outcome) = match &result {
                Ok(s) => (vec![s.version], "ok"),
                Err(e) => (vec![], e.kind()),
            };
            let body = v.audit_body(Operation::Get, Some(name), versions, outcome, None);
            v.append_audit(&body)?;
            Ok(result)
        });
        self.exec_cached("PRAGMA synchronous=FULL")?;
        result?
    }

    /// Reads several secrets as [`Vault::get`] would, each read audited in
    /// its own entry, all in one transaction: one commit for the batch
    /// instead of one per secret. Answers in the order asked.
    pub fn get_many(&mut self, requests: &[(SecretName, Selector)]) -> Vec<Result<Secret>> {
        // A failure here fails each get below the same way.
        if self.refresh_settings().is_err() || !self.settings.audit_reads || requests.len() < 2 {
            return requests.iter().map(|(n, s)| self.get(n, *s)).collect();
        }
        if let Err(e) = self.exec_cached("PRAGMA synchronous=NORMAL") {
            let mut out = vec![Err(e)];
            out.extend(requests[1..].iter().map(|(n, s)| self.get(n, *s)));
            return out;
        }
        let batch = self.transaction(|v| {
            let mut out = Vec::with_capacity(requests.len());
            let mut bodies = Vec::with_capacity(requests.len());
            for (name, selector) in requests {
                let result = v.get_unaudited(name, *selector);
                let (versions, outcome) = match &result {
                    Ok(s) => (vec![s.version], "ok"),
                    Err(e) => (vec![], e.kind()),
                };
                bodies.push(v.audit_body(Operation::Get, Some(name), versions, outcome, None));
                out.push(result);
            }
            // One entry per read, the chain's head moved once.
            v.append_audit_many(&bodies)?;
            Ok(out)
        });
        let restored = self.exec_cached("PRAGMA synchronous=FULL");
        match (batch, restored) {
            (Ok(out), Ok(())) => out,
            // The batch did not commit: each read on its own says why.
            _ => requests.iter().map(|(n, s)| self.get(n, *s)).collect(),
        }
    }

    /// Reads, for each name, every version that still has its value
    /// (oldest first; with `all_versions` false, only the current one) and
    /// which of them is current: what a migration copies. One transaction
    /// for the batch and one audit entry per secret naming the versions
    /// read (a `get`), as [`Vault::get_many`] does. A soft-deleted secret
    /// is [`Error::Deleted`]. Answers in the order asked.
    pub fn versions_many(
        &mut self,
        names: &[SecretName],
        all_versions: bool,
    ) -> Result<Vec<Result<Versions>>> {
        let read = |v: &mut Self, name: &SecretName| -> Result<Versions> {
            if !all_versions {
                let s = v.get_unaudited(name, Selector::default())?;
                return Ok(Versions {
                    current: s.version,
                    values: vec![(s.version, s.value)],
                });
            }
            v.versions_unaudited(name)
        };
        if !self.settings.audit_reads {
            return self.snapshot(|v| Ok(names.iter().map(|n| read(v, n)).collect()));
        }
        self.exec_cached("PRAGMA synchronous=NORMAL")?;
        let batch = self.transaction(|v| {
            let mut out = Vec::with_capacity(names.len());
            let mut bodies = Vec::with_capacity(names.len());
            for name in names {
                let result = read(v, name);
                let (versions, outcome) = match &result {
                    Ok(found) => (found.values.iter().map(|(n, _)| *n).collect(), "ok"),
                    Err(e) => (vec![], e.kind()),
                };
                bodies.push(v.audit_body(Operation::Get, Some(name), versions, outcome, None));
                out.push(result);
            }
            v.append_audit_many(&bodies)?;
            Ok(out)
        });
        let restored = self.exec_cached("PRAGMA synchronous=FULL");
        let out = batch?;
        restored?;
        Ok(out)
    }

    fn versions_unaudited(&self, name: &SecretName) -> Result<Versions> {
        let bidx = self.keys.blind_index(name.as_str());
        let (owner, header) = self
            .find(name, &bidx)?
            .ok_or_else(|| not_found(name, None))?;
        if header.deleted_at.is_some() {
            return Err(Error::Deleted {
                store: STORE.into(),
                name: name.to_string(),
            });
        }
        let current = header.current.ok_or_else(|| not_found(name, None))?;
        let rows: Vec<(u64, u32, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT version, key_id, body FROM versions
                 WHERE secret_id = ?1 AND body IS NOT NULL ORDER BY version",
            )
            .and_then(|mut st| {
                st.query_map([owner.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(|e| self.db(e))?;
        let mut values = Vec::with_capacity(rows.len());
        for (version, key_id, body) in rows {
            values.push((
                version,
                self.open_value(owner, version, key_id, &body, name)?,
            ));
        }
        if !values.iter().any(|(n, _)| *n == current) {
            return Err(Error::NotFound {
                store: STORE.into(),
                what: format!("'{name}' version {current} (destroyed)"),
            });
        }
        Ok(Versions { current, values })
    }

    pub(super) fn get_unaudited(
        &mut self,
        name: &SecretName,
        selector: Selector,
    ) -> Result<Secret> {
        let bidx = self.keys.blind_index(name.as_str());
        if selector == Selector::Label(Label::Current) {
            // The hot path: one indexed query joins the secret to its current
            // version; both records are opened straight from SQLite's row
            // buffers, without copying the ciphertexts out first.
            let this = &*self;
            let found = this
                .conn
                .prepare_cached(
                    "SELECT s.id, s.uid, s.header_key, s.header, v.version, v.key_id, v.body
                     FROM secrets s JOIN versions v ON v.secret_id = s.id AND v.version = s.current
                     WHERE s.bidx = ?1 AND s.deleted_at IS NULL",
                )
                .and_then(|mut st| {
                    st.query_row([&bidx[..]], |r| {
                        let id = r.get::<_, i64>(0)?;
                        let owner = Owner::from_row(id, r.get_ref(1)?.as_blob()?, "secret");
                        let header_key = r.get::<_, u32>(2)?;
                        let header = r.get_ref(3)?.as_blob()?;
                        let version = r.get::<_, u64>(4)?;
                        let key_id = r.get::<_, u32>(5)?;
                        let Some(body) = r.get_ref(6)?.as_blob_or_null()? else {
                            // A destroyed current version: the slow path says so.
                            return Ok(None);
                        };
                        Ok(Some(owner.and_then(|owner| {
                            this.open_current(
                                owner, header_key, header, version, key_id, body, name,
                            )
                        })))
                    })
                    .optional()
                })
                .map_err(|e| self.db(e))?;
            if let Some(Some(secret)) = found {
                return secret;
            }
        }
        let (owner, header) = self
            .find(name, &bidx)?
            .ok_or_else(|| not_found(name, None))?;
        if header.deleted_at.is_some() {
            return Err(Error::Deleted {
                store: STORE.into(),
                name: name.to_string(),
            });
        }
        let version = match selector {
            Selector::Version(v) => v,
            Selector::Label(l) => {
                label_of(&header, l).ok_or_else(|| not_found(name, Some(selector)))?
            }
        };
        let row = self
            .conn
            .prepare_cached(
                "SELECT key_id, body FROM versions WHERE secret_id = ?1 AND version = ?2",
            )
            .and_then(|mut st| {
                st.query_row(params![owner.id, version], |r| {
                    Ok((r.get::<_, u32>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
                })
                .optional()
            })
            .map_err(|e| self.db(e))?;
        match row {
            Some((key_id, Some(body))) => {
                let value = self.open_value(owner, version, key_id, &body, name)?;
                Ok(Secret {
                    name: name.clone(),
                    version,
                    value,
                })
            }
            Some((_, None)) => Err(Error::NotFound {
                store: STORE.into(),
                what: format!("'{name}' version {version} (destroyed)"),
            }),
            None => Err(not_found(name, Some(Selector::Version(version)))),
        }
    }

    /// Lists secrets whose names start with `prefix`, sorted by name; with
    /// `deleted`, only soft-deleted ones.
    pub fn list(&mut self, prefix: &str, deleted: bool) -> Result<Vec<SecretInfo>> {
        self.refresh_settings()?;
        let out = self.fresh(|v| v.list_unaudited(prefix, deleted))?;
        if self.settings.audit_reads {
            self.audit_write(
                Operation::List,
                None,
                vec![],
                "ok",
                (!prefix.is_empty()).then(|| format!("prefix {prefix}")),
                true,
            )?;
        }
        Ok(out)
    }

    pub(super) fn list_unaudited(&self, prefix: &str, deleted: bool) -> Result<Vec<SecretInfo>> {
        let sql = if deleted {
            "SELECT id, header_key, header, uid FROM secrets WHERE deleted_at IS NOT NULL"
        } else {
            "SELECT id, header_key, header, uid FROM secrets WHERE deleted_at IS NULL"
        };
        let rows: Vec<(i64, u32, Vec<u8>, Vec<u8>)> = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect()
            })
            .map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for (id, key, blob, uid) in rows {
            let owner = Owner::from_row(id, &uid, "secret")?;
            let header = self.open_header_any(owner, key, &blob)?;
            if !header.name.starts_with(prefix) {
                continue;
            }
            out.push(info_of(header)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every version of a secret, oldest first, without values.
    pub fn history(&mut self, name: &SecretName) -> Result<Vec<VersionInfo>> {
        self.refresh_settings()?;
        // The header and its versions from one snapshot, under current keys.
        let out = self.snapshot(|v| v.history_unaudited(name))?;
        if self.settings.audit_reads {
            self.audit_write(Operation::History, Some(name), vec![], "ok", None, true)?;
        }
        Ok(out)
    }

    /// Every version of a secret, as [`Vault::history`], except that a
    /// soft-deleted secret is [`Error::Deleted`] (as for `get`) unless
    /// `deleted` asks for it.
    pub fn history_of(&mut self, name: &SecretName, deleted: bool) -> Result<Vec<VersionInfo>> {
        self.refresh_settings()?;
        let out = self.snapshot(|v| {
            let bidx = v.keys.blind_index(name.as_str());
            let (_, header) = v.find(name, &bidx)?.ok_or_else(|| not_found(name, None))?;
            if header.deleted_at.is_some() && !deleted {
                return Err(Error::Deleted {
                    store: STORE.into(),
                    name: name.to_string(),
                });
            }
            v.history_unaudited(name)
        })?;
        if self.settings.audit_reads {
            self.audit_write(Operation::History, Some(name), vec![], "ok", None, true)?;
        }
        Ok(out)
    }

    pub(super) fn history_unaudited(&self, name: &SecretName) -> Result<Vec<VersionInfo>> {
        let bidx = self.keys.blind_index(name.as_str());
        let (owner, header) = self
            .find(name, &bidx)?
            .ok_or_else(|| not_found(name, None))?;
        let rows: Vec<VersionRow> = self
            .conn
            .prepare_cached(
                "SELECT version, key_id, body, destroyed_at FROM versions WHERE secret_id = ?1 ORDER BY version",
            )
            .and_then(|mut st| st.query_map([owner.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect())
            .map_err(|e| self.db(e))?;
        let mut out = Vec::with_capacity(rows.len());
        for (version, key_id, body, destroyed_at) in rows {
            let labels = labels_at(&header, version);
            match body {
                Some(body) => {
                    let plain = self.open_version(owner, version, key_id, &body, name)?;
                    let b: VersionBody = decode(&plain, "a version record")?;
                    out.push(VersionInfo {
                        version,
                        created_at: b.created_at,
                        actor: b.actor.to_string(),
                        reason: b.reason.map(str::to_string),
                        labels,
                        destroyed_at: None,
                        len: b.value.len(),
                    });
                }
                None => out.push(VersionInfo {
                    version,
                    created_at: 0,
                    actor: String::new(),
                    reason: None,
                    labels,
                    destroyed_at,
                    len: 0,
                }),
            }
        }
        Ok(out)
    }

    /// A secret's metadata.
    pub fn metadata(&mut self, name: &SecretName) -> Result<Metadata> {
        let (_, header) = self.fresh(|v| {
            let bidx = v.keys.blind_index(name.as_str());
            v.find(name, &bidx)?.ok_or_else(|| not_found(name, None))
        })?;
        if header.deleted_at.is_some() {
            return Err(not_found(name, None));
        }
        Ok(header.metadata)
    }

    // --------------------------------------------------------------- writes

    /// Writes a new version; returns its number.
    pub fn put(
        &mut self,
        name: &SecretName,
        value: &SecretValue,
        options: &PutOptions,
    ) -> Result<u64> {
        validate_metadata(&options.metadata)?;
        let reason = options.reason.clone();
        let flags: &[&str] = if options.unvalidated {
            &[crate::audit::FLAG_UNVALIDATED]
        } else {
            &[]
        };
        self.write_flagged(Operation::Set, Some(name), reason.as_deref(), flags, |v| {
            // Under the write lock, against the vault's settings as they are now.
            v.check_value(name, value)?;
            let version = v.put_in_tx(name, value, options)?;
            Ok((version, vec![version]))
        })
    }

    /// Writes many secrets in one transaction (import). Every value is
    /// checked before anything is written; `progress` is called after each.
    pub fn put_many<'a>(
        &mut self,
        items: &[(SecretName, SecretValue)],
        reason: Option<&str>,
        progress: impl FnMut(usize) + 'a,
    ) -> Result<Vec<u64>> {
        let options = PutOptions {
            reason: reason.map(str::to_string),
            ..PutOptions::default()
        };
        self.put_many_with(items, &options, progress)
    }

    /// [`Vault::put_many`] with every secret written under `options`: its
    /// reason (also in each audit entry), metadata and labels; with
    /// `unvalidated`, each audit entry carries the flag `unvalidated`, as
    /// [`Vault::put`] does.
    pub fn put_many_with<'a>(
        &mut self,
        items: &[(SecretName, SecretValue)],
        options: &PutOptions,
        mut progress: impl FnMut(usize) + 'a,
    ) -> Result<Vec<u64>> {
        validate_metadata(&options.metadata)?;
        let flags = flags_of(options.unvalidated);
        // Nonces and record ids for every secret, a block of OS randomness
        // at a time.
        let _random = tresor_crypto::RandomBatch::start();
        self.transaction(|v| {
            v.defer_foreign_keys()?;
            for (name, value) in items {
                v.check_value(name, value)?;
            }
            let mut versions = Vec::with_capacity(items.len());
            let mut bodies = Vec::with_capacity(items.len().min(AUDIT_BATCH));
            for (i, (name, value)) in items.iter().enumerate() {
                let version = v.put_in_tx(name, value, options)?;
                let mut body = v.audit_body(
                    Operation::Import,
                    Some(name),
                    vec![version],
                    "ok",
                    options.reason.clone(),
                );
                body.flags.clone_from(&flags);
                bodies.push(body);
                if bodies.len() == AUDIT_BATCH {
                    v.append_audit_many(&bodies)?;
                    bodies.clear();
                }
                versions.push(version);
                progress(i + 1);
            }
            // One entry per secret, in order; the head moves once a batch.
            v.append_audit_many(&bodies)?;
            Ok(versions)
        })
        .inspect(|_| self.checkpoint_truncate())
    }

    /// Writes whole histories in one transaction (an export bundle read
    /// back): each secret's versions oldest first, each with its own reason
    /// and metadata, one audit entry per secret naming every version written.
    /// Every value and metadata map is checked before anything is written;
    /// `progress` is called after each secret.
    pub fn put_histories(
        &mut self,
        items: &[(SecretName, Vec<(SecretValue, PutOptions)>)],
        reason: Option<&str>,
        mut progress: impl FnMut(usize),
    ) -> Result<()> {
        for (_, versions) in items {
            for (_, options) in versions {
                validate_metadata(&options.metadata)?;
            }
        }
        // Nonces and record ids for every secret, a block of OS randomness
        // at a time.
        let _random = tresor_crypto::RandomBatch::start();
        self.transaction(|v| {
            v.defer_foreign_keys()?;
            for (name, versions) in items {
                for (value, _) in versions {
                    v.check_value(name, value)?;
                }
            }
            let mut bodies = Vec::with_capacity(items.len().min(AUDIT_BATCH));
            for (i, (name, versions)) in items.iter().enumerate() {
                let mut written = Vec::with_capacity(versions.len());
                for (value, options) in versions {
                    written.push(v.put_in_tx(name, value, options)?);
                }
                let mut body = v.audit_body(
                    Operation::Import,
                    Some(name),
                    written,
                    "ok",
                    reason.map(str::to_string),
                );
                // A version written without its rules being checked marks
                // the secret's entry, as a single `put` would.
                body.flags = flags_of(versions.iter().any(|(_, o)| o.unvalidated));
                bodies.push(body);
                if bodies.len() == AUDIT_BATCH {
                    v.append_audit_many(&bodies)?;
                    bodies.clear();
                }
                progress(i + 1);
            }
            v.append_audit_many(&bodies)?;
            Ok(())
        })
        .inspect(|_| self.checkpoint_truncate())
    }

    /// Soft-deletes (hides) or purges (destroys every version of) a secret.
    pub fn delete(&mut self, name: &SecretName, mode: DeleteMode) -> Result<()> {
        let op = if mode == DeleteMode::Purge {
            Operation::Purge
        } else {
            Operation::Delete
        };
        self.write(op, Some(name), None, |v| {
            let bidx = v.keys.blind_index(name.as_str());
            let (owner, mut header) = v.find(name, &bidx)?.ok_or_else(|| not_found(name, None))?;
            match mode {
                DeleteMode::Soft => {
                    if header.deleted_at.is_some() {
                        return Err(not_found(name, None));
                    }
                    header.deleted_at = Some(now_ms());
                    v.store_header(owner, &header, &bidx)?;
                }
                DeleteMode::Purge => {
                    v.conn
                        .prepare_cached("DELETE FROM versions WHERE secret_id = ?1")
                        .and_then(|mut s| s.execute([owner.id]))
                        .map_err(|e| v.db(e))?;
                    v.conn
                        .prepare_cached("DELETE FROM secrets WHERE id = ?1")
                        .and_then(|mut s| s.execute([owner.id]))
                        .map_err(|e| v.db(e))?;
                }
            }
            Ok(((), vec![]))
        })?;
        if mode == DeleteMode::Purge {
            // Freed pages are zeroed (secure_delete); truncating the WAL
            // removes the old ciphertext from it too.
            self.checkpoint_truncate();
        }
        Ok(())
    }

    /// Restores a soft-deleted secret.
    pub fn undelete(&mut self, name: &SecretName) -> Result<()> {
        self.write(Operation::Undelete, Some(name), None, |v| {
            let bidx = v.keys.blind_index(name.as_str());
            let (owner, mut header) = v.find(name, &bidx)?.ok_or_else(|| not_found(name, None))?;
            if header.deleted_at.is_none() {
                return Err(Error::Validation(format!("'{name}' is not deleted")));
            }
            header.deleted_at = None;
            v.store_header(owner, &header, &bidx)?;
            Ok(((), vec![]))
        })
    }

    /// Points `current` at an existing version (the old current becomes
    /// `previous`). History is kept.
    pub fn rollback(
        &mut self,
        name: &SecretName,
        version: u64,
        reason: Option<&str>,
    ) -> Result<()> {
        self.write(Operation::Rollback, Some(name), reason, |v| {
            let (owner, mut header, bidx) = v.live(name)?;
            v.require_live_version(owner.id, name, version)?;
            if header.current != Some(version) {
                header.previous = header.current;
                header.current = Some(version);
            }
            header.updated_at = now_ms();
            v.store_header(owner, &header, &bidx)?;
            Ok(((), vec![version]))
        })
    }

    /// Makes the `pending` version current; returns its number.
    pub fn promote(&mut self, name: &SecretName, reason: Option<&str>) -> Result<u64> {
        self.write(Operation::Promote, Some(name), reason, |v| {
            let (owner, mut header, bidx) = v.live(name)?;
            let pending = header
                .pending
                .ok_or_else(|| not_found(name, Some(Selector::Label(Label::Pending))))?;
            header.previous = header.current;
            header.current = Some(pending);
            header.pending = None;
            header.updated_at = now_ms();
            v.store_header(owner, &header, &bidx)?;
            Ok((pending, vec![pending]))
        })
    }

    /// Merges metadata changes: `Some(value)` sets a key, `None` removes it.
    /// Returns the resulting map.
    pub fn update_metadata(
        &mut self,
        name: &SecretName,
        changes: &[(String, Option<String>)],
    ) -> Result<Metadata> {
        self.write(Operation::Meta, Some(name), None, |v| {
            let (owner, mut header, bidx) = v.live(name)?;
            for (key, value) in changes {
                match value {
                    Some(value) => header.metadata.insert(key.clone(), value.clone()),
                    None => header.metadata.remove(key),
                };
            }
            validate_metadata(&header.metadata)?;
            header.updated_at = now_ms();
            v.store_header(owner, &header, &bidx)?;
            Ok((header.metadata, vec![]))
        })
    }
}

/// The audit flags of a write: `unvalidated` when its rules were skipped.
fn flags_of(unvalidated: bool) -> Vec<String> {
    if unvalidated {
        vec![crate::audit::FLAG_UNVALIDATED.to_string()]
    } else {
        Vec::new()
    }
}

/// A secret's versions that still have their values (see
/// [`Vault::versions_many`]).
#[derive(Debug)]
pub struct Versions {
    /// The current version's number.
    pub current: u64,
    /// (version, value), oldest first.
    pub values: Vec<(u64, SecretValue)>,
}
