//! `SEC/` and `ENV/` references in loaded configs, resolved by the
//! library's resolver ([`tresor::refs::Resolver`]): strings that are
//! exactly a reference, in nested dicts, lists and tuples.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use zeroize::Zeroizing;

/// The strings of `obj` in traversal order, each with its key path
/// (`db.password`, `hosts[0]`, `["odd key"]`, as the library names them).
pub fn collect(
    obj: &Bound<'_, PyAny>,
    path: &mut String,
    out: &mut Vec<(String, String)>,
) -> PyResult<()> {
    if let Ok(s) = obj.cast::<PyString>() {
        out.push((path.clone(), s.to_cow()?.into_owned()));
    } else if let Ok(d) = obj.cast::<PyDict>() {
        for (k, v) in d.iter() {
            let len = path.len();
            push_key(path, &k);
            collect(&v, path, out)?;
            path.truncate(len);
        }
    } else if let Ok(items) = obj.cast::<PyList>() {
        for (i, v) in items.iter().enumerate() {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            collect(&v, path, out)?;
            path.truncate(len);
        }
    } else if let Ok(items) = obj.cast::<PyTuple>() {
        for (i, v) in items.iter().enumerate() {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            collect(&v, path, out)?;
            path.truncate(len);
        }
    }
    Ok(())
}

/// A copy of `obj` with each string replaced by the next entry of
/// `resolved` that is `Some` (the same traversal as [`collect`]); other
/// values are shared, dict keys kept.
pub fn rebuild<'py>(
    obj: &Bound<'py, PyAny>,
    resolved: &mut std::vec::IntoIter<Option<Zeroizing<String>>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    if obj.cast::<PyString>().is_ok() {
        return Ok(match resolved.next().flatten() {
            Some(v) => PyString::new(py, &v).into_any(),
            None => obj.clone(),
        });
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let out = PyDict::new(py);
        for (k, v) in d.iter() {
            out.set_item(k, rebuild(&v, resolved)?)?;
        }
        return Ok(out.into_any());
    }
    if let Ok(items) = obj.cast::<PyList>() {
        let out = PyList::empty(py);
        for v in items.iter() {
            out.append(rebuild(&v, resolved)?)?;
        }
        return Ok(out.into_any());
    }
    if let Ok(items) = obj.cast::<PyTuple>() {
        let rebuilt = items
            .iter()
            .map(|v| rebuild(&v, resolved))
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(PyTuple::new(py, rebuilt)?.into_any());
    }
    Ok(obj.clone())
}

fn push_key(path: &mut String, key: &Bound<'_, PyAny>) {
    let text = match key.cast::<PyString>() {
        Ok(s) => s.to_cow().map(|c| c.into_owned()).unwrap_or_default(),
        Err(_) => key.str().map(|s| s.to_string()).unwrap_or_default(),
    };
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(&text);
    } else {
        path.push_str(&format!("[{text:?}]"));
    }
}
