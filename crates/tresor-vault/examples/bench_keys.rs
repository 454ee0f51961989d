//! Throughput of named-key envelopes in process (release build):
//!
//! ```text
//! cargo run --release -p tresor-vault --example bench_keys [SECONDS] [PAYLOAD_BYTES]
//! ```
//!
//! For each key type: `encrypt`, `decrypt` and `rewrap` through one held
//! [`Keys`] handle with use auditing on (the default) and off, one call per
//! new handle (each one flushing its own audit entry), and the bare cipher
//! and encoding without the vault, as the ceiling. Prints one line per
//! figure and, with `--json` anywhere, the records of `scripts/bench`
//! (`{tool, size, op, unit, value, note}`) instead.

use std::time::{Duration, Instant};

use tresor_core::SecretName;
use tresor_crypto::slot::{Credential, new_key_file_text};
use tresor_crypto::{Envelope, Key, KeyType, seal_envelope};
use tresor_vault::{CreateOptions, Keys, Settings, Vault};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let mut numbers = args.iter().filter_map(|a| a.parse::<f64>().ok());
    let seconds = numbers.next().unwrap_or(2.0);
    let size = numbers.next().map_or(1024, |n| n as usize);
    let per = Duration::from_secs_f64(seconds);

    let dir = tempfile::tempdir().unwrap();
    let credential = Credential::key_material(new_key_file_text().as_bytes()).unwrap();
    let options = CreateOptions {
        recovery: false,
        ..CreateOptions::default()
    };
    let mut vault = Vault::create(&dir.path().join("vault.db"), &credential, &options)
        .unwrap()
        .vault;
    let plaintext: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
    let report = |op: &str, note: &str, per_second: f64| {
        if json {
            println!(
                "{{\"tool\":\"tresor\",\"size\":{size},\"op\":\"{op}\",\"unit\":\"ops/s\",\"value\":{per_second:.0},\"note\":\"{note}\"}}"
            );
        } else {
            println!("{op:<34} {per_second:>12.0} /s   {note}");
        }
    };
    if !json {
        println!("payload {size} bytes, {seconds} s per figure");
    }

    for key_type in KeyType::ENVELOPE {
        let name = SecretName::new(format!("bench/{key_type}")).unwrap();
        vault.keys().create(&name, key_type).unwrap();

        for audit in [true, false] {
            let settings = Settings {
                audit_reads: audit,
                ..vault.settings().clone()
            };
            vault.set_settings(settings).unwrap();
            let note = if audit {
                "held handle, uses audited in groups"
            } else {
                "held handle, audit_reads=false"
            };
            let mut keys = vault.keys();
            let envelope = keys.encrypt(&name, &plaintext).unwrap();
            let rate = run(per, || {
                std::hint::black_box(keys.encrypt(&name, &plaintext).unwrap());
            });
            report(&format!("key encrypt {key_type}"), note, rate);
            let rate = run(per, || {
                std::hint::black_box(keys.decrypt(&envelope).unwrap());
            });
            report(&format!("key decrypt {key_type}"), note, rate);
            let rate = run(per, || {
                std::hint::black_box(keys.rewrap(&envelope).unwrap());
            });
            report(&format!("key rewrap {key_type}"), note, rate);
            flush(keys);
        }
        vault
            .set_settings(Settings {
                audit_reads: true,
                ..vault.settings().clone()
            })
            .unwrap();

        let envelope = vault.keys().encrypt(&name, &plaintext).unwrap();
        let rate = run(per, || {
            std::hint::black_box(vault.keys().decrypt(&envelope).unwrap());
        });
        report(
            &format!("key decrypt {key_type}"),
            "a new handle per call: one audit commit each",
            rate,
        );

        let key = Key::random();
        let rate = run(per, || {
            std::hint::black_box(
                seal_envelope(key_type, &key, name.as_str(), 1, &plaintext).unwrap(),
            );
        });
        report(
            &format!("seal_envelope {key_type}"),
            "cipher and encoding alone, no vault",
            rate,
        );
        let bare = seal_envelope(key_type, &key, name.as_str(), 1, &plaintext).unwrap();
        let rate = run(per, || {
            let parsed = Envelope::parse(&bare).unwrap();
            std::hint::black_box(parsed.open(key_type, &key).unwrap());
        });
        report(
            &format!("Envelope::open {key_type}"),
            "cipher and decoding alone, no vault",
            rate,
        );
    }
    if !json {
        let entries = vault.audit_verify().unwrap();
        println!("audit chain intact: {entries} entries");
    }
}

/// Calls `f` in batches until `per` has passed; returns calls per second.
fn run(per: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..1000 {
        f();
    }
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < per {
        for _ in 0..1000 {
            f();
        }
        calls += 1000;
    }
    calls as f64 / start.elapsed().as_secs_f64()
}

fn flush(mut keys: Keys<'_>) {
    keys.flush().unwrap();
}
