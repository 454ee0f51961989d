//! The audit log and whole-vault checks: `audit_log`, `audit_verify`,
//! anchors, and `verify`.

use super::*;

impl Vault {
    // ---------------------------------------------------------------- audit

    /// Audit entries matching `filter`, oldest first.
    pub fn audit_log(&mut self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        self.snapshot(|v| {
            audit::read(&v.conn, &v.keys, &v.data_keys, &v.vault_id, filter)
                .map_err(|e| v.integrity_or_db(e))
        })
    }

    /// Recomputes the audit chain, checks that it ends exactly at the stored
    /// head and that it records every secret version and data key the vault
    /// holds (so a chain cut back to an older head is found once anything
    /// was written after that head), all in one snapshot; returns the number
    /// of entries.
    pub fn audit_verify(&mut self) -> Result<u64> {
        self.snapshot(|v| Ok(v.audit_check(None)?.entries))
    }

    /// [`Vault::audit_verify`], then checks that the chain holds the entry
    /// `anchor` names with its MAC: an integrity error when the vault file
    /// was rolled back to a copy older than the anchor (or rolled back and
    /// written since), or when the anchor was made under another audit key
    /// (another vault, or before a `rekey --master`). Returns the number of
    /// entries.
    pub fn audit_verify_anchor(&mut self, anchor: &AuditAnchor) -> Result<u64> {
        self.snapshot(|v| {
            let chain = v.audit_check(Some(anchor.seq))?;
            if anchor.vault_id != v.vault_id {
                return Err(v.integrity(format!(
                    "the anchor belongs to vault {}, not to {} (vault {})",
                    anchor.vault_id_hex(),
                    v.path.display(),
                    AuditAnchor {
                        vault_id: v.vault_id,
                        ..*anchor
                    }
                    .vault_id_hex()
                )));
            }
            if v.keys.audit_head_tag(anchor.seq, &anchor.mac) != anchor.tag {
                return Err(v.integrity(format!(
                    "the anchor was not made under this vault's current audit key: either {} was \
                     rolled back to a copy from before a master-key rekey, or the anchor predates \
                     a master-key rekey (which re-MACs the chain; take a new anchor after each)",
                    v.path.display()
                )));
            }
            if let Some((at, op)) = chain.resealed_at.filter(|(at, _)| *at > anchor.seq) {
                let rekey = if op == Operation::RekeyMaster {
                    "master-key"
                } else {
                    "re-encrypting"
                };
                return Err(v.integrity(format!(
                    "the anchor's entry {} cannot be checked: a {rekey} rekey (audit entry {at}, \
                     `{op}`) re-sealed the audit chain after it, recomputing every MAC; take a \
                     new anchor after each rekey that re-encrypts or changes the master key",
                    anchor.seq
                )));
            }
            match chain.mac_at {
                None => Err(v.integrity(format!(
                    "the audit chain ends at entry {}, before the anchor's entry {}: {} was rolled \
                     back to an older copy (or entries were removed)",
                    chain.entries,
                    anchor.seq,
                    v.path.display()
                ))),
                Some(mac) if mac != anchor.mac => Err(v.integrity(format!(
                    "audit entry {} is not the anchored one: {} was rolled back to an older copy \
                     and written since (its history forked)",
                    anchor.seq,
                    v.path.display()
                ))),
                Some(_) => Ok(chain.entries),
            }
        })
    }

    /// The audit chain's head as an anchor to keep outside the vault (see
    /// [`AuditAnchor`]), taken after checking the chain in the same snapshot.
    pub fn audit_anchor(&mut self) -> Result<AuditAnchor> {
        self.snapshot(|v| {
            let chain = v.audit_check(None)?;
            Ok(AuditAnchor {
                vault_id: v.vault_id,
                seq: chain.entries,
                mac: chain.last_mac,
                tag: v.keys.audit_head_tag(chain.entries, &chain.last_mac),
            })
        })
    }

    /// The audit checks of [`Vault::audit_verify`], inside the caller's
    /// snapshot or transaction; `mark`: an entry whose MAC to hand back.
    pub(crate) fn audit_check(&self, mark: Option<u64>) -> Result<audit::Chain> {
        let versions = self.stored_versions()?;
        self.check_chain(&versions, mark)
    }

