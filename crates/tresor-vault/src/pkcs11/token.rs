//! The PKCS#11 side of a slot (cargo feature `pkcs11`): the module loaded
//! once per process, sessions logged in with the PIN, the token's AES key
//! found, checked or made, and the slot's bytes wrapped and unwrapped by it.

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
        CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange | RvError::PinInvalid, _) => {
            Error::Auth {
                store: key.store_name(),
                reason: "wrong PIN (TRESOR_PKCS11_PIN or the prompt)".into(),
            }
        }
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
    let ((wrapped, key_id, created, bytes), serial) = with_session(&key, pin, true, policy, |s| {
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
            detail: format!("key slot {slot_id}: the token unwrapped a key of the wrong length"),
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
