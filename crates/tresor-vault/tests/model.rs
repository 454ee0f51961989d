//! A model-checked vault: random sequences of operations, run on a real
//! vault through two handles and on a plain in-memory model, must agree at
//! every step.
//!
//! The operations: set (with `expect_version`, staging, a reason, a metadata
//! entry), rollback, promote, rm (soft delete), undelete, purge, metadata
//! changes, settings (`max_versions` pruning, `max_value_len`,
//! `audit_reads`), every key rotation (`rekey`, `rekey --reencrypt`,
//! `rekey --master`, `passwd` on the password slot), closing and reopening
//! a handle with each of its three credentials, a failed unlock, and reads
//! through the handles themselves. Each step names the handle (h0 or h1) it
//! runs on, so the two write between each other's steps.
//!
//! After every step a fresh third handle (the observer) compares every
//! observable with the model: `get` of every version and label of every
//! name, `history` (with and without `--deleted`), `list` (live, deleted,
//! by prefix), `metadata`, `verify`'s counts, `audit verify`, and the
//! audit log's changes entry by entry.
//!
//! `TRESOR_MODEL_CASES` sets the number of cases (default [`DEFAULT_CASES`]);
//! `scripts/model-check [CASES]` runs many in a release build.
//! docs/development.md ("The vault model") says how to replay a failure.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError};
use tresor_core::{DeleteMode, Label, Operation, PutOptions, Selector};
use tresor_crypto::slot::{Credential, RecoveryKey};
use tresor_vault::{AuditFilter, LockedVault, OpenOptions, Settings, Vault};
use zeroize::Zeroizing;

/// Cases per run unless `TRESOR_MODEL_CASES` says otherwise: about a minute
/// of a debug build on an idle 2-core machine (docs/development.md).
const DEFAULT_CASES: u32 = 256;

/// Names drawn for every operation: few, so operations collide, and sharing
/// prefixes, so `list` by prefix has something to tell apart.
const NAMES: [&str; 4] = ["db", "db/pw", "dbx", "api"];
const META_KEYS: [&str; 2] = ["owner", "env"];
const META_VALUES: [&str; 3] = ["ops", "", "dev"];
const REASONS: [&str; 2] = ["rotate", "fix"];
/// The id of the password slot the harness adds after the key-file slot (1)
/// and the recovery slot (2).
const PASSWORD_SLOT: u32 = 3;

// ------------------------------------------------------------------ ops

/// One of [`NAMES`], shown as the name.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct N(usize);

impl N {
    fn str(self) -> &'static str {
        NAMES[self.0]
    }
}

impl fmt::Debug for N {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.str())
    }
}

/// Which credential a handle unlocks with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cred {
    KeyFile,
    Password,
    Recovery,
}

/// An operation, shown compactly (the shrunk sequence is printed with it).
#[derive(Clone)]
enum Op {
    Set {
        name: N,
        value: Vec<u8>,
        stage: bool,
        expect: Option<u64>,
        reason: Option<&'static str>,
        meta: Option<(&'static str, &'static str)>,
    },
    Rollback {
        name: N,
        version: u64,
    },
    Promote {
        name: N,
    },
    Rm {
        name: N,
    },
    Undelete {
        name: N,
    },
    Purge {
        name: N,
    },
    Meta {
        name: N,
        changes: Vec<(&'static str, Option<&'static str>)>,
    },
    Settings {
        max_versions: u32,
        max_value_len: u64,
        audit_reads: bool,
    },
    /// A read through the step's own handle (the observer reads through a
    /// fresh one): `get` of one label or version.
    Get {
        name: N,
        selector: Selector,
    },
    /// `list` through the step's own handle.
    List,
    Rekey,
    Reencrypt,
    RekeyMaster,
    Passwd,
    Reopen {
        with: Cred,
    },
    Close,
    /// An unlock with a wrong password (the previous one after a `passwd`).
    BadUnlock,
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Set {
                name,
                value,
                stage,
                expect,
                reason,
                meta,
            } => {
                write!(f, "set {name:?} = b\"{}\"", value.escape_ascii())?;
                if *stage {
                    f.write_str(" --stage")?;
                }
                if let Some(e) = expect {
                    write!(f, " --expect-version {e}")?;
                }
                if let Some(r) = reason {
                    write!(f, " --reason {r}")?;
                }
                if let Some((k, v)) = meta {
                    write!(f, " --meta {k}={v}")?;
                }
                Ok(())
            }
            Op::Rollback { name, version } => write!(f, "rollback {name:?} {version}"),
            Op::Promote { name } => write!(f, "promote {name:?}"),
            Op::Rm { name } => write!(f, "rm {name:?}"),
            Op::Undelete { name } => write!(f, "undelete {name:?}"),
            Op::Purge { name } => write!(f, "purge {name:?}"),
            Op::Meta { name, changes } => {
                write!(f, "meta {name:?}")?;
                for (k, v) in changes {
                    match v {
                        Some(v) => write!(f, " {k}={v}")?,
                        None => write!(f, " -{k}")?,
                    }
                }
                Ok(())
            }
            Op::Settings {
                max_versions,
                max_value_len,
                audit_reads,
            } => write!(
                f,
                "settings max_versions={max_versions} max_value_len={max_value_len} audit_reads={audit_reads}"
            ),
            Op::Get { name, selector } => write!(f, "get {name:?} {selector:?}"),
            Op::List => f.write_str("ls"),
            Op::Rekey => f.write_str("rekey"),
            Op::Reencrypt => f.write_str("rekey --reencrypt"),
            Op::RekeyMaster => f.write_str("rekey --master"),
            Op::Passwd => f.write_str("passwd"),
            Op::Reopen { with } => write!(f, "reopen with {with:?}"),
            Op::Close => f.write_str("close"),
            Op::BadUnlock => f.write_str("unlock with a wrong password"),
        }
    }
}

