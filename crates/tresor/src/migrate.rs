//! `migrate`: every secret under a prefix copied from one store to another,
//! each copy read back and compared, the target's writes rolled back when
//! a copy fails, the source deleted from only once every copy is verified.
//!
//! # The journal
//!
//! A migration keeps a journal in the local vault, an ordinary encrypted
//! secret under the reserved names, `.tresor/migrate/<id>` (`<id>`: a keyed
//! hash of the source, target and prefix, so the same command finds it
//! again). It holds names, never values:
//!
//! 1. Before the first write to the target the journal is written in phase
//!    `copying`, naming every secret this run will create there (secrets
//!    the target already holds with the same value are not touched).
//! 2. When every copy is verified, with `--delete-source` the journal moves
//!    to phase `verified`, naming the secrets to delete from the source;
//!    without it, the journal is removed.
//! 3. When the source deletions are done, the journal is removed.
//!
//! A run that finds a journal in phase `copying` (the last one crashed, was
//! killed, or its target went down) first purges from the target every
//! name the journal lists, since any of them may be half-copied, then
//! copies afresh. A run that finds phase `verified` only finishes the
//! deletions. So running the same command again always completes a
//! migration, and a secret is never presented as copied before it was read
//! back from the target and compared with the source.
//!
//! ```
//! use tresor::{CreateOptions, Credential, SecretName, SecretValue, Tresor, Vault};
//! use tresor::migrate::{migrate, MigrateOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let key = Credential::key_material(tresor::new_key_file_text().as_bytes()).unwrap();
//! let a = Vault::create(&dir.path().join("a.db"), &key, &CreateOptions::default())?.vault;
//! let b = Vault::create(&dir.path().join("b.db"), &key, &CreateOptions::default())?.vault;
//! let mut tresor = Tresor::builder().vault("a", a, 10).vault("b", b, 20).build()?;
//! let name = SecretName::new("db/password")?;
//! tresor.set_in("a", &name, &SecretValue::copy_from(b"s3cret"), &Default::default())?;
//! let report = migrate(&mut tresor, &MigrateOptions::new("a", "b"), &mut |_| {})?;
//! assert_eq!(report.copied, 1);
//! let copy = tresor.read_in("b", &name, Default::default())?;
//! assert_eq!(copy.value.expose_secret(), b"s3cret");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use tresor_core::{
    Capabilities, DeleteMode, Error, Metadata, PutOptions, Result, SecretInfo, SecretName,
    SecretValue, Selector,
};

use crate::manager::{StoreWriter, Tresor};

/// Where migration journals live in the local vault.
pub const JOURNAL_PREFIX: &str = ".tresor/migrate/";

/// What to migrate, and how.
#[derive(Clone, Debug)]
pub struct MigrateOptions {
    /// The source store.
    pub from: String,
    /// The target store.
    pub to: String,
    /// Only names starting with this.
    pub prefix: String,
    /// Delete each secret from the source once every copy is verified.
    pub delete_source: bool,
    /// Plan only: nothing is written anywhere.
    pub dry_run: bool,
    /// Writers to the target at once (where the target can open several
    /// connections; a vault file takes one).
    pub jobs: usize,
    /// Why, kept in the versions written (and the vault's audit log).
    pub reason: Option<String>,
}

impl MigrateOptions {
    /// Everything from `from` to `to`, one writer, nothing deleted.
    pub fn new(from: impl Into<String>, to: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            to: to.into(),
            prefix: String::new(),
            delete_source: false,
            dry_run: false,
            jobs: 1,
            reason: None,
        }
    }
}

/// What happened to one secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Copied and verified.
    Copied,
    /// The target already held the same value: not written.
    Unchanged,
    /// Would be copied (dry run).
    WouldCopy,
    /// The target holds another value under the name: nothing was written.
    Conflict,
    /// Its copy failed (the run was rolled back).
    Failed,
}

