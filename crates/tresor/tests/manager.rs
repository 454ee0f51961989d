//! The manager's routing, against in-process stores with fault injection and
//! a real vault: priority order, read-only, required vs optional, --store,
//! profiles, ls merge, the offline cache (fallback with its age, offline,
//! max-age), doctor's cleanup, ENV/ and SEC/ references.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tresor::config::Config;
use tresor::manager::{CACHE_FETCHED_AT, CACHE_SOURCE, StoreSettings};
use tresor::{
    Capabilities, CreateOptions, Credential, DeleteMode, Error, PutOptions, Result, Secret,
    SecretInfo, SecretName, SecretValue, Selector, Store, Tresor, Vault,
};
use tresor_core::Health;

/// Name → (version, value).
type Entries = BTreeMap<String, (u64, Vec<u8>)>;

/// A map store with switches: `up` (else every call is `Unavailable`),
/// `corrupt_reads` (reads give another value), `phantom_put` (a write
/// lands but reports `Unavailable`, like a timeout after the server acted).
#[derive(Clone, Default)]
struct Mock {
    name: String,
    data: Arc<Mutex<Entries>>,
    down: Arc<AtomicBool>,
    corrupt_reads: Arc<AtomicBool>,
    phantom_put: Arc<AtomicBool>,
    read_only: bool,
    calls: Arc<AtomicUsize>,
}

impl Mock {
    fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    fn with(self, name: &str, value: &[u8]) -> Self {
        self.data
            .lock()
            .unwrap()
            .insert(name.into(), (1, value.to_vec()));
        self
    }

    fn check(&self) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::Unavailable {
                store: self.name.clone(),
                reason: "connection refused".into(),
            });
        }
        Ok(())
    }

    fn keys(&self) -> Vec<String> {
        self.data.lock().unwrap().keys().cloned().collect()
    }
}

impl Store for Mock {
    fn name(&self) -> &str {
        &self.name
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_only: self.read_only,
            list: true,
            ..Capabilities::default()
        }
    }
    fn get(&mut self, name: &SecretName, _: Selector) -> Result<Secret> {
        self.check()?;
        let data = self.data.lock().unwrap();
        let (version, value) = data.get(name.as_str()).ok_or_else(|| Error::NotFound {
            store: self.name.clone(),
            what: format!("'{name}'"),
        })?;
        let value = if self.corrupt_reads.load(Ordering::SeqCst) {
            b"something else".to_vec()
        } else {
            value.clone()
        };
        Ok(Secret {
            name: name.clone(),
            version: *version,
            value: SecretValue::from(value),
        })
    }
    fn put(&mut self, name: &SecretName, value: &SecretValue, _: &PutOptions) -> Result<u64> {
        if self.read_only {
            return Err(Error::ReadOnly {
                store: self.name.clone(),
            });
        }
        self.check()?;
        let mut data = self.data.lock().unwrap();
        let version = data.get(name.as_str()).map_or(1, |(v, _)| v + 1);
        data.insert(
            name.as_str().into(),
            (version, value.expose_secret().to_vec()),
        );
        if self.phantom_put.load(Ordering::SeqCst) {
            return Err(Error::Unavailable {
                store: self.name.clone(),
                reason: "timed out".into(),
            });
        }
        Ok(version)
    }
    fn delete(&mut self, name: &SecretName, _: DeleteMode) -> Result<()> {
        self.check()?;
        match self.data.lock().unwrap().remove(name.as_str()) {
            Some(_) => Ok(()),
            None => Err(Error::NotFound {
                store: self.name.clone(),
                what: format!("'{name}'"),
            }),
        }
    }
    fn list(&mut self, prefix: &str) -> Result<Vec<SecretInfo>> {
        self.check()?;
        Ok(self
            .data
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, (v, _))| SecretInfo {
                name: SecretName::new(k.as_str()).unwrap(),
                current: *v,
                latest: *v,
                pending: None,
                updated_at: 0,
                deleted_at: None,
                metadata: Default::default(),
            })
            .collect())
    }
    fn health(&mut self) -> Health {
        let up = self.check().is_ok();
        Health {
            reachable: up,
            authenticated: up,
            detail: if up { "up".into() } else { "down".into() },
        }
    }
}

