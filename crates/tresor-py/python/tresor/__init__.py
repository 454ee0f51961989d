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

``tresor.resolve(value)`` and ``tresor.render(config)`` resolve ``SEC/`` and
``ENV/`` references in a loaded config, as dtPyAppFramework's ``Settings``
did, except that a missing reference raises ``NotFound`` naming its key path.

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



_default = None


def _default_tresor() -> Tresor:
    """The manager ``resolve`` and ``render`` use when none is given: one
    ``tresor.open()`` per process, opened on first use."""
    global _default
    if _default is None or _default.closed:
        _default = open()
    return _default


def resolve(value, *, tresor=None):
    """``value`` with its reference resolved: ``SEC/name`` (``#3``,
    ``@previous``, ``SEC/store:name``) becomes the secret's text, ``ENV/VAR``
    the variable, ``\\SEC/...`` the literal without the backslash. Any other
    string, and any non-string, comes back unchanged. Uses ``tresor`` (a
    ``Tresor``), else one ``tresor.open()`` kept for the process."""
    if not isinstance(value, str):
        return value
    return (tresor or _default_tresor()).resolve(value)


def render(obj, *, tresor=None):
    """A copy of ``obj`` (a config loaded from YAML, TOML or JSON: nested
    dicts, lists and tuples) with every string that is a reference resolved
    as ``resolve`` does. A missing secret or variable raises ``NotFound``
    naming the key path (``database.password``) and the reference."""
    return (tresor or _default_tresor()).render(obj)


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
    "render",
    "resolve",
]
