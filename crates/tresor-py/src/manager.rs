//! `tresor.Tresor`: the library's manager behind one mutex, each call made
//! with the GIL released.

use std::ffi::CString;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::PyUserWarning;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString};
use zeroize::Zeroizing;

use tresor::config::Config;
use tresor::manager::Listing;
use tresor::refs::{Place, Resolver};
use tresor::{
    DeleteMode, Error, Found, Label, PutOptions, Result, SecretName, Selector, Unlock, VersionInfo,
};

use crate::errors::{invalid, to_py};
use crate::secret::Secret;
use crate::value::secret_value;

/// Opens the manager as the `tresor` CLI does; see `Tresor.__new__`.
#[pyfunction]
#[pyo3(signature = (config=None, profile=None, *, prompt=false, vault=None, key_file=None, offline=false))]
pub fn open(
    py: Python<'_>,
    config: Option<PathBuf>,
    profile: Option<String>,
    prompt: bool,
    vault: Option<PathBuf>,
    key_file: Option<PathBuf>,
    offline: bool,
) -> PyResult<Tresor> {
    Tresor::new(py, config, profile, prompt, vault, key_file, offline)
}

/// Every configured store behind one API, safe to share between threads.
#[pyclass(module = "tresor", frozen)]
pub struct Tresor {
    inner: Mutex<Option<tresor::Tresor>>,
    /// Warnings of the library (a skipped store, an offline copy used),
    /// issued as Python `UserWarning`s once the call returns.
    warnings: Arc<Mutex<Vec<String>>>,
    stores: Vec<String>,
}

impl Tresor {
    /// Runs `f` on the manager with the GIL released, then issues the
    /// warnings it left and turns its error into a `tresor.Error`.
    fn call<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut tresor::Tresor) -> Result<T> + Send,
    ) -> PyResult<T> {
        let result = py.detach(|| match self.lock().as_mut() {
            Some(t) => f(t),
            None => Err(Error::Validation("this tresor.Tresor is closed".into())),
        });
        self.flush_warnings(py)?;
        result.map_err(to_py)
    }

    fn lock(&self) -> MutexGuard<'_, Option<tresor::Tresor>> {
        // A panic inside a store call cannot leave the manager half
        // changed in a way the next call would misread: use it anyway.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn flush_warnings(&self, py: Python<'_>) -> PyResult<()> {
        let pending = std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner()));
        if pending.is_empty() {
            return Ok(());
        }
        let category = py.get_type::<PyUserWarning>();
        for text in pending {
            let text = CString::new(text.replace('\0', " ")).expect("NULs replaced above");
            PyErr::warn(py, &category, &text, 2)?;
        }
        Ok(())
    }

    fn found<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        version: Option<u64>,
        label: Option<&str>,
        store: Option<&str>,
    ) -> PyResult<(SecretName, Found)> {
        let name = secret_name(name)?;
        let selector = selector(version, label)?;
        let found = self.call(py, |t| match store {
            Some(s) => t.get_from(s, &name, selector),
            None => t.get(&name, selector),
        })?;
        Ok((name, found))
    }

    fn write(
        &self,
        py: Python<'_>,
        name: &str,
        value: &Bound<'_, PyAny>,
        options: PutOptions,
        store: Option<&str>,
    ) -> PyResult<u64> {
        let name = secret_name(name)?;
        let value = secret_value(value)?;
        let written = self.call(py, |t| match store {
            Some(s) => t.set_in(s, &name, &value, &options),
            None => t.set(&name, &value, &options),
        })?;
        Ok(written.version)
    }
}

