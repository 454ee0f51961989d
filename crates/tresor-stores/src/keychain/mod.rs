//! The OS keychain as a store, through `keyring-core` and its store crates:
//! the Secret Service (D-Bus: GNOME Keyring, KWallet, KeePassXC) or the
//! kernel's keyutils on Linux, the Keychain on macOS, the Credential Manager
//! on Windows.
//!
//! # Layout
//!
//! One keychain entry per secret: service (the `service` option, default
//! `tresor-secrets`), account the secret's name, and the value's bytes as
//! the entry's secret, byte for byte (binary values included). The default
//! service differs from the `tresor` service of the vault's keychain key
//! slots, so a listing never shows them.
//!
//! # What a keychain cannot do
//!
//! A keychain holds one value per name: every value is version 1, and other
//! versions, `history`, labels other than `current`, staged writes,
//! check-and-set and metadata are [`Error::Unsupported`]. Nothing can be
//! restored once deleted, so a soft delete is `Unsupported` too and a purge
//! deletes the entry. Listing works on the Secret Service (a search by the
//! entries' `service` attribute) and is `Unsupported` on keyutils, macOS and
//! Windows. Values are at most 1 MiB (32,767 bytes on keyutils, the kernel's
//! limit for a `user` key).
//!
//! # Backends
//!
//! `auto` (the default) takes the Secret Service when
//! `DBUS_SESSION_BUS_ADDRESS` is set and a Secret Service answers on it, else
//! keyutils; on macOS and Windows it takes the native store. keyutils entries
//! live in the session keyring: they are gone when the session ends (a
//! logout, a reboot). The macOS and Windows store crates are compiled only on
//! their own OS and are not tested by tresor's CI (which runs on Linux).
//!
//! Errors name the store, the secret and the keychain's own error text,
//! never a value.
//!
//! # Options (`tresor.toml`)
//!
//! | key | meaning | default |
//! | --- | --- | --- |
//! | `backend` | `auto`, `secret-service`, `keyutils` (Linux), `native` (macOS, Windows) | `auto` |
//! | `service` | the entries' service name, a namespace | `tresor-secrets` |

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry, Error as KeyringError};
use tresor_core::{
    Capabilities, DEFAULT_MAX_VALUE_LEN, DeleteMode, Error, Health, Label, PutOptions, Result,
    Secret, SecretInfo, SecretName, SecretValue, Selector, Store,
};

use crate::StoreOptions;

/// The store's name in messages unless [`KeychainOptions::name`] gives another.
const DEFAULT_NAME: &str = "keychain";
/// The entries' service name unless [`KeychainOptions::service`] gives another.
pub const DEFAULT_SERVICE: &str = "tresor-secrets";
/// Largest payload of a kernel `user` key.
const KEYUTILS_MAX_VALUE_LEN: usize = 32_767;
/// The account a health probe reads (never written).
const PROBE_ACCOUNT: &str = "tresor-health-probe";

/// Which keychain to use; parsed from the `backend` option.
///
/// ```
/// use tresor_stores::keychain::Backend;
///
/// assert_eq!("secret-service".parse(), Ok(Backend::SecretService));
/// assert_eq!(Backend::default().as_str(), "auto");
/// assert!("kwallet".parse::<Backend>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// The Secret Service if one answers on the session bus, else keyutils
    /// (Linux); the native store elsewhere.
    #[default]
    Auto,
    /// The macOS Keychain or the Windows Credential Manager.
    Native,
    /// The kernel's keyutils, session keyring (Linux).
    Keyutils,
    /// The Secret Service on the D-Bus session bus (Linux).
    SecretService,
}

impl Backend {
    /// The backend's name in options and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Native => "native",
            Backend::Keyutils => "keyutils",
            Backend::SecretService => "secret-service",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        match s {
            "auto" => Ok(Backend::Auto),
            "native" => Ok(Backend::Native),
            "keyutils" => Ok(Backend::Keyutils),
            "secret-service" => Ok(Backend::SecretService),
            _ => Err(()),
        }
    }
}

/// Which keychain and namespace.
#[derive(Clone, Debug)]
pub struct KeychainOptions {
    /// The store's name in messages (a config's store name).
    pub name: String,
    /// The keychain.
    pub backend: Backend,
    /// The entries' service name (default [`DEFAULT_SERVICE`]).
    pub service: String,
}

impl KeychainOptions {
    /// The options a `tresor.toml` entry gives (`backend`, `service`),
    /// without opening the keychain; unknown keys are an error.
    pub fn from_options(options: &StoreOptions) -> Result<Self> {
        let typed = KeychainOptions {
            name: options.store().to_string(),
            backend: options
                .parse("backend", "auto, secret-service, keyutils or native")?
                .unwrap_or_default(),
            service: options
                .get("service")
                .unwrap_or(DEFAULT_SERVICE)
                .to_string(),
        };
        options.finish()?;
        Ok(typed)
    }
}

impl Default for KeychainOptions {
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.to_string(),
            backend: Backend::Auto,
            service: DEFAULT_SERVICE.to_string(),
        }
    }
}

