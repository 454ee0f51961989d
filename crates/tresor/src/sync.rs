//! `sync`: two stores kept in step, three-way, from the state of their last
//! sync.
//!
//! # The sync state
//!
//! For each pair of stores (in the order given: `sync a b` and `sync b a`
//! are two pairs) the local vault keeps, under the reserved names
//! `.tresor/sync/<pair>` (a head record) and `.tresor/sync/<pair>/<n>`
//! (shards of about 4000 names), one entry per name synced: the version and
//! change time each store listed for it, and a keyed fingerprint of the
//! value both held (HMAC-SHA256 under a key derived from the local vault's
//! master key, truncated to 128 bits; never the value). `<pair>` is a keyed
//! hash of the two store names.
//!
//! # One run
//!
//! Both stores are listed (names, versions, change times: no values). A
//! side is unchanged when its listing still shows the version and change
//! time of the last sync; only the other names are read, and a value whose
//! fingerprint is the recorded one is unchanged too. Then, per name:
//!
//! - changed (or new) on one side only: copied to the other;
//! - deleted on one side only: deleted on the other (a soft delete where
//!   the store has one);
//! - changed on both sides to the same value, or deleted on both: recorded;
//! - changed on both sides to different values, or changed on one and
//!   deleted on the other, or (first sync) present on both with different
//!   values: a **conflict**, listed and left alone, unless a preference
//!   settles it (`a`, `b`, or `newer`: the later change time, when both
//!   stores give one).
//!
//! The state is written after the changes, so a sync interrupted halfway
//! finds, when run again, both sides holding the same new value (recorded,
//! no conflict) or one side still changed (copied again). The cost of a run
//! is two listings plus work in proportion to the names that changed.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use tresor_core::{
    Capabilities, DeleteMode, Error, Result, SecretInfo, SecretName, SecretValue, Selector,
};
use tresor_crypto::Key;

use crate::manager::Tresor;

/// Where sync states live in the local vault.
pub const STATE_PREFIX: &str = ".tresor/sync/";
/// Names per shard of the state, about.
const PER_SHARD: usize = 4000;
/// Writes per batch (one vault transaction each).
const BATCH: usize = 1000;

/// Which side wins a conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Prefer {
    /// The first store given.
    A,
    /// The second store given.
    B,
    /// The side changed last, when both stores give change times.
    Newer,
}

/// What to sync.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// The first store.
    pub a: String,
    /// The second store.
    pub b: String,
    /// Only names starting with this.
    pub prefix: String,
    /// How conflicts are settled; `None` leaves them alone.
    pub prefer: Option<Prefer>,
    /// Plan only: nothing is written, the state included.
    pub dry_run: bool,
}

impl SyncOptions {
    /// Every name of `a` and `b`, conflicts left alone.
    pub fn new(a: impl Into<String>, b: impl Into<String>) -> Self {
        Self {
            a: a.into(),
            b: b.into(),
            prefix: String::new(),
            prefer: None,
            dry_run: false,
        }
    }
}

/// What a sync did (or, dry, would do) to one name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Copied from the first store to the second.
    CopyAToB,
    /// Copied from the second store to the first.
    CopyBToA,
    /// Deleted in the first store (it was deleted in the second).
    DeleteInA,
    /// Deleted in the second store.
    DeleteInB,
    /// Left alone: a conflict.
    Conflict,
}

/// How one side of a name stands since the last sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SideState {
    /// As at the last sync.
    Unchanged,
    /// Changed since (or new).
    Changed,
    /// Deleted since.
    Deleted,
    /// Not there, and not there at the last sync either.
    Absent,
}

/// One name the sync acted on.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    /// The name.
    pub name: String,
    /// What was done.
    pub action: Action,
    /// The first store's side.
    pub a: SideState,
    /// The second store's side.
    pub b: SideState,
    /// For a settled conflict: the side that won.
    pub settled_by: Option<Prefer>,
}

