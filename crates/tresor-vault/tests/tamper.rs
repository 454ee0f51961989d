//! Tampering with the vault file: single bit flips all over it, rows moved
//! between secrets, labels repointed and audit entries edited. A read must
//! give the right value or an error, never another value; every flip inside
//! a sealed record or MAC must be detected.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use common::*;
use rusqlite::Connection;
use tresor_core::{Error, Label, PutOptions, Selector};
use tresor_crypto::slot::{Credential, RecoveryKey};
use tresor_vault::{LockedVault, OpenOptions, Vault};

const SECRETS: usize = 20;

/// What the vault should hold for one secret.
struct Expected {
    /// Values by version (index 0 is version 1).
    versions: Vec<Vec<u8>>,
    current: u64,
    pending: Option<u64>,
}

struct Fixture {
    dir: tempfile::TempDir,
    pristine: Vec<u8>,
    expected: BTreeMap<String, Expected>,
    recovery: RecoveryKey,
}

/// A distinct, recognisable value, 60 to ~400 bytes, so that no record
/// spills onto an overflow page and each sealed blob lies contiguously.
fn known_value(name: &str, version: u64) -> Vec<u8> {
    let mut v = format!("known-value:{name}:v{version}:").into_bytes();
    let extra = (name.len() * 7 + version as usize * 31) % 300;
    v.extend((0..extra).map(|i| (i as u8).wrapping_mul(37) ^ version as u8));
    v
}

fn secret_name(i: usize) -> String {
    format!("team{}/svc-{i:02}/key", i % 3)
}

/// Builds the vault: 20 secrets with 1 to 4 versions, one with a staged
/// pending version, one rolled back; then closes it so the WAL is
/// checkpointed into the file.
fn build() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let created = Vault::create(&path, &key(), &create_options()).unwrap();
    let recovery = created.recovery.unwrap();
    let mut vault = created.vault;
    let mut expected = BTreeMap::new();
    for i in 0..SECRETS {
        let n = secret_name(i);
        let count = 1 + (i % 4) as u64;
        let mut versions = Vec::new();
        for v in 1..=count {
            let val = known_value(&n, v);
            let got = vault
                .put(&name(&n), &value(&val), &PutOptions::default())
                .unwrap();
            assert_eq!(got, v);
            versions.push(val);
        }
        let mut current = count;
        let mut pending = None;
        if i == 7 {
            let v = count + 1;
            let val = known_value(&n, v);
            let staged = PutOptions {
                stage: true,
                ..PutOptions::default()
            };
            assert_eq!(vault.put(&name(&n), &value(&val), &staged).unwrap(), v);
            versions.push(val);
            pending = Some(v);
        }
        if i == 11 {
            vault.rollback(&name(&n), 1, Some("test")).unwrap();
            current = 1;
        }
        expected.insert(
            n,
            Expected {
                versions,
                current,
                pending,
            },
        );
    }
    let report = vault.verify().unwrap();
    assert_eq!(report.secrets, SECRETS as u64);
    drop(vault);
    let wal = wal_path(&path);
    assert!(
        fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "closing the vault left WAL content behind"
    );
    let pristine = fs::read(&path).unwrap();
    Fixture {
        dir,
        pristine,
        expected,
        recovery,
    }
}

fn wal_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", path.display()))
}

fn remove_db(path: &Path) {
    for p in [
        path.to_path_buf(),
        wal_path(path),
        PathBuf::from(format!("{}-shm", path.display())),
    ] {
        let _ = fs::remove_file(p);
    }
}

