//! Rotation of the vault's own keys: data keys and the master key.
//!
//! Every rotation is one `BEGIN IMMEDIATE` transaction: a crash at any
//! instant leaves the vault under either the old keys or the new ones.

use rusqlite::params;
use serde::Serialize;

use tresor_core::progress::{Progress, Silent, Stage, Unit};
use tresor_core::{Error, Operation, Result};
use tresor_crypto::slot::{self, Credential, RecoveryKey, SlotKind, SlotParams};
use tresor_crypto::{Key, RecordAad, RecordKind, VaultKeys, open, seal};

use super::{Owner, STORE, Vault, list_slots, now_ms};
use crate::audit::HEAD_SEQ;
use crate::payload::{Header, VersionBody, decode, decode_owned, encode};

/// What a rotation did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RekeyReport {
    /// The data key new writes use now.
    pub data_key: u32,
    /// Data keys destroyed (their records were rewritten first).
    pub retired_data_keys: Vec<u32>,
    /// Records rewritten under the new data key.
    pub records: u64,
    /// Whether the master key was replaced.
    pub master: bool,
    /// Key slots rewrapped under the new master key.
    pub slots_rewrapped: Vec<u32>,
    /// Key slots removed because no credential for them was given.
    pub slots_dropped: Vec<u32>,
}

/// A master-key rotation's result: the report, and the new recovery key when
/// the old recovery slot was replaced.
pub struct MasterRekey {
    /// What was done.
    pub report: RekeyReport,
    /// The new recovery key, to show the user once.
    pub recovery: Option<RecoveryKey>,
}

impl Vault {
    /// Adds a fresh data key for new writes. Existing records stay under
    /// their keys, which remain readable; the previous keys are marked
    /// retired (never used for writing again).
    pub fn rekey(&mut self) -> Result<RekeyReport> {
        self.write(Operation::Rekey, None, None, |v| {
            let id = v.add_data_key()?;
            Ok((
                RekeyReport {
                    data_key: id,
                    ..RekeyReport::default()
                },
                vec![u64::from(id)],
            ))
        })
    }

    /// Adds a fresh data key, rewrites every record under it, and destroys
    /// every older data key — in one transaction.
    pub fn rekey_reencrypt(&mut self) -> Result<RekeyReport> {
        self.rekey_reencrypt_with(&Silent)
    }

    /// [`Vault::rekey_reencrypt`], reporting the records rewritten to
    /// `progress`.
    pub fn rekey_reencrypt_with(&mut self, progress: &dyn Progress) -> Result<RekeyReport> {
        let result = self.transaction(|v| {
            // Under the write lock, with the keys made current: the chain
            // re-sealed below is the one checked here.
            v.audit_check(None)?;
            let id = v.add_data_key()?;
            let mut report = v.reseal_all(None, progress)?;
            report.data_key = id;
            report.retired_data_keys = v.destroy_old_data_keys(id)?;
            // The new key first, then every key it retired (destroyed here).
            let mut ids = vec![u64::from(id)];
            ids.extend(report.retired_data_keys.iter().map(|k| u64::from(*k)));
            v.append_ok(Operation::RekeyReencrypt, ids)?;
            Ok(report)
        });
        self.reload_after_rotation(result, None)
    }

    /// Replaces the master key: a new master key and data key, every record
    /// rewritten, the blind index and fingerprints recomputed, the audit
    /// chain re-MACed under the new audit key, and every key slot rewrapped.
    ///
    /// A slot can only be rewrapped with its own credential: `credentials`
    /// are tried on every slot. Slots none of them opens make this fail with
    /// their ids listed, unless `drop_unavailable` removes them. A recovery
    /// slot that is dropped is replaced by a new recovery key when
    /// `new_recovery` is set.
    pub fn rekey_master(
        &mut self,
        credentials: &[&Credential],
        drop_unavailable: bool,
        new_recovery: bool,
    ) -> Result<MasterRekey> {
        self.rekey_master_with(credentials, drop_unavailable, new_recovery, &Silent)
    }