/// The result of a sync.
#[derive(Clone, Debug, Serialize)]
pub struct SyncReport {
    /// The first store.
    pub a: String,
    /// The second store.
    pub b: String,
    /// The prefix.
    pub prefix: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// The first sync of this pair (no state yet).
    pub first_sync: bool,
    /// Names listed on either side.
    pub names: usize,
    /// Names whose values were read (changed, or without a reliable stamp).
    pub read: usize,
    /// Names in step, untouched.
    pub unchanged: usize,
    /// Every name acted on (conflicts included), sorted.
    pub changes: Vec<Change>,
    /// Conflicts left alone.
    pub conflicts: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    version: u64,
    /// ms since the epoch; 0 when unknown.
    updated_at: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    a: Stamp,
    b: Stamp,
    fp: [u8; 16],
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Head {
    shards: u32,
}

type State = BTreeMap<String, Entry>;

/// Runs a sync (see the [module docs](self)).
pub fn sync(t: &mut Tresor, options: &SyncOptions) -> Result<SyncReport> {
    let (a, b) = (options.a.as_str(), options.b.as_str());
    if t.same_store(a, b)? {
        return Err(Error::Validation(format!(
            "'{a}' and '{b}' are the same store: nothing to sync"
        )));
    }
    let caps_a = t.store_capabilities(a)?;
    let caps_b = t.store_capabilities(b)?;
    let pair = keyed_id(t, b"tresor v1 sync pair", &[a.as_bytes(), b.as_bytes()])?;
    let fp_key = {
        let vault = t.local_vault()?;
        vault
            .master_key()
            .derive(&vault.id(), b"tresor v1 sync fingerprint")
    };
    let (head, mut state) = load_state(t, &pair)?;
    let first_sync = head.is_none();
    let list_a: BTreeMap<String, SecretInfo> = t
        .list_store(a, &options.prefix)?
        .into_iter()
        .map(|i| (i.name.as_str().to_string(), i))
        .collect();
    let list_b: BTreeMap<String, SecretInfo> = t
        .list_store(b, &options.prefix)?
        .into_iter()
        .map(|i| (i.name.as_str().to_string(), i))
        .collect();
    let mut names: BTreeSet<&str> = list_a.keys().map(String::as_str).collect();
    names.extend(list_b.keys().map(String::as_str));
    let tracked: Vec<String> = state
        .range(options.prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&options.prefix))
        .map(|(k, _)| k.clone())
        .collect();
    names.extend(tracked.iter().map(String::as_str));

    let mut report = SyncReport {
        a: a.into(),
        b: b.into(),
        prefix: options.prefix.clone(),
        dry_run: options.dry_run,
        first_sync,
        names: names.len(),
        read: 0,
        unchanged: 0,
        changes: Vec::new(),
        conflicts: 0,
    };
    let fp = |name: &str, value: &SecretValue| -> [u8; 16] {
        let mac = fp_key.mac(&[
            pair.as_bytes(),
            b"\0",
            name.as_bytes(),
            b"\0",
            value.expose_secret(),
        ]);
        let mut out = [0u8; 16];
        out.copy_from_slice(&mac[..16]);
        out
    };

