"""tresor: encrypted, versioned, audited secrets, in process.

Open the manager as the ``tresor`` command does (``tresor.toml``, the vault,
the unlock chain: key file, ``TRESOR_KEY``, ``TRESOR_PASSWORD``, keychain
slot, unlock session), then read and write secrets::

    import tresor

    with tresor.open() as t:
        t.set("db/password", "s3cret", reason="first deploy")
        password = t.get_text("db/password")

Values come back as ``bytes`` (``get``), ``str`` (``get_text``), a
``tresor.Secret`` that wipes its buffer on ``close()`` (``get_secret``), or
straight into a ``bytearray`` (``get_into``). Errors are ``tresor.Error``
subclasses carrying the CLI's ``exit_code``; no message holds a value.

``tresor.keyring.TresorKeyring`` is a backend for the ``keyring`` package,
registered under its ``keyring.backends`` entry point.
"""

from tresor._native import (
    Conflict,
    Error,
    IntegrityError,
    InvalidInput,
    Locked,
    NotFound,
    Secret,
    Tresor,
    Unavailable,
    __version__,
    open,
)

__all__ = [
    "Conflict",
    "Error",
    "IntegrityError",
    "InvalidInput",
    "Locked",
    "NotFound",
    "Secret",
    "Tresor",
    "Unavailable",
    "__version__",
    "open",
]
