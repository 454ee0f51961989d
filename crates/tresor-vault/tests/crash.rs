//! `kill -9` of a writer at random instants: after each kill the vault
//! unlocks, verifies, and holds every write the writer acknowledged.
//!
//! The writer is this test binary re-executed (`crash_writer`, told what to
//! do by `TRESOR_TEST_CRASH_CHILD=path,trial,seed`). It writes without end
//! and prints `ACK name version trial op len` after each committed write.
//! One vault is reused across trials, so recovery runs on a growing file.
//! `TRESOR_CRASH_TRIALS` sets the number of trials (default 200),
//! `TRESOR_CRASH_SEED` replays a run.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use tresor_core::{PutOptions, SecretValue, Selector};
use tresor_vault::{LockedVault, OpenOptions, Settings, Vault};

const CHILD_ENV: &str = "TRESOR_TEST_CRASH_CHILD";
const NAMES: usize = 8;

fn crash_name(i: usize) -> String {
    format!("crash/k{i}")
}

/// The value written by `trial`'s `op`-th write to `name`: a recognisable
/// token repeated to `len` bytes, so the parent can rebuild it from an ack.
fn synthetic_value(trial: u64, name: &str, op: u64, len: usize) -> Vec<u8> {
    let token = format!("t{trial}-{name}-{op};");
    token.bytes().cycle().take(len).collect()
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The writer process. Does nothing in a normal test run.
#[test]
fn crash_writer() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split(',');
    let path = parts.next().unwrap().to_string();
    let trial: u64 = parts.next().unwrap().parse().unwrap();
    let seed: u64 = parts.next().unwrap().parse().unwrap();
    run_writer(Path::new(&path), trial, seed);
}

fn run_writer(path: &Path, trial: u64, seed: u64) -> ! {
    let mut out = std::io::stdout().lock();
    // Start on a fresh line: libtest may have printed "test crash_writer ... ".
    writeln!(out).unwrap();
    out.flush().unwrap();
    let mut rng = XorShift((seed ^ trial.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
    // Every third writer is a one-shot CLI-style process that leaves its WAL
    // for the next one.
    let options = OpenOptions {
        no_checkpoint_on_close: trial.is_multiple_of(3),
        ..OpenOptions::default()
    };
    let mut vault = LockedVault::open(path, &options)
        .and_then(|l| l.unlock(&key()))
        .unwrap_or_else(|e| panic!("trial {trial}: the writer could not unlock: {e}"));
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    let mut op = 0u64;
    loop {
        let roll = rng.below(100);
        let len = |rng: &mut XorShift| value_len(rng);
        if roll < 10 {
            // An import: three writes in one transaction, then a WAL
            // checkpoint (TRUNCATE), which a kill may also interrupt.
            let picks: Vec<(String, usize, u64)> = (0..3)
                .map(|j| {
                    (
                        crash_name(((op + j) % NAMES as u64) as usize),
                        len(&mut rng),
                        op + j,
                    )
                })
                .collect();
            let items: Vec<_> = picks
                .iter()
                .map(|(n, l, o)| {
                    (
                        name(n),
                        SecretValue::from(synthetic_value(trial, n, *o, *l)),
                    )
                })
                .collect();
            let versions = vault
                .put_many(&items, Some("crash test import"), |_| {})
                .unwrap_or_else(|e| panic!("trial {trial} op {op}: import: {e}"));
            for ((n, l, o), v) in picks.iter().zip(versions) {
                writeln!(out, "ACK {n} {v} {trial} {o} {l}").unwrap();
            }
            op += 3;
        } else {
            let n = crash_name(rng.below(NAMES as u64) as usize);
            let l = len(&mut rng);
            let options = PutOptions {
                // Some staged writes: the pending label must survive too.
                stage: roll < 15,
                ..PutOptions::default()
            };
            let v = vault
                .put(
                    &name(&n),
                    &value(&synthetic_value(trial, &n, op, l)),
                    &options,
                )
                .unwrap_or_else(|e| panic!("trial {trial} op {op}: put '{n}': {e}"));
            writeln!(out, "ACK {n} {v} {trial} {op} {l}").unwrap();
            op += 1;
        }
        out.flush().unwrap();
    }
}

/// Mostly small values; some large enough to spill over several pages.
fn value_len(rng: &mut XorShift) -> usize {
    if rng.below(10) == 0 {
        4 * 1024 + rng.below(16 * 1024) as usize
    } else {
        16 + rng.below(200) as usize
    }
}

/// One acknowledged write.
#[derive(Clone, Debug)]
struct Ack {
    name: String,
    version: u64,
    trial: u64,
    op: u64,
    len: usize,
}

impl Ack {
    fn value(&self) -> Vec<u8> {
        synthetic_value(self.trial, &self.name, self.op, self.len)
    }
}

fn parse_ack(line: &str) -> Option<Ack> {
    let rest = &line[line.find("ACK ")? + 4..];
    let mut w = rest.split_whitespace();
    Some(Ack {
        name: w.next()?.to_string(),
        version: w.next()?.parse().ok()?,
        trial: w.next()?.parse().ok()?,
        op: w.next()?.parse().ok()?,
        len: w.next()?.parse().ok()?,
    })
}

fn env_u64(var: &str) -> Option<u64> {
    std::env::var(var).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{var} must be a number"))
    })
}

