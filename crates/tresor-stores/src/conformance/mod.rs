//! The conformance suite: one set of checks every [`Store`] passes, driven by
//! what the store says it can do ([`Store::capabilities`]).
//!
//! A store's tests give the suite a [`Fixture`], something that makes a fresh
//! store holding given secrets, and run every check against it, usually with
//! [`conformance_tests!`](crate::conformance_tests), which writes one
//! `#[test]` per check:
//!
//! ```
//! use tresor_core::{SecretName, SecretValue, Store};
//! use tresor_stores::conformance::Fixture;
//! use tresor_stores::env::Env;
//!
//! struct EnvFixture;
//!
//! impl Fixture for EnvFixture {
//!     fn store(&mut self, seed: &[(SecretName, SecretValue)]) -> Box<dyn Store> {
//!         let probe = Env::new();
//!         let vars = seed
//!             .iter()
//!             .map(|(name, value)| (probe.variable_for(name), value.expose_secret().to_vec()))
//!             .collect();
//!         Box::new(Env::from_map(vars))
//!     }
//! }
//!
//! // In a test file: tresor_stores::conformance_tests!(EnvFixture);
//! tresor_stores::conformance::run_all(&mut EnvFixture);
//! ```
//!
//! What is checked, each where the capabilities call for it:
//!
//! - **round trip**: text and binary values read back byte for byte, at
//!   version 1 when written once; a read-only store refuses `put` with
//!   [`Error::ReadOnly`] and still serves what it was seeded with;
//! - **not found**: a missing secret or version is [`Error::NotFound`],
//!   naming the store;
//! - **overwrite**: a second write wins, and is version 2 with version 1 still
//!   readable where the store keeps versions (and `previous` where it keeps
//!   labels);
//! - **list by prefix**: a plain string prefix, exactly the live names under
//!   it;
//! - **delete and undelete**: soft delete hides, undelete restores, purge
//!   destroys;
//! - **unsupported**: every operation outside the capabilities is
//!   [`Error::Unsupported`] (or [`Error::ReadOnly`] for writes to a read-only
//!   store), never a panic or a pretended success; this includes a `put` with
//!   an expected version, metadata or `stage` that the store cannot honour;
//! - **check-and-set**: an expected version that is not current is a
//!   [`Error::Conflict`] with both versions, and of two writers racing with
//!   the same expected version exactly one wins;
//! - **no value in any error**: errors provoked around a canary value never
//!   show it, in `Display`, `Debug` or their sources;
//! - **health**: the store answers.
//!
//! Checks panic with a message naming the broken rule, like `assert!`.

use std::collections::BTreeSet;
use std::error::Error as _;
use std::fmt;
use std::sync::Barrier;
use std::thread;

use tresor_core::{
    DEFAULT_MAX_VALUE_LEN, DeleteMode, Error, Label, Metadata, PutOptions, Result, SecretName,
    SecretValue, Selector, Store,
};

/// Makes the stores the checks run against.
pub trait Fixture {
    /// A new store holding exactly `seed`, each secret written once, and
    /// nothing else a check could see. Called once per check.
    /// A writable store can seed itself with [`seed_by_put`]; a read-only
    /// one is built around the values.
    fn store(&mut self, seed: &[(SecretName, SecretValue)]) -> Box<dyn Store>;

    /// A second, independent handle on the store [`Fixture::store`] returned
    /// last (another connection, client or process view), for the race of
    /// two writers. `None`, the default, skips that check.
    fn second_handle(&mut self) -> Option<Box<dyn Store>> {
        None
    }
}

/// Writes each seed secret once, for fixtures of writable stores.
///
/// # Panics
///
/// If a write fails.
pub fn seed_by_put(store: &mut dyn Store, seed: &[(SecretName, SecretValue)]) {
    for (name, value) in seed {
        if let Err(e) = store.put(name, value, &PutOptions::default()) {
            panic!("{}: seeding '{name}' failed: {e}", store.name());
        }
    }
}

/// One check of the suite.
pub type Check = fn(&mut dyn Fixture);

