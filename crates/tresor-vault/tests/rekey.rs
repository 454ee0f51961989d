//! Rotation of the vault's own keys: `rekey`, `rekey --reencrypt`,
//! `rekey --master` and `passwd` (rewrapping one slot), including `kill -9`
//! during each.
//!
//! The crash test re-executes this binary (`rekey_child`, driven by
//! `TRESOR_TEST_REKEY_CHILD=path,mode`): the child rotates in a loop and the
//! parent kills it at a random instant, then checks that the vault opens
//! with the key file, passes `verify`, and still holds every value, and that
//! the password slot the `passwd` child keeps changing opens with either
//! the old or the new password, never neither.
//! `TRESOR_REKEY_CRASH_TRIALS` sets the trials per mode (default 100).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rusqlite::Connection;
use tresor_core::{Error, PutOptions, Selector};
use tresor_crypto::slot::Credential;
use tresor_vault::{AuditFilter, LockedVault, OpenOptions, Settings, Vault};
use zeroize::Zeroizing;

const CHILD_ENV: &str = "TRESOR_TEST_REKEY_CHILD";
const SECRETS: usize = 30;

fn fill(v: &mut Vault) {
    for i in 0..SECRETS {
        for round in 0..2 {
            v.put(
                &name(&format!("rk/s{i}")),
                &value(expected(i, round).as_bytes()),
                &PutOptions::default(),
            )
            .unwrap();
        }
    }
}

fn expected(i: usize, round: usize) -> String {
    format!("value-{i}-{round}")
}

fn check_all(v: &mut Vault) {
    for i in 0..SECRETS {
        let s = v
            .get(&name(&format!("rk/s{i}")), Selector::default())
            .unwrap();
        assert_eq!(
            s.value.expose_secret(),
            expected(i, 1).as_bytes(),
            "rk/s{i}"
        );
        assert_eq!(s.version, 2);
        let old = v
            .get(&name(&format!("rk/s{i}")), Selector::Version(1))
            .unwrap();
        assert_eq!(old.value.expose_secret(), expected(i, 0).as_bytes());
    }
    v.verify().unwrap();
}

fn data_key_ids(path: &std::path::Path) -> Vec<(u32, bool)> {
    let c = Connection::open(path).unwrap();
    let mut st = c
        .prepare("SELECT id, retired_at IS NOT NULL FROM data_keys ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn key_ids_in_use(path: &std::path::Path) -> Vec<u32> {
    let c = Connection::open(path).unwrap();
    let mut st = c
        .prepare(
            "SELECT header_key FROM secrets UNION SELECT key_id FROM versions
             UNION SELECT key_id FROM audit WHERE seq < 9223372036854775807 ORDER BY 1",
        )
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn rekey_adds_a_write_key_and_keeps_old_records_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    fill(&mut v);
    let report = v.rekey().unwrap();
    assert_eq!(report.data_key, 2);
    v.put(&name("rk/new"), &value(b"after"), &PutOptions::default())
        .unwrap();
    check_all(&mut v);
    drop(v);
    assert_eq!(data_key_ids(&path), vec![(1, true), (2, false)]);
    let mut v = reopen(&path);
    check_all(&mut v);
    assert_eq!(
        v.get(&name("rk/new"), Selector::default())
            .unwrap()
            .value
            .expose_secret(),
        b"after"
    );
    let c = Connection::open(&path).unwrap();
    let key: u32 = c
        .query_row("SELECT v.key_id FROM versions v JOIN secrets s ON s.id = v.secret_id ORDER BY s.id DESC LIMIT 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(key, 2, "new writes use the new data key");
}

#[test]
fn reencrypt_rewrites_everything_and_destroys_old_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    fill(&mut v);
    v.rekey().unwrap();
    v.put(&name("rk/mid"), &value(b"mid"), &PutOptions::default())
        .unwrap();
    let report = v.rekey_reencrypt().unwrap();
    assert_eq!(report.data_key, 3);
    assert_eq!(report.retired_data_keys, vec![1, 2]);
    assert!(report.records > 2 * SECRETS as u64);
    check_all(&mut v);
    assert!(v.audit_verify().unwrap() > 2 * SECRETS as u64);
    drop(v);
    assert_eq!(data_key_ids(&path), vec![(3, false)]);
    assert_eq!(key_ids_in_use(&path), vec![3]);
    check_all(&mut reopen(&path));
}

#[test]
fn master_rekey_rewraps_slots_and_changes_every_derived_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let created = Vault::create(&path, &key(), &create_options()).unwrap();
    let old_recovery = created.recovery.unwrap();
    let mut v = created.vault;
    fill(&mut v);
    let pw = Credential::password(Zeroizing::new("pw".into()));
    v.add_slot(&pw, &fast_password_params(), None).unwrap();
    let bidx_before: Vec<Vec<u8>> = {
        let c = Connection::open(&path).unwrap();
        let mut st = c.prepare("SELECT bidx FROM secrets ORDER BY id").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };

    // Without the password slot's credential, nothing happens.
    let err = v.rekey_master(&[&key()], false, false).err().unwrap();
    assert!(matches!(err, Error::SlotsUnavailable { .. }), "{err}");
    assert!(err.to_string().contains("3 (password)"), "{err}");
    assert!(err.to_string().contains("2 (recovery)"), "{err}");
    check_all(&mut v);

    // With the key file and the password; the recovery slot is replaced.
    let out = v.rekey_master(&[&key(), &pw], true, true).unwrap();
    assert!(out.report.master);
    assert_eq!(out.report.slots_rewrapped, vec![1, 3]);
    assert_eq!(out.report.slots_dropped, vec![2]);
    let new_recovery = out.recovery.expect("a new recovery key");
    check_all(&mut v);
    drop(v);

    let bidx_after: Vec<Vec<u8>> = {
        let c = Connection::open(&path).unwrap();
        let mut st = c.prepare("SELECT bidx FROM secrets ORDER BY id").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(bidx_before.len(), bidx_after.len());
    assert!(
        bidx_before.iter().zip(&bidx_after).all(|(a, b)| a != b),
        "blind indexes recomputed"
    );

    let open = || LockedVault::open(&path, &OpenOptions::default()).unwrap();
    check_all(&mut open().unlock(&key()).unwrap());
    check_all(&mut open().unlock(&pw).unwrap());
    check_all(&mut open().unlock(&new_recovery.credential()).unwrap());
    assert!(matches!(
        open().unlock(&old_recovery.credential()),
        Err(Error::Auth { .. })
    ));
    let mut v = open().unlock(&key()).unwrap();
    let writes = AuditFilter {
        writes_only: true,
        ..AuditFilter::default()
    };
    let log = v.audit_log(&writes).unwrap();
    // The refused old recovery key was folded in at the next unlock.
    let last = log.last().unwrap();
    assert_eq!(
        (last.operation.as_str(), last.result.as_str()),
        ("unlock_failed", "auth")
    );
    assert!(last.reason.as_deref().unwrap().starts_with("recovery slot"));
    assert_eq!(log[log.len() - 2].operation, "rekey --master");
    v.audit_verify().unwrap();
}

#[test]
fn master_rekey_refuses_to_leave_only_a_recovery_slot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let created = Vault::create(&path, &key(), &create_options()).unwrap();
    let recovery = created.recovery.unwrap();
    let mut v = created.vault;
    fill(&mut v);
    let err = v
        .rekey_master(&[&recovery.credential()], true, false)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("no password or key-file slot"),
        "{err}"
    );
    drop(v);
    check_all(&mut reopen(&path));
}

