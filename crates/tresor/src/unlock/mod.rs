//! The unlock chain: one type, [`Unlock`], that every caller opens a vault
//! through — the `tresor` CLI, the manager ([`crate::Tresor`]),
//! [`crate::Tresor::open`] and any language binding — so a vault opens the
//! same way whoever asks.
//!
//! The steps, in order (the first that yields a credential is used):
//!
//! 1. a key file named by the caller ([`Unlock::key_file`]), else
//!    `TRESOR_KEY_FILE`;
//! 2. `TRESOR_KEY`;
//! 3. `TRESOR_PASSWORD`, then `KEYSTORE_PASSWORD`, `SECRETS_STORE_PASSWORD`;
//! 4. `TRESOR_RECOVERY_KEY`;
//! 5. the vault's keychain slots (an entry that cannot be read only matters
//!    when nothing else opens the vault);
//! 6. an unlock session (kernel keyring or agent) for this vault, unless
//!    turned off ([`Unlock::sessions`]);
//! 7. the vault's PKCS#11 slots, with the token's PIN from the PIN callback
//!    ([`Unlock::on_pin`]; without one, `TRESOR_PKCS11_PIN`); a wrong or
//!    locked PIN ends the chain;
//! 8. a password from the prompt callback ([`Unlock::on_prompt`]), if the
//!    vault has a password slot.
//!
//! Nothing here reads a terminal: asking a person is the caller's callback.
//! The lock timeout comes from `TRESOR_LOCK_TIMEOUT` and a bad value is an
//! error here as everywhere.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use tresor_core::{Error, Result};
use tresor_crypto::slot::{Credential, SlotKind};
use tresor_vault::{LockedVault, OpenOptions, Vault};

mod sources;

pub use sources::{
    Given, KEY_ENV, KEY_FILE_ENV, PASSWORD_ENVS, PKCS11_PIN_ENV, RECOVERY_KEY_ENV, create_key_file,
    keychain_credentials, pkcs11_credentials, pkcs11_pin_from_env,
};

/// Asks for the PIN of a PKCS#11 token: `(module, token label)` in,
/// `Ok(None)` to skip the token's slots.
pub type PinSource = Box<dyn FnMut(&str, &str) -> Result<Option<Zeroizing<String>>> + Send>;

/// Asks for the vault's password (the vault's path in); `Ok(None)` when
/// nobody can be asked (no terminal).
pub type PasswordSource = Box<dyn FnMut(&Path) -> Result<Option<Zeroizing<String>>> + Send>;

/// How a vault was opened, for messages and the audit log (never the
/// credential itself).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Opened {
    /// A key file (from the caller or `TRESOR_KEY_FILE`).
    KeyFile(PathBuf),
    /// A credential from this environment variable.
    Environment(&'static str),
    /// A keychain slot.
    Keychain,
    /// An unlock session, with its backend (`kernel keyring`, `agent`).
    Session(&'static str),
    /// A PKCS#11 slot.
    Pkcs11,
    /// A password from the prompt callback.
    Prompt,
}

impl std::fmt::Display for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Opened::KeyFile(p) => write!(f, "key file {}", p.display()),
            Opened::Environment(var) => f.write_str(var),
            Opened::Keychain => f.write_str("keychain slot"),
            Opened::Session(backend) => write!(f, "unlock session ({backend})"),
            Opened::Pkcs11 => f.write_str("PKCS#11 slot"),
            Opened::Prompt => f.write_str("password prompt"),
        }
    }
}

/// An opened vault and how it was opened.
#[derive(Debug)]
pub struct Unlocked {
    /// The vault.
    pub vault: Vault,
    /// Which step opened it.
    pub how: Opened,
}

/// The unlock chain (see the [module docs](self)), configured once and used
/// for any number of vault files.
///
/// ```
/// use tresor::{CreateOptions, Credential, Unlock, Vault};
///
/// let dir = tempfile::tempdir()?;
/// let key_file = dir.path().join("key");
/// assert!(tresor::unlock::create_key_file(&key_file)?);
/// let key = tresor::Given::key_file(&key_file)?;
/// let path = dir.path().join("vault.db");
/// drop(Vault::create(&path, key.credential(), &CreateOptions::default())?);
///
/// let opened = Unlock::new().key_file(Some(key_file.clone())).sessions(false).open(&path)?;
/// assert_eq!(opened.how.to_string(), format!("key file {}", key_file.display()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Unlock {
    key_file: Option<PathBuf>,
    sessions: bool,
    pin: Option<PinSource>,
    prompt: Option<PasswordSource>,
    checkpoint_on_close: bool,
}