fn read_value(vault: &mut Vault, ack: &Ack) -> Vec<u8> {
    vault
        .get(&name(&ack.name), Selector::Version(ack.version))
        .unwrap_or_else(|e| {
            panic!(
                "trial {}: acknowledged '{}' version {} is unreadable: {e}",
                ack.trial, ack.name, ack.version
            )
        })
        .value
        .expose_secret()
        .to_vec()
}

/// Every name's versions are 1..=latest, with no gap.
fn assert_dense(vault: &mut Vault, trial: u64) {
    for i in 0..NAMES {
        let n = crash_name(i);
        let Ok(history) = vault.history(&name(&n)) else {
            continue;
        };
        let versions: Vec<u64> = history.iter().map(|h| h.version).collect();
        let latest = versions.len() as u64;
        assert_eq!(
            versions,
            (1..=latest).collect::<Vec<_>>(),
            "trial {trial}: versions of '{n}' are not dense"
        );
    }
}

#[test]
fn kill_9_at_random_instants_loses_no_acknowledged_write() {
    let trials = env_u64("TRESOR_CRASH_TRIALS").unwrap_or(200);
    let seed = env_u64("TRESOR_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    println!("crash: {trials} trials, seed {seed} (TRESOR_CRASH_SEED={seed} replays the delays)");
    let mut rng = XorShift(seed | 1);
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (path, mut vault) = new_vault(dir.path());
    // The parent's own reads need not grow the audit chain that every
    // trial verifies; the writer's writes are all audited.
    vault
        .set_settings(Settings {
            audit_reads: false,
            ..Settings::default()
        })
        .unwrap();
    drop(vault);

    // Every ack so far, by (name, version): a version number acknowledged
    // twice would mean a committed write was lost and its number reused.
    let mut acked: BTreeMap<(String, u64), Ack> = BTreeMap::new();
    let mut kills_before_ready = 0u64;
    let mut trials_without_acks = 0u64;
    let mut largest_wal = 0u64;
    for trial in 0..trials {
        let stderr_path = dir.path().join("writer.stderr");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{},{trial},{seed}", path.display()))
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            // Only whole lines count: a kill can cut the last one short.
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                if line.ends_with('\n') && tx.send(line.clone()).is_err() {
                    break;
                }
                line.clear();
            }
        });
        let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();

        // A quarter of the kills count from the spawn (and may land while
        // the writer opens and recovers the vault); the others from the
        // moment it is ready to write.
        let from_spawn = rng.below(4) == 0;
        let mut lines = Vec::new();
        if from_spawn {
            kills_before_ready += 1;
        } else {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(l) if l.trim_end().ends_with("READY") => break,
                    Ok(l) => lines.push(l),
                    Err(_) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "trial {trial}: the writer never became ready:\n{}",
                            stderr()
                        );
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(30_001)));
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "trial {trial}: the writer exited on its own ({status}):\n{}",
                stderr()
            );
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "trial {trial}: killed writer reported success"
        );
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        let acks: Vec<Ack> = lines.iter().filter_map(|l| parse_ack(l)).collect();
        if acks.is_empty() {
            trials_without_acks += 1;
        }
        largest_wal = largest_wal
            .max(std::fs::metadata(format!("{}-wal", path.display())).map_or(0, |m| m.len()));

        // Recovery: alternate a checkpointing open with a one-shot one.
        let options = OpenOptions {
            no_checkpoint_on_close: trial.is_multiple_of(2),
            ..OpenOptions::default()
        };
        let mut vault = LockedVault::open(&path, &options)
            .unwrap_or_else(|e| panic!("trial {trial}: open after kill: {e}"))
            .unlock(&key())
            .unwrap_or_else(|e| panic!("trial {trial}: unlock after kill: {e}"));
        vault
            .verify()
            .unwrap_or_else(|e| panic!("trial {trial}: verify after kill: {e}"));

        for ack in &acks {
            assert_eq!(ack.trial, trial);
            if let Some(prev) = acked.insert((ack.name.clone(), ack.version), ack.clone()) {
                panic!(
                    "trial {trial}: '{}' version {} acknowledged again (first in trial {} op {}): \
                     an acknowledged write was lost",
                    ack.name, ack.version, prev.trial, prev.op
                );
            }
        }
        // This trial's writes read back (all of them that pruning left;
        // the newest per name is labelled, so pruning never takes it).
        let mut newest: BTreeMap<&str, u64> = BTreeMap::new();
        for ack in &acks {
            newest.insert(&ack.name, ack.version);
        }
        for ack in &acks {
            match vault.get(&name(&ack.name), Selector::Version(ack.version)) {
                Ok(s) => assert!(
                    s.value.expose_secret() == &ack.value()[..],
                    "trial {trial}: '{}' version {} holds another value",
                    ack.name,
                    ack.version
                ),
                Err(e) => {
                    let history = vault.history(&name(&ack.name)).unwrap();
                    let pruned = history
                        .iter()
                        .any(|h| h.version == ack.version && h.destroyed_at.is_some());
                    assert!(
                        pruned && newest[ack.name.as_str()] != ack.version,
                        "trial {trial}: acknowledged '{}' version {} is unreadable after the kill: {e}",
                        ack.name,
                        ack.version
                    );
                }
            }
        }
        // Earlier trials' writes are all still there: no name went back
        // below a version it acknowledged.
        let latest: BTreeMap<String, u64> = vault
            .list("", false)
            .unwrap()
            .into_iter()
            .map(|i| (i.name.to_string(), i.latest))
            .collect();
        for (n, v) in acked.keys() {
            let l = latest.get(n).copied().unwrap_or(0);
            assert!(
                *v <= l,
                "trial {trial}: acknowledged '{n}' version {v} is gone (latest is {l})"
            );
        }
        // Now and then, and at the end: version numbers are dense (pruning
        // empties versions but keeps their rows).
        if trial % 20 == 19 || trial + 1 == trials {
            assert_dense(&mut vault, trial);
        }
        drop(vault);
    }

    // Finally every acknowledged version that pruning did not destroy holds
    // its value, and the whole vault verifies once more.
    let mut vault = reopen(&path);
    let report = vault.verify().unwrap();
    let mut read = 0usize;
    for i in 0..NAMES {
        let n = crash_name(i);
        let history = vault.history(&name(&n)).unwrap();
        for ack in acked.values().filter(|a| a.name == n) {
            let entry = history.iter().find(|h| h.version == ack.version).unwrap();
            if entry.destroyed_at.is_none() {
                assert!(
                    read_value(&mut vault, ack) == ack.value(),
                    "'{}' version {} holds another value",
                    ack.name,
                    ack.version
                );
                read += 1;
            }
        }
    }
    println!(
        "crash: {trials} kills ({kills_before_ready} timed from spawn), {} acknowledged writes \
         ({trials_without_acks} trials killed before any), {read} still live and read back, \
         {} versions / {} audit entries at the end, largest WAL seen {largest_wal} bytes, {:.1?}",
        acked.len(),
        report.versions + report.destroyed_versions,
        report.audit_entries,
        started.elapsed()
    );
    assert!(
        acked.len() as u64 >= trials,
        "too few acknowledged writes ({}) for the test to mean anything",
        acked.len()
    );
}
