//! Values from Python into the library's zeroizing type.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};
use zeroize::Zeroizing;

use tresor::SecretValue;

use crate::secret::Secret;

/// Copies a `str` (as UTF-8), `bytes`, `bytearray` or `tresor.Secret` into a
/// [`SecretValue`]. Python's own object is left as it is: the caller wipes a
/// `bytearray` it wants gone. A wrong type is a `TypeError` naming the type,
/// never the value.
pub fn secret_value(value: &Bound<'_, PyAny>) -> PyResult<SecretValue> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(SecretValue::copy_from(b.as_bytes()));
    }
    if let Ok(b) = value.cast::<PyByteArray>() {
        return Ok(SecretValue::from(b.to_vec()));
    }
    if let Ok(s) = value.cast::<PyString>() {
        let text = Zeroizing::new(s.to_cow()?.into_owned());
        return Ok(SecretValue::copy_from(text.as_bytes()));
    }
    if let Ok(s) = value.cast::<Secret>() {
        return s.get().copy();
    }
    let type_name = value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "this type".into());
    Err(PyTypeError::new_err(format!(
        "a secret value is str, bytes, bytearray or tresor.Secret, not {type_name}"
    )))
}