impl Default for Unlock {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Unlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unlock")
            .field("key_file", &self.key_file)
            .field("sessions", &self.sessions)
            .field("pin", &self.pin.is_some())
            .field("prompt", &self.prompt.is_some())
            .finish()
    }
}

impl Unlock {
    /// Every step on, no callbacks: the PIN from `TRESOR_PKCS11_PIN`, no
    /// prompt.
    pub fn new() -> Self {
        Self {
            key_file: None,
            sessions: true,
            pin: None,
            prompt: None,
            checkpoint_on_close: true,
        }
    }

    /// A key file to try first (before `TRESOR_KEY_FILE`).
    pub fn key_file(mut self, path: Option<PathBuf>) -> Self {
        self.key_file = path;
        self
    }

    /// Whether an unlock session may open the vault (on by default; off
    /// when the caller is about to start one).
    pub fn sessions(mut self, on: bool) -> Self {
        self.sessions = on;
        self
    }

    /// How to get the PIN of a PKCS#11 token; replaces `TRESOR_PKCS11_PIN`
    /// (the callback may read it itself).
    pub fn on_pin(
        mut self,
        pin: impl FnMut(&str, &str) -> Result<Option<Zeroizing<String>>> + Send + 'static,
    ) -> Self {
        self.pin = Some(Box::new(pin));
        self
    }

    /// How to ask for the vault's password, the last step.
    pub fn on_prompt(
        mut self,
        prompt: impl FnMut(&Path) -> Result<Option<Zeroizing<String>>> + Send + 'static,
    ) -> Self {
        self.prompt = Some(Box::new(prompt));
        self
    }

    /// Whether closing the vault checkpoints its write-ahead log (on by
    /// default; a one-shot process turns it off and leaves the log for
    /// the next run, saving two fsyncs per command).
    pub fn checkpoint_on_close(mut self, on: bool) -> Self {
        self.checkpoint_on_close = on;
        self
    }

    /// The options vault files are opened with: the lock timeout from
    /// `TRESOR_LOCK_TIMEOUT` (an error when it is not a number of seconds).
    pub fn open_options(&self) -> Result<OpenOptions> {
        Ok(OpenOptions {
            lock_timeout: crate::lock_timeout()?,
            no_checkpoint_on_close: !self.checkpoint_on_close,
        })
    }