/// An operation on handle `h` (0 or 1).
#[derive(Clone)]
struct Step {
    h: usize,
    op: Op,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "h{}: {:?}", self.h, self.op)
    }
}

/// Skewed towards the first names, so that operations meet the same secret.
fn name_s() -> impl Strategy<Value = N> {
    prop_oneof![8 => Just(N(0)), 5 => Just(N(1)), 3 => Just(N(2)), 2 => Just(N(3))]
}

fn op_s() -> impl Strategy<Value = Op> {
    let set = (
        name_s(),
        prop::collection::vec(any::<u8>(), 0..6),
        prop::bool::weighted(0.3),
        prop::option::weighted(0.15, 0..4u64),
        prop::option::weighted(0.2, prop::sample::select(&REASONS[..])),
        prop::option::weighted(
            0.15,
            (
                prop::sample::select(&META_KEYS[..]),
                prop::sample::select(&META_VALUES[..]),
            ),
        ),
    )
        .prop_map(|(name, value, stage, expect, reason, meta)| Op::Set {
            name,
            value,
            stage,
            expect,
            reason,
            meta,
        });
    let change = (
        prop::sample::select(&META_KEYS[..]),
        prop::option::of(prop::sample::select(&META_VALUES[..])),
    );
    let selector = prop_oneof![
        Just(Selector::Label(Label::Current)),
        Just(Selector::Label(Label::Previous)),
        Just(Selector::Label(Label::Pending)),
        (0..6u64).prop_map(Selector::Version),
    ];
    prop_oneof![
        10 => set,
        4 => (name_s(), 1..5u64).prop_map(|(name, version)| Op::Rollback { name, version }),
        3 => name_s().prop_map(|name| Op::Promote { name }),
        3 => name_s().prop_map(|name| Op::Rm { name }),
        3 => name_s().prop_map(|name| Op::Undelete { name }),
        1 => name_s().prop_map(|name| Op::Purge { name }),
        2 => (name_s(), prop::collection::vec(change, 1..3))
            .prop_map(|(name, changes)| Op::Meta { name, changes }),
        3 => (
            prop::sample::select(&[1u32, 2, 3, 20][..]),
            prop::sample::select(&[3u64, 1 << 20][..]),
            any::<bool>()
        )
            .prop_map(|(max_versions, max_value_len, audit_reads)| Op::Settings {
                max_versions,
                max_value_len,
                audit_reads,
            }),
        2 => (name_s(), selector).prop_map(|(name, selector)| Op::Get { name, selector }),
        1 => Just(Op::List),
        1 => Just(Op::Rekey),
        1 => Just(Op::Reencrypt),
        1 => Just(Op::RekeyMaster),
        1 => Just(Op::Passwd),
        1 => prop_oneof![Just(Cred::KeyFile), Just(Cred::Password), Just(Cred::Recovery)]
            .prop_map(|with| Op::Reopen { with }),
        1 => Just(Op::Close),
        1 => Just(Op::BadUnlock),
    ]
}

fn steps_s() -> impl Strategy<Value = Vec<Step>> {
    let step = (prop::bool::weighted(0.3), op_s()).prop_map(|(other, op)| Step {
        h: usize::from(other),
        op,
    });
    prop::collection::vec(step, 1..32)
}

// ---------------------------------------------------------------- model

#[derive(Clone, Debug, PartialEq)]
struct MVersion {
    value: Vec<u8>,
    reason: Option<String>,
    actor: String,
}

#[derive(Clone, Debug, Default)]
struct MSecret {
    /// Every version written; `None` once destroyed (pruned).
    versions: BTreeMap<u64, Option<MVersion>>,
    current: Option<u64>,
    previous: Option<u64>,
    pending: Option<u64>,
    next_version: u64,
    metadata: BTreeMap<String, String>,
    deleted: bool,
}

impl MSecret {
    fn labels_at(&self, version: u64) -> Vec<Label> {
        [
            (Label::Current, self.current),
            (Label::Previous, self.previous),
            (Label::Pending, self.pending),
        ]
        .into_iter()
        .filter(|(_, v)| *v == Some(version))
        .map(|(l, _)| l)
        .collect()
    }

    fn label(&self, label: Label) -> Option<u64> {
        match label {
            Label::Current => self.current,
            Label::Previous => self.previous,
            Label::Pending => self.pending,
        }
    }

    /// Destroys the oldest unlabelled live versions beyond `max`.
    fn prune(&mut self, max: u64) {
        let live: Vec<u64> = self
            .versions
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(n, _)| *n)
            .collect();
        let mut excess = live.len().saturating_sub(max as usize);
        for n in live {
            if excess == 0 {
                break;
            }
            if self.labels_at(n).is_empty() {
                self.versions.insert(n, None);
                excess -= 1;
            }
        }
    }
}

