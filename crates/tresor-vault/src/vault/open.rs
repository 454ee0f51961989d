//! Opening a vault file and unlocking it: [`LockedVault`] finds the slot a
//! credential opens, unwraps the master key and loads the data keys.

use super::*;

impl LockedVault {
    /// Opens the vault at `path` without unlocking it.
    pub fn open(path: &Path, options: &OpenOptions) -> Result<Self> {
        check_vault_path(path)?;
        let conn =
            schema::connect(path, false, &options.connect()).map_err(|e| db_error(e, path))?;
        let (vault_id, format) = read_meta(&conn, path)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            vault_id,
            format,
            options: options.clone(),
        })
    }

    /// The kinds of the vault's slots, in slot order.
    pub fn slot_kinds(&self) -> Result<Vec<SlotKind>> {
        Ok(list_slots(&self.conn, &self.path)?
            .into_iter()
            .map(|s| s.kind)
            .collect())
    }

    /// The vault file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The vault's id (it names the vault's keychain entries).
    pub fn id(&self) -> [u8; 16] {
        self.vault_id
    }

    /// The vault's keychain slots: id and backend, in slot order.
    pub fn keychain_slots(&self) -> Result<Vec<(u32, KeychainBackend)>> {
        Ok(list_slots(&self.conn, &self.path)?
            .into_iter()
            .filter_map(|s| s.backend.map(|b| (s.id, b)))
            .collect())
    }

    /// The vault's PKCS#11 slots: id and stored parameters, in slot order.
    pub fn pkcs11_slots(&self) -> Result<Vec<(u32, Pkcs11Params)>> {
        let rows: Vec<(u32, Vec<u8>)> = self
            .conn
            .prepare("SELECT id, params FROM keyslots WHERE kind = ?1 ORDER BY id")
            .and_then(|mut s| {
                s.query_map([SlotKind::Pkcs11.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(|e| db_error(e, &self.path))?;
        rows.into_iter()
            .map(
                |(id, params)| match decode_owned(&params, "key slot parameters")? {
                    SlotParams::Pkcs11(p) => Ok((id, p)),
                    _ => Err(Error::Integrity {
                        store: STORE.into(),
                        detail: format!("key slot {id}: pkcs11 slot without pkcs11 parameters"),
                    }),
                },
            )
            .collect()
    }

    /// Unlocks with the first of `credentials` that opens a slot; the error
    /// of the last one when none does (an error when `credentials` is empty).
    pub fn unlock_any(self, credentials: &[Credential]) -> Result<Vault> {
        let Some((last, rest)) = credentials.split_last() else {
            return Err(Error::Auth {
                store: STORE.into(),
                reason: "no credential to unlock with".into(),
            });
        };
        for credential in rest {
            if let Some(found) = self.find_master(credential)? {
                return self.into_vault(found);
            }
        }
        self.unlock(last)
    }

    /// Unlocks with `credential`, trying every slot of its kind. A failure
    /// changes nothing in the vault file; it is recorded in the failure
    /// sidecar (see [`LockedVault::unlock_as`]).
    pub fn unlock(self, credential: &Credential) -> Result<Vault> {
        let source = credential.kind().as_str().to_string();
        self.unlock_as(credential, &source)
    }

    /// Unlocks like [`LockedVault::unlock`]; a failure is appended to the
    /// sidecar `<vault>.failures` with `source` (where the credential came
    /// from, e.g. `TRESOR_PASSWORD` or `key file PATH`: never the
    /// credential), to be folded into the audit log at the next unlock.
    pub fn unlock_as(self, credential: &Credential, source: &str) -> Result<Vault> {
        let kind = credential.kind();
        let found = self
            .find_master(credential)
            .inspect_err(|e| self.record_failure(e, kind.as_str(), source))?;
        let Some(found) = found else {
            let what = match kind {
                SlotKind::Password => "wrong password",
                SlotKind::KeyFile => "wrong key (key file or TRESOR_KEY)",
                SlotKind::Recovery => "wrong recovery key",
                SlotKind::Keychain => "the keychain entry does not match",
                SlotKind::Pkcs11 => "the PKCS#11 token's key does not match",
            };
            let e = Error::Auth {
                store: STORE.into(),
                reason: format!("{what}: no key slot opened"),
            };
            self.record_failure(&e, kind.as_str(), source);
            return Err(e);
        };
        self.into_vault(found)
    }

    /// Unlocks with a master key kept by an unlock session. The key must
    /// unwrap the vault's data keys; otherwise (the vault was rekeyed, or the
    /// session belongs to another vault) the error is `Auth` and the failure
    /// is recorded like a wrong password.
    pub fn unlock_with_master(self, master: MasterKey, source: &str) -> Result<Vault> {
        if !self.opens_data_keys(&master)? {
            let e = Error::Auth {
                store: STORE.into(),
                reason: "the unlock session's key does not open this vault (was it rekeyed?)"
                    .into(),
            };
            self.record_failure(&e, "session", source);
            return Err(e);
        }
        self.open_with(master, None)
    }

    /// Whether any of the file's data keys unwraps under `master`.
    pub(super) fn opens_data_keys(&self, master: &MasterKey) -> Result<bool> {
        let keys = VaultKeys::derive(master, &self.vault_id);
        let rows: Vec<(u32, Vec<u8>)> = self
            .conn
            .prepare_cached("SELECT id, wrapped FROM data_keys ORDER BY id")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(|e| db_error(e, &self.path))?;
        Ok(rows.iter().any(|(id, wrapped)| {
            open(
                &keys.wrap,
                &VaultKeys::data_key_aad(&self.vault_id, *id),
                wrapped,
            )
            .is_ok()
        }))
    }

    pub(super) fn into_vault(
        self,
        (master, slot_id, wrapped): (MasterKey, u32, Vec<u8>),
    ) -> Result<Vault> {
        self.open_with(master, Some((slot_id, wrapped)))
    }

    /// The vault under `master` (opened through `slot`, if by a slot: its
    /// id and the wrapped master read from it), its failed unlocks folded
    /// into the chain.
    pub(super) fn open_with(
        self,
        master: MasterKey,
        slot: Option<(u32, Vec<u8>)>,
    ) -> Result<Vault> {
        let slot_id = slot.as_ref().map(|(id, _)| *id);
        let mut vault = Vault::from_master(
            self.conn,
            self.path,
            self.vault_id,
            master,
            self.options,
            self.format,
            slot,
        )?;
        vault.unlocked_slot = slot_id;
        vault.fold_failures();
        Ok(vault)
    }

    /// Records an unlock failure found before any slot was tried — a
    /// hardware token refusing its PIN, say — in the failures sidecar, as
    /// [`LockedVault::unlock_as`] does for a credential no slot accepts. Only
    /// [`Error::Auth`] errors are recorded; others are not unlock failures.
    /// Never fails: the sidecar is best effort.
    pub fn record_unlock_failure(&self, error: &Error, kind: SlotKind, source: &str) {
        self.record_failure(error, kind.as_str(), source);
    }

    /// Appends an authentication failure to the sidecar (best effort: the
    /// caller's error is the answer either way).
    pub(super) fn record_failure(&self, error: &Error, kind: &str, source: &str) {
        if !matches!(error, Error::Auth { .. }) {
            return;
        }
        let (uid, pid) = failures::ids();
        let _ = failures::record(
            &self.path,
            &failures::Failure {
                at: now_ms(),
                kind: kind.into(),
                source: source.into(),
                user: memory::os_user(),
                uid,
                pid,
            },
        );
    }

    /// The master key and slot id `credential` opens, if any; an error when
    /// the vault has no slot of its kind.
    pub(super) fn find_master(
        &self,
        credential: &Credential,
    ) -> Result<Option<(MasterKey, u32, Vec<u8>)>> {
        let kind = credential.kind();
        let mut stmt = self
            .conn
            .prepare("SELECT id, params, wrapped FROM keyslots WHERE kind = ?1 ORDER BY id")
            .map_err(|e| db_error(e, &self.path))?;
        let rows: Vec<(u32, Vec<u8>, Vec<u8>)> = stmt
            .query_map([kind.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(Iterator::collect)
            .map_err(|e| db_error(e, &self.path))?;
        drop(stmt);
        if rows.is_empty() {
            return Err(Error::Auth {
                store: STORE.into(),
                reason: format!("this vault has no {} slot to unlock with", kind.as_str()),
            });
        }
        for (id, params, wrapped) in rows {
            let params: SlotParams = decode_owned(&params, "key slot parameters")?;
            let slot_key = credential
                .slot_key(&params, &self.vault_id)
                .map_err(|e| Error::Validation(format!("key slot {id}: {e}")))?;
            let aad = slot::slot_aad(&self.vault_id, id, kind);
            if let Ok(mk) = slot::unwrap_master(&slot_key, &wrapped, &aad) {
                return Ok(Some((mk, id, wrapped)));
            }
        }
        Ok(None)
    }
}
