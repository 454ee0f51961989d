//! tresor: keep secrets encrypted, versioned and audited, and hand them to
//! programs.
//!
//! This crate is the front door. It finds the vault ([`vault_path`]),
//! opens it through the one unlock chain ([`Unlock`]: key files, environment,
//! keychain, sessions, PKCS#11, a prompt callback), reads
//! `tresor.toml` ([`config`]; a project's own only once the user approved
//! it, see [`trust`]), puts every configured store behind one API
//! ([`Tresor`]: priority reads, writes to the first writable store, merged
//! listings, offline copies, `doctor`; see [`manager`]), and re-exports the
//! types you need.
//!
//! ```
//! use tresor::{Credential, CreateOptions, PutOptions, SecretName, SecretValue, Selector, Vault};
//!
//! let dir = tempfile::tempdir()?;
//! let key = Credential::key_material(tresor::new_key_file_text().as_bytes()).unwrap();
//! let mut vault = Vault::create(&dir.path().join("vault.db"), &key, &CreateOptions::default())?.vault;
//! let name = SecretName::new("github/token")?;
//! vault.put(&name, &SecretValue::copy_from(b"ghp_example"), &PutOptions::default())?;
//! assert_eq!(vault.get(&name, Selector::default())?.value.expose_secret(), b"ghp_example");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Unsafe code only where this crate calls libc, in the modules allowed below.
#![deny(unsafe_code)]

pub mod config;
pub mod declared;
pub mod exit;
pub mod files;
// SAFETY (module): openat/renameat/unlinkat/fsync and friends on descriptors
// and C strings this module owns; each call has its own SAFETY comment.
#[allow(unsafe_code)]
pub mod fs;
pub mod generate;
pub mod import;
mod locate;
pub mod manager;
pub mod migrate;
mod pkcs11_allow;
pub mod redact;
pub mod refs;
pub mod scan;
// SAFETY (module): posix_spawnp, sigaction, kill, waitpid, poll, pipes and
// openat on values this module owns; each call has its own SAFETY comment.
#[allow(unsafe_code)]
pub mod run;
pub mod session;
pub mod strength;
pub mod sync;
pub mod trust;
// Its tests make a FIFO with libc::mkfifo; the module itself has no unsafe code.
#[cfg_attr(test, allow(unsafe_code))]
pub mod unlock;

pub use manager::{Builder, Found, Listed, Listing, StoreSettings, Tresor, Written};
/// Validation rules: presets per provider and `[[rules]]` from `tresor.toml`.
pub use tresor_core::rules;
/// The stores beyond the vault (`env`, `openbao`, …) and [`stores::StoreOptions`].
pub use tresor_stores as stores;

pub use locate::{LOCK_TIMEOUT_ENV, VAULT_ENV, lock_timeout, vault_path};
pub use pkcs11_allow::{Allowed, allow_module, user_config_path, user_module_policy};
pub use strength::check_new_password;
/// Progress of long work: the library reports, a front end draws.
pub use tresor_core::progress;
pub use tresor_core::{
    Capabilities, DEFAULT_MAX_VALUE_LEN, DeleteMode, Error, Label, Metadata, PutOptions, Result,
    Secret, SecretInfo, SecretName, SecretValue, Selector, Store, VersionInfo, memory,
};
pub use tresor_crypto::slot::{
    Credential, KeychainBackend, PasswordParams, Pkcs11Mechanism, Pkcs11Params, RecoveryKey,
    SlotKind, new_key_file_text, new_keychain_key,
};
pub use tresor_vault::{
    AgeUse, BudgetWarning, GCM_BUDGET, GCM_RESERVE_BLOCK, GCM_WARN_AT, KeyInfo, KeyType, Keys,
    envelope_key,
};
pub use tresor_vault::{
    AuditAnchor, AuditEntry, AuditFilter, CreateOptions, Created, FORMAT_VERSION, LockedVault,
    MasterRekey, OpenOptions, Pkcs11Location, RekeyReport, Settings, SlotInfo, Vault, VerifyReport,
    Versions,
};
pub use tresor_vault::{keychain, pkcs11};
pub use unlock::{
    Given, KEY_ENV, KEY_FILE_ENV, Opened, PASSWORD_ENVS, PKCS11_PIN_ENV, RECOVERY_KEY_ENV, Unlock,
    Unlocked, keychain_credentials, pkcs11_credentials, pkcs11_pin_from_env,
};