/// An audit entry as the model expects it. `loose` entries (folded unlock
/// failures, the first entry) are compared without actor and reason.
#[derive(Clone, Debug, PartialEq)]
struct ARow {
    op: String,
    name: Option<String>,
    versions: Vec<u64>,
    result: String,
    reason: Option<String>,
    actor: Option<String>,
}

/// What the vault should hold.
#[derive(Debug)]
struct Model {
    secrets: BTreeMap<&'static str, MSecret>,
    settings: Settings,
    /// The changes entries of the audit log (`writes_only`), in order.
    audit: Vec<ARow>,
    /// Data key ids in the file.
    data_keys: BTreeSet<u32>,
    /// The password slot's password is `password(pw_gen)`.
    pw_gen: u32,
    /// Failed unlocks in the sidecar, folded in at the next unlock.
    pending_failures: usize,
}

/// A model outcome: a value, or the kind of error (`Error::kind`).
type Out<T> = Result<T, &'static str>;

fn actor(h: usize) -> String {
    format!("h{h}")
}

impl Model {
    fn new() -> Self {
        Self {
            secrets: BTreeMap::new(),
            settings: Settings::default(),
            audit: vec![
                ARow {
                    op: Operation::Init.as_str().into(),
                    name: None,
                    versions: vec![],
                    result: "ok".into(),
                    reason: None,
                    actor: None,
                },
                ARow {
                    op: Operation::KeyslotAdd.as_str().into(),
                    name: None,
                    versions: vec![u64::from(PASSWORD_SLOT)],
                    result: "ok".into(),
                    reason: Some("password".into()),
                    actor: Some(actor(0)),
                },
            ],
            data_keys: BTreeSet::from([1]),
            pw_gen: 0,
            pending_failures: 0,
        }
    }

    fn log(
        &mut self,
        h: usize,
        op: Operation,
        name: Option<N>,
        versions: Vec<u64>,
        result: &str,
        reason: Option<&str>,
    ) {
        self.audit.push(ARow {
            op: op.as_str().into(),
            name: name.map(|n| n.str().to_string()),
            versions,
            result: result.into(),
            reason: reason.map(str::to_string),
            actor: Some(actor(h)),
        });
    }

    /// A refusal a write records (not found, conflict), then returns.
    fn refuse<T>(
        &mut self,
        h: usize,
        op: Operation,
        name: N,
        kind: &'static str,
        reason: Option<&str>,
    ) -> Out<T> {
        self.log(h, op, Some(name), vec![], kind, reason);
        Err(kind)
    }

    /// A successful unlock folds the failure sidecar into the audit log.
    fn unlocked(&mut self) {
        for _ in 0..self.pending_failures {
            self.audit.push(ARow {
                op: Operation::UnlockFailed.as_str().into(),
                name: None,
                versions: vec![],
                result: "auth".into(),
                reason: None,
                actor: None,
            });
        }
        self.pending_failures = 0;
    }

    fn live(&self, name: N) -> Option<&MSecret> {
        self.secrets.get(name.str()).filter(|s| !s.deleted)
    }

    #[allow(clippy::too_many_arguments)]
    fn set(
        &mut self,
        h: usize,
        name: N,
        value: &[u8],
        stage: bool,
        expect: Option<u64>,
        reason: Option<&str>,
        meta: Option<(&str, &str)>,
    ) -> Out<u64> {
        if value.len() as u64 > self.settings.max_value_len {
            return Err("too_large");
        }
        let current = self.live(name).map_or(0, |s| s.current.unwrap_or(0));
        if let Some(expected) = expect
            && expected != current
        {
            return self.refuse(h, Operation::Set, name, "conflict", reason);
        }
        let max = u64::from(self.settings.max_versions);
        let s = self.secrets.entry(name.str()).or_insert_with(|| MSecret {
            next_version: 1,
            ..MSecret::default()
        });
        let version = s.next_version;
        s.next_version += 1;
        s.deleted = false;
        if let Some((k, v)) = meta {
            s.metadata.insert(k.into(), v.into());
        }
        if stage {
            s.pending = Some(version);
        } else {
            s.previous = s.current;
            s.current = Some(version);
        }
        s.versions.insert(
            version,
            Some(MVersion {
                value: value.to_vec(),
                reason: reason.map(str::to_string),
                actor: actor(h),
            }),
        );
        if version > max {
            s.prune(max);
        }
        self.log(h, Operation::Set, Some(name), vec![version], "ok", reason);
        Ok(version)
    }

    fn rollback(&mut self, h: usize, name: N, version: u64) -> Out<()> {
        let op = Operation::Rollback;
        let Some(s) = self.live(name) else {
            return self.refuse(h, op, name, "not_found", None);
        };
        if !matches!(s.versions.get(&version), Some(Some(_))) {
            return self.refuse(h, op, name, "not_found", None);
        }
        let s = self.secrets.get_mut(name.str()).expect("live");
        if s.current != Some(version) {
            s.previous = s.current;
            s.current = Some(version);
        }
        self.log(h, op, Some(name), vec![version], "ok", None);
        Ok(())
    }

    fn promote(&mut self, h: usize, name: N) -> Out<u64> {
        let op = Operation::Promote;
        let Some(pending) = self.live(name).map(|s| s.pending) else {
            return self.refuse(h, op, name, "not_found", None);
        };
        let Some(pending) = pending else {
            return self.refuse(h, op, name, "not_found", None);
        };
        let s = self.secrets.get_mut(name.str()).expect("live");
        s.previous = s.current;
        s.current = Some(pending);
        s.pending = None;
        self.log(h, op, Some(name), vec![pending], "ok", None);
        Ok(pending)
    }

