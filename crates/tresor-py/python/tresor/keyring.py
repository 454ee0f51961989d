"""A backend for the ``keyring`` package that keeps passwords in tresor.

Installed with the package, it is registered under keyring's
``keyring.backends`` entry point, so ``keyring.get_password(service,
username)`` in any program reads and writes tresor once a vault can be
unlocked without asking anyone (a key file, ``TRESOR_KEY``,
``TRESOR_PASSWORD``, a keychain slot or an unlock session). It never
prompts: when nothing unlocks, its ``priority`` raises ``RuntimeError`` and
keyring moves on to the next backend.

Each ``(service, username)`` is the secret ``keyring/<service>/<username>``
when both are plain name segments (``A-Z a-z 0-9 . _ -``, not starting with
``_``), so ``tresor ls keyring/`` shows where keyring's entries are. Any
other text becomes ``_`` followed by its UTF-8 in lowercase base32 (the empty
username is ``_``), and text too long for a name becomes ``_sha256.`` and
its hash; both originals are also kept in the secret's metadata
(``keyring.service``, ``keyring.username``). The mapping is one-to-one and
reversible, so ``get_credential(service, None)`` finds a service's user.

Configure it with keyring properties (``KEYRING_PROPERTY_VAULT``,
``..._CONFIG``, ``..._PROFILE``, ``..._KEY_FILE`` in the environment, or
``keyring.get_keyring().with_properties(vault=...)``); by default it opens
what ``tresor.open()`` opens. ``delete_password`` is a soft delete:
``tresor undelete`` brings the entry back.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
from typing import Optional

from keyring.backend import KeyringBackend
from keyring.compat import properties
from keyring.credentials import SimpleCredential
from keyring.errors import PasswordDeleteError, PasswordSetError

import tresor

#: Where keyring's entries live in tresor.
PREFIX = "keyring"
#: Metadata keys holding the original service and username.
SERVICE_KEY = "keyring.service"
USERNAME_KEY = "keyring.username"
#: The priority keyring sees when the backend is usable: above the desktop
#: keychains (5), since installing this package is the choice to use tresor.
PRIORITY = 9

_PLAIN = re.compile(r"[A-Za-z0-9.\-][A-Za-z0-9._\-]*\Z")
_HASHED = "_sha256."
# "keyring/" + two segments of at most _MAX_SEGMENT bytes + "/" stays within
# tresor's 256-byte limit on names.
_MAX_SEGMENT = 120
_SETTINGS = ("vault", "config", "profile", "key_file")


def name_for(service: str, username: str) -> str:
    """The secret name of a keyring entry."""
    return f"{PREFIX}/{_segment(service)}/{_segment(username)}"


def parse_name(name: str) -> Optional[tuple[str, str]]:
    """``(service, username)`` of a name made by :func:`name_for`; ``None``
    for a name that is not one, or one whose segment was hashed (its
    metadata holds the originals)."""
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != PREFIX:
        return None
    service, username = _unsegment(parts[1]), _unsegment(parts[2])
    if service is None or username is None:
        return None
    return service, username


def _segment(text: str) -> str:
    if _PLAIN.match(text) and text not in (".", "..") and len(text) <= _MAX_SEGMENT:
        return text
    encoded = "_" + base64.b32encode(text.encode("utf-8")).decode("ascii").rstrip("=").lower()
    if len(encoded) <= _MAX_SEGMENT:
        return encoded
    return _HASHED + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _unsegment(segment: str) -> Optional[str]:
    if not segment.startswith("_"):
        return segment
    if segment.startswith(_HASHED):
        return None
    data = segment[1:].upper()
    data += "=" * (-len(data) % 8)
    try:
        return base64.b32decode(data).decode("utf-8")
    except ValueError:
        return None


_handles: dict[tuple[Optional[str], ...], tresor.Tresor] = {}
_handles_lock = threading.Lock()


def _open(settings: tuple[Optional[str], ...]) -> tresor.Tresor:
    """One unlocked manager per setting, shared by every backend instance
    of this process (a password unlock runs Argon2id once)."""
    with _handles_lock:
        t = _handles.get(settings)
        if t is None or t.closed:
            vault, config, profile, key_file = settings
            t = tresor.open(
                config=config, profile=profile, vault=vault, key_file=key_file, prompt=False
            )
            if t.stores != ["vault"]:
                # A config's stores open on first use: one read now, so a
                # store that cannot be unlocked or reached shows here.
                t.exists(f"{PREFIX}/_")
            _handles[settings] = t
        return t


def _env_settings() -> tuple[Optional[str], ...]:
    return tuple(os.environ.get(f"KEYRING_PROPERTY_{s.upper()}") or None for s in _SETTINGS)


class TresorKeyring(KeyringBackend):
    """Passwords in tresor's encrypted, versioned, audited vault."""

    #: keyring properties (``KEYRING_PROPERTY_VAULT`` etc.): the vault file,
    #: tresor.toml, its profile, a key file. ``None``: as ``tresor.open()``.
    vault: Optional[str] = None
    config: Optional[str] = None
    profile: Optional[str] = None
    key_file: Optional[str] = None

    @properties.classproperty
    def priority(cls) -> float:
        try:
            _open(_env_settings())
        except tresor.Error as e:
            raise RuntimeError(f"tresor cannot be used: {e}") from None
        return PRIORITY

    def _tresor(self) -> tresor.Tresor:
        return _open(tuple(getattr(self, s) for s in _SETTINGS))

    def get_password(self, service: str, username: str) -> Optional[str]:
        try:
            return self._tresor().get_text(name_for(service, username))
        except tresor.NotFound:
            return None

    def set_password(self, service: str, username: str, password: str) -> None:
        meta = {SERVICE_KEY: service, USERNAME_KEY: username}
        try:
            self._tresor().set(name_for(service, username), password, metadata=meta)
        except tresor.Error as e:
            raise PasswordSetError(f"tresor: {e}") from e

    def delete_password(self, service: str, username: str) -> None:
        try:
            self._tresor().delete(name_for(service, username))
        except tresor.NotFound:
            raise PasswordDeleteError("Password not found") from None

    def get_credential(self, service: str, username: Optional[str]) -> Optional[SimpleCredential]:
        if username is not None:
            password = self.get_password(service, username)
            return None if password is None else SimpleCredential(username, password)
        t = self._tresor()
        for entry in t.list(f"{PREFIX}/{_segment(service)}/"):
            parsed = parse_name(entry["name"])
            user = parsed[1] if parsed else entry["metadata"].get(USERNAME_KEY)
            if user is None:
                continue
            try:
                return SimpleCredential(user, t.get_text(entry["name"]))
            except tresor.NotFound:
                continue
        return None
