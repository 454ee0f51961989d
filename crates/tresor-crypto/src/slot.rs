//! Key slots: each wraps the master key under a key derived from one
//! credential (password, key file, recovery key, OS keychain entry, PKCS#11
//! token key). Any slot unlocks the vault.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::aead::{DecryptError, open, seal};
use crate::error::CryptoError;
use crate::keys::{KEY_LEN, Key, MasterKey, hkdf, random_bytes};

/// Prefix of a key slot's associated data.
pub const KEYSLOT_AAD: &[u8] = b"tresor v1 keyslot";
/// HKDF info of key-file (and `TRESOR_KEY`) slot keys.
pub const KEY_FILE_INFO: &[u8] = b"tresor v1 key-file slot";
/// HKDF info of recovery-key slot keys.
pub const RECOVERY_INFO: &[u8] = b"tresor v1 recovery slot";
/// HKDF info of OS-keychain slot keys.
pub const KEYCHAIN_INFO: &[u8] = b"tresor v1 keychain slot";
/// HKDF info of PKCS#11 slot keys.
pub const PKCS11_INFO: &[u8] = b"tresor v1 pkcs11 slot";
/// Prefix of the associated data of the AES-GCM encryption a PKCS#11 token
/// does of a slot's 32 random bytes: `"tresor v1 pkcs11 wrap" ‖ vault_id`.
pub const PKCS11_WRAP_AAD: &[u8] = b"tresor v1 pkcs11 wrap";
/// Bytes of key material a key file holds: 32 random bytes.
pub const KEY_FILE_BYTES: usize = KEY_LEN;
/// Length of a key file's text without its newline: the padded standard
/// base64 of [`KEY_FILE_BYTES`] bytes.
pub const KEY_FILE_TEXT_LEN: usize = 44;

/// The kinds of key slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[repr(u8)]
pub enum SlotKind {
    /// A password through Argon2id.
    Password = 1,
    /// A key file, or the same text in `TRESOR_KEY`.
    KeyFile = 2,
    /// The recovery key shown once at `init`.
    Recovery = 3,
    /// 32 random bytes kept in the OS keychain (Secret Service or keyutils).
    Keychain = 4,
    /// 32 random bytes wrapped by a non-extractable AES-256 key in a PKCS#11 token.
    Pkcs11 = 5,
}

impl SlotKind {
    /// The kind's name as stored in the `keyslots.kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotKind::Password => "password",
            SlotKind::KeyFile => "key-file",
            SlotKind::Recovery => "recovery",
            SlotKind::Keychain => "keychain",
            SlotKind::Pkcs11 => "pkcs11",
        }
    }

    /// Parses a stored kind name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "password" => Some(SlotKind::Password),
            "key-file" => Some(SlotKind::KeyFile),
            "recovery" => Some(SlotKind::Recovery),
            "keychain" => Some(SlotKind::Keychain),
            "pkcs11" => Some(SlotKind::Pkcs11),
            _ => None,
        }
    }
}

/// Argon2id parameters of a password slot, stored with the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
    /// Random salt.
    pub salt: [u8; 16],
}

impl PasswordParams {
    /// The default: 64 MiB, 3 passes, 4 lanes, a fresh salt.
    pub fn new_default() -> Self {
        Self::new(64 * 1024, 3, 4).expect("the defaults are valid")
    }

    /// Chosen costs with a fresh salt. Refuses costs below 8 MiB or 1 pass.
    pub fn new(m_kib: u32, t: u32, p: u32) -> Result<Self, CryptoError> {
        if m_kib < 8 * 1024 {
            return Err(CryptoError::KdfMemory(m_kib));
        }
        if t == 0 || p == 0 || p > 64 {
            return Err(CryptoError::KdfCosts);
        }
        let mut salt = [0u8; 16];
        random_bytes(&mut salt);
        Ok(Self { m_kib, t, p, salt })
    }

    /// The same costs with a fresh salt.
    pub fn resalted(&self) -> Self {
        let mut next = *self;
        random_bytes(&mut next.salt);
        next
    }
}

/// Where a keychain slot's key lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeychainBackend {
    /// The freedesktop Secret Service on the D-Bus session bus (gnome-keyring, KWallet).
    SecretService,
    /// The Linux kernel key retention service (keyutils).
    Keyutils,
}

impl KeychainBackend {
    /// The backend's name: `secret-service` or `keyutils`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeychainBackend::SecretService => "secret-service",
            KeychainBackend::Keyutils => "keyutils",
        }
    }

    /// Parses a backend name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "secret-service" => Some(KeychainBackend::SecretService),
            "keyutils" => Some(KeychainBackend::Keyutils),
            _ => None,
        }
    }
}

