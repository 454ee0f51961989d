//! Named-key records: headers and versions sealed, found and opened, under
//! a blind index and the vault's data keys.

use super::*;

// ------------------------------------------------------------------ records

/// A named key's header (record kind 4). Authoritative: the plaintext
/// columns of `named_keys` mirror `latest`, `min_decrypt` and `deleted_at`
/// and are checked against it on every read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct KeyHeader {
    pub(super) name: String,
    pub(super) key_type: KeyType,
    pub(super) created_at: i64,
    pub(super) min_decrypt: u32,
    pub(super) latest: u32,
    pub(super) deleted_at: Option<i64>,
}

/// One version of a named key (record kind 5), borrowed from the zeroizing
/// plaintext.
#[derive(Serialize, Deserialize)]
pub(super) struct KeyVersionBody<'a> {
    #[serde(with = "serde_bytes", borrow)]
    pub(super) material: &'a [u8],
    pub(super) created_at: i64,
}

/// The blind index of a named key: HMAC-SHA256(index key, "key:" ‖ name).
pub(super) fn blind_index(keys: &VaultKeys, name: &str) -> [u8; 32] {
    keys.index.mac(&[NAMED_KEY_INDEX_PREFIX, name.as_bytes()])
}

pub(super) fn new_header(name: &SecretName, key_type: KeyType, now: i64, first: u32) -> KeyHeader {
    KeyHeader {
        name: name.to_string(),
        key_type,
        created_at: now,
        min_decrypt: first,
        latest: first,
        deleted_at: None,
    }
}

pub(super) fn info_of(
    v: &Vault,
    owner: Owner,
    name: &SecretName,
    header: &KeyHeader,
) -> Result<KeyInfo> {
    let encryptions = if header.key_type == KeyType::Aes256Gcm {
        v.conn()
            .prepare_cached(
                "SELECT sealed FROM named_key_versions WHERE key_id_ref = ?1 AND version = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![owner.id, header.latest], |r| r.get::<_, u64>(0))
                    .optional()
            })
            .map_err(|e| v.db(e))?
    } else {
        None
    };
    Ok(KeyInfo {
        name: name.clone(),
        key_type: header.key_type,
        latest: header.latest,
        min_decryption_version: header.min_decrypt,
        created_at: header.created_at,
        encryptions,
        encryption_budget: encryptions.map(|_| GCM_BUDGET),
    })
}

pub(super) fn next_version(name: &SecretName, latest: u32) -> Result<u32> {
    latest.checked_add(1).ok_or_else(|| {
        Error::Validation(format!(
            "named key '{name}' has used every version number; create a key under a new name"
        ))
    })
}

pub(super) fn next_id(v: &Vault) -> Result<i64> {
    v.conn()
        .prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM named_keys")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(|e| v.db(e))
}

pub(super) fn not_found(name: &SecretName) -> Error {
    Error::NotFound {
        store: STORE.into(),
        what: format!("named key '{name}'"),
    }
}

pub(super) fn destroyed(name: &SecretName, version: u32) -> Error {
    Error::NotFound {
        store: STORE.into(),
        what: format!("named key '{name}' version {version} (destroyed)"),
    }
}

pub(super) fn over_budget(name: &SecretName, version: u32, limit: u64) -> Error {
    Error::KeyBudgetSpent {
        name: name.to_string(),
        version,
        limit,
    }
}

pub(super) fn no_envelopes(name: &SecretName, key_type: KeyType) -> Error {
    Error::WrongKeyType {
        name: name.to_string(),
        key_type: key_type.to_string(),
        purpose: "encrypt files, not envelopes",
    }
}

pub(super) fn envelope_error(e: EnvelopeError) -> Error {
    match e {
        EnvelopeError::Malformed(_) => Error::Integrity {
            store: STORE.into(),
            detail: format!("{e}: it was altered or cut short"),
        },
        EnvelopeError::UnsupportedFormat(found) => Error::UnsupportedFormat {
            what: "the envelope".into(),
            found,
            supported: "v1".into(),
        },
        EnvelopeError::NoEnvelopes(_) => Error::Validation(e.to_string()),
        _ => Error::Malformed {
            what: "the envelope".into(),
            problem: e.to_string(),
        },
    }
}

/// A key that exists and is not deleted: its owner, header and blind index.
pub(super) fn live(v: &Vault, name: &SecretName) -> Result<(Owner, KeyHeader, [u8; 32])> {
    let bidx = blind_index(v.vault_keys(), name.as_str());
    match find(v, name, &bidx)? {
        Some((owner, header)) if header.deleted_at.is_none() => Ok((owner, header, bidx)),
        _ => Err(not_found(name)),
    }
}

/// The row under `bidx`, checked: its header must name `name` and agree
/// with the plaintext columns.
pub(super) fn find(
    v: &Vault,
    name: &SecretName,
    bidx: &[u8; 32],
) -> Result<Option<(Owner, KeyHeader)>> {
    type Row = (i64, u32, Vec<u8>, u32, u32, Option<i64>, Vec<u8>);
    let row: Option<Row> = v
        .conn()
        .prepare_cached(
            "SELECT id, header_key, header, latest, min_decrypt, deleted_at, uid
             FROM named_keys WHERE bidx = ?1",
        )
        .and_then(|mut s| s.query_row([&bidx[..]], |r| r.try_into()).optional())
        .map_err(|e| v.db(e))?;
    let Some((id, key_id, blob, latest, min_decrypt, deleted_at, uid)) = row else {
        return Ok(None);
    };
    let owner = Owner::from_row(id, &uid, "named key")?;
    let header = open_header(v, owner, key_id, &blob)?;
    if header.name != name.as_str() {
        return Err(v.integrity(format!(
            "the record found for named key '{name}' belongs to another key"
        )));
    }
    check_columns(v, &header, latest, min_decrypt, deleted_at)?;
    Ok(Some((owner, header)))
}

