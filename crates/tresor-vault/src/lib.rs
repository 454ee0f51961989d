//! tresor's embedded vault: secrets encrypted record by record in one SQLite
//! file, versioned, labelled and audited.
//!
//! ```
//! use tresor_core::{PutOptions, SecretName, SecretValue, Selector};
//! use tresor_crypto::slot::{Credential, new_key_file_text};
//! use tresor_vault::{CreateOptions, LockedVault, OpenOptions, Vault};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("vault.db");
//! let key = Credential::key_material(new_key_file_text().as_bytes()).unwrap();
//! let mut vault = Vault::create(&path, &key, &CreateOptions::default())?.vault;
//!
//! let name = SecretName::new("openai/api_key")?;
//! let v = vault.put(&name, &SecretValue::copy_from(b"sk-test"), &PutOptions::default())?;
//! assert_eq!(v, 1);
//! drop(vault);
//!
//! let mut vault = LockedVault::open(&path, &OpenOptions::default())?.unlock(&key)?;
//! let secret = vault.get(&name, Selector::default())?;
//! assert_eq!(secret.value.expose_secret(), b"sk-test");
//! assert_eq!(vault.verify()?.secrets, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod audit;
pub mod failures;
pub mod keychain;
mod named_keys;
mod payload;
pub mod pkcs11;
mod schema;
mod store;
mod vault;

/// Entry points for the fuzz targets in `fuzz/` (not a public API: no
/// stability promise, hidden from the docs).
#[doc(hidden)]
pub mod fuzzing {
    use crate::payload;

    /// Decodes `plain` as every kind of record payload the vault reads
    /// once a record is opened: a secret's header and version, an audit
    /// entry (both layouts), the settings, a named key's header and
    /// version. The results are dropped: only a panic matters.
    pub fn decode_records(plain: &[u8]) {
        let _ = payload::decode_owned::<payload::Header>(plain, "fuzz");
        let _ = payload::decode::<payload::VersionBody<'_>>(plain, "fuzz");
        let _ = payload::decode_audit(plain, "fuzz");
        let _ = payload::decode_owned::<payload::Settings>(plain, "fuzz");
        crate::named_keys::fuzz_decode(plain);
    }

    /// Parses the bytes of an unlock-failure sidecar as
    /// [`crate::failures::read`] does.
    pub fn fold_failures(bytes: &[u8]) -> crate::failures::Folded {
        crate::failures::fold(bytes)
    }

    /// The checksum field the sidecar writes after a line's `body`, so a
    /// fuzz target can make lines that pass it.
    pub fn failure_checksum(body: &str) -> String {
        crate::failures::checksum(body)
    }
}

pub use audit::{AuditAnchor, AuditEntry, AuditFilter, FLAG_UNVALIDATED};
pub use named_keys::{
    AUDIT_INTERVAL, AgeUse, BudgetWarning, CACHE_CHECK_INTERVAL, GCM_BUDGET, GCM_RESERVE_BLOCK,
    GCM_WARN_AT, KeyInfo, Keys, envelope_key,
};
pub use payload::Settings;
pub use schema::FORMAT_VERSION;
pub use tresor_crypto::KeyType;
pub use vault::{
    CreateOptions, Created, LockedVault, MasterRekey, OpenOptions, Pkcs11Location, RekeyReport,
    SlotInfo, Vault, VerifyReport, Versions,
};