/// Every check, by name, in the order [`run_all`] runs them.
pub const CHECKS: &[(&str, Check)] = &[
    ("text_round_trip", text_round_trip),
    ("binary_round_trip", binary_round_trip),
    ("not_found", not_found),
    ("overwrite", overwrite),
    ("list_by_prefix", list_by_prefix),
    ("delete_and_undelete", delete_and_undelete),
    ("unsupported_operations", unsupported_operations),
    ("check_and_set", check_and_set),
    ("check_and_set_race", check_and_set_race),
    ("no_value_in_errors", no_value_in_errors),
    ("health", health),
];

/// Runs every check in turn (one test for all; prefer
/// [`conformance_tests!`](crate::conformance_tests) for one test each).
pub fn run_all(fixture: &mut dyn Fixture) {
    for (_, check) in CHECKS {
        check(fixture);
    }
}

/// Writes one `#[test]` per conformance check, each with a fixture made by
/// `$fixture` (an expression evaluated anew for every test).
///
/// ```ignore
/// mod vault {
///     tresor_stores::conformance_tests!(super::VaultFixture::new());
/// }
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:expr) => {
        $crate::conformance_tests!(@each $fixture;
            text_round_trip binary_round_trip not_found overwrite list_by_prefix
            delete_and_undelete unsupported_operations check_and_set check_and_set_race
            no_value_in_errors health);
    };
    (@each $fixture:expr; $($check:ident)*) => {
        $(
            #[test]
            fn $check() {
                $crate::conformance::$check(&mut $fixture);
            }
        )*
    };
}

/// A UTF-8 value with multi-byte characters.
const TEXT: &str = "héllo wörld ✓ — conformance text";

/// Every byte value once, NUL and invalid UTF-8 included.
fn binary() -> Vec<u8> {
    (0..=255u8).rev().collect()
}

/// A value no message may ever contain.
const CANARY: &str = "tresor-canary-5e1f0c9a7d";

/// Text values round-trip; read-only stores refuse writes and serve seeds.
pub fn text_round_trip(fixture: &mut dyn Fixture) {
    round_trip(fixture, "conformance/text", TEXT.as_bytes());
}

/// Binary values (every byte, NUL included) round-trip.
pub fn binary_round_trip(fixture: &mut dyn Fixture) {
    round_trip(fixture, "conformance/binary", &binary());
}

fn round_trip(fixture: &mut dyn Fixture, seeded: &str, bytes: &[u8]) {
    let seeded = name(seeded);
    let mut store = fixture.store(&[(seeded.clone(), value(bytes))]);
    let caps = store.capabilities();
    let got = read(store.as_mut(), &seeded, Selector::default());
    assert_eq!(
        got.name,
        seeded,
        "{}: get returns the name asked for",
        store.name()
    );
    assert_eq!(
        got.value.expose_secret(),
        bytes,
        "{}: seeded value",
        store.name()
    );
    assert_eq!(
        got.version,
        1,
        "{}: a secret written once is version 1",
        store.name()
    );
    let again = read(store.as_mut(), &seeded, Selector::Version(1));
    assert_eq!(
        again.value.expose_secret(),
        bytes,
        "{}: version 1",
        store.name()
    );

    let written = name(&format!("{seeded}_put"));
    let put = store.put(&written, &value(bytes), &PutOptions::default());
    if caps.read_only {
        let e = expect_err(put, &["read_only"], "put to a read-only store");
        names_store(store.as_ref(), &e);
        expect_err(
            store.get(&written, Selector::default()),
            &["not_found"],
            "get after a refused put",
        );
        return;
    }
    let version = put.unwrap_or_else(|e| panic!("{}: put: {e}", store.name()));
    assert_eq!(version, 1, "{}: the first put is version 1", store.name());
    let got = read(store.as_mut(), &written, Selector::default());
    assert_eq!(
        got.value.expose_secret(),
        bytes,
        "{}: value read back",
        store.name()
    );
    assert_eq!(got.version, version, "{}: version read back", store.name());
}

