//! What sealed records hold: one payload-version byte, then postcard.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use tresor_core::{Error, Metadata};

/// The payload version byte that starts every plaintext.
pub const PAYLOAD_V1: u8 = 1;

/// A secret's header (record kind 1). The label fields are authoritative; the
/// plaintext columns of `secrets` mirror them for queries and are checked
/// against them on every read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Header {
    pub name: String,
    pub metadata: Metadata,
    pub created_at: i64,
    pub updated_at: i64,
    pub max_versions: Option<u32>,
    pub current: Option<u64>,
    pub previous: Option<u64>,
    pub pending: Option<u64>,
    pub next_version: u64,
    pub deleted_at: Option<i64>,
}

/// One version (record kind 2). Borrowed on the way in and out, so the value
/// is never copied outside zeroizing buffers.
#[derive(Serialize, Deserialize)]
pub struct VersionBody<'a> {
    #[serde(with = "serde_bytes", borrow)]
    pub value: &'a [u8],
    pub created_at: i64,
    pub actor: &'a str,
    pub reason: Option<&'a str>,
    pub fingerprint: [u8; 32],
}

/// An audit entry (record kind 3).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditBody {
    pub actor: String,
    pub operation: String,
    pub store: String,
    pub name: Option<String>,
    pub versions: Vec<u64>,
    pub result: String,
    pub reason: Option<String>,
    /// Overrides the writer chose (`unvalidated`: validation rules skipped
    /// on purpose). A trailing field: entries written before it end after
    /// `reason` and read as no flags ([`decode_audit`]); a reader that does
    /// not know it ignores it (postcard reads a prefix).
    pub flags: Vec<String>,
}

/// The audit entry layout before `flags`.
#[derive(Deserialize)]
struct AuditBodyV1 {
    actor: String,
    operation: String,
    store: String,
    name: Option<String>,
    versions: Vec<u64>,
    result: String,
    reason: Option<String>,
}

/// Decodes an audit entry, with or without the trailing `flags`.
pub fn decode_audit(plain: &[u8], what: &str) -> Result<AuditBody, Error> {
    decode_owned::<AuditBody>(plain, what).or_else(|_| {
        let b: AuditBodyV1 = decode_owned(plain, what)?;
        Ok(AuditBody {
            actor: b.actor,
            operation: b.operation,
            store: b.store,
            name: b.name,
            versions: b.versions,
            result: b.result,
            reason: b.reason,
            flags: Vec::new(),
        })
    })
}

/// The vault's settings (record kind 6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Append an audit entry for every read.
    pub audit_reads: bool,
    /// Versions kept per secret before the oldest unlabelled ones are destroyed.
    pub max_versions: u32,
    /// Largest value accepted, in bytes.
    pub max_value_len: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            audit_reads: true,
            max_versions: 20,
            max_value_len: tresor_core::DEFAULT_MAX_VALUE_LEN as u64,
        }
    }
}

/// Encodes a payload into a zeroizing buffer sized up front, so no partial
/// copy of it is left behind by reallocation.
pub fn encode<T: Serialize>(payload: &T, size_hint: usize) -> Zeroizing<Vec<u8>> {
    let mut buf = Zeroizing::new(vec![0u8; size_hint + 64]);
    buf[0] = PAYLOAD_V1;
    loop {
        match postcard::to_slice(payload, &mut buf[1..]) {
            Ok(used) => {
                let len = used.len() + 1;
                buf.truncate(len);
                return buf;
            }
            Err(postcard::Error::SerializeBufferFull) => {
                let bigger = buf.len() * 2;
                buf = Zeroizing::new(vec![0u8; bigger]);
                buf[0] = PAYLOAD_V1;
            }
            Err(e) => unreachable!("payload types always serialize: {e}"),
        }
    }
}

/// Decodes a payload made by [`encode`].
pub fn decode<'a, T: Deserialize<'a>>(plain: &'a [u8], what: &str) -> Result<T, Error> {
    match plain.split_first() {
        Some((&PAYLOAD_V1, rest)) => postcard::from_bytes(rest).map_err(|_| Error::Integrity {
            store: "vault".into(),
            detail: format!("{what} does not decode"),
        }),
        _ => Err(Error::Integrity {
            store: "vault".into(),
            detail: format!("{what} has an unknown payload version"),
        }),
    }
}

