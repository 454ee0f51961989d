"""Seed 001's encrypted-file credential store, re-implemented for benchmarking.

This is a faithful Python re-implementation of `EncryptedFileStorage` as
described in the project's seed 001, "Encrypted File Backend (Fallback)" (a
requirements text that is not part of this repository): the design tresor's
users have today and that tresor replaces.

What it does, exactly as the seed describes it:
  * a Fernet key in `<config_dir>/.encryption_key` (mode 0600), created on
    first use;
  * all credentials in ONE Fernet-encrypted JSON object
    `<config_dir>/credentials.enc`, keyed "provider.key";
  * every read (`retrieve`, `exists`) re-reads the key file, reads and
    decrypts the whole file and parses the whole JSON: O(n) per lookup;
  * every write (`store`, `delete`) does the same, then re-serialises,
    re-encrypts and rewrites the whole file: O(n) per write, O(n^2) to fill;
  * a decryption failure is swallowed and looks like an empty store (a flaw
    the seed has and tresor must not copy; kept here for fidelity).

Needs the `cryptography` package (installed in the bench venv by
scripts/bench-compare). Used by scripts/bench_compare_inproc.py; never prints a
secret value.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.fernet import Fernet


class EncryptedFileStorage:
    """Encrypted file-based credential storage (seed 001, section 3)."""

    def __init__(self, config_dir: Path | None = None):
        self.config_dir = config_dir or Path.home() / ".config" / "model-forge"
        self.key_file = self.config_dir / ".encryption_key"
        self.credentials_file = self.config_dir / "credentials.enc"
        self._ensure_key_exists()

    def _ensure_key_exists(self) -> None:
        """Generate encryption key if it doesn't exist."""
        if not self.key_file.exists():
            self.config_dir.mkdir(parents=True, exist_ok=True)
            key = Fernet.generate_key()
            self.key_file.write_bytes(key)
            self.key_file.chmod(0o600)

    def _get_cipher(self) -> Fernet:
        """Get Fernet cipher instance (the key file is read on every call)."""
        key = self.key_file.read_bytes()
        return Fernet(key)

    def store(self, provider: str, key: str, value: str) -> None:
        """Store encrypted credentials: load all, add one, rewrite all."""
        credentials = self._load_credentials()
        credentials[f"{provider}.{key}"] = value
        self._save_credentials(credentials)

    def retrieve(self, provider: str, key: str) -> str | None:
        """Retrieve decrypted credentials: decrypt and parse the whole file."""
        credentials = self._load_credentials()
        return credentials.get(f"{provider}.{key}")

    def delete(self, provider: str, key: str) -> None:
        """Delete credentials."""
        credentials = self._load_credentials()
        credentials.pop(f"{provider}.{key}", None)
        self._save_credentials(credentials)

    def exists(self, provider: str, key: str) -> bool:
        """Check if credential exists."""
        return self.retrieve(provider, key) is not None

    def _load_credentials(self) -> dict[str, str]:
        """Load and decrypt credentials."""
        if not self.credentials_file.exists():
            return {}

        cipher = self._get_cipher()
        encrypted_data = self.credentials_file.read_bytes()
        try:
            decrypted_data = cipher.decrypt(encrypted_data)
            return json.loads(decrypted_data.decode())
        except Exception:
            # The seed swallows every error here (wrong key, corrupt file) and
            # returns an empty store.
            return {}

    def _save_credentials(self, credentials: dict[str, str]) -> None:
        """Encrypt and save credentials (the whole file, every time)."""
        cipher = self._get_cipher()
        data = json.dumps(credentials).encode()
        encrypted_data = cipher.encrypt(data)
        self.credentials_file.write_bytes(encrypted_data)
        self.credentials_file.chmod(0o600)
