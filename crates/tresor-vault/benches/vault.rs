//! Criterion benchmarks of the vault's hot paths at 1k, 10k and 100k
//! secrets. `scripts/bench` prints the same figures side by side with the
//! tools users would otherwise pick.

use std::path::Path;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use tresor_core::{PutOptions, SecretName, SecretValue, Selector};
use tresor_crypto::slot::{Credential, new_key_file_text};
use tresor_vault::{CreateOptions, Settings, Vault};

fn items(n: usize) -> Vec<(SecretName, SecretValue)> {
    (0..n)
        .map(|i| {
            let name = SecretName::new(format!("svc{:03}/key{i:07}", i % 977)).unwrap();
            (name, SecretValue::from(format!("sk-{i:034}").into_bytes()))
        })
        .collect()
}

fn vault(dir: &Path, n: usize, audit_reads: bool) -> (Vault, Vec<(SecretName, SecretValue)>) {
    let key = Credential::key_material(new_key_file_text().as_bytes()).unwrap();
    let path = dir.join(format!("v-{n}-{audit_reads}.db"));
    let mut v = Vault::create(
        &path,
        &key,
        &CreateOptions {
            recovery: false,
            ..Default::default()
        },
    )
    .unwrap()
    .vault;
    let all = items(n);
    v.put_many(&all, None, |_| {}).unwrap();
    v.set_settings(Settings {
        audit_reads,
        ..Settings::default()
    })
    .unwrap();
    (v, all)
}

fn get(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("get");
    for n in [1_000, 10_000, 100_000] {
        for audit in [false, true] {
            let (mut v, all) = vault(dir.path(), n, audit);
            let mut i = 0;
            let id = BenchmarkId::new(if audit { "audited" } else { "unaudited" }, n);
            group.bench_function(id, |b| {
                b.iter(|| {
                    i = (i + 7919) % n;
                    v.get(&all[i].0, Selector::default()).unwrap()
                })
            });
        }
    }
    group.finish();
}

fn set(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (mut v, all) = vault(dir.path(), 1_000, false);
    let mut i = 0;
    c.bench_function("set/durable/1000", |b| {
        b.iter(|| {
            i = (i + 1) % all.len();
            v.put(&all[i].0, &all[i].1, &PutOptions::default()).unwrap()
        })
    });
}

fn import(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let all = items(100_000);
    let key = Credential::key_material(new_key_file_text().as_bytes()).unwrap();
    let mut group = c.benchmark_group("import");
    group.sample_size(10);
    let mut round = 0;
    group.bench_function("100000", |b| {
        b.iter_batched(
            || {
                round += 1;
                let path = dir.path().join(format!("import-{round}.db"));
                Vault::create(
                    &path,
                    &key,
                    &CreateOptions {
                        recovery: false,
                        ..Default::default()
                    },
                )
                .unwrap()
                .vault
            },
            |mut v| v.put_many(&all, None, |_| {}).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, get, set, import);
criterion_main!(benches);
