//! The vault: opening, unlocking, and every operation on secrets.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use serde::Serialize;

use tresor_core::{
    DeleteMode, Error, Label, Metadata, Operation, PutOptions, Result, Secret, SecretInfo, SecretName,
    SecretValue, Selector, VersionInfo, memory, validate_metadata,
};
use tresor_crypto::slot::{
    self, Credential, KeychainBackend, Pkcs11Params, RecoveryKey, SlotKind, SlotParams,
};
use tresor_crypto::{
    Key, MasterKey, RECORD_UID_LEN, RecordAad, RecordKind, VaultKeys, new_record_uid, open, seal,
};

use crate::audit::{self, AuditAnchor, AuditEntry, AuditFilter};
use crate::failures;
use crate::payload::{AuditBody, Header, Settings, VersionBody, decode, decode_owned, encode};
use crate::schema::{self, ConnectOptions, FORMAT_VERSION};

mod migrate;
mod rekey;

pub use rekey::{MasterRekey, RekeyReport};

const STORE: &str = "vault";

/// A `versions` row: version, key id, sealed body, destroyed_at.
type VersionRow = (u64, u32, Option<Vec<u8>>, Option<i64>);
/// A `keyslots` row without the wrapped key: id, kind, label, params, created_at.
type SlotRow = (u32, String, Option<String>, Vec<u8>, i64);

/// The owner of a record: the row id of its secret or named key, and that
/// secret's or key's random record id (column `uid`), which is bound into
/// the associated data of each of its records. Row ids are reused after a
/// purge; record ids never are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub id: i64,
    pub uid: [u8; RECORD_UID_LEN],
}

impl Owner {
    /// A new secret's or named key's owner in row `id`, with a fresh record id.
    pub fn new(id: i64) -> Self {
        Self {
            id,
            uid: new_record_uid(),
        }
    }

    /// The owner read from a row: `uid` must hold a record id.
    pub fn from_row(id: i64, uid: &[u8], what: &str) -> Result<Self> {
        let uid = uid.try_into().map_err(|_| Error::Integrity {
            store: STORE.into(),
            detail: format!("{what} {id} has no valid record id (column uid)"),
        })?;
        Ok(Self { id, uid })
    }

    /// The associated data of this owner's record of `kind`.
    pub fn aad(
        &self,
        kind: RecordKind,
        vault_id: &[u8; 16],
        version: u64,
        key_id: u32,
    ) -> [u8; tresor_crypto::BOUND_AAD_LEN] {
        RecordAad {
            kind,
            vault_id: *vault_id,
            row: self.id as u64,
            version,
            key_id,
        }
        .bound_bytes(&self.uid)
    }
}

/// How to open a vault.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// How long to wait for another process's write lock (`TRESOR_LOCK_TIMEOUT`).
    pub lock_timeout: Duration,
    /// Skip the WAL checkpoint on close; right for one-shot processes.
    pub no_checkpoint_on_close: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(30),
            no_checkpoint_on_close: false,
        }
    }
}

impl OpenOptions {
    fn connect(&self) -> ConnectOptions {
        ConnectOptions {
            lock_timeout: self.lock_timeout,
            no_checkpoint_on_close: self.no_checkpoint_on_close,
        }
    }
}

/// A key slot as listed: never its key material.
#[derive(Clone, Debug, Serialize)]
pub struct SlotInfo {
    /// The slot id.
    pub id: u32,
    /// Its kind.
    pub kind: SlotKind,
    /// Its label, if one was given.
    pub label: Option<String>,
    /// When it was made, in ms since the epoch.
    pub created_at: i64,
    /// Argon2id costs of a password slot: memory in KiB, passes, lanes.
    pub argon2: Option<(u32, u32, u32)>,
    /// The keychain of a keychain slot.
    pub backend: Option<KeychainBackend>,
    /// Where a PKCS#11 slot's token key lives (never its wrapped bytes).
    pub pkcs11: Option<Pkcs11Location>,
}

