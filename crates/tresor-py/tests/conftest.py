"""Shared fixtures: a clean environment (no developer vault, config or
credential), the tresor CLI to create vaults with, and fresh vaults."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CREDENTIAL_VARS = (
    "TRESOR_VAULT",
    "TRESOR_CONFIG",
    "TRESOR_PROFILE",
    "TRESOR_KEY",
    "TRESOR_KEY_FILE",
    "TRESOR_PASSWORD",
    "KEYSTORE_PASSWORD",
    "SECRETS_STORE_PASSWORD",
    "TRESOR_RECOVERY_KEY",
    "TRESOR_PKCS11_PIN",
    "TRESOR_LOCK_TIMEOUT",
    "PYTHON_KEYRING_BACKEND",
)


def tresor_bin() -> str:
    """The tresor CLI: TRESOR_BIN, else the cargo target folder's debug build."""
    explicit = os.environ.get("TRESOR_BIN")
    if explicit:
        return explicit
    root = Path(__file__).resolve().parents[3]
    target = Path(os.environ.get("CARGO_TARGET_DIR") or root / "target")
    for candidate in (target / "debug" / "tresor", target / "release" / "tresor"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("tresor")
    if found:
        return found
    pytest.fail("the tresor CLI is needed to create test vaults: build it (cargo build -p tresor-cli) or set TRESOR_BIN")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path_factory):
    """No test sees the developer's own vault, config or credentials."""
    for var in CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)
    for var in list(os.environ):
        if var.startswith("KEYRING_PROPERTY_"):
            monkeypatch.delenv(var, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.chdir(home)


def run_cli(*args: str, env: dict | None = None, input: bytes | None = None) -> str:
    full_env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
    full_env.update(env or {})
    done = subprocess.run(
        [tresor_bin(), *args], env=full_env, input=input, capture_output=True, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"tresor {' '.join(args)} failed: {done.stderr.decode()}")
    return done.stdout.decode()


class Vault:
    """A fresh vault and the key file that opens it."""

    def __init__(self, path: Path, key_file: Path):
        self.path = path
        self.key_file = key_file

    def open(self, **kw):
        import tresor

        return tresor.open(vault=str(self.path), key_file=str(self.key_file), **kw)


@pytest.fixture
def vault(tmp_path) -> Vault:
    path, key = tmp_path / "vault.db", tmp_path / "key"
    run_cli("--vault", str(path), "--key-file", str(key), "init", "--no-recovery", "-q")
    return Vault(path, key)


@pytest.fixture
def password_vault(tmp_path) -> Path:
    """A vault with one password slot (password 'correct horse')."""
    path = tmp_path / "pw-vault.db"
    run_cli(
        "--vault", str(path), "init", "--password", "--no-recovery", "-q",
        env={"TRESOR_PASSWORD": "correct horse"},
    )
    return path