fn name(s: &str) -> SecretName {
    SecretName::new(s).unwrap()
}

fn key() -> Credential {
    Credential::key_material(KEY.as_bytes()).unwrap()
}

static KEY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| tresor::new_key_file_text().to_string());

fn vault(dir: &Path) -> Vault {
    Vault::create(&dir.join("vault.db"), &key(), &CreateOptions::default())
        .unwrap()
        .vault
}

fn opener(path: &Path) -> Result<Vault> {
    tresor::LockedVault::open(path, &Default::default())?.unlock(&key())
}

type Warnings = Arc<Mutex<Vec<String>>>;

fn collect(b: tresor::Builder) -> (tresor::Builder, Warnings) {
    let w: Warnings = Arc::default();
    let sink = w.clone();
    (
        b.on_warning(move |t| sink.lock().unwrap().push(t.to_string())),
        w,
    )
}

fn value(found: &tresor::Found) -> &[u8] {
    found.secret.value.expose_secret()
}

#[test]
fn reads_follow_priority_and_not_found_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Tresor::builder()
        .vault("local", vault(dir.path()), 50)
        .store(
            "late",
            Mock::new("late").with("a", b"late-a").with("b", b"late-b"),
            90,
        )
        .store("early", Mock::new("early").with("a", b"early-a"), 10)
        .build()
        .unwrap();
    assert_eq!(t.store_names(), ["early", "local", "late"]);
    let a = t.get(&name("a"), Selector::default()).unwrap();
    assert_eq!((a.store.as_str(), value(&a)), ("early", &b"early-a"[..]));
    let b = t.get(&name("b"), Selector::default()).unwrap();
    assert_eq!((b.store.as_str(), value(&b)), ("late", &b"late-b"[..]));
    let err = t.get(&name("c"), Selector::default()).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("early, local, late"), "{err}");
    // --store asks one store only.
    let a = t.get_from("late", &name("a"), Selector::default()).unwrap();
    assert_eq!(value(&a), b"late-a");
    assert!(matches!(
        t.get_from("local", &name("a"), Selector::default()),
        Err(Error::NotFound { .. })
    ));
    assert!(t.get_from("nope", &name("a"), Selector::default()).is_err());
    // Reserved names are refused.
    assert!(
        t.get(&name(".tresor/cache/x/y"), Selector::default())
            .is_err()
    );
}

#[test]
fn get_many_from_reads_one_store_in_order_with_each_read_audited() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = vault(dir.path());
    for (n, val) in [("a", "vault-a"), ("b", "vault-b")] {
        v.put(
            &name(n),
            &SecretValue::copy_from(val.as_bytes()),
            &PutOptions::default(),
        )
        .unwrap();
    }
    // The vault is not the first store: the batch still reads it alone.
    let mut t = Tresor::builder()
        .vault("local", v, 50)
        .store("early", Mock::new("early").with("a", b"early-a"), 10)
        .build()
        .unwrap();
    let requests: Vec<(SecretName, Selector)> = ["b", "missing", "a"]
        .iter()
        .map(|n| (name(n), Selector::default()))
        .collect();
    let answers = t.get_many_from("local", &requests);
    assert_eq!(answers.len(), 3);
    let b = answers[0].as_ref().unwrap();
    assert_eq!((b.store.as_str(), value(b)), ("local", &b"vault-b"[..]));
    assert!(matches!(answers[1], Err(Error::NotFound { .. })));
    let a = answers[2].as_ref().unwrap();
    assert_eq!((a.store.as_str(), value(a)), ("local", &b"vault-a"[..]));
    // The same from another store, and an unknown store for every name.
    let early = t.get_many_from("early", &requests);
    assert!(matches!(early[0], Err(Error::NotFound { .. })));
    assert_eq!(value(early[2].as_ref().unwrap()), b"early-a");
    assert!(
        t.get_many_from("nope", &requests)
            .iter()
            .all(Result::is_err)
    );
    drop(t);
    // Every read of the batch has its own audit entry, in order.
    let mut v = opener(&dir.path().join("vault.db")).unwrap();
    let reads: Vec<(Option<String>, String)> = v
        .audit_log(&tresor::AuditFilter::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.operation.as_str() == "get")
        .map(|e| (e.name, e.result))
        .collect();
    assert_eq!(
        reads,
        [
            (Some("b".to_string()), "ok".to_string()),
            (Some("missing".to_string()), "not_found".to_string()),
            (Some("a".to_string()), "ok".to_string()),
        ]
    );
}

