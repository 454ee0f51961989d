//! What can go wrong in tresor-crypto outside decryption ([`crate::DecryptError`])
//! and envelope parsing ([`crate::EnvelopeError`]). Never holds a secret or
//! the text a secret was parsed from.

use tresor_core::Error;

/// A refused parameter or credential text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Argon2id memory below the floor.
    #[error("Argon2id memory must be at least 8 MiB (got {0} KiB)")]
    KdfMemory(u32),
    /// Argon2id passes or lanes out of range.
    #[error("Argon2id needs at least 1 pass and 1 to 64 lanes")]
    KdfCosts,
    /// Argon2id refused its parameters.
    #[error("Argon2id: {0}")]
    Kdf(argon2::Error),
    /// Key material that is not the base64 of 32 bytes.
    #[error("{}", crate::slot::KEY_FORMAT_ERROR)]
    NotAKey,
    /// Text that is not a recovery key.
    #[error("not a recovery key: expected 52 base32 characters in groups of four")]
    NotARecoveryKey,
    /// A credential of another kind than the slot.
    #[error("the credential does not fit this slot")]
    SlotMismatch,
    /// A named-key type that does not exist.
    #[error("unknown key type {0:?}: use aes256-gcm (the default), xchacha20-poly1305 or age")]
    UnknownKeyType(String),
}

impl From<CryptoError> for Error {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::NotAKey => Error::Malformed {
                what: "key material".into(),
                problem: e.to_string(),
            },
            CryptoError::NotARecoveryKey => Error::Malformed {
                what: "recovery key".into(),
                problem: "expected 52 base32 characters in groups of four".into(),
            },
            CryptoError::UnknownKeyType(ref t) => Error::Malformed {
                what: format!("key type {t:?}"),
                problem: "unknown: use aes256-gcm (the default), xchacha20-poly1305 or age".into(),
            },
            // Costs and slot fit are the caller's choice of parameters.
            CryptoError::KdfMemory(_)
            | CryptoError::KdfCosts
            | CryptoError::Kdf(_)
            | CryptoError::SlotMismatch => Error::Validation(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_core_kinds_and_keep_their_text() {
        let e: Error = CryptoError::NotARecoveryKey.into();
        assert_eq!(e.kind(), "malformed");
        assert!(e.to_string().contains("52 base32 characters"), "{e}");
        let e: Error = CryptoError::NotAKey.into();
        assert_eq!(e.kind(), "malformed");
        assert!(e.to_string().contains("base64 of 32 random bytes"), "{e}");
        let e: Error = CryptoError::UnknownKeyType("rsa".into()).into();
        assert_eq!(e.kind(), "malformed");
        assert!(e.to_string().contains("\"rsa\""), "{e}");
        let e: Error = CryptoError::KdfMemory(1024).into();
        assert_eq!(e.kind(), "validation");
        assert!(e.to_string().contains("1024 KiB"), "{e}");
    }
}