    fn rm(&mut self, h: usize, name: N) -> Out<()> {
        let op = Operation::Delete;
        if self.live(name).is_none() {
            return self.refuse(h, op, name, "not_found", None);
        }
        self.secrets.get_mut(name.str()).expect("live").deleted = true;
        self.log(h, op, Some(name), vec![], "ok", None);
        Ok(())
    }

    fn undelete(&mut self, h: usize, name: N) -> Out<()> {
        let op = Operation::Undelete;
        match self.secrets.get_mut(name.str()) {
            None => self.refuse(h, op, name, "not_found", None),
            Some(s) if !s.deleted => Err("validation"),
            Some(s) => {
                s.deleted = false;
                self.log(h, op, Some(name), vec![], "ok", None);
                Ok(())
            }
        }
    }

    fn purge(&mut self, h: usize, name: N) -> Out<()> {
        let op = Operation::Purge;
        if self.secrets.remove(name.str()).is_none() {
            return self.refuse(h, op, name, "not_found", None);
        }
        self.log(h, op, Some(name), vec![], "ok", None);
        Ok(())
    }

    fn meta(
        &mut self,
        h: usize,
        name: N,
        changes: &[(&str, Option<&str>)],
    ) -> Out<BTreeMap<String, String>> {
        let op = Operation::Meta;
        if self.live(name).is_none() {
            return self.refuse(h, op, name, "not_found", None);
        }
        let s = self.secrets.get_mut(name.str()).expect("live");
        for (k, v) in changes {
            match v {
                Some(v) => s.metadata.insert(k.to_string(), v.to_string()),
                None => s.metadata.remove(*k),
            };
        }
        let out = s.metadata.clone();
        self.log(h, op, Some(name), vec![], "ok", None);
        Ok(out)
    }

    fn settings(&mut self, h: usize, settings: Settings) -> Out<()> {
        self.settings = settings;
        self.log(h, Operation::Settings, None, vec![], "ok", None);
        Ok(())
    }

    fn new_data_key(&mut self) -> u32 {
        let id = self.data_keys.last().copied().unwrap_or(0) + 1;
        self.data_keys.insert(id);
        id
    }

    fn rekey(&mut self, h: usize) -> u32 {
        let id = self.new_data_key();
        self.log(h, Operation::Rekey, None, vec![u64::from(id)], "ok", None);
        id
    }

    /// `rekey --reencrypt` and `rekey --master`: one new key, every other retired.
    fn rekey_all(&mut self, h: usize, op: Operation) -> (u32, Vec<u32>) {
        let id = self.new_data_key();
        let retired: Vec<u32> = self
            .data_keys
            .iter()
            .copied()
            .filter(|k| *k != id)
            .collect();
        self.data_keys = BTreeSet::from([id]);
        let mut ids = vec![u64::from(id)];
        ids.extend(retired.iter().map(|k| u64::from(*k)));
        self.log(h, op, None, ids, "ok", None);
        (id, retired)
    }

    fn passwd(&mut self, h: usize) {
        self.pw_gen += 1;
        self.log(
            h,
            Operation::Passwd,
            None,
            vec![u64::from(PASSWORD_SLOT)],
            "ok",
            None,
        );
    }

    /// What `get` answers (the value and its version).
    fn get(&self, name: N, selector: Selector) -> Out<(u64, Vec<u8>)> {
        let Some(s) = self.secrets.get(name.str()) else {
            return Err("not_found");
        };
        if s.deleted {
            return Err("deleted");
        }
        let version = match selector {
            Selector::Version(v) => v,
            Selector::Label(l) => s.label(l).ok_or("not_found")?,
        };
        match s.versions.get(&version) {
            Some(Some(v)) => Ok((version, v.value.clone())),
            _ => Err("not_found"),
        }
    }

    /// What `list` answers: (name, current, latest, pending, metadata).
    fn list(&self, prefix: &str, deleted: bool) -> Vec<ListRow> {
        self.secrets
            .iter()
            .filter(|(n, s)| n.starts_with(prefix) && s.deleted == deleted)
            .map(|(n, s)| ListRow {
                name: n.to_string(),
                current: s.current.unwrap_or(0),
                latest: s.next_version - 1,
                pending: s.pending,
                deleted: s.deleted,
                metadata: s.metadata.clone(),
            })
            .collect()
    }

    /// What `history` answers.
    fn history(&self, name: N, deleted: bool) -> Out<Vec<HistRow>> {
        let Some(s) = self.secrets.get(name.str()) else {
            return Err("not_found");
        };
        if s.deleted && !deleted {
            return Err("deleted");
        }
        Ok(s.versions
            .iter()
            .map(|(n, v)| HistRow {
                version: *n,
                labels: s.labels_at(*n),
                destroyed: v.is_none(),
                len: v.as_ref().map_or(0, |v| v.value.len()),
                reason: v.as_ref().and_then(|v| v.reason.clone()),
                actor: v.as_ref().map_or(String::new(), |v| v.actor.clone()),
            })
            .collect())
    }
}

#[derive(Debug, PartialEq)]
struct ListRow {
    name: String,
    current: u64,
    latest: u64,
    pending: Option<u64>,
    deleted: bool,
    metadata: BTreeMap<String, String>,
}

