//! `tresor::migrate` against an in-process target with fault injection: a
//! write that fails halfway rolls back every write the run made; a value
//! read back that differs is an integrity error, rolled back too; a target
//! that stays down keeps the journal, and the next run removes the leftover
//! copies and completes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tresor::migrate::{JOURNAL_PREFIX, MigrateOptions, migrate};
use tresor::{
    Capabilities, CreateOptions, Credential, DeleteMode, Error, PutOptions, Result, Secret,
    SecretInfo, SecretName, SecretValue, Selector, Store, Tresor, Vault,
};
use tresor_core::Health;

/// A map store: `fail_at` (the Nth put fails, and from then on the store is
/// down while `stay_down`), `corrupt_reads`.
#[derive(Clone, Default)]
struct Target {
    data: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    puts: Arc<AtomicUsize>,
    fail_at: Arc<AtomicUsize>,
    stay_down: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
    corrupt_reads: Arc<AtomicBool>,
}

impl Target {
    fn check(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::Unavailable {
                store: "target".into(),
                reason: "connection refused".into(),
            });
        }
        Ok(())
    }
    fn keys(&self) -> Vec<String> {
        self.data.lock().unwrap().keys().cloned().collect()
    }
}

impl Store for Target {
    fn name(&self) -> &str {
        "target"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list: true,
            ..Capabilities::default()
        }
    }
    fn get(&mut self, name: &SecretName, _: Selector) -> Result<Secret> {
        self.check()?;
        let data = self.data.lock().unwrap();
        let value = data.get(name.as_str()).ok_or_else(|| Error::NotFound {
            store: "target".into(),
            what: format!("'{name}'"),
        })?;
        let value = if self.corrupt_reads.load(Ordering::SeqCst) {
            b"something else".to_vec()
        } else {
            value.clone()
        };
        Ok(Secret {
            name: name.clone(),
            version: 1,
            value: SecretValue::from(value),
        })
    }
    fn put(&mut self, name: &SecretName, value: &SecretValue, _: &PutOptions) -> Result<u64> {
        self.check()?;
        let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at.load(Ordering::SeqCst) {
            if self.stay_down.load(Ordering::SeqCst) {
                self.down.store(true, Ordering::SeqCst);
            }
            return Err(Error::Unavailable {
                store: "target".into(),
                reason: "connection reset".into(),
            });
        }
        self.data
            .lock()
            .unwrap()
            .insert(name.as_str().into(), value.expose_secret().to_vec());
        Ok(1)
    }
    fn delete(&mut self, name: &SecretName, _: DeleteMode) -> Result<()> {
        self.check()?;
        match self.data.lock().unwrap().remove(name.as_str()) {
            Some(_) => Ok(()),
            None => Err(Error::NotFound {
                store: "target".into(),
                what: format!("'{name}'"),
            }),
        }
    }
    fn list(&mut self, prefix: &str) -> Result<Vec<SecretInfo>> {
        self.check()?;
        Ok(self
            .keys()
            .into_iter()
            .filter(|k| k.starts_with(prefix))
            .map(|k| SecretInfo::single(SecretName::new(k).unwrap()))
            .collect())
    }
    fn health(&mut self) -> Health {
        Health {
            reachable: true,
            authenticated: true,
            detail: "up".into(),
        }
    }
}

fn setup(target: &Target) -> (tempfile::TempDir, Tresor) {
    let dir = tempfile::tempdir().unwrap();
    let text = tresor::new_key_file_text();
    std::fs::write(dir.path().join("key"), text.as_bytes()).unwrap();
    let key = Credential::key_material(text.as_bytes()).unwrap();
    let vault = Vault::create(&dir.path().join("v.db"), &key, &CreateOptions::default())
        .unwrap()
        .vault;
    let mut t = Tresor::builder()
        .vault("vault", vault, 10)
        .store("target", target.clone(), 20)
        .on_warning(|_| {})
        .build()
        .unwrap();
    for i in 0..5 {
        let name = SecretName::new(format!("app/k{i}")).unwrap();
        t.set_in(
            "vault",
            &name,
            &SecretValue::from(format!("canary-{i}")),
            &PutOptions::default(),
        )
        .unwrap();
    }
    (dir, t)
}

