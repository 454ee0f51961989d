//! Property tests: whatever valid names and values go in come back out,
//! byte for byte, after the vault is closed and reopened.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use tresor_core::{Label, PutOptions, SecretName, Selector};
use tresor_vault::Vault;

/// Longest value the vault accepts by default.
const MIB: usize = 1024 * 1024;

/// Deterministic filler bytes (xorshift64*), so that large values cost no
/// per-byte strategy calls and shrink through their length and seed.
fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,40}".prop_filter("'.' and '..' are not segments", |s| s != "." && s != "..")
}

/// Valid names: 1 to 7 segments, at most 256 bytes, often close to the limit.
fn secret_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(segment(), 1..4),
        1 => prop::collection::vec(segment(), 4..8),
    ]
    .prop_map(|segments| segments.join("/"))
    .prop_filter("at most 256 bytes", |n| n.len() <= 256)
}

/// Values: empty, short binary, medium and (rarely) up to 1 MiB.
fn secret_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => Just(Vec::new()),
        6 => prop::collection::vec(any::<u8>(), 0..64),
        3 => (0usize..16 * 1024, any::<u64>()).prop_map(|(len, seed)| filler(len, seed)),
        1 => (0usize..=MIB, any::<u64>()).prop_map(|(len, seed)| filler(len, seed)),
    ]
}

/// A set of distinct names and a sequence of writes to them.
fn workload() -> impl Strategy<Value = (Vec<String>, Vec<(usize, Vec<u8>)>)> {
    prop::collection::btree_set(secret_name(), 1..6).prop_flat_map(|names| {
        let names: Vec<String> = names.into_iter().collect();
        let n = names.len();
        (
            Just(names),
            prop::collection::vec((0..n, secret_value()), 1..10),
        )
    })
}

fn put(vault: &mut Vault, name: &SecretName, bytes: &[u8]) -> u64 {
    vault
        .put(name, &value(bytes), &PutOptions::default())
        .unwrap_or_else(|e| panic!("put '{name}' ({} bytes): {e}", bytes.len()))
}

fn read(vault: &mut Vault, name: &SecretName, selector: Selector) -> Vec<u8> {
    vault
        .get(name, selector)
        .unwrap_or_else(|e| panic!("get '{name}' {selector}: {e}"))
        .value
        .expose_secret()
        .to_vec()
}

/// Writes everything, reopens, and checks every version, the listing, the
/// history and `verify`.
fn round_trip(names: &[String], writes: &[(usize, Vec<u8>)]) {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut vault) = new_vault(dir.path());
    let names: Vec<SecretName> = names
        .iter()
        .map(|n| SecretName::new(n.clone()).unwrap_or_else(|e| panic!("valid name rejected: {e}")))
        .collect();
    // name -> values by version (index 0 is version 1).
    let mut expected: BTreeMap<SecretName, Vec<&[u8]>> = BTreeMap::new();
    for (i, bytes) in writes {
        let name = &names[*i];
        let versions = expected.entry(name.clone()).or_default();
        let v = put(&mut vault, name, bytes);
        versions.push(bytes);
        assert_eq!(v, versions.len() as u64, "version number of '{name}'");
    }
    drop(vault);

    let mut vault = reopen(&path);
    for (name, versions) in &expected {
        let latest = versions.len() as u64;
        let got = read(&mut vault, name, Selector::default());
        assert!(
            got == versions[versions.len() - 1],
            "'{name}' current (version {latest}): read {} bytes, wrote {}",
            got.len(),
            versions[versions.len() - 1].len()
        );
        for (i, want) in versions.iter().enumerate() {
            let version = i as u64 + 1;
            let got = read(&mut vault, name, Selector::Version(version));
            assert!(
                got == *want,
                "'{name}' version {version}: read {} bytes, wrote {}",
                got.len(),
                want.len()
            );
        }
        if versions.len() > 1 {
            let got = read(&mut vault, name, Selector::Label(Label::Previous));
            assert!(got == versions[versions.len() - 2], "'{name}' previous");
        }
        let history = vault.history(name).unwrap();
        assert_eq!(
            history.iter().map(|h| h.version).collect::<Vec<_>>(),
            (1..=latest).collect::<Vec<_>>(),
            "history of '{name}'"
        );
        for (h, want) in history.iter().zip(versions) {
            assert_eq!(h.len, want.len(), "'{name}' version {} length", h.version);
        }
    }
    let listed: Vec<SecretName> = vault
        .list("", false)
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(listed, expected.keys().cloned().collect::<Vec<_>>());
    let report = vault.verify().unwrap();
    assert_eq!(report.secrets, expected.len() as u64);
    assert_eq!(report.versions, writes.len() as u64);
    assert_eq!(report.destroyed_versions, 0);
    assert!(report.audit_entries > writes.len() as u64);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn arbitrary_names_and_values_round_trip((names, writes) in workload()) {
        round_trip(&names, &writes);
    }
}

#[test]
fn one_mebibyte_binary_value_and_edge_cases() {
    let long_name = {
        // Exactly 256 bytes: 8 segments of 31 bytes and 7 slashes, plus 1.
        let mut n = (0..8)
            .map(|i| format!("{i}{}", "aZ9._-".repeat(5)))
            .collect::<Vec<_>>()
            .join("/");
        n.push('x');
        assert_eq!(n.len(), 256);
        n
    };
    let every_byte: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let names = vec![
        "big/one-mib".to_string(),
        "empty".to_string(),
        long_name,
        "...a/.b./-_-/x".to_string(),
        "bytes/every".to_string(),
    ];
    let writes = vec![
        (0, filler(MIB, 0x5eed)),
        (1, Vec::new()),
        (2, b"at the length limit".to_vec()),
        (3, vec![0u8; 1000]),
        (4, every_byte),
        (0, filler(MIB, 0xfeed)),
        (1, vec![0]),
        (1, Vec::new()),
    ];
    round_trip(&names, &writes);
}
