//! OS-keychain key slots: the slot key's 32 random bytes live in the Secret
//! Service (D-Bus) or in the Linux kernel's keyutils, through keyring-core
//! and its store crates (cargo feature `keychain`, Linux only).
//!
//! Each keychain slot has one entry: service `tresor`, account
//! `vault-<vault id hex>-slot-<slot id>`, password the 32 bytes as base64
//! (VAULT-FORMAT.md, "Key slots"). The slot key is
//! HKDF-SHA256(bytes, salt = vault id, info = `tresor v1 keychain slot`).
//!
//! Each call builds the store of the slot's own backend
//! (`keyring_core::Entry::new_in_store`) rather than the process-wide default
//! store, so a vault with slots in both keychains, or tests running in
//! parallel threads, never race on global state.

use base64::Engine as _;
use zeroize::Zeroizing;

use tresor_core::{Error, Result};
use tresor_crypto::slot::{Credential, KeychainBackend};

/// The keychain entries' service name.
pub const SERVICE: &str = "tresor";

/// The keychain account of slot `slot_id` of vault `vault_id`.
pub fn account(vault_id: &[u8; 16], slot_id: u32) -> String {
    let hex: String = vault_id.iter().map(|b| format!("{b:02x}")).collect();
    format!("vault-{hex}-slot-{slot_id}")
}

/// Whether this build can reach an OS keychain at all.
pub const SUPPORTED: bool = cfg!(all(feature = "keychain", target_os = "linux"));

fn store_name(backend: KeychainBackend) -> &'static str {
    match backend {
        KeychainBackend::SecretService => "Secret Service",
        KeychainBackend::Keyutils => "kernel keyutils",
    }
}

fn error(backend: KeychainBackend, what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Unavailable {
        store: format!("keychain ({})", backend.as_str()),
        reason: format!("{} {what}: {detail}", store_name(backend)),
    }
}

/// The backend a new keychain slot uses: the Secret Service when
/// `DBUS_SESSION_BUS_ADDRESS` is set and a Secret Service answers on it,
/// else kernel keyutils.
pub fn default_backend() -> KeychainBackend {
    let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").filter(|v| !v.is_empty());
    if bus.is_some() && imp::secret_service_answers() {
        KeychainBackend::SecretService
    } else {
        KeychainBackend::Keyutils
    }
}

/// How long [`answering_backend`] waits for each keychain.
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The keychain that answers right now, for `init`'s default: the Secret
/// Service when `DBUS_SESSION_BUS_ADDRESS` is set and a lookup through it
/// answers, else kernel keyutils when an entry can be stored, read back and
/// deleted; `None` when neither does (no session bus, a container's
/// session keyring that refuses links, a build without the `keychain`
/// feature). Each probe runs on its own thread and is given up after
/// [`PROBE_TIMEOUT`], so a bus that never answers cannot hang the caller.
pub fn answering_backend() -> Option<KeychainBackend> {
    if !SUPPORTED {
        return None;
    }
    let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").filter(|v| !v.is_empty());
    bus.map(|_| KeychainBackend::SecretService)
        .into_iter()
        .chain([KeychainBackend::Keyutils])
        .find(|&backend| probe_with_timeout(backend, PROBE_TIMEOUT))
}

fn probe_with_timeout(backend: KeychainBackend, timeout: std::time::Duration) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("tresor keychain probe".into())
        .spawn(move || {
            let _ = tx.send(imp::probe(backend));
        });
    // A probe still blocked after the timeout is left behind; it holds no
    // secret and ends with the process.
    spawned.is_ok() && rx.recv_timeout(timeout).unwrap_or(false)
}

/// Stores `credential` (a [`Credential::keychain`]) as slot `slot_id`'s entry.
pub fn store(vault_id: &[u8; 16], slot_id: u32, credential: &Credential) -> Result<()> {
    let (Some(backend), Some(bytes)) = (credential.keychain_backend(), credential.expose_bytes())
    else {
        return Err(Error::Validation("not a keychain credential".into()));
    };
    let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(bytes));
    imp::set(backend, &account(vault_id, slot_id), &text)
        .map_err(|e| error(backend, "could not store the slot key", e))
}

