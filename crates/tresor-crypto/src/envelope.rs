//! Envelopes of named keys: what applications store instead of plaintext
//! (VAULT-FORMAT.md, "Envelopes of named keys").
//!
//! ```text
//! tresor:v1:<key name>:<version>:<base64url(nonce ‖ ciphertext ‖ tag)>
//! ```
//!
//! One line of ASCII. The version is decimal without leading zeros
//! (1 ..= 2^32 − 1); the payload is RFC 4648 §5 base64url **without padding**,
//! and only its canonical form decodes (no `=`, no stray bits in the last
//! character), so one ciphertext has exactly one envelope. Key names follow
//! the secret-name rule, which has no `:`, so the fields split unambiguously.
//!
//! The associated data is [`ENVELOPE_AAD`] ‖ key name ‖ be32(version): an
//! envelope moved to another key or version fails to open.
//!
//! | key type | nonce | cipher |
//! | --- | --- | --- |
//! | [`KeyType::Aes256Gcm`] (default) | 12 random bytes | AES-256-GCM, 16-byte tag |
//! | [`KeyType::XChaCha20Poly1305`] | 24 random bytes | XChaCha20-Poly1305, 16-byte tag |

use std::fmt;
use std::str::FromStr;

use aes_gcm::Aes256Gcm;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::aead::{DecryptError, TAG_LEN};
use crate::error::CryptoError;
use crate::keys::{Key, random_bytes};

/// What every envelope of this format starts with.
pub const ENVELOPE_PREFIX: &str = "tresor:v1:";
/// Label at the start of an envelope's associated data.
pub const ENVELOPE_AAD: &[u8] = b"tresor v1 envelope";
/// Prefix of a named key's blind-index input: `HMAC(index key, "key:" ‖ name)`.
/// Secret names cannot contain `:`, so no named key shares a blind index
/// with a secret.
pub const NAMED_KEY_INDEX_PREFIX: &[u8] = b"key:";

/// Base64url without padding, rejecting non-canonical trailing bits.
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The type of a named key. Stored in the key's header as its variant
/// index (postcard): 0 AES-256-GCM, 1 XChaCha20-Poly1305, 2 age X25519; new
/// types are only ever appended. Self-describing formats (JSON) use
/// [`KeyType::as_str`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyType {
    /// AES-256-GCM with a 12-byte random nonce: the default, hardware
    /// accelerated almost everywhere. Rotate a key before it has sealed
    /// about 2^32 envelopes (random 96-bit nonces).
    #[default]
    #[serde(rename = "aes256-gcm")]
    Aes256Gcm,
    /// XChaCha20-Poly1305 with a 24-byte random nonce: no limit worth
    /// counting on the number of envelopes, fast without AES hardware.
    #[serde(rename = "xchacha20-poly1305")]
    XChaCha20Poly1305,
    /// An age X25519 identity (the 32 bytes are its secret scalar, as in an
    /// `AGE-SECRET-KEY-1…` string): for age files (`tresor encrypt --key`),
    /// not for envelopes.
    #[serde(rename = "age")]
    AgeX25519,
}

impl KeyType {
    /// Every key type, in storage order.
    pub const ALL: [KeyType; 3] = [
        KeyType::Aes256Gcm,
        KeyType::XChaCha20Poly1305,
        KeyType::AgeX25519,
    ];

    /// The key types that seal envelopes.
    pub const ENVELOPE: [KeyType; 2] = [KeyType::Aes256Gcm, KeyType::XChaCha20Poly1305];

