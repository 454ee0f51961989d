//! Four OS processes write to one vault at once: plain writes and
//! check-and-set writes on shared names, deletes and undeletes of their own.
//! Every acknowledged write must be there afterwards, with its value, under
//! a version number no other write got, and the audit chain must hold.
//!
//! The writers are this test binary re-executed (`child_writer`), told what
//! to do by `TRESOR_TEST_CHILD=path,process,seed`; they print one line per
//! acknowledged operation on stdout.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use tresor_core::{DeleteMode, Error, PutOptions, Selector};
use tresor_vault::{AuditFilter, Settings};

const CHILD_ENV: &str = "TRESOR_TEST_CHILD";
const PROCESSES: usize = 4;
const OPS: usize = 500;
const SHARED: usize = 20;
const OWN: usize = 5;

fn shared_name(i: usize) -> String {
    format!("shared/k{i:02}")
}

fn own_name(proc: usize, i: usize) -> String {
    format!("own/p{proc}/k{i}")
}

/// The value a process writes as its `op`-th operation on `name`.
fn synthetic_value(proc: usize, name: &str, op: usize) -> String {
    format!("p{proc}-{name}-{op}")
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The writer process. Does nothing in a normal test run.
#[test]
fn child_writer() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split(',');
    let path = parts.next().unwrap().to_string();
    let proc: usize = parts.next().unwrap().parse().unwrap();
    let seed: u64 = parts.next().unwrap().parse().unwrap();
    run_writer(Path::new(&path), proc, seed);
}

fn run_writer(path: &Path, proc: usize, seed: u64) {
    let mut out = std::io::stdout().lock();
    // Start on a fresh line: libtest may have printed "test child_writer ... ".
    writeln!(out).unwrap();
    let mut rng = XorShift(seed | 1);
    let mut vault = reopen(path);
    writeln!(out, "START {}", now_ms()).unwrap();
    // Own names: None (never written), Some(true) live, Some(false) deleted.
    let mut own: Vec<Option<bool>> = vec![None; OWN];
    let mut conflicts = 0u64;
    for op in 0..OPS {
        let roll = rng.below(100);
        if roll < 50 {
            let n = shared_name(rng.below(SHARED));
            let val = synthetic_value(proc, &n, op);
            let v = vault
                .put(&name(&n), &value(val.as_bytes()), &PutOptions::default())
                .unwrap_or_else(|e| panic!("p{proc} op {op}: put '{n}': {e}"));
            writeln!(out, "ACK {n} {v} {val}").unwrap();
        } else if roll < 75 {
            // Check-and-set: read the current version, write on top of it,
            // retry on conflict.
            let n = shared_name(rng.below(SHARED));
            let val = synthetic_value(proc, &n, op);
            loop {
                let current = match vault.get(&name(&n), Selector::default()) {
                    Ok(s) => s.version,
                    Err(Error::NotFound { .. }) => 0,
                    Err(e) => panic!("p{proc} op {op}: get '{n}': {e}"),
                };
                // A client thinks between its read and its write: widen the
                // window in which another process can get in first.
                std::thread::sleep(std::time::Duration::from_micros(rng.below(2000) as u64));
                let cas = PutOptions {
                    expect_version: Some(current),
                    ..PutOptions::default()
                };
                match vault.put(&name(&n), &value(val.as_bytes()), &cas) {
                    Ok(v) => {
                        assert_eq!(v, current + 1, "p{proc}: '{n}' check-and-set on {current}");
                        writeln!(out, "ACK {n} {v} {val}").unwrap();
                        break;
                    }
                    Err(Error::Conflict {
                        expected, found, ..
                    }) => {
                        assert_eq!(expected, current);
                        assert_ne!(found, current, "p{proc}: a conflict that is none");
                        conflicts += 1;
                    }
                    Err(e) => panic!("p{proc} op {op}: check-and-set '{n}': {e}"),
                }
            }
        } else {
            let i = rng.below(OWN);
            let n = own_name(proc, i);
            if roll < 90 || own[i].is_none() {
                let val = synthetic_value(proc, &n, op);
                let v = vault
                    .put(&name(&n), &value(val.as_bytes()), &PutOptions::default())
                    .unwrap_or_else(|e| panic!("p{proc} op {op}: put '{n}': {e}"));
                own[i] = Some(true);
                writeln!(out, "ACK {n} {v} {val}").unwrap();
            } else if own[i] == Some(true) {
                vault
                    .delete(&name(&n), DeleteMode::Soft)
                    .unwrap_or_else(|e| panic!("p{proc} op {op}: delete '{n}': {e}"));
                own[i] = Some(false);
                writeln!(out, "DEL {n}").unwrap();
            } else {
                vault
                    .undelete(&name(&n))
                    .unwrap_or_else(|e| panic!("p{proc} op {op}: undelete '{n}': {e}"));
                own[i] = Some(true);
                writeln!(out, "UNDEL {n}").unwrap();
            }
        }
        out.flush().unwrap();
    }
    writeln!(out, "END {}", now_ms()).unwrap();
    writeln!(out, "CONFLICTS {conflicts}").unwrap();
    writeln!(out, "DONE {proc}").unwrap();
    out.flush().unwrap();
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// What one writer reported.
#[derive(Default)]
struct Report {
    acks: Vec<(String, u64, String)>,
    deletes: usize,
    undeletes: usize,
    /// Own names: true if deleted at the end.
    own_deleted: BTreeMap<String, bool>,
    conflicts: u64,
    start: u128,
    end: u128,
    done: bool,
}

fn parse(stdout: &str) -> Report {
    let mut r = Report::default();
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("ACK") => {
                let n = words.next().unwrap().to_string();
                let v: u64 = words.next().unwrap().parse().unwrap();
                let val = words.next().unwrap().to_string();
                if n.starts_with("own/") {
                    r.own_deleted.insert(n.clone(), false);
                }
                r.acks.push((n, v, val));
            }
            Some("DEL") => {
                r.deletes += 1;
                r.own_deleted.insert(words.next().unwrap().into(), true);
            }
            Some("UNDEL") => {
                r.undeletes += 1;
                r.own_deleted.insert(words.next().unwrap().into(), false);
            }
            Some("START") => r.start = words.next().unwrap().parse().unwrap(),
            Some("END") => r.end = words.next().unwrap().parse().unwrap(),
            Some("CONFLICTS") => r.conflicts = words.next().unwrap().parse().unwrap(),
            Some("DONE") => r.done = true,
            _ => {}
        }
    }
    r
}

