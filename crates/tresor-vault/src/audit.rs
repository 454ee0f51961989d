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
//!
//! Every vault has a head (its `init` entry is written with one): a missing
//! head, or a chain that does not end exactly at it, is an integrity error.
//! An older copy of the head put back with the entries after it removed is
//! found when the vault holds a secret version or data key that only those
//! entries recorded ([`Chain::written`], checked by the vault); rolling back
//! the whole file is found only against an [`AuditAnchor`] kept elsewhere.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use tresor_core::Operation;
use tresor_crypto::{Key, RecordAad, RecordKind, VaultKeys, open, seal};

use crate::payload::{AuditBody, decode_audit, encode};
use crate::vault::now_ms;

/// The audit flag of a value stored without its validation rules
/// (`--no-validate`), in [`AuditEntry::flags`].
pub const FLAG_UNVALIDATED: &str = "unvalidated";

/// One audit entry as read back. Never holds a value.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When, in ms since the epoch (UTC).
    pub at: i64,
    /// Who (OS user).
    pub actor: String,
    /// What: `set`, `get`, `delete`, `rollback`… (serialized as its stored
    /// spelling, [`Operation::as_str`]).
    pub operation: Operation,
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
    /// Overrides the writer chose: `unvalidated` when a value was stored
    /// without its validation rules (`--no-validate`). Empty for most entries.
    pub flags: Vec<String>,
}

/// Which entries `audit_log` returns.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only entries about this secret.
    pub name: Option<String>,
    /// Only the last `limit` matching entries.
    pub limit: Option<usize>,
    /// Keep only changes ([`Operation::is_write`]) and failed unlocks
    /// ([`Operation::is_unlock_failure`]): leave out reads (`get`, `list`,
    /// `history`) and every use of a named key (`key list`, `key encrypt`,
    /// `key decrypt`, `key rewrap`, `key recipient`, `key encrypt file`,
    /// `key decrypt file`).
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

/// The chain head: the last entry's sequence number and MAC, and the head's
/// tag over both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub seq: u64,
    pub mac: [u8; 32],
    pub tag: [u8; 32],
}

fn corrupt(what: &str) -> rusqlite::Error {
    // SQLITE_CORRUPT maps to an integrity error (vault.rs, db_error).
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(what.into()),
    )
}

/// The chain head, `None` when there is none. A head row of the wrong shape
/// is an error (SQLITE_CORRUPT: an integrity error), never read as empty.
pub(crate) fn read_head(conn: &Connection) -> rusqlite::Result<Option<Head>> {
    let row: Option<(i64, Vec<u8>, Vec<u8>)> = conn
        .prepare_cached("SELECT at, body, mac FROM audit WHERE seq = ?1")?
        .query_row([HEAD_SEQ], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    match row {
        None => Ok(None),
        Some((seq, mac, tag)) => match (
            u64::try_from(seq),
            <[u8; 32]>::try_from(&mac[..]),
            <[u8; 32]>::try_from(&tag[..]),
        ) {
            (Ok(seq), Ok(mac), Ok(tag)) => Ok(Some(Head { seq, mac, tag })),
            _ => Err(corrupt("the audit chain head is malformed")),
        },
    }
}

/// Writes the head row for entry `seq` whose MAC is `mac`; returns it.
pub(crate) fn write_head(
    conn: &Connection,
    keys: &VaultKeys,
    seq: u64,
    mac: &[u8; 32],
) -> rusqlite::Result<Head> {
    let tag = keys.audit_head_tag(seq, mac);
    conn.prepare_cached(
        "INSERT INTO audit(seq, at, key_id, body, mac) VALUES (?1, ?2, 0, ?3, ?4)
         ON CONFLICT(seq) DO UPDATE SET at = excluded.at, body = excluded.body, mac = excluded.mac",
    )?
    .execute(params![HEAD_SEQ, seq as i64, &mac[..], &tag[..]])?;
    Ok(Head {
        seq,
        mac: *mac,
        tag,
    })
}

/// Appends one entry; the caller holds a write transaction. `known` is the
/// head this handle last wrote (see [`append_at`]).
pub(crate) fn append(
    conn: &Connection,
    keys: &VaultKeys,
    vault_id: &[u8; 16],
    key_id: u32,
    dek: &Key,
    body: &AuditBody,
    known: &Cell<Option<Head>>,
) -> rusqlite::Result<()> {
    append_at(conn, keys, vault_id, key_id, dek, body, None, known)
}

/// Appends one entry stamped `at` (now when `None`): an unlock failure
/// folded in later keeps the time it happened. The chain must have a head
/// (only [`start`] writes entry 1) that carries its tag; a head equal to
/// `known`, the one this handle wrote last, needs no second look. `known`
/// becomes the new head (a rolled-back transaction leaves a `known` that
/// no longer matches the file, so the tag is checked again).
#[expect(
    clippy::too_many_arguments,
    reason = "the entry's whole context, kept explicit"
)]
pub(crate) fn append_at(
    conn: &Connection,
    keys: &VaultKeys,
    vault_id: &[u8; 16],
    key_id: u32,
    dek: &Key,
    body: &AuditBody,
    at: Option<i64>,
    known: &Cell<Option<Head>>,
) -> rusqlite::Result<()> {
    // Refuse to extend a chain whose end is unknown.
    let head = extendable_head(conn, keys, known)?;
    let new = link(
        conn, keys, vault_id, key_id, dek, body, at, head.seq, &head.mac,
    )?;
    known.set(Some(new));
    Ok(())
}