    /// [`Vault::rekey_master`], reporting the records rewritten to
    /// `progress`.
    pub fn rekey_master_with(
        &mut self,
        credentials: &[&Credential],
        drop_unavailable: bool,
        new_recovery: bool,
        progress: &dyn Progress,
    ) -> Result<MasterRekey> {
        // Fails early under a stale master key (another rekey --master).
        self.audit_verify()?;
        // Work out, before writing anything, which slot each credential opens.
        let slots = list_slots(&self.conn, &self.path)?;
        let rows: Vec<(u32, Vec<u8>, Vec<u8>)> = self
            .conn
            .prepare("SELECT id, params, wrapped FROM keyslots ORDER BY id")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(|e| self.db(e))?;
        let mut opened: Vec<(u32, SlotParams, usize)> = Vec::new();
        let mut unavailable = Vec::new();
        // The slots as matched; the rotation re-reads them under its lock.
        let seen: Vec<(u32, Vec<u8>)> = rows.iter().map(|(id, _, w)| (*id, w.clone())).collect();
        for (id, params, wrapped) in rows {
            let params: SlotParams = decode_owned(&params, "key slot parameters")?;
            let aad = slot::slot_aad(&self.vault_id, id, params.kind());
            let found = credentials.iter().position(|c| {
                c.kind() == params.kind()
                    && c.slot_key(&params, &self.vault_id)
                        .ok()
                        .and_then(|k| slot::unwrap_master(&k, &wrapped, &aad).ok())
                        .is_some()
            });
            match found {
                Some(i) => opened.push((id, params, i)),
                None => unavailable.push(id),
            }
        }
        if !unavailable.is_empty() && !drop_unavailable {
            let list: Vec<String> = slots
                .iter()
                .filter(|s| unavailable.contains(&s.id))
                .map(|s| format!("{} ({})", s.id, s.kind.as_str()))
                .collect();
            return Err(Error::SlotsUnavailable { slots: list });
        }
        if opened
            .iter()
            .all(|(_, p, _)| p.kind() == SlotKind::Recovery)
        {
            return Err(Error::Validation(
                "after the rotation no password or key-file slot would remain; give its credential"
                    .into(),
            ));
        }
        let dropped_recovery = slots
            .iter()
            .any(|s| s.kind == SlotKind::Recovery && unavailable.contains(&s.id));
        let recovery = (new_recovery && dropped_recovery).then(RecoveryKey::generate);

        let old_master = Key::from_slice(self.master.expose_secret()).expect("32 bytes");
        let new_master = Key::random();
        let new_keys = VaultKeys::derive(&new_master, &self.vault_id);
        let result = self.transaction(|v| {
            // Another process may have changed the slots since they were
            // matched above (a rotation of its own, a new slot).
            let now: Vec<(u32, Vec<u8>)> = v
                .conn
                .prepare("SELECT id, wrapped FROM keyslots ORDER BY id")
                .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
                .map_err(|e| v.db(e))?;
            if now != seen {
                return Err(Error::Auth {
                    store: STORE.into(),
                    reason: "the key slots changed while the master key rotation was prepared \
                             (another process rekeyed or changed slots); run the command again"
                        .into(),
                });
            }
            // Verified under the old keys, under the write lock: the chain
            // re-MACed below is the one checked here.
            v.audit_check(None)?;
            let id = v.add_data_key()?;
            // Rewrap every data key (only the new one survives) under the new wrap key.
            let mut report = v.reseal_all(Some(&new_keys), progress)?;
            report.data_key = id;
            report.retired_data_keys = v.destroy_old_data_keys(id)?;
            let new_dek = v.dek(id)?;
            let wrapped = seal(
                &new_keys.wrap,
                &VaultKeys::data_key_aad(&v.vault_id, id),
                new_dek.expose_secret(),
            );
            v.conn
                .execute(
                    "UPDATE data_keys SET wrapped = ?2 WHERE id = ?1",
                    params![id, wrapped],
                )
                .map_err(|e| v.db(e))?;
            for (slot_id, params, i) in &opened {
                let params = match params {
                    SlotParams::Password(p) => SlotParams::Password(p.resalted()),
                    other => other.clone(),
                };
                let slot_key = credentials[*i]
                    .slot_key(&params, &v.vault_id)
                    .map_err(Error::from)?;
                let aad = slot::slot_aad(&v.vault_id, *slot_id, params.kind());
                let wrapped = slot::wrap_master(&slot_key, &new_master, &aad);
                v.conn
                    .execute(
                        "UPDATE keyslots SET params = ?2, wrapped = ?3 WHERE id = ?1",
                        params![slot_id, &encode(&params, 64)[..], wrapped],
                    )
                    .map_err(|e| v.db(e))?;
                report.slots_rewrapped.push(*slot_id);
            }
            for slot_id in &unavailable {
                v.conn
                    .execute("DELETE FROM keyslots WHERE id = ?1", [slot_id])
                    .map_err(|e| v.db(e))?;
                report.slots_dropped.push(*slot_id);
            }
            // From here on, everything is under the new master key.
            v.master = Key::from_slice(new_master.expose_secret()).expect("32 bytes");
            v.keys = VaultKeys::derive(&v.master, &v.vault_id);
            if let Some(key) = &recovery {
                v.insert_slot(&SlotParams::Recovery, &key.credential(), Some("recovery"))?;
            }
            report.master = true;
            let mut ids = vec![u64::from(id)];
            ids.extend(report.retired_data_keys.iter().map(|k| u64::from(*k)));
            v.append_ok(Operation::RekeyMaster, ids)?;
            Ok(report)
        });
        let report = self.reload_after_rotation(result, Some(old_master))?;
        Ok(MasterRekey { report, recovery })
    }