/// Missing secrets and versions are `NotFound`, naming the store.
pub fn not_found(fixture: &mut dyn Fixture) {
    let present = name("conformance/present");
    let missing = name("conformance/missing");
    let mut store = fixture.store(&[(present.clone(), value(b"present"))]);
    let caps = store.capabilities();
    let e = expect_err(
        store.get(&missing, Selector::default()),
        &["not_found"],
        "get of a missing secret",
    );
    names_store(store.as_ref(), &e);
    assert!(
        e.to_string().contains(missing.as_str()),
        "{}: NotFound names the secret: {e}",
        store.name()
    );
    let kinds: &[&str] = if caps.versions {
        &["not_found"]
    } else {
        &["not_found", "unsupported"]
    };
    expect_err(
        store.get(&present, Selector::Version(99)),
        kinds,
        "get of a version never written",
    );
    expect_err(
        store.get(&missing, Selector::Version(1)),
        &["not_found", "unsupported"],
        "get of version 1 of a missing secret",
    );
    if caps.versions {
        expect_err(
            store.history(&missing),
            &["not_found"],
            "history of a missing secret",
        );
    }
    if !caps.read_only {
        for mode in [DeleteMode::Soft, DeleteMode::Purge] {
            expect_err(
                store.delete(&missing, mode),
                &["not_found", "unsupported"],
                "delete of a missing secret",
            );
        }
    }
    if caps.list {
        let listed = names(store.as_mut(), "conformance/");
        assert!(
            !listed.contains(&missing),
            "{}: missing secret listed",
            store.name()
        );
    }
}

/// A second write wins; where versions exist it is a new version and the old
/// one stays readable.
pub fn overwrite(fixture: &mut dyn Fixture) {
    let n = name("conformance/overwritten");
    let mut store = fixture.store(&[(n.clone(), value(b"first"))]);
    let caps = store.capabilities();
    if caps.read_only {
        return;
    }
    let version = store
        .put(&n, &value(b"second"), &PutOptions::default())
        .unwrap_or_else(|e| panic!("{}: overwrite: {e}", store.name()));
    let got = read(store.as_mut(), &n, Selector::default());
    assert_eq!(
        got.value.expose_secret(),
        b"second",
        "{}: overwrite wins",
        store.name()
    );
    assert_eq!(got.version, version, "{}: version read back", store.name());
    if !caps.versions {
        assert_eq!(
            version,
            1,
            "{}: without versions every write is 1",
            store.name()
        );
        return;
    }
    assert_eq!(
        version,
        2,
        "{}: the second write is version 2",
        store.name()
    );
    let old = read(store.as_mut(), &n, Selector::Version(1));
    assert_eq!(
        old.value.expose_secret(),
        b"first",
        "{}: version 1 kept",
        store.name()
    );
    let history = store
        .history(&n)
        .unwrap_or_else(|e| panic!("{}: history: {e}", store.name()));
    let numbers: Vec<u64> = history.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [1, 2], "{}: history, oldest first", store.name());
    if caps.labels {
        let previous = read(store.as_mut(), &n, Selector::Label(Label::Previous));
        assert_eq!(previous.version, 1, "{}: previous label", store.name());
        assert_eq!(previous.value.expose_secret(), b"first");
    }
}