/// The head a new entry may extend: present (only [`start`] writes the
/// first entry) and carrying its tag; a head equal to `known`, the one this
/// handle wrote last, needs no second look.
fn extendable_head(
    conn: &Connection,
    keys: &VaultKeys,
    known: &Cell<Option<Head>>,
) -> rusqlite::Result<Head> {
    let head = read_head(conn)?.ok_or_else(|| {
        corrupt("the audit chain head is missing (every vault has one from its init entry)")
    })?;
    if known.get() != Some(head) && head.tag != keys.audit_head_tag(head.seq, &head.mac) {
        return Err(corrupt(
            "the audit chain head does not carry its tag (altered)",
        ));
    }
    Ok(head)
}

/// Appends `bodies` in order, as [`append`] would one by one, but reads the
/// head once and moves it once, after the last entry (all inside the
/// caller's transaction, so no reader sees the entries without their
/// head). A bulk write (an import of 100k secrets) spent a tenth of its
/// time rewriting the head after every entry.
pub(crate) fn append_many(
    conn: &Connection,
    keys: &VaultKeys,
    vault_id: &[u8; 16],
    key_id: u32,
    dek: &Key,
    bodies: &[AuditBody],
    known: &Cell<Option<Head>>,
) -> rusqlite::Result<()> {
    if bodies.is_empty() {
        return Ok(());
    }
    let head = extendable_head(conn, keys, known)?;
    let (mut seq, mut mac) = (head.seq, head.mac);
    for body in bodies {
        (seq, mac) = insert_entry(conn, keys, vault_id, key_id, dek, body, None, seq, &mac)?;
    }
    known.set(Some(write_head(conn, keys, seq, &mac)?));
    Ok(())
}

/// Writes entry 1 of a new vault's chain, and its head.
pub(crate) fn start(
    conn: &Connection,
    keys: &VaultKeys,
    vault_id: &[u8; 16],
    key_id: u32,
    dek: &Key,
    body: &AuditBody,
) -> rusqlite::Result<()> {
    if read_head(conn)?.is_some() {
        return Err(corrupt("the audit chain already has a head"));
    }
    link(conn, keys, vault_id, key_id, dek, body, None, 0, &[0; 32]).map(drop)
}

/// Seals `body` as entry `last + 1`, chains it to `prev`, and moves the head.
#[expect(
    clippy::too_many_arguments,
    reason = "the entry's whole context, kept explicit like append_at's"
)]
fn link(
    conn: &Connection,
    keys: &VaultKeys,
    vault_id: &[u8; 16],
    key_id: u32,
    dek: &Key,
    body: &AuditBody,
    at: Option<i64>,
    last: u64,
    prev: &[u8; 32],
) -> rusqlite::Result<Head> {
    let (seq, mac) = insert_entry(conn, keys, vault_id, key_id, dek, body, at, last, prev)?;
    write_head(conn, keys, seq, &mac)
}