/// The OS keychain as a [`Store`] (see the [module docs](self)).
///
/// ```no_run
/// use tresor_core::{PutOptions, SecretName, SecretValue, Selector, Store};
/// use tresor_stores::keychain::{Backend, Keychain, KeychainOptions};
///
/// let mut keychain = Keychain::open(KeychainOptions {
///     backend: Backend::SecretService,
///     service: "my-app".to_string(),
///     ..KeychainOptions::default()
/// })?;
/// let name = SecretName::new("openai/api_key")?;
/// keychain.put(&name, &SecretValue::copy_from(b"sk-..."), &PutOptions::default())?;
/// assert_eq!(keychain.get(&name, Selector::default())?.value.expose_secret(), b"sk-...");
/// # Ok::<(), tresor_core::Error>(())
/// ```
pub struct Keychain {
    name: String,
    service: String,
    backend: Backend,
    store: Arc<CredentialStore>,
}

impl fmt::Debug for Keychain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keychain")
            .field("name", &self.name)
            .field("backend", &self.backend)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Keychain {
    /// Opens the keychain (`auto` resolved to a concrete backend). Nothing
    /// is read or written.
    pub fn open(options: KeychainOptions) -> Result<Self> {
        if options.service.is_empty() || options.service.chars().any(char::is_control) {
            return Err(Error::InvalidOption {
                store: options.name.clone(),
                option: "service".to_string(),
                problem: "must be non-empty text".to_string(),
            });
        }
        let backend = match options.backend {
            Backend::Auto => default_backend(),
            other => other,
        };
        let store = imp::open(backend).map_err(|detail| Error::Unavailable {
            store: options.name.clone(),
            reason: format!(
                "the {} keychain cannot be opened: {detail}",
                backend.as_str()
            ),
        })?;
        Ok(Self {
            name: options.name,
            service: options.service,
            backend,
            store,
        })
    }

    /// Builds the store from its `tresor.toml` options (keys in the
    /// [module docs](self#options-tresortoml)); unknown keys are an error.
    ///
    /// ```no_run
    /// use tresor_stores::StoreOptions;
    /// use tresor_stores::keychain::{Backend, Keychain};
    ///
    /// let options = StoreOptions::new("login")
    ///     .with("backend", "secret-service")
    ///     .with("service", "my-app");
    /// let store = Keychain::from_options(&options)?;
    /// assert_eq!(store.backend(), Backend::SecretService);
    /// # Ok::<(), tresor_core::Error>(())
    /// ```
    pub fn from_options(options: &StoreOptions) -> Result<Self> {
        Self::open(KeychainOptions::from_options(options)?)
    }

    /// The backend in use (never [`Backend::Auto`]).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The entries' service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    fn entry(&self, account: &str) -> Result<Entry> {
        Entry::new_in_store(&self.store, &self.service, account)
            .map_err(|e| self.error(e, &format!("'{account}'")))
    }

    fn max_value_len(&self) -> usize {
        match self.backend {
            Backend::Keyutils => KEYUTILS_MAX_VALUE_LEN,
            _ => DEFAULT_MAX_VALUE_LEN,
        }
    }

    /// The tresor error for a keychain error about `what`; never a value
    /// (the variants that carry secret bytes are described, not shown).
    fn error(&self, e: KeyringError, what: &str) -> Error {
        let store = self.name.clone();
        match e {
            KeyringError::NoEntry => Error::NotFound {
                store,
                what: what.to_string(),
            },
            KeyringError::NoStorageAccess(inner) => Error::Locked {
                store,
                hint: format!("{what}: the keychain refused access (unlock it): {inner}"),
            },
            KeyringError::NotSupportedByStore(detail) => Error::Validation(format!(
                "{store}: {what}: not supported by the {} keychain: {detail}",
                self.backend.as_str()
            )),
            KeyringError::TooLong(attribute, limit) => Error::TooLarge {
                what: format!("{store}: {what}: the {attribute}"),
                limit: u64::from(limit),
            },
            KeyringError::Invalid(attribute, reason) => Error::Malformed {
                what: format!("{store}: {what}: the {attribute}"),
                problem: reason,
            },
            KeyringError::BadEncoding(mut bytes) | KeyringError::BadDataFormat(mut bytes, _) => {
                zeroize::Zeroize::zeroize(&mut bytes);
                Error::Integrity {
                    store,
                    detail: format!("{what}: the entry's data is malformed"),
                }
            }
            KeyringError::Ambiguous(entries) => Error::Integrity {
                store,
                detail: format!("{what}: {} keychain entries match", entries.len()),
            },
            KeyringError::PlatformFailure(inner) => Error::Unavailable {
                store,
                reason: format!("{what}: {}: {inner}", self.backend.as_str()),
            },
            other => Error::Unavailable {
                store,
                reason: format!("{what}: {}: {other}", self.backend.as_str()),
            },
        }
    }
}

/// The backend `auto` resolves to here.
fn default_backend() -> Backend {
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        return Backend::Native;
    }
    let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").filter(|v| !v.is_empty());
    if bus.is_some() && imp::open(Backend::SecretService).is_ok() {
        Backend::SecretService
    } else {
        Backend::Keyutils
    }
}