/// Opens `path` in the one-shot style (no checkpoint on close: a trial's
/// file is thrown away) and unlocks it with `credential`.
fn unlock(path: &Path, credential: &Credential) -> (Option<Error>, Option<Vault>) {
    let options = OpenOptions {
        no_checkpoint_on_close: true,
        ..OpenOptions::default()
    };
    match LockedVault::open(path, &options) {
        Err(e) => (Some(e), None),
        Ok(locked) => match locked.unlock(credential) {
            Err(e) => (Some(e), None),
            Ok(v) => (None, Some(v)),
        },
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Detected {
    Open,
    Unlock,
    Get,
    Verify,
    RecoveryUnlock,
}

/// One trial on the file at `path`: unlock, read every version and label,
/// verify, unlock with the recovery key. Returns where the damage was first
/// noticed, if anywhere; any read that returns another value than the one
/// written is pushed onto `wrong`.
fn trial(path: &Path, fx: &Fixture, wrong: &mut Vec<String>) -> Option<Detected> {
    let mut detected = None;
    let mut note = |d: Detected| {
        detected.get_or_insert(d);
    };
    let (err, vault) = unlock(path, &key());
    if let Some(mut vault) = vault {
        let mut get_failed = false;
        for (n, exp) in &fx.expected {
            let mut check = |selector: Selector, version: u64| match vault.get(&name(n), selector) {
                Err(_) => get_failed = true,
                Ok(s) => {
                    let want = &exp.versions[version as usize - 1];
                    if s.version != version || s.value.expose_secret() != &want[..] {
                        wrong.push(format!(
                            "'{n}' {selector}: read version {} ({} bytes), expected version {version}",
                            s.version,
                            s.value.len()
                        ));
                    }
                }
            };
            check(Selector::default(), exp.current);
            if let Some(p) = exp.pending {
                check(Selector::Label(Label::Pending), p);
            }
            for v in 1..=exp.versions.len() as u64 {
                check(Selector::Version(v), v);
            }
        }
        if get_failed {
            note(Detected::Get);
        }
        if vault.verify().is_err() {
            note(Detected::Verify);
        }
    } else {
        let e = err.expect("no vault means an error");
        note(match e {
            Error::Auth { .. } => Detected::Unlock,
            _ => Detected::Open,
        });
    }
    if unlock(path, &fx.recovery.credential()).1.is_none() {
        note(Detected::RecoveryUnlock);
    }
    detected
}

/// A sealed record, MAC, key or index found in the file.
struct Blob {
    what: String,
    start: usize,
    len: usize,
}

/// Every byte range of the file that holds a sealed record (and its nonce and
/// tag), a MAC (the head's too), a wrapped key, a blind index or the vault id:
/// a flip in any of them must be detected. Found by reading the columns
/// with rusqlite (from a scratch copy) and searching the file for them.
fn blobs(fx: &Fixture) -> Vec<Blob> {
    let scratch = fx.dir.path().join("scratch.db");
    remove_db(&scratch);
    fs::write(&scratch, &fx.pristine).unwrap();
    let conn = Connection::open(&scratch).unwrap();
    let mut found: Vec<(String, Vec<u8>)> = Vec::new();
    let mut collect = |sql: &str, what: &str| {
        let mut st = conn.prepare(sql).unwrap();
        let rows = st
            .query_map([], |r| {
                let id = match r.get::<_, rusqlite::types::Value>(0)? {
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    other => format!("{other:?}"),
                };
                Ok((id, r.get::<_, Vec<u8>>(1)?))
            })
            .unwrap();
        for row in rows {
            let (id, bytes) = row.unwrap();
            found.push((format!("{what} {id}"), bytes));
        }
    };
    collect(
        "SELECT secret_id || ' v' || version, body FROM versions WHERE body IS NOT NULL",
        "version body of secret",
    );
    collect("SELECT id, header FROM secrets", "header of secret");
    collect("SELECT id, bidx FROM secrets", "blind index of secret");
    collect(
        &format!("SELECT seq, body FROM audit WHERE seq < {HEAD}"),
        "audit body",
    );
    collect(
        &format!("SELECT seq, mac FROM audit WHERE seq < ({LAST})"),
        "audit mac",
    );
    collect(
        &format!("SELECT seq, mac FROM audit WHERE seq = ({LAST})"),
        "last audit mac (also in the head row)",
    );
    collect("SELECT id, wrapped FROM data_keys", "wrapped data key");
    collect(
        "SELECT id, wrapped FROM keyslots",
        "wrapped master key in slot",
    );
    collect(
        "SELECT key, value FROM meta WHERE key IN ('settings', 'vault_id')",
        "meta",
    );
    drop(conn);
    remove_db(&scratch);
    let versions = found
        .iter()
        .filter(|(w, _)| w.starts_with("version"))
        .count();
    let live: usize = fx.expected.values().map(|e| e.versions.len()).sum();
    assert_eq!(versions, live, "one stored body per written version");
    let mut out = Vec::new();
    for (what, bytes) in found {
        let hits: Vec<usize> = fx
            .pristine
            .windows(bytes.len())
            .enumerate()
            .filter(|(_, w)| *w == &bytes[..])
            .map(|(i, _)| i)
            .collect();
        // A blind index lies in the table and in its UNIQUE index; the
        // last MAC is also the audit chain's head.
        let copies = if what.starts_with("blind index") || what.starts_with("last audit mac") {
            2
        } else {
            1
        };
        assert_eq!(
            hits.len(),
            copies,
            "{what} ({} bytes) should lie in the file {copies} time(s), found at {hits:?}",
            bytes.len()
        );
        for start in hits {
            out.push(Blob {
                what: what.clone(),
                start,
                len: bytes.len(),
            });
        }
    }
    out
}

fn env_usize(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{var} must be a number"))
        })
        .unwrap_or(default)
}

