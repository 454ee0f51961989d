"""tresor.keyring.TresorKeyring: keyring's own BackendBasicTests, the name
mapping, registration, viability, and use through keyring's public API."""

from __future__ import annotations

import sys

import keyring
import keyring.backend
import keyring.errors
import pytest
from keyring.testing.backend import UNICODE_CHARS, BackendBasicTests

import tresor
import tresor.keyring as tk
from conftest import run_cli


class TestTresorKeyring(BackendBasicTests):
    """keyring's own suite, each test on a fresh vault."""

    def init_keyring(self):
        return tk.TresorKeyring()

    @pytest.fixture(autouse=True)
    def _fresh_vault(self, _init_properties, vault):
        # Named after the base class's autouse fixture so this runs after it;
        # the vault outlives cleanup(), which deletes what a test created.
        self.keyring.vault = str(vault.path)
        self.keyring.key_file = str(vault.key_file)


# ---- the name mapping -------------------------------------------------------


def test_plain_names_are_readable():
    assert tk.name_for("github.com", "alice") == "keyring/github.com/alice"
    assert tk.parse_name("keyring/github.com/alice") == ("github.com", "alice")


@pytest.mark.parametrize(
    "service,username",
    [
        ("svc", ""),
        ("", "user"),
        ("with space", "a/b"),
        (".", ".."),
        ("_leading", "_"),
        ("x" * 200, "y"),
        (UNICODE_CHARS[:40], "ü"),
        ("tab\tnew\nline", "\0nul"),
        ("https://example.com/login?next=/home", "alice@example.com"),
    ],
)
def test_mapping_is_valid_and_reversible(service, username):
    name = tk.name_for(service, username)
    assert len(name.encode()) <= 256
    # A valid tresor name: the library accepts it (InvalidName otherwise).
    tresor_name_ok(name)
    parsed = tk.parse_name(name)
    if parsed is not None:
        assert parsed == (service, username)
    else:
        assert tk._HASHED in name


def test_mapping_is_one_to_one():
    texts = ["", "_", "a", "A", "_a", "a_", ".", "..", "...", "a b", "_me", "me", "x" * 121,
             "x" * 120, "é", "/", "_mu", "MU"]
    names = {tk.name_for(s, u) for s in texts for u in texts}
    assert len(names) == len(texts) ** 2


def tresor_name_ok(name):
    # Reading a valid name from nowhere is NotFound/Unavailable, never InvalidInput.
    with pytest.raises(tresor.Error) as e:
        tresor.open(vault="/nonexistent/vault.db").get(name)
    assert not isinstance(e.value, tresor.InvalidInput), e.value


def test_long_names_keep_their_originals_in_metadata(vault):
    kr = tk.TresorKeyring()
    kr.vault, kr.key_file = str(vault.path), str(vault.key_file)
    service = "s" * 300
    kr.set_password(service, "bob", "pw")
    assert kr.get_password(service, "bob") == "pw"
    cred = kr.get_credential(service, None)
    assert (cred.username, cred.password) == ("bob", "pw")
    with vault.open() as t:
        (entry,) = t.list("keyring/")
        assert entry["metadata"] == {tk.SERVICE_KEY: service, tk.USERNAME_KEY: "bob"}


# ---- registration and viability ------------------------------------------------


def entry_points_of(group):
    if sys.version_info >= (3, 10):
        from importlib.metadata import entry_points

        return entry_points(group=group)
    from importlib_metadata import entry_points  # keyring's own backport on 3.9

    return entry_points(group=group)


def test_entry_point_is_registered():
    assert "tresor.keyring" in {ep.value for ep in entry_points_of("keyring.backends")}


def test_unusable_without_a_vault_or_credential(vault, monkeypatch):
    tk._handles.clear()
    with pytest.raises(RuntimeError, match="tresor cannot be used"):
        tk.TresorKeyring.priority  # noqa: B018
    assert not tk.TresorKeyring.viable
    # A vault but no credential: still unusable, and nothing prompts.
    monkeypatch.setenv("KEYRING_PROPERTY_VAULT", str(vault.path))
    with pytest.raises(RuntimeError, match="no credential"):
        tk.TresorKeyring.priority  # noqa: B018
    monkeypatch.setenv("KEYRING_PROPERTY_KEY_FILE", str(vault.key_file))
    assert tk.TresorKeyring.priority == tk.PRIORITY
    tk._handles.clear()


def test_through_keyrings_public_api(vault, monkeypatch):
    tk._handles.clear()
    monkeypatch.setenv("TRESOR_VAULT", str(vault.path))
    monkeypatch.setenv("TRESOR_KEY_FILE", str(vault.key_file))
    # Chosen as any application's keyring chooses: the highest priority, or
    # first in the chain when several backends are viable.
    keyring.core.init_backend()
    chosen = keyring.get_keyring()
    first = chosen.backends[0] if hasattr(chosen, "backends") else chosen
    assert isinstance(first, tk.TresorKeyring), chosen
    try:
        keyring.set_password("github.com", "alice", "s3cret-token")
        keyring.set_password("my service", "bob@example.com", "pw2")
        assert keyring.get_password("github.com", "alice") == "s3cret-token"
        assert keyring.get_credential("github.com", None).username == "alice"
        assert keyring.get_credential("my service", None).username == "bob@example.com"
        listed = run_cli("--vault", str(vault.path), "--key-file", str(vault.key_file), "ls", "keyring/")
        assert "keyring/github.com/alice" in listed
        assert "s3cret-token" not in listed
        keyring.delete_password("github.com", "alice")
        assert keyring.get_password("github.com", "alice") is None
        with pytest.raises(keyring.errors.PasswordDeleteError):
            keyring.delete_password("github.com", "alice")
        # A soft delete: tresor can bring it back.
        run_cli("--vault", str(vault.path), "--key-file", str(vault.key_file), "undelete",
                "keyring/github.com/alice")
        assert keyring.get_password("github.com", "alice") == "s3cret-token"
    finally:
        tk._handles.clear()
        keyring.core.init_backend()


def test_selected_by_environment_variable(vault, monkeypatch):
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tresor.keyring.TresorKeyring")
    monkeypatch.setenv("KEYRING_PROPERTY_VAULT", str(vault.path))
    monkeypatch.setenv("KEYRING_PROPERTY_KEY_FILE", str(vault.key_file))
    kr = keyring.core.load_env()
    assert isinstance(kr, tk.TresorKeyring) and kr.vault == str(vault.path)
    kr.set_password("svc", "u", "p")
    assert kr.get_password("svc", "u") == "p"
    tk._handles.clear()
