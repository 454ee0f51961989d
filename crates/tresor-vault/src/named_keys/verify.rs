//! Named keys in whole-vault operations: `verify` and the re-sealing rekeys.

use super::*;

/// Checks every named key for `Vault::verify`: headers decrypt, sit under
/// their own blind index and agree with their columns; every version's
/// material decrypts and lies in range; a live key has its newest version,
/// a deleted key none. Returns (keys, versions).
pub(crate) fn verify(v: &mut Vault) -> Result<(u64, u64)> {
    if !tables_exist(v)? {
        return Ok((0, 0));
    }
    type Row = (i64, Vec<u8>, u32, Vec<u8>, u32, u32, Option<i64>, Vec<u8>);
    let rows: Vec<Row> = v
        .conn()
        .prepare(
            "SELECT id, bidx, header_key, header, latest, min_decrypt, deleted_at, uid
             FROM named_keys",
        )
        .and_then(|mut s| s.query_map([], |r| r.try_into())?.collect())
        .map_err(|e| v.db(e))?;
    // Every version must belong to a key (this also reads the table's pages
    // when there is no key at all).
    let orphans: i64 = v
        .conn()
        .query_row(
            "SELECT count(*) FROM named_key_versions
             WHERE key_id_ref NOT IN (SELECT id FROM named_keys)",
            [],
            |r| r.get(0),
        )
        .map_err(|e| v.db(e))?;
    if orphans != 0 {
        return Err(v.integrity(format!(
            "{orphans} named-key versions belong to no named key"
        )));
    }
    let (mut keys, mut versions) = (0, 0);
    for (id, bidx, key_id, blob, latest, min_decrypt, deleted_at, uid) in rows {
        let owner = Owner::from_row(id, &uid, "named key")?;
        let header = open_header(v, owner, key_id, &blob)?;
        let name = &header.name;
        if SecretName::new(name.clone()).is_err() {
            return Err(v.integrity(format!("named key {id} has an invalid name")));
        }
        if blind_index(v.vault_keys(), name)[..] != bidx[..] {
            return Err(v.integrity(format!(
                "named key '{name}' sits under another name's index"
            )));
        }
        check_columns(v, &header, latest, min_decrypt, deleted_at)?;
        let rows = version_rows(v, id)?;
        if header.deleted_at.is_some() && !rows.is_empty() {
            return Err(v.integrity(format!("deleted named key '{name}' still has key material")));
        }
        if header.deleted_at.is_none() && !rows.iter().any(|(n, _, _)| *n == header.latest) {
            return Err(v.integrity(format!(
                "named key '{name}' lacks its newest version {}",
                header.latest
            )));
        }
        for (version, key_id, blob) in rows {
            if version == 0 || version > header.latest {
                return Err(v.integrity(format!(
                    "named key '{name}' has an out-of-range version {version}"
                )));
            }
            open_material(v, owner, version, key_id, &blob)?;
            versions += 1;
        }
        keys += 1;
    }
    Ok((keys, versions))
}

/// Re-seals every named-key record under the vault's current write key,
/// inside the caller's transaction; with `new_keys` (a master-key rotation)
/// the blind indexes are recomputed under the new index key. Returns the
/// number of records rewritten. For `rekey --reencrypt` and `rekey
/// --master`, before the old data keys are destroyed.
pub(crate) fn reseal(v: &Vault, new_keys: Option<&VaultKeys>) -> Result<u64> {
    if !tables_exist(v)? {
        return Ok(0);
    }
    let rows: Vec<(i64, u32, Vec<u8>, Vec<u8>)> = v
        .conn()
        .prepare("SELECT id, header_key, header, uid FROM named_keys ORDER BY id")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })
        .map_err(|e| v.db(e))?;
    let mut records = 0;
    for (id, key_id, blob, uid) in rows {
        let owner = Owner::from_row(id, &uid, "named key")?;
        let header = open_header(v, owner, key_id, &blob)?;
        let bidx = blind_index(new_keys.unwrap_or(v.vault_keys()), &header.name);
        store_header(v, owner, &header, &bidx)?;
        records += 1;
        let versions = version_rows(v, id)?;
        for (version, key_id, blob) in versions {
            let plain = open(
                v.dek(key_id)?,
                &version_aad(v, owner, version, key_id),
                &blob,
            )
            .map_err(|_| {
                v.integrity(format!("named key {id} version {version} does not decrypt"))
            })?;
            let sealed = seal(
                v.write_dek(),
                &version_aad(v, owner, version, v.write_key()),
                &plain,
            );
            v.conn()
                .prepare_cached(
                    "UPDATE named_key_versions SET data_key = ?3, body = ?4
                     WHERE key_id_ref = ?1 AND version = ?2",
                )
                .and_then(|mut s| s.execute(params![id, version, v.write_key(), sealed]))
                .map_err(|e| v.db(e))?;
            records += 1;
        }
    }
    Ok(records)
}

/// A named key's version rows: (version, data key id, sealed body).
fn version_rows(v: &Vault, id: i64) -> Result<Vec<(u32, u32, Vec<u8>)>> {
    v.conn()
        .prepare_cached(
            "SELECT version, data_key, body FROM named_key_versions WHERE key_id_ref = ?1",
        )
        .and_then(|mut s| {
            s.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(|e| v.db(e))
}
