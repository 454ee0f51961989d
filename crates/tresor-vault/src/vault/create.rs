//! Creating a vault: the file, its keys, its first slots and audit entry.

use super::*;

impl Vault {
    /// Makes a new vault at `path`, with one slot for `credential` and, if
    /// asked, a recovery slot. The folder is created 0700 and the file 0600.
    pub fn create(
        path: &Path,
        credential: &Credential,
        options: &CreateOptions,
    ) -> Result<Created> {
        Self::create_with(path, credential, options, |_, _| Ok(()))
    }

    /// [`Vault::create`], calling `before_commit` with the new vault's id and
    /// the first slot's id inside the creating transaction (to store a
    /// keychain entry named after them): its error cancels the creation.
    pub fn create_with(
        path: &Path,
        credential: &Credential,
        options: &CreateOptions,
        before_commit: impl FnOnce(&[u8; 16], u32) -> Result<()>,
    ) -> Result<Created> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            create_private_dir(parent)?;
        }
        create_private_file(path)?;
        let result = Self::create_in(path, credential, options, before_commit);
        if result.is_err() {
            let _ = fs::remove_file(path);
        }
        result
    }

    pub(super) fn create_in(
        path: &Path,
        credential: &Credential,
        options: &CreateOptions,
        before_commit: impl FnOnce(&[u8; 16], u32) -> Result<()>,
    ) -> Result<Created> {
        let conn =
            schema::connect(path, true, &options.open.connect()).map_err(|e| db_error(e, path))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| db_error(e, path))?;
        let mut vault_id = [0u8; 16];
        tresor_crypto::random_bytes(&mut vault_id);
        let master = Key::random();
        let now = now_ms();
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| db_error(e, path))?;
        conn.execute_batch(schema::CREATE)
            .map_err(|e| db_error(e, path))?;
        let put_meta = |k: &str, v: &[u8]| {
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)",
                params![k, v],
            )
            .map(|_| ())
            .map_err(|e| db_error(e, path))
        };
        put_meta("format_version", &FORMAT_VERSION.to_be_bytes())?;
        put_meta("vault_id", &vault_id)?;
        put_meta("created_at", &now.to_be_bytes())?;
        let keys = VaultKeys::derive(&master, &vault_id);
        let dek = Key::random();
        let wrapped = seal(
            &keys.wrap,
            &VaultKeys::data_key_aad(&vault_id, 1),
            dek.expose_secret(),
        );
        conn.execute(
            "INSERT INTO data_keys(id, wrapped, created_at) VALUES (1, ?1, ?2)",
            params![wrapped, now],
        )
        .map_err(|e| db_error(e, path))?;
        let mut data_keys = HashMap::new();
        data_keys.insert(1, dek);
        let mut vault = Vault {
            conn,
            path: path.to_path_buf(),
            vault_id,
            master,
            keys,
            data_keys,
            write_key: 1,
            settings: Settings::default(),
            actor: memory::os_user(),
            unlocked_slot: Some(1),
            named_keys: Default::default(),
            bound_wal_on_drop: options.open.no_checkpoint_on_close,
            key_missed: Default::default(),
            known_head: Default::default(),
            settings_version: None,
        };
        let first = slot_params_for(credential, &options.password_params);
        let first_id = vault.insert_slot(&first, credential, None)?;
        let recovery = if options.recovery {
            let key = RecoveryKey::generate();
            vault.insert_slot(&SlotParams::Recovery, &key.credential(), Some("recovery"))?;
            Some(key)
        } else {
            None
        };
        vault.store_settings()?;
        let body = vault.audit_body(Operation::Init, None, vec![], "ok", None);
        audit::start(
            &vault.conn,
            &vault.keys,
            &vault.vault_id,
            vault.write_key,
            vault.write_dek(),
            &body,
        )
        .map_err(|e| db_error(e, path))?;
        before_commit(&vault.vault_id, first_id)?;
        vault
            .conn
            .execute_batch("COMMIT")
            .map_err(|e| db_error(e, path))?;
        Ok(Created { vault, recovery })
    }

    pub(super) fn from_master(
        conn: Connection,
        path: PathBuf,
        vault_id: [u8; 16],
        master: MasterKey,
        options: OpenOptions,
        format: u64,
        slot: Option<(u32, Vec<u8>)>,
    ) -> Result<Self> {
        let keys = VaultKeys::derive(&master, &vault_id);
        let mut vault = Vault {
            conn,
            path,
            vault_id,
            master,
            keys,
            data_keys: HashMap::new(),
            write_key: 0,
            settings: Settings::default(),
            actor: memory::os_user(),
            unlocked_slot: None,
            named_keys: Default::default(),
            bound_wal_on_drop: options.no_checkpoint_on_close,
            key_missed: Default::default(),
            known_head: Default::default(),
            settings_version: None,
        };
        // The data keys and the settings (sealed under a data key) from one
        // snapshot: a `rekey --reencrypt` committed between two reads would
        // otherwise leave settings under a key this handle never loaded.
        vault.exec_cached("BEGIN")?;
        let loaded = vault.load_data_keys().and_then(|()| {
            vault.settings = vault.load_settings()?;
            vault.settings_version = Some(vault.data_version()?);
            Ok(())
        });
        if vault.exec_cached("COMMIT").is_err() {
            let _ = vault.exec_cached("ROLLBACK");
        }
        if let Err(e) = loaded {
            // The slot was read before, the data keys now: a `rekey
            // --master` another process committed in between (while a
            // password was stretched, say) rewrapped both. Its slot row then
            // differs from what was read; an unchanged one means the file
            // is at fault.
            if matches!(e, Error::Integrity { .. })
                && let Some((id, seen)) = &slot
                && vault.slot_row(*id)?.as_ref() != Some(seen)
            {
                return Err(Error::Auth {
                    store: STORE.into(),
                    reason: format!(
                        "the vault was rekeyed by another process while this one unlocked {}; \
                         run the command again",
                        vault.path.display()
                    ),
                });
            }
            return Err(e);
        }
        if format < FORMAT_VERSION {
            vault.migrate(format)?;
        }
        Ok(vault)
    }
}