    /// Inserts a new data key, wrapped under the current wrap key, retires
    /// the others, and makes it the write key. Returns its id.
    fn add_data_key(&mut self) -> Result<u32> {
        let id: u32 = self
            .conn
            .query_row("SELECT coalesce(max(id), 0) + 1 FROM data_keys", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.db(e))?;
        let key = Key::random();
        let now = now_ms();
        let wrapped = seal(
            &self.keys.wrap,
            &VaultKeys::data_key_aad(&self.vault_id, id),
            key.expose_secret(),
        );
        self.conn
            .execute(
                "UPDATE data_keys SET retired_at = ?1 WHERE retired_at IS NULL",
                [now],
            )
            .map_err(|e| self.db(e))?;
        self.conn
            .execute(
                "INSERT INTO data_keys(id, wrapped, created_at) VALUES (?1, ?2, ?3)",
                params![id, wrapped, now],
            )
            .map_err(|e| self.db(e))?;
        self.data_keys.insert(id, key);
        self.write_key = id;
        Ok(id)
    }

    /// Deletes every data key but `keep`; returns their ids.
    fn destroy_old_data_keys(&mut self, keep: u32) -> Result<Vec<u32>> {
        let old: Vec<u32> = self
            .data_keys
            .keys()
            .copied()
            .filter(|k| *k != keep)
            .collect();
        self.conn
            .execute("DELETE FROM data_keys WHERE id <> ?1", [keep])
            .map_err(|e| self.db(e))?;
        let mut old = old;
        old.sort_unstable();
        Ok(old)
    }

