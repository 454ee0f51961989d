//! Shared helpers for the vault's integration tests.
#![allow(dead_code, missing_docs)]

use std::path::{Path, PathBuf};

use tresor_core::{SecretName, SecretValue};
use tresor_crypto::slot::{Credential, PasswordParams};
use tresor_vault::{CreateOptions, LockedVault, OpenOptions, Vault};

/// A key file's text: the base64 of 32 bytes and a newline.
pub const KEY_TEXT: &str = "dGhpcnR5LXR3by1ieXRlLWtleS1mb3ItdGVzdHMhISE=\n";

pub fn key() -> Credential {
    Credential::key_material(KEY_TEXT.as_bytes()).unwrap()
}

pub fn fast_password_params() -> PasswordParams {
    PasswordParams::new(8 * 1024, 1, 1).unwrap()
}

pub fn create_options() -> CreateOptions {
    CreateOptions {
        password_params: fast_password_params(),
        ..CreateOptions::default()
    }
}

pub fn new_vault(dir: &Path) -> (PathBuf, Vault) {
    let path = dir.join("vault.db");
    let vault = Vault::create(&path, &key(), &create_options())
        .unwrap()
        .vault;
    (path, vault)
}

pub fn reopen(path: &Path) -> Vault {
    LockedVault::open(path, &OpenOptions::default())
        .unwrap()
        .unlock(&key())
        .unwrap()
}

pub fn name(s: &str) -> SecretName {
    SecretName::new(s).unwrap()
}

pub fn value(s: &[u8]) -> SecretValue {
    SecretValue::copy_from(s)
}