#[test]
fn writes_go_to_the_first_writable_store_or_the_one_named() {
    let dir = tempfile::tempdir().unwrap();
    let ro = Mock {
        read_only: true,
        ..Mock::new("ro")
    };
    let settings_ro = StoreSettings {
        read_only: true,
        ..StoreSettings::new(20)
    };
    let declared_ro = Mock::new("declared");
    let mut t = Tresor::builder()
        .vault("local", vault(dir.path()), 50)
        .store("ro", ro.clone(), 10)
        .store_with("declared", declared_ro.clone(), settings_ro)
        .build()
        .unwrap();
    let v = SecretValue::copy_from(b"v");
    let w = t.set(&name("x"), &v, &PutOptions::default()).unwrap();
    assert_eq!((w.store.as_str(), w.version), ("local", 1));
    assert!(ro.keys().is_empty() && declared_ro.keys().is_empty());
    assert!(matches!(
        t.set_in("declared", &name("x"), &v, &PutOptions::default()),
        Err(Error::ReadOnly { .. })
    ));
    assert!(declared_ro.keys().is_empty());
    assert!(matches!(
        t.set_in("ro", &name("x"), &v, &PutOptions::default()),
        Err(Error::ReadOnly { .. })
    ));
    // A write is never redirected when the first writable store is down.
    let down = Mock::new("down");
    down.down.store(true, Ordering::SeqCst);
    let mut t = Tresor::builder()
        .vault("local", vault(&dir.path().join("b")), 50)
        .store("down", down, 10)
        .build()
        .unwrap();
    assert!(matches!(
        t.set(&name("x"), &v, &PutOptions::default()),
        Err(Error::Unavailable { .. })
    ));
}

#[test]
fn unavailable_optional_stores_are_skipped_with_one_warning_required_ones_fail() {
    let dir = tempfile::tempdir().unwrap();
    let down = Mock::new("remote");
    down.down.store(true, Ordering::SeqCst);
    let (b, warnings) = collect(
        Tresor::builder()
            .vault("local", vault(dir.path()), 50)
            .store("remote", down.clone(), 10),
    );
    let mut t = b.build().unwrap();
    t.set(
        &name("a"),
        &SecretValue::copy_from(b"A"),
        &Default::default(),
    )
    .unwrap_err();
    t.set_in(
        "local",
        &name("a"),
        &SecretValue::copy_from(b"A"),
        &Default::default(),
    )
    .unwrap();
    for _ in 0..3 {
        let a = t.get(&name("a"), Selector::default()).unwrap();
        assert_eq!(a.store, "local");
    }
    let w = warnings.lock().unwrap().clone();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("remote") && w[0].contains("skipped"), "{w:?}");
    // After the failed put the store is not asked again for a while.
    assert_eq!(
        down.calls.load(Ordering::SeqCst),
        1,
        "only the put reached it"
    );

    let required = StoreSettings {
        required: true,
        ..StoreSettings::new(10)
    };
    let mut t = Tresor::builder()
        .vault("local", vault(&dir.path().join("r")), 50)
        .store_with("remote", down, required)
        .build()
        .unwrap();
    assert!(matches!(
        t.get(&name("a"), Selector::default()),
        Err(Error::Unavailable { .. })
    ));
}