/// The two passwords the `passwd` child alternates between.
fn password(which: usize) -> Credential {
    Credential::password(Zeroizing::new(format!("rk-password-{which}")))
}

/// The id of the vault's one password slot.
fn password_slot_id(v: &Vault) -> u32 {
    let slots = v.slots().unwrap();
    let mut ids = slots
        .iter()
        .filter(|s| s.kind == tresor_crypto::slot::SlotKind::Password)
        .map(|s| s.id);
    let id = ids.next().expect("a password slot");
    assert!(ids.next().is_none(), "more than one password slot");
    id
}

/// Whether password `which` opens the vault at `v`'s path.
fn passwd_opens(v: &mut Vault, which: usize) -> bool {
    opens_with(v.path(), &password(which))
}

fn opens_with(path: &std::path::Path, credential: &Credential) -> bool {
    match LockedVault::open(path, &OpenOptions::default())
        .unwrap()
        .unlock(credential)
    {
        Ok(_) => true,
        Err(Error::Auth { .. }) => false,
        Err(e) => panic!("unlocking with a password: {e}"),
    }
}

/// The rotating child. Does nothing in a normal test run.
#[test]
fn rekey_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (path, mode) = spec.split_once(',').unwrap();
    let mut v = reopen(std::path::Path::new(path));
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nREADY").unwrap();
    out.flush().unwrap();
    loop {
        match mode {
            "rekey" => drop(v.rekey().unwrap()),
            "reencrypt" => drop(v.rekey_reencrypt().unwrap()),
            // Every slot rewrapped: the key file's and the password slot's.
            "master" => drop(
                v.rekey_master(&[&key(), &password(0), &password(1)], false, false)
                    .unwrap(),
            ),
            "passwd" => {
                // Flip the password slot between the two passwords.
                let id = password_slot_id(&v);
                let next = if passwd_opens(&mut v, 0) { 1 } else { 0 };
                v.change_slot(id, &password(next), &fast_password_params())
                    .unwrap();
            }
            _ => panic!("unknown mode {mode}"),
        }
        writeln!(out, "DONE").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill_9_during_rotation_loses_nothing() {
    let trials: u64 = std::env::var("TRESOR_REKEY_CRASH_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    fill(&mut v);
    // Reads are not audited here, so the chain (rewritten by every
    // reencryption) stays the same size across hundreds of trials.
    v.set_settings(Settings {
        audit_reads: false,
        ..Settings::default()
    })
    .unwrap();
    v.add_slot(&password(0), &fast_password_params(), Some("rotated"))
        .unwrap();
    drop(v);
    let mut seed = Instant::now().elapsed().as_nanos() as u64 ^ 0x2545_F491_4F6C_DD1D | 1;
    let mut rotations = 0;
    let modes = ["rekey", "reencrypt", "master", "passwd"];
    for mode in modes {
        for _ in 0..trials {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "rekey_child", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, format!("{},{mode}", path.display()))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            // Wait until the child has unlocked, then kill it mid-rotation.
            for line in lines.by_ref() {
                if line.unwrap() == "READY" {
                    break;
                }
            }
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(Duration::from_micros(seed % 15_000));
            child.kill().unwrap();
            child.wait().unwrap();
            rotations += lines.map_while(Result::ok).filter(|l| l == "DONE").count();
            let mut v = reopen(&path);
            check_all(&mut v);
            // The password slot opens with the old or the new password.
            let old = opens_with(&path, &password(0));
            let new = opens_with(&path, &password(1));
            assert!(
                old ^ new,
                "after a kill during {mode}: password 0 opens: {old}, password 1 opens: {new}"
            );
        }
    }
    let mut v = reopen(&path);
    check_all(&mut v);
    assert!(v.audit_verify().unwrap() > 0);
    eprintln!(
        "{} kills, {rotations} rotations completed before them",
        modes.len() as u64 * trials
    );
}

#[test]
fn rotations_keep_named_keys_working() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut v) = new_vault(dir.path());
    fill(&mut v);
    let app = name("app/enc");
    v.keys().create(&app, Default::default()).unwrap();
    let envelope = v.keys().encrypt(&app, b"named-key payload").unwrap();
    v.rekey_reencrypt().unwrap();
    assert_eq!(
        v.keys().decrypt(&envelope).unwrap().expose_secret(),
        b"named-key payload"
    );
    v.rekey_master(&[&key()], true, false).unwrap();
    assert_eq!(
        v.keys().decrypt(&envelope).unwrap().expose_secret(),
        b"named-key payload"
    );
    check_all(&mut v);
    drop(v);
    let mut v = reopen(&path);
    assert_eq!(
        v.keys().decrypt(&envelope).unwrap().expose_secret(),
        b"named-key payload"
    );
    assert_eq!(key_ids_in_use(&path).len(), 1);
}