    // The values to read, found from the listings and the state alone,
    // then read per side in one batch (one vault transaction) instead of
    // one read each.
    let needs_read =
        |info: Option<&SecretInfo>, recorded: Option<Stamp>, caps: &Capabilities| match (
            info, recorded,
        ) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(i), Some(s)) => !stamp_unchanged(i, s, caps),
        };
    let mut read_a: Vec<SecretName> = Vec::new();
    let mut read_b: Vec<SecretName> = Vec::new();
    for name in &names {
        let entry = state.get(*name);
        if let Some(i) = list_a.get(*name)
            && needs_read(Some(i), entry.map(|e| e.a), &caps_a)
        {
            read_a.push(i.name.clone());
        }
        if let Some(i) = list_b.get(*name)
            && needs_read(Some(i), entry.map(|e| e.b), &caps_b)
        {
            read_b.push(i.name.clone());
        }
    }
    let mut values_a = read_values(t, a, &read_a)?;
    let mut values_b = read_values(t, b, &read_b)?;

    let mut to_b: Vec<(SecretName, SecretValue, Stamp)> = Vec::new();
    let mut to_a: Vec<(SecretName, SecretValue, Stamp)> = Vec::new();
    let mut delete_a: Vec<SecretName> = Vec::new();
    let mut delete_b: Vec<SecretName> = Vec::new();
    let mut state_changed = false;

    for name in names {
        let (ia, ib) = (list_a.get(name), list_b.get(name));
        let entry = state.get(name).cloned();
        let sname = match (ia, ib) {
            (Some(i), _) | (None, Some(i)) => i.name.clone(),
            (None, None) => SecretName::new(name)?,
        };
        // Each side: its state, and its value when it had to be read.
        let side = |store: &str,
                    info: Option<&SecretInfo>,
                    recorded: Option<Stamp>,
                    caps: &Capabilities,
                    report: &mut SyncReport,
                    values: &mut std::collections::HashMap<String, SecretValue>|
         -> Result<(SideState, Option<SecretValue>)> {
            let mut read = || -> Result<SecretValue> {
                report.read += 1;
                values.remove(name).ok_or_else(|| Error::NotFound {
                    store: store.into(),
                    what: format!("'{name}' (listed, then gone)"),
                })
            };
            match (info, recorded, &entry) {
                (None, None, _) => Ok((SideState::Absent, None)),
                (None, Some(_), _) => Ok((SideState::Deleted, None)),
                (Some(_), None, _) | (Some(_), Some(_), None) => {
                    Ok((SideState::Changed, Some(read()?)))
                }
                (Some(i), Some(s), Some(e)) => {
                    if stamp_unchanged(i, s, caps) {
                        return Ok((SideState::Unchanged, None));
                    }
                    let v = read()?;
                    if fp(name, &v) == e.fp {
                        Ok((SideState::Unchanged, None))
                    } else {
                        Ok((SideState::Changed, Some(v)))
                    }
                }
            }
        };
        let (sa, va) = side(
            a,
            ia,
            entry.as_ref().map(|e| e.a),
            &caps_a,
            &mut report,
            &mut values_a,
        )?;
        let (sb, vb) = side(
            b,
            ib,
            entry.as_ref().map(|e| e.b),
            &caps_b,
            &mut report,
            &mut values_b,
        )?;
        let stamp_a = ia.map(stamp_of).unwrap_or_default();
        let stamp_b = ib.map(stamp_of).unwrap_or_default();
        use SideState::*;
        let mut change = |action: Action, settled_by: Option<Prefer>| {
            report.changes.push(Change {
                name: name.to_string(),
                action,
                a: sa,
                b: sb,
                settled_by,
            });
        };
        // A conflict: the preference, if any, names the winning action.
        let settle = |prefer: Option<Prefer>| -> Option<(Prefer, bool)> {
            match prefer? {
                Prefer::A => Some((Prefer::A, true)),
                Prefer::B => Some((Prefer::B, false)),
                Prefer::Newer => {
                    let (ta, tb) = (stamp_a.updated_at, stamp_b.updated_at);
                    if sa == Deleted || sb == Deleted || ta == 0 || tb == 0 || ta == tb {
                        None
                    } else {
                        Some((Prefer::Newer, ta > tb))
                    }
                }
            }
        };
        match (sa, sb) {
            (Unchanged, Unchanged) => {
                report.unchanged += 1;
                if let Some(e) = state.get_mut(name)
                    && (e.a != stamp_a || e.b != stamp_b)
                {
                    e.a = stamp_a;
                    e.b = stamp_b;
                    state_changed = true;
                }
            }
            // A side is Absent only with no state, Unchanged only with one:
            // never together.
            (Unchanged, Absent) | (Absent, Unchanged) => report.unchanged += 1,
            (Absent, Absent) | (Deleted, Deleted) | (Deleted, Absent) | (Absent, Deleted) => {
                if state.remove(name).is_some() {
                    state_changed = true;
                }
            }
            (Changed, Unchanged | Absent) => {
                change(Action::CopyAToB, None);
                to_b.push((sname, va.expect("read"), stamp_a));
            }
            (Unchanged | Absent, Changed) => {
                change(Action::CopyBToA, None);
                to_a.push((sname, vb.expect("read"), stamp_b));
            }
            (Deleted, Unchanged) => {
                change(Action::DeleteInB, None);
                delete_b.push(sname);
            }
            (Unchanged, Deleted) => {
                change(Action::DeleteInA, None);
                delete_a.push(sname);
            }
            (Changed, Changed) => {
                let (va, vb) = (va.expect("read"), vb.expect("read"));
                if va == vb {
                    report.unchanged += 1;
                    state.insert(
                        name.to_string(),
                        Entry {
                            a: stamp_a,
                            b: stamp_b,
                            fp: fp(name, &va),
                        },
                    );
                    state_changed = true;
                } else {
                    match settle(options.prefer) {
                        Some((by, true)) => {
                            change(Action::CopyAToB, Some(by));
                            to_b.push((sname, va, stamp_a));
                        }
                        Some((by, false)) => {
                            change(Action::CopyBToA, Some(by));
                            to_a.push((sname, vb, stamp_b));
                        }
                        None => {
                            change(Action::Conflict, None);
                            report.conflicts += 1;
                        }
                    }
                }
            }
            (Changed, Deleted) => match settle(options.prefer) {
                Some((by, true)) => {
                    change(Action::CopyAToB, Some(by));
                    to_b.push((sname, va.expect("read"), stamp_a));
                }
                Some((by, false)) => {
                    change(Action::DeleteInA, Some(by));
                    delete_a.push(sname);
                }
                None => {
                    change(Action::Conflict, None);
                    report.conflicts += 1;
                }
            },
            (Deleted, Changed) => match settle(options.prefer) {
                Some((by, true)) => {
                    change(Action::DeleteInB, Some(by));
                    delete_b.push(sname);
                }
                Some((by, false)) => {
                    change(Action::CopyBToA, Some(by));
                    to_a.push((sname, vb.expect("read"), stamp_b));
                }
                None => {
                    change(Action::Conflict, None);
                    report.conflicts += 1;
                }
            },
        }
    }
    if options.dry_run {
        return Ok(report);
    }

    // ---- apply, then record ----
    let reason = Some(format!("sync {a} {b}"));
    for (target, items, copied_from_a) in [(b, &to_b, true), (a, &to_a, false)] {
        for chunk in items.chunks(BATCH) {
            let batch: Vec<(SecretName, SecretValue)> = chunk
                .iter()
                .map(|(n, v, _)| (n.clone(), v.clone()))
                .collect();
            let versions = t.set_many_in(target, &batch, reason.as_deref())?;
            for ((name, value, source_stamp), version) in chunk.iter().zip(versions) {
                let written = Stamp {
                    version,
                    updated_at: 0,
                };
                let (sa, sb) = if copied_from_a {
                    (*source_stamp, written)
                } else {
                    (written, *source_stamp)
                };
                state.insert(
                    name.as_str().to_string(),
                    Entry {
                        a: sa,
                        b: sb,
                        fp: fp(name.as_str(), value),
                    },
                );
                state_changed = true;
            }
        }
    }
    for (target, names, caps) in [(a, &delete_a, &caps_a), (b, &delete_b, &caps_b)] {
        let mode = if caps.soft_delete {
            DeleteMode::Soft
        } else {
            DeleteMode::Purge
        };
        for name in names {
            match t.delete_in(target, name, mode) {
                Ok(()) | Err(Error::NotFound { .. } | Error::Deleted { .. }) => {}
                Err(e) => return Err(e),
            }
            state.remove(name.as_str());
            state_changed = true;
        }
    }
    if state_changed || first_sync {
        save_state(t, &pair, head, &state)?;
    }
    report.changes.sort_by(|x, y| x.name.cmp(&y.name));
    Ok(report)
}

