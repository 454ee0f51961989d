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
                    "not loaded: the path is not one you allowed{unread} and not a root-owned \
                     system library ({why}); a vault file names its module unauthenticated, so \
                     tresor loads only modules you chose. If you trust {module}, add it to \
                     [pkcs11] modules in {config} or run tresor keyslot add --pkcs11 --module \
                     {module} --token LABEL --key-label L"
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
mod imp {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::{Mutex, OnceLock};

    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::error::{Error as CkError, RvError};
    use cryptoki::mechanism::Mechanism;
    use cryptoki::mechanism::aead::GcmParams;
    use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
    use cryptoki::session::{Session, UserType};
    use cryptoki::types::AuthPin;
    use zeroize::Zeroizing;

    use tresor_core::{Error, Result};
    use tresor_crypto::slot::{Credential, Pkcs11Mechanism, Pkcs11Params, pkcs11_wrap_aad};

    use super::{GCM_IV_LEN, GCM_TAG_LEN, ModulePolicy, NewSlot, TokenKey};

    /// Loaded and initialised modules, by resolved path; never finalised (the
    /// process's exit does that), so no call finalises a module another is using.
    fn modules() -> &'static Mutex<HashMap<PathBuf, Pkcs11>> {
        static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
        MODULES.get_or_init(Default::default)
    }

    fn unavailable(key: &TokenKey<'_>, reason: impl Into<String>) -> Error {
        Error::Unavailable {
            store: key.store_name(),
            reason: reason.into(),
        }
    }

    /// Maps a module's error: PIN problems to Auth / Locked, the rest to
    /// Unavailable. cryptoki's errors carry return codes, never the PIN.
    fn ck(key: &TokenKey<'_>, what: &str, e: CkError) -> Error {
        match &e {
            CkError::Pkcs11(
                RvError::PinIncorrect | RvError::PinLenRange | RvError::PinInvalid,
                _,
            ) => Error::Auth {
                store: key.store_name(),
                reason: "wrong PIN (TRESOR_PKCS11_PIN or the prompt)".into(),
            },
            CkError::Pkcs11(RvError::PinLocked, _) => Error::Locked {
                store: key.store_name(),
                hint: "the token's user PIN is locked after too many wrong PINs; \
                       its security officer must reset it"
                    .into(),
            },
            CkError::Pkcs11(rv, function) => {
                unavailable(key, format!("{what}: {function} returned {}", rv_name(rv)))
            }
            other => unavailable(key, format!("{what}: {other}")),
        }
    }

    /// The return code's short name (`CKR_…` style), not cryptoki's long prose.
    fn rv_name(rv: &RvError) -> String {
        format!("{rv:?}")
    }

    /// Runs `f` in a session on `key.token`, logged in with `pin`, holding
    /// the module for the whole sequence. Returns `f`'s result and the
    /// token's serial number.
    fn with_session<T>(
        key: &TokenKey<'_>,
        pin: &str,
        read_write: bool,
        policy: &ModulePolicy,
        f: impl FnOnce(&Session) -> Result<T>,
    ) -> Result<(T, String)> {
        // Checked before anything is loaded; the resolved path is loaded,
        // so a symlink changed after the check cannot redirect the load.
        let (resolved, _) = policy.check(key.module).map_err(|e| match e {
            Error::Unavailable { reason, .. } => unavailable(key, reason),
            other => other,
        })?;
        let mut modules = modules().lock().unwrap_or_else(|p| p.into_inner());
        if !modules.contains_key(&resolved) {
            let ctx = Pkcs11::new(&resolved)
                .map_err(|e| unavailable(key, format!("the module could not be loaded: {e}")))?;
            match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
                Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
                Err(e) => return Err(ck(key, "the module did not initialise", e)),
            }
            modules.insert(resolved.clone(), ctx);
        }
        let ctx = &modules[&resolved];
        let slots = ctx
            .get_slots_with_token()
            .map_err(|e| ck(key, "listing the module's tokens", e))?;
        let mut labels = Vec::new();
        let mut found = None;
        for slot in slots {
            let info = ctx
                .get_token_info(slot)
                .map_err(|e| ck(key, "reading token information", e))?;
            let label = info.label().trim_end().to_string();
            if label == key.token {
                found = Some((slot, info.serial_number().trim_end().to_string()));
                break;
            }
            labels.push(label);
        }
        let Some((slot, serial)) = found else {
            let seen = if labels.is_empty() {
                "the module has no token".to_string()
            } else {
                format!("the module's tokens are labelled {}", labels.join(", "))
            };
            return Err(unavailable(
                key,
                format!(
                    "no token labelled '{}' ({seen}); is the token plugged in?",
                    key.token
                ),
            ));
        };
        let session = if read_write {
            ctx.open_rw_session(slot)
        } else {
            ctx.open_ro_session(slot)
        }
        .map_err(|e| ck(key, "opening a session", e))?;
        let auth = AuthPin::from(pin);
        match session.login(UserType::User, Some(&auth)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(ck(key, "logging in", e)),
        }
        drop(auth);
        let result = f(&session);
        // Closing the last session logs out too; say so explicitly.
        let _ = session.logout();
        drop(session);
        result.map(|r| (r, serial))
    }

    fn find_keys(session: &Session, key: &TokenKey<'_>) -> Result<Vec<ObjectHandle>> {
        session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(key.key_label.as_bytes().to_vec()),
            ])
            .map_err(|e| ck(key, "looking for the key", e))
    }

    fn one_key(session: &Session, key: &TokenKey<'_>) -> Result<Option<ObjectHandle>> {
        match find_keys(session, key)?[..] {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(Error::KeyLabel {
                token: key.store_name(),
                label: key.key_label.to_string(),
                problem: "is not one key: several secret keys carry that label".into(),
            }),
        }
    }

    fn absent(key: &TokenKey<'_>) -> Error {
        unavailable(
            key,
            format!(
                "the token has no secret key labelled '{}' (deleted, or another token?)",
                key.key_label
            ),
        )
    }

    /// Checks an existing key is fit to wrap a slot; returns its CKA_ID.
    fn check_key(session: &Session, key: &TokenKey<'_>, handle: ObjectHandle) -> Result<Vec<u8>> {
        let attrs = session
            .get_attributes(
                handle,
                &[
                    AttributeType::KeyType,
                    AttributeType::ValueLen,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::Encrypt,
                    AttributeType::Decrypt,
                    AttributeType::Id,
                ],
            )
            .map_err(|e| ck(key, "reading the key's attributes", e))?;
        let mut aes = false;
        let mut len = 0u64;
        let (mut sensitive, mut extractable, mut enc, mut dec) = (false, true, false, false);
        let mut id = Vec::new();
        for a in attrs {
            match a {
                Attribute::KeyType(t) => aes = t == KeyType::AES,
                Attribute::ValueLen(l) => len = u64::from(l),
                Attribute::Sensitive(b) => sensitive = b,
                Attribute::Extractable(b) => extractable = b,
                Attribute::Encrypt(b) => enc = b,
                Attribute::Decrypt(b) => dec = b,
                Attribute::Id(i) => id = i,
                _ => {}
            }
        }
        let refuse = |why: &str| {
            Err(Error::KeyLabel {
                token: key.store_name(),
                label: key.key_label.to_string(),
                problem: why.to_string(),
            })
        };
        if !aes || len != 32 {
            return refuse("is not an AES-256 key");
        }
        if !sensitive || extractable {
            return refuse("can leave the token (it must be sensitive and not extractable)");
        }
        if !enc || !dec {
            return refuse("may not encrypt and decrypt");
        }
        Ok(id)
    }

    fn generate_key(session: &Session, key: &TokenKey<'_>) -> Result<(ObjectHandle, Vec<u8>)> {
        let mut id = vec![0u8; 16];
        tresor_crypto::random_bytes(&mut id);
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Label(key.key_label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        let handle = session
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(|e| ck(key, "generating an AES-256 key", e))?;
        Ok((handle, id))
    }

    pub fn new_slot(
        vault_id: &[u8; 16],
        key: TokenKey<'_>,
        pin: &str,
        policy: &ModulePolicy,
    ) -> Result<NewSlot> {
        let ((wrapped, key_id, created, bytes), serial) =
            with_session(&key, pin, true, policy, |s| {
                let (handle, key_id, created) = match one_key(s, &key)? {
                    Some(handle) => (handle, check_key(s, &key, handle)?, false),
                    None => {
                        let (handle, id) = generate_key(s, &key)?;
                        (handle, id, true)
                    }
                };
                let mut bytes = Zeroizing::new(vec![0u8; 32]);
                tresor_crypto::random_bytes(&mut bytes);
                let mut iv = [0u8; GCM_IV_LEN];
                tresor_crypto::random_bytes(&mut iv);
                let aad = pkcs11_wrap_aad(vault_id);
                let mut iv_param = iv;
                let params = GcmParams::new(&mut iv_param, &aad, (GCM_TAG_LEN as u64 * 8).into())
                    .map_err(|e| ck(&key, "AES-GCM parameters", e))?;
                let sealed = s
                    .encrypt(&Mechanism::AesGcm(params), handle, &bytes)
                    .map_err(|e| ck(&key, "encrypting the slot key", e))?;
                if sealed.len() != 32 + GCM_TAG_LEN {
                    return Err(unavailable(
                        &key,
                        "the module's AES-GCM output has an unexpected length",
                    ));
                }
                let mut wrapped = iv.to_vec();
                wrapped.extend_from_slice(&sealed);
                Ok((wrapped, key_id, created, bytes))
            })?;
        let params = Pkcs11Params {
            module: key.module.to_string(),
            token_label: key.token.to_string(),
            token_serial: serial,
            key_label: key.key_label.to_string(),
            key_id,
            mechanism: Pkcs11Mechanism::AesGcm,
            wrapped,
        };
        Ok(NewSlot {
            credential: Credential::pkcs11(params, bytes),
            key_created: created,
        })
    }

    pub fn unwrap(
        vault_id: &[u8; 16],
        slot_id: u32,
        key: TokenKey<'_>,
        params: &Pkcs11Params,
        pin: &str,
        policy: &ModulePolicy,
    ) -> Result<Credential> {
        let (bytes, _) = with_session(&key, pin, false, policy, |s| {
            let handle = one_key(s, &key)?.ok_or_else(|| absent(&key))?;
            let mut iv = [0u8; GCM_IV_LEN];
            iv.copy_from_slice(&params.wrapped[..GCM_IV_LEN]);
            let aad = pkcs11_wrap_aad(vault_id);
            let gcm = GcmParams::new(&mut iv, &aad, (GCM_TAG_LEN as u64 * 8).into())
                .map_err(|e| ck(&key, "AES-GCM parameters", e))?;
            match s.decrypt(
                &Mechanism::AesGcm(gcm),
                handle,
                &params.wrapped[GCM_IV_LEN..],
            ) {
                Ok(plain) => Ok(Zeroizing::new(plain)),
                // Another key under the same label, or altered bytes: the
                // slot does not open with this token. (SoftHSM2 reports a
                // failed GCM tag check as CKR_GENERAL_ERROR.)
                Err(CkError::Pkcs11(
                    RvError::EncryptedDataInvalid
                    | RvError::EncryptedDataLenRange
                    | RvError::GeneralError,
                    _,
                )) => Err(Error::Auth {
                    store: key.store_name(),
                    reason: format!(
                        "the key labelled '{}' does not open key slot {slot_id}",
                        key.key_label
                    ),
                }),
                Err(e) => Err(ck(&key, "decrypting the slot key", e)),
            }
        })?;
        if bytes.len() != 32 {
            return Err(Error::Integrity {
                store: "vault".into(),
                detail: format!(
                    "key slot {slot_id}: the token unwrapped a key of the wrong length"
                ),
            });
        }
        Ok(Credential::pkcs11(params.clone(), bytes))
    }

    pub fn key_exists(key: TokenKey<'_>, pin: &str, policy: &ModulePolicy) -> Result<bool> {
        with_session(&key, pin, false, policy, |s| {
            Ok(!find_keys(s, &key)?.is_empty())
        })
        .map(|(b, _)| b)
    }

    pub fn destroy_key(key: TokenKey<'_>, pin: &str, policy: &ModulePolicy) -> Result<bool> {
        with_session(&key, pin, true, policy, |s| {
            let keys = find_keys(s, &key)?;
            for handle in &keys {
                s.destroy_object(*handle)
                    .map_err(|e| ck(&key, "destroying the key", e))?;
            }
            Ok(!keys.is_empty())
        })
        .map(|(b, _)| b)
    }
}

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
mod tests {
    use super::*;