#[derive(Debug, PartialEq)]
struct HistRow {
    version: u64,
    labels: Vec<Label>,
    destroyed: bool,
    len: usize,
    reason: Option<String>,
    actor: String,
}

// -------------------------------------------------------------- harness

/// Fails the case with a message naming what disagreed.
macro_rules! agree {
    ($vault:expr, $model:expr, $($what:tt)+) => {{
        let (vault, model) = (&$vault, &$model);
        if vault != model {
            return Err(format!(
                "{}: the vault says {:?}, the model {:?}",
                format!($($what)+),
                vault,
                model
            ));
        }
    }};
}

/// A vault outcome in the model's terms: errors by kind.
fn kind<T>(r: tresor_core::Result<T>) -> Out<T> {
    r.map_err(|e| e.kind())
}

fn password(generation: u32) -> Credential {
    Credential::password(Zeroizing::new(format!("model-password-{generation}")))
}

struct Harness {
    _dir: tempfile::TempDir,
    path: PathBuf,
    recovery: RecoveryKey,
    handles: [Option<Vault>; 2],
    /// A handle is stale once the other rotated the master key: its next
    /// use must fail with `auth` ("run the command again"), and is closed.
    stale: [bool; 2],
    model: Model,
}

impl Harness {
    fn new() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("vault.db");
        let created = Vault::create(&path, &key(), &create_options()).map_err(|e| e.to_string())?;
        let mut vault = created.vault;
        vault.set_actor(actor(0));
        let slot = vault
            .add_slot(&password(0), &fast_password_params(), Some("pw"))
            .map_err(|e| e.to_string())?;
        agree!(slot, PASSWORD_SLOT, "the password slot's id");
        Ok(Self {
            _dir: dir,
            path,
            recovery: created.recovery.ok_or("no recovery key")?,
            handles: [Some(vault), None],
            stale: [false; 2],
            model: Model::new(),
        })
    }

    fn credential(&self, with: Cred) -> Credential {
        match with {
            Cred::KeyFile => key(),
            Cred::Password => password(self.model.pw_gen),
            Cred::Recovery => self.recovery.credential(),
        }
    }

    /// Unlocks a new handle with `with`, writing as `actor`.
    fn unlock(&mut self, with: Cred, actor: String) -> Result<Vault, String> {
        let mut vault = LockedVault::open(&self.path, &OpenOptions::default())
            .and_then(|l| l.unlock(&self.credential(with)))
            .map_err(|e| format!("unlock with {with:?}: {e}"))?;
        self.model.unlocked();
        vault.set_actor(actor);
        Ok(vault)
    }

    fn open(&mut self, h: usize, with: Cred) -> Result<(), String> {
        self.handles[h] = None;
        self.handles[h] = Some(self.unlock(with, actor(h))?);
        self.stale[h] = false;
        Ok(())
    }

    /// Handle `h`, opened with the key file if it is closed.
    fn handle(&mut self, h: usize) -> Result<&mut Vault, String> {
        if self.handles[h].is_none() {
            self.open(h, Cred::KeyFile)?;
        }
        Ok(self.handles[h].as_mut().expect("open"))
    }

    fn run(&mut self, steps: &[Step]) -> Result<(), String> {
        self.observe()
            .map_err(|e| format!("before any step: {e}"))?;
        for (i, step) in steps.iter().enumerate() {
            self.step(step)
                .and_then(|()| self.observe())
                .map_err(|e| format!("after step {i} ({step:?}): {e}"))?;
        }
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        let h = step.h;
        match &step.op {
            Op::Reopen { with } => return self.open(h, *with),
            Op::Close => {
                self.handles[h] = None;
                self.stale[h] = false;
                return Ok(());
            }
            Op::BadUnlock => {
                let wrong = match self.model.pw_gen {
                    0 => password(u32::MAX),
                    g => password(g - 1),
                };
                let result = LockedVault::open(&self.path, &OpenOptions::default())
                    .and_then(|l| l.unlock(&wrong))
                    .map(|_| ());
                agree!(kind(result), Err("auth"), "an unlock with a wrong password");
                self.model.pending_failures += 1;
                return Ok(());
            }
            _ => {}
        }
        if self.stale[h] {
            return self.step_stale(step);
        }
        self.handle(h)?;
        let mut vault = self.handles[h].take().expect("open");
        let result = self.apply(h, &mut vault, &step.op);
        self.handles[h] = Some(vault);
        result
    }

    /// Runs `op` on handle `h` (`vault`) and on the model.
    fn apply(&mut self, h: usize, vault: &mut Vault, op: &Op) -> Result<(), String> {
        let m = &mut self.model;
        match op {
            Op::Set {
                name,
                value,
                stage,
                expect,
                reason,
                meta,
            } => {
                let options = PutOptions {
                    expect_version: *expect,
                    reason: reason.map(str::to_string),
                    metadata: meta
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    stage: *stage,
                    unvalidated: false,
                };
                let got = kind(vault.put(&name_of(*name), &value_of(value), &options));
                let want = m.set(h, *name, value, *stage, *expect, *reason, *meta);
                agree!(got, want, "set");
            }
            Op::Rollback { name, version } => {
                let got = kind(vault.rollback(&name_of(*name), *version, None));
                agree!(got, m.rollback(h, *name, *version), "rollback");
            }
            Op::Promote { name } => {
                let got = kind(vault.promote(&name_of(*name), None));
                agree!(got, m.promote(h, *name), "promote");
            }
            Op::Rm { name } => {
                let got = kind(vault.delete(&name_of(*name), DeleteMode::Soft));
                agree!(got, m.rm(h, *name), "rm");
            }
            Op::Undelete { name } => {
                let got = kind(vault.undelete(&name_of(*name)));
                agree!(got, m.undelete(h, *name), "undelete");
            }
            Op::Purge { name } => {
                let got = kind(vault.delete(&name_of(*name), DeleteMode::Purge));
                agree!(got, m.purge(h, *name), "purge");
            }
            Op::Meta { name, changes } => {
                let owned: Vec<(String, Option<String>)> = changes
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                    .collect();
                let got = kind(vault.update_metadata(&name_of(*name), &owned));
                agree!(got, m.meta(h, *name, changes), "meta");
            }
            Op::Settings {
                max_versions,
                max_value_len,
                audit_reads,
            } => {
                let settings = Settings {
                    audit_reads: *audit_reads,
                    max_versions: *max_versions,
                    max_value_len: *max_value_len,
                };
                let got = kind(vault.set_settings(settings.clone()));
                agree!(got, m.settings(h, settings), "settings");
            }
            Op::Get { name, selector } => {
                let got = kind(vault.get(&name_of(*name), *selector))
                    .map(|s| (s.version, s.value.expose_secret().to_vec()));
                agree!(got, m.get(*name, *selector), "get through h{h}");
            }
            Op::List => {
                let got = kind(vault.list("", false)).map(|l| list_rows(&l));
                agree!(got, Ok(m.list("", false)), "ls through h{h}");
            }
            Op::Rekey => {
                let got = kind(vault.rekey()).map(|r| (r.data_key, r.retired_data_keys));
                agree!(got, Ok((m.rekey(h), vec![])), "rekey");
            }
            Op::Reencrypt => {
                let got = kind(vault.rekey_reencrypt()).map(|r| (r.data_key, r.retired_data_keys));
                let want = m.rekey_all(h, Operation::RekeyReencrypt);
                agree!(got, Ok(want), "rekey --reencrypt");
            }
            Op::RekeyMaster => {
                let credentials = [key(), password(m.pw_gen), self.recovery.credential()];
                let refs: Vec<&Credential> = credentials.iter().collect();
                let got = kind(vault.rekey_master(&refs, false, false)).map(|r| {
                    (
                        r.report.data_key,
                        r.report.retired_data_keys,
                        r.report.slots_rewrapped,
                        r.report.master,
                    )
                });
                let (id, retired) = m.rekey_all(h, Operation::RekeyMaster);
                agree!(
                    got,
                    Ok((id, retired, vec![1, 2, 3], true)),
                    "rekey --master"
                );
                let other = 1 - h;
                if self.handles[other].is_some() {
                    self.stale[other] = true;
                }
            }
            Op::Passwd => {
                let got = kind(vault.change_slot(
                    PASSWORD_SLOT,
                    &password(m.pw_gen + 1),
                    &fast_password_params(),
                ));
                m.passwd(h);
                agree!(got, Ok(()), "passwd");
            }
            Op::Reopen { .. } | Op::Close | Op::BadUnlock => unreachable!("handled above"),
        }
        Ok(())
    }

    /// A step on a handle whose master key another handle rotated: every
    /// use is refused with `auth` (too large a value may be refused
    /// first), nothing changes, and the handle is closed as the CLI exits.
    fn step_stale(&mut self, step: &Step) -> Result<(), String> {
        let h = step.h;
        let vault = self.handles[h].as_mut().expect("a stale handle is open");
        let too_large = matches!(&step.op, Op::Set { value, .. } if value.len() > 3);
        let result: tresor_core::Result<()> = match &step.op {
            Op::Set { name, value, .. } => vault
                .put(&name_of(*name), &value_of(value), &PutOptions::default())
                .map(|_| ()),
            Op::Rollback { name, version } => vault.rollback(&name_of(*name), *version, None),
            Op::Promote { name } => vault.promote(&name_of(*name), None).map(|_| ()),
            Op::Rm { name } => vault.delete(&name_of(*name), DeleteMode::Soft),
            Op::Undelete { name } => vault.undelete(&name_of(*name)),
            Op::Purge { name } => vault.delete(&name_of(*name), DeleteMode::Purge),
            Op::Meta { name, .. } => vault
                .update_metadata(&name_of(*name), &[("owner".into(), None)])
                .map(|_| ()),
            Op::Settings { .. } => vault.set_settings(Settings::default()),
            Op::Get { name, selector } => vault.get(&name_of(*name), *selector).map(|_| ()),
            Op::List => vault.list("", false).map(|_| ()),
            Op::Rekey => vault.rekey().map(|_| ()),
            Op::Reencrypt => vault.rekey_reencrypt().map(|_| ()),
            Op::RekeyMaster => vault.rekey_master(&[&key()], true, false).map(|_| ()),
            Op::Passwd => vault.change_slot(PASSWORD_SLOT, &password(999), &fast_password_params()),
            Op::Reopen { .. } | Op::Close | Op::BadUnlock => unreachable!("handled above"),
        };
        match kind(result) {
            Err("auth") => {
                self.handles[h] = None;
                self.stale[h] = false;
                Ok(())
            }
            Err("too_large") if too_large => Ok(()),
            other => Err(format!(
                "h{h} is stale (the other handle rotated the master key): the vault says {other:?}, the model Err(\"auth\")"
            )),
        }
    }

    /// Compares every observable, read through a fresh handle, with the model.
    fn observe(&mut self) -> Result<(), String> {
        let mut v = self.unlock(Cred::KeyFile, "observer".into())?;
        let m = &self.model;

        // get: every label and version (and one past the last) of every name.
        let mut requests = Vec::new();
        let mut wanted = Vec::new();
        for i in 0..NAMES.len() {
            let n = N(i);
            let last = m.secrets.get(n.str()).map_or(1, |s| s.next_version);
            let selectors = [Label::Current, Label::Previous, Label::Pending]
                .map(Selector::Label)
                .into_iter()
                .chain((0..=last).map(Selector::Version));
            for selector in selectors {
                requests.push((name_of(n), selector));
                wanted.push(m.get(n, selector));
            }
        }
        let got = v.get_many(&requests);
        for (((name, selector), got), want) in requests.iter().zip(got).zip(wanted) {
            let got = kind(got).map(|s| (s.version, s.value.expose_secret().to_vec()));
            agree!(got, want, "get {name} {selector:?}");
        }
        // The hot path of a single get of the current version.
        for i in 0..NAMES.len() {
            let n = N(i);
            let got = kind(v.get(&name_of(n), Selector::default()))
                .map(|s| (s.version, s.value.expose_secret().to_vec()));
            agree!(got, m.get(n, Selector::default()), "get {n:?}");
        }

        // history, metadata.
        for i in 0..NAMES.len() {
            let n = N(i);
            for deleted in [false, true] {
                let got = kind(v.history_of(&name_of(n), deleted)).map(|h| {
                    h.into_iter()
                        .map(|h| HistRow {
                            version: h.version,
                            labels: h.labels,
                            destroyed: h.destroyed_at.is_some(),
                            len: h.len,
                            reason: h.reason,
                            actor: h.actor,
                        })
                        .collect::<Vec<_>>()
                });
                agree!(
                    got,
                    m.history(n, deleted),
                    "history {n:?} (deleted: {deleted})"
                );
            }
            let got = kind(v.metadata(&name_of(n)));
            let want = m.live(n).map(|s| s.metadata.clone()).ok_or("not_found");
            agree!(got, want, "metadata {n:?}");
        }

        // list: live, deleted, by prefix.
        for (prefix, deleted) in [("", false), ("", true), ("db", false), ("db/", true)] {
            let got = kind(v.list(prefix, deleted)).map(|l| list_rows(&l));
            agree!(
                got,
                Ok(m.list(prefix, deleted)),
                "ls {prefix:?} (deleted: {deleted})"
            );
        }

        // verify and the audit chain.
        let report = v.verify().map_err(|e| format!("verify: {e}"))?;
        let counts = (
            report.secrets,
            report.versions,
            report.destroyed_versions,
            report.data_keys,
        );
        let secrets = m.secrets.values();
        let want = (
            m.secrets.len() as u64,
            secrets
                .clone()
                .flat_map(|s| s.versions.values())
                .filter(|v| v.is_some())
                .count() as u64,
            secrets
                .flat_map(|s| s.versions.values())
                .filter(|v| v.is_none())
                .count() as u64,
            m.data_keys.len() as u64,
        );
        agree!(
            counts,
            want,
            "verify (secrets, versions, destroyed, data keys)"
        );
        let chain = v.audit_verify().map_err(|e| format!("audit verify: {e}"))?;
        agree!(
            chain,
            report.audit_entries,
            "audit entries (audit verify, verify)"
        );
        let all = v
            .audit_log(&AuditFilter::default())
            .map_err(|e| format!("audit log: {e}"))?;
        agree!(
            all.len() as u64,
            chain,
            "audit entries (audit log, audit verify)"
        );
        let changes: Vec<ARow> = v
            .audit_log(&AuditFilter {
                writes_only: true,
                ..AuditFilter::default()
            })
            .map_err(|e| format!("audit log: {e}"))?
            .into_iter()
            .zip(
                m.audit
                    .iter()
                    .map(|r| r.actor.is_some())
                    .chain(std::iter::repeat(true)),
            )
            .map(|(e, strict)| ARow {
                op: e.operation.as_str().to_string(),
                name: e.name,
                versions: e.versions,
                result: e.result,
                reason: e.reason.filter(|_| strict),
                actor: Some(e.actor).filter(|_| strict),
            })
            .collect();
        agree!(
            changes.len(),
            m.audit.len(),
            "number of changes in the audit log"
        );
        for (i, (got, want)) in changes.iter().zip(&m.audit).enumerate() {
            agree!(got, want, "audit change {i}");
        }
        Ok(())
    }
}

