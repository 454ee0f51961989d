//! tresor for Python: the `tresor._native` extension module behind the
//! `tresor` package (python/tresor/).
//!
//! It binds the library's manager ([`tresor::Tresor`]) and opens it as the
//! CLI does, through the library's one unlock chain ([`tresor::Unlock`]):
//! no step is re-implemented here. Each operation releases the GIL for
//! the unlock and for every store call, so other Python threads run while
//! Argon2id or a server works; one mutex per manager makes a `Tresor`
//! safe to share between threads. Errors become `tresor.Error` subclasses
//! chosen by the library's exit-code table ([`tresor::exit`]), with the
//! library's message, which never holds a value.
//!
//! The bindings are behind the `python` cargo feature, which maturin turns
//! on (pyproject.toml). Without it this crate is empty, so a workspace
//! `cargo test` links no libpython.

#[cfg(feature = "python")]
mod bench;
#[cfg(feature = "python")]
mod errors;
#[cfg(feature = "python")]
mod manager;
#[cfg(feature = "python")]
mod refs;
#[cfg(feature = "python")]
mod secret;
#[cfg(feature = "python")]
mod value;

#[cfg(feature = "python")]
use pyo3::prelude::*;

/// The extension module `tresor._native`.
#[cfg(feature = "python")]
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_class::<manager::Tresor>()?;
    m.add_class::<secret::Secret>()?;
    m.add_function(wrap_pyfunction!(manager::open, m)?)?;
    m.add_function(wrap_pyfunction!(bench::populate, m)?)?;
    m.add_function(wrap_pyfunction!(bench::rust_get, m)?)?;
    Ok(())
}