/// The current values of `names` in `store`, read in one batch, by name.
fn read_values(
    t: &mut Tresor,
    store: &str,
    names: &[SecretName],
) -> Result<std::collections::HashMap<String, SecretValue>> {
    let mut out = std::collections::HashMap::with_capacity(names.len());
    for batch in names.chunks(BATCH) {
        for (name, found) in batch.iter().zip(t.read_many_in(store, batch)?) {
            out.insert(name.as_str().to_string(), found?.value);
        }
    }
    Ok(out)
}

fn stamp_of(info: &SecretInfo) -> Stamp {
    Stamp {
        version: info.current,
        updated_at: info.updated_at,
    }
}

/// Whether a listing entry still shows the recorded stamp. A store that
/// keeps versions bumps the version on every change; one that does not
/// must give a change time, else its value is read.
fn stamp_unchanged(info: &SecretInfo, recorded: Stamp, caps: &Capabilities) -> bool {
    let time_same = info.updated_at == recorded.updated_at;
    if caps.versions {
        info.current == recorded.version && (recorded.updated_at == 0 || time_same)
    } else {
        info.updated_at != 0 && time_same && info.current == recorded.version
    }
}

fn shard_of(name: &str, shards: u32) -> u32 {
    // FNV-1a: spreads names over shards; no secrecy needed (the state is
    // encrypted, and the shard a name falls in is never stored).
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % shards.max(1)
}

