//! The checks every store passes whatever it claims: values round-trip,
//! missing things are not found, a second write wins, listing and deleting.

use tresor_core::{DeleteMode, PutOptions, Selector};

use super::*;

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

/// Soft delete hides and undelete restores where `soft_delete` is claimed
/// (`undelete` is `Unsupported` elsewhere); purge destroys.
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
                &["not_found", "deleted"],
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
            if caps.soft_delete {
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
            assert!(
                !caps.soft_delete,
                "{}: soft delete is claimed but failed: {e}",
                store.name()
            );
            assert_eq!(
                e.kind(),
                "unsupported",
                "{}: soft delete: {e}",
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
    if caps.soft_delete {
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