#[test]
fn list_merges_stores_and_shows_shadowed_copies() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = vault(dir.path());
    for n in ["a", "only-vault"] {
        v.put(&name(n), &SecretValue::copy_from(b"x"), &Default::default())
            .unwrap();
    }
    let mut t = Tresor::builder()
        .vault("local", v, 50)
        .store(
            "first",
            Mock::new("first").with("a", b"1").with("b", b"1"),
            10,
        )
        .store(
            "last",
            Mock::new("last").with("a", b"3").with("b", b"3"),
            90,
        )
        .build()
        .unwrap();
    let l = t.list("").unwrap();
    let rows: Vec<(String, String, Vec<String>)> = l
        .entries
        .iter()
        .map(|e| (e.info.name.to_string(), e.store.clone(), e.shadowed.clone()))
        .collect();
    assert_eq!(
        rows,
        [
            (
                "a".into(),
                "first".into(),
                vec!["local".to_string(), "last".into()]
            ),
            ("b".into(), "first".into(), vec!["last".to_string()]),
            ("only-vault".into(), "local".into(), vec![]),
        ]
    );
    let only = t.list_in("last", "").unwrap();
    assert_eq!(only.entries.len(), 2);
    // Deleting removes the answering copy only; the shadowed one shows.
    assert_eq!(
        t.delete(&name("a"), DeleteMode::Purge, None).unwrap(),
        "first"
    );
    assert_eq!(
        t.get(&name("a"), Selector::default()).unwrap().store,
        "local"
    );
}

fn cached_setup(dir: &Path) -> (Tresor, Mock, Warnings) {
    let remote = Mock::new("team").with("db/password", b"hunter2");
    let settings = StoreSettings {
        cache: true,
        remote: true,
        ..StoreSettings::new(10)
    };
    let (b, w) = collect(Tresor::builder().vault("local", vault(dir), 50).store_with(
        "team",
        remote.clone(),
        settings,
    ));
    (b.build().unwrap(), remote, w)
}

#[test]
fn reads_fall_back_to_the_offline_copy_with_its_age() {
    let dir = tempfile::tempdir().unwrap();
    let (mut t, remote, warnings) = cached_setup(dir.path());
    let n = name("db/password");
    let live = t.get(&n, Selector::default()).unwrap();
    assert!(live.cached.is_none());
    // The copy is in the local vault, encrypted, with its source and time.
    let copy = name(".tresor/cache/team/db/password");
    let meta = t.local_vault().unwrap().metadata(&copy).unwrap();
    assert_eq!(meta[CACHE_SOURCE], "team");
    assert!(meta[CACHE_FETCHED_AT].parse::<i64>().unwrap() > 0);
    // A second read with the same value does not write a new version.
    t.get(&n, Selector::default()).unwrap();
    let history = t.local_vault().unwrap().history(&copy).unwrap();
    assert_eq!(history.len(), 1);
    // The copy is hidden from listings.
    assert!(
        t.list("")
            .unwrap()
            .entries
            .iter()
            .all(|e| !e.info.name.as_str().starts_with(".tresor")),
    );

    remote.down.store(true, Ordering::SeqCst);
    let fallback = t.get(&n, Selector::default()).unwrap();
    assert_eq!(value(&fallback), b"hunter2");
    assert_eq!(fallback.store, "team");
    assert!(fallback.cached.is_some());
    let w = warnings.lock().unwrap().clone();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("offline copy of store 'team'") && w[0].contains("ago"),
        "{w:?}"
    );
    assert!(!w[0].contains("hunter2"));
    // A name never cached: the store that could hold it is down, so the
    // answer is "unavailable", not a guessed "not found".
    assert!(matches!(
        t.get(&name("other"), Selector::default()),
        Err(Error::Unavailable { .. })
    ));
}