/// How a PKCS#11 token wraps a slot's 32 random bytes. New mechanisms are
/// only appended (the variant index is stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pkcs11Mechanism {
    /// `CKM_AES_GCM`: 12-byte random IV, 128-bit tag, associated data
    /// [`PKCS11_WRAP_AAD`] ‖ vault id; stored as IV ‖ ciphertext ‖ tag.
    AesGcm,
    /// `CKM_AES_KEY_WRAP_PAD` (RFC 5649): reserved for modules without
    /// AES-GCM; tresor does not make such slots yet.
    AesKeyWrapPad,
}

impl Pkcs11Mechanism {
    /// The mechanism's name: `aes-gcm` or `aes-key-wrap-pad`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pkcs11Mechanism::AesGcm => "aes-gcm",
            Pkcs11Mechanism::AesKeyWrapPad => "aes-key-wrap-pad",
        }
    }
}

/// Where a PKCS#11 slot's key lives and its 32 random bytes as the token
/// wrapped them. Nothing here is secret: the wrapped bytes open only inside
/// the token, after a login with its PIN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pkcs11Params {
    /// The PKCS#11 module (shared library) path, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: String,
    /// The token's label (`CKA_LABEL` of the token, trailing spaces removed).
    pub token_label: String,
    /// The token's serial number when the slot was made (for messages; the
    /// token is found by label).
    pub token_serial: String,
    /// The label (`CKA_LABEL`) of the AES-256 secret key object.
    pub key_label: String,
    /// The key object's `CKA_ID` (tresor sets 16 random bytes on keys it makes).
    #[serde(with = "serde_bytes")]
    pub key_id: Vec<u8>,
    /// How the token wrapped the bytes.
    pub mechanism: Pkcs11Mechanism,
    /// The wrapped 32 bytes (for AES-GCM: IV (12) ‖ ciphertext (32) ‖ tag (16)).
    #[serde(with = "serde_bytes")]
    pub wrapped: Vec<u8>,
}

/// Parameters stored with a slot, by kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotParams {
    /// Argon2id costs and salt.
    Password(PasswordParams),
    /// Nothing: the key file carries its entropy.
    KeyFile,
    /// Nothing: the recovery key carries its entropy.
    Recovery,
    /// The keychain holding the slot's 32 random bytes.
    Keychain {
        /// Which keychain.
        backend: KeychainBackend,
    },
    /// The token key and the wrapped slot bytes.
    Pkcs11(Pkcs11Params),
}

impl SlotParams {
    /// The kind these parameters belong to.
    pub fn kind(&self) -> SlotKind {
        match self {
            SlotParams::Password(_) => SlotKind::Password,
            SlotParams::KeyFile => SlotKind::KeyFile,
            SlotParams::Recovery => SlotKind::Recovery,
            SlotParams::Keychain { .. } => SlotKind::Keychain,
            SlotParams::Pkcs11(_) => SlotKind::Pkcs11,
        }
    }
}

/// A credential that may open a slot. Its secret is reachable only through
/// the `expose_*` accessors.
pub struct Credential(Inner);

enum Inner {
    /// A password.
    Password(Zeroizing<String>),
    /// Key material from a key file or `TRESOR_KEY`.
    KeyMaterial(Zeroizing<Vec<u8>>),
    /// A recovery key's 32 bytes.
    Recovery(Zeroizing<Vec<u8>>),
    /// The 32 bytes read from (or made for) a keychain entry, and its backend.
    Keychain(KeychainBackend, Zeroizing<Vec<u8>>),
    /// The 32 bytes a PKCS#11 token unwrapped (or made, for a new slot), with
    /// the parameters a new slot stores.
    Pkcs11(Box<Pkcs11Params>, Zeroizing<Vec<u8>>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Inner::Password(_) => "Credential::password([redacted])",
            Inner::KeyMaterial(_) => "Credential::KeyMaterial([redacted])",
            Inner::Recovery(_) => "Credential::Recovery([redacted])",
            Inner::Keychain(..) => "Credential::Keychain([redacted])",
            Inner::Pkcs11(..) => "Credential::Pkcs11([redacted])",
        })
    }
}

impl Credential {
    /// A password, for a password slot.
    pub fn password(password: Zeroizing<String>) -> Self {
        Self(Inner::Password(password))
    }

    /// The 32 bytes of a keychain entry (read, or made for a new slot).
    pub fn keychain(backend: KeychainBackend, bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(Inner::Keychain(backend, bytes))
    }

    /// The 32 bytes a PKCS#11 token unwrapped (or made, for a new slot), with
    /// the parameters a new slot stores.
    pub fn pkcs11(params: Pkcs11Params, bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(Inner::Pkcs11(Box::new(params), bytes))
    }

