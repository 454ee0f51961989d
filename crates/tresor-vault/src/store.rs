//! The vault behind the common [`Store`] contract.

use tresor_core::{
    Capabilities, DeleteMode, Health, Label, PutOptions, Result, Secret, SecretInfo, SecretName,
    SecretValue, Selector, Store, VersionInfo,
};

use crate::Vault;

impl Store for Vault {
    fn name(&self) -> &str {
        "vault"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Secret> {
        Vault::get(self, name, selector)
    }

    fn put(&mut self, name: &SecretName, value: &SecretValue, options: &PutOptions) -> Result<u64> {
        Vault::put(self, name, value, options)
    }

    fn delete(&mut self, name: &SecretName, mode: DeleteMode) -> Result<()> {
        Vault::delete(self, name, mode)
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<SecretInfo>> {
        Vault::list(self, prefix, false)
    }

    fn history(&mut self, name: &SecretName) -> Result<Vec<VersionInfo>> {
        Vault::history(self, name)
    }

    fn undelete(&mut self, name: &SecretName) -> Result<()> {
        Vault::undelete(self, name)
    }

    fn set_label(&mut self, name: &SecretName, label: Label, version: u64) -> Result<()> {
        match label {
            Label::Current => self.rollback(name, version, None),
            _ => Err(self.unsupported("moving labels other than current")),
        }
    }

    fn health(&mut self) -> Health {
        match self.audit_verify() {
            Ok(n) => Health {
                reachable: true,
                authenticated: true,
                detail: format!(
                    "{} unlocked, audit chain of {n} entries intact",
                    self.path().display()
                ),
            },
            Err(e) => Health {
                reachable: true,
                authenticated: true,
                detail: e.to_string(),
            },
        }
    }
}
