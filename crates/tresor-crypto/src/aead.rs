//! Sealed records: XChaCha20-Poly1305 with a random 24-byte nonce.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::keys::{Key, random_bytes};

/// Nonce length of a sealed blob.
pub const NONCE_LEN: usize = 24;
/// Tag length of a sealed blob.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed blob adds to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Decryption failed: wrong key, tampered or moved ciphertext. Deliberately
/// says nothing more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("decryption failed")]
pub struct DecryptError;

/// Seals `plaintext`: `nonce (24) ‖ ciphertext ‖ tag (16)`.
pub fn seal(key: &Key, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; NONCE_LEN + plaintext.len() + TAG_LEN];
    random_bytes(&mut out[..NONCE_LEN]);
    let (nonce, rest) = out.split_at_mut(NONCE_LEN);
    let (body, tag_out) = rest.split_at_mut(plaintext.len());
    body.copy_from_slice(plaintext);
    let cipher = XChaCha20Poly1305::new(key.expose_secret().into());
    let nonce = XNonce::try_from(&nonce[..]).expect("nonce slice has the nonce length");
    let tag = cipher
        .encrypt_inout_detached(&nonce, aad, body.into())
        .expect("records are far below XChaCha20-Poly1305's length limit");
    tag_out.copy_from_slice(&tag);
    out
}

/// Opens a blob made by [`seal`] with the same key and associated data.
pub fn open(key: &Key, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    if blob.len() < OVERHEAD {
        return Err(DecryptError);
    }
    let (nonce, rest) = blob.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut plain = Zeroizing::new(body.to_vec());
    let cipher = XChaCha20Poly1305::new(key.expose_secret().into());
    let nonce = XNonce::try_from(nonce).map_err(|_| DecryptError)?;
    let tag = chacha20poly1305::Tag::try_from(tag).map_err(|_| DecryptError)?;
    cipher
        .decrypt_inout_detached(&nonce, aad, plain.as_mut_slice().into(), &tag)
        .map_err(|_| DecryptError)?;
    Ok(plain)
}

/// Kinds of record, bound into every record's associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// A secret's header: name, metadata, labels.
    SecretHeader = 1,
    /// One version of a secret: the value and who wrote it.
    SecretVersion = 2,
    /// An audit entry.
    AuditEntry = 3,
    /// A named key's header.
    NamedKeyHeader = 4,
    /// One version of a named key.
    NamedKeyVersion = 5,
    /// The vault's settings.
    Settings = 6,
}

/// The associated data of a record:
/// `"tresor v1" ‖ 0x00 ‖ kind ‖ vault_id (16) ‖ be64(row) ‖ be64(version) ‖ be32(key id)`.
#[derive(Clone, Copy, Debug)]
pub struct RecordAad {
    /// What the record is.
    pub kind: RecordKind,
    /// The vault it belongs to.
    pub vault_id: [u8; 16],
    /// Its row id (secret id, audit sequence…).
    pub row: u64,
    /// Its version, or 0.
    pub version: u64,
    /// The data key that seals it.
    pub key_id: u32,
}

/// Prefix of every record's associated data.
pub const RECORD_AAD_PREFIX: &[u8; 10] = b"tresor v1\0";

/// Prefix of the associated data of a record bound to its owner's record id
/// (vault format 2: secret headers and versions, named-key headers and
/// versions). See [`RecordAad::bound_bytes`].
pub const BOUND_AAD_PREFIX: &[u8; 10] = b"tresor v2\0";

/// Length of a record id ([`RecordAad::bound_bytes`]): 128 random bits.
pub const RECORD_UID_LEN: usize = 16;

/// Length of [`RecordAad::bound_bytes`].
pub const BOUND_AAD_LEN: usize = 10 + 1 + 16 + 8 + 8 + 4 + RECORD_UID_LEN;

impl RecordAad {
    /// The associated data bytes.
    pub fn bytes(&self) -> [u8; 10 + 1 + 16 + 8 + 8 + 4] {
        let mut out = [0u8; 47];
        out[..10].copy_from_slice(RECORD_AAD_PREFIX);
        out[10] = self.kind as u8;
        out[11..27].copy_from_slice(&self.vault_id);
        out[27..35].copy_from_slice(&self.row.to_be_bytes());
        out[35..43].copy_from_slice(&self.version.to_be_bytes());
        out[43..47].copy_from_slice(&self.key_id.to_be_bytes());
        out
    }

    /// The associated data of a record that belongs to a secret or named
    /// key whose random record id is `uid`:
    /// `"tresor v2" ‖ 0x00 ‖ kind ‖ vault_id (16) ‖ be64(row) ‖ be64(version) ‖ be32(key id) ‖ uid (16)`.
    ///
    /// Row ids are reused (SQLite hands a purged secret's id to the next
    /// one); `uid` is drawn at random for every secret and every named key
    /// (again when a deleted key's name is used anew) and never reused, so
    /// a record copied from an earlier owner of the row fails to open.
    pub fn bound_bytes(&self, uid: &[u8; RECORD_UID_LEN]) -> [u8; BOUND_AAD_LEN] {
        let mut out = [0u8; BOUND_AAD_LEN];
        out[..47].copy_from_slice(&self.bytes());
        out[..10].copy_from_slice(BOUND_AAD_PREFIX);
        out[47..].copy_from_slice(uid);
        out
    }
}

