//! The Rust side of `scripts/bench-python`: fills a vault for the Python
//! benchmark and measures in-process `get` through the manager, the figure
//! the Python package's `get` is compared with (same vault, same names, same
//! unlock chain, read audit on as by default).
//!
//! ```text
//! bench_get populate VAULT KEY_FILE N PREFIX [SUFFIX]   # N random 37-byte values, PREFIX{i:06}SUFFIX
//! bench_get get VAULT KEY_FILE N PREFIX SECONDS [SUFFIX]
//! ```
//!
//! `get` prints one JSON object: gets per second over random existing names.
//! Values are never printed.

use std::path::PathBuf;
use std::time::Instant;

use tresor::{CreateOptions, Given, SecretName, SecretValue, Selector, Tresor, Unlock, Vault};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench_get populate VAULT KEY_FILE N PREFIX [SUFFIX] | get VAULT KEY_FILE N PREFIX SECONDS [SUFFIX]";
    if args.len() < 5 {
        return Err(usage.into());
    }
    let (vault, key_file) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]));
    let n: usize = args[3].parse()?;
    let prefix = &args[4];
    let suffix_at = if args[0] == "populate" { 5 } else { 6 };
    let suffix = args.get(suffix_at).map_or("", String::as_str);
    let name = |i: usize| SecretName::new(format!("{prefix}{i:06}{suffix}"));
    match args[0].as_str() {
        "populate" => {
            if !key_file.exists() {
                tresor::unlock::create_key_file(&key_file)?;
            }
            let given = Given::key_file(&key_file)?;
            let mut v = Vault::create(&vault, given.credential(), &CreateOptions::default())?.vault;
            let mut items = Vec::with_capacity(n);
            for i in 0..n {
                let mut raw = [0u8; 28];
                getrandom::fill(&mut raw).map_err(|e| format!("getrandom: {e}"))?;
                let text: String = raw
                    .iter()
                    .map(|b| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[*b as usize % 36]))
                    .chain("-value-".chars())
                    .take(37)
                    .collect();
                items.push((name(i)?, SecretValue::from(text)));
            }
            v.put_many(&items, Some("bench"), |_| {})?;
        }
        "get" => {
            let seconds: f64 = args.get(5).map_or(Ok(3.0), |s| s.parse())?;
            let mut t = Tresor::builder()
                .vault_path(&vault)
                .unlock(Unlock::new().key_file(Some(key_file)))
                .build()?;
            // The same pseudo-random walk over existing names as the Python side.
            let names: Vec<SecretName> = (0..2000)
                .map(|j| name((j * 7919 + 13) % n))
                .collect::<Result<_, _>>()?;
            t.get(&names[0], Selector::default())?;
            let (mut ops, start) = (0usize, Instant::now());
            while start.elapsed().as_secs_f64() < seconds {
                for nm in &names {
                    let found = t.get(nm, Selector::default())?;
                    std::hint::black_box(found.secret.value.len());
                }
                ops += names.len();
            }
            let rate = ops as f64 / start.elapsed().as_secs_f64();
            println!(
                "{{\"tool\":\"tresor (Rust, in process)\",\"op\":\"get\",\"secrets\":{n},\"ops_per_s\":{rate:.0}}}"
            );
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