fn page_size(file: &[u8]) -> usize {
    match u16::from_be_bytes([file[16], file[17]]) {
        1 => 65536,
        n => n as usize,
    }
}

#[test]
fn single_bit_flips_never_yield_a_wrong_value() {
    let fx = build();
    let file_len = fx.pristine.len();
    let page = page_size(&fx.pristine);
    let blobs = blobs(&fx);

    // Sanity: the untouched file passes every check.
    let probe = fx.dir.path().join("probe.db");
    fs::write(&probe, &fx.pristine).unwrap();
    let mut wrong = Vec::new();
    assert_eq!(trial(&probe, &fx, &mut wrong), None, "the pristine file");
    assert!(wrong.is_empty(), "{wrong:?}");
    remove_db(&probe);

    // Offsets: every 97th byte of the file (TRESOR_TAMPER_STRIDE), every
    // byte of the SQLite header, every byte of the first version body, the
    // first header and the first audit entry and its MAC, the first and last
    // byte of every other record; and, with TRESOR_TAMPER_PAGES=n, every byte
    // of the pages holding the first n of those records (slow: ~4096 trials
    // a page).
    let stride = env_usize("TRESOR_TAMPER_STRIDE", 97).max(1);
    let pages = env_usize("TRESOR_TAMPER_PAGES", 0);
    let mut offsets: Vec<usize> = (0..file_len).step_by(stride).collect();
    offsets.extend(0..100);
    let firsts = [
        "version body",
        "header of secret",
        "audit body",
        "audit mac",
    ];
    for (i, what) in firsts.iter().enumerate() {
        let b = blobs.iter().find(|b| b.what.starts_with(what)).unwrap();
        offsets.extend(b.start..b.start + b.len);
        if i < pages {
            let first = b.start / page * page;
            offsets.extend(first..(first + page).min(file_len));
        }
    }
    for b in &blobs {
        offsets.extend([b.start, b.start + b.len - 1]);
    }
    offsets.sort_unstable();
    offsets.dedup();

    let in_blob = |off: usize| {
        blobs
            .iter()
            .find(|b| (b.start..b.start + b.len).contains(&off))
    };
    let mut counts: BTreeMap<Option<Detected>, usize> = BTreeMap::new();
    let mut blob_trials = 0usize;
    let mut missed_in_blobs = Vec::new();
    let mut wrong_values = Vec::new();
    let mut panics = Vec::new();
    let mut undetected_nonzero = Vec::new();
    let started = std::time::Instant::now();
    for (i, &off) in offsets.iter().enumerate() {
        let bit = (off % 8) as u8;
        let path = fx.dir.path().join(format!("trial-{i}.db"));
        let mut bytes = fx.pristine.clone();
        bytes[off] ^= 1 << bit;
        fs::write(&path, &bytes).unwrap();
        let mut wrong = Vec::new();
        let outcome = catch_unwind(AssertUnwindSafe(|| trial(&path, &fx, &mut wrong)));
        remove_db(&path);
        let outcome = match outcome {
            Ok(o) => o,
            Err(_) => {
                panics.push(format!("offset {off} bit {bit}"));
                continue;
            }
        };
        for w in wrong {
            wrong_values.push(format!("offset {off} bit {bit}: {w}"));
        }
        *counts.entry(outcome).or_default() += 1;
        if outcome.is_none() && fx.pristine[off] != 0 {
            undetected_nonzero.push(off);
        }
        if let Some(b) = in_blob(off) {
            blob_trials += 1;
            if outcome.is_none() {
                missed_in_blobs.push(format!(
                    "offset {off} bit {bit} in {} (bytes {}..{})",
                    b.what,
                    b.start,
                    b.start + b.len
                ));
            }
        }
    }
    let total: usize = counts.values().sum();
    let undetected = counts.get(&None).copied().unwrap_or(0);
    println!(
        "tamper: {total} single-bit flips over a {file_len}-byte file ({} pages of {page}) in {:.1?}",
        file_len / page,
        started.elapsed()
    );
    println!(
        "tamper: detected {} (by stage: {:?}), undetected {undetected} (free space, slack, unchecked fields)",
        total - undetected,
        counts
            .iter()
            .filter_map(|(k, v)| k.map(|k| (k, *v)))
            .collect::<Vec<_>>()
    );
    let mut by_page: BTreeMap<usize, usize> = BTreeMap::new();
    for off in &undetected_nonzero {
        *by_page.entry(off / page + 1).or_default() += 1;
    }
    println!(
        "tamper: of the undetected, {} hit zero bytes (free space), {} hit non-zero bytes (by page: {by_page:?})",
        undetected - undetected_nonzero.len(),
        undetected_nonzero.len()
    );
    println!(
        "tamper: {blob_trials} flips inside {} sealed records, MACs, keys and indexes, {} undetected",
        blobs.len(),
        missed_in_blobs.len()
    );
    assert!(panics.is_empty(), "panics at {panics:?}");
    assert!(
        wrong_values.is_empty(),
        "reads returned another value than written:\n{}",
        wrong_values.join("\n")
    );
    assert!(
        missed_in_blobs.is_empty(),
        "flips inside sealed records went undetected:\n{}",
        missed_in_blobs.join("\n")
    );
    assert!(total >= 1000 || stride > 97, "only {total} trials");
    assert!(
        blob_trials >= 3 * blobs.len(),
        "every blob is flipped at least thrice"
    );
    assert!(total - undetected > 0);
}

