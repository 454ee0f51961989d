//! The handle's keys and settings kept current: data keys loaded and
//! reloaded when another process rekeyed, snapshots, settings records.

use super::*;

impl Vault {
    pub(super) fn load_data_keys(&mut self) -> Result<()> {
        let rows: Vec<(u32, Vec<u8>, Option<i64>)> = self
            .conn
            .prepare_cached("SELECT id, wrapped, retired_at FROM data_keys ORDER BY id")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(|e| self.db(e))?;
        // Built aside and swapped in whole: a failed reload leaves the keys
        // held before (and the handle usable for a clean error).
        let mut data_keys = HashMap::with_capacity(rows.len());
        let mut write_key = 0;
        for (id, wrapped, retired) in rows {
            let plain = open(
                &self.keys.wrap,
                &VaultKeys::data_key_aad(&self.vault_id, id),
                &wrapped,
            )
            .map_err(|_| self.integrity(format!("data key {id} does not unwrap")))?;
            let key = Key::from_slice(&plain)
                .ok_or_else(|| self.integrity(format!("data key {id} has a bad length")))?;
            data_keys.insert(id, key);
            if retired.is_none() {
                write_key = id;
            }
        }
        if write_key == 0 {
            return Err(self.integrity("the vault has no active data key".into()));
        }
        self.data_keys = data_keys;
        self.write_key = write_key;
        Ok(())
    }

    /// Whether another process changed the vault's data keys (any `rekey`
    /// level makes a new write key) since this handle loaded them: one
    /// lookup in the small `data_keys` table.
    pub(super) fn keys_stale(&self) -> Result<bool> {
        let newest: Option<u32> = self
            .conn
            .prepare_cached(
                "SELECT id FROM data_keys WHERE retired_at IS NULL ORDER BY id DESC LIMIT 1",
            )
            .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
            .map_err(|e| self.db(e))?;
        Ok(newest != Some(self.write_key))
    }

    /// Makes sure the keys this handle holds are the vault's current ones,
    /// reloading the data keys when another process rekeyed. Every write
    /// transaction calls it under the write lock, before writing anything,
    /// so nothing is ever sealed or MACed under a key the vault no longer
    /// has. After a `rekey --master` elsewhere no data key unwraps under
    /// this handle's master key: that is an `Auth` error asking to run the
    /// command again (which unlocks afresh).
    pub(crate) fn ensure_keys_current(&mut self) -> Result<()> {
        if !self.keys_stale()? {
            return Ok(());
        }
        match self.load_data_keys() {
            Ok(()) => Ok(()),
            Err(Error::Integrity { .. }) if !self.any_data_key_unwraps()? => Err(Error::Auth {
                store: STORE.into(),
                reason: format!(
                    "the vault was rekeyed by another process (its master key changed after \
                     this process unlocked {}); run the command again",
                    self.path.display()
                ),
            }),
            Err(e) => Err(e),
        }
    }

    /// The wrapped master of key slot `id` as the file holds it now.
    pub(super) fn slot_row(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.conn
            .query_row("SELECT wrapped FROM keyslots WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.db(e))
    }

    /// Whether any data key of the file unwraps under this handle's keys.
    pub(super) fn any_data_key_unwraps(&self) -> Result<bool> {
        let rows: Vec<(u32, Vec<u8>)> = self
            .conn
            .prepare_cached("SELECT id, wrapped FROM data_keys")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(|e| self.db(e))?;
        Ok(rows.iter().any(|(id, wrapped)| {
            open(
                &self.keys.wrap,
                &VaultKeys::data_key_aad(&self.vault_id, *id),
                wrapped,
            )
            .is_ok()
        }))
    }

    /// Runs the read `f`; when it failed because a record named a data key
    /// this handle lacks, or found nothing (a `rekey --master` elsewhere
    /// changes the blind index), and another process has rekeyed since the
    /// keys were loaded, reloads them and runs `f` once more. Costs nothing
    /// on success; a miss costs one lookup.
    pub(super) fn fresh<T>(&mut self, mut f: impl FnMut(&mut Self) -> Result<T>) -> Result<T> {
        self.key_missed.set(false);
        match f(self) {
            Err(e)
                if (self.key_missed.get() || matches!(e, Error::NotFound { .. }))
                    && self.keys_stale()? =>
            {
                self.ensure_keys_current()?;
                f(self)
            }
            result => result,
        }
    }

    /// Runs `f` inside one read transaction: every read in it sees the same
    /// snapshot of the file (WAL), however other processes write meanwhile.
    /// Inside a transaction already, `f` simply runs in it.
    pub(crate) fn snapshot<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if !self.conn.is_autocommit() {
            return f(self);
        }
        self.exec_cached("BEGIN")?;
        // The first read starts the snapshot.
        let result = self.ensure_keys_current().and_then(|()| f(self));
        // Nothing was written: ending the transaction cannot lose anything.
        let end = self.exec_cached("COMMIT");
        if end.is_err() {
            let _ = self.exec_cached("ROLLBACK");
        }
        let out = result?;
        end?;
        Ok(out)
    }

    /// SQLite's `data_version`: it changes when another connection commits.
    pub(crate) fn data_version(&self) -> Result<i64> {
        self.conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| self.db(e))
    }

    /// Reads the settings again when another connection has committed since
    /// they were read (one pragma when none has): a handle kept open follows
    /// `tresor settings` run elsewhere, so it prunes to the vault's
    /// `max_versions`, refuses values over its `max_value_len`, audits reads
    /// as `audit_reads` says, and a rekey (which re-seals the settings)
    /// never writes back an older copy. Inside a transaction, the settings
    /// it sees; otherwise one snapshot with the keys made current first.
    pub(crate) fn refresh_settings(&mut self) -> Result<()> {
        let version = self.data_version()?;
        if self.settings_version == Some(version) {
            return Ok(());
        }
        self.settings = self.snapshot(|v| v.load_settings())?;
        self.settings_version = Some(version);
        Ok(())
    }

    pub(super) fn load_settings(&self) -> Result<Settings> {
        let row: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'settings'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.db(e))?;
        let Some(blob) = row else {
            return Err(self.integrity("the vault's settings are missing".into()));
        };
        if blob.len() < 4 {
            return Err(self.integrity("the vault's settings are truncated".into()));
        }
        let key_id = u32::from_be_bytes(blob[..4].try_into().expect("4 bytes"));
        let aad = RecordAad {
            kind: RecordKind::Settings,
            vault_id: self.vault_id,
            row: 0,
            version: 0,
            key_id,
        };
        let plain = open(self.dek(key_id)?, &aad.bytes(), &blob[4..])
            .map_err(|_| self.integrity("the vault's settings do not decrypt".into()))?;
        decode_owned(&plain, "the settings")
    }

    pub(super) fn store_settings(&self) -> Result<()> {
        let plain = encode(&self.settings, 32);
        let aad = RecordAad {
            kind: RecordKind::Settings,
            vault_id: self.vault_id,
            row: 0,
            version: 0,
            key_id: self.write_key,
        };
        let mut blob = self.write_key.to_be_bytes().to_vec();
        blob.extend(seal(self.write_dek(), &aad.bytes(), &plain));
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('settings', ?1)",
                [blob],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }
}