/// Reads slot `slot_id`'s entry: the credential that opens that slot.
pub fn load(vault_id: &[u8; 16], slot_id: u32, backend: KeychainBackend) -> Result<Credential> {
    let text = imp::get(backend, &account(vault_id, slot_id))
        .map_err(|e| error(backend, &format!("has no key for slot {slot_id}"), e))?;
    let mut bytes = Zeroizing::new(vec![0u8; 48]);
    let len = base64::engine::general_purpose::STANDARD
        .decode_slice(text.trim().as_bytes(), &mut bytes[..])
        .ok()
        .filter(|&n| n == 32)
        .ok_or_else(|| {
            error(
                backend,
                &format!("entry of slot {slot_id}"),
                "is not 32 bytes of base64",
            )
        })?;
    bytes.truncate(len);
    Ok(Credential::keychain(backend, bytes))
}

/// Deletes slot `slot_id`'s entry; an entry already gone is not an error.
pub fn delete(vault_id: &[u8; 16], slot_id: u32, backend: KeychainBackend) -> Result<()> {
    imp::delete(backend, &account(vault_id, slot_id)).map_err(|e| {
        error(
            backend,
            &format!("could not delete the key of slot {slot_id}"),
            e,
        )
    })
}

#[cfg(all(feature = "keychain", target_os = "linux"))]
mod imp {
    use std::sync::Arc;

    use keyring_core::{CredentialStore, Entry, Error as KeyringError};
    use tresor_crypto::slot::KeychainBackend;
    use zeroize::Zeroizing;

    use super::SERVICE;

    fn open(backend: KeychainBackend) -> Result<Arc<CredentialStore>, String> {
        match backend {
            KeychainBackend::SecretService => zbus_secret_service_keyring_store::Store::new()
                .map(|s| s as Arc<CredentialStore>)
                .map_err(|e| e.to_string()),
            KeychainBackend::Keyutils => linux_keyutils_keyring_store::Store::new()
                .map(|s| s as Arc<CredentialStore>)
                .map_err(|e| e.to_string()),
        }
    }

    fn entry(backend: KeychainBackend, account: &str) -> Result<Entry, String> {
        let store = open(backend)?;
        Entry::new_in_store(&store, SERVICE, account).map_err(|e| e.to_string())
    }

    pub fn secret_service_answers() -> bool {
        open(KeychainBackend::SecretService).is_ok()
    }

    /// Whether `backend` answers: a lookup of a name that does not exist
    /// (Secret Service: no item is made, nothing prompts), or a store, read
    /// and delete of a throwaway entry (keyutils).
    pub fn probe(backend: KeychainBackend) -> bool {
        let mut suffix = [0u8; 8];
        tresor_crypto::random_bytes(&mut suffix);
        let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let account = format!("probe-{hex}");
        match backend {
            KeychainBackend::SecretService => matches!(
                entry(backend, &account).map(|e| e.get_password()),
                Ok(Err(KeyringError::NoEntry)) | Ok(Ok(_))
            ),
            KeychainBackend::Keyutils => {
                let ok = set(backend, &account, "probe").is_ok()
                    && get(backend, &account).is_ok_and(|v| v.as_str() == "probe");
                let _ = delete(backend, &account);
                ok
            }
        }
    }

    pub fn set(backend: KeychainBackend, account: &str, text: &str) -> Result<(), String> {
        entry(backend, account)?
            .set_password(text)
            .map_err(|e| e.to_string())
    }

    pub fn get(backend: KeychainBackend, account: &str) -> Result<Zeroizing<String>, String> {
        entry(backend, account)?
            .get_password()
            .map(Zeroizing::new)
            .map_err(|e| e.to_string())
    }

    pub fn delete(backend: KeychainBackend, account: &str) -> Result<(), String> {
        match entry(backend, account)?.delete_credential() {
            Ok(()) | Err(KeyringError::NoEntry) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(not(all(feature = "keychain", target_os = "linux")))]
mod imp {
    use tresor_crypto::slot::KeychainBackend;
    use zeroize::Zeroizing;

    const NO: &str =
        "this build of tresor has no keychain support (Linux, cargo feature `keychain`)";

    pub fn secret_service_answers() -> bool {
        false
    }

    pub fn probe(_: KeychainBackend) -> bool {
        false
    }

    pub fn set(_: KeychainBackend, _: &str, _: &str) -> Result<(), String> {
        Err(NO.into())
    }

    pub fn get(_: KeychainBackend, _: &str) -> Result<Zeroizing<String>, String> {
        Err(NO.into())
    }

    pub fn delete(_: KeychainBackend, _: &str) -> Result<(), String> {
        Err(NO.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_the_vault_and_slot() {
        assert_eq!(
            account(&[0xab; 16], 7),
            "vault-abababababababababababababababab-slot-7"
        );
    }
}