// ----------------------------------------------------- moved rows and labels

/// A fresh copy of the pristine vault, edited with `sql` through rusqlite.
fn tampered(fx: &Fixture, label: &str, edit: impl FnOnce(&Connection)) -> PathBuf {
    let path = fx.dir.path().join(format!("{label}.db"));
    remove_db(&path);
    fs::write(&path, &fx.pristine).unwrap();
    let conn = Connection::open(&path).unwrap();
    edit(&conn);
    drop(conn);
    path
}

fn id_of(conn: &Connection, fx: &Fixture, n: &str) -> i64 {
    // Ids follow insertion order, which is the order of `secret_name(i)`.
    let i = (0..SECRETS).find(|i| secret_name(*i) == n).unwrap();
    let id: i64 = conn
        .query_row(
            "SELECT id FROM secrets ORDER BY id LIMIT 1 OFFSET ?1",
            [i],
            |r| r.get(0),
        )
        .unwrap();
    assert!(fx.expected.contains_key(n));
    id
}

fn get(vault: &mut Vault, n: &str, selector: Selector) -> Result<(u64, Vec<u8>), Error> {
    vault
        .get(&name(n), selector)
        .map(|s| (s.version, s.value.expose_secret().to_vec()))
}

fn assert_integrity<T>(result: Result<T, Error>, what: &str) {
    match result {
        Err(Error::Integrity { .. }) => {}
        Err(e) => panic!(
            "{what}: expected an Integrity error, got {} ({e})",
            e.kind()
        ),
        Ok(_) => panic!("{what}: no error"),
    }
}

