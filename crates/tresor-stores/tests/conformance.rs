//! The conformance suite against the embedded vault and the `env` store.

use std::path::PathBuf;

use tempfile::TempDir;
use tresor_core::{SecretName, SecretValue, Store};
use tresor_crypto::slot::{Credential, new_key_file_text};
use tresor_stores::conformance::{Fixture, seed_by_put};
use tresor_stores::env::Env;
use tresor_vault::{CreateOptions, LockedVault, OpenOptions, Vault};

/// A fresh vault in a temporary folder per store, opened with a key file's
/// material; a second handle is a second connection to the same file.
struct VaultFixture {
    key: Credential,
    dir: TempDir,
    made: u32,
    last: Option<PathBuf>,
}

impl VaultFixture {
    fn new() -> Self {
        Self {
            key: Credential::key_material(new_key_file_text().as_bytes()).unwrap(),
            dir: tempfile::tempdir().unwrap(),
            made: 0,
            last: None,
        }
    }
}

impl Fixture for VaultFixture {
    fn store(&mut self, seed: &[(SecretName, SecretValue)]) -> Box<dyn Store> {
        self.made += 1;
        let path = self.dir.path().join(format!("vault-{}.db", self.made));
        let options = CreateOptions {
            recovery: false,
            ..CreateOptions::default()
        };
        let mut vault = Vault::create(&path, &self.key, &options).unwrap().vault;
        seed_by_put(&mut vault, seed);
        self.last = Some(path);
        Box::new(vault)
    }

    fn second_handle(&mut self) -> Option<Box<dyn Store>> {
        let path = self.last.as_ref()?;
        let vault = LockedVault::open(path, &OpenOptions::default())
            .unwrap()
            .unlock(&self.key)
            .unwrap();
        Some(Box::new(vault))
    }
}

/// An `env` store over a map holding exactly the seed, so no test touches
/// the process environment.
struct EnvFixture {
    prefix: &'static str,
}

impl Fixture for EnvFixture {
    fn store(&mut self, seed: &[(SecretName, SecretValue)]) -> Box<dyn Store> {
        let mapping = Env::with_prefix(self.prefix).unwrap();
        let vars = seed
            .iter()
            .map(|(name, value)| (mapping.variable_for(name), value.expose_secret().to_vec()))
            .collect();
        Box::new(Env::from_map_with_prefix(vars, self.prefix).unwrap())
    }
}

mod vault {
    tresor_stores::conformance_tests!(super::VaultFixture::new());
}

mod env {
    tresor_stores::conformance_tests!(super::EnvFixture { prefix: "" });
}

mod env_prefixed {
    tresor_stores::conformance_tests!(super::EnvFixture {
        prefix: "MODEL_FORGE_"
    });
}

/// A `dtpy` keystore per store, in a temporary folder, with a verbatim
/// password; the second handle is a second `Dtpy` on the same file.
struct DtpyFixture {
    dir: TempDir,
    made: u32,
    last: Option<PathBuf>,
}

impl DtpyFixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            made: 0,
            last: None,
        }
    }

    fn open(path: &std::path::Path) -> tresor_stores::dtpy::Dtpy {
        let password = Some(zeroize::Zeroizing::new("conformance-pw".to_string()));
        tresor_stores::dtpy::Dtpy::open(tresor_stores::dtpy::DtpyOptions::new(path, password))
            .unwrap()
    }
}

impl Fixture for DtpyFixture {
    fn store(&mut self, seed: &[(SecretName, SecretValue)]) -> Box<dyn Store> {
        self.made += 1;
        let path = self.dir.path().join(format!("app{}.v3keystore", self.made));
        let mut store = Self::open(&path);
        seed_by_put(&mut store, seed);
        self.last = Some(path);
        Box::new(store)
    }

    fn second_handle(&mut self) -> Option<Box<dyn Store>> {
        Some(Box::new(Self::open(self.last.as_ref()?)))
    }
}

mod dtpy {
    tresor_stores::conformance_tests!(super::DtpyFixture::new());
}
