//! One check per optional capability: a store that claims it must do it,
//! a store that does not must refuse it.

use tresor_core::{DeleteMode, Label, Metadata, PutOptions, Selector};

use super::*;

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
    if !caps.move_labels {
        for label in [Label::Current, Label::Previous] {
            expect_err(store.set_label(&n, label, 1), refused, "set_label");
        }
    }
    if !caps.staging {
        expect_err(
            store.get(&n, Selector::Label(Label::Pending)),
            &["not_found", "unsupported"],
            "get by the pending label without staging",
        );
    }
    if !caps.read_labels {
        for label in [Label::Previous, Label::Pending] {
            expect_err(
                store.get(&n, Selector::Label(label)),
                &["not_found", "unsupported"],
                "get by a label without labels",
            );
        }
    }
    if !caps.soft_delete {
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
        if !caps.staging {
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

/// Where `read_labels` is claimed: after two writes `current` is version 2,
/// `previous` version 1, and `history` labels them so.
pub fn read_labels(fixture: &mut dyn Fixture) {
    let n = name("conformance/labelled");
    let mut store = fixture.store(&[(n.clone(), value(b"first"))]);
    let caps = store.capabilities();
    if !caps.read_labels || caps.read_only {
        // Refusals are checked by `unsupported_operations`; a read-only store
        // has one version, so `previous` must not be found.
        if caps.read_only {
            expect_err(
                store.get(&n, Selector::Label(Label::Previous)),
                &["not_found", "unsupported"],
                "previous of a secret written once",
            );
        }
        return;
    }
    assert!(
        caps.versions,
        "{}: read_labels is claimed without versions",
        store.name()
    );
    expect_err(
        store.get(&n, Selector::Label(Label::Previous)),
        &["not_found"],
        "previous of a secret written once",
    );
    put_ok(store.as_mut(), &n, b"second", &PutOptions::default());
    let current = read(store.as_mut(), &n, Selector::Label(Label::Current));
    assert_eq!(
        (current.version, current.value.expose_secret()),
        (2, &b"second"[..]),
        "{}: current after two writes",
        store.name()
    );
    let previous = read(store.as_mut(), &n, Selector::Label(Label::Previous));
    assert_eq!(
        (previous.version, previous.value.expose_secret()),
        (1, &b"first"[..]),
        "{}: previous after two writes",
        store.name()
    );
    let labels = labels_in_history(store.as_mut(), &n);
    assert_eq!(
        labels,
        [(1, vec![Label::Previous]), (2, vec![Label::Current])],
        "{}: history labels",
        store.name()
    );
}

/// Where `staging` is claimed: a staged write is `pending`, readable by that
/// label, listed and labelled as pending, and `current` does not move.
pub fn staging(fixture: &mut dyn Fixture) {
    let n = name("conformance/staged");
    let mut store = fixture.store(&[(n.clone(), value(b"current one"))]);
    let caps = store.capabilities();
    if !caps.staging {
        // Refusals are checked by `unsupported_operations`.
        return;
    }
    assert!(
        !caps.read_only && caps.read_labels,
        "{}: staging is claimed by a read-only store or one without read_labels",
        store.name()
    );
    let stage = PutOptions {
        stage: true,
        ..PutOptions::default()
    };
    let staged = put_ok(store.as_mut(), &n, b"staged one", &stage);
    if caps.versions {
        assert_eq!(staged, 2, "{}: the staged version's number", store.name());
    }
    let current = read(store.as_mut(), &n, Selector::Label(Label::Current));
    assert_eq!(
        (current.version, current.value.expose_secret()),
        (1, &b"current one"[..]),
        "{}: a staged write left current where it was",
        store.name()
    );
    let pending = read(store.as_mut(), &n, Selector::Label(Label::Pending));
    assert_eq!(
        (pending.version, pending.value.expose_secret()),
        (staged, &b"staged one"[..]),
        "{}: the pending label reads the staged version",
        store.name()
    );
    if caps.list {
        let info = listed(store.as_mut(), &n);
        assert_eq!(
            (info.current, info.pending),
            (1, Some(staged)),
            "{}: listed current and pending",
            store.name()
        );
    }
    if caps.versions {
        let labels = labels_in_history(store.as_mut(), &n);
        assert!(
            labels.contains(&(staged, vec![Label::Pending])),
            "{}: history labels the staged version pending: {labels:?}",
            store.name()
        );
    }
}

/// Where `move_labels` is claimed: `set_label(current, …)` rolls back to
/// version 1, goes forward to version 2 again, promotes a staged version
/// (where `staging` is claimed), and refuses a missing version.
pub fn move_labels(fixture: &mut dyn Fixture) {
    let n = name("conformance/moved");
    let mut store = fixture.store(&[(n.clone(), value(b"first"))]);
    let caps = store.capabilities();
    if !caps.move_labels {
        // Refusals are checked by `unsupported_operations`.
        return;
    }
    assert!(
        !caps.read_only && caps.versions,
        "{}: move_labels is claimed by a read-only store or one without versions",
        store.name()
    );
    put_ok(store.as_mut(), &n, b"second", &PutOptions::default());
    let current_is = |store: &mut dyn Store, version: u64, bytes: &[u8], what: &str| {
        let got = read(store, &n, Selector::Label(Label::Current));
        assert_eq!(
            (got.version, got.value.expose_secret()),
            (version, bytes),
            "{}: {what}",
            store.name()
        );
    };
    set_label_ok(store.as_mut(), &n, Label::Current, 1);
    current_is(store.as_mut(), 1, b"first", "rolled back to version 1");
    set_label_ok(store.as_mut(), &n, Label::Current, 2);
    current_is(store.as_mut(), 2, b"second", "forward to version 2 again");
    if caps.staging {
        let stage = PutOptions {
            stage: true,
            ..PutOptions::default()
        };
        let staged = put_ok(store.as_mut(), &n, b"third", &stage);
        current_is(store.as_mut(), 2, b"second", "staged, not yet promoted");
        set_label_ok(store.as_mut(), &n, Label::Current, staged);
        current_is(
            store.as_mut(),
            staged,
            b"third",
            "the staged version promoted",
        );
    }
    expect_err(
        store.set_label(&n, Label::Current, 99),
        &["not_found"],
        "set_label to a version never written",
    );
}

/// Where `metadata` is claimed: entries given with two writes are merged,
/// and `list` shows them.
pub fn metadata(fixture: &mut dyn Fixture) {
    let n = name("conformance/meta");
    let mut store = fixture.store(&[]);
    let caps = store.capabilities();
    if !caps.metadata {
        // Refusals are checked by `unsupported_operations`.
        return;
    }
    assert!(
        !caps.read_only && caps.list,
        "{}: metadata is claimed by a read-only store or one that cannot list (nothing shows it)",
        store.name()
    );
    let with = |key: &str, value: &str| PutOptions {
        metadata: Metadata::from([(key.to_string(), value.to_string())]),
        ..PutOptions::default()
    };
    put_ok(store.as_mut(), &n, b"one", &with("owner", "conformance"));
    let info = listed(store.as_mut(), &n);
    assert_eq!(
        info.metadata.get("owner").map(String::as_str),
        Some("conformance"),
        "{}: metadata written with the value: {:?}",
        store.name(),
        info.metadata
    );
    put_ok(store.as_mut(), &n, b"two", &with("team", "blue"));
    let info = listed(store.as_mut(), &n);
    let shown: Vec<(&str, &str)> = info
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        shown,
        [("owner", "conformance"), ("team", "blue")],
        "{}: metadata of two writes merged",
        store.name()
    );
    let got = read(store.as_mut(), &n, Selector::default());
    assert_eq!(got.value.expose_secret(), b"two", "{}", store.name());
}

#[track_caller]
fn put_ok(store: &mut dyn Store, n: &SecretName, bytes: &[u8], options: &PutOptions) -> u64 {
    store
        .put(n, &value(bytes), options)
        .unwrap_or_else(|e| panic!("{}: put '{n}' ({options:?}): {e}", store.name()))
}

#[track_caller]
fn set_label_ok(store: &mut dyn Store, n: &SecretName, label: Label, version: u64) {
    store
        .set_label(n, label, version)
        .unwrap_or_else(|e| panic!("{}: set_label '{n}' {label} {version}: {e}", store.name()));
}

/// The listing entry of `n`.
#[track_caller]
fn listed(store: &mut dyn Store, n: &SecretName) -> tresor_core::SecretInfo {
    let listing = store
        .list(n.as_str())
        .unwrap_or_else(|e| panic!("{}: list({:?}): {e}", store.name(), n.as_str()));
    listing
        .into_iter()
        .find(|i| &i.name == n)
        .unwrap_or_else(|| panic!("{}: '{n}' not listed", store.name()))
}

/// Each version's number and labels, from `history`.
#[track_caller]
fn labels_in_history(store: &mut dyn Store, n: &SecretName) -> Vec<(u64, Vec<Label>)> {
    store
        .history(n)
        .unwrap_or_else(|e| panic!("{}: history '{n}': {e}", store.name()))
        .into_iter()
        .map(|v| (v.version, v.labels))
        .collect()
}
