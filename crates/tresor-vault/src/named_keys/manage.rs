//! Managing named keys: create, list, info, rotate, config, delete.

use super::*;

impl Keys<'_> {
    /// Makes a named key with a fresh random version 1.
    ///
    /// A name in use is refused; the name of a deleted key can be used
    /// again, and its versions continue after the deleted ones, so an old
    /// envelope never opens under the new key (it reports its version as
    /// destroyed).
    pub fn create(&mut self, name: &SecretName, key_type: KeyType) -> Result<KeyInfo> {
        self.before_change()?;
        let reason = format!("type {key_type}");
        let info = self
            .vault
            .write(Operation::KeyCreate, Some(name), Some(&reason), |v| {
                let bidx = blind_index(v.vault_keys(), name.as_str());
                let now = now_ms();
                let (owner, header) = match find(v, name, &bidx)? {
                    Some((_, h)) if h.deleted_at.is_none() => {
                        return Err(Error::Validation(format!(
                            "named key '{name}' already exists (version {}); rotating it \
                             adds a version",
                            h.latest
                        )));
                    }
                    // The name of a deleted key, used anew: same row, new
                    // record id, so the old incarnation's records never open.
                    Some((old_owner, old)) => {
                        let first = next_version(name, old.latest)?;
                        (
                            Owner::new(old_owner.id),
                            new_header(name, key_type, now, first),
                        )
                    }
                    None => (Owner::new(next_id(v)?), new_header(name, key_type, now, 1)),
                };
                store_header(v, owner, &header, &bidx)?;
                store_version(v, owner, header.latest, &Key::random(), now)?;
                let info = info_of(v, owner, name, &header)?;
                Ok((info, vec![u64::from(header.latest)]))
            })?;
        self.forget(name);
        Ok(info)
    }

    /// Every named key (not deleted ones), sorted by name.
    pub fn list(&mut self) -> Result<Vec<KeyInfo>> {
        self.prepare()?;
        type Row = (i64, u32, Vec<u8>, u32, u32, Option<i64>, Vec<u8>);
        let v = &*self.vault;
        let rows: Vec<Row> = v
            .conn()
            .prepare_cached(
                "SELECT id, header_key, header, latest, min_decrypt, deleted_at, uid
                 FROM named_keys WHERE deleted_at IS NULL",
            )
            .and_then(|mut s| s.query_map([], |r| r.try_into())?.collect())
            .map_err(|e| v.db(e))?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, key_id, blob, latest, min_decrypt, deleted_at, uid) in rows {
            let owner = Owner::from_row(id, &uid, "named key")?;
            let header = open_header(v, owner, key_id, &blob)?;
            check_columns(v, &header, latest, min_decrypt, deleted_at)?;
            let name = SecretName::new(header.name.clone())
                .map_err(|_| v.integrity(format!("named key {id} has an invalid name")))?;
            out.push(info_of(v, owner, &name, &header)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        self.record(Operation::KeyList, None, &[], "ok")?;
        Ok(out)
    }

    /// One named key's type and versions.
    pub fn info(&mut self, name: &SecretName) -> Result<KeyInfo> {
        self.prepare()?;
        let (owner, header, _) = live(self.vault, name)?;
        info_of(self.vault, owner, name, &header)
    }

    /// Adds a fresh random version; new envelopes use it. Returns its number.
    pub fn rotate(&mut self, name: &SecretName) -> Result<u32> {
        self.before_change()?;
        let version = self
            .vault
            .write(Operation::KeyRotate, Some(name), None, |v| {
                let (owner, mut header, bidx) = live(v, name)?;
                header.latest = next_version(name, header.latest)?;
                store_header(v, owner, &header, &bidx)?;
                store_version(v, owner, header.latest, &Key::random(), now_ms())?;
                Ok((header.latest, vec![u64::from(header.latest)]))
            })?;
        self.forget(name);
        Ok(version)
    }

    /// Sets the minimum decryption version: envelopes of older versions are
    /// refused (their material is kept; lowering the minimum again lets them
    /// open). It must lie between 1 and the newest version.
    pub fn config(&mut self, name: &SecretName, min_decryption_version: u32) -> Result<KeyInfo> {
        self.before_change()?;
        let reason = format!("min_decryption_version {min_decryption_version}");
        let info = self
            .vault
            .write(Operation::KeyConfig, Some(name), Some(&reason), |v| {
                let (owner, mut header, bidx) = live(v, name)?;
                if min_decryption_version == 0 || min_decryption_version > header.latest {
                    return Err(Error::Validation(format!(
                        "the minimum decryption version of '{name}' must lie between 1 and its \
                     newest version {}, not {min_decryption_version}",
                        header.latest
                    )));
                }
                header.min_decrypt = min_decryption_version;
                store_header(v, owner, &header, &bidx)?;
                Ok((
                    info_of(v, owner, name, &header)?,
                    vec![u64::from(min_decryption_version)],
                ))
            })?;
        self.forget(name);
        Ok(info)
    }

    /// Deletes a named key and destroys the material of every version: no
    /// envelope made with it can be opened again, by anyone.
    pub fn delete(&mut self, name: &SecretName) -> Result<()> {
        self.before_change()?;
        self.vault
            .write(Operation::KeyDelete, Some(name), None, |v| {
                let (owner, mut header, bidx) = live(v, name)?;
                v.conn()
                    .prepare_cached("DELETE FROM named_key_versions WHERE key_id_ref = ?1")
                    .and_then(|mut s| s.execute([owner.id]))
                    .map_err(|e| v.db(e))?;
                header.deleted_at = Some(now_ms());
                store_header(v, owner, &header, &bidx)?;
                Ok(((), vec![]))
            })?;
        self.forget(name);
        // Freed pages are zeroed (secure_delete); truncating the WAL removes
        // the old sealed material from it too.
        self.vault.checkpoint_truncate();
        Ok(())
    }
}