#[test]
fn offline_uses_only_the_cache_and_max_age_bounds_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut t, remote, _) = cached_setup(dir.path());
    let n = name("db/password");
    t.get(&n, Selector::default()).unwrap();
    let kept = std::mem::replace(t.local_vault().unwrap(), vault(&dir.path().join("x")));
    drop(t);

    let calls = remote.calls.load(Ordering::SeqCst);
    let settings = StoreSettings {
        cache: true,
        remote: true,
        ..StoreSettings::new(10)
    };
    let (b, warnings) = collect(
        Tresor::builder()
            .vault("local", kept, 50)
            .store_with("team", remote.clone(), settings)
            .offline(true),
    );
    let mut t = b.build().unwrap();
    let found = t.get(&n, Selector::default()).unwrap();
    assert_eq!(value(&found), b"hunter2");
    assert!(found.cached.is_some());
    assert_eq!(
        remote.calls.load(Ordering::SeqCst),
        calls,
        "offline contacted the store"
    );
    assert!(warnings.lock().unwrap()[0].contains("offline"));
    // Writes to a remote store are refused offline.
    assert!(matches!(
        t.set(&n, &SecretValue::copy_from(b"x"), &Default::default()),
        Err(Error::Unavailable { .. })
    ));
    // ls lists the offline copies, marked as such.
    let l = t.list("").unwrap();
    assert_eq!(l.entries.len(), 1);
    assert!(l.entries[0].cached && l.entries[0].info.name == n);
    let kept = std::mem::replace(t.local_vault().unwrap(), vault(&dir.path().join("y")));
    drop(t);

    std::thread::sleep(Duration::from_millis(20));
    let (b, warnings) = collect(
        Tresor::builder()
            .vault("local", kept, 50)
            .store_with("team", remote, settings)
            .offline(true)
            .max_age(Some(Duration::from_millis(5))),
    );
    let mut t = b.build().unwrap();
    // The only copy is too old: that is the answer (unavailable, with the
    // ages), not "not found", and not a warning besides.
    let err = t.get(&n, Selector::default()).unwrap_err();
    assert!(
        matches!(&err, Error::Stale { store, max_age, .. }
            if store == "team" && *max_age == Duration::from_millis(5)),
        "{err:?}"
    );
    assert!(err.to_string().contains("allowed"), "{err}");
    let w = warnings.lock().unwrap().clone();
    assert!(!w.iter().any(|w| w.contains("allowed")), "{w:?}");
}

#[test]
fn doctor_probes_and_always_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let good = Mock::new("good");
    let corrupt = Mock::new("corrupt");
    corrupt.corrupt_reads.store(true, Ordering::SeqCst);
    let phantom = Mock::new("phantom");
    phantom.phantom_put.store(true, Ordering::SeqCst);
    let down = Mock::new("down");
    down.down.store(true, Ordering::SeqCst);
    let ro = Mock {
        read_only: true,
        ..Mock::new("ro")
    };
    let mut t = Tresor::builder()
        .vault("local", vault(dir.path()), 50)
        .store("good", good.clone(), 1)
        .store("corrupt", corrupt.clone(), 2)
        .store("phantom", phantom.clone(), 3)
        .store_with(
            "down",
            down,
            StoreSettings {
                required: true,
                ..StoreSettings::new(4)
            },
        )
        .store("ro", ro, 5)
        .build()
        .unwrap();
    let checks = t.doctor();
    let by = |n: &str| checks.iter().find(|c| c.name == n).unwrap().clone();
    let g = by("good");
    assert!(
        g.healthy && g.probe == "ok" && g.cleaned_up == Some(true),
        "{g:?}"
    );
    let c = by("corrupt");
    assert!(
        !c.healthy && c.probe == "failed" && c.cleaned_up == Some(true),
        "{c:?}"
    );
    assert!(c.probe_detail.contains("another value"), "{c:?}");
    let p = by("phantom");
    assert!(!p.healthy && p.probe == "failed", "{p:?}");
    assert!(
        phantom.keys().is_empty(),
        "a write that reported failure was left behind"
    );
    let d = by("down");
    assert!(!d.healthy && !d.reachable && d.required, "{d:?}");
    let r = by("ro");
    assert!(
        r.healthy && r.probe == "skipped" && r.probe_detail.contains("read-only"),
        "{r:?}"
    );
    let l = by("local");
    assert!(l.healthy && l.probe == "ok", "{l:?}");
    assert!(good.keys().is_empty() && corrupt.keys().is_empty());
    // The vault's scratch secret is purged too.
    assert!(
        t.local_vault()
            .unwrap()
            .list(".tresor/", true)
            .unwrap()
            .is_empty()
    );
}