/// `list` takes a plain string prefix and returns exactly the live names
/// under it, once each.
pub fn list_by_prefix(fixture: &mut dyn Fixture) {
    let seeded = [
        "listing/alpha",
        "listing/beta",
        "listed/gamma",
        "other/delta",
    ];
    let seed: Vec<_> = seeded
        .iter()
        .map(|n| (name(n), value(n.as_bytes())))
        .collect();
    let mut store = fixture.store(&seed);
    if !store.capabilities().list {
        expect_err(
            store.list(""),
            &["unsupported"],
            "list without the capability",
        );
        return;
    }
    let expect = |names: &[&str]| names.iter().map(|n| name(n)).collect::<BTreeSet<_>>();
    assert_eq!(
        names(store.as_mut(), "listing/"),
        expect(&["listing/alpha", "listing/beta"]),
        "{}: list(\"listing/\")",
        store.name()
    );
    assert_eq!(
        names(store.as_mut(), "list"),
        expect(&["listing/alpha", "listing/beta", "listed/gamma"]),
        "{}: the prefix is a plain string prefix",
        store.name()
    );
    assert!(
        names(store.as_mut(), "").is_superset(&expect(&seeded)),
        "{}: list(\"\") holds every secret",
        store.name()
    );
    assert!(
        names(store.as_mut(), "nothing-here/").is_empty(),
        "{}: list of an unused prefix",
        store.name()
    );
    for info in store.list("listing/").unwrap() {
        assert_eq!(
            info.current,
            1,
            "{}: current version of {}",
            store.name(),
            info.name
        );
        assert_eq!(
            info.deleted_at,
            None,
            "{}: live secrets listed",
            store.name()
        );
    }
}

/// Soft delete hides, undelete restores (or is `Unsupported`), purge destroys.
pub fn delete_and_undelete(fixture: &mut dyn Fixture) {
    let soft = name("conformance/deleted");
    let purged = name("conformance/purged");
    let mut store = fixture.store(&[
        (soft.clone(), value(b"soft")),
        (purged.clone(), value(b"purged")),
    ]);
    let caps = store.capabilities();
    if caps.read_only {
        for mode in [DeleteMode::Soft, DeleteMode::Purge] {
            expect_err(
                store.delete(&soft, mode),
                &["read_only"],
                "delete, read-only",
            );
        }
        expect_err(
            store.undelete(&soft),
            &["read_only", "unsupported"],
            "undelete, read-only",
        );
        let got = read(store.as_mut(), &soft, Selector::default());
        assert_eq!(
            got.value.expose_secret(),
            b"soft",
            "{}: still there",
            store.name()
        );
        return;
    }

    match store.delete(&soft, DeleteMode::Soft) {
        Ok(()) => {
            expect_err(
                store.get(&soft, Selector::default()),
                &["not_found"],
                "get after soft delete",
            );
            if caps.list {
                let listed = names(store.as_mut(), "conformance/");
                assert!(
                    !listed.contains(&soft),
                    "{}: deleted secret listed",
                    store.name()
                );
            }
            if caps.undelete {
                store
                    .undelete(&soft)
                    .unwrap_or_else(|e| panic!("{}: undelete: {e}", store.name()));
                let got = read(store.as_mut(), &soft, Selector::default());
                assert_eq!(
                    got.value.expose_secret(),
                    b"soft",
                    "{}: undeleted",
                    store.name()
                );
                assert_eq!(
                    got.version,
                    1,
                    "{}: undelete keeps the version",
                    store.name()
                );
                if caps.list {
                    let listed = names(store.as_mut(), "conformance/");
                    assert!(
                        listed.contains(&soft),
                        "{}: undeleted, listed",
                        store.name()
                    );
                }
            } else {
                expect_err(store.undelete(&soft), &["unsupported"], "undelete");
            }
        }
        Err(e) => {
            assert_eq!(
                e.kind(),
                "unsupported",
                "{}: soft delete: {e}",
                store.name()
            );
            assert!(
                !caps.undelete,
                "{}: undelete without soft delete",
                store.name()
            );
        }
    }

    store
        .delete(&purged, DeleteMode::Purge)
        .unwrap_or_else(|e| panic!("{}: purge: {e}", store.name()));
    expect_err(
        store.get(&purged, Selector::default()),
        &["not_found"],
        "get after purge",
    );
    expect_err(
        store.get(&purged, Selector::Version(1)),
        &["not_found", "unsupported"],
        "get of a purged version",
    );
    if caps.undelete {
        expect_err(
            store.undelete(&purged),
            &["not_found"],
            "undelete after purge",
        );
    }
    if caps.versions {
        expect_err(
            store.history(&purged),
            &["not_found"],
            "history after purge",
        );
    }
    store
        .put(&purged, &value(b"again"), &PutOptions::default())
        .unwrap_or_else(|e| panic!("{}: put after purge: {e}", store.name()));
    let got = read(store.as_mut(), &purged, Selector::default());
    assert_eq!(
        got.value.expose_secret(),
        b"again",
        "{}: rewritten",
        store.name()
    );
}

