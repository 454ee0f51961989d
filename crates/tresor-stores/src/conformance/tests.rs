//! The suite against a small in-memory store, honest and then with one
//! fault at a time, to show each fault is caught.

use std::collections::BTreeMap;

use tresor_core::{Capabilities, DeleteMode, Health, Label, Secret, SecretInfo};

use super::*;

#[derive(Clone, Copy, Default)]
struct Faults {
    ignore_expect_version: bool,
    fake_undelete: bool,
    leak_value: bool,
    list_ignores_prefix: bool,
    /// Claims staging, and writes a staged value as current.
    pretend_staging: bool,
    /// Claims metadata, and drops it.
    drop_metadata: bool,
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
            staging: self.faults.pretend_staging,
            read_labels: self.faults.pretend_staging,
            metadata: self.faults.drop_metadata,
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

    fn put(&mut self, name: &SecretName, value: &SecretValue, options: &PutOptions) -> Result<u64> {
        if options.expect_version.is_some() && !self.faults.ignore_expect_version {
            return Err(self.unsupported("check-and-set"));
        }
        if !options.metadata.is_empty() && !self.faults.drop_metadata {
            return Err(self.unsupported("metadata"));
        }
        if options.stage && !self.faults.pretend_staging {
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
            .map(|n| SecretInfo::single(n.clone()))
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

#[test]
#[should_panic(expected = "a staged write left current where it was")]
fn a_pretended_staging_is_caught() {
    staging(&mut MemoryFixture(Faults {
        pretend_staging: true,
        ..Faults::default()
    }));
}

#[test]
#[should_panic(expected = "metadata written with the value")]
fn dropped_metadata_is_caught() {
    metadata(&mut MemoryFixture(Faults {
        drop_metadata: true,
        ..Faults::default()
    }));
}