    /// The name used by the CLI and JSON output: `aes256-gcm`,
    /// `xchacha20-poly1305` or `age`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Aes256Gcm => "aes256-gcm",
            KeyType::XChaCha20Poly1305 => "xchacha20-poly1305",
            KeyType::AgeX25519 => "age",
        }
    }

    /// Whether keys of this type seal envelopes ([`seal_envelope`]).
    pub fn seals_envelopes(self) -> bool {
        KeyType::ENVELOPE.contains(&self)
    }

    /// The nonce length of an envelope made with this type (0 for a type
    /// that makes none).
    pub fn nonce_len(self) -> usize {
        match self {
            KeyType::Aes256Gcm => 12,
            KeyType::XChaCha20Poly1305 => 24,
            KeyType::AgeX25519 => 0,
        }
    }

    /// Encrypts `body` in place; returns the tag (`None` for a type that
    /// seals no envelopes).
    fn seal_in_place(
        self,
        key: &Key,
        nonce: &[u8],
        aad: &[u8],
        body: &mut [u8],
    ) -> Option<[u8; TAG_LEN]> {
        // Envelopes are far below either cipher's length limit (2^36 bytes
        // for GCM), and the nonce slice always has the type's length.
        let tag = match self {
            KeyType::Aes256Gcm => Aes256Gcm::new(key.expose_secret().into())
                .encrypt_inout_detached(&nonce.try_into().expect("nonce length"), aad, body.into())
                .expect("within the AES-GCM length limit"),
            KeyType::XChaCha20Poly1305 => XChaCha20Poly1305::new(key.expose_secret().into())
                .encrypt_inout_detached(&nonce.try_into().expect("nonce length"), aad, body.into())
                .expect("within the XChaCha20-Poly1305 length limit"),
            KeyType::AgeX25519 => return None,
        };
        Some(tag.into())
    }

    /// Decrypts `body` in place, checking `tag`.
    fn open_in_place(
        self,
        key: &Key,
        nonce: &[u8],
        aad: &[u8],
        body: &mut [u8],
        tag: &[u8],
    ) -> Result<(), DecryptError> {
        let tag = tag.try_into().map_err(|_| DecryptError)?;
        match self {
            KeyType::Aes256Gcm => Aes256Gcm::new(key.expose_secret().into())
                .decrypt_inout_detached(
                    &nonce.try_into().map_err(|_| DecryptError)?,
                    aad,
                    body.into(),
                    &tag,
                ),
            KeyType::XChaCha20Poly1305 => XChaCha20Poly1305::new(key.expose_secret().into())
                .decrypt_inout_detached(
                    &nonce.try_into().map_err(|_| DecryptError)?,
                    aad,
                    body.into(),
                    &tag,
                ),
            KeyType::AgeX25519 => return Err(DecryptError),
        }
        .map_err(|_| DecryptError)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = CryptoError;

    /// Parses `aes256-gcm`, `xchacha20-poly1305` or `age`.
    fn from_str(s: &str) -> Result<Self, CryptoError> {
        KeyType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| CryptoError::UnknownKeyType(s.to_string()))
    }
}

/// The associated data of an envelope: `"tresor v1 envelope" ‖ name ‖ be32(version)`.
pub fn envelope_aad(name: &str, version: u32) -> Vec<u8> {
    [ENVELOPE_AAD, name.as_bytes(), &version.to_be_bytes()].concat()
}

/// Seals `plaintext` under version `version` of the named key `name`, with a
/// fresh random nonce; returns the one-line envelope, or
/// [`EnvelopeError::NoEnvelopes`] for a key type that seals none.
pub fn seal_envelope(
    key_type: KeyType,
    key: &Key,
    name: &str,
    version: u32,
    plaintext: &[u8],
) -> Result<String, EnvelopeError> {
    let mut nonce = [0u8; 24];
    let nonce = &mut nonce[..key_type.nonce_len()];
    random_bytes(nonce);
    seal_with_nonce(key_type, key, name, version, nonce, plaintext)
}

/// [`seal_envelope`] with a given nonce: only for known-answer tests, since a
/// nonce used twice under one key breaks both ciphers.
fn seal_with_nonce(
    key_type: KeyType,
    key: &Key,
    name: &str,
    version: u32,
    nonce: &[u8],
    plaintext: &[u8],
) -> Result<String, EnvelopeError> {
    if !key_type.seals_envelopes() {
        return Err(EnvelopeError::NoEnvelopes(key_type));
    }
    let n = nonce.len();
    // The buffer holds plaintext only until it is encrypted in place below.
    let mut payload = vec![0u8; n + plaintext.len() + TAG_LEN];
    payload[..n].copy_from_slice(nonce);
    let (head, tag_out) = payload.split_at_mut(n + plaintext.len());
    let body = &mut head[n..];
    body.copy_from_slice(plaintext);
    let tag = key_type
        .seal_in_place(key, nonce, &envelope_aad(name, version), body)
        .ok_or(EnvelopeError::NoEnvelopes(key_type))?;
    tag_out.copy_from_slice(&tag);

    let mut out = String::with_capacity(
        ENVELOPE_PREFIX.len()
            + name.len()
            + 12
            + base64::encoded_len(payload.len(), false).unwrap_or(0),
    );
    out.push_str(ENVELOPE_PREFIX);
    out.push_str(name);
    out.push(':');
    out.push_str(itoa(version, &mut [0u8; 10]));
    out.push(':');
    base64::Engine::encode_string(&B64, &payload, &mut out);
    Ok(out)
}

