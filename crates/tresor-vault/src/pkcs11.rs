//! PKCS#11 key slots: the slot key's 32 random bytes are encrypted by a
//! non-extractable, sensitive AES-256 key that never leaves a PKCS#11 token
//! (a hardware module, or SoftHSM2), through `cryptoki` (cargo feature
//! `pkcs11`).
//!
//! A slot stores the module path, the token's label and serial, the key's
//! label and id, the mechanism and the wrapped bytes
//! ([`Pkcs11Params`]); the slot key is
//! HKDF-SHA256(bytes, salt = vault id, info = `tresor v1 pkcs11 slot`)
//! (VAULT-FORMAT.md, "Key slots"). The token wraps with `CKM_AES_GCM`: a
//! 12-byte random IV, a 128-bit tag and associated data
//! `"tresor v1 pkcs11 wrap" ‖ vault id`.
//!
//! The module path in a slot is not authenticated (whoever can write the
//! vault file can change it), and loading a module runs its code. So a
//! module is loaded only when the caller's [`ModulePolicy`] allows it: a path
//! the user listed outside the vault (the `[pkcs11] modules` list of the
//! user's own config, which the `tresor` crate reads), or a root-owned
//! system library whose every path component, after resolving symlinks, is
//! owned by root and not writable by group or others. The resolved path is
//! the one loaded.
//!
//! Opening a slot logs in to the token as its user with the PIN. The PIN is
//! handed to the module and dropped; it is never stored, logged or put in an
//! error. A missing module or token is [`Error::Unavailable`] naming both, a
//! wrong PIN [`Error::Auth`], a locked PIN [`Error::Locked`].
//!
//! Each module is loaded and initialised once per process and every call
//! holds it for the whole login–use–logout sequence: PKCS#11 logins are per
//! application, so two threads must not log in and out under each other.

use tresor_core::{Error, Result};
use tresor_crypto::slot::{Credential, Pkcs11Mechanism, Pkcs11Params};

/// Whether this build can talk to a PKCS#11 module at all.
pub const SUPPORTED: bool = cfg!(feature = "pkcs11");

/// Length of the AES-GCM IV tresor asks the token to use.
pub const GCM_IV_LEN: usize = 12;
/// Length of the AES-GCM tag, in bytes.
pub const GCM_TAG_LEN: usize = 16;

/// Where a token key lives: the module, the token's label, the key's label.
#[derive(Clone, Copy, Debug)]
pub struct TokenKey<'a> {
    /// The module (shared library) path.
    pub module: &'a str,
    /// The token's label.
    pub token: &'a str,
    /// The AES key object's label.
    pub key_label: &'a str,
}

impl TokenKey<'_> {
    /// The name errors use: `pkcs11 token 'LABEL' (module PATH)`.
    pub fn store_name(&self) -> String {
        format!("pkcs11 token '{}' (module {})", self.token, self.module)
    }
}

/// How the reason of [`ModulePolicy::check`]'s refusal of a module the user
/// did not allow begins (callers that add their own remedy match on it).
pub const MODULE_NOT_ALLOWED: &str = "not loaded: the path is not one you allowed";

/// Which module paths may be loaded (see the module docs): the paths the
/// user allowed outside the vault, and root-owned system libraries.
/// [`ModulePolicy::default`] allows system libraries only.
#[derive(Clone, Debug, Default)]
pub struct ModulePolicy {
    allowed: Vec<std::path::PathBuf>,
    source: Option<std::path::PathBuf>,
    problem: Option<String>,
}

/// Why a module path may be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleTrust {
    /// The user listed it (the `[pkcs11] modules` list).
    Listed,
    /// It is a root-owned system library.
    SystemLibrary,
}

impl ModulePolicy {
    /// A policy allowing the paths in `allowed` (as the user wrote them;
    /// compared after resolving symlinks) and system libraries. `source`
    /// names where the list came from (the user's config file), for
    /// messages.
    pub fn new(allowed: Vec<std::path::PathBuf>, source: Option<std::path::PathBuf>) -> Self {
        Self {
            allowed,
            source,
            problem: None,
        }
    }

    /// This policy, noting that the user's list could not be read and why
    /// (the refusals say so).
    pub fn with_problem(mut self, problem: impl Into<String>) -> Self {
        self.problem = Some(problem.into());
        self
    }