const CONFIG: &str = r#"
profile = "dev"

[[stores]]
name = "env"
kind = "env"
prefix = "ENV/TRESOR_TEST_MANAGER_PREFIX"
priority = 10

[[stores]]
name = "local"
kind = "vault"
priority = 50

[[stores]]
name = "env2"
kind = "env"
prefix = "SEC/config/prefix"
priority = 60

[profiles.dev]
stores = ["local", "env"]

[profiles.other]
stores = ["env2"]
"#;

#[test]
fn config_stores_profiles_and_references() {
    // SAFETY: this test binary's only test that touches the environment.
    unsafe {
        std::env::set_var("TRESOR_TEST_MANAGER_PREFIX", "MGR_ONE_");
        std::env::set_var("MGR_ONE_API_KEY", "from-env-one");
        std::env::set_var("MGR_TWO_API_KEY", "from-env-two");
        std::env::remove_var("TRESOR_PROFILE");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut v = vault(dir.path());
    v.put(
        &name("config/prefix"),
        &SecretValue::copy_from(b"MGR_TWO_"),
        &Default::default(),
    )
    .unwrap();
    drop(v);
    let config = Config::parse(CONFIG, None).unwrap();
    let build = |profile: Option<&str>| {
        let mut b = Tresor::builder()
            .config(config.clone())
            .vault_path(dir.path().join("vault.db"))
            .vault_opener(opener);
        if let Some(p) = profile {
            b = b.profile(p);
        }
        b.build().unwrap()
    };
    // The default profile: env (ENV/ prefix) then local.
    let mut t = build(None);
    assert_eq!(t.store_names(), ["env", "local"]);
    let found = t.get(&name("api_key"), Selector::default()).unwrap();
    assert_eq!(
        (found.store.as_str(), value(&found)),
        ("env", &b"from-env-one"[..])
    );
    // env is read-only: writes go to local.
    let w = t
        .set(
            &name("api_key"),
            &SecretValue::copy_from(b"v"),
            &Default::default(),
        )
        .unwrap();
    assert_eq!(w.store, "local");
    // Another profile swaps the store set; its prefix is a SEC/ reference.
    let mut t = build(Some("other"));
    assert_eq!(t.store_names(), ["env2"]);
    let found = t.get(&name("api_key"), Selector::default()).unwrap();
    assert_eq!(value(&found), b"from-env-two");
    assert!(
        t.set(
            &name("x"),
            &SecretValue::copy_from(b"v"),
            &Default::default()
        )
        .is_err()
    );
    // A missing profile is an error that names the ones there are.
    let err = Tresor::builder()
        .config(config.clone())
        .profile("nope")
        .vault_path(dir.path().join("vault.db"))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("dev, other"), "{err}");

    // check_config finds unresolvable references at their line.
    let broken = CONFIG
        .replace(
            "ENV/TRESOR_TEST_MANAGER_PREFIX",
            "ENV/TRESOR_TEST_MANAGER_UNSET",
        )
        .replace("SEC/config/prefix", "SEC/config/missing");
    let config = Config::parse(&broken, None).unwrap();
    let mut vault = opener(&dir.path().join("vault.db")).unwrap();
    let mut secret = |n: &SecretName, _: Option<u64>| {
        let s = vault.get(n, Selector::default())?;
        Ok(zeroize::Zeroizing::new(
            s.value.expose_text().unwrap_or_default().to_string(),
        ))
    };
    let problems = tresor::manager::check_config(&config, &mut secret);
    let got: Vec<(usize, String)> = problems
        .iter()
        .map(|p| (p.line, p.message.clone()))
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, 7);
    assert!(
        got[0]
            .1
            .contains("ENV/TRESOR_TEST_MANAGER_UNSET is not set"),
        "{got:?}"
    );
    assert_eq!(got[1].0, 18);
    assert!(
        got[1]
            .1
            .contains("SEC/config/missing is not in the local vault"),
        "{got:?}"
    );
}