fn name_of(n: N) -> tresor_core::SecretName {
    name(n.str())
}

fn value_of(v: &[u8]) -> tresor_core::SecretValue {
    value(v)
}

fn list_rows(list: &[tresor_core::SecretInfo]) -> Vec<ListRow> {
    list.iter()
        .map(|s| ListRow {
            name: s.name.to_string(),
            current: s.current,
            latest: s.latest,
            pending: s.pending,
            deleted: s.deleted_at.is_some(),
            metadata: s.metadata.clone(),
        })
        .collect()
}

/// Runs `steps` on a new vault and the model; the first disagreement.
fn check(steps: &[Step]) -> Result<(), String> {
    Harness::new()?.run(steps)
}

fn cases() -> u32 {
    std::env::var("TRESOR_MODEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

proptest! {
    #![proptest_config(Config {
        cases: cases(),
        // A failure's seed goes to crates/tresor-vault/proptest-regressions/
        // model.txt (tests run in the crate's folder), replayed first by
        // every later run; not committed (docs/development.md).
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/model.txt",
        ))),
        max_shrink_iters: 4096,
        ..Config::default()
    })]

    /// Random sequences of operations on two handles agree with the model
    /// after every step.
    #[test]
    fn vault_agrees_with_the_model(steps in steps_s()) {
        check(&steps).map_err(TestCaseError::fail)?;
    }
}

