//! Declared secrets through the manager: values from the stores by
//! priority, defaults, missing ones, and remote stores asked at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use tresor::config::Config;
use tresor::declared::{Origin, require};
use tresor::manager::StoreSettings;
use tresor::{
    Capabilities, DeleteMode, Error, PutOptions, Result, Secret, SecretName, SecretValue, Selector,
    Store, Tresor,
};
use tresor_core::Health;

/// A remote-like store that, when given a barrier, meets the other store
/// there on its first read: the read only returns if both stores are being
/// read at the same time.
struct Meeting {
    name: String,
    data: BTreeMap<String, Vec<u8>>,
    barrier: Option<Arc<Barrier>>,
    reads: Arc<Mutex<Vec<String>>>,
}

impl Store for Meeting {
    fn name(&self) -> &str {
        &self.name
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    fn get(&mut self, name: &SecretName, _: Selector) -> Result<Secret> {
        if let Some(b) = self.barrier.take() {
            // Without a partner within a second, the reads were not concurrent.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                b.wait();
                let _ = tx.send(());
            });
            if rx.recv_timeout(Duration::from_secs(10)).is_err() {
                return Err(Error::Unavailable {
                    store: self.name.clone(),
                    reason: "read alone: the stores were not asked at once".into(),
                });
            }
        }
        self.reads
            .lock()
            .unwrap()
            .push(format!("{}:{name}", self.name));
        match self.data.get(name.as_str()) {
            Some(v) => Ok(Secret {
                name: name.clone(),
                version: 1,
                value: SecretValue::copy_from(v),
            }),
            None => Err(Error::NotFound {
                store: self.name.clone(),
                what: format!("'{name}'"),
            }),
        }
    }
    fn put(&mut self, _: &SecretName, _: &SecretValue, _: &PutOptions) -> Result<u64> {
        Err(Error::ReadOnly {
            store: self.name.clone(),
        })
    }
    fn delete(&mut self, _: &SecretName, _: DeleteMode) -> Result<()> {
        Err(Error::ReadOnly {
            store: self.name.clone(),
        })
    }
    fn health(&mut self) -> Health {
        Health {
            reachable: true,
            authenticated: true,
            detail: "up".into(),
        }
    }
}

fn remote(priority: i64) -> StoreSettings {
    StoreSettings {
        remote: true,
        read_only: true,
        ..StoreSettings::new(priority)
    }
}

fn store(
    name: &str,
    pairs: &[(&str, &str)],
    barrier: &Arc<Barrier>,
    reads: &Arc<Mutex<Vec<String>>>,
) -> Meeting {
    Meeting {
        name: name.into(),
        data: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
        barrier: Some(barrier.clone()),
        reads: reads.clone(),
    }
}

const CONFIG: &str = r#"
[secrets]
A = "app/a"
B = "app/b"
LEVEL = { name = "app/level", default = "info" }
OPT = { name = "app/opt", required = false }
"#;

#[test]
fn remote_stores_are_asked_at_once_and_priority_still_decides() {
    let barrier = Arc::new(Barrier::new(2));
    let reads = Arc::new(Mutex::new(Vec::new()));
    let mut t = Tresor::builder()
        .vault_path("/nonexistent/never-opened.db")
        .store_with(
            "first",
            store("first", &[("app/a", "from-first")], &barrier, &reads),
            remote(10),
        )
        .store_with(
            "second",
            store(
                "second",
                &[("app/a", "shadowed"), ("app/b", "from-second")],
                &barrier,
                &reads,
            ),
            remote(20),
        )
        .on_warning(|w| panic!("unexpected warning: {w}"))
        .build()
        .unwrap();
    let config = Config::parse(CONFIG, None).unwrap();
    let declared = config.declared(None).unwrap();
    let mut fetched = t.fetch_declared(declared);
    let summary: Vec<(String, Option<Vec<u8>>, Origin)> = fetched
        .iter()
        .map(|f| {
            (
                f.declared.var.clone(),
                f.value.as_ref().map(|v| v.expose_secret().to_vec()),
                f.origin.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "A".into(),
                Some(b"from-first".to_vec()),
                Origin::Store("first".into())
            ),
            (
                "B".into(),
                Some(b"from-second".to_vec()),
                Origin::Store("second".into())
            ),
            ("LEVEL".into(), Some(b"info".to_vec()), Origin::Default),
            ("OPT".into(), None, Origin::Missing),
        ]
    );
    require(&mut fetched).unwrap();
    // Each store was asked for each name once (the prefetch), not again.
    let mut reads = reads.lock().unwrap().clone();
    reads.sort();
    assert_eq!(reads.len(), 8, "{reads:?}");
}

#[test]
fn require_names_every_missing_required_secret() {
    let barrier = Arc::new(Barrier::new(1));
    let reads = Arc::new(Mutex::new(Vec::new()));
    let mut t = Tresor::builder()
        .vault_path("/nonexistent/never-opened.db")
        .store_with("only", store("only", &[], &barrier, &reads), remote(10))
        .on_warning(|_| {})
        .build()
        .unwrap();
    let config = Config::parse(CONFIG, None).unwrap();
    let mut fetched = t.fetch_declared(config.declared(None).unwrap());
    let e = require(&mut fetched).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    let m = e.to_string();
    assert!(
        m.contains("A ('app/a')") && m.contains("B ('app/b')"),
        "{m}"
    );
    assert!(!m.contains("LEVEL") && !m.contains("OPT"), "{m}");
}