    /// The slot kind this credential opens.
    pub fn kind(&self) -> SlotKind {
        match self.0 {
            Inner::Password(_) => SlotKind::Password,
            Inner::KeyMaterial(_) => SlotKind::KeyFile,
            Inner::Recovery(_) => SlotKind::Recovery,
            Inner::Keychain(..) => SlotKind::Keychain,
            Inner::Pkcs11(..) => SlotKind::Pkcs11,
        }
    }

    /// The keychain backend of a keychain credential.
    pub fn keychain_backend(&self) -> Option<KeychainBackend> {
        match self.0 {
            Inner::Keychain(backend, _) => Some(backend),
            _ => None,
        }
    }

    /// The token parameters of a PKCS#11 credential (nothing secret).
    pub fn pkcs11_params(&self) -> Option<&Pkcs11Params> {
        match &self.0 {
            Inner::Pkcs11(params, _) => Some(params),
            _ => None,
        }
    }

    /// The password of a password credential.
    pub fn expose_password(&self) -> Option<&str> {
        match &self.0 {
            Inner::Password(pw) => Some(pw),
            _ => None,
        }
    }

    /// The raw bytes of every kind but a password: key material, a recovery
    /// key's bytes, a keychain entry's, a token's.
    pub fn expose_bytes(&self) -> Option<&[u8]> {
        match &self.0 {
            Inner::Password(_) => None,
            Inner::KeyMaterial(m) | Inner::Recovery(m) => Some(m),
            Inner::Keychain(_, m) | Inner::Pkcs11(_, m) => Some(m),
        }
    }

    /// The parameters a new slot for this credential stores; a password
    /// slot gets `password`'s costs with a fresh salt.
    pub fn slot_params(&self, password: &PasswordParams) -> SlotParams {
        match &self.0 {
            Inner::Password(_) => SlotParams::Password(password.resalted()),
            Inner::KeyMaterial(_) => SlotParams::KeyFile,
            Inner::Recovery(_) => SlotParams::Recovery,
            Inner::Keychain(backend, _) => SlotParams::Keychain { backend: *backend },
            Inner::Pkcs11(params, _) => SlotParams::Pkcs11((**params).clone()),
        }
    }

    /// Key material from the text of a key file or `TRESOR_KEY`, in the
    /// one documented format: the padded standard base64 of 32 bytes (44
    /// characters), optionally followed by one newline (`\n` or `\r\n`), as
    /// [`new_key_file_text`] writes it. Anything else is refused: in
    /// particular a password, which belongs in a password slot where Argon2id
    /// stretches it. The error never contains the text.
    pub fn key_material(text: &[u8]) -> Result<Self, CryptoError> {
        let body = match text {
            [rest @ .., b'\r', b'\n'] | [rest @ .., b'\n'] => rest,
            _ => text,
        };
        if body.len() == KEY_FILE_TEXT_LEN {
            // Decoded into a buffer that is wiped whatever happens: text that
            // is not base64 may have been decoded in part.
            let mut decoded = Zeroizing::new(vec![0u8; KEY_FILE_BYTES + 1]);
            if let Ok(len) =
                base64::engine::general_purpose::STANDARD.decode_slice(body, &mut decoded[..])
                && len == KEY_FILE_BYTES
            {
                decoded.truncate(KEY_FILE_BYTES);
                return Ok(Self(Inner::KeyMaterial(decoded)));
            }
        }
        Err(CryptoError::NotAKey)
    }

    /// The slot key this credential gives under `params`.
    pub fn slot_key(&self, params: &SlotParams, vault_id: &[u8; 16]) -> Result<Key, CryptoError> {
        match (&self.0, params) {
            (Inner::Password(pw), SlotParams::Password(p)) => {
                argon2id(pw.as_bytes(), p).map_err(CryptoError::Kdf)
            }
            (Inner::KeyMaterial(m), SlotParams::KeyFile) => Ok(hkdf(m, vault_id, KEY_FILE_INFO)),
            (Inner::Recovery(m), SlotParams::Recovery) => Ok(hkdf(m, vault_id, RECOVERY_INFO)),
            (Inner::Keychain(_, m), SlotParams::Keychain { .. }) => {
                Ok(hkdf(m, vault_id, KEYCHAIN_INFO))
            }
            (Inner::Pkcs11(_, m), SlotParams::Pkcs11(_)) => Ok(hkdf(m, vault_id, PKCS11_INFO)),
            _ => Err(CryptoError::SlotMismatch),
        }
    }
}