impl Store for Keychain {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list: self.backend == Backend::SecretService,
            ..Capabilities::default()
        }
    }

    fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Secret> {
        match selector {
            Selector::Label(Label::Current) | Selector::Version(1) => {}
            Selector::Version(_) => return Err(self.unsupported("versions (one value per name)")),
            Selector::Label(_) => return Err(self.unsupported("labels other than current")),
        }
        let bytes = self
            .entry(name.as_str())?
            .get_secret()
            .map_err(|e| self.error(e, &format!("'{name}'")))?;
        Ok(Secret {
            name: name.clone(),
            version: 1,
            value: SecretValue::from(bytes),
        })
    }

    fn put(&mut self, name: &SecretName, value: &SecretValue, options: &PutOptions) -> Result<u64> {
        if options.expect_version.is_some() {
            return Err(self.unsupported("check-and-set"));
        }
        if !options.metadata.is_empty() {
            return Err(self.unsupported("metadata"));
        }
        if options.stage {
            return Err(self.unsupported("staging a pending version"));
        }
        let limit = self.max_value_len();
        if value.len() > limit {
            return Err(Error::TooLarge {
                what: format!(
                    "{}: the value for '{name}' (in the {} keychain)",
                    self.name,
                    self.backend.as_str()
                ),
                limit: limit as u64,
            });
        }
        self.entry(name.as_str())?
            .set_secret(value.expose_secret())
            .map_err(|e| self.error(e, &format!("write of '{name}'")))?;
        Ok(1)
    }

    fn delete(&mut self, name: &SecretName, mode: DeleteMode) -> Result<()> {
        if mode == DeleteMode::Soft {
            return Err(self.unsupported("soft delete (nothing can be restored; purge deletes)"));
        }
        self.entry(name.as_str())?
            .delete_credential()
            .map_err(|e| self.error(e, &format!("'{name}'")))
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<SecretInfo>> {
        if self.backend != Backend::SecretService {
            return Err(self.unsupported("listing (only the Secret Service can search)"));
        }
        let spec = HashMap::from([("service", self.service.as_str())]);
        let entries = self
            .store
            .search(&spec)
            .map_err(|e| self.error(e, &format!("listing of '{prefix}'")))?;
        let mut out: Vec<SecretInfo> = entries
            .iter()
            .filter_map(|entry| {
                let (service, account) = entry.get_specifiers()?;
                if service != self.service || !account.starts_with(prefix) {
                    return None;
                }
                Some(SecretInfo::single(SecretName::new(account).ok()?))
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        Ok(out)
    }

    fn health(&mut self) -> Health {
        let place = format!(
            "{} keychain, service {:?}",
            self.backend.as_str(),
            self.service
        );
        let probe = self
            .entry(PROBE_ACCOUNT)
            .and_then(|entry| match entry.get_secret() {
                Ok(_) | Err(KeyringError::NoEntry) => Ok(()),
                Err(e) => Err(self.error(e, "probe")),
            });
        match probe {
            Ok(()) => Health {
                reachable: true,
                authenticated: true,
                detail: format!("{place}; answers"),
            },
            Err(Error::Locked { hint, .. }) => Health {
                reachable: true,
                authenticated: false,
                detail: format!("{place}; {hint}"),
            },
            Err(e) => Health {
                reachable: false,
                authenticated: false,
                detail: format!("{place}; {e}"),
            },
        }
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;

    pub fn open(backend: Backend) -> std::result::Result<Arc<CredentialStore>, String> {
        match backend {
            Backend::SecretService => zbus_secret_service_keyring_store::Store::new()
                .map(|s| s as Arc<CredentialStore>)
                .map_err(|e| e.to_string()),
            Backend::Keyutils => linux_keyutils_keyring_store::Store::new()
                .map(|s| s as Arc<CredentialStore>)
                .map_err(|e| e.to_string()),
            Backend::Native | Backend::Auto => {
                Err("Linux has no native keychain besides secret-service and keyutils".into())
            }
        }
    }
}

#[cfg(target_os = "macos")]
mod imp {
    use super::*;

    pub fn open(backend: Backend) -> std::result::Result<Arc<CredentialStore>, String> {
        match backend {
            Backend::Native | Backend::Auto => apple_native_keyring_store::keychain::Store::new()
                .map(|s| s as Arc<CredentialStore>)
                .map_err(|e| e.to_string()),
            other => Err(format!("{} is Linux only", other.as_str())),
        }
    }
}

#[cfg(target_os = "windows")]
mod imp {
    use super::*;

    pub fn open(backend: Backend) -> std::result::Result<Arc<CredentialStore>, String> {
        match backend {
            Backend::Native | Backend::Auto => windows_native_keyring_store::Store::new()
                .map(|s| s as Arc<CredentialStore>)
                .map_err(|e| e.to_string()),
            other => Err(format!("{} is Linux only", other.as_str())),
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
mod imp {
    use super::*;

    pub fn open(_: Backend) -> std::result::Result<Arc<CredentialStore>, String> {
        Err("this OS has no keychain tresor can use".into())
    }
}

#[cfg(test)]
mod tests;