/// Operations outside the capabilities are `Unsupported` (writes to a
/// read-only store `ReadOnly`), and change nothing.
pub fn unsupported_operations(fixture: &mut dyn Fixture) {
    let n = name("conformance/capabilities");
    let mut store = fixture.store(&[(n.clone(), value(b"original"))]);
    let caps = store.capabilities();
    let refused: &[&str] = if caps.read_only {
        &["read_only", "unsupported"]
    } else {
        &["unsupported"]
    };
    if !caps.list {
        let e = expect_err(store.list(""), &["unsupported"], "list");
        names_store(store.as_ref(), &e);
    }
    if !caps.versions {
        let e = expect_err(store.history(&n), &["unsupported"], "history");
        names_store(store.as_ref(), &e);
        expect_err(
            store.get(&n, Selector::Version(2)),
            &["not_found", "unsupported"],
            "get of version 2 without versions",
        );
    }
    if !caps.labels {
        expect_err(
            store.set_label(&n, Label::Previous, 1),
            refused,
            "set_label",
        );
        for label in [Label::Previous, Label::Pending] {
            expect_err(
                store.get(&n, Selector::Label(label)),
                &["not_found", "unsupported"],
                "get by a label without labels",
            );
        }
    }
    if !caps.undelete {
        expect_err(store.undelete(&n), refused, "undelete");
    }
    if caps.read_only {
        let e = expect_err(
            store.put(&n, &value(b"changed"), &PutOptions::default()),
            &["read_only"],
            "put",
        );
        names_store(store.as_ref(), &e);
        for mode in [DeleteMode::Soft, DeleteMode::Purge] {
            expect_err(store.delete(&n, mode), &["read_only"], "delete");
        }
    } else {
        let mut refused_options = Vec::new();
        if !caps.check_and_set {
            refused_options.push((
                "put with an expected version",
                PutOptions {
                    expect_version: Some(1),
                    ..PutOptions::default()
                },
            ));
        }
        if !caps.metadata {
            refused_options.push((
                "put with metadata",
                PutOptions {
                    metadata: Metadata::from([("owner".to_string(), "conformance".to_string())]),
                    ..PutOptions::default()
                },
            ));
        }
        if !caps.labels {
            refused_options.push((
                "put staged as pending",
                PutOptions {
                    stage: true,
                    ..PutOptions::default()
                },
            ));
        }
        for (what, options) in refused_options {
            expect_err(
                store.put(&n, &value(b"changed"), &options),
                &["unsupported"],
                what,
            );
        }
    }
    let got = read(store.as_mut(), &n, Selector::default());
    assert_eq!(
        got.value.expose_secret(),
        b"original",
        "{}: a refused operation changed the value",
        store.name()
    );
}

/// An expected version that is not current is a `Conflict` naming both.
pub fn check_and_set(fixture: &mut dyn Fixture) {
    let mut store = fixture.store(&[]);
    let caps = store.capabilities();
    if caps.read_only || !caps.check_and_set {
        return;
    }
    let n = name("conformance/cas");
    let put = |store: &mut dyn Store, bytes: &[u8], expect: u64| {
        let options = PutOptions {
            expect_version: Some(expect),
            ..PutOptions::default()
        };
        store.put(&n, &value(bytes), &options)
    };
    let v1 = put(store.as_mut(), b"one", 0)
        .unwrap_or_else(|e| panic!("{}: create with expect 0: {e}", store.name()));
    let stale = put(store.as_mut(), b"x", 0);
    conflict(store.as_ref(), stale, 0, v1);
    let v2 = put(store.as_mut(), b"two", v1)
        .unwrap_or_else(|e| panic!("{}: put with expect {v1}: {e}", store.name()));
    let stale = put(store.as_mut(), b"x", v1);
    conflict(store.as_ref(), stale, v1, v2);
    if caps.versions {
        assert_eq!(
            (v1, v2),
            (1, 2),
            "{}: versions under check-and-set",
            store.name()
        );
    }
    let got = read(store.as_mut(), &n, Selector::default());
    assert_eq!(
        got.value.expose_secret(),
        b"two",
        "{}: conflicts wrote",
        store.name()
    );
    assert_eq!(got.version, v2);
}