/// [`decode`] for owned payloads.
pub fn decode_owned<T: DeserializeOwned>(plain: &[u8], what: &str) -> Result<T, Error> {
    decode(plain, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_body_layout_is_pinned() {
        let body = VersionBody {
            value: b"v",
            created_at: 1,
            actor: "a",
            reason: None,
            fingerprint: [0; 32],
        };
        let bytes = encode(&body, 8);
        // version byte, len 1 + 'v', varint zigzag(1) = 2, len 1 + 'a', None, 32 zero bytes
        let mut expected = vec![1u8, 1, b'v', 2, 1, b'a', 0];
        expected.extend([0u8; 32]);
        assert_eq!(&bytes[..], &expected[..]);
        let back: VersionBody = decode(&bytes, "x").unwrap();
        assert_eq!(back.value, b"v");
    }

    /// Pins the stored `params` of a PKCS#11 slot (VAULT-FORMAT.md, "Key
    /// slots"): variant index 4, then the fields in order, strings and
    /// bytes length-prefixed, the mechanism as its variant index.
    #[test]
    fn pkcs11_slot_params_layout_is_pinned() {
        use tresor_crypto::slot::{Pkcs11Mechanism, Pkcs11Params, SlotParams};
        let params = SlotParams::Pkcs11(Pkcs11Params {
            module: "/m.so".into(),
            token_label: "tok".into(),
            token_serial: "s1".into(),
            key_label: "k".into(),
            key_id: vec![0xaa, 0xbb],
            mechanism: Pkcs11Mechanism::AesGcm,
            wrapped: vec![0x11; 3],
        });
        let bytes = encode(&params, 64);
        let expected: &[u8] = &[
            1, // payload version
            4, // SlotParams::Pkcs11
            5, b'/', b'm', b'.', b's', b'o', // module
            3, b't', b'o', b'k', // token_label
            2, b's', b'1', // token_serial
            1, b'k', // key_label
            2, 0xaa, 0xbb, // key_id
            0,    // mechanism: AesGcm
            3, 0x11, 0x11, 0x11, // wrapped
        ];
        assert_eq!(&bytes[..], expected);
        assert_eq!(decode_owned::<SlotParams>(&bytes, "p").unwrap(), params);
        // The other kinds keep their layout: keychain (variant 3, backend 1).
        let keychain = SlotParams::Keychain {
            backend: tresor_crypto::slot::KeychainBackend::Keyutils,
        };
        assert_eq!(&encode(&keychain, 8)[..], &[1, 3, 1]);
        let mut aes_kwp = params.clone();
        if let SlotParams::Pkcs11(p) = &mut aes_kwp {
            p.mechanism = Pkcs11Mechanism::AesKeyWrapPad;
        }
        assert_eq!(encode(&aes_kwp, 64)[20], 1);
    }

    #[test]
    fn encode_grows_past_a_small_hint() {
        let h = Header {
            name: "n".repeat(200),
            metadata: Metadata::new(),
            created_at: 0,
            updated_at: 0,
            max_versions: None,
            current: Some(1),
            previous: None,
            pending: None,
            next_version: 2,
            deleted_at: None,
        };
        let bytes = encode(&h, 0);
        let back: Header = decode_owned(&bytes, "h").unwrap();
        assert_eq!(back.name, h.name);
        assert!(decode_owned::<Header>(&bytes[..5], "h").is_err());
        assert!(decode_owned::<Header>(&[9, 9], "h").is_err());
    }

    #[test]
    fn audit_entry_layout_is_pinned_with_and_without_flags() {
        let body = AuditBody {
            actor: "a".into(),
            operation: "set".into(),
            store: "vault".into(),
            name: Some("n".into()),
            versions: vec![2],
            result: "ok".into(),
            reason: None,
            flags: vec!["unvalidated".into()],
        };
        let bytes = encode(&body, 8);
        // The test vector of VAULT-FORMAT.md ("Records", audit entry).
        let mut expected = vec![1u8, 1, b'a', 3];
        expected.extend_from_slice(b"set");
        expected.push(5);
        expected.extend_from_slice(b"vault");
        expected.extend_from_slice(&[1, 1, b'n', 1, 2, 2, b'o', b'k', 0, 1, 11]);
        expected.extend_from_slice(b"unvalidated");
        assert_eq!(&bytes[..], &expected[..]);
        let back = decode_audit(&bytes, "e").unwrap();
        assert_eq!(back.flags, ["unvalidated"]);
        // An entry written before flags existed ends after `reason`.
        let old = &expected[..expected.len() - 13];
        let back = decode_audit(old, "e").unwrap();
        assert!(back.flags.is_empty());
        assert_eq!((back.name.as_deref(), back.versions), (Some("n"), vec![2]));
        // A reader of the older layout reads the newer entry's prefix.
        let v1: AuditBodyV1 = decode_owned(&bytes, "e").unwrap();
        assert_eq!(v1.result, "ok");
        assert!(decode_audit(&expected[..8], "e").is_err());
    }
}