    /// Rewrites every sealed record under the write key. With `new_keys`,
    /// also recomputes blind indexes and fingerprints and re-MACs the audit
    /// chain under them.
    fn reseal_all(
        &mut self,
        new_keys: Option<&VaultKeys>,
        progress: &dyn Progress,
    ) -> Result<RekeyReport> {
        let mut report = RekeyReport::default();
        // Every record counted up front (headers, live versions, audit
        // entries), so the progress has a total.
        let total: u64 = self
            .conn
            .query_row(
                "SELECT (SELECT count(*) FROM secrets) \
                 + (SELECT count(*) FROM versions WHERE body IS NOT NULL) \
                 + (SELECT count(*) FROM audit WHERE seq < ?1)",
                [HEAD_SEQ],
                |r| r.get(0),
            )
            .map_err(|e| self.db(e))?;
        let stage = Stage::start(
            progress,
            "re-encrypting records",
            Some(total),
            Unit::Records,
        );
        let wk = self.write_key;
        let vid = self.vault_id;
        let aad = |kind, row: u64, version| RecordAad {
            kind,
            vault_id: vid,
            row,
            version,
            key_id: wk,
        };

        // Secrets: headers, then their versions.
        type SecretRow = (i64, u32, Vec<u8>, Vec<u8>);
        let secrets: Vec<SecretRow> = self
            .conn
            .prepare("SELECT id, header_key, header, uid FROM secrets ORDER BY id")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect()
            })
            .map_err(|e| self.db(e))?;
        for (id, key_id, blob, uid) in secrets {
            let owner = Owner::from_row(id, &uid, "secret")?;
            let header: Header = self.open_header_any(owner, key_id, &blob)?;
            let plain = encode(&header, 128 + header.name.len());
            let sealed = seal(
                self.write_dek(),
                &owner.aad(RecordKind::SecretHeader, &vid, 0, wk),
                &plain,
            );
            let bidx = new_keys.unwrap_or(&self.keys).blind_index(&header.name);
            self.conn
                .execute(
                    "UPDATE secrets SET header = ?2, header_key = ?3, bidx = ?4 WHERE id = ?1",
                    params![id, sealed, wk, &bidx[..]],
                )
                .map_err(|e| self.db(e))?;
            report.records += 1;
            stage.update(report.records);
            type VersionRow = (u64, u32, Vec<u8>);
            let versions: Vec<VersionRow> = self
                .conn
                .prepare_cached(
                    "SELECT version, key_id, body FROM versions WHERE secret_id = ?1 AND body IS NOT NULL",
                )
                .and_then(|mut s| s.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect())
                .map_err(|e| self.db(e))?;
            let name = tresor_core::SecretName::new(header.name.clone()).map_err(|_| {
                Error::Integrity {
                    store: STORE.into(),
                    detail: format!("secret {id} has an invalid name"),
                }
            })?;
            for (version, key_id, blob) in versions {
                let plain = self.open_version(owner, version, key_id, &blob, &name)?;
                let mut body: VersionBody = decode(&plain, "a version record")?;
                if let Some(keys) = new_keys {
                    body.fingerprint = keys.fingerprint(body.value);
                }
                let plain = encode(
                    &body,
                    body.value.len() + body.actor.len() + body.reason.map_or(0, str::len),
                );
                let sealed = seal(
                    self.write_dek(),
                    &owner.aad(RecordKind::SecretVersion, &vid, version, wk),
                    &plain,
                );
                self.conn
                    .prepare_cached("UPDATE versions SET body = ?3, key_id = ?4 WHERE secret_id = ?1 AND version = ?2")
                    .and_then(|mut s| s.execute(params![id, version, sealed, wk]))
                    .map_err(|e| self.db(e))?;
                report.records += 1;
                stage.update(report.records);
            }
            // Destroyed versions keep their row: point them at the new key
            // so the old one can go.
            self.conn
                .execute(
                    "UPDATE versions SET key_id = ?2 WHERE secret_id = ?1 AND body IS NULL",
                    params![id, wk],
                )
                .map_err(|e| self.db(e))?;
        }

        // The audit chain: re-seal each entry and recompute the MACs.
        type AuditRow = (u64, i64, u32, Vec<u8>);
        let entries: Vec<AuditRow> = self
            .conn
            .prepare("SELECT seq, at, key_id, body FROM audit WHERE seq < ?1 ORDER BY seq")
            .and_then(|mut s| {
                s.query_map([HEAD_SEQ], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect()
            })
            .map_err(|e| self.db(e))?;
        let audit_keys = new_keys.unwrap_or(&self.keys);
        let mut prev = [0u8; 32];
        let mut last = 0u64;
        for (seq, at, key_id, blob) in entries {
            let old = RecordAad {
                kind: RecordKind::AuditEntry,
                vault_id: vid,
                row: seq,
                version: 0,
                key_id,
            };
            let plain = open(self.dek(key_id)?, &old.bytes(), &blob)
                .map_err(|_| self.integrity(format!("audit entry {seq} does not decrypt")))?;
            let sealed = seal(
                self.write_dek(),
                &aad(RecordKind::AuditEntry, seq, 0).bytes(),
                &plain,
            );
            let mac = audit_keys.audit_mac(&prev, seq, at, &sealed);
            self.conn
                .prepare_cached("UPDATE audit SET body = ?2, key_id = ?3, mac = ?4 WHERE seq = ?1")
                .and_then(|mut s| s.execute(params![seq, sealed, wk, &mac[..]]))
                .map_err(|e| self.db(e))?;
            prev = mac;
            last = seq;
            report.records += 1;
            stage.update(report.records);
        }
        if last > 0 {
            crate::audit::write_head(&self.conn, audit_keys, last, &prev)
                .map_err(|e| self.db(e))?;
        }

        // Named encryption keys.
        report.records += crate::named_keys::reseal(self, new_keys)?;

        // Settings.
        self.store_settings()?;
        report.records += 1;
        Ok(report)
    }

    /// After a rotation, reloads the data keys from the file. On failure the
    /// transaction rolled back on disk, so the in-memory master key goes
    /// back to `old_master` too.
    fn reload_after_rotation<T>(
        &mut self,
        result: Result<T>,
        old_master: Option<Key>,
    ) -> Result<T> {
        if result.is_err()
            && let Some(master) = old_master
        {
            self.master = master;
            self.keys = VaultKeys::derive(&self.master, &self.vault_id);
        }
        // A rotation refused because another process rekeyed first leaves
        // keys that do not load: its own error is the answer.
        let reloaded = self.load_data_keys();
        let out = result?;
        reloaded?;
        Ok(out)
    }
}