/// A fresh random record id for [`RecordAad::bound_bytes`].
pub fn new_record_uid() -> [u8; RECORD_UID_LEN] {
    let mut uid = [0u8; RECORD_UID_LEN];
    random_bytes(&mut uid);
    uid
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn aad_layout_is_pinned() {
        let aad = RecordAad {
            kind: RecordKind::SecretVersion,
            vault_id: [0xaa; 16],
            row: 0x0102,
            version: 3,
            key_id: 4,
        };
        let b = aad.bytes();
        assert_eq!(&b[..10], b"tresor v1\0");
        assert_eq!(b[10], 2);
        assert_eq!(&b[11..27], &[0xaa; 16]);
        assert_eq!(&b[27..35], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(&b[35..43], &[0, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(&b[43..], &[0, 0, 0, 4]);
    }

    #[test]
    fn bound_aad_layout_is_pinned() {
        let aad = RecordAad {
            kind: RecordKind::NamedKeyVersion,
            vault_id: [0xaa; 16],
            row: 0x0102,
            version: 3,
            key_id: 4,
        };
        let b = aad.bound_bytes(&[0x5c; 16]);
        assert_eq!(b.len(), 63);
        assert_eq!(&b[..10], b"tresor v2\0");
        assert_eq!(b[10], 5);
        assert_eq!(&b[11..27], &[0xaa; 16]);
        assert_eq!(&b[27..35], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(&b[35..43], &[0, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(&b[43..47], &[0, 0, 0, 4]);
        assert_eq!(&b[47..], &[0x5c; 16]);
        // Format-1 bytes of the same record differ, so no format-1 blob
        // opens under format-2 associated data.
        assert_ne!(&b[..47], &aad.bytes()[..]);
        assert_ne!(new_record_uid(), new_record_uid());
    }

    /// A blob sealed under bound (format 2) associated data, computed by an
    /// independent implementation (`vectors/make_envelope_vectors.py`):
    /// key 42…42, nonce 00 01 … 17, a secret version (kind 2) of vault
    /// a0 a1 … af, row 1, version 2, data key 1, uid 5c…5c.
    #[test]
    fn known_bound_blob_opens() {
        let key = Key::from_slice(&[0x42; 32]).unwrap();
        let aad = RecordAad {
            kind: RecordKind::SecretVersion,
            vault_id: std::array::from_fn(|i| 0xa0 + i as u8),
            row: 1,
            version: 2,
            key_id: 1,
        };
        let blob = decode_hex(KAT_BOUND_BLOB);
        let opened = open(&key, &aad.bound_bytes(&[0x5c; 16]), &blob).unwrap();
        assert_eq!(&opened[..], b"tresor");
        assert!(open(&key, &aad.bound_bytes(&[0x5d; 16]), &blob).is_err());
        assert!(open(&key, &aad.bytes(), &blob).is_err());
    }

    const KAT_BOUND_BLOB: &str = "000102030405060708090a0b0c0d0e0f1011121314151617f88ee194a8d3d4e631d23915a593d3a722917ef458f2";

    /// A fixed blob made once by `seal` pins the cipher and layout: it must
    /// open with the known key and aad for as long as format 1 exists.
    #[test]
    fn known_blob_opens() {
        let key = Key::from_slice(&[0x42; 32]).unwrap();
        let blob = decode_hex(KAT_BLOB);
        assert_eq!(&open(&key, b"aad", &blob).unwrap()[..], b"tresor");
    }

    const KAT_BLOB: &str = "000102030405060708090a0b0c0d0e0f1011121314151617f88ee194a8d3b2625b7e84902794388e12b7242dd39c";

    fn decode_hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let key = Key::random();
        let blob = seal(&key, b"aad", b"some secret value");
        for i in 0..blob.len() * 8 {
            let mut bad = blob.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert_eq!(open(&key, b"aad", &bad).unwrap_err(), DecryptError);
        }
        assert!(open(&key, b"aae", &blob).is_err());
        assert!(open(&Key::random(), b"aad", &blob).is_err());
        assert!(open(&key, b"aad", &blob[..OVERHEAD - 1]).is_err());
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(data in proptest::collection::vec(any::<u8>(), 0..4096), aad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let key = Key::random();
            let blob = seal(&key, &aad, &data);
            prop_assert_eq!(blob.len(), data.len() + OVERHEAD);
            prop_assert_eq!(&open(&key, &aad, &blob).unwrap()[..], &data[..]);
        }
    }
}