/// Why a key file's (or `TRESOR_KEY`'s) text was refused.
pub const KEY_FORMAT_ERROR: &str = "not a tresor key: a key file (and TRESOR_KEY) holds the \
     base64 of 32 random bytes (44 characters, optionally a newline), as tresor writes it when \
     it makes a key file; a password belongs in TRESOR_PASSWORD, where Argon2id stretches it";

/// Argon2id(password, salt, m, t, p) → 32 bytes.
pub fn argon2id(password: &[u8], p: &PasswordParams) -> Result<Key, argon2::Error> {
    let params = Params::new(p.m_kib, p.t, p.p, Some(KEY_LEN))?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password_into(
        password,
        &p.salt,
        &mut out[..],
    )?;
    Ok(Key::from_slice(&out[..]).expect("32-byte output"))
}

/// Associated data of slot `id`: `"tresor v1 keyslot" ‖ vault_id ‖ be32(id) ‖ kind`.
pub fn slot_aad(vault_id: &[u8; 16], id: u32, kind: SlotKind) -> Vec<u8> {
    [KEYSLOT_AAD, vault_id, &id.to_be_bytes(), &[kind as u8]].concat()
}

/// Wraps the master key under a slot key.
pub fn wrap_master(slot_key: &Key, master: &MasterKey, aad: &[u8]) -> Vec<u8> {
    seal(slot_key, aad, master.expose_secret())
}

/// Unwraps the master key from a slot.
pub fn unwrap_master(
    slot_key: &Key,
    wrapped: &[u8],
    aad: &[u8],
) -> Result<MasterKey, DecryptError> {
    let plain = open(slot_key, aad, wrapped)?;
    Key::from_slice(&plain).ok_or(DecryptError)
}

/// A recovery key: 32 random bytes, shown once as grouped base32.
pub struct RecoveryKey(Zeroizing<Vec<u8>>);

impl RecoveryKey {
    /// A fresh recovery key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; KEY_LEN]);
        random_bytes(&mut bytes);
        Self(bytes)
    }

    /// The key as text: base32 in groups of four, e.g. `ABCD-EFGH-…`.
    pub fn expose_display(&self) -> Zeroizing<String> {
        let mut plain = data_encoding::BASE32_NOPAD.encode(&self.0);
        let grouped: String = plain
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).expect("base32 is ASCII"))
            .collect::<Vec<_>>()
            .join("-");
        plain.zeroize();
        Zeroizing::new(grouped)
    }

    /// Parses a recovery key as typed: case, dashes and spaces do not matter.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        // Sized up front so it never reallocates (leaving a copy behind);
        // the cleaned text is never longer than the text.
        let mut cleaned = Zeroizing::new(String::with_capacity(text.len()));
        cleaned.extend(
            text.chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .map(|c| c.to_ascii_uppercase()),
        );
        // Decoded into a buffer that is wiped whatever happens.
        let base32 = &data_encoding::BASE32_NOPAD;
        let mut bytes = Zeroizing::new(vec![0u8; KEY_LEN]);
        match base32.decode_len(cleaned.len()) {
            Ok(KEY_LEN) if base32.decode_mut(cleaned.as_bytes(), &mut bytes) == Ok(KEY_LEN) => {
                Ok(Self(bytes))
            }
            _ => Err(CryptoError::NotARecoveryKey),
        }
    }

    /// The credential this key gives.
    pub fn credential(&self) -> Credential {
        Credential(Inner::Recovery(self.0.clone()))
    }
}

/// A fresh keychain slot key: 32 random bytes.
pub fn new_keychain_key(backend: KeychainBackend) -> Credential {
    let mut bytes = Zeroizing::new(vec![0u8; KEY_LEN]);
    random_bytes(&mut bytes);
    Credential::keychain(backend, bytes)
}

/// Associated data of the AES-GCM encryption a PKCS#11 token does of a
/// slot's bytes: `"tresor v1 pkcs11 wrap" ‖ vault_id`.
pub fn pkcs11_wrap_aad(vault_id: &[u8; 16]) -> Vec<u8> {
    [PKCS11_WRAP_AAD, vault_id].concat()
}

/// A fresh key file's text: 32 random bytes as base64 and a newline.
pub fn new_key_file_text() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    random_bytes(&mut bytes[..]);
    // Sized up front: growing it for the newline would leave a copy behind.
    let mut text = Zeroizing::new(String::with_capacity(
        base64::encoded_len(KEY_LEN, true).expect("32 bytes encode") + 1,
    ));
    base64::engine::general_purpose::STANDARD.encode_string(&bytes[..], &mut text);
    text.push('\n');
    text
}

#[cfg(test)]
mod tests;