/// Seals `body` as entry `last + 1` chained to `prev` and inserts it,
/// leaving the head where it was; returns the entry's number and MAC.
#[expect(
    clippy::too_many_arguments,
    reason = "the entry's whole context, kept explicit like append_at's"
)]
fn insert_entry(
    conn: &Connection,
    keys: &VaultKeys,
    vault_id: &[u8; 16],
    key_id: u32,
    dek: &Key,
    body: &AuditBody,
    at: Option<i64>,
    last: u64,
    prev: &[u8; 32],
) -> rusqlite::Result<(u64, [u8; 32])> {
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
    let mac = keys.audit_mac(prev, seq, at, &sealed);
    conn.prepare_cached(
        "INSERT INTO audit(seq, at, key_id, body, mac) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![seq, at, key_id, sealed, &mac[..]])?;
    Ok((seq, mac))
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
    let b: AuditBody = decode_audit(&plain, "an audit entry")
        .map_err(|_| AuditError::Broken(format!("audit entry {seq} does not decode")))?;
    Ok(AuditEntry {
        seq: *seq,
        at: *at,
        actor: b.actor,
        operation: Operation::parse(&b.operation),
        store: b.store,
        name: b.name,
        versions: b.versions,
        result: b.result,
        reason: b.reason,
        flags: b.flags,
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
            && !(entry.operation.is_write() || entry.operation.is_unlock_failure())
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

/// What [`verify`] found in a chain that checked.
pub(crate) struct Chain {
    /// The number of entries (the head's `seq`).
    pub entries: u64,
    /// The last entry's MAC (the head's).
    pub last_mac: [u8; 32],
    /// (name, version) of every secret version that a `set` or `import`
    /// entry records as written: every version in the vault must be here.
    pub written: HashSet<(String, u64)>,
    /// The data key ids that `rekey` entries record as made: every data key
    /// but the first (made by `init`) must be here.
    pub data_keys: HashSet<u64>,
    /// The MAC of the entry whose `seq` was asked for, if the chain has it.
    pub mac_at: Option<[u8; 32]>,
    /// The last `rekey --reencrypt` or `rekey --master` entry: every MAC
    /// before it was recomputed over re-sealed entries then.
    pub resealed_at: Option<(u64, Operation)>,
}

/// Recomputes the chain and checks that it ends exactly at the head;
/// records what [`Chain`] lists and the MAC of entry `mark`.
pub(crate) fn verify(
    conn: &Connection,
    keys: &VaultKeys,
    data_keys: &HashMap<u32, Key>,
    vault_id: &[u8; 16],
    mark: Option<u64>,
) -> Result<Chain, AuditError> {
    let mut chain = Chain {
        entries: 0,
        last_mac: [0; 32],
        written: HashSet::new(),
        data_keys: HashSet::new(),
        mac_at: None,
        resealed_at: None,
    };
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
        let entry = open_entry(data_keys, vault_id, &row)?;
        if entry.result == "ok" {
            match entry.operation {
                Operation::Set | Operation::Import => {
                    if let Some(name) = entry.name {
                        for v in entry.versions {
                            chain.written.insert((name.clone(), v));
                        }
                    }
                }
                Operation::Rekey => chain.data_keys.extend(entry.versions),
                Operation::RekeyReencrypt | Operation::RekeyMaster => {
                    chain.data_keys.extend(entry.versions);
                    chain.resealed_at = Some((*seq, entry.operation));
                }
                _ => {}
            }
        }
        if mark == Some(*seq) {
            chain.mac_at = Some(computed);
        }
        prev = computed;
        expected += 1;
    }
    let last = expected - 1;
    let Some(head) = read_head(conn)? else {
        return Err(AuditError::Broken(format!(
            "the audit chain head is missing (the chain has {last} entries): the audit table \
             was emptied or cut back"
        )));
    };
    let tag_ok = keys.audit_head_tag(head.seq, &head.mac) == head.tag;
    if !tag_ok || head.seq != last || head.mac != prev {
        return Err(AuditError::Broken(format!(
            "the audit head names entry {} but the chain ends at {last}: entries were removed or rolled back",
            head.seq
        )));
    }
    if last == 0 {
        return Err(AuditError::Broken(
            "the audit chain is empty, but every vault has at least its init entry".into(),
        ));
    }
    chain.entries = last;
    chain.last_mac = prev;
    Ok(chain)
}

/// The text form's prefix of an [`AuditAnchor`].
const ANCHOR_PREFIX: &str = "tresor-audit-anchor:v1:";

/// A point of a vault's audit chain, printed by `tresor audit anchor` to be
/// kept outside the vault and checked by `tresor audit verify --anchor`: a
/// vault file rolled back to a copy older than the anchor no longer holds
/// entry `seq` with MAC `mac`.
///
/// Text form: `tresor-audit-anchor:v1:<vault id>:<seq>:<mac>:<tag>`, ids and
/// MACs in lowercase hex; `tag` is the head tag of (`seq`, `mac`) under the
/// audit key, so an anchor made under another audit key (another vault, or
/// before a `rekey --master`, which re-MACs the chain) is told apart from a
/// rolled-back file. Nothing in it is secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditAnchor {
    /// The vault's id.
    pub vault_id: [u8; 16],
    /// The entry's position in the chain, from 1.
    pub seq: u64,
    /// The entry's MAC.
    pub mac: [u8; 32],
    /// The head tag over `seq` and `mac`.
    pub tag: [u8; 32],
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl AuditAnchor {
    /// Parses the text form (surrounding whitespace ignored).
    pub fn parse(text: &str) -> tresor_core::Result<Self> {
        let bad = || tresor_core::Error::Malformed {
            what: "audit anchor".into(),
            problem: format!("expected `{ANCHOR_PREFIX}<vault id>:<seq>:<mac>:<tag>`"),
        };
        let rest = text.trim().strip_prefix(ANCHOR_PREFIX).ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [vault_id, seq, mac, tag] = parts[..] else {
            return Err(bad());
        };
        let seq: u64 = seq
            .parse()
            .ok()
            .filter(|s| *s > 0 && seq.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(bad)?;
        Ok(Self {
            vault_id: unhex(vault_id).ok_or_else(bad)?,
            seq,
            mac: unhex(mac).ok_or_else(bad)?,
            tag: unhex(tag).ok_or_else(bad)?,
        })
    }

    /// The vault id in lowercase hex.
    pub fn vault_id_hex(&self) -> String {
        hex(&self.vault_id)
    }

    /// The MAC in lowercase hex.
    pub fn mac_hex(&self) -> String {
        hex(&self.mac)
    }

    /// The tag in lowercase hex.
    pub fn tag_hex(&self) -> String {
        hex(&self.tag)
    }
}

impl std::fmt::Display for AuditAnchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{ANCHOR_PREFIX}{}:{}:{}:{}",
            self.vault_id_hex(),
            self.seq,
            self.mac_hex(),
            self.tag_hex()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_round_trip_and_refuse_garbage() {
        let a = AuditAnchor {
            vault_id: [0xab; 16],
            seq: 42,
            mac: [0x01; 32],
            tag: [0xfe; 32],
        };
        let text = a.to_string();
        assert_eq!(
            text,
            format!(
                "tresor-audit-anchor:v1:{}:42:{}:{}",
                "ab".repeat(16),
                "01".repeat(32),
                "fe".repeat(32)
            )
        );
        assert_eq!(AuditAnchor::parse(&format!("  {text}\n")).unwrap(), a);
        for bad in [
            String::new(),
            text.replace(":42:", ":0:"),
            text.replace(":42:", ":+42:"),
            text.replace(":42:", "::"),
            text.replace("v1", "v2"),
            format!("{text}:00"),
            text[..text.len() - 2].to_string(),
            text.replacen("ab", "zz", 1),
        ] {
            assert!(AuditAnchor::parse(&bad).is_err(), "{bad:?}");
        }
    }
}