/// Where a PKCS#11 slot's key lives, as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pkcs11Location {
    /// The module path.
    pub module: String,
    /// The token label.
    pub token: String,
    /// The token serial number when the slot was made.
    pub serial: String,
    /// The key object's label.
    pub key_label: String,
    /// The wrapping mechanism (`aes-gcm`).
    pub mechanism: &'static str,
}

/// What `verify` checked.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Secrets whose header decrypted and matched its index and columns.
    pub secrets: u64,
    /// Versions whose value decrypted and matched its fingerprint.
    pub versions: u64,
    /// Destroyed versions (nothing to decrypt).
    pub destroyed_versions: u64,
    /// Audit entries whose MAC chain checked.
    pub audit_entries: u64,
    /// Data keys that unwrapped.
    pub data_keys: u64,
    /// Named keys whose header decrypted and matched its index and columns.
    pub named_keys: u64,
    /// Named-key versions whose key material decrypted.
    pub named_key_versions: u64,
}

/// A vault file opened but not unlocked: enough to see its slots.
pub struct LockedVault {
    conn: Connection,
    path: PathBuf,
    vault_id: [u8; 16],
    /// The file's format version (a format-1 vault migrates on unlock).
    format: u64,
    options: OpenOptions,
}

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
    fn opens_data_keys(&self, master: &MasterKey) -> Result<bool> {
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

    fn into_vault(self, (master, slot_id, wrapped): (MasterKey, u32, Vec<u8>)) -> Result<Vault> {
        self.open_with(master, Some((slot_id, wrapped)))
    }

    /// The vault under `master` (opened through `slot`, if by a slot: its
    /// id and the wrapped master read from it), its failed unlocks folded
    /// into the chain.
    fn open_with(self, master: MasterKey, slot: Option<(u32, Vec<u8>)>) -> Result<Vault> {
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
    fn record_failure(&self, error: &Error, kind: &str, source: &str) {
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
    fn find_master(&self, credential: &Credential) -> Result<Option<(MasterKey, u32, Vec<u8>)>> {
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

/// An unlocked vault.
pub struct Vault {
    conn: Connection,
    path: PathBuf,
    vault_id: [u8; 16],
    master: MasterKey,
    keys: VaultKeys,
    data_keys: HashMap<u32, Key>,
    write_key: u32,
    settings: Settings,
    actor: String,
    unlocked_slot: Option<u32>,
    /// Named keys' unwrapped material and headers (named_keys.rs).
    pub(crate) named_keys: crate::named_keys::Cache,
    /// Opened for a one-shot process (`no_checkpoint_on_close`): bound the
    /// WAL on drop instead (see [`Vault::bound_wal`]).
    bound_wal_on_drop: bool,
    /// Set when a record named a data key this handle does not hold: another
    /// process may have rekeyed since (see [`Vault::fresh`]).
    key_missed: std::cell::Cell<bool>,
    /// The audit head this handle wrote last (see `audit::append_at`).
    known_head: std::cell::Cell<Option<audit::Head>>,
}

/// The WAL size above which a one-shot process truncates it on exit: 64
/// frames of 4 KiB pages. Every process that opens the vault first rebuilds
/// the WAL index by reading the whole WAL, and that rebuild forgets what was
/// already checkpointed, so an untruncated WAL only grows and every later
/// run reads (and re-checkpoints) all of it.
const WAL_BOUND_BYTES: u64 = 64 * (4096 + 24) + 32;

impl Drop for Vault {
    fn drop(&mut self) {
        crate::named_keys::release_reservations(self);
        if self.bound_wal_on_drop {
            self.bound_wal();
        }
    }
}

/// What `create` hands back besides the vault.
pub struct Created {
    /// The unlocked new vault.
    pub vault: Vault,
    /// The recovery key, to show the user once.
    pub recovery: Option<RecoveryKey>,
}

/// How to make a new vault.
pub struct CreateOptions {
    /// Open options for the new vault.
    pub open: OpenOptions,
    /// Argon2id costs for a password slot.
    pub password_params: slot::PasswordParams,
    /// Add a recovery-key slot and return the key.
    pub recovery: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            open: OpenOptions::default(),
            password_params: slot::PasswordParams::new_default(),
            recovery: true,
        }
    }
}

/// Crate-internal access for the modules beside this one (named_keys.rs).
impl Vault {
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn vault_keys(&self) -> &VaultKeys {
        &self.keys
    }

    pub(crate) fn write_key(&self) -> u32 {
        self.write_key
    }
}

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

    fn create_in(
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

    fn from_master(
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
        };
        // The data keys and the settings (sealed under a data key) from one
        // snapshot: a `rekey --reencrypt` committed between two reads would
        // otherwise leave settings under a key this handle never loaded.
        vault.exec_cached("BEGIN")?;
        let loaded = vault.load_data_keys().and_then(|()| {
            vault.settings = vault.load_settings()?;
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

    /// The vault file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key slot that unlocked this vault (slot 1 right after `create`).
    pub fn unlocked_slot(&self) -> Option<u32> {
        self.unlocked_slot
    }

    /// The vault id (not secret).
    pub fn id(&self) -> [u8; 16] {
        self.vault_id
    }

    /// The master key, for an unlock session to keep (`tresor unlock`).
    /// Whoever holds it opens the vault: never print, log or store it.
    pub fn master_key(&self) -> &MasterKey {
        &self.master
    }

    /// Folds the unlock-failure sidecar into the audit log: one
    /// `unlock_failed` entry per failure (at the failure's time), one
    /// `unlock_failures_garbled` entry when lines did not check, then the
    /// sidecar is removed. Best effort: a vault that cannot be written now
    /// keeps the sidecar for a later unlock. Returns how many entries it wrote.
    pub fn fold_failures(&mut self) -> usize {
        let Ok(Some((file, folded))) = failures::read(&self.path) else {
            return 0;
        };
        let count = folded.failures.len() + usize::from(folded.garbled > 0 || folded.overflow);
        let sidecar = failures::path_for(&self.path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let result = self.transaction(|v| {
            for f in &folded.failures {
                let body = AuditBody {
                    actor: f.user.clone(),
                    operation: Operation::UnlockFailed.as_str().into(),
                    store: STORE.into(),
                    name: None,
                    versions: vec![],
                    result: "auth".into(),
                    reason: Some(format!(
                        "{} slot; credential from {}; uid {}, pid {}",
                        f.kind, f.source, f.uid, f.pid
                    )),
                };
                audit::append_at(
                    &v.conn,
                    &v.keys,
                    &v.vault_id,
                    v.write_key,
                    v.write_dek(),
                    &body,
                    Some(f.at),
                    &v.known_head,
                )
                .map_err(|e| v.db(e))?;
            }
            if folded.garbled > 0 || folded.overflow {
                let mut what = Vec::new();
                if folded.garbled > 0 {
                    what.push(format!(
                        "{} garbled or altered line(s) in {sidecar} were not trusted",
                        folded.garbled
                    ));
                }
                if folded.overflow {
                    what.push(format!(
                        "{sidecar} reached its size bound: later failures were not listed"
                    ));
                }
                let result = if folded.garbled > 0 {
                    "integrity"
                } else {
                    "auth"
                };
                let body = v.audit_body(
                    Operation::UnlockFailuresGarbled,
                    None,
                    vec![],
                    result,
                    Some(what.join("; ")),
                );
                v.append_audit(&body)?;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                let _ = failures::remove(&self.path, file);
                count
            }
            Err(_) => 0,
        }
    }

    /// The vault's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Replaces the vault's settings.
    pub fn set_settings(&mut self, settings: Settings) -> Result<()> {
        if settings.max_versions == 0 {
            return Err(Error::Validation("max_versions must be at least 1".into()));
        }
        self.write(Operation::Settings, None, None, |v| {
            v.settings = settings;
            v.store_settings()?;
            Ok(((), vec![]))
        })
    }

    /// Sets who is recorded as the actor in versions and audit entries
    /// (default: the OS user).
    pub fn set_actor(&mut self, actor: impl Into<String>) {
        self.actor = actor.into();
    }

    // ---------------------------------------------------------------- reads

    /// Reads one version of a secret. A soft-deleted secret is not found.
    pub fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Secret> {
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

    fn get_unaudited(&mut self, name: &SecretName, selector: Selector) -> Result<Secret> {
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
            return Err(not_found(name, None));
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

    fn list_unaudited(&self, prefix: &str, deleted: bool) -> Result<Vec<SecretInfo>> {
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
        // The header and its versions from one snapshot, under current keys.
        let out = self.snapshot(|v| v.history_unaudited(name))?;
        if self.settings.audit_reads {
            self.audit_write(Operation::History, Some(name), vec![], "ok", None, true)?;
        }
        Ok(out)
    }

    fn history_unaudited(&self, name: &SecretName) -> Result<Vec<VersionInfo>> {
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
        self.check_value(name, value)?;
        validate_metadata(&options.metadata)?;
        let reason = options.reason.clone();
        self.write(Operation::Set, Some(name), reason.as_deref(), |v| {
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
        mut progress: impl FnMut(usize) + 'a,
    ) -> Result<Vec<u64>> {
        for (name, value) in items {
            self.check_value(name, value)?;
        }
        let options = PutOptions {
            reason: reason.map(str::to_string),
            ..PutOptions::default()
        };
        self.transaction(|v| {
            let mut versions = Vec::with_capacity(items.len());
            for (i, (name, value)) in items.iter().enumerate() {
                let version = v.put_in_tx(name, value, &options)?;
                let body = v.audit_body(
                    Operation::Import,
                    Some(name),
                    vec![version],
                    "ok",
                    reason.map(str::to_string),
                );
                v.append_audit(&body)?;
                versions.push(version);
                progress(i + 1);
            }
            Ok(versions)
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
        self.write(Operation::KeyslotAdd, None, Some(credential.kind().as_str()), |v| {
            let id = v.next_slot_id()?;
            before_insert(id)?;
            let id = v.insert_slot(&params, credential, label)?;
            Ok((id, vec![u64::from(id)]))
        })
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
    fn stored_versions(&self) -> Result<Vec<(String, u64)>> {
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
    fn check_chain(&self, versions: &[(String, u64)], mark: Option<u64>) -> Result<audit::Chain> {
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
        self.snapshot(|v| v.verify_in())
    }

    fn verify_in(&mut self) -> Result<VerifyReport> {
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
        for (id, bidx, key, blob, current, previous, pending, next_version, deleted_at, uid) in rows
        {
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
        (report.named_keys, report.named_key_versions) = crate::named_keys::verify(self)?;
        report.audit_entries = self.check_chain(&stored, None)?.entries;
        Ok(report)
    }

    // ------------------------------------------------------------- internals

    fn put_in_tx(
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
        self.store_header(owner, &header, &bidx)?;
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
    fn prune(&mut self, id: i64, header: &Header, max: u64) -> Result<()> {
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

    fn find(&self, name: &SecretName, bidx: &[u8; 32]) -> Result<Option<(Owner, Header)>> {
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
    fn live(&self, name: &SecretName) -> Result<(Owner, Header, [u8; 32])> {
        let bidx = self.keys.blind_index(name.as_str());
        match self.find(name, &bidx)? {
            Some((owner, header)) if header.deleted_at.is_none() => Ok((owner, header, bidx)),
            _ => Err(not_found(name, None)),
        }
    }

    fn require_live_version(&self, id: i64, name: &SecretName, version: u64) -> Result<()> {
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

    fn store_header(&self, owner: Owner, header: &Header, bidx: &[u8; 32]) -> Result<()> {
        let plain = encode(header, 128 + header.name.len());
        let aad = owner.aad(RecordKind::SecretHeader, &self.vault_id, 0, self.write_key);
        let sealed = seal(self.write_dek(), &aad, &plain);
        self.conn
            .prepare_cached(
                "INSERT INTO secrets(id, bidx, header, header_key, current, previous, pending, next_version, deleted_at, uid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(id) DO UPDATE SET header = excluded.header, header_key = excluded.header_key,
                   current = excluded.current, previous = excluded.previous, pending = excluded.pending,
                   next_version = excluded.next_version, deleted_at = excluded.deleted_at, uid = excluded.uid",
            )
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
    fn open_current(
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

    fn open_header(
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

    fn open_header_any(&self, owner: Owner, key_id: u32, blob: &[u8]) -> Result<Header> {
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

    fn open_version(
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

    fn open_value(
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

    fn load_data_keys(&mut self) -> Result<()> {
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
    fn keys_stale(&self) -> Result<bool> {
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
    fn slot_row(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.conn
            .query_row("SELECT wrapped FROM keyslots WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.db(e))
    }

    /// Whether any data key of the file unwraps under this handle's keys.
    fn any_data_key_unwraps(&self) -> Result<bool> {
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
    fn fresh<T>(&mut self, mut f: impl FnMut(&mut Self) -> Result<T>) -> Result<T> {
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

    fn load_settings(&self) -> Result<Settings> {
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

    fn store_settings(&self) -> Result<()> {
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

    fn insert_slot(
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

    fn next_slot_id(&self) -> Result<u32> {
        self.conn
            .query_row("SELECT coalesce(max(id), 0) + 1 FROM keyslots", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.db(e))
    }

    fn wrap_slot(
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

    fn check_value(&self, name: &SecretName, value: &SecretValue) -> Result<()> {
        if value.len() as u64 > self.settings.max_value_len {
            return Err(Error::TooLarge {
                what: format!(
                    "the value of '{name}' ({} bytes; setting max_value_len)",
                    value.len()
                ),
                limit: self.settings.max_value_len,
            });
        }
        Ok(())
    }

    pub(crate) fn audit_body(
        &self,
        operation: Operation,
        name: Option<&SecretName>,
        versions: Vec<u64>,
        result: &str,
        reason: Option<String>,
    ) -> AuditBody {
        AuditBody {
            actor: self.actor.clone(),
            operation: operation.as_str().into(),
            store: STORE.into(),
            name: name.map(|n| n.to_string()),
            versions,
            result: result.into(),
            reason,
        }
    }

    pub(crate) fn append_audit(&self, body: &AuditBody) -> Result<()> {
        audit::append(
            &self.conn,
            &self.keys,
            &self.vault_id,
            self.write_key,
            self.write_dek(),
            body,
            &self.known_head,
        )
        .map_err(|e| self.db(e))
    }

    /// Appends one audit entry in its own transaction. Read entries commit
    /// at `synchronous=NORMAL`: they survive a process crash, and only a
    /// power loss before the next checkpoint can drop them.
    fn audit_write(
        &mut self,
        op: Operation,
        name: Option<&SecretName>,
        versions: Vec<u64>,
        outcome: &str,
        reason: Option<String>,
        relaxed: bool,
    ) -> Result<()> {
        let body = self.audit_body(op, name, versions, outcome, reason);
        if relaxed {
            self.exec_cached("PRAGMA synchronous=NORMAL")?;
        }
        let result = self.transaction(|v| v.append_audit(&body));
        if relaxed {
            self.exec_cached("PRAGMA synchronous=FULL")?;
        }
        result
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, appends its audit entry,
    /// and commits. A failure rolls everything back and, for refusals a user
    /// should see later (conflicts, missing secrets), records the attempt.
    pub(crate) fn write<T>(
        &mut self,
        op: Operation,
        name: Option<&SecretName>,
        reason: Option<&str>,
        f: impl FnOnce(&mut Self) -> Result<(T, Vec<u64>)>,
    ) -> Result<T> {
        let result = self.transaction(|v| {
            let (out, versions) = f(v)?;
            let body = v.audit_body(op.clone(), name, versions, "ok", reason.map(str::to_string));
            v.append_audit(&body)?;
            Ok(out)
        });
        if let Err(e) = &result
            && matches!(e, Error::Conflict { .. } | Error::NotFound { .. })
        {
            let kind = e.kind();
            // Best effort: the refusal itself is the answer the caller needs.
            let _ = self.audit_write(op, name, vec![], kind, reason.map(str::to_string), false);
        }
        result
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, first making sure,
    /// under the write lock, that this handle's keys are the vault's current
    /// ones ([`Vault::ensure_keys_current`]).
    pub(crate) fn transaction<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.exec_cached("BEGIN IMMEDIATE")?;
        match self.ensure_keys_current().and_then(|()| f(self)) {
            Ok(out) => match self.exec_cached("COMMIT") {
                Ok(()) => Ok(out),
                Err(e) => {
                    let _ = self.exec_cached("ROLLBACK");
                    Err(e)
                }
            },
            Err(e) => {
                let _ = self.exec_cached("ROLLBACK");
                Err(e)
            }
        }
    }

    pub(crate) fn exec_cached(&self, sql: &str) -> Result<()> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    pub(crate) fn checkpoint_truncate(&self) {
        // Best effort: readers in other processes can hold the WAL open.
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }

    pub(crate) fn db(&self, e: rusqlite::Error) -> Error {
        db_error(e, &self.path)
    }

    pub(crate) fn integrity(&self, detail: String) -> Error {
        Error::Integrity {
            store: STORE.into(),
            detail,
        }
    }

    fn integrity_or_db(&self, e: audit::AuditError) -> Error {
        match e {
            audit::AuditError::Db(e) => self.db(e),
            audit::AuditError::Broken(detail) => self.integrity(detail),
        }
    }
}

impl Vault {
    /// Checkpoints the WAL into the vault file and truncates it when it has
    /// grown past [`WAL_BOUND_BYTES`], without waiting: when another process
    /// is reading or writing, this returns at once and a later run does it.
    /// Returns whether the WAL was truncated. One-shot processes (opened with
    /// `no_checkpoint_on_close`) call it on drop, so their WAL stays small and
    /// the next run's open stays cheap; a checkpoint is crash-safe at any
    /// instant, so nothing is lost if the process dies during it.
    pub fn bound_wal(&mut self) -> bool {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let big = std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_BOUND_BYTES);
        if !big {
            return false;
        }
        // Never wait on another process here: a busy vault is left alone.
        if self.conn.busy_timeout(Duration::ZERO).is_err() {
            return false;
        }
        let done = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
            .is_ok_and(|busy| busy == 0);
        done && std::fs::metadata(&wal).is_ok_and(|m| m.len() == 0)
    }
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

// ------------------------------------------------------------------ helpers

fn slot_params_for(credential: &Credential, password: &slot::PasswordParams) -> SlotParams {
    credential.slot_params(password)
}

fn list_slots(conn: &Connection, path: &Path) -> Result<Vec<SlotInfo>> {
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

/// The vault id and format version from `meta`; a newer format is refused.
fn read_meta(conn: &Connection, path: &Path) -> Result<([u8; 16], u64)> {
    let rows: Vec<(String, Vec<u8>)> = conn
        .prepare("SELECT key, value FROM meta WHERE key IN ('format_version', 'vault_id')")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(|e| db_error(e, path))?;
    let not_a_vault = || Error::Integrity {
        store: STORE.into(),
        detail: format!(
            "{} is not a tresor vault (its meta table is incomplete)",
            path.display()
        ),
    };
    let mut format = None;
    let mut vault_id = None;
    for (key, value) in rows {
        match key.as_str() {
            "format_version" => {
                format = <[u8; 8]>::try_from(&value[..]).ok().map(u64::from_be_bytes)
            }
            "vault_id" => vault_id = <[u8; 16]>::try_from(&value[..]).ok(),
            _ => {}
        }
    }
    let format = format.ok_or_else(not_a_vault)?;
    if format > FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            what: path.display().to_string(),
            found: format.to_string(),
            supported: format!("format {FORMAT_VERSION} and older"),
        });
    }
    if format < 1 {
        return Err(not_a_vault());
    }
    Ok((vault_id.ok_or_else(not_a_vault)?, format))
}

fn check_vault_path(path: &Path) -> Result<()> {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::Io {
            store: STORE.into(),
            path: path.to_path_buf(),
            source: std::io::Error::other("is a directory, not a vault file"),
        }),
        Ok(m) if m.len() == 0 => Err(Error::Integrity {
            store: STORE.into(),
            detail: format!("{} is empty: not a tresor vault", path.display()),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NoVault {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(Error::Io {
            store: STORE.into(),
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Io {
            store: STORE.into(),
            path: dir.to_path_buf(),
            source,
        })
}

fn create_private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Exists {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(Error::Io {
            store: STORE.into(),
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Maps SQLite errors onto tresor's. SQLite's messages never contain bound
/// values, so they are safe to show.
pub(crate) fn db_error(e: rusqlite::Error, path: &Path) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return Error::Unavailable {
                    store: STORE.into(),
                    reason: format!(
                        "{} stayed locked by another writer past the lock timeout; \
                         raise TRESOR_LOCK_TIMEOUT (seconds, default 30) or retry",
                        path.display()
                    ),
                };
            }
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
                return Error::Integrity {
                    store: STORE.into(),
                    detail: format!("{} is corrupt or not a tresor vault ({e})", path.display()),
                };
            }
            ErrorCode::ReadOnly => {
                return Error::Io {
                    store: STORE.into(),
                    path: path.to_path_buf(),
                    source: std::io::Error::other(
                        "the vault file or its folder is read-only; tresor needs write access \
                         even to read, because reads are audited (setting audit_reads)",
                    ),
                };
            }
            ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::FileLockingProtocolFailed => {
                return Error::Io {
                    store: STORE.into(),
                    path: path.to_path_buf(),
                    source: std::io::Error::other(e.to_string()),
                };
            }
            _ => {}
        }
    }
    if let rusqlite::Error::SqlInputError { .. } | rusqlite::Error::InvalidColumnType(..) = e {
        return Error::Integrity {
            store: STORE.into(),
            detail: format!("unexpected vault layout: {e}"),
        };
    }
    Error::Integrity {
        store: STORE.into(),
        detail: format!("{}: {e}", path.display()),
    }
}

fn not_found(name: &SecretName, selector: Option<Selector>) -> Error {
    let what = match selector {
        None => format!("'{name}'"),
        Some(s) => format!("'{name}' {s}"),
    };
    Error::NotFound {
        store: STORE.into(),
        what,
    }
}

fn label_of(header: &Header, label: Label) -> Option<u64> {
    match label {
        Label::Current => header.current,
        Label::Previous => header.previous,
        Label::Pending => header.pending,
    }
}

fn labels_at(header: &Header, version: u64) -> Vec<Label> {
    [Label::Current, Label::Previous, Label::Pending]
        .into_iter()
        .filter(|l| label_of(header, *l) == Some(version))
        .collect()
}

fn info_of(header: Header) -> Result<SecretInfo> {
    let name = SecretName::new(header.name).map_err(|_| Error::Integrity {
        store: STORE.into(),
        detail: "a stored secret has an invalid name".into(),
    })?;
    Ok(SecretInfo {
        name,
        current: header.current.unwrap_or(0),
        latest: header.next_version - 1,
        pending: header.pending,
        updated_at: header.updated_at,
        deleted_at: header.deleted_at,
        metadata: header.metadata,
    })
}

/// Milliseconds since the Unix epoch, UTC.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