    /// This policy, also allowing `module` (for `keyslot add --pkcs11
    /// --module PATH`, where the user names it).
    pub fn allowing(mut self, module: impl Into<std::path::PathBuf>) -> Self {
        self.allowed.push(module.into());
        self
    }

    /// The paths the user allowed, as written.
    pub fn allowed(&self) -> &[std::path::PathBuf] {
        &self.allowed
    }

    /// Whether `module` may be loaded, and as which file: the resolved path
    /// (symlinks followed) and why it is trusted. A refusal is
    /// [`Error::Unavailable`] naming the path and how to allow it.
    pub fn check(&self, module: &str) -> Result<(std::path::PathBuf, ModuleTrust)> {
        let path = std::path::Path::new(module);
        let refuse = |reason: String| Error::Unavailable {
            store: format!("pkcs11 module {module}"),
            reason,
        };
        if !path.is_absolute() {
            return Err(refuse(
                "the vault names a module by a relative path; tresor loads modules only by \
                 absolute path"
                    .into(),
            ));
        }
        let resolved = std::fs::canonicalize(path)
            .map_err(|e| refuse(format!("the module cannot be found: {e}")))?;
        let listed = self
            .allowed
            .iter()
            .any(|a| std::fs::canonicalize(a).is_ok_and(|c| c == resolved));
        if listed {
            user_module_fit(&resolved).map_err(|why| refuse(format!("it is listed, but {why}")))?;
            return Ok((resolved, ModuleTrust::Listed));
        }
        match system_library(&resolved) {
            Ok(()) => Ok((resolved, ModuleTrust::SystemLibrary)),
            Err(why) => {
                let config = self
                    .source
                    .as_ref()
                    .map_or("~/.config/tresor/config.toml".into(), |p| {
                        p.display().to_string()
                    });
                let unread = self
                    .problem
                    .as_ref()
                    .map(|p| format!(" (the list there was not read: {p})"))
                    .unwrap_or_default();
                Err(refuse(format!(
                    "{MODULE_NOT_ALLOWED}{unread} and not a root-owned system library ({why}); \
                     a vault file names its module unauthenticated, so tresor loads only modules \
                     you chose. If you trust {module}, add it to [pkcs11] modules in {config}"
                )))
            }
        }
    }
}

/// Whether the resolved path `path` is a root-owned system library: a
/// regular file, and it and every folder above it owned by root and not
/// writable by group or others. `Err` says which component fails.
pub fn system_library(path: &std::path::Path) -> std::result::Result<(), String> {
    use tresor_core::perm::{Closed, Owners, check};
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.file_type().is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    for component in path.ancestors() {
        let meta = std::fs::symlink_metadata(component)
            .map_err(|e| format!("{}: {e}", component.display()))?;
        check(&meta, Owners::Root, Closed::ToWriters)
            .map_err(|why| format!("{} {why}", component.display()))?;
    }
    Ok(())
}

/// Whether a module the user listed is still fit to load: a regular file
/// owned by the user or root, not writable by group or others (else another
/// account could put its code there).
fn user_module_fit(path: &std::path::Path) -> std::result::Result<(), String> {
    use tresor_core::perm::{Closed, Distrust, Owners, check};
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    match check(&meta, Owners::MeOrRoot, Closed::ToWriters) {
        Ok(()) => Ok(()),
        Err(why @ Distrust::Owner { .. }) => Err(format!("{} {why}", path.display())),
        Err(why) => Err(format!("{} {why}; chmod go-w it", path.display())),
    }
}

/// What [`new_slot`] made.
pub struct NewSlot {
    /// The credential a new slot is added with ([`Credential::pkcs11`]:
    /// the parameters to store and the 32 bytes).
    pub credential: Credential,
    /// Whether the token had no key with that label and one was generated.
    pub key_created: bool,
}

/// Prepares a new PKCS#11 slot of vault `vault_id`: logs in to the token
/// with `pin`, finds the AES key labelled `key.key_label` (or generates one,
/// non-extractable, sensitive and kept on the token, when there is none),
/// and has the token encrypt 32 fresh random bytes under it.
///
/// An existing key must be an AES-256 secret key that is sensitive, not
/// extractable and allowed to encrypt and decrypt; anything else is refused.
///
/// The module is loaded only when `policy` allows it.
pub fn new_slot(
    vault_id: &[u8; 16],
    key: TokenKey<'_>,
    pin: &str,
    policy: &ModulePolicy,
) -> Result<NewSlot> {
    imp::new_slot(vault_id, key, pin, policy)
}