/// Writes `n` in decimal into `buf`; returns the digits.
fn itoa(mut n: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("ASCII digits")
}

/// Why a text is not a well-formed envelope. Says nothing about the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The text does not start with `tresor:`.
    #[error("not a tresor envelope (expected tresor:v1:<key name>:<version>:<data>)")]
    NotAnEnvelope,
    /// A `tresor:` text of another format version.
    #[error("unsupported envelope format {0:?}; this tresor reads v1")]
    UnsupportedFormat(String),
    /// A `tresor:v1:` text with a field that does not parse.
    #[error("malformed envelope: {0}")]
    Malformed(&'static str),
    /// Keys of this type seal no envelopes (age identities).
    #[error("{0} keys do not seal envelopes")]
    NoEnvelopes(KeyType),
}

/// An envelope split into its fields; the payload still encrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The key name, as written (not yet checked against the naming rule).
    pub name: &'a str,
    /// The key version.
    pub version: u32,
    /// The base64url text of `nonce ‖ ciphertext ‖ tag`.
    pub data: &'a str,
}

impl<'a> Envelope<'a> {
    /// Splits `text` into its fields, strictly: no surrounding whitespace,
    /// a decimal version without sign or leading zeros, from 1 to 2^32 − 1.
    pub fn parse(text: &'a str) -> Result<Self, EnvelopeError> {
        let Some(rest) = text.strip_prefix("tresor:") else {
            return Err(EnvelopeError::NotAnEnvelope);
        };
        let Some(rest) = rest.strip_prefix("v1:") else {
            let format: String = rest
                .split(':')
                .next()
                .unwrap_or("")
                .chars()
                .take(16)
                .collect();
            return Err(EnvelopeError::UnsupportedFormat(format));
        };
        let mut fields = rest.splitn(3, ':');
        let (Some(name), Some(version), Some(data)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(EnvelopeError::Malformed(
                "it has fewer than five ':'-separated fields",
            ));
        };
        if name.is_empty() {
            return Err(EnvelopeError::Malformed("the key name is empty"));
        }
        let version = parse_version(version).ok_or(EnvelopeError::Malformed(
            "the version is not a number from 1 to 4294967295",
        ))?;
        if data.is_empty()
            || !data
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(EnvelopeError::Malformed(
                "the data is not unpadded base64url",
            ));
        }
        Ok(Self {
            name,
            version,
            data,
        })
    }

    /// Decrypts the payload with `key`, which must be this envelope's
    /// version of its named key, of type `key_type`. Returns the plaintext in
    /// a buffer of exactly its length.
    pub fn open(&self, key_type: KeyType, key: &Key) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        let payload = base64::Engine::decode(&B64, self.data).map_err(|_| DecryptError)?;
        let n = key_type.nonce_len();
        if payload.len() < n + TAG_LEN {
            return Err(DecryptError);
        }
        let (nonce, rest) = payload.split_at(n);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut plain = Zeroizing::new(body.to_vec());
        key_type.open_in_place(
            key,
            nonce,
            &envelope_aad(self.name, self.version),
            &mut plain,
            tag,
        )?;
        Ok(plain)
    }
}