    /// Opens the vault at `path` through the chain.
    pub fn open(&mut self, path: &Path) -> Result<Unlocked> {
        let options = self.open_options()?;
        let mut locked = LockedVault::open(path, &options)?;
        if let Some(given) = Given::from_environment(self.key_file.as_deref())? {
            let source = given.source_text();
            let vault = match locked.unlock_as(given.credential(), &source) {
                Ok(vault) => vault,
                // A credential of a kind the vault has no slot for is not
                // wrong, it is beside the point: say so, rather than that
                // it failed. (Looked up only after a failure: a plain
                // unlock costs no extra query.)
                Err(Error::Auth { .. })
                    if !LockedVault::open(path, &options)?
                        .slot_kinds()?
                        .contains(&given.credential().kind()) =>
                {
                    return Err(Error::NoSuchSlot {
                        store: "vault".into(),
                        kind: given.credential().kind().as_str().into(),
                        given: source,
                    });
                }
                Err(e) => return Err(e),
            };
            return Ok(Unlocked {
                vault,
                how: given.opened,
            });
        }
        // Keychain slots: an entry that cannot be read only matters when
        // nothing else can unlock.
        let (found, mut errors) = keychain_credentials(&locked)?;
        if !found.is_empty() {
            let how = Opened::Keychain;
            return Ok(Unlocked {
                vault: locked.unlock_any(&found)?,
                how,
            });
        }
        if self.sessions {
            let vault_id = locked.id();
            if let Some(session) = crate::session::find(&vault_id) {
                let how = Opened::Session(session.info.backend.as_str());
                match locked.unlock_with_master(session.master, &how.to_string()) {
                    Ok(vault) => return Ok(Unlocked { vault, how }),
                    Err(Error::Auth { .. }) => {
                        // The vault was rekeyed since: the session is useless.
                        crate::session::discard(&vault_id);
                        locked = LockedVault::open(path, &options)?;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        // PKCS#11 slots: the token's PIN from the callback or the
        // environment.
        let (found, pkcs11_errors, skipped) = self.pkcs11_step(&locked, true)?;
        if !found.is_empty() {
            return Ok(Unlocked {
                vault: locked.unlock_any(&found)?,
                how: Opened::Pkcs11,
            });
        }
        // A wrong or locked PIN is the answer: no password prompt after it.
        if let Some(i) = pkcs11_errors
            .iter()
            .position(|e| matches!(e, Error::Auth { .. } | Error::Locked { .. }))
        {
            return Err(pkcs11_errors.into_iter().nth(i).expect("index found above"));
        }
        errors.extend(pkcs11_errors);
        errors.extend(skipped);
        let password_slot = locked.slot_kinds()?.contains(&SlotKind::Password);
        if password_slot
            && let Some(prompt) = &mut self.prompt
            && let Some(pw) = prompt(path)?
        {
            let how = Opened::Prompt;
            let vault = locked.unlock_as(&Credential::password(pw), &how.to_string())?;
            return Ok(Unlocked { vault, how });
        }
        Err(match errors.len() {
            0 => Error::NoCredential {
                store: "vault".into(),
                password_slot,
            },
            1 => errors.pop().expect("one error"),
            _ => Error::Unavailable {
                store: "key slots".into(),
                reason: errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        })
    }

    /// Which step would open the vault at `path` now, found without
    /// opening it: the first step of the chain that has a credential to
    /// try, in the chain's order, with no key derived (no Argon2id) and no
    /// prompt or PIN callback called. The credential is not checked: a
    /// wrong key file shows as the step that would be tried (and fail).
    /// `Ok(None)` when no step applies; [`Error::NoSuchSlot`] when the
    /// caller or the environment gives a credential of a kind the vault
    /// has no slot for, as [`Unlock::open`] would say.
    ///
    /// For `tresor status` and the like: "how would this vault unlock?".
    pub fn probe(&self, path: &Path) -> Result<Option<Opened>> {
        let locked = LockedVault::open(path, &self.open_options()?)?;
        let kinds = locked.slot_kinds()?;
        if let Some(given) = Given::from_environment(self.key_file.as_deref())? {
            let kind = given.credential().kind();
            if !kinds.contains(&kind) {
                return Err(Error::NoSuchSlot {
                    store: "vault".into(),
                    kind: kind.as_str().into(),
                    given: given.source_text(),
                });
            }
            return Ok(Some(given.opened));
        }
        let (found, _) = keychain_credentials(&locked)?;
        if !found.is_empty() {
            return Ok(Some(Opened::Keychain));
        }
        if self.sessions
            && let Some(info) = crate::session::status(&locked.id()).into_iter().next()
        {
            return Ok(Some(Opened::Session(info.backend.as_str())));
        }
        if kinds.contains(&SlotKind::Pkcs11)
            && (self.pin.is_some() || pkcs11_pin_from_env().is_some())
        {
            return Ok(Some(Opened::Pkcs11));
        }
        if kinds.contains(&SlotKind::Password) && self.prompt.is_some() {
            return Ok(Some(Opened::Prompt));
        }
        Ok(None)
    }

    /// The credentials of every PKCS#11 slot of `locked` that opens with
    /// this chain's PINs (a master-key rotation rewraps them all), and the
    /// errors of the others (each names module and token, never a PIN).
    pub fn pkcs11_credentials(
        &mut self,
        locked: &LockedVault,
    ) -> Result<(Vec<Credential>, Vec<Error>)> {
        let (found, mut errors, skipped) = self.pkcs11_step(locked, false)?;
        errors.extend(skipped);
        Ok((found, errors))
    }

    /// The PKCS#11 step: the credentials of the slots that opened (with
    /// `first_only`, at most one), the errors of the tokens that were
    /// tried, and one error per token that got no PIN (reported only when
    /// nothing else unlocks).
    #[allow(clippy::type_complexity)]
    fn pkcs11_step(
        &mut self,
        locked: &LockedVault,
        first_only: bool,
    ) -> Result<(Vec<Credential>, Vec<Error>, Vec<Error>)> {
        if locked.pkcs11_slots()?.is_empty() {
            return Ok((Vec::new(), Vec::new(), Vec::new()));
        }
        let policy = crate::user_module_policy();
        let mut skipped = Vec::new();
        let env_pin = if self.pin.is_none() {
            pkcs11_pin_from_env()
        } else {
            None
        };
        let callback = &mut self.pin;
        let (found, errors) = pkcs11_credentials(locked, &policy, first_only, |module, token| {
            let pin = match callback {
                Some(ask) => ask(module, token)?,
                None => env_pin.clone(),
            };
            if pin.is_none() {
                skipped.push(Error::Locked {
                    store: format!("pkcs11 token '{token}' (module {module})"),
                    hint: format!("no PIN was given; set {PKCS11_PIN_ENV}"),
                });
            }
            Ok(pin)
        })?;
        Ok((found, errors, skipped))
    }
}