/// One secret of a migration.
#[derive(Clone, Debug, Serialize)]
pub struct SecretReport {
    /// The name.
    pub name: String,
    /// What happened.
    pub outcome: Outcome,
    /// Versions written to the target.
    pub versions: usize,
    /// Deleted from the source.
    pub source_deleted: bool,
}

/// The result of a migration.
#[derive(Clone, Debug, Serialize)]
pub struct MigrateReport {
    /// The source store.
    pub from: String,
    /// The target store.
    pub to: String,
    /// The prefix.
    pub prefix: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// An interrupted run was found and completed.
    pub resumed: bool,
    /// Secrets copied and verified.
    pub copied: usize,
    /// Secrets the target already held.
    pub unchanged: usize,
    /// Secrets in conflict (the target holds another value).
    pub conflicts: usize,
    /// Secrets deleted from the source.
    pub source_deleted: usize,
    /// How they were deleted: `soft` or `purge` (the source's own way).
    pub delete_mode: Option<&'static str>,
    /// Every secret, sorted by name.
    pub secrets: Vec<SecretReport>,
}

/// What a migration tells its caller as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// The copies are starting: this many secrets to copy.
    Start(usize),
    /// One more secret copied and verified.
    Copied(&'a str),
    /// Something the user should know (a rollback that failed, a resume).
    Warning(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    Copying,
    Verified,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    from: String,
    to: String,
    prefix: String,
    phase: Phase,
    /// Names this run creates in the target (phase copying), or deletes
    /// from the source (phase verified).
    names: Vec<String>,
}

/// Runs a migration (see the [module docs](self)).
pub fn migrate(
    t: &mut Tresor,
    options: &MigrateOptions,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<MigrateReport> {
    let (from, to) = (options.from.as_str(), options.to.as_str());
    if t.same_store(from, to)? {
        return Err(Error::Validation(format!(
            "'{from}' and '{to}' are the same store: nothing to migrate"
        )));
    }
    let src_caps = t.store_capabilities(from)?;
    let dst_caps = t.store_capabilities(to)?;
    if !options.dry_run && dst_caps.read_only {
        return Err(Error::ReadOnly {
            store: format!("store '{to}'"),
        });
    }
    if !options.dry_run && options.delete_source && src_caps.read_only {
        return Err(Error::ReadOnly {
            store: format!("store '{from}' (--delete-source)"),
        });
    }
    let journal_name = journal_name(t, options)?;
    let journal = read_journal(t, &journal_name)?;
    let mut report = MigrateReport {
        from: from.into(),
        to: to.into(),
        prefix: options.prefix.clone(),
        dry_run: options.dry_run,
        resumed: journal.is_some(),
        copied: 0,
        unchanged: 0,
        conflicts: 0,
        source_deleted: 0,
        delete_mode: None,
        secrets: Vec::new(),
    };

    if let Some(j) = &journal
        && !options.dry_run
    {
        match j.phase {
            Phase::Verified => {
                events(Event::Warning(format!(
                    "completing an interrupted migration from '{from}' to '{to}': every copy \
                     was verified; deleting from the source"
                )));
                let names = parse_names(&j.names)?;
                delete_sources(t, options, &src_caps, &names, &mut report)?;
                for name in names {
                    report.secrets.push(SecretReport {
                        name: name.to_string(),
                        outcome: Outcome::Unchanged,
                        versions: 0,
                        source_deleted: true,
                    });
                }
                report.unchanged = report.secrets.len();
                remove_journal(t, &journal_name)?;
                return Ok(report);
            }
            Phase::Copying => {
                events(Event::Warning(format!(
                    "an interrupted migration from '{from}' to '{to}' left {} secret(s) in \
                     '{to}' that may be incomplete: removing them and copying again",
                    j.names.len()
                )));
                purge_created(t, to, &parse_names(&j.names)?)?;
                remove_journal(t, &journal_name)?;
            }
        }
    }

    // ---- plan ----
    let sources = t.list_store(from, &options.prefix)?;
    // What the target holds already: its listing, or, for a store that
    // cannot list (a kernel keyring), a read of each name.
    let present: BTreeSet<String> = if dst_caps.list {
        t.list_store(to, &options.prefix)?
            .into_iter()
            .map(|i| i.name.as_str().to_string())
            .collect()
    } else {
        let mut found = BTreeSet::new();
        for info in &sources {
            match t.read_in(to, &info.name, Selector::default()) {
                Ok(_) => {
                    found.insert(info.name.as_str().to_string());
                }
                Err(Error::NotFound { .. } | Error::Deleted { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        found
    };
    let mut to_copy: Vec<SecretInfo> = Vec::new();
    let mut conflict: Option<(String, u64)> = None;
    for info in sources {
        let name = info.name.as_str().to_string();
        if present.contains(&name) {
            let src = t.read_in(from, &info.name, Selector::default())?;
            let dst = t.read_in(to, &info.name, Selector::default())?;
            let outcome = if src.value == dst.value {
                report.unchanged += 1;
                Outcome::Unchanged
            } else {
                report.conflicts += 1;
                conflict.get_or_insert((name.clone(), dst.version));
                Outcome::Conflict
            };
            report.secrets.push(SecretReport {
                name,
                outcome,
                versions: 0,
                source_deleted: false,
            });
        } else {
            to_copy.push(info);
        }
    }
    if options.dry_run || conflict.is_some() {
        for info in &to_copy {
            report.secrets.push(SecretReport {
                name: info.name.as_str().to_string(),
                outcome: Outcome::WouldCopy,
                versions: 0,
                source_deleted: false,
            });
        }
        report.secrets.sort_by(|a, b| a.name.cmp(&b.name));
        if let (Some((name, found)), false) = (conflict, options.dry_run) {
            return Err(Error::Conflict {
                store: to.into(),
                name,
                expected: 0,
                found,
            });
        }
        return Ok(report);
    }

    // ---- copy ----
    write_journal(
        t,
        &journal_name,
        &Journal {
            from: from.into(),
            to: to.into(),
            prefix: options.prefix.clone(),
            phase: Phase::Copying,
            names: to_copy
                .iter()
                .map(|i| i.name.as_str().to_string())
                .collect(),
        },
    )?;
    events(Event::Start(to_copy.len()));
    let plan = Plan {
        versions: src_caps.versions && dst_caps.versions,
        metadata: src_caps.metadata && dst_caps.metadata,
        target_versions: dst_caps.versions,
        reason: options.reason.clone(),
    };
    let copied = match copy_all(t, options, &plan, &to_copy, events) {
        Ok(copied) => copied,
        Err(e) => return Err(roll_back(t, options, &journal_name, &to_copy, e, events)),
    };
    for (name, versions) in copied {
        report.copied += 1;
        report.secrets.push(SecretReport {
            name,
            outcome: Outcome::Copied,
            versions,
            source_deleted: false,
        });
    }
    report.secrets.sort_by(|a, b| a.name.cmp(&b.name));

    // ---- delete from the source ----
    if options.delete_source {
        let names = report
            .secrets
            .iter()
            .map(|s| SecretName::new(&s.name))
            .collect::<Result<Vec<_>>>()?;
        write_journal(
            t,
            &journal_name,
            &Journal {
                from: from.into(),
                to: to.into(),
                prefix: options.prefix.clone(),
                phase: Phase::Verified,
                names: names.iter().map(|n| n.as_str().to_string()).collect(),
            },
        )?;
        delete_sources(t, options, &src_caps, &names, &mut report)?;
        for s in &mut report.secrets {
            s.source_deleted = true;
        }
    }
    remove_journal(t, &journal_name)?;
    Ok(report)
}

struct Plan {
    /// Copy every version (both stores keep versions).
    versions: bool,
    /// Copy the metadata map.
    metadata: bool,
    /// The target numbers versions: read back each one written.
    target_versions: bool,
    reason: Option<String>,
}

/// One secret ready to write: its values oldest first, the last one the
/// source's current value.
struct Job {
    name: SecretName,
    values: Vec<SecretValue>,
    metadata: Metadata,
}

/// Secrets read from the source per batch: one vault transaction each.
const READ_BATCH: usize = 256;

/// The jobs for `infos`, read from the source in one batch
/// ([`Tresor::versions_in`]): each secret's values oldest first, the
/// current one last (versions after it, a staged rotation, come before it,
/// so it is current in the target as well).
fn jobs_for(t: &mut Tresor, from: &str, plan: &Plan, infos: &[SecretInfo]) -> Result<Vec<Job>> {
    let names: Vec<SecretName> = infos.iter().map(|i| i.name.clone()).collect();
    let read = t.versions_in(from, &names, plan.versions)?;
    let mut jobs = Vec::with_capacity(infos.len());
    for (info, found) in infos.iter().zip(read) {
        let found = found?;
        let mut values = Vec::with_capacity(found.values.len());
        let mut current = None;
        for (version, value) in found.values {
            if version == found.current {
                current = Some(value);
            } else {
                values.push(value);
            }
        }
        values.push(current.ok_or_else(|| Error::NotFound {
            store: from.into(),
            what: format!("'{}' version {}", info.name, found.current),
        })?);
        let metadata = if plan.metadata {
            info.metadata
                .iter()
                .filter(|(k, _)| !k.starts_with("tresor."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        } else {
            Metadata::new()
        };
        jobs.push(Job {
            name: info.name.clone(),
            values,
            metadata,
        });
    }
    Ok(jobs)
}

/// Writes one secret's values with `put`, then reads each back with `get`
/// and compares. Returns the versions written.
fn write_job(
    plan: &Plan,
    job: &Job,
    put: &mut dyn FnMut(&SecretName, &SecretValue, &PutOptions) -> Result<u64>,
    get: &mut dyn FnMut(&SecretName, Selector) -> Result<SecretValue>,
) -> Result<usize> {
    let mut written = Vec::with_capacity(job.values.len());
    let last = job.values.len() - 1;
    for (i, value) in job.values.iter().enumerate() {
        let options = PutOptions {
            // The first write must create the secret: anything there was
            // written by someone else since the plan was made.
            expect_version: None,
            reason: plan.reason.clone(),
            metadata: if i == last {
                job.metadata.clone()
            } else {
                Metadata::new()
            },
            stage: false,
            unvalidated: false,
        };
        written.push(put(&job.name, value, &options)?);
    }
    let mismatch = || Error::Integrity {
        store: "migrate".into(),
        detail: format!(
            "'{}' read back from the target differs from the source",
            job.name
        ),
    };
    if plan.target_versions && written.len() > 1 {
        for (value, version) in job.values.iter().zip(&written) {
            if get(&job.name, Selector::Version(*version))? != *value {
                return Err(mismatch());
            }
        }
    }
    if get(&job.name, Selector::default())? != job.values[last] {
        return Err(mismatch());
    }
    Ok(written.len())
}

fn copy_all(
    t: &mut Tresor,
    options: &MigrateOptions,
    plan: &Plan,
    infos: &[SecretInfo],
    events: &mut dyn FnMut(Event<'_>),
) -> Result<Vec<(String, usize)>> {
    let (from, to) = (options.from.as_str(), options.to.as_str());
    let writers = if options.jobs > 1 && infos.len() > 1 {
        t.store_writers(to, options.jobs.min(infos.len()))?
    } else {
        Vec::new()
    };
    if writers.is_empty() {
        let mut out = Vec::with_capacity(infos.len());
        for batch in infos.chunks(READ_BATCH) {
            for job in jobs_for(t, from, plan, batch)? {
                let n = {
                    let cell = std::cell::RefCell::new(&mut *t);
                    write_job(
                        plan,
                        &job,
                        &mut |n, v, o| cell.borrow_mut().write_in(to, n, v, o),
                        &mut |n, s| cell.borrow_mut().read_in(to, n, s).map(|s| s.value),
                    )?
                };
                events(Event::Copied(job.name.as_str()));
                out.push((job.name.as_str().to_string(), n));
            }
        }
        return Ok(out);
    }
    copy_parallel(t, from, plan, infos, writers, events)
}

/// Reads in this thread, writes and verifies in one thread per writer.
fn copy_parallel(
    t: &mut Tresor,
    from: &str,
    plan: &Plan,
    infos: &[SecretInfo],
    writers: Vec<StoreWriter>,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<Vec<(String, usize)>> {
    let n = writers.len();
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(n * 4);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = mpsc::channel::<(String, Result<usize>)>();
    let mut out = Vec::with_capacity(infos.len());
    let mut first_error: Option<Error> = None;
    std::thread::scope(|scope| {
        for mut writer in writers {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                loop {
                    let job = {
                        let Ok(rx) = job_rx.lock() else { return };
                        match rx.recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        }
                    };
                    let w = std::cell::RefCell::new(&mut writer);
                    let result = write_job(
                        plan,
                        &job,
                        &mut |n, v, o| w.borrow_mut().put(n, v, o),
                        &mut |n, s| w.borrow_mut().get(n, s).map(|s| s.value),
                    );
                    if done_tx
                        .send((job.name.as_str().to_string(), result))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut sent = 0usize;
        let mut handle = |(name, result): (String, Result<usize>),
                          out: &mut Vec<(String, usize)>,
                          first_error: &mut Option<Error>| {
            match result {
                Ok(versions) => {
                    events(Event::Copied(&name));
                    out.push((name, versions));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        };
        'reading: for batch in infos.chunks(READ_BATCH) {
            if first_error.is_some() {
                break;
            }
            match jobs_for(t, from, plan, batch) {
                Ok(jobs) => {
                    for job in jobs {
                        if job_tx.send(job).is_err() {
                            break 'reading;
                        }
                        sent += 1;
                        while let Ok(done) = done_rx.try_recv() {
                            handle(done, &mut out, &mut first_error);
                        }
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                    break;
                }
            }
        }
        drop(job_tx);
        for done in done_rx.iter() {
            handle(done, &mut out, &mut first_error);
        }
        let _ = sent;
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Undoes a failed run's writes to the target; the journal goes only when
/// every one of them is gone. Returns the error to report.
fn roll_back(
    t: &mut Tresor,
    options: &MigrateOptions,
    journal_name: &SecretName,
    created: &[SecretInfo],
    error: Error,
    events: &mut dyn FnMut(Event<'_>),
) -> Error {
    let to = options.to.as_str();
    let names: Vec<SecretName> = created.iter().map(|i| i.name.clone()).collect();
    let _ = t.retry_now(to);
    let undone = purge_created(t, to, &names).and_then(|()| remove_journal(t, journal_name));
    let note = match &undone {
        Ok(()) => format!("nothing was kept in '{to}': its writes were rolled back"),
        Err(e) => format!(
            "the writes to '{to}' could not all be rolled back ({e}); they are recorded: \
             running the same migrate again removes them and completes the migration"
        ),
    };
    events(Event::Warning(note.clone()));
    match error {
        Error::Unavailable { store, reason } => Error::Unavailable {
            store,
            reason: format!("{reason}; {note}"),
        },
        e => e,
    }
}

/// Purges `names` from the target, those not there skipped.
fn purge_created(t: &mut Tresor, to: &str, names: &[SecretName]) -> Result<()> {
    for name in names {
        match t.delete_in(to, name, DeleteMode::Purge) {
            Ok(()) | Err(Error::NotFound { .. } | Error::Deleted { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn delete_sources(
    t: &mut Tresor,
    options: &MigrateOptions,
    caps: &Capabilities,
    names: &[SecretName],
    report: &mut MigrateReport,
) -> Result<()> {
    let mode = if caps.soft_delete {
        DeleteMode::Soft
    } else {
        DeleteMode::Purge
    };
    report.delete_mode = Some(if caps.soft_delete { "soft" } else { "purge" });
    for name in names {
        match t.delete_in(&options.from, name, mode) {
            Ok(()) => report.source_deleted += 1,
            // Deleted by the interrupted run already.
            Err(Error::NotFound { .. } | Error::Deleted { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn parse_names(names: &[String]) -> Result<Vec<SecretName>> {
    names.iter().map(SecretName::new).collect()
}

/// `.tresor/migrate/<id>`: the id a keyed hash of (from, to, prefix) under
/// a key of the local vault, so the journal names no store or prefix.
fn journal_name(t: &mut Tresor, options: &MigrateOptions) -> Result<SecretName> {
    let id = crate::sync::keyed_id(
        t,
        b"tresor v1 migrate journal",
        &[
            options.from.as_bytes(),
            options.to.as_bytes(),
            options.prefix.as_bytes(),
        ],
    )?;
    SecretName::new(format!("{JOURNAL_PREFIX}{id}"))
}

/// Names per journal record: a record stays well under the vault's
/// smallest sensible value limit.
const NAMES_PER_RECORD: usize = 2000;

#[derive(Debug, Serialize, Deserialize)]
struct JournalHead {
    journal: Journal,
    /// Records after this one holding more names.
    more: usize,
}

fn part_name(name: &SecretName, part: usize) -> Result<SecretName> {
    SecretName::new(format!("{name}/{part}"))
}

/// The journal: its head record `<name>` and, for long lists of names,
/// records `<name>/1`, `<name>/2`, …
fn read_journal(t: &mut Tresor, name: &SecretName) -> Result<Option<Journal>> {
    let Some(head) = read_record::<JournalHead>(t, name)? else {
        return Ok(None);
    };
    let mut journal = head.journal;
    for part in 1..=head.more {
        let names = read_record::<Vec<String>>(t, &part_name(name, part)?)?.ok_or_else(|| {
            Error::Integrity {
                store: "local vault".into(),
                detail: format!("the migration journal {name} misses its record {part}"),
            }
        })?;
        journal.names.extend(names);
    }
    Ok(Some(journal))
}

fn read_record<T: serde::de::DeserializeOwned>(
    t: &mut Tresor,
    name: &SecretName,
) -> Result<Option<T>> {
    match t.local_vault()?.get(name, Selector::default()) {
        Ok(secret) => serde_json::from_slice(secret.value.expose_secret())
            .map(Some)
            .map_err(|e| Error::Integrity {
                store: "local vault".into(),
                detail: format!("the migration journal {name} does not parse: {e}"),
            }),
        Err(Error::NotFound { .. } | Error::Deleted { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the journal: the extra records first, the head last, so a head
/// found always has its records.
fn write_journal(t: &mut Tresor, name: &SecretName, journal: &Journal) -> Result<()> {
    let mut chunks = journal.names.chunks(NAMES_PER_RECORD);
    let first = chunks.next().unwrap_or(&[]).to_vec();
    let rest: Vec<&[String]> = chunks.collect();
    let mut records = Vec::with_capacity(rest.len() + 1);
    for (i, names) in rest.iter().enumerate() {
        records.push((part_name(name, i + 1)?, encode(&names.to_vec())?));
    }
    let head = JournalHead {
        journal: Journal {
            from: journal.from.clone(),
            to: journal.to.clone(),
            prefix: journal.prefix.clone(),
            phase: journal.phase,
            names: first,
        },
        more: rest.len(),
    };
    records.push((name.clone(), encode(&head)?));
    let vault = t.local_vault()?;
    for (record, value) in &records {
        vault.put(record, value, &PutOptions::default())?;
    }
    Ok(())
}

/// Removes the journal: the head first, so a crash halfway leaves no head
/// pointing at missing records.
fn remove_journal(t: &mut Tresor, name: &SecretName) -> Result<()> {
    let more = read_record::<JournalHead>(t, name)?.map_or(0, |h| h.more);
    let vault = t.local_vault()?;
    for part in 0..=more {
        let record = if part == 0 {
            name.clone()
        } else {
            part_name(name, part)?
        };
        match vault.delete(&record, DeleteMode::Purge) {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn encode<T: Serialize>(record: &T) -> Result<SecretValue> {
    serde_json::to_vec(record)
        .map(SecretValue::from)
        .map_err(|e| Error::Validation(e.to_string()))
}
