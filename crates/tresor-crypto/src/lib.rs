//! tresor's cryptography: the key hierarchy of the vault, built only from
//! RustCrypto primitives.
//!
//! - A random 256-bit [`MasterKey`] is wrapped in key slots
//!   ([`slot`]): each slot derives a slot key from a password (Argon2id), a key
//!   file or raw key (HKDF), or a recovery key.
//! - The master key derives, by HKDF-SHA256 with the vault id as salt, the
//!   [`VaultKeys`]: an index key (blind index of names), an audit key (MAC
//!   chain), a wrap key (data keys) and a fingerprint key.
//! - Records are sealed with XChaCha20-Poly1305 under a data key; the
//!   associated data ([`RecordAad`]) binds vault, kind, row, version and key id,
//!   and for the records of a secret or named key its random record id
//!   ([`RecordAad::bound_bytes`]), which is never reused.
//! - Named keys for applications seal data into one-line envelopes
//!   ([`seal_envelope`], [`Envelope`]) with AES-256-GCM or XChaCha20-Poly1305.
//!
//! Every label and layout is a named constant here and in `VAULT-FORMAT.md`.
//!
//! ```
//! use tresor_crypto::{Key, RecordAad, RecordKind, open, seal};
//!
//! let key = Key::random();
//! let aad = RecordAad { kind: RecordKind::SecretVersion, vault_id: [7; 16], row: 1, version: 2, key_id: 1 };
//! let blob = seal(&key, &aad.bytes(), b"hello");
//! assert_eq!(&open(&key, &aad.bytes(), &blob).unwrap()[..], b"hello");
//! let moved = RecordAad { version: 3, ..aad };
//! assert!(open(&key, &moved.bytes(), &blob).is_err());
//! ```

#![forbid(unsafe_code)]

mod aead;
mod envelope;
mod error;
mod keys;
pub mod slot;

pub use aead::{
    BOUND_AAD_LEN, BOUND_AAD_PREFIX, DecryptError, NONCE_LEN, OVERHEAD, RECORD_UID_LEN, RecordAad,
    RecordKind, TAG_LEN, new_record_uid, open, seal,
};
pub use envelope::{
    ENVELOPE_AAD, ENVELOPE_PREFIX, Envelope, EnvelopeError, KeyType, NAMED_KEY_INDEX_PREFIX,
    envelope_aad, seal_envelope,
};
pub use error::CryptoError;
pub use keys::{
    AUDIT_INFO, DATA_KEY_AAD, FINGERPRINT_INFO, INDEX_INFO, KEY_LEN, Key, MasterKey, RandomBatch,
    VaultKeys, WRAP_INFO, random_bytes,
};