#[test]
#[cfg(all(feature = "openbao", feature = "env"))]
fn check_config_points_at_unknown_store_options() {
    let text = "[[stores]]\nname = \"team\"\nkind = \"openbao\"\naddress = \"http://127.0.0.1:8200\"\ntoken = \"t\"\nadress = \"typo\"\n\n[[stores]]\nname = \"e\"\nkind = \"env\"\nprefix = \"bad prefix!\"\n\n[[stores]]\nname = \"k\"\nkind = \"aws\"\nregoin = \"eu-west-1\"\n";
    let config = Config::parse(text, None).unwrap();
    let mut none = |_: &SecretName, _: Option<u64>| -> Result<zeroize::Zeroizing<String>> {
        unreachable!("no SEC/ reference")
    };
    let problems = tresor::manager::check_config(&config, &mut none);
    let got: Vec<(usize, usize, String)> = problems
        .iter()
        .map(|p| (p.line, p.column, p.message.clone()))
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!((got[0].0, got[0].1), (6, 1));
    assert!(
        got[0]
            .2
            .contains("unknown option 'adress' for the openbao store kind"),
        "{got:?}"
    );
    // The env store's error names its option (a typed InvalidOption), so
    // the problem points at the `prefix` line, not the store's first line.
    assert_eq!(got[1].0, 11, "{got:?}");
    assert!(got[1].2.contains("prefix"), "{got:?}");
    // A build with the aws store reads its options (and finds the typo); a
    // build without says so. (Without this crate's `aws` feature the store
    // can still be there: another crate of the same build may turn it on
    // in tresor-stores.)
    let has_aws_store = !got[2].2.contains("this build of tresor has no aws store");
    assert!(has_aws_store || !cfg!(feature = "aws"), "{got:?}");
    if has_aws_store {
        assert_eq!(got[2].0, 16, "{got:?}");
        assert!(got[2].2.contains("'regoin'"), "{got:?}");
    } else {
        assert_eq!(got[2].0, 13, "{got:?}");
    }
}

#[test]
fn every_write_meets_the_rules_of_any_store_unless_skipped_on_purpose() {
    let mock = Mock::new("remote");
    let mut t = Tresor::builder()
        .vault_opener(|_| panic!("no vault here"))
        .store("remote", mock.clone(), 10)
        .build()
        .unwrap();
    let name = SecretName::new("github/token").unwrap();
    let wrong = SecretValue::copy_from(b"not-a-github-token");
    let e = t.set(&name, &wrong, &PutOptions::default()).unwrap_err();
    assert!(
        matches!(e, Error::RuleFailed { ref rule, .. } if rule == "github"),
        "{e}"
    );
    let staged = PutOptions {
        stage: true,
        ..PutOptions::default()
    };
    assert!(t.set_in("remote", &name, &wrong, &staged).is_err());
    assert!(
        mock.data.lock().unwrap().is_empty(),
        "nothing reached the store"
    );
    t.validate(&name, &wrong).unwrap_err();
    t.validate_rule(
        "openai",
        &SecretValue::copy_from(b"sk-abcdefghijklmnopqrstuvwxyz"),
    )
    .unwrap();
    let skip = PutOptions {
        unvalidated: true,
        ..PutOptions::default()
    };
    t.set(&name, &wrong, &skip).unwrap();
    assert_eq!(
        mock.data.lock().unwrap()["github/token"].1,
        b"not-a-github-token"
    );

    // The rules of a config, or none at all.
    let config = Config::parse("[[rules]]\npattern = \"github/*\"\nskip = true\n", None).unwrap();
    let mut t = Tresor::builder()
        .config(config)
        .vault_opener(|_| panic!("no vault here"))
        .store("remote", mock.clone(), 10)
        .build()
        .unwrap();
    t.set(&name, &wrong, &PutOptions::default()).unwrap();
    let mut t = Tresor::builder()
        .rules(tresor::rules::RuleSet::none())
        .vault_opener(|_| panic!("no vault here"))
        .store("remote", mock, 10)
        .build()
        .unwrap();
    t.set(
        &SecretName::new("openai/k").unwrap(),
        &wrong,
        &PutOptions::default(),
    )
    .unwrap();
}