    fn params() -> Pkcs11Params {
        Pkcs11Params {
            module: "/nonexistent/libpkcs11-missing.so".into(),
            token_label: "tok".into(),
            token_serial: "1".into(),
            key_label: "k".into(),
            key_id: vec![],
            mechanism: Pkcs11Mechanism::AesGcm,
            wrapped: vec![0; GCM_IV_LEN + 32 + GCM_TAG_LEN],
        }
    }

    /// A module that cannot be loaded is Unavailable, naming module and token.
    #[test]
    fn missing_module_names_module_and_token() {
        let err = load(&[1; 16], 3, &params(), "123456", &ModulePolicy::default()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        assert!(text.contains("/nonexistent/libpkcs11-missing.so"), "{text}");
        assert!(text.contains("'tok'"), "{text}");
        assert!(!text.contains("123456"), "{text}");
    }

    /// A wrapped blob of the wrong length is an integrity error, before any
    /// module is touched.
    #[test]
    fn wrapped_bytes_of_the_wrong_length_are_refused() {
        let mut p = params();
        p.wrapped.pop();
        let err = load(&[1; 16], 3, &p, "x", &ModulePolicy::default()).unwrap_err();
        assert!(matches!(err, Error::Integrity { .. }), "{err:?}");
    }

    #[test]
    fn key_wrap_pad_is_reported_unsupported() {
        let mut p = params();
        p.mechanism = Pkcs11Mechanism::AesKeyWrapPad;
        let err = load(&[1; 16], 3, &p, "x", &ModulePolicy::default()).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    }

    #[test]
    fn module_path_must_exist() {
        let err = absolute_module_path("/nonexistent/module.so").unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.so");
        std::fs::write(&file, b"").unwrap();
        assert_eq!(
            absolute_module_path(file.to_str().unwrap()).unwrap(),
            file.display().to_string()
        );
    }

    /// A root-owned file in root-owned folders no one else may write (the
    /// system shell stands in for /usr/lib/softhsm/libsofthsm2.so).
    fn system_file() -> std::path::PathBuf {
        let sh = std::fs::canonicalize("/bin/sh").unwrap();
        system_library(&sh).unwrap_or_else(|e| panic!("{} should qualify: {e}", sh.display()));
        sh
    }

    /// A root-owned system library qualifies, by itself or through a
    /// symlink (the resolved path is what would be loaded); a file in a
    /// temporary folder does not, and the refusal names the path and both
    /// ways to allow it.
    #[test]
    fn only_system_libraries_pass_the_default_policy() {
        let sh = system_file();
        let policy = ModulePolicy::default();
        assert_eq!(
            policy.check(sh.to_str().unwrap()).unwrap(),
            (sh.clone(), ModuleTrust::SystemLibrary)
        );
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link.so");
        std::os::unix::fs::symlink(&sh, &link).unwrap();
        assert_eq!(
            policy.check(link.to_str().unwrap()).unwrap(),
            (sh.clone(), ModuleTrust::SystemLibrary)
        );

        let evil = dir.path().join("evil.so");
        std::fs::copy(&sh, &evil).unwrap();
        let module = evil.to_str().unwrap();
        let err = policy.check(module).unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        let text = err.to_string();
        for needle in [
            module,
            "[pkcs11] modules",
            "config.toml",
            "tresor keyslot add --pkcs11 --module",
            "not a root-owned system library",
        ] {
            assert!(text.contains(needle), "{needle:?} missing: {text}");
        }
        // The reason names the component that fails (the temporary folder,
        // or the copy itself when not running as root).
        assert!(
            text.contains("not root") || text.contains("writable by group or others"),
            "{text}"
        );

        // A relative path is refused whatever it names.
        let err = policy.check("bin/sh").unwrap_err();
        assert!(err.to_string().contains("relative path"), "{err}");
        // So is a path that does not exist.
        let err = policy.check("/nonexistent/p11.so").unwrap_err();
        assert!(err.to_string().contains("cannot be found"), "{err}");
    }

    /// A path the user listed is allowed (compared after resolving
    /// symlinks), but not when others may write the file.
    #[test]
    fn listed_modules_are_allowed_while_only_their_owner_can_write_them() {
        use std::os::unix::fs::PermissionsExt;
        let sh = system_file();
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("p11.so");
        std::fs::copy(&sh, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        let module = copy.to_str().unwrap();
        let config = dir.path().join("config.toml");

        let unlisted = ModulePolicy::new(vec![dir.path().join("other.so")], Some(config.clone()));
        let err = unlisted.check(module).unwrap_err().to_string();
        assert!(err.contains(&config.display().to_string()), "{err}");

        // Listed through a symlink to it: the same file.
        let link = dir.path().join("via-link.so");
        std::os::unix::fs::symlink(&copy, &link).unwrap();
        let listed = ModulePolicy::new(vec![link], Some(config.clone()));
        let resolved = std::fs::canonicalize(&copy).unwrap();
        assert_eq!(
            listed.check(module).unwrap(),
            (resolved.clone(), ModuleTrust::Listed)
        );
        assert_eq!(
            ModulePolicy::default()
                .allowing(&copy)
                .check(module)
                .unwrap(),
            (resolved, ModuleTrust::Listed)
        );

        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o775)).unwrap();
        let err = listed.check(module).unwrap_err().to_string();
        assert!(
            err.contains("writable by group or others") && err.contains(module),
            "{err}"
        );
    }

    /// A refusal says when the user's list could not be read.
    #[test]
    fn refusals_mention_an_unreadable_list() {
        let dir = tempfile::tempdir().unwrap();
        let evil = dir.path().join("evil.so");
        std::fs::write(&evil, b"").unwrap();
        let policy = ModulePolicy::default().with_problem("config.toml is writable by others");
        let err = policy
            .check(evil.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("was not read: config.toml is writable by others"),
            "{err}"
        );
    }
}
