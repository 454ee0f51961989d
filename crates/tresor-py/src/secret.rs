//! `tresor.Secret`: a value held in Rust memory that is wiped on `close()`
//! (or at the end of a `with` block, or when the object is collected), and
//! whose `repr` never shows it.

use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use tresor::SecretValue;

use crate::errors::invalid;

/// A secret value kept outside Python's heap. `reveal()` copies it into a
/// `bytes` object (which Python cannot wipe); `close()` wipes the original.
#[pyclass(module = "tresor", frozen)]
pub struct Secret {
    name: String,
    version: u64,
    store: String,
    value: Mutex<Option<SecretValue>>,
}

impl Secret {
    /// A secret read from `store`.
    pub fn new(name: String, version: u64, store: String, value: SecretValue) -> Self {
        Self {
            name,
            version,
            store,
            value: Mutex::new(Some(value)),
        }
    }

    /// A copy of the value, for writing it elsewhere.
    pub fn copy(&self) -> PyResult<SecretValue> {
        self.with(|v| Ok(v.clone()))
    }

    fn with<T>(&self, f: impl FnOnce(&SecretValue) -> PyResult<T>) -> PyResult<T> {
        match &*self.lock() {
            Some(v) => f(v),
            None => Err(invalid(format!(
                "the tresor.Secret of '{}' is closed: its value was wiped",
                self.name
            ))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<SecretValue>> {
        // A panic while the lock was held cannot leave the Option half
        // written: take the guard anyway.
        self.value.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl Secret {
    /// The secret's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The version read.
    #[getter]
    fn version(&self) -> u64 {
        self.version
    }

    /// The store that answered.
    #[getter]
    fn store(&self) -> &str {
        &self.store
    }

    /// Whether the value was wiped.
    #[getter]
    fn closed(&self) -> bool {
        self.lock().is_none()
    }

    /// The value as `bytes` (a copy Python cannot wipe).
    fn reveal<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.with(|v| Ok(PyBytes::new(py, v.expose_secret())))
    }

    /// The value as `str`; `InvalidInput` when it is not UTF-8 text.
    fn reveal_text<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        self.with(|v| match v.expose_text() {
            Some(text) => Ok(PyString::new(py, text)),
            None => Err(invalid(format!(
                "the value of '{}' is not UTF-8 text; use reveal() for bytes",
                self.name
            ))),
        })
    }

    /// Wipes the value now. Idempotent.
    fn close(&self) {
        // Dropping the SecretValue zeroizes its buffer.
        drop(self.lock().take());
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }

    fn __len__(&self) -> PyResult<usize> {
        self.with(|v| Ok(v.len()))
    }

    fn __bool__(&self) -> bool {
        true
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() {
            "closed"
        } else {
            "[redacted]"
        };
        format!(
            "<tresor.Secret '{}' version {} from '{}' {state}>",
            self.name, self.version, self.store
        )
    }

    fn __str__(&self) -> String {
        self.__repr__()
    }

    /// Refused: a pickle would write the value out in the clear.
    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(
            "a tresor.Secret cannot be pickled (it would write the value in the clear)",
        ))
    }
}