fn journal_records(t: &mut Tresor) -> usize {
    t.local_vault()
        .unwrap()
        .list(JOURNAL_PREFIX, false)
        .unwrap()
        .len()
}

#[test]
fn a_failed_copy_rolls_back_every_write_of_the_run() {
    let target = Target::default();
    target.fail_at.store(4, Ordering::SeqCst);
    let (_dir, mut t) = setup(&target);
    let mut warnings = Vec::new();
    let err = migrate(&mut t, &MigrateOptions::new("vault", "target"), &mut |e| {
        if let tresor::migrate::Event::Warning(w) = e {
            warnings.push(w);
        }
    })
    .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("rolled back"), "{err}");
    assert!(!err.to_string().contains("canary"), "{err}");
    assert!(target.keys().is_empty(), "{:?}", target.keys());
    assert_eq!(journal_records(&mut t), 0);
    assert_eq!(
        t.list_store("vault", "").unwrap().len(),
        5,
        "the source is intact"
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
}

#[test]
fn a_copy_that_reads_back_differently_is_an_integrity_error() {
    let target = Target::default();
    target.corrupt_reads.store(true, Ordering::SeqCst);
    let (_dir, mut t) = setup(&target);
    let mut options = MigrateOptions::new("vault", "target");
    options.delete_source = true;
    let err = migrate(&mut t, &options, &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(target.keys().is_empty());
    // Nothing was deleted from the source: no copy was verified.
    assert_eq!(t.list_store("vault", "").unwrap().len(), 5);
}

#[test]
fn a_target_that_stays_down_keeps_the_journal_and_the_next_run_completes() {
    let target = Target::default();
    target.fail_at.store(3, Ordering::SeqCst);
    target.stay_down.store(true, Ordering::SeqCst);
    let (dir, mut t) = setup(&target);
    let err = migrate(&mut t, &MigrateOptions::new("vault", "target"), &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(
        err.to_string().contains("running the same migrate again"),
        "{err}"
    );
    // Two copies were made and could not be removed: the journal names them.
    assert_eq!(target.keys().len(), 2);
    assert_eq!(journal_records(&mut t), 1);

    // Back up; one leftover is tampered with, as a half-written copy would be.
    target.down.store(false, Ordering::SeqCst);
    target.fail_at.store(0, Ordering::SeqCst);
    target
        .data
        .lock()
        .unwrap()
        .insert("app/k0".into(), b"half".to_vec());
    // A fresh manager over the same vault and target (a new process).
    drop(t);
    let mut t = reopen(&target, dir.path());
    let mut options = MigrateOptions::new("vault", "target");
    options.delete_source = true;
    let report = migrate(&mut t, &options, &mut |_| {}).unwrap();
    assert!(report.resumed);
    assert_eq!((report.copied, report.source_deleted), (5, 5));
    for i in 0..5 {
        assert_eq!(
            target.data.lock().unwrap()[&format!("app/k{i}")],
            format!("canary-{i}").into_bytes()
        );
    }
    assert_eq!(journal_records(&mut t), 0);
}

/// The vault of `setup` reopened with the key file beside it.
fn reopen(target: &Target, dir: &std::path::Path) -> Tresor {
    let key = Credential::key_material(&std::fs::read(dir.join("key")).unwrap()).unwrap();
    let vault = tresor::LockedVault::open(&dir.join("v.db"), &Default::default())
        .unwrap()
        .unlock(&key)
        .unwrap();
    Tresor::builder()
        .vault("vault", vault, 10)
        .store("target", target.clone(), 20)
        .on_warning(|_| {})
        .build()
        .unwrap()
}
