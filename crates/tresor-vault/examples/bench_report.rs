//! The in-process half of `scripts/bench`: measures the vault's hot paths in
//! a release build and prints JSON records `{tool, size, op, unit, value,
//! note}` (the schema of `scripts/bench-compare`) on stdout.
//!
//! ```text
//! bench_report measure DIR SIZES SECONDS   # get/set/import figures
//! bench_report fill VAULT N KEYFILE        # a vault of N secrets for the CLI benchmark
//! bench_report get-loop VAULT N KEYFILE SECONDS on|off
//!                                          # only gets on a filled vault (for perf record)
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tresor_core::{PutOptions, SecretName, SecretValue, Selector};
use tresor_crypto::slot::{Credential, new_key_file_text};
use tresor_vault::{CreateOptions, LockedVault, OpenOptions, Settings, Vault};

const VALUE_LEN: usize = 37;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("fill") => fill(
            Path::new(&args[1]),
            args[2].parse().unwrap(),
            Path::new(&args[3]),
        ),
        Some("measure") => measure(
            Path::new(&args[1]),
            args[2].split(',').map(|s| s.parse().unwrap()).collect(),
            args[3].parse().unwrap(),
        ),
        Some("get-loop") => get_loop(
            Path::new(&args[1]),
            args[2].parse().unwrap(),
            Path::new(&args[3]),
            args[4].parse().unwrap(),
            args[5] == "on",
        ),
        _ => {
            eprintln!(
                "usage: bench_report measure DIR SIZES SECONDS | fill VAULT N KEYFILE | get-loop VAULT N KEYFILE SECONDS on|off"
            );
            std::process::exit(2);
        }
    }
}

fn name(i: usize) -> SecretName {
    SecretName::new(format!("service{:03}/key{i:07}", i % 977)).unwrap()
}

fn value(i: usize) -> SecretValue {
    let mut v = format!("sk-{i:034}").into_bytes();
    v.truncate(VALUE_LEN);
    SecretValue::from(v)
}

fn items(n: usize) -> Vec<(SecretName, SecretValue)> {
    (0..n).map(|i| (name(i), value(i))).collect()
}

fn new_vault(path: &Path, key: &Credential) -> Vault {
    let _ = std::fs::remove_file(path);
    let opts = CreateOptions {
        recovery: false,
        ..CreateOptions::default()
    };
    Vault::create(path, key, &opts).unwrap().vault
}