// ---------------------------------------------------- named regressions
//
// Sequences the model check found, kept as they shrank.

fn on(h: usize, op: Op) -> Step {
    Step { h, op }
}

fn set(h: usize, n: usize, v: &[u8]) -> Step {
    on(
        h,
        Op::Set {
            name: N(n),
            value: v.to_vec(),
            stage: false,
            expect: None,
            reason: None,
            meta: None,
        },
    )
}

fn run(steps: &[Step]) {
    if let Err(e) = check(steps) {
        panic!("{e}");
    }
}

/// The harness itself: every kind of step once, on both handles.
#[test]
fn every_operation_once() {
    run(&[
        set(0, 0, b"one"),
        on(
            1,
            Op::Set {
                name: N(0),
                value: b"two".to_vec(),
                stage: true,
                expect: Some(1),
                reason: Some("rotate"),
                meta: Some(("owner", "ops")),
            },
        ),
        on(0, Op::Promote { name: N(0) }),
        on(
            1,
            Op::Rollback {
                name: N(0),
                version: 1,
            },
        ),
        on(
            0,
            Op::Meta {
                name: N(0),
                changes: vec![("env", Some("dev")), ("owner", None)],
            },
        ),
        on(1, Op::Rm { name: N(0) }),
        on(0, Op::Undelete { name: N(0) }),
        set(1, 1, b""),
        on(1, Op::Purge { name: N(1) }),
        on(
            0,
            Op::Settings {
                max_versions: 1,
                max_value_len: 3,
                audit_reads: false,
            },
        ),
        set(1, 0, b"three"),
        set(1, 0, b"333"),
        on(
            0,
            Op::Get {
                name: N(0),
                selector: Selector::Version(1),
            },
        ),
        on(1, Op::List),
        on(0, Op::Rekey),
        on(1, Op::Reencrypt),
        on(0, Op::Passwd),
        on(1, Op::BadUnlock),
        on(0, Op::RekeyMaster),
        set(1, 2, b"x"),
        on(
            1,
            Op::Reopen {
                with: Cred::Password,
            },
        ),
        on(
            0,
            Op::Reopen {
                with: Cred::Recovery,
            },
        ),
        on(1, Op::Close),
        set(1, 3, b"y"),
    ]);
}

