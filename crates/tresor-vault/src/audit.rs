//! The audit chain: every entry sealed, then MAC-chained under the audit key,
//! with the head written in the same transaction as the change it records
//! (VAULT-FORMAT.md, "Audit chain").
//!
//! The head is the row of the `audit` table whose `seq` is [`HEAD_SEQ`]
//! (2^63 - 1): its `at` is the last entry's sequence number, its `body` the
//! last entry's MAC, and its `mac` a keyed tag over both
//! ([`VaultKeys::audit_head_tag`]), so that cutting entries off the end and
//! pointing the head at an earlier entry needs the audit key. Being the largest key, it sits in the table's
//! rightmost leaf, where new entries land too, so an entry and its head cost
//! one page write instead of two: a durable `set` is bound by how many pages
//! its commit syncs.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use tresor_crypto::{Key, RecordAad, RecordKind, VaultKeys, open, seal};

use crate::payload::{AuditBody, decode_owned, encode};
use crate::vault::now_ms;

/// One audit entry as read back. Never holds a value.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When, in ms since the epoch (UTC).
    pub at: i64,
    /// Who (OS user).
    pub actor: String,
    /// What: `set`, `get`, `delete`, `rollback`…
    pub operation: String,
    /// Which store.
    pub store: String,
    /// Which secret, if one.
    pub name: Option<String>,
    /// Versions involved.
    pub versions: Vec<u64>,
    /// `ok`, or the kind of error (`not_found`, `conflict`…).
    pub result: String,
    /// The reason given, if any.
    pub reason: Option<String>,
}

/// Which entries `audit_log` returns.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only entries about this secret.
    pub name: Option<String>,
    /// Only the last `limit` matching entries.
    pub limit: Option<usize>,
    /// Leave out read entries (`get`, `list`, `history`) and uses of named
    /// keys (`key list`, `key encrypt`, `key decrypt`, `key rewrap`).
    pub writes_only: bool,
}

pub(crate) enum AuditError {
    Db(rusqlite::Error),
    Broken(String),
}

impl From<rusqlite::Error> for AuditError {
    fn from(e: rusqlite::Error) -> Self {
        AuditError::Db(e)
    }
}

/// The `seq` of the head row.
pub const HEAD_SEQ: i64 = i64::MAX;

/// The chain head: (last sequence number, its MAC, the head's tag);
/// (0, zeros, zeros) when empty. A head row of the wrong shape reads as a
/// broken chain in `verify`.
fn head(conn: &Connection) -> rusqlite::Result<(u64, [u8; 32], [u8; 32])> {
    let row: Option<(i64, Vec<u8>, Vec<u8>)> = conn
        .prepare_cached("SELECT at, body, mac FROM audit WHERE seq = ?1")?
        .query_row([HEAD_SEQ], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    Ok(match row {
        Some((seq, last, tag)) if seq >= 0 && last.len() == 32 && tag.len() == 32 => (
            seq as u64,
            last[..].try_into().expect("32 bytes"),
            tag[..].try_into().expect("32 bytes"),
        ),
        Some(_) => (u64::MAX, [0; 32], [0; 32]),
        None => (0, [0; 32], [0; 32]),
    })
}

/// Writes the head row for entry `seq` whose MAC is `mac`.
pub(crate) fn write_head(
    conn: &Connection,
    keys: &VaultKeys,
    seq: u64,
    mac: &[u8; 32],
) -> rusqlite::Result<()> {
    let tag = keys.audit_head_tag(seq, mac);
    conn.prepare_cached(
        "INSERT INTO audit(seq, at, key_id, body, mac) VALUES (?1, ?2, 0, ?3, ?4)
         ON CONFLICT(seq) DO UPDATE SET at = excluded.at, body = excluded.body, mac = excluded.mac",
    )?
    .execute(params![HEAD_SEQ, seq as i64, &mac[..], &tag[..]])?;
    Ok(())
}

/// Appends one entry; the caller holds a write transaction.
pub(crate) fn append(
    conn: &Connection,
    keys: &VaultKeys,
    vault_id: &[u8; 16],
    key_id: u32,
    dek: &Key,
    body: &AuditBody,
) -> rusqlite::Result<()> {
    append_at(conn, keys, vault_id, key_id, dek, body, None)
}

/// Appends one entry stamped `at` (now when `None`): an unlock failure
/// folded in later keeps the time it happened.
pub(crate) fn append_at(
    conn: &Connection,
    keys: &VaultKeys,
    vault_id: &[u8; 16],
    key_id: u32,
    dek: &Key,
    body: &AuditBody,
    at: Option<i64>,
) -> rusqlite::Result<()> {
    let (last, prev, _) = head(conn)?;
    if last == u64::MAX {
        // A head row of the wrong shape: refuse to extend a chain whose end
        // is unknown (SQLITE_CORRUPT maps to an integrity error).
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some("the audit chain head is malformed".into()),
        ));
    }
    let seq = last + 1;
    let at = at.unwrap_or_else(now_ms);
    let aad = RecordAad {
        kind: RecordKind::AuditEntry,
        vault_id: *vault_id,
        row: seq,
        version: 0,
        key_id,
    };
    let plain = encode(body, 128);
    let sealed = seal(dek, &aad.bytes(), &plain);
    let mac = keys.audit_mac(&prev, seq, at, &sealed);
    conn.prepare_cached(
        "INSERT INTO audit(seq, at, key_id, body, mac) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![seq, at, key_id, sealed, &mac[..]])?;
    write_head(conn, keys, seq, &mac)
}