/// Either an error or exactly the expected version and value.
fn assert_right_or_err(
    result: Result<(u64, Vec<u8>), Error>,
    fx: &Fixture,
    n: &str,
    version: u64,
) -> bool {
    match result {
        Err(_) => false,
        Ok((v, bytes)) => {
            assert_eq!(v, version, "'{n}': read another version");
            assert!(
                bytes == fx.expected[n].versions[version as usize - 1],
                "'{n}' version {version}: read another value"
            );
            true
        }
    }
}

#[test]
fn swapped_blind_indexes_give_integrity_errors() {
    let fx = build();
    let (a, b) = (secret_name(2), secret_name(3));
    let path = tampered(&fx, "swap-bidx", |c| {
        let (ia, ib) = (id_of(c, &fx, &a), id_of(c, &fx, &b));
        let bidx = |id: i64| -> Vec<u8> {
            c.query_row("SELECT bidx FROM secrets WHERE id = ?1", [id], |r| r.get(0))
                .unwrap()
        };
        let (ba, bb) = (bidx(ia), bidx(ib));
        // Through a placeholder: bidx is UNIQUE.
        c.execute("UPDATE secrets SET bidx = X'00' WHERE id = ?1", [ia])
            .unwrap();
        c.execute(
            "UPDATE secrets SET bidx = ?1 WHERE id = ?2",
            rusqlite::params![ba, ib],
        )
        .unwrap();
        c.execute(
            "UPDATE secrets SET bidx = ?1 WHERE id = ?2",
            rusqlite::params![bb, ia],
        )
        .unwrap();
    });
    let mut vault = reopen(&path);
    for n in [&a, &b] {
        assert_integrity(
            get(&mut vault, n, Selector::default()),
            &format!("get '{n}'"),
        );
        assert_integrity(
            get(&mut vault, n, Selector::Version(1)),
            &format!("get '{n}' version 1"),
        );
        assert_integrity(vault.history(&name(n)), &format!("history of '{n}'"));
    }
    // The others still read correctly.
    let other = secret_name(4);
    let cur = fx.expected[&other].current;
    assert!(assert_right_or_err(
        get(&mut vault, &other, Selector::default()),
        &fx,
        &other,
        cur
    ));
    assert_integrity(vault.verify(), "verify after swapping blind indexes");
}

#[test]
fn repointed_labels_never_yield_another_version() {
    let fx = build();
    // secret 3 has versions 1..=4 (current 4), secret 1 has 1..=2 (current 2).
    let (a, b) = (secret_name(3), secret_name(1));
    assert_eq!(fx.expected[&a].current, 4);
    assert_eq!(fx.expected[&b].current, 2);

    // Swap the plaintext `current` columns of two secrets.
    let path = tampered(&fx, "swap-current", |c| {
        let (ia, ib) = (id_of(c, &fx, &a), id_of(c, &fx, &b));
        c.execute_batch(&format!(
            "UPDATE secrets SET current = 2 WHERE id = {ia};
             UPDATE secrets SET current = 4 WHERE id = {ib};"
        ))
        .unwrap();
    });
    let mut vault = reopen(&path);
    // a's column now names its version 2, which exists: the header disagrees.
    assert_integrity(
        get(&mut vault, &a, Selector::default()),
        "get a after the swap",
    );
    // b's column names a version b lacks: an error or b's true current.
    let r = get(&mut vault, &b, Selector::default());
    assert_right_or_err(r, &fx, &b, 2);
    assert_integrity(vault.verify(), "verify after swapping current columns");
    drop(vault);

    // Point current at another existing version of the same secret.
    for (label, target) in [("current-to-1", 1u64), ("current-to-3", 3)] {
        let path = tampered(&fx, label, |c| {
            let ia = id_of(c, &fx, &a);
            c.execute(
                "UPDATE secrets SET current = ?1 WHERE id = ?2",
                rusqlite::params![target, ia],
            )
            .unwrap();
        });
        let mut vault = reopen(&path);
        assert_integrity(get(&mut vault, &a, Selector::default()), label);
        assert_integrity(vault.verify(), label);
    }

    // Point current at a version that does not exist.
    let path = tampered(&fx, "current-to-9", |c| {
        let ia = id_of(c, &fx, &a);
        c.execute("UPDATE secrets SET current = 9 WHERE id = ?1", [ia])
            .unwrap();
    });
    let mut vault = reopen(&path);
    assert_right_or_err(get(&mut vault, &a, Selector::default()), &fx, &a, 4);
    assert_integrity(vault.verify(), "current pointing at a missing version");
    drop(vault);

    // Move the pending label column of the staged secret.
    let staged = secret_name(7);
    let path = tampered(&fx, "pending", |c| {
        let id = id_of(c, &fx, &staged);
        c.execute("UPDATE secrets SET pending = 1 WHERE id = ?1", [id])
            .unwrap();
    });
    let mut vault = reopen(&path);
    let pending = fx.expected[&staged].pending.unwrap();
    assert_right_or_err(
        get(&mut vault, &staged, Selector::Label(Label::Pending)),
        &fx,
        &staged,
        pending,
    );
    assert_integrity(vault.verify(), "pending column moved");
}

