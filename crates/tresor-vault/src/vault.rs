//! The vault: opening, unlocking, and every operation on secrets.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use serde::Serialize;

use tresor_core::{
    DeleteMode, Error, Label, Metadata, Operation, PutOptions, Result, Secret, SecretInfo,
    SecretName, SecretValue, Selector, VersionInfo, memory, validate_metadata,
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

mod create;
mod data_keys;
mod migrate;
mod open;
mod records;
mod rekey;
mod secrets;
mod slots;
mod sql;
mod verify;

use slots::{list_slots, slot_params_for};
pub(crate) use sql::db_error;
use sql::{check_vault_path, create_private_dir, create_private_file, read_meta};

pub use rekey::{MasterRekey, RekeyReport};
pub use secrets::Versions;

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
    /// SQLite's `data_version` when `settings` were last read from the
    /// file (see [`Vault::refresh_settings`]); `None`: read them again.
    settings_version: Option<i64>,
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
                    flags: Vec::new(),
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
        let result = self.write(Operation::Settings, None, None, |v| {
            v.settings = settings;
            v.store_settings()?;
            Ok(((), vec![]))
        });
        if result.is_err() {
            // Rolled back in the file: read them again before the next use.
            self.settings_version = None;
        }
        result
    }

    /// Sets who is recorded as the actor in versions and audit entries
    /// (default: the OS user).
    pub fn set_actor(&mut self, actor: impl Into<String>) {
        self.actor = actor.into();
    }
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.path)
            .finish_non_exhaustive()
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