type Row = (u64, i64, u32, Vec<u8>, Vec<u8>);

fn rows(conn: &Connection) -> rusqlite::Result<Vec<Row>> {
    conn.prepare("SELECT seq, at, key_id, body, mac FROM audit WHERE seq < ?1 ORDER BY seq")?
        .query_map([HEAD_SEQ], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect()
}

fn open_entry(
    data_keys: &HashMap<u32, Key>,
    vault_id: &[u8; 16],
    (seq, at, key_id, body, _): &Row,
) -> Result<AuditEntry, AuditError> {
    let key = data_keys.get(key_id).ok_or_else(|| {
        AuditError::Broken(format!("audit entry {seq} names an unknown data key"))
    })?;
    let aad = RecordAad {
        kind: RecordKind::AuditEntry,
        vault_id: *vault_id,
        row: *seq,
        version: 0,
        key_id: *key_id,
    };
    let plain = open(key, &aad.bytes(), body)
        .map_err(|_| AuditError::Broken(format!("audit entry {seq} does not decrypt")))?;
    let b: AuditBody = decode_owned(&plain, "an audit entry")
        .map_err(|_| AuditError::Broken(format!("audit entry {seq} does not decode")))?;
    Ok(AuditEntry {
        seq: *seq,
        at: *at,
        actor: b.actor,
        operation: b.operation,
        store: b.store,
        name: b.name,
        versions: b.versions,
        result: b.result,
        reason: b.reason,
    })
}

/// Reads and decrypts entries.
pub(crate) fn read(
    conn: &Connection,
    _keys: &VaultKeys,
    data_keys: &HashMap<u32, Key>,
    vault_id: &[u8; 16],
    filter: &AuditFilter,
) -> Result<Vec<AuditEntry>, AuditError> {
    let mut out = Vec::new();
    for row in rows(conn)? {
        let entry = open_entry(data_keys, vault_id, &row)?;
        if filter
            .name
            .as_ref()
            .is_some_and(|n| entry.name.as_ref() != Some(n))
        {
            continue;
        }
        if filter.writes_only
            && matches!(
                entry.operation.as_str(),
                "get"
                    | "list"
                    | "history"
                    | "key list"
                    | "key encrypt"
                    | "key decrypt"
                    | "key rewrap"
            )
        {
            continue;
        }
        out.push(entry);
    }
    if let Some(limit) = filter.limit {
        let skip = out.len().saturating_sub(limit);
        out.drain(..skip);
    }
    Ok(out)
}

/// Recomputes the chain; returns the number of entries.
pub(crate) fn verify(
    conn: &Connection,
    keys: &VaultKeys,
    data_keys: &HashMap<u32, Key>,
    vault_id: &[u8; 16],
) -> Result<u64, AuditError> {
    let mut prev = [0u8; 32];
    let mut expected = 1u64;
    for row in rows(conn)? {
        let (seq, at, _, body, mac) = &row;
        if *seq != expected {
            return Err(AuditError::Broken(format!(
                "audit entry {expected} is missing (found {seq} in its place)"
            )));
        }
        let computed = keys.audit_mac(&prev, *seq, *at, body);
        if computed[..] != mac[..] {
            return Err(AuditError::Broken(format!(
                "audit entry {seq} was altered or reordered"
            )));
        }
        open_entry(data_keys, vault_id, &row)?;
        prev = computed;
        expected += 1;
    }
    let (head_seq, head_mac, head_tag) = head(conn)?;
    let tag_ok = head_seq == 0 || keys.audit_head_tag(head_seq, &head_mac) == head_tag;
    if head_seq != expected - 1 || head_mac != prev || !tag_ok {
        return Err(AuditError::Broken(format!(
            "the audit head names entry {head_seq} but the chain ends at {}: entries were removed or rolled back",
            expected - 1
        )));
    }
    Ok(expected - 1)
}