#[test]
fn moved_records_fail_to_decrypt() {
    let fx = build();
    let a = secret_name(3); // versions 1..=4
    let b = secret_name(2); // versions 1..=3

    // Swap the bodies of versions 1 and 2 of one secret.
    let path = tampered(&fx, "swap-bodies", |c| {
        let ia = id_of(c, &fx, &a);
        c.execute_batch(&format!(
            "CREATE TEMP TABLE t AS SELECT version, body FROM versions WHERE secret_id = {ia};
             UPDATE versions SET body = (SELECT body FROM t WHERE version = 2) WHERE secret_id = {ia} AND version = 1;
             UPDATE versions SET body = (SELECT body FROM t WHERE version = 1) WHERE secret_id = {ia} AND version = 2;"
        ))
        .unwrap();
    });
    let mut vault = reopen(&path);
    for v in [1, 2] {
        assert_integrity(
            get(&mut vault, &a, Selector::Version(v)),
            &format!("swapped body, version {v}"),
        );
    }
    assert!(assert_right_or_err(
        get(&mut vault, &a, Selector::Version(3)),
        &fx,
        &a,
        3
    ));
    assert_integrity(vault.verify(), "swapped bodies");
    drop(vault);

    // Copy a body from one secret to another at the same version.
    let path = tampered(&fx, "move-body", |c| {
        let (ia, ib) = (id_of(c, &fx, &a), id_of(c, &fx, &b));
        c.execute_batch(&format!(
            "UPDATE versions SET body = (SELECT body FROM versions WHERE secret_id = {ia} AND version = 3)
             WHERE secret_id = {ib} AND version = 3;"
        ))
        .unwrap();
    });
    let mut vault = reopen(&path);
    assert_integrity(get(&mut vault, &b, Selector::default()), "moved body");
    assert_integrity(vault.verify(), "moved body");
    drop(vault);

    // Swap whole header blobs (and their key ids) between two secrets.
    let path = tampered(&fx, "swap-headers", |c| {
        let (ia, ib) = (id_of(c, &fx, &a), id_of(c, &fx, &b));
        c.execute_batch(&format!(
            "CREATE TEMP TABLE h AS SELECT id, header FROM secrets WHERE id IN ({ia}, {ib});
             UPDATE secrets SET header = (SELECT header FROM h WHERE id = {ib}) WHERE id = {ia};
             UPDATE secrets SET header = (SELECT header FROM h WHERE id = {ia}) WHERE id = {ib};"
        ))
        .unwrap();
    });
    let mut vault = reopen(&path);
    assert_integrity(get(&mut vault, &a, Selector::default()), "swapped headers");
    assert_integrity(get(&mut vault, &b, Selector::Version(1)), "swapped headers");
    assert_integrity(vault.verify(), "swapped headers");
}

// ------------------------------------------------------------------- audit