/// Opens slot `slot_id`'s wrapped bytes inside the token: the credential
/// that opens the slot. The module the slot names is loaded only when
/// `policy` allows it (else [`Error::Unavailable`] naming the path and how
/// to allow it).
pub fn load(
    vault_id: &[u8; 16],
    slot_id: u32,
    params: &Pkcs11Params,
    pin: &str,
    policy: &ModulePolicy,
) -> Result<Credential> {
    let key = TokenKey {
        module: &params.module,
        token: &params.token_label,
        key_label: &params.key_label,
    };
    match params.mechanism {
        Pkcs11Mechanism::AesGcm => {}
        other => {
            return Err(Error::Unsupported {
                store: key.store_name(),
                operation: match other {
                    Pkcs11Mechanism::AesKeyWrapPad => "the aes-key-wrap-pad mechanism",
                    Pkcs11Mechanism::AesGcm => unreachable!("handled above"),
                },
            });
        }
    }
    if params.wrapped.len() != GCM_IV_LEN + 32 + GCM_TAG_LEN {
        return Err(Error::Integrity {
            store: "vault".into(),
            detail: format!("key slot {slot_id}: the PKCS#11 wrapped key has the wrong length"),
        });
    }
    imp::unwrap(vault_id, slot_id, key, params, pin, policy)
}

/// Whether the token holds a key labelled `key.key_label` (logs in with
/// `pin`; the module loaded only when `policy` allows it).
pub fn key_exists(key: TokenKey<'_>, pin: &str, policy: &ModulePolicy) -> Result<bool> {
    imp::key_exists(key, pin, policy)
}

/// Destroys the token's key labelled `key.key_label`. Any slot it wraps
/// can no longer be opened: tresor never calls this itself (a key may
/// serve several slots and vaults); it is for tests and tooling.
pub fn destroy_key(key: TokenKey<'_>, pin: &str, policy: &ModulePolicy) -> Result<bool> {
    imp::destroy_key(key, pin, policy)
}

/// The absolute form of a module path given on the command line, so a slot
/// made in one folder opens from any other.
pub fn absolute_module_path(module: &str) -> Result<String> {
    let path = std::path::Path::new(module);
    if !path.is_file() {
        return Err(Error::Unavailable {
            store: format!("pkcs11 module {module}"),
            reason: "no such file (give the module's path, e.g. /usr/lib/softhsm/libsofthsm2.so)"
                .into(),
        });
    }
    std::path::absolute(path)
        .map(|p| p.display().to_string())
        .map_err(|source| Error::Io {
            store: "pkcs11".into(),
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(feature = "pkcs11")]
mod token;
#[cfg(feature = "pkcs11")]
use token as imp;

#[cfg(not(feature = "pkcs11"))]
mod imp {
    use tresor_core::{Error, Result};
    use tresor_crypto::slot::{Credential, Pkcs11Params};

    use super::{ModulePolicy, NewSlot, TokenKey};

    fn no(key: &TokenKey<'_>) -> Error {
        Error::Unavailable {
            store: key.store_name(),
            reason: "this build of tresor has no PKCS#11 support (cargo feature `pkcs11`)".into(),
        }
    }

    pub fn new_slot(_: &[u8; 16], key: TokenKey<'_>, _: &str, _: &ModulePolicy) -> Result<NewSlot> {
        Err(no(&key))
    }

    pub fn unwrap(
        _: &[u8; 16],
        _: u32,
        key: TokenKey<'_>,
        _: &Pkcs11Params,
        _: &str,
        _: &ModulePolicy,
    ) -> Result<Credential> {
        Err(no(&key))
    }

    pub fn key_exists(key: TokenKey<'_>, _: &str, _: &ModulePolicy) -> Result<bool> {
        Err(no(&key))
    }

    pub fn destroy_key(key: TokenKey<'_>, _: &str, _: &ModulePolicy) -> Result<bool> {
        Err(no(&key))
    }
}

#[cfg(test)]
mod tests;
