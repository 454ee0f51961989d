//! The contract every store implements.

use serde::Serialize;

use crate::{Error, Label, Metadata, Result, SecretName, SecretValue, Selector, VersionInfo};

/// What a store can do, one flag per operation a caller may rely on.
/// Operations outside these return [`Error::Unsupported`] (writes to a
/// read-only store [`Error::ReadOnly`]). The shared conformance suite checks
/// each flag a store claims by using it, and each one it does not claim by
/// its refusal. Serialized with these field names (`tresor stores --json`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// The store refuses writes.
    pub read_only: bool,
    /// The store keeps numbered versions: a write makes a new one, older
    /// ones stay readable by number, `history` lists them.
    pub versions: bool,
    /// Reads by label work beyond `current`: `previous` names the version
    /// before `current` (and `pending`, where [`Capabilities::staging`]
    /// holds, the staged one).
    pub read_labels: bool,
    /// [`PutOptions::stage`] writes a version as `pending` and leaves
    /// `current` where it was.
    pub staging: bool,
    /// [`Store::set_label`] moves `current` to another version (promote,
    /// rollback).
    pub move_labels: bool,
    /// The store keeps a metadata map per secret ([`PutOptions::metadata`]
    /// merges into it, [`Store::list`] shows it).
    pub metadata: bool,
    /// The store can list names ([`Store::list`]).
    pub list: bool,
    /// Writes can name the version they expect ([`PutOptions::expect_version`]).
    pub check_and_set: bool,
    /// [`DeleteMode::Soft`] hides a secret and [`Store::undelete`] restores it.
    pub soft_delete: bool,
}

impl Capabilities {
    /// Everything, writable: what a store that does all of it claims; others
    /// name what they lack, e.g. `Capabilities { staging: false,
    /// ..Capabilities::ALL }`.
    pub const ALL: Capabilities = Capabilities {
        read_only: false,
        versions: true,
        read_labels: true,
        staging: true,
        move_labels: true,
        metadata: true,
        list: true,
        check_and_set: true,
        soft_delete: true,
    };
}

/// A value read from a store, with the version it came from.
#[derive(Debug)]
pub struct Secret {
    /// The secret's name.
    pub name: SecretName,
    /// The version read (1 for stores without versions).
    pub version: u64,
    /// The value.
    pub value: SecretValue,
}

/// How to write.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// Fail with [`Error::Conflict`] unless the current version is this one
    /// (0: the secret must not exist yet).
    pub expect_version: Option<u64>,
    /// Why the change is made; kept in the version and the audit log.
    pub reason: Option<String>,
    /// Metadata entries to merge into the secret's map.
    pub metadata: Metadata,
    /// Stage the version as `pending` instead of making it `current`.
    pub stage: bool,
    /// The writer skipped the validation rules on purpose (`--no-validate`):
    /// the manager does not check the value, and a store with an audit log
    /// records the override in the write's entry.
    pub unvalidated: bool,
}

/// How to delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteMode {
    /// Hide the secret; `undelete` restores it.
    Soft,
    /// Destroy every version.
    Purge,
}

/// One entry of a listing.
#[derive(Clone, Debug, Serialize)]
pub struct SecretInfo {
    /// The name.
    pub name: SecretName,
    /// The current version (0 if none is current).
    pub current: u64,
    /// The newest version number written.
    pub latest: u64,
    /// The version staged as pending, if any.
    pub pending: Option<u64>,
    /// When the secret was last changed, in ms since the epoch.
    pub updated_at: i64,
    /// When it was soft-deleted, if it was.
    pub deleted_at: Option<i64>,
    /// Its metadata.
    pub metadata: Metadata,
}

impl SecretInfo {
    /// The entry of a live secret with one version and no times or metadata
    /// (stores without versions: the environment, a keychain).
    pub fn single(name: SecretName) -> Self {
        Self {
            name,
            current: 1,
            latest: 1,
            pending: None,
            updated_at: 0,
            deleted_at: None,
            metadata: Metadata::new(),
        }
    }
}

/// The state of a store, as `health` finds it.
#[derive(Clone, Debug, Serialize)]
pub struct Health {
    /// Whether the store answered.
    pub reachable: bool,
    /// Whether it accepted our credentials.
    pub authenticated: bool,
    /// A human summary.
    pub detail: String,
}

/// A place secrets live. Every backend implements this one trait; optional
/// operations default to [`Error::Unsupported`].
pub trait Store: Send {
    /// The store's name as shown in messages.
    fn name(&self) -> &str;

    /// What this store can do.
    fn capabilities(&self) -> Capabilities;

    /// Reads one version of a secret.
    fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Secret>;

    /// Writes a new value; returns the new version number.
    fn put(&mut self, name: &SecretName, value: &SecretValue, options: &PutOptions) -> Result<u64>;

    /// Deletes a secret.
    fn delete(&mut self, name: &SecretName, mode: DeleteMode) -> Result<()>;

    /// Lists secrets whose names start with `prefix`.
    fn list(&mut self, prefix: &str) -> Result<Vec<SecretInfo>> {
        let _ = prefix;
        Err(self.unsupported("list"))
    }

    /// Lists every version of a secret, oldest first.
    fn history(&mut self, name: &SecretName) -> Result<Vec<VersionInfo>> {
        let _ = name;
        Err(self.unsupported("history"))
    }

    /// Restores a soft-deleted secret.
    fn undelete(&mut self, name: &SecretName) -> Result<()> {
        let _ = name;
        Err(self.unsupported("undelete"))
    }

    /// Points a label at a version.
    fn set_label(&mut self, name: &SecretName, label: Label, version: u64) -> Result<()> {
        let _ = (name, label, version);
        Err(self.unsupported("moving labels"))
    }

    /// Probes the store.
    fn health(&mut self) -> Health;

    /// The `Unsupported` error for `operation` on this store.
    fn unsupported(&self, operation: &'static str) -> Error {
        Error::Unsupported {
            store: self.name().to_string(),
            operation,
        }
    }
}