/// The `seq` of the audit chain's head row (VAULT-FORMAT.md, "Audit chain").
const HEAD: i64 = i64::MAX;
/// SQL for the last entry's `seq`.
const LAST: &str = "SELECT max(seq) FROM audit WHERE seq < 9223372036854775807";

fn audit_tampered(fx: &Fixture, label: &str, sql: &str) {
    let path = tampered(fx, label, |c| {
        let n: i64 = c
            .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .unwrap();
        assert!(n > 10, "the fixture has a long audit chain");
        c.execute_batch(sql).unwrap();
    });
    let mut vault = reopen(&path);
    assert_integrity(vault.audit_verify(), &format!("audit_verify after {label}"));
    assert_integrity(vault.verify(), &format!("verify after {label}"));
}

#[test]
fn audit_chain_edits_are_detected() {
    let fx = build();
    // The untouched chain verifies.
    let path = tampered(&fx, "audit-clean", |_| {});
    let entries = reopen(&path).audit_verify().unwrap();
    assert!(entries > 30, "{entries} audit entries");

    audit_tampered(&fx, "delete-middle", "DELETE FROM audit WHERE seq = 5");
    audit_tampered(&fx, "delete-first", "DELETE FROM audit WHERE seq = 1");
    audit_tampered(
        &fx,
        "delete-last",
        &format!("DELETE FROM audit WHERE seq = ({LAST})"),
    );
    audit_tampered(&fx, "edit-at", "UPDATE audit SET at = at + 1 WHERE seq = 7");
    audit_tampered(
        &fx,
        "edit-at-last",
        &format!("UPDATE audit SET at = at - 1000 WHERE seq = ({LAST})"),
    );
    audit_tampered(
        &fx,
        "reorder",
        "CREATE TEMP TABLE a AS SELECT * FROM audit WHERE seq IN (8, 9);
         UPDATE audit SET at = (SELECT at FROM a WHERE seq = 9), body = (SELECT body FROM a WHERE seq = 9),
                          mac = (SELECT mac FROM a WHERE seq = 9), key_id = (SELECT key_id FROM a WHERE seq = 9)
             WHERE seq = 8;
         UPDATE audit SET at = (SELECT at FROM a WHERE seq = 8), body = (SELECT body FROM a WHERE seq = 8),
                          mac = (SELECT mac FROM a WHERE seq = 8), key_id = (SELECT key_id FROM a WHERE seq = 8)
             WHERE seq = 9;",
    );
    audit_tampered(
        &fx,
        "renumber",
        &format!(
            "UPDATE audit SET seq = seq + 1000 WHERE seq >= 10 AND seq < {HEAD};
             UPDATE audit SET seq = seq - 999 WHERE seq >= 1010 AND seq < {HEAD};"
        ),
    );
    audit_tampered(
        &fx,
        "swap-body",
        "UPDATE audit SET body = (SELECT body FROM audit WHERE seq = 3) WHERE seq = 4",
    );
    audit_tampered(
        &fx,
        "rewind-head",
        &format!("UPDATE audit SET at = at - 1 WHERE seq = {HEAD}"),
    );
    audit_tampered(
        &fx,
        "delete-head",
        &format!("DELETE FROM audit WHERE seq = {HEAD}"),
    );
    audit_tampered(
        &fx,
        "edit-head-mac",
        &format!("UPDATE audit SET mac = zeroblob(32) WHERE seq = {HEAD}"),
    );
}

#[test]
fn blob_ranges_cover_every_record() {
    // The blob search itself: every version, header, audit entry and slot
    // is found exactly once (secure_delete leaves no stale copies behind).
    let fx = build();
    let blobs = blobs(&fx);
    let audit: usize = blobs
        .iter()
        .filter(|b| b.what.starts_with("audit body"))
        .count();
    assert!(audit > 30);
    assert_eq!(
        blobs
            .iter()
            .filter(|b| b.what.starts_with("header"))
            .count(),
        SECRETS
    );
    assert_eq!(
        blobs
            .iter()
            .filter(|b| b.what.starts_with("wrapped master"))
            .count(),
        2
    );
}
