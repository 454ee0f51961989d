"""tresor.resolve / tresor.render over the library's reference resolver,
and a dtPyAppFramework-style app (examples/dtpy-app) running on tresor."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tresor
from conftest import run_cli, tresor_bin

CANARY = "canary-refs-5be1-never-print-me"


@pytest.fixture
def t(vault, monkeypatch):
    monkeypatch.setenv("TRESOR_VAULT", str(vault.path))
    monkeypatch.setenv("TRESOR_KEY_FILE", str(vault.key_file))
    with vault.open() as t:
        t.set("db/password", "old-pw")
        t.set("db/password", CANARY)
        t.set("bin/blob", b"\xff\x00")
        yield t


def test_resolve_each_reference_form(t, monkeypatch):
    monkeypatch.setenv("REFS_TEST_VAR", "from-env")
    assert tresor.resolve("SEC/db/password", tresor=t) == CANARY
    assert tresor.resolve("SEC/db/password#1", tresor=t) == "old-pw"
    assert tresor.resolve("SEC/db/password@previous", tresor=t) == "old-pw"
    assert tresor.resolve("SEC/vault:db/password", tresor=t) == CANARY
    assert tresor.resolve("SEC/ db/password ", tresor=t) == CANARY
    assert tresor.resolve("ENV/REFS_TEST_VAR", tresor=t) == "from-env"
    assert tresor.resolve("\\SEC/db/password", tresor=t) == "SEC/db/password"
    assert tresor.resolve("plain SEC/db/password", tresor=t) == "plain SEC/db/password"
    assert tresor.resolve(42, tresor=t) == 42


def test_resolve_uses_one_default_manager(t):
    # TRESOR_VAULT / TRESOR_KEY_FILE are set: tresor.open() finds the vault.
    tresor._default = None
    try:
        assert tresor.resolve("SEC/db/password") == CANARY
        first = tresor._default
        assert tresor.render({"a": "SEC/db/password"}) == {"a": CANARY}
        assert tresor._default is first
    finally:
        tresor._default.close()
        tresor._default = None


def test_missing_references_raise_not_found(t):
    with pytest.raises(tresor.NotFound) as e:
        tresor.resolve("SEC/db/missing", tresor=t)
    assert "SEC/db/missing" in str(e.value) and e.value.exit_code == 1
    with pytest.raises(tresor.NotFound) as e:
        tresor.resolve("ENV/REFS_TEST_UNSET_VAR", tresor=t)
    assert "REFS_TEST_UNSET_VAR" in str(e.value)
    with pytest.raises(tresor.InvalidInput) as e:
        tresor.resolve("SEC/bin/blob", tresor=t)
    assert CANARY not in str(e.value)


def test_render_nested_config(t, monkeypatch):
    monkeypatch.setenv("REFS_TEST_PORT", "5432")
    config = {
        "db": {"password": "SEC/db/password", "port": "ENV/REFS_TEST_PORT", "ssl": True},
        "hosts": ["a", "SEC/db/password#1", ("SEC/db/password", 7)],
        "SEC/db/password": "keys are left alone",
        "count": 3,
        "nothing": None,
    }
    before = copy.deepcopy(config)
    out = t.render(config)
    assert out == {
        "db": {"password": CANARY, "port": "5432", "ssl": True},
        "hosts": ["a", "old-pw", (CANARY, 7)],
        "SEC/db/password": "keys are left alone",
        "count": 3,
        "nothing": None,
    }
    assert config == before  # the input is not changed


def test_render_names_the_key_path_of_a_missing_reference(t):
    config = {"database": {"password": "SEC/db/password"}, "apis": [{"key": "SEC/api/missing"}]}
    with pytest.raises(tresor.NotFound) as e:
        t.render(config)
    text = str(e.value)
    assert "apis[0].key" in text and "SEC/api/missing" in text
    assert CANARY not in text


APP = Path(__file__).resolve().parents[1] / "examples" / "dtpy-app"


def run_app(vault, extra_env=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRESOR_")}
    env.update(TRESOR_VAULT=str(vault.path), TRESOR_KEY_FILE=str(vault.key_file))
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, str(APP / "app.py"), str(APP / "config.yaml")],
        env=env, capture_output=True, text=True,
    )


def test_the_dtpy_style_app_runs_on_tresor(vault):
    import yaml  # noqa: F401  (scripts/test-python installs PyYAML; fails loudly without)
    # The app's keystore goes in with `tresor set` (see docs/python.md).
    secrets = {
        "inventory/db_password": "db-pw-" + CANARY,
        "payments/api_key": "pay-key-" + CANARY,
    }
    for name, value in secrets.items():
        run_cli("--vault", str(vault.path), "--key-file", str(vault.key_file), "set", name,
                input=value.encode())
    # One secret is still missing: the app stops, naming where.
    done = run_app(vault, {"INVENTORY_WORKERS": "4"})
    assert done.returncode == 1, done.stderr
    assert "apis[1].key" in done.stderr and "maps/api_key" in done.stderr
    run_cli("--vault", str(vault.path), "--key-file", str(vault.key_file), "set", "maps/api_key",
            input=b"maps-key")
    done = run_app(vault, {"INVENTORY_WORKERS": "4"})
    assert done.returncode == 0, done.stderr
    assert f"password: {len(secrets['inventory/db_password'])} chars" in done.stdout
    assert "workers: 4" in done.stdout
    assert "note: SEC/this/is/not/a/reference" in done.stdout
    assert CANARY not in done.stdout + done.stderr


FRAMEWORK = Path(__file__).resolve().parents[2] / "tresor-stores" / "tests" / "dtpy" / "framework.py"


def test_the_seed_004_app_moves_from_its_framework_keystore_with_tresor_import_dtpy(vault, tmp_path):
    """Seed 004's whole story: the real dtPyAppFramework (PyPI 4.4.1, the venv
    of scripts/python-venv) makes the app's keystore; `tresor import dtpy`
    takes it in; the unchanged config.yaml then renders on tresor."""
    framework_python = os.environ.get("TRESOR_TEST_PYTHON")
    if not framework_python:
        pytest.fail('TRESOR_TEST_PYTHON is not set: run `eval "$(scripts/python-venv)"` first '
                    "(the venv with dtpyappframework 4.4.1)")
    data = tmp_path / "app" / "data"
    secrets = {
        "inventory/db_password": "db-pw-" + CANARY,
        "payments/api_key": "pay-key-" + CANARY,
        "maps/api_key": "maps-key-" + CANARY,
    }
    seed = json.dumps({"secrets": secrets, "settings": {"app.timeout": 30}})
    env = {k: v for k, v in os.environ.items() if k not in ("KEYSTORE_PASSWORD", "CONTAINER_MODE")}
    env["KEYSTORE_PASSWORD"] = "ks-Pässw0rd-" + CANARY
    made = subprocess.run([framework_python, str(FRAMEWORK), "make", str(data), "myapp"],
                          input=seed, env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    keystore = data / "myapp.v3keystore"
    assert keystore.exists()

    # Before the import the app stops, naming the first missing reference.
    done = run_app(vault, {"INVENTORY_WORKERS": "2"})
    assert done.returncode == 1, done.stderr
    assert "SEC/inventory/db_password" in done.stderr

    report = run_cli("--vault", str(vault.path), "--key-file", str(vault.key_file), "--json",
                     "import", "dtpy", str(keystore), "--password-env", "KEYSTORE_PASSWORD",
                     env={"KEYSTORE_PASSWORD": env["KEYSTORE_PASSWORD"]})
    assert json.loads(report)["imported"] == 3
    done = run_app(vault, {"INVENTORY_WORKERS": "2"})
    assert done.returncode == 0, done.stderr
    assert f"password: {len(secrets['inventory/db_password'])} chars" in done.stdout
    assert f"api maps at https://maps.example.com key: {len(secrets['maps/api_key'])} chars" in done.stdout
    assert CANARY not in done.stdout + done.stderr + report
