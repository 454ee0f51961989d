//! Check-and-set, the race of two writers, values kept out of errors, and
//! health.

use tresor_core::{DeleteMode, Label, PutOptions, Selector};

use super::*;

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

/// The store answers `health`, accepts the fixture's credentials, and says
/// so in words.
pub fn health(fixture: &mut dyn Fixture) {
    let mut store = fixture.store(&[]);
    let health = store.health();
    assert!(
        health.reachable,
        "{}: unreachable: {}",
        store.name(),
        health.detail
    );
    assert!(
        health.authenticated,
        "{}: reachable but not authenticated: {}",
        store.name(),
        health.detail
    );
    assert!(
        !health.detail.trim().is_empty(),
        "{}: health without a detail",
        store.name()
    );
}