/// Two writers with the same expected version, released together: exactly
/// one wins, the other gets a `Conflict`, and the winner's value is current.
/// Skipped when the fixture has no [`Fixture::second_handle`].
pub fn check_and_set_race(fixture: &mut dyn Fixture) {
    let n = name("conformance/race");
    let mut first = fixture.store(&[(n.clone(), value(b"start"))]);
    let caps = first.capabilities();
    if caps.read_only || !caps.check_and_set {
        return;
    }
    let Some(mut second) = fixture.second_handle() else {
        eprintln!(
            "{}: no second handle, check-and-set race skipped",
            first.name()
        );
        return;
    };
    for round in 0..4 {
        let current = read(first.as_mut(), &n, Selector::default()).version;
        let barrier = Barrier::new(2);
        let options = PutOptions {
            expect_version: Some(current),
            ..PutOptions::default()
        };
        let bytes = |writer: u32| format!("writer {writer}, round {round}").into_bytes();
        let (a, b) = thread::scope(|s| {
            let a = s.spawn(|| {
                barrier.wait();
                first.put(&n, &value(&bytes(1)), &options)
            });
            let b = s.spawn(|| {
                barrier.wait();
                second.put(&n, &value(&bytes(2)), &options)
            });
            (a.join().unwrap(), b.join().unwrap())
        });
        let (winner, version, loser) = match (a, b) {
            (Ok(v), Err(e)) => (1, v, e),
            (Err(e), Ok(v)) => (2, v, e),
            (a, b) => panic!(
                "{}: round {round}: exactly one writer must win, got {a:?} and {b:?}",
                first.name()
            ),
        };
        conflict(first.as_ref(), Err::<u64, _>(loser), current, version);
        for store in [&mut first, &mut second] {
            let got = read(store.as_mut(), &n, Selector::default());
            assert_eq!(got.version, version, "{}: round {round}", store.name());
            assert_eq!(
                got.value.expose_secret(),
                bytes(winner),
                "{}: the winner's value is current",
                store.name()
            );
        }
    }
}

/// Errors provoked around a canary value never show it.
pub fn no_value_in_errors(fixture: &mut dyn Fixture) {
    let n = name("conformance/canary");
    let canary = value(CANARY.as_bytes());
    let mut store = fixture.store(&[(n.clone(), canary.clone())]);
    let caps = store.capabilities();
    let secret = read(store.as_mut(), &n, Selector::default());
    assert_eq!(secret.value, canary);
    assert!(
        !format!("{secret:?}").contains(CANARY),
        "{}: Debug of a Secret",
        store.name()
    );

    let mut errors = Vec::new();
    let mut keep = |r: Result<()>| errors.extend(r.err());
    keep(store.get(&n, Selector::Version(999)).map(drop));
    keep(store.get(&n, Selector::Label(Label::Pending)).map(drop));
    keep(store.set_label(&n, Label::Pending, 999));
    keep(store.undelete(&n));
    let conflicting = PutOptions {
        expect_version: Some(999),
        ..PutOptions::default()
    };
    keep(store.put(&n, &canary, &conflicting).map(drop));
    if caps.read_only {
        keep(store.put(&n, &canary, &PutOptions::default()).map(drop));
        keep(store.delete(&n, DeleteMode::Purge));
    } else {
        // Too large for the vault; a store that takes it is not at fault.
        let mut huge = CANARY.repeat(DEFAULT_MAX_VALUE_LEN / CANARY.len() + 2);
        let big = value(huge.as_bytes());
        huge.clear();
        keep(
            store
                .put(&name("conformance/huge"), &big, &PutOptions::default())
                .map(drop),
        );
        let other = name("conformance/other");
        let mut options = conflicting.clone();
        options.reason = Some("conformance".into());
        keep(store.put(&other, &canary, &options).map(drop));
    }
    assert!(
        !errors.is_empty(),
        "{}: no error was provoked",
        store.name()
    );
    for e in &errors {
        let mut shown = vec![e.to_string(), format!("{e:?}")];
        let mut source = e.source();
        while let Some(s) = source {
            shown.push(s.to_string());
            source = s.source();
        }
        for text in shown {
            assert!(
                !text.contains(CANARY),
                "{}: an error ({}) shows the value: {text}",
                store.name(),
                e.kind()
            );
        }
    }
}