#[pymethods]
impl Tresor {
    /// Opens the manager over `tresor.toml` (`config`, else `TRESOR_CONFIG`,
    /// `./tresor.toml` once trusted, the user's config), with `profile`
    /// (else `TRESOR_PROFILE`). Vault files unlock through the CLI's chain:
    /// `key_file`, `TRESOR_KEY_FILE`, `TRESOR_KEY`, `TRESOR_PASSWORD` and
    /// its aliases, `TRESOR_RECOVERY_KEY`, keychain slots, an unlock
    /// session, PKCS#11 slots with `TRESOR_PKCS11_PIN`; a password prompt
    /// only with `prompt=True` and a terminal. With no config the one store
    /// is the vault (`vault`, else `TRESOR_VAULT`, else the user vault),
    /// unlocked here; the stores of a config open on first use.
    #[new]
    #[pyo3(signature = (config=None, profile=None, *, prompt=false, vault=None, key_file=None, offline=false))]
    fn new(
        py: Python<'_>,
        config: Option<PathBuf>,
        profile: Option<String>,
        prompt: bool,
        vault: Option<PathBuf>,
        key_file: Option<PathBuf>,
        offline: bool,
    ) -> PyResult<Self> {
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&warnings);
        let built = py.detach(move || -> Result<tresor::Tresor> {
            let config = Config::discover_and_load(config.as_deref())?;
            let has_config = config.is_some();
            let mut unlock = Unlock::new().key_file(key_file);
            if prompt {
                unlock = unlock.on_prompt(|path| {
                    if !std::io::stdin().is_terminal() {
                        return Ok(None);
                    }
                    let text = format!("Password for {}: ", path.display());
                    match rpassword::prompt_password(text) {
                        Ok(pw) => Ok(Some(Zeroizing::new(pw))),
                        // No terminal to ask on after all.
                        Err(_) => Ok(None),
                    }
                });
            }
            let mut b = tresor::Tresor::builder()
                .vault_path(tresor::vault_path(vault.as_deref())?)
                .unlock(unlock)
                .offline(offline)
                .on_warning(move |text| {
                    sink.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(text.to_string());
                });
            if let Some(c) = config {
                b = b.config(c);
            }
            if let Some(p) = profile {
                b = b.profile(p);
            }
            let mut t = b.build()?;
            // Without a config the vault is the only store: unlock it now,
            // so a missing credential is this call's error.
            if !has_config {
                t.local_vault()?;
            }
            Ok(t)
        });
        let t = built.map_err(to_py)?;
        let stores = t.store_names().into_iter().map(String::from).collect();
        let this = Self {
            inner: Mutex::new(Some(t)),
            warnings,
            stores,
        };
        this.flush_warnings(py)?;
        Ok(this)
    }

    /// The value of `name` as bytes: the current version, or `version`, or
    /// the version `label` (`current`, `previous`, `pending`) points at;
    /// from the first store that has it, or from `store`.
    #[pyo3(signature = (name, version=None, label=None, *, store=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        version: Option<u64>,
        label: Option<&str>,
        store: Option<&str>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (_, found) = self.found(py, name, version, label, store)?;
        Ok(PyBytes::new(py, found.secret.value.expose_secret()))
    }

    /// The value of `name` as text (UTF-8); `InvalidInput` when it is not.
    #[pyo3(signature = (name, version=None, label=None, *, store=None))]
    fn get_text<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        version: Option<u64>,
        label: Option<&str>,
        store: Option<&str>,
    ) -> PyResult<Bound<'py, PyString>> {
        let (name, found) = self.found(py, name, version, label, store)?;
        match found.secret.value.expose_text() {
            Some(text) => Ok(PyString::new(py, text)),
            None => Err(invalid(format!(
                "the value of '{name}' is not UTF-8 text; use get() for bytes"
            ))),
        }
    }

    /// The value of `name` as a `tresor.Secret`, which wipes it on
    /// `close()` or at the end of a `with` block.
    #[pyo3(signature = (name, version=None, label=None, *, store=None))]
    fn get_secret(
        &self,
        py: Python<'_>,
        name: &str,
        version: Option<u64>,
        label: Option<&str>,
        store: Option<&str>,
    ) -> PyResult<Secret> {
        let (name, found) = self.found(py, name, version, label, store)?;
        Ok(Secret::new(
            name.as_str().to_string(),
            found.secret.version,
            found.store,
            found.secret.value,
        ))
    }

    /// Writes the value of `name` into `buffer` (a `bytearray` at least as
    /// long as the value, which the caller wipes when done) and returns its
    /// length; no `bytes` copy is made.
    #[pyo3(signature = (name, buffer, version=None, label=None, *, store=None))]
    fn get_into(
        &self,
        py: Python<'_>,
        name: &str,
        buffer: &Bound<'_, PyByteArray>,
        version: Option<u64>,
        label: Option<&str>,
        store: Option<&str>,
    ) -> PyResult<usize> {
        let (name, found) = self.found(py, name, version, label, store)?;
        let value = found.secret.value.expose_secret();
        // SAFETY: the GIL is held and nothing between here and the copy
        // runs Python code, so the bytearray cannot be resized or freed
        // while this slice lives.
        let target = unsafe { buffer.as_bytes_mut() };
        if target.len() < value.len() {
            return Err(invalid(format!(
                "the buffer holds {} bytes and the value of '{name}' has {}",
                target.len(),
                value.len()
            )));
        }
        target[..value.len()].copy_from_slice(value);
        Ok(value.len())
    }

    /// Whether `name` can be read (from `store`, or any store).
    #[pyo3(signature = (name, *, store=None))]
    fn exists(&self, py: Python<'_>, name: &str, store: Option<&str>) -> PyResult<bool> {
        let name = secret_name(name)?;
        self.call(py, |t| {
            let read = match store {
                Some(s) => t.get_from(s, &name, Selector::default()),
                None => t.get(&name, Selector::default()),
            };
            match read {
                Ok(_) => Ok(true),
                Err(Error::NotFound { .. } | Error::Deleted { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    /// Writes a new version of `name` (to the first writable store, or
    /// `store`) and returns its number. `value` is `str` (kept as UTF-8),
    /// `bytes`, `bytearray` or a `tresor.Secret`. With `expect_version` the
    /// write fails with `Conflict` unless that is the current version (0:
    /// the secret must not exist yet).
    #[pyo3(signature = (name, value, reason=None, expect_version=None, store=None, *, metadata=None))]
    #[allow(clippy::too_many_arguments)]
    fn set(
        &self,
        py: Python<'_>,
        name: &str,
        value: &Bound<'_, PyAny>,
        reason: Option<String>,
        expect_version: Option<u64>,
        store: Option<&str>,
        metadata: Option<std::collections::BTreeMap<String, String>>,
    ) -> PyResult<u64> {
        let options = PutOptions {
            expect_version,
            reason,
            metadata: metadata.unwrap_or_default(),
            ..PutOptions::default()
        };
        self.write(py, name, value, options, store)
    }

    /// Writes a new version of `name` and returns its number; with
    /// `stage=True` it is staged as `pending` (made current by `promote`).
    #[pyo3(signature = (name, value, reason=None, *, stage=false, store=None))]
    fn rotate(
        &self,
        py: Python<'_>,
        name: &str,
        value: &Bound<'_, PyAny>,
        reason: Option<String>,
        stage: bool,
        store: Option<&str>,
    ) -> PyResult<u64> {
        let options = PutOptions {
            reason,
            stage,
            ..PutOptions::default()
        };
        self.write(py, name, value, options, store)
    }

    /// Makes the pending version of `name` current; returns its number.
    #[pyo3(signature = (name, reason=None, *, store=None))]
    fn promote(
        &self,
        py: Python<'_>,
        name: &str,
        reason: Option<String>,
        store: Option<&str>,
    ) -> PyResult<u64> {
        let name = secret_name(name)?;
        let (_, version) = self.call(py, |t| {
            t.with_vault(&name, store, "promote", |v| {
                v.promote(&name, reason.as_deref())
            })
        })?;
        Ok(version)
    }

    /// Points `current` at `version` of `name` (history is kept).
    #[pyo3(signature = (name, version, reason=None, *, store=None))]
    fn rollback(
        &self,
        py: Python<'_>,
        name: &str,
        version: u64,
        reason: Option<String>,
        store: Option<&str>,
    ) -> PyResult<()> {
        let name = secret_name(name)?;
        self.call(py, |t| {
            t.with_vault(&name, store, "rollback", |v| {
                v.rollback(&name, version, reason.as_deref())
            })
        })?;
        Ok(())
    }

    /// Soft-deletes `name` (`undelete` restores it); returns the store.
    #[pyo3(signature = (name, *, store=None))]
    fn delete(&self, py: Python<'_>, name: &str, store: Option<&str>) -> PyResult<String> {
        let name = secret_name(name)?;
        self.call(py, |t| t.delete(&name, DeleteMode::Soft, store))
    }

    /// Destroys every version of `name`; returns the store.
    #[pyo3(signature = (name, *, store=None))]
    fn purge(&self, py: Python<'_>, name: &str, store: Option<&str>) -> PyResult<String> {
        let name = secret_name(name)?;
        self.call(py, |t| t.delete(&name, DeleteMode::Purge, store))
    }

    /// Restores a soft-deleted `name`; returns the store.
    #[pyo3(signature = (name, *, store=None))]
    fn undelete(&self, py: Python<'_>, name: &str, store: Option<&str>) -> PyResult<String> {
        let name = secret_name(name)?;
        self.call(py, |t| t.undelete(&name, store))
    }

    /// The secrets under `prefix` across every store (or in `store`), each
    /// once, from the store that answers a read; `deleted=True` lists the
    /// soft-deleted ones instead. Dicts, as `tresor ls --json` prints them.
    #[pyo3(signature = (prefix=None, *, deleted=false, store=None))]
    fn list<'py>(
        &self,
        py: Python<'py>,
        prefix: Option<&str>,
        deleted: bool,
        store: Option<&str>,
    ) -> PyResult<Bound<'py, PyList>> {
        let prefix = prefix.unwrap_or("");
        let listing: Listing = self.call(py, |t| {
            if deleted {
                t.list_deleted(prefix, store)
            } else {
                match store {
                    Some(s) => t.list_in(s, prefix),
                    None => t.list(prefix),
                }
            }
        })?;
        let out = PyList::empty(py);
        for l in &listing.entries {
            let d = PyDict::new(py);
            let s = &l.info;
            d.set_item("name", s.name.as_str())?;
            d.set_item("store", &l.store)?;
            d.set_item("current", s.current)?;
            d.set_item("latest", s.latest)?;
            d.set_item("pending", s.pending)?;
            d.set_item("updated_at", s.updated_at)?;
            d.set_item("deleted_at", s.deleted_at)?;
            d.set_item("metadata", &s.metadata)?;
            d.set_item("shadowed", &l.shadowed)?;
            d.set_item("cached", l.cached)?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// Every version of `name`, oldest first, without values.
    #[pyo3(signature = (name, *, store=None))]
    fn history<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        store: Option<&str>,
    ) -> PyResult<Bound<'py, PyList>> {
        let name = secret_name(name)?;
        let (_, versions): (String, Vec<VersionInfo>) =
            self.call(py, |t| t.history(&name, store))?;
        let out = PyList::empty(py);
        for v in &versions {
            let d = PyDict::new(py);
            d.set_item("version", v.version)?;
            d.set_item("created_at", v.created_at)?;
            d.set_item("actor", &v.actor)?;
            d.set_item("reason", &v.reason)?;
            let labels: Vec<&str> = v.labels.iter().map(|l| l.as_str()).collect();
            d.set_item("labels", labels)?;
            d.set_item("destroyed_at", v.destroyed_at)?;
            d.set_item("len", v.len)?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// The metadata of `name`; with `changes`, first sets each key to its
    /// value (a value of `None` removes the key). Returns the map.
    #[pyo3(signature = (name, changes=None, *, store=None))]
    fn meta(
        &self,
        py: Python<'_>,
        name: &str,
        changes: Option<std::collections::BTreeMap<String, Option<String>>>,
        store: Option<&str>,
    ) -> PyResult<std::collections::BTreeMap<String, String>> {
        let name = secret_name(name)?;
        let changes: Vec<(String, Option<String>)> =
            changes.unwrap_or_default().into_iter().collect();
        let (_, meta) = self.call(py, |t| {
            t.with_vault(&name, store, "metadata", |v| {
                if changes.is_empty() {
                    v.metadata(&name)
                } else {
                    v.update_metadata(&name, &changes)
                }
            })
        })?;
        Ok(meta)
    }

    /// `value` with its reference resolved: `SEC/name` (`#3`, `@previous`,
    /// `SEC/store:name`) is the secret's text, `ENV/VAR` the variable,
    /// `\\SEC/…` the literal without the backslash; any other string comes
    /// back as it is. A missing secret or variable is `NotFound`, never the
    /// reference text handed on as a value.
    fn resolve<'py>(
        &self,
        py: Python<'py>,
        value: Bound<'py, PyString>,
    ) -> PyResult<Bound<'py, PyString>> {
        let text = value.to_cow()?.into_owned();
        let resolved = self.call(py, |t| Resolver::new(t).resolve_at(&text, Place::default()))?;
        Ok(match resolved {
            Some(v) => PyString::new(py, &v),
            None => value,
        })
    }

    /// A copy of `obj` (a config loaded from YAML, TOML or JSON: nested
    /// dicts, lists, tuples) with every string that is a reference
    /// resolved, as `resolve` does; keys and other values are kept. A
    /// missing reference is `NotFound` naming its key path (`db.password`).
    fn render<'py>(&self, py: Python<'py>, obj: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let mut strings = Vec::new();
        crate::refs::collect(&obj, &mut String::new(), &mut strings)?;
        let resolved = self.call(py, |t| {
            let mut resolver = Resolver::new(t);
            strings
                .iter()
                .map(|(path, text)| {
                    let place = Place {
                        file: None,
                        path,
                        line: None,
                    };
                    resolver.resolve_at(text, place)
                })
                .collect::<Result<Vec<_>>>()
        })?;
        crate::refs::rebuild(&obj, &mut resolved.into_iter())
    }

    /// The store names, in the order reads ask them.
    #[getter]
    fn stores(&self) -> Vec<String> {
        self.stores.clone()
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.lock().is_none()
    }

    /// Closes every store (the vault's keys are wiped). Idempotent.
    fn close(&self, py: Python<'_>) {
        py.detach(|| drop(self.lock().take()));
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { " closed" } else { "" };
        format!("<tresor.Tresor stores={:?}{state}>", self.stores)
    }
}

fn secret_name(name: &str) -> PyResult<SecretName> {
    SecretName::new(name).map_err(to_py)
}

fn selector(version: Option<u64>, label: Option<&str>) -> PyResult<Selector> {
    match (version, label) {
        (Some(_), Some(_)) => Err(invalid("give a version or a label, not both")),
        (Some(v), None) => Ok(Selector::Version(v)),
        (None, Some(l)) => Ok(Selector::Label(l.parse::<Label>().map_err(to_py)?)),
        (None, None) => Ok(Selector::default()),
    }
}