pub(super) fn check_columns(
    v: &Vault,
    header: &KeyHeader,
    latest: u32,
    min_decrypt: u32,
    deleted_at: Option<i64>,
) -> Result<()> {
    if (header.latest, header.min_decrypt, header.deleted_at) != (latest, min_decrypt, deleted_at)
        || header.min_decrypt == 0
        || header.min_decrypt > header.latest
    {
        return Err(v.integrity(format!(
            "versions or state of named key '{}' do not match its header",
            header.name
        )));
    }
    Ok(())
}

/// The associated data of a named key's header (record kind 4).
pub(super) fn header_aad(v: &Vault, owner: Owner, key_id: u32) -> [u8; BOUND_AAD_LEN] {
    owner.aad(RecordKind::NamedKeyHeader, &v.id(), 0, key_id)
}

/// The associated data of a named key's version (record kind 5).
pub(super) fn version_aad(
    v: &Vault,
    owner: Owner,
    version: u32,
    key_id: u32,
) -> [u8; BOUND_AAD_LEN] {
    owner.aad(
        RecordKind::NamedKeyVersion,
        &v.id(),
        u64::from(version),
        key_id,
    )
}

pub(super) fn open_header(v: &Vault, owner: Owner, key_id: u32, blob: &[u8]) -> Result<KeyHeader> {
    let plain = open(v.dek(key_id)?, &header_aad(v, owner, key_id), blob).map_err(|_| {
        v.integrity(format!(
            "the header of named key {} does not decrypt",
            owner.id
        ))
    })?;
    decode_owned(&plain, "a named-key header")
}

pub(super) fn store_header(
    v: &Vault,
    owner: Owner,
    header: &KeyHeader,
    bidx: &[u8; 32],
) -> Result<()> {
    let plain = encode(header, 64 + header.name.len());
    let sealed = seal(v.write_dek(), &header_aad(v, owner, v.write_key()), &plain);
    v.conn()
        .prepare_cached(
            "INSERT INTO named_keys(id, bidx, header, header_key, latest, min_decrypt, deleted_at, uid)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(id) DO UPDATE SET bidx = excluded.bidx, header = excluded.header,
               header_key = excluded.header_key, latest = excluded.latest,
               min_decrypt = excluded.min_decrypt, deleted_at = excluded.deleted_at,
               uid = excluded.uid",
        )
        .and_then(|mut s| {
            s.execute(params![
                owner.id,
                &bidx[..],
                sealed,
                v.write_key(),
                header.latest,
                header.min_decrypt,
                header.deleted_at,
                &owner.uid[..]
            ])
        })
        .map_err(|e| v.db(e))?;
    Ok(())
}

pub(super) fn store_version(
    v: &Vault,
    owner: Owner,
    version: u32,
    material: &Key,
    created_at: i64,
) -> Result<()> {
    let body = KeyVersionBody {
        material: material.expose_secret(),
        created_at,
    };
    let plain = encode(&body, 48);
    let sealed = seal(
        v.write_dek(),
        &version_aad(v, owner, version, v.write_key()),
        &plain,
    );
    v.conn()
        .prepare_cached(
            "INSERT INTO named_key_versions(key_id_ref, version, data_key, body)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![owner.id, version, v.write_key(), sealed]))
        .map_err(|e| v.db(e))?;
    Ok(())
}

/// Unwraps one version's material; `None` when the version has no row.
pub(super) fn load_material(
    v: &Vault,
    owner: Owner,
    name: &SecretName,
    version: u32,
) -> Result<Option<Key>> {
    let row: Option<(u32, Vec<u8>)> = v
        .conn()
        .prepare_cached(
            "SELECT data_key, body FROM named_key_versions WHERE key_id_ref = ?1 AND version = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![owner.id, version], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(|e| v.db(e))?;
    let Some((key_id, blob)) = row else {
        return Ok(None);
    };
    open_material(v, owner, version, key_id, &blob)
        .map(Some)
        .map_err(|_| {
            v.integrity(format!(
                "named key '{name}' version {version} does not decrypt"
            ))
        })
}

pub(super) fn open_material(
    v: &Vault,
    owner: Owner,
    version: u32,
    key_id: u32,
    blob: &[u8],
) -> Result<Key> {
    let bad = || {
        v.integrity(format!(
            "named key {} version {version} does not decrypt",
            owner.id
        ))
    };
    let plain = open(
        v.dek(key_id)?,
        &version_aad(v, owner, version, key_id),
        blob,
    )
    .map_err(|_| bad())?;
    let body: KeyVersionBody = decode(&plain, "a named-key version")?;
    Key::from_slice(body.material).ok_or_else(bad)
}

/// Whether the named-key tables exist (a vault made before them may lack
/// them until its first use of named keys).
pub(super) fn tables_exist(v: &Vault) -> Result<bool> {
    v.conn()
        .query_row(
            "SELECT count(*) = 2 FROM sqlite_master WHERE type = 'table'
             AND name IN ('named_keys', 'named_key_versions')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| v.db(e))
}

/// Decodes `plain` as a named key's header and as a key version, as the
/// vault does after opening their records (for the fuzz targets).
pub(crate) fn fuzz_decode(plain: &[u8]) {
    let _ = decode_owned::<KeyHeader>(plain, "fuzz");
    let _ = decode::<KeyVersionBody<'_>>(plain, "fuzz");
}