fn fill(path: &Path, n: usize, key_file: &Path) {
    let text = new_key_file_text();
    std::fs::write(key_file, text.as_bytes()).unwrap();
    // `tresor --key-file` takes only a key file closed to group and others.
    std::fs::set_permissions(
        key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let key = Credential::key_material(text.as_bytes()).unwrap();
    let mut vault = new_vault(path, &key);
    vault
        .put_many(&items(n), Some("bench fill"), |_| {})
        .unwrap();
}

/// Gets from a vault made by `fill`, and nothing else, so that a profiler
/// sees the get path alone.
fn get_loop(path: &Path, n: usize, key_file: &Path, secs: f64, audit_reads: bool) {
    let key = Credential::key_material(&std::fs::read(key_file).unwrap()).unwrap();
    let mut vault = LockedVault::open(path, &OpenOptions::default())
        .unwrap()
        .unlock(&key)
        .unwrap();
    let names: Vec<SecretName> = (0..n).map(name).collect();
    let ops = get_rate(&mut vault, &names, secs, audit_reads);
    eprintln!(
        "get (read audit {}): {ops:.0} ops/s",
        if audit_reads { "on" } else { "off" }
    );
}

/// A fixed pseudo-random order of `0..n`, so the B-tree is not walked in
/// sequence.
fn fixed_order(n: usize) -> Vec<usize> {
    (0..n).map(|i| (i * 7919 + 13) % n).collect()
}

/// Gets per second over `names` in [`fixed_order`], with read auditing as
/// given (one thread, about `secs` seconds).
fn get_rate(vault: &mut Vault, names: &[SecretName], secs: f64, audit_reads: bool) -> f64 {
    vault
        .set_settings(Settings {
            audit_reads,
            ..Settings::default()
        })
        .unwrap();
    let order = fixed_order(names.len());
    let mut check = 0usize;
    let ops = rate(secs, |i| {
        let s = vault
            .get(&names[order[i % names.len()]], Selector::default())
            .unwrap();
        check += s.value.len();
    });
    assert!(check > 0);
    ops
}

fn record(tool: &str, size: usize, op: &str, unit: &str, value: f64, note: &str) {
    println!(
        "{}",
        serde_json_line(
            &[("tool", tool), ("op", op), ("unit", unit), ("note", note)],
            size,
            value
        )
    );
    eprintln!("{tool:<22} {size:>7} {op:<28} {value:>12.1} {unit}");
}

fn serde_json_line(fields: &[(&str, &str)], size: usize, value: f64) -> String {
    let mut s = String::from("{");
    for (k, v) in fields {
        s.push_str(&format!(
            "\"{k}\":\"{}\",",
            v.replace('\\', "\\\\").replace('"', "\\\"")
        ));
    }
    s.push_str(&format!("\"size\":{size},\"value\":{value:.3}}}"));
    s
}

/// Runs `f` repeatedly for about `secs` seconds; returns operations per second.
fn rate(secs: f64, mut f: impl FnMut(usize)) -> f64 {
    for i in 0..1000 {
        f(i);
    }
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < budget {
        for _ in 0..256 {
            f(n);
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn measure(dir: &Path, sizes: Vec<usize>, secs: f64) {
    std::fs::create_dir_all(dir).unwrap();
    let key = Credential::key_material(new_key_file_text().as_bytes()).unwrap();
    for &size in &sizes {
        let path = dir.join(format!("vault-{size}.db"));
        let mut vault = new_vault(&path, &key);
        let all = items(size);
        let start = Instant::now();
        vault.put_many(&all, None, |_| {}).unwrap();
        let import = start.elapsed().as_secs_f64();
        record(
            "tresor",
            size,
            "import (one call)",
            "s",
            import,
            "put_many: secret, version and audit rows in one transaction",
        );
        drop(vault);
        let mut vault = LockedVault::open(&path, &OpenOptions::default())
            .unwrap()
            .unlock(&key)
            .unwrap();
        let order = fixed_order(size);
        let names: Vec<SecretName> = all.iter().map(|(n, _)| n.clone()).collect();
        let get_off = get_rate(&mut vault, &names, secs, false);
        record(
            "tresor",
            size,
            "get (read audit off)",
            "ops/s",
            get_off,
            "in-process, one thread",
        );
        let get_on = get_rate(&mut vault, &names, secs, true);
        record(
            "tresor",
            size,
            "get (one audit commit per read)",
            "ops/s",
            get_on,
            "audit entry committed at synchronous=NORMAL",
        );
        // Durable writes are bound by fsync, whose cost on a virtual disk
        // swings by 2x from one second to the next: tresor and the bare
        // insert run in alternating batches and each reports its median.
        let bare_path = dir.join(format!("bare-{size}.db"));
        let (bare_conn, mut bare_n) = bare_table(&bare_path, size);
        let mut bare_stmt = bare_conn
            .prepare("INSERT INTO t(k, v) VALUES (?1, ?2)")
            .unwrap();
        let (mut tresor_rates, mut bare_rates) = (Vec::new(), Vec::new());
        let rounds = ((secs * 8.0) as usize).max(6);
        let batch = 100;
        let mut i = 0;
        for _ in 0..rounds {
            let start = Instant::now();
            for _ in 0..batch {
                vault
                    .put(&all[order[i % size]].0, &value(i), &PutOptions::default())
                    .unwrap();
                i += 1;
            }
            tresor_rates.push(batch as f64 / start.elapsed().as_secs_f64());
            let start = Instant::now();
            for _ in 0..batch {
                bare_n += 1;
                bare_stmt
                    .execute((format!("k{bare_n}").into_bytes(), vec![7u8; 77]))
                    .unwrap();
            }
            bare_rates.push(batch as f64 / start.elapsed().as_secs_f64());
        }
        let note = format!("median of {rounds} alternating batches of {batch}");
        record(
            "tresor",
            size,
            "set (durable, audited)",
            "ops/s",
            median(&mut tresor_rates),
            &format!("BEGIN IMMEDIATE, synchronous=FULL, one fsync; {note}"),
        );
        record(
            "rusqlite bare insert",
            size,
            "set (durable)",
            "ops/s",
            median(&mut bare_rates),
            &format!("one-row INSERT, WAL, synchronous=FULL, same disk; {note}"),
        );
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A bare rusqlite table for single-row inserts in WAL with
/// `synchronous=FULL`, holding `size` rows: the floor a durable write cannot
/// beat on this disk.
fn bare_table(path: &Path, size: usize) -> (Connection, usize) {
    let _ = std::fs::remove_file(path);
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE t(id INTEGER PRIMARY KEY, k BLOB UNIQUE, v BLOB);",
    )
    .unwrap();
    conn.execute_batch("BEGIN").unwrap();
    for i in 0..size {
        conn.execute(
            "INSERT INTO t(k, v) VALUES (?1, ?2)",
            (format!("k{i}").into_bytes(), vec![7u8; 77]),
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
    (conn, size)
}