#[test]
fn concurrent_writers_keep_every_acknowledged_write() {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (path, mut vault) = new_vault(dir.path());
    // Keep every version so that every acknowledged one can be read back.
    vault
        .set_settings(Settings {
            max_versions: 1_000_000,
            ..Settings::default()
        })
        .unwrap();
    drop(vault);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("concurrency: seed {seed}");
    let children: Vec<_> = (0..PROCESSES)
        .map(|proc| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
                .env(
                    CHILD_ENV,
                    format!(
                        "{},{proc},{}",
                        path.display(),
                        seed.wrapping_add(proc as u64 * 7919)
                    ),
                )
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut reports = Vec::new();
    for (proc, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report = parse(&stdout);
        assert!(
            out.status.success() && report.done,
            "writer {proc} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            report.acks.len() + report.deletes + report.undeletes,
            OPS,
            "writer {proc} acknowledged every operation"
        );
        reports.push(report);
    }
    let writers_done = started.elapsed();
    // The writers really ran at the same time.
    let last_start = reports.iter().map(|r| r.start).max().unwrap();
    let first_end = reports.iter().map(|r| r.end).min().unwrap();
    assert!(
        last_start < first_end,
        "the writers did not overlap (last started at {last_start}, first ended at {first_end})"
    );

    // No version was acknowledged twice; gather acks by name.
    let mut by_name: BTreeMap<String, BTreeMap<u64, String>> = BTreeMap::new();
    for r in &reports {
        for (n, v, val) in &r.acks {
            let prev = by_name
                .entry(n.clone())
                .or_default()
                .insert(*v, val.clone());
            assert!(prev.is_none(), "'{n}' version {v} was acknowledged twice");
        }
    }
    let total_acks: usize = reports.iter().map(|r| r.acks.len()).sum();
    let conflicts: u64 = reports.iter().map(|r| r.conflicts).sum();
    let deleted: BTreeSet<String> = reports
        .iter()
        .flat_map(|r| r.own_deleted.iter())
        .filter(|(_, d)| **d)
        .map(|(n, _)| n.clone())
        .collect();

    let mut vault = reopen(&path);
    // Soft-deleted own names are exactly those whose last operation was a
    // delete; they read as not found.
    let listed_deleted: BTreeSet<String> = vault
        .list("", true)
        .unwrap()
        .into_iter()
        .map(|i| i.name.to_string())
        .collect();
    assert_eq!(listed_deleted, deleted, "soft-deleted secrets");
    for n in &deleted {
        assert!(
            matches!(
                vault.get(&name(n), Selector::default()),
                Err(Error::Deleted { .. })
            ),
            "deleted '{n}' is readable"
        );
        vault.undelete(&name(n)).unwrap();
    }

    for (n, acked) in &by_name {
        // Versions are dense, 1..=n, and every one of them was acknowledged.
        let history: Vec<u64> = vault
            .history(&name(n))
            .unwrap()
            .into_iter()
            .map(|h| {
                assert!(
                    h.destroyed_at.is_none(),
                    "'{n}' version {} destroyed",
                    h.version
                );
                h.version
            })
            .collect();
        let latest = history.len() as u64;
        assert_eq!(
            history,
            (1..=latest).collect::<Vec<_>>(),
            "versions of '{n}' are not dense"
        );
        assert_eq!(
            acked.keys().copied().collect::<Vec<_>>(),
            history,
            "'{n}': acknowledged versions differ from stored ones"
        );
        for (v, val) in acked {
            let s = vault
                .get(&name(n), Selector::Version(*v))
                .unwrap_or_else(|e| panic!("'{n}' version {v}: {e}"));
            assert_eq!(
                s.value.expose_secret(),
                val.as_bytes(),
                "'{n}' version {v} holds another value"
            );
        }
        let current = vault.get(&name(n), Selector::default()).unwrap();
        assert_eq!(current.version, latest, "'{n}': current is not the latest");
    }

    // The audit log names every acknowledged operation and refusal, once.
    let log = vault.audit_log(&AuditFilter::default()).unwrap();
    let count = |op: &str, result: &str| {
        log.iter()
            .filter(|e| e.operation == op && e.result == result)
            .count()
    };
    assert_eq!(count("set", "ok"), total_acks, "audited writes");
    assert_eq!(
        count("delete", "ok"),
        reports.iter().map(|r| r.deletes).sum::<usize>(),
        "audited deletes"
    );
    assert_eq!(
        count("undelete", "ok"),
        reports.iter().map(|r| r.undeletes).sum::<usize>() + deleted.len(),
        "audited undeletes"
    );
    assert_eq!(
        count("set", "conflict") as u64,
        conflicts,
        "audited conflicts"
    );
    assert!(
        conflicts > 0,
        "no check-and-set ever conflicted: the retry path was not exercised"
    );
    for (n, acked) in &by_name {
        let audited: BTreeSet<u64> = log
            .iter()
            .filter(|e| e.operation == "set" && e.result == "ok" && e.name.as_deref() == Some(n))
            .flat_map(|e| e.versions.iter().copied())
            .collect();
        assert_eq!(
            audited,
            acked.keys().copied().collect::<BTreeSet<_>>(),
            "audited versions of '{n}'"
        );
    }

    let report = vault.verify().unwrap();
    assert_eq!(report.versions as usize, total_acks);
    assert_eq!(report.destroyed_versions, 0);
    assert!(report.audit_entries as usize >= log.len());
    vault.audit_verify().unwrap();
    assert!(by_name.keys().filter(|n| n.starts_with("shared/")).count() == SHARED);
    println!(
        "concurrency: {PROCESSES} processes x {OPS} operations: {total_acks} writes, {} deletes, {} undeletes, {conflicts} check-and-set conflicts retried; writers took {writers_done:.1?}, all checks {:.1?}",
        reports.iter().map(|r| r.deletes).sum::<usize>(),
        reports.iter().map(|r| r.undeletes).sum::<usize>(),
        started.elapsed()
    );
}