/// A recorded stream of progress reports.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl tresor_core::progress::Progress for Recorder {
    fn start(&self, what: &str, total: Option<u64>, _: tresor_core::progress::Unit) {
        self.0
            .lock()
            .unwrap()
            .push(format!("start {what} {total:?}"));
    }
    fn update(&self, done: u64) {
        self.0.lock().unwrap().push(done.to_string());
    }
    fn finish(&self) {
        self.0.lock().unwrap().push("finish".into());
    }
}

impl Recorder {
    /// The stage's total and every update, checked to rise to it and end.
    fn stage(&self) -> (u64, Vec<u64>) {
        let log = self.0.lock().unwrap();
        let start = log.first().expect("a stage started");
        let total: u64 = start
            .rsplit_once("Some(")
            .and_then(|(_, t)| t.strip_suffix(')'))
            .expect("a total")
            .parse()
            .unwrap();
        assert_eq!(log.last().map(String::as_str), Some("finish"), "{log:?}");
        let updates: Vec<u64> = log[1..log.len() - 1]
            .iter()
            .map(|u| u.parse().unwrap())
            .collect();
        assert!(updates.windows(2).all(|w| w[0] <= w[1]), "{updates:?}");
        (total, updates)
    }
}

/// Re-encrypting, master rekeys and verify report their progress: one
/// stage with a total, rising updates that reach it, and an end.
#[test]
fn long_work_reports_progress() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut v) = new_vault(dir.path());
    for i in 0..12 {
        v.put(
            &name(&format!("p/{i}")),
            &value(b"value"),
            &tresor_core::PutOptions::default(),
        )
        .unwrap();
    }
    let log = Recorder::default();
    v.rekey_reencrypt_with(&log).unwrap();
    let (total, updates) = log.stage();
    assert!(total >= 24, "12 headers and 12 versions at least: {total}");
    assert_eq!(updates.last(), Some(&total));
    assert!(log.0.lock().unwrap()[0].starts_with("start re-encrypting records"));

    let log = Recorder::default();
    let report = v.verify_with(&log).unwrap();
    let (total, updates) = log.stage();
    assert_eq!(total, 12);
    assert_eq!(updates.last(), Some(&report.secrets));

    let log = Recorder::default();
    v.rekey_master_with(&[&key()], true, false, &log).unwrap();
    let (total, updates) = log.stage();
    assert_eq!(updates.last(), Some(&total));
}