/// The store answers `health`.
pub fn health(fixture: &mut dyn Fixture) {
    let mut store = fixture.store(&[]);
    let health = store.health();
    assert!(
        health.reachable,
        "{}: unreachable: {}",
        store.name(),
        health.detail
    );
}

// ---------------------------------------------------------------- helpers

fn name(s: &str) -> SecretName {
    SecretName::new(s).expect("the suite's names follow the naming rule")
}

fn value(bytes: &[u8]) -> SecretValue {
    SecretValue::copy_from(bytes)
}

#[track_caller]
fn read(store: &mut dyn Store, n: &SecretName, selector: Selector) -> tresor_core::Secret {
    store
        .get(n, selector)
        .unwrap_or_else(|e| panic!("{}: get '{n}' {selector}: {e}", store.name()))
}

fn names(store: &mut dyn Store, prefix: &str) -> BTreeSet<SecretName> {
    let listed = store
        .list(prefix)
        .unwrap_or_else(|e| panic!("{}: list({prefix:?}): {e}", store.name()));
    let count = listed.len();
    let set: BTreeSet<_> = listed.into_iter().map(|i| i.name).collect();
    assert_eq!(set.len(), count, "{}: a name listed twice", store.name());
    set
}

/// The error `result` must be, of one of `kinds`.
#[track_caller]
fn expect_err<T: fmt::Debug>(result: Result<T>, kinds: &[&str], what: &str) -> Error {
    match result {
        Ok(v) => panic!("{what}: expected an error ({kinds:?}), got Ok({v:?})"),
        Err(e) => {
            assert!(
                kinds.contains(&e.kind()),
                "{what}: expected {kinds:?}, got {}: {e}",
                e.kind()
            );
            e
        }
    }
}

#[track_caller]
fn names_store(store: &dyn Store, e: &Error) {
    assert!(
        e.to_string().contains(store.name()),
        "the message does not name the store {:?}: {e}",
        store.name()
    );
}

#[track_caller]
fn conflict(store: &dyn Store, result: Result<u64>, expected: u64, found: u64) {
    match result {
        Err(Error::Conflict {
            expected: e,
            found: f,
            ..
        }) => assert_eq!(
            (e, f),
            (expected, found),
            "{}: Conflict names the expected and found versions",
            store.name()
        ),
        other => panic!(
            "{}: expected a conflict (expected {expected}, found {found}), got {other:?}",
            store.name()
        ),
    }
}

#[cfg(test)]
mod tests {
    //! The suite against a small in-memory store, honest and then with one
    //! fault at a time, to show each fault is caught.

    use std::collections::BTreeMap;

    use tresor_core::{Capabilities, Health, Secret, SecretInfo};

    use super::*;

    #[derive(Clone, Copy, Default)]
    struct Faults {
        ignore_expect_version: bool,
        fake_undelete: bool,
        leak_value: bool,
        list_ignores_prefix: bool,
    }

    /// One value per name, no versions, list only.
    struct Memory {
        map: BTreeMap<SecretName, Vec<u8>>,
        faults: Faults,
    }

    impl Store for Memory {
        fn name(&self) -> &str {
            "memory"
        }

        fn capabilities(&self) -> tresor_core::Capabilities {
            Capabilities {
                list: true,
                ..Capabilities::default()
            }
        }

        fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Secret> {
            let missing = || Error::NotFound {
                store: "memory".into(),
                what: format!("'{name}' {selector}"),
            };
            match selector {
                Selector::Label(Label::Current) | Selector::Version(1) => {}
                Selector::Version(_) => return Err(missing()),
                Selector::Label(_) => return Err(self.unsupported("labels")),
            }
            let bytes = self.map.get(name).ok_or_else(missing)?;
            Ok(Secret {
                name: name.clone(),
                version: 1,
                value: SecretValue::copy_from(bytes),
            })
        }

        fn put(
            &mut self,
            name: &SecretName,
            value: &SecretValue,
            options: &PutOptions,
        ) -> Result<u64> {
            if options.expect_version.is_some() && !self.faults.ignore_expect_version {
                return Err(self.unsupported("check-and-set"));
            }
            if !options.metadata.is_empty() {
                return Err(self.unsupported("metadata"));
            }
            if options.stage {
                return Err(self.unsupported("labels"));
            }
            if value.len() > DEFAULT_MAX_VALUE_LEN {
                let shown = if self.faults.leak_value {
                    String::from_utf8_lossy(&value.expose_secret()[..40]).into_owned()
                } else {
                    String::new()
                };
                return Err(Error::Validation(format!("value too large {shown}")));
            }
            self.map
                .insert(name.clone(), value.expose_secret().to_vec());
            Ok(1)
        }

        fn delete(&mut self, name: &SecretName, _: DeleteMode) -> Result<()> {
            match self.map.remove(name) {
                Some(_) => Ok(()),
                None => Err(Error::NotFound {
                    store: "memory".into(),
                    what: format!("'{name}'"),
                }),
            }
        }

        fn list(&mut self, prefix: &str) -> Result<Vec<SecretInfo>> {
            let ignore = self.faults.list_ignores_prefix;
            Ok(self
                .map
                .keys()
                .filter(|n| ignore || n.starts_with(prefix))
                .map(|n| SecretInfo {
                    name: n.clone(),
                    current: 1,
                    latest: 1,
                    pending: None,
                    updated_at: 0,
                    deleted_at: None,
                    metadata: Metadata::new(),
                })
                .collect())
        }

        fn undelete(&mut self, _: &SecretName) -> Result<()> {
            if self.faults.fake_undelete {
                Ok(())
            } else {
                Err(self.unsupported("undelete"))
            }
        }

        fn health(&mut self) -> Health {
            Health {
                reachable: true,
                authenticated: true,
                detail: "in memory".into(),
            }
        }
    }

    struct MemoryFixture(Faults);

    impl Fixture for MemoryFixture {
        fn store(&mut self, seed: &[(SecretName, SecretValue)]) -> Box<dyn Store> {
            let mut store = Memory {
                map: BTreeMap::new(),
                faults: self.0,
            };
            seed_by_put(&mut store, seed);
            Box::new(store)
        }
    }

    #[test]
    fn an_honest_store_passes_every_check() {
        run_all(&mut MemoryFixture(Faults::default()));
    }

    #[test]
    #[should_panic(
        expected = "put with an expected version: expected an error ([\"unsupported\"]), got Ok"
    )]
    fn ignoring_an_expected_version_is_caught() {
        unsupported_operations(&mut MemoryFixture(Faults {
            ignore_expect_version: true,
            ..Faults::default()
        }));
    }

    #[test]
    #[should_panic(expected = "undelete: expected an error ([\"unsupported\"]), got Ok")]
    fn a_pretended_undelete_is_caught() {
        unsupported_operations(&mut MemoryFixture(Faults {
            fake_undelete: true,
            ..Faults::default()
        }));
    }

    #[test]
    #[should_panic(expected = "shows the value")]
    fn a_value_in_an_error_is_caught() {
        no_value_in_errors(&mut MemoryFixture(Faults {
            leak_value: true,
            ..Faults::default()
        }));
    }

    #[test]
    #[should_panic(expected = "list(\"listing/\")")]
    fn a_list_that_ignores_the_prefix_is_caught() {
        list_by_prefix(&mut MemoryFixture(Faults {
            list_ignores_prefix: true,
            ..Faults::default()
        }));
    }
}
