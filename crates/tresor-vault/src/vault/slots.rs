//! Key slots: listing, adding, removing and changing them.

use super::*;

impl Vault {
    // ------------------------------------------------------------ key slots

    /// The vault's key slots.
    pub fn slots(&self) -> Result<Vec<SlotInfo>> {
        list_slots(&self.conn, &self.path)
    }

    /// Adds a key slot for `credential`; returns its id.
    pub fn add_slot(
        &mut self,
        credential: &Credential,
        password_params: &slot::PasswordParams,
        label: Option<&str>,
    ) -> Result<u32> {
        self.add_slot_with(credential, password_params, label, |_| Ok(()))
    }

    /// Adds a key slot for `credential` like [`Vault::add_slot`], calling
    /// `before_insert` with the new slot's id inside the transaction first
    /// (to store a keychain entry named after it): its error cancels the add.
    pub fn add_slot_with(
        &mut self,
        credential: &Credential,
        password_params: &slot::PasswordParams,
        label: Option<&str>,
        before_insert: impl FnOnce(u32) -> Result<()>,
    ) -> Result<u32> {
        let params = slot_params_for(credential, password_params);
        self.write(
            Operation::KeyslotAdd,
            None,
            Some(credential.kind().as_str()),
            |v| {
                let id = v.next_slot_id()?;
                before_insert(id)?;
                let id = v.insert_slot(&params, credential, label)?;
                Ok((id, vec![u64::from(id)]))
            },
        )
    }

    /// Removes slot `id`; refuses to remove the last slot that is not a
    /// recovery slot, so the vault always opens in day-to-day use.
    pub fn remove_slot(&mut self, id: u32) -> Result<()> {
        self.write(Operation::KeyslotRemove, None, None, |v| {
            let slots = list_slots(&v.conn, &v.path)?;
            let Some(target) = slots.iter().find(|s| s.id == id) else {
                return Err(Error::NotFound {
                    store: STORE.into(),
                    what: format!("key slot {id}"),
                });
            };
            let others = slots
                .iter()
                .filter(|s| s.id != id && s.kind != SlotKind::Recovery)
                .count();
            if target.kind != SlotKind::Recovery && others == 0 {
                return Err(Error::Validation(format!(
                    "key slot {id} is the vault's last password or key-file slot (or keychain or \
                     pkcs11 slot); add another slot before removing it"
                )));
            }
            v.conn
                .prepare_cached("DELETE FROM keyslots WHERE id = ?1")
                .and_then(|mut s| s.execute([id]))
                .map_err(|e| v.db(e))?;
            Ok(((), vec![u64::from(id)]))
        })
    }

    /// Rewraps slot `id` under a new credential of the same kind (a new
    /// password), with a fresh salt.
    pub fn change_slot(
        &mut self,
        id: u32,
        credential: &Credential,
        params: &slot::PasswordParams,
    ) -> Result<()> {
        self.write(Operation::Passwd, None, None, |v| {
            let slots = list_slots(&v.conn, &v.path)?;
            let Some(target) = slots.iter().find(|s| s.id == id) else {
                return Err(Error::NotFound {
                    store: STORE.into(),
                    what: format!("key slot {id}"),
                });
            };
            if target.kind != credential.kind() {
                return Err(Error::Validation(format!(
                    "key slot {id} is a {} slot, not a {} slot",
                    target.kind.as_str(),
                    credential.kind().as_str()
                )));
            }
            let params = slot_params_for(credential, params);
            let (blob, wrapped) = v.wrap_slot(id, &params, credential)?;
            v.conn
                .prepare_cached("UPDATE keyslots SET params = ?2, wrapped = ?3 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id, &blob[..], wrapped]))
                .map_err(|e| v.db(e))?;
            Ok(((), vec![u64::from(id)]))
        })
    }

    pub(super) fn insert_slot(
        &mut self,
        params: &SlotParams,
        credential: &Credential,
        label: Option<&str>,
    ) -> Result<u32> {
        let id = self.next_slot_id()?;
        let (blob, wrapped) = self.wrap_slot(id, params, credential)?;
        self.conn
            .execute(
                "INSERT INTO keyslots(id, kind, label, params, wrapped, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, params.kind().as_str(), label, &blob[..], wrapped, now_ms()],
            )
            .map_err(|e| self.db(e))?;
        Ok(id)
    }

    pub(super) fn next_slot_id(&self) -> Result<u32> {
        self.conn
            .query_row("SELECT coalesce(max(id), 0) + 1 FROM keyslots", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.db(e))
    }

    pub(super) fn wrap_slot(
        &self,
        id: u32,
        params: &SlotParams,
        credential: &Credential,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let slot_key = credential
            .slot_key(params, &self.vault_id)
            .map_err(Error::from)?;
        let aad = slot::slot_aad(&self.vault_id, id, params.kind());
        let wrapped = slot::wrap_master(&slot_key, &self.master, &aad);
        Ok((encode(params, 64).to_vec(), wrapped))
    }
}

// ------------------------------------------------------------------ helpers

pub(super) fn slot_params_for(
    credential: &Credential,
    password: &slot::PasswordParams,
) -> SlotParams {
    credential.slot_params(password)
}

pub(super) fn list_slots(conn: &Connection, path: &Path) -> Result<Vec<SlotInfo>> {
    let rows: Vec<SlotRow> = conn
        .prepare_cached("SELECT id, kind, label, params, created_at FROM keyslots ORDER BY id")
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect()
        })
        .map_err(|e| db_error(e, path))?;
    rows.into_iter()
        .map(|(id, kind, label, params, created_at)| {
            let kind = SlotKind::parse(&kind).ok_or_else(|| Error::Integrity {
                store: STORE.into(),
                detail: format!("key slot {id} has an unknown kind"),
            })?;
            let params: SlotParams = decode_owned(&params, "key slot parameters")?;
            let argon2 = match &params {
                SlotParams::Password(p) => Some((p.m_kib, p.t, p.p)),
                _ => None,
            };
            let backend = match &params {
                SlotParams::Keychain { backend } => Some(*backend),
                _ => None,
            };
            let pkcs11 = match params {
                SlotParams::Pkcs11(p) => Some(Pkcs11Location {
                    module: p.module,
                    token: p.token_label,
                    serial: p.token_serial,
                    key_label: p.key_label,
                    mechanism: p.mechanism.as_str(),
                }),
                _ => None,
            };
            Ok(SlotInfo {
                id,
                kind,
                label,
                created_at,
                argon2,
                backend,
                pkcs11,
            })
        })
        .collect()
}