/// A decimal `u32` from 1 up, without sign or leading zeros.
fn parse_version(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Known answers made by an independent implementation (Python
    /// `cryptography`, `vectors/make_envelope_vectors.py`): key 42…42,
    /// nonce 00 01 02 …, key name `app/orders`, version 7, plaintext
    /// `tresor envelope`.
    const KAT_AES: &str =
        "tresor:v1:app/orders:7:AAECAwQFBgcICQoLcaz0rt5e0m7zcCF_vq0-MoL9Ki1ARbzkGebhn3va4g";
    const KAT_XCHACHA: &str = "tresor:v1:app/orders:7:AAECAwQFBgcICQoLDA0ODxAREhMUFRYX-I7hlKjT56WcEMEqbUibzFYNtsQtSpJe82e4mZolJA";

    fn kat_key() -> Key {
        Key::from_slice(&[0x42; 32]).unwrap()
    }

    fn kat_nonce(key_type: KeyType) -> Vec<u8> {
        (0..key_type.nonce_len() as u8).collect()
    }

    #[test]
    fn envelope_layout_matches_known_answers() {
        for (key_type, expected) in [
            (KeyType::Aes256Gcm, KAT_AES),
            (KeyType::XChaCha20Poly1305, KAT_XCHACHA),
        ] {
            let env = seal_with_nonce(
                key_type,
                &kat_key(),
                "app/orders",
                7,
                &kat_nonce(key_type),
                b"tresor envelope",
            )
            .unwrap();
            assert_eq!(env, expected, "{key_type}");
            let parsed = Envelope::parse(&env).unwrap();
            assert_eq!((parsed.name, parsed.version), ("app/orders", 7));
            assert_eq!(
                &parsed.open(key_type, &kat_key()).unwrap()[..],
                b"tresor envelope"
            );
        }
    }

    #[test]
    fn aad_layout_is_pinned() {
        let aad = envelope_aad("a/b", 0x0102_0304);
        assert_eq!(&aad[..], b"tresor v1 envelopea/b\x01\x02\x03\x04");
    }

    #[test]
    fn key_types_parse_and_print() {
        for t in KeyType::ALL {
            assert_eq!(t.as_str().parse::<KeyType>().unwrap(), t);
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!(KeyType::default(), KeyType::Aes256Gcm);
        let err = "rsa".parse::<KeyType>().unwrap_err().to_string();
        assert!(
            err.contains("aes256-gcm") && err.contains("xchacha20-poly1305") && err.contains("age"),
            "{err}"
        );
        // Age identities seal no envelopes, and open none.
        let key = Key::random();
        assert_eq!(
            seal_envelope(KeyType::AgeX25519, &key, "k", 1, b"x").unwrap_err(),
            EnvelopeError::NoEnvelopes(KeyType::AgeX25519)
        );
        let env = seal_envelope(KeyType::Aes256Gcm, &key, "k", 1, b"x").unwrap();
        assert!(
            Envelope::parse(&env)
                .unwrap()
                .open(KeyType::AgeX25519, &key)
                .is_err()
        );
    }

    #[test]
    fn parse_is_strict() {
        let ok = "tresor:v1:a/b:12:AAAA";
        assert_eq!(
            Envelope::parse(ok).unwrap(),
            Envelope {
                name: "a/b",
                version: 12,
                data: "AAAA"
            }
        );
        assert_eq!(
            Envelope::parse("hello").unwrap_err(),
            EnvelopeError::NotAnEnvelope
        );
        assert_eq!(
            Envelope::parse("vault:v1:x").unwrap_err(),
            EnvelopeError::NotAnEnvelope
        );
        assert!(matches!(
            Envelope::parse("tresor:v2:a:1:AAAA").unwrap_err(),
            EnvelopeError::UnsupportedFormat(f) if f == "v2"
        ));
        for bad in [
            "tresor:v1:",
            "tresor:v1:a",
            "tresor:v1:a:1",
            "tresor:v1::1:AAAA",
            "tresor:v1:a:0:AAAA",
            "tresor:v1:a:01:AAAA",
            "tresor:v1:a:+1:AAAA",
            "tresor:v1:a:-1:AAAA",
            "tresor:v1:a:4294967296:AAAA",
            "tresor:v1:a:1:",
            "tresor:v1:a:1:AAAA=",
            "tresor:v1:a:1:AA+A",
            "tresor:v1:a:1:AA/A",
            "tresor:v1:a:1:AAAA\n",
            "tresor:v1:a:1:AA:AA",
        ] {
            assert!(
                matches!(Envelope::parse(bad), Err(EnvelopeError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            Envelope::parse("tresor:v1:a:4294967295:A").unwrap().version,
            u32::MAX
        );
    }

    #[test]
    fn every_single_bit_flip_of_the_payload_is_detected() {
        let key = Key::random();
        for key_type in KeyType::ENVELOPE {
            let env = seal_envelope(key_type, &key, "k", 1, b"some plaintext").unwrap();
            let data = Envelope::parse(&env).unwrap().data;
            let payload = base64::Engine::decode(&B64, data).unwrap();
            for i in 0..payload.len() * 8 {
                let mut bad = payload.clone();
                bad[i / 8] ^= 1 << (i % 8);
                let text = format!("tresor:v1:k:1:{}", base64::Engine::encode(&B64, &bad));
                let parsed = Envelope::parse(&text).unwrap();
                assert_eq!(parsed.open(key_type, &key).unwrap_err(), DecryptError);
            }
            // Moved to another key name or version, or opened as the other type.
            let moved = env.replacen("tresor:v1:k:1:", "tresor:v1:j:1:", 1);
            assert!(
                Envelope::parse(&moved)
                    .unwrap()
                    .open(key_type, &key)
                    .is_err()
            );
            let moved = env.replacen("tresor:v1:k:1:", "tresor:v1:k:2:", 1);
            assert!(
                Envelope::parse(&moved)
                    .unwrap()
                    .open(key_type, &key)
                    .is_err()
            );
            let other = KeyType::ALL.into_iter().find(|t| *t != key_type).unwrap();
            assert!(Envelope::parse(&env).unwrap().open(other, &key).is_err());
            assert!(
                Envelope::parse(&env)
                    .unwrap()
                    .open(key_type, &Key::random())
                    .is_err()
            );
        }
    }

    #[test]
    fn non_canonical_base64_is_refused() {
        let key = Key::random();
        // 12 + 1 + 16 = 29 bytes: the last base64 character carries 2 spare bits.
        let env = seal_envelope(KeyType::Aes256Gcm, &key, "k", 1, b"x").unwrap();
        let last = env.chars().last().unwrap();
        let idx = B64_ALPHABET.find(last).unwrap();
        assert_eq!(idx & 0b11, 0, "spare bits are zero in canonical form");
        let tweaked = format!(
            "{}{}",
            &env[..env.len() - 1],
            &B64_ALPHABET[idx + 1..idx + 2]
        );
        let parsed = Envelope::parse(&tweaked).unwrap();
        assert_eq!(
            parsed.open(KeyType::Aes256Gcm, &key).unwrap_err(),
            DecryptError
        );
        assert_eq!(
            &Envelope::parse(&env)
                .unwrap()
                .open(KeyType::Aes256Gcm, &key)
                .unwrap()[..],
            b"x"
        );
    }

    const B64_ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    #[test]
    fn truncated_payloads_are_refused() {
        let key = Key::random();
        for key_type in KeyType::ALL {
            let short = base64::Engine::encode(&B64, vec![0u8; key_type.nonce_len() + TAG_LEN - 1]);
            let text = format!("tresor:v1:k:1:{short}");
            assert!(
                Envelope::parse(&text)
                    .unwrap()
                    .open(key_type, &key)
                    .is_err()
            );
        }
    }

    proptest! {
        #[test]
        fn envelopes_round_trip(
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            name in "[A-Za-z0-9_-]{1,12}(/[A-Za-z0-9_-]{1,12}){0,3}",
            version in 1u32..,
            xchacha in any::<bool>(),
        ) {
            let key_type = if xchacha { KeyType::XChaCha20Poly1305 } else { KeyType::Aes256Gcm };
            let key = Key::random();
            let env = seal_envelope(key_type, &key, &name, version, &data).unwrap();
            prop_assert!(env.is_ascii() && !env.contains(char::is_whitespace));
            let parsed = Envelope::parse(&env).unwrap();
            prop_assert_eq!(parsed.name, name.as_str());
            prop_assert_eq!(parsed.version, version);
            let payload = base64::Engine::decode(&B64, parsed.data).unwrap();
            prop_assert_eq!(payload.len(), key_type.nonce_len() + data.len() + TAG_LEN);
            prop_assert_eq!(&parsed.open(key_type, &key).unwrap()[..], &data[..]);
        }
    }
}
