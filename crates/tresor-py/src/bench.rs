//! What `scripts/bench-python` needs from Rust, in this very extension so
//! that both sides run the same compiled library: fill a vault in one
//! transaction, and time `tresor::Tresor::get` in a Rust loop (the rate the
//! Python `get` is compared with). Private (`tresor._native._bench_*`);
//! values are random and never leave Rust.

use std::path::PathBuf;
use std::time::Instant;

use pyo3::prelude::*;

use tresor::{CreateOptions, Given, SecretName, SecretValue, Selector, Tresor, Unlock, Vault};

use crate::errors::to_py;

/// Creates `vault` (opened by `key_file`, created if missing) holding `n`
/// secrets `{prefix}{i:06}{suffix}` of 37 random characters.
#[pyfunction]
#[pyo3(name = "_bench_populate")]
pub fn populate(
    py: Python<'_>,
    vault: PathBuf,
    key_file: PathBuf,
    n: usize,
    prefix: String,
    suffix: String,
) -> PyResult<()> {
    py.detach(|| -> tresor::Result<()> {
        if !key_file.exists() {
            tresor::unlock::create_key_file(&key_file)?;
        }
        let given = Given::key_file(&key_file)?;
        let mut v = Vault::create(&vault, given.credential(), &CreateOptions::default())?.vault;
        let mut items = Vec::with_capacity(n);
        let mut raw = vec![0u8; 37 * n];
        getrandom::fill(&mut raw)
            .map_err(|e| tresor::Error::Validation(format!("getrandom: {e}")))?;
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        for (i, chunk) in raw.chunks(37).enumerate() {
            let value: Vec<u8> = chunk.iter().map(|b| ALPHABET[*b as usize % 36]).collect();
            let name = SecretName::new(format!("{prefix}{i:06}{suffix}"))?;
            items.push((name, SecretValue::from(value)));
        }
        zeroize::Zeroize::zeroize(&mut raw);
        v.put_many(&items, Some("bench"), |_| {})?;
        Ok(())
    })
    .map_err(to_py)
}

/// Gets per second of `tresor::Tresor::get` in a Rust loop over `names`
/// (in turn) for `seconds`, on a manager opened as `tresor.open` opens it.
#[pyfunction]
#[pyo3(name = "_bench_rust_get")]
pub fn rust_get(
    py: Python<'_>,
    vault: PathBuf,
    key_file: PathBuf,
    names: Vec<String>,
    seconds: f64,
) -> PyResult<f64> {
    py.detach(|| -> tresor::Result<f64> {
        let names: Vec<SecretName> = names
            .into_iter()
            .map(SecretName::new)
            .collect::<tresor::Result<_>>()?;
        let mut t = Tresor::builder()
            .vault_path(&vault)
            .unlock(Unlock::new().key_file(Some(key_file)))
            .build()?;
        t.get(&names[0], Selector::default())?;
        let (mut ops, start) = (0usize, Instant::now());
        while start.elapsed().as_secs_f64() < seconds {
            for name in &names {
                let found = t.get(name, Selector::default())?;
                std::hint::black_box(found.secret.value.len());
            }
            ops += names.len();
        }
        Ok(ops as f64 / start.elapsed().as_secs_f64())
    })
    .map_err(to_py)
}
