"""Type stubs of the extension module (re-exported by ``tresor``)."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Literal, Mapping, Optional, TypedDict, TypeVar, Union

__version__: str

_Path = Union[str, "os.PathLike[str]"]
_Value = Union[str, bytes, bytearray, "Secret"]
_T = TypeVar("_T")
_Label = Literal["current", "previous", "pending"]

class Error(Exception):
    """Base class of every tresor error; no message holds a secret value."""

    #: The exit code the tresor CLI gives the same error.
    exit_code: int
    #: The library's finer kind (``not_found``, ``no_credential``, ``auth``, ...).
    kind: Optional[str]

class NotFound(Error):
    """No such secret, version or label. exit_code 1."""

class InvalidInput(Error):
    """A name, value, option, metadata or config tresor refuses. exit_code 2."""

class Locked(Error):
    """No credential found, or a wrong password or key. exit_code 3."""

class IntegrityError(Error):
    """Tampering or corruption found. exit_code 4."""

class Conflict(Error):
    """A check-and-set write found another version. exit_code 5."""

class Unavailable(Error):
    """No vault file, an I/O error, a lock timeout, a server down. exit_code 6."""

class Listed(TypedDict):
    """One entry of ``Tresor.list`` (as ``tresor ls --json`` prints it)."""

    name: str
    store: str
    current: int
    latest: int
    pending: Optional[int]
    #: Milliseconds since the Unix epoch (UTC).
    updated_at: int
    deleted_at: Optional[int]
    metadata: dict[str, str]
    shadowed: list[str]
    cached: bool

class Version(TypedDict):
    """One entry of ``Tresor.history`` (never a value)."""

    version: int
    created_at: int
    actor: str
    reason: Optional[str]
    labels: list[str]
    destroyed_at: Optional[int]
    len: int

class Secret:
    """A value kept in Rust memory and wiped on ``close()`` / ``__exit__``;
    its ``repr`` never shows it, and it cannot be pickled."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def store(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def reveal(self) -> bytes:
        """The value as ``bytes`` (a copy Python cannot wipe)."""
    def reveal_text(self) -> str:
        """The value as ``str``; ``InvalidInput`` if it is not UTF-8."""
    def close(self) -> None:
        """Wipes the value now (idempotent)."""
    def __enter__(self) -> Secret: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    def __len__(self) -> int: ...

class Tresor:
    """Every configured store behind one API; safe to share between threads.
    Each call releases the GIL while it unlocks or talks to a store."""

    def __init__(
        self,
        config: Optional[_Path] = None,
        profile: Optional[str] = None,
        *,
        prompt: bool = False,
        vault: Optional[_Path] = None,
        key_file: Optional[_Path] = None,
        offline: bool = False,
    ) -> None: ...
    @property
    def stores(self) -> list[str]:
        """The store names, in the order reads ask them."""
    @property
    def closed(self) -> bool: ...
    def get(
        self,
        name: str,
        version: Optional[int] = None,
        label: Optional[_Label] = None,
        *,
        store: Optional[str] = None,
    ) -> bytes: ...
    def get_text(
        self,
        name: str,
        version: Optional[int] = None,
        label: Optional[_Label] = None,
        *,
        store: Optional[str] = None,
    ) -> str: ...
    def get_secret(
        self,
        name: str,
        version: Optional[int] = None,
        label: Optional[_Label] = None,
        *,
        store: Optional[str] = None,
    ) -> Secret: ...
    def get_into(
        self,
        name: str,
        buffer: bytearray,
        version: Optional[int] = None,
        label: Optional[_Label] = None,
        *,
        store: Optional[str] = None,
    ) -> int: ...
    def exists(self, name: str, *, store: Optional[str] = None) -> bool: ...
    def set(
        self,
        name: str,
        value: _Value,
        reason: Optional[str] = None,
        expect_version: Optional[int] = None,
        store: Optional[str] = None,
        *,
        metadata: Optional[Mapping[str, str]] = None,
    ) -> int: ...
    def rotate(
        self,
        name: str,
        value: _Value,
        reason: Optional[str] = None,
        *,
        stage: bool = False,
        store: Optional[str] = None,
    ) -> int: ...
    def promote(
        self, name: str, reason: Optional[str] = None, *, store: Optional[str] = None
    ) -> int: ...
    def rollback(
        self,
        name: str,
        version: int,
        reason: Optional[str] = None,
        *,
        store: Optional[str] = None,
    ) -> None: ...
    def delete(self, name: str, *, store: Optional[str] = None) -> str: ...
    def purge(self, name: str, *, store: Optional[str] = None) -> str: ...
    def undelete(self, name: str, *, store: Optional[str] = None) -> str: ...
    def list(
        self,
        prefix: Optional[str] = None,
        *,
        deleted: bool = False,
        store: Optional[str] = None,
    ) -> list[Listed]: ...
    def history(self, name: str, *, store: Optional[str] = None) -> list[Version]: ...
    def meta(
        self,
        name: str,
        changes: Optional[Mapping[str, Optional[str]]] = None,
        *,
        store: Optional[str] = None,
    ) -> dict[str, str]: ...
    def resolve(self, value: str) -> str:
        """The value a ``SEC/``/``ENV/`` reference names; other text unchanged."""
    def render(self, obj: _T) -> _T:
        """A copy of a loaded config with every reference string resolved."""
    def close(self) -> None: ...
    def __enter__(self) -> Tresor: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

def open(
    config: Optional[_Path] = None,
    profile: Optional[str] = None,
    *,
    prompt: bool = False,
    vault: Optional[_Path] = None,
    key_file: Optional[_Path] = None,
    offline: bool = False,
) -> Tresor:
    """Opens the manager as the tresor CLI does (never prompting unless
    ``prompt=True`` on a terminal)."""