/// A handle opened before another changed the settings refused values by
/// the old `max_value_len`: it kept the settings it read at unlock.
#[test]
fn a_handle_follows_max_value_len_set_by_another() {
    run(&[
        set(1, 0, b""),
        on(
            0,
            Op::Settings {
                max_versions: 1,
                max_value_len: 3,
                audit_reads: false,
            },
        ),
        set(1, 0, b"\0\0\0\0"),
    ]);
}

/// The same handle pruned by the old `max_versions`.
#[test]
fn a_handle_prunes_to_max_versions_set_by_another() {
    run(&[
        set(1, 0, b"a"),
        on(
            0,
            Op::Settings {
                max_versions: 1,
                max_value_len: 1 << 20,
                audit_reads: true,
            },
        ),
        set(1, 0, b"b"),
        set(1, 0, b"c"),
    ]);
}

/// And its `rekey --reencrypt`, which re-seals the settings, wrote its old
/// copy back over the change.
#[test]
fn a_rekey_keeps_the_settings_another_handle_set() {
    run(&[
        set(1, 0, b"a"),
        on(
            0,
            Op::Settings {
                max_versions: 1,
                max_value_len: 1 << 20,
                audit_reads: true,
            },
        ),
        on(1, Op::Reencrypt),
        on(0, Op::Close),
        set(0, 0, b"b"),
        set(0, 0, b"c"),
    ]);
}

/// Reads through a handle opened before another turned `audit_reads` on
/// are audited (the model compares changes only, so this counts reads).
#[test]
fn a_handle_audits_reads_once_another_turns_audit_reads_on() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut a) = new_vault(dir.path());
    a.put(&name("app/x"), &value(b"1"), &PutOptions::default())
        .unwrap();
    let off = Settings {
        audit_reads: false,
        ..Settings::default()
    };
    a.set_settings(off).unwrap();
    let mut b = reopen(&path);
    let reads = |v: &mut Vault| {
        v.audit_log(&AuditFilter::default())
            .unwrap()
            .iter()
            .filter(|e| e.operation == Operation::Get)
            .count()
    };
    b.get(&name("app/x"), Selector::default()).unwrap();
    assert_eq!(reads(&mut a), 0, "reads are not audited yet");
    a.set_settings(Settings::default()).unwrap();
    b.get(&name("app/x"), Selector::default()).unwrap();
    assert_eq!(reads(&mut a), 1, "the read after audit_reads was turned on");
}