    /// Every (name, version) row of `versions`, destroyed ones included.
    pub(super) fn stored_versions(&self) -> Result<Vec<(String, u64)>> {
        let secrets: Vec<(i64, u32, Vec<u8>, Vec<u8>)> = self
            .conn
            .prepare_cached("SELECT id, header_key, header, uid FROM secrets")
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect()
            })
            .map_err(|e| self.db(e))?;
        let mut names = HashMap::with_capacity(secrets.len());
        for (id, key, blob, uid) in secrets {
            let owner = Owner::from_row(id, &uid, "secret")?;
            names.insert(id, self.open_header_any(owner, key, &blob)?.name);
        }
        let rows: Vec<(i64, u64)> = self
            .conn
            .prepare_cached("SELECT secret_id, version FROM versions")
            .and_then(|mut st| st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(|e| self.db(e))?;
        rows.into_iter()
            .map(|(id, version)| match names.get(&id) {
                Some(name) => Ok((name.clone(), version)),
                None => Err(self.integrity(format!(
                    "version {version} belongs to secret {id}, which does not exist"
                ))),
            })
            .collect()
    }

    /// Checks the audit chain against its head, then that it records every
    /// one of `versions` (name, version) as written and every data key but
    /// the first as made: what an older head put back with the entries
    /// after it removed cannot account for.
    pub(super) fn check_chain(
        &self,
        versions: &[(String, u64)],
        mark: Option<u64>,
    ) -> Result<audit::Chain> {
        let chain = audit::verify(
            &self.conn,
            &self.keys,
            &self.data_keys,
            &self.vault_id,
            mark,
        )
        .map_err(|e| self.integrity_or_db(e))?;
        for (name, version) in versions {
            if !chain.written.contains(&(name.clone(), *version)) {
                return Err(self.integrity(format!(
                    "'{name}' version {version} is in the vault, but no entry of the audit chain \
                     records writing it: entries were cut off the end of the chain and an older \
                     head put back"
                )));
            }
        }
        let ids: Vec<u64> = self
            .conn
            .prepare_cached("SELECT id FROM data_keys")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| self.db(e))?;
        if let Some(id) = ids
            .into_iter()
            .find(|id| *id > 1 && !chain.data_keys.contains(id))
        {
            return Err(self.integrity(format!(
                "data key {id} is in the vault, but no `rekey` entry of the audit chain records \
                 making it: entries were cut off the end of the chain and an older head put back"
            )));
        }
        Ok(chain)
    }

    /// Decrypts every record and checks the audit chain and SQLite's own
    /// structure, all in one snapshot (read transaction): another process
    /// writing meanwhile changes nothing it sees.
    pub fn verify(&mut self) -> Result<VerifyReport> {
        self.verify_with(&tresor_core::progress::Silent)
    }

    /// [`Vault::verify`], reporting the secrets checked to `progress`.
    pub fn verify_with(
        &mut self,
        progress: &dyn tresor_core::progress::Progress,
    ) -> Result<VerifyReport> {
        self.snapshot(|v| v.verify_in(progress))
    }

    pub(super) fn verify_in(
        &mut self,
        progress: &dyn tresor_core::progress::Progress,
    ) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let check: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| self.db(e))?;
        if check != "ok" {
            return Err(self.integrity(format!("SQLite structure check: {check}")));
        }
        self.load_data_keys()?;
        report.data_keys = self.data_keys.len() as u64;
        self.load_settings()?;
        type Row = (
            i64,
            Vec<u8>,
            u32,
            Vec<u8>,
            Option<u64>,
            Option<u64>,
            Option<u64>,
            u64,
            Option<i64>,
            Vec<u8>,
        );
        let rows: Vec<Row> = self
            .conn
            .prepare("SELECT id, bidx, header_key, header, current, previous, pending, next_version, deleted_at, uid FROM secrets")
            .and_then(|mut st| {
                st.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?))
                })?
                .collect()
            })
            .map_err(|e| self.db(e))?;
        let mut stored = Vec::new();
        let stage = tresor_core::progress::Stage::start(
            progress,
            "verifying secrets",
            Some(rows.len() as u64),
            tresor_core::progress::Unit::Records,
        );
        for (id, bidx, key, blob, current, previous, pending, next_version, deleted_at, uid) in rows
        {
            stage.update(report.secrets);
            let owner = Owner::from_row(id, &uid, "secret")?;
            let header = self.open_header_any(owner, key, &blob)?;
            let name = &header.name;
            if self.keys.blind_index(name)[..] != bidx[..] {
                return Err(
                    self.integrity(format!("secret '{name}' sits under another name's index"))
                );
            }
            if (
                header.current,
                header.previous,
                header.pending,
                header.next_version,
                header.deleted_at.is_some(),
            ) != (
                current,
                previous,
                pending,
                next_version,
                deleted_at.is_some(),
            ) {
                return Err(self.integrity(format!(
                    "labels or state of '{name}' do not match its header"
                )));
            }
            let secret_name = SecretName::new(name.clone())
                .map_err(|_| self.integrity(format!("secret {id} has an invalid name")))?;
            let versions: Vec<(u64, u32, Option<Vec<u8>>)> = self
                .conn
                .prepare_cached("SELECT version, key_id, body FROM versions WHERE secret_id = ?1 ORDER BY version")
                .and_then(|mut st| st.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect())
                .map_err(|e| self.db(e))?;
            stored.extend(versions.iter().map(|(v, _, _)| (name.clone(), *v)));
            for label in [current, previous, pending].into_iter().flatten() {
                if !versions.iter().any(|(v, _, b)| *v == label && b.is_some()) {
                    return Err(self.integrity(format!(
                        "a label of '{name}' points at missing version {label}"
                    )));
                }
            }
            for (version, key_id, body) in versions {
                if version == 0 || version >= next_version {
                    return Err(
                        self.integrity(format!("'{name}' has an out-of-range version {version}"))
                    );
                }
                match body {
                    Some(body) => {
                        let plain =
                            self.open_version(owner, version, key_id, &body, &secret_name)?;
                        let b: VersionBody = decode(&plain, "a version record")?;
                        if self.keys.fingerprint(b.value) != b.fingerprint {
                            return Err(self
                                .integrity(format!("fingerprint of '{name}' version {version}")));
                        }
                        report.versions += 1;
                    }
                    None => report.destroyed_versions += 1,
                }
            }
            report.secrets += 1;
        }
        stage.update(report.secrets);
        drop(stage);
        (report.named_keys, report.named_key_versions) = crate::named_keys::verify(self)?;
        report.audit_entries = self.check_chain(&stored, None)?.entries;
        Ok(report)
    }
}