fn head_name(pair: &str) -> Result<SecretName> {
    SecretName::new(format!("{STATE_PREFIX}{pair}"))
}

fn shard_name(pair: &str, shard: u32) -> Result<SecretName> {
    SecretName::new(format!("{STATE_PREFIX}{pair}/{shard}"))
}

fn corrupt(detail: String) -> Error {
    Error::Integrity {
        store: "local vault".into(),
        detail,
    }
}

fn load_state(t: &mut Tresor, pair: &str) -> Result<(Option<Head>, State)> {
    let vault = t.local_vault()?;
    let head: Head = match vault.get(&head_name(pair)?, Selector::default()) {
        Ok(s) => postcard::from_bytes(s.value.expose_secret())
            .map_err(|e| corrupt(format!("the sync state head does not parse: {e}")))?,
        Err(Error::NotFound { .. } | Error::Deleted { .. }) => return Ok((None, State::new())),
        Err(e) => return Err(e),
    };
    let mut state = State::new();
    for shard in 0..head.shards {
        let s = vault.get(&shard_name(pair, shard)?, Selector::default())?;
        let part: State = postcard::from_bytes(s.value.expose_secret())
            .map_err(|e| corrupt(format!("sync state shard {shard} does not parse: {e}")))?;
        state.extend(part);
    }
    Ok((Some(head), state))
}

/// Writes every shard and the head in one vault transaction.
fn save_state(t: &mut Tresor, pair: &str, old: Option<Head>, state: &State) -> Result<()> {
    let shards = (state.len().div_ceil(PER_SHARD).max(1)).next_power_of_two() as u32;
    let mut parts: Vec<State> = (0..shards).map(|_| State::new()).collect();
    for (name, entry) in state {
        parts[shard_of(name, shards) as usize].insert(name.clone(), entry.clone());
    }
    let mut records = Vec::with_capacity(parts.len() + 1);
    for (i, part) in parts.iter().enumerate() {
        records.push((shard_name(pair, i as u32)?, encode(part)?));
    }
    records.push((head_name(pair)?, encode(&Head { shards })?));
    let vault = t.local_vault()?;
    vault.put_many(&records, Some("sync state"), |_| {})?;
    // Shards of a larger layout, no longer read.
    for shard in shards..old.map_or(0, |h| h.shards) {
        match vault.delete(&shard_name(pair, shard)?, DeleteMode::Purge) {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn encode<T: Serialize>(value: &T) -> Result<SecretValue> {
    postcard::to_allocvec(value)
        .map(SecretValue::from)
        .map_err(|e| Error::Validation(format!("sync state: {e}")))
}

/// A short id for tresor's own records: hex of a keyed hash of `parts`
/// under a key the local vault's master key derives for `label`. Stable for
/// one vault; says nothing of the parts to whoever lacks the key.
pub(crate) fn keyed_id(t: &mut Tresor, label: &[u8], parts: &[&[u8]]) -> Result<String> {
    let vault = t.local_vault()?;
    let key: Key = vault.master_key().derive(&vault.id(), label);
    let mut framed: Vec<&[u8]> = Vec::with_capacity(parts.len() * 2);
    for p in parts {
        framed.push(p);
        framed.push(b"\0");
    }
    let mac = key.mac(&framed);
    Ok(mac[..12].iter().map(|b| format!("{b:02x}")).collect())
}
