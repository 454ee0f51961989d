//! `tresor.Error` and its subclasses, one per exit code of the CLI, chosen
//! by the library's table ([`tresor::exit::code`]) so the two never
//! disagree.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

use tresor::exit::ExitCode;

create_exception!(
    tresor,
    Error,
    PyException,
    "Base class of every tresor error. `exit_code` is the exit code the \
     tresor CLI gives the same error; `kind` the library's finer kind \
     (`not_found`, `no_credential`, ...). No message holds a secret value."
);
create_exception!(
    tresor,
    NotFound,
    Error,
    "No such secret, version or label (a soft-deleted secret is not found). exit_code 1."
);
create_exception!(
    tresor,
    InvalidInput,
    Error,
    "Bad input: a name, value, option, metadata or config that tresor refuses. exit_code 2."
);
create_exception!(
    tresor,
    Locked,
    Error,
    "The vault is locked (no credential found) or the password or key is wrong. exit_code 3."
);
create_exception!(
    tresor,
    IntegrityError,
    Error,
    "An integrity check failed: tampering, corruption, a broken audit chain. exit_code 4."
);
create_exception!(
    tresor,
    Conflict,
    Error,
    "A check-and-set write found another version than it expected. exit_code 5."
);
create_exception!(
    tresor,
    Unavailable,
    Error,
    "A store cannot be used now: no vault file, I/O error, lock timeout, server down. \
     exit_code 6."
);

/// Adds the exception classes to the module, each with its `exit_code`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let classes = [
        ("Error", py.get_type::<Error>(), ExitCode::Usage),
        ("NotFound", py.get_type::<NotFound>(), ExitCode::NotFound),
        (
            "InvalidInput",
            py.get_type::<InvalidInput>(),
            ExitCode::Usage,
        ),
        ("Locked", py.get_type::<Locked>(), ExitCode::Locked),
        (
            "IntegrityError",
            py.get_type::<IntegrityError>(),
            ExitCode::Integrity,
        ),
        ("Conflict", py.get_type::<Conflict>(), ExitCode::Conflict),
        (
            "Unavailable",
            py.get_type::<Unavailable>(),
            ExitCode::Unavailable,
        ),
    ];
    for (name, class, code) in classes {
        class.setattr("exit_code", code as u8)?;
        class.setattr("kind", py.None())?;
        m.add(name, class)?;
    }
    Ok(())
}

/// The Python exception for a library error: the class of its exit code,
/// the library's message (which names stores, secrets and paths, never a
/// value), and `kind` / `exit_code` on the instance.
pub fn to_py(e: tresor::Error) -> PyErr {
    let code = tresor::exit::code(&e);
    let message = e.to_string();
    let err = match code {
        ExitCode::NotFound => NotFound::new_err(message),
        ExitCode::Locked => Locked::new_err(message),
        ExitCode::Integrity => IntegrityError::new_err(message),
        ExitCode::Conflict => Conflict::new_err(message),
        ExitCode::Unavailable => Unavailable::new_err(message),
        ExitCode::Usage | ExitCode::Ok => InvalidInput::new_err(message),
    };
    Python::attach(|py| {
        let value = err.value(py);
        // Setting attributes on a fresh exception object cannot fail short
        // of memory exhaustion; the error stays usable without them.
        let _ = value.setattr("kind", e.kind());
        let _ = value.setattr("exit_code", code as u8);
    });
    err
}

/// An `InvalidInput` made here (argument checks before the library).
pub fn invalid(message: impl Into<String>) -> PyErr {
    to_py(tresor::Error::Validation(message.into()))
}
