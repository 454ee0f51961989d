"""The tresor package: values, every operation, each exception, threads,
the unlock chain, and that no value ever shows in an error or repr."""

from __future__ import annotations

import pickle
import sqlite3
import threading
import time
import traceback

import pytest

import tresor
from conftest import run_cli

CANARY = "canary-7f3a9c-never-print-me"


# ---- values ---------------------------------------------------------------


def test_bytes_round_trip_every_byte(vault):
    value = bytes(range(256)) * 3
    with vault.open() as t:
        assert t.set("bin/blob", value) == 1
        got = t.get("bin/blob")
    assert isinstance(got, bytes) and got == value


def test_text_round_trip_unicode(vault):
    text = "pässwörd – ключ – 鍵 – 🔑"
    with vault.open() as t:
        t.set("app/text", text)
        assert t.get_text("app/text") == text
        assert t.get("app/text") == text.encode("utf-8")


def test_empty_bytearray_and_secret_values(vault):
    with vault.open() as t:
        t.set("v/empty", "")
        assert t.get("v/empty") == b"" and t.get_text("v/empty") == ""
        t.set("v/array", bytearray(b"from a bytearray"))
        assert t.get("v/array") == b"from a bytearray"
        with t.get_secret("v/array") as s:
            t.set("v/copy", s)
        assert t.get("v/copy") == b"from a bytearray"


def test_wrong_value_type_names_the_type_only(vault):
    with vault.open() as t, pytest.raises(TypeError) as e:
        t.set("v/x", 12345678)
    assert "int" in str(e.value) and "12345678" not in str(e.value)


def test_get_text_of_binary_is_invalid_input(vault):
    with vault.open() as t:
        t.set("bin/x", b"\xff\xfe")
        with pytest.raises(tresor.InvalidInput):
            t.get_text("bin/x")


def test_versions_labels_and_history(vault):
    with vault.open() as t:
        assert t.set("db/pw", "one", reason="first") == 1
        assert t.set("db/pw", "two") == 2
        assert t.get_text("db/pw", version=1) == "one"
        assert t.get_text("db/pw", label="previous") == "one"
        assert t.rotate("db/pw", "three", reason="staged", stage=True) == 3
        assert t.get_text("db/pw") == "two"
        assert t.get_text("db/pw", label="pending") == "three"
        assert t.promote("db/pw") == 3
        assert t.get_text("db/pw") == "three"
        t.rollback("db/pw", 1, reason="bad rotation")
        assert t.get_text("db/pw") == "one"
        history = t.history("db/pw")
        assert [h["version"] for h in history] == [1, 2, 3]
        assert history[0]["reason"] == "first" and "current" in history[0]["labels"]
        assert all("value" not in h for h in history)
        with pytest.raises(tresor.InvalidInput):
            t.get("db/pw", version=1, label="current")


def test_delete_undelete_purge_exists_list(vault):
    with vault.open() as t:
        t.set("svc/a", "1")
        t.set("svc/b", "2")
        t.set("other/c", "3")
        assert [e["name"] for e in t.list("svc/")] == ["svc/a", "svc/b"]
        assert len(t.list()) == 3
        assert t.delete("svc/a") == "vault"
        assert not t.exists("svc/a")
        with pytest.raises(tresor.NotFound):
            t.get("svc/a")
        assert [e["name"] for e in t.list(deleted=True)] == ["svc/a"]
        t.undelete("svc/a")
        assert t.exists("svc/a") and t.get_text("svc/a") == "1"
        t.purge("svc/a")
        assert not t.exists("svc/a")
        with pytest.raises(tresor.NotFound):
            t.undelete("svc/a")
        entry = t.list("svc/")[0]
        assert entry["store"] == "vault" and entry["current"] == 1


def test_metadata(vault):
    with vault.open() as t:
        t.set("m/x", "v", metadata={"owner": "ops"})
        assert t.meta("m/x") == {"owner": "ops"}
        assert t.meta("m/x", {"team": "infra", "owner": None}) == {"team": "infra"}
        assert t.list("m/")[0]["metadata"] == {"team": "infra"}


def test_secret_object_wipes_and_hides(vault):
    with vault.open() as t:
        t.set("s/x", CANARY)
        s = t.get_secret("s/x")
    assert CANARY not in repr(s) and CANARY not in str(s)
    assert (s.name, s.version, s.store, len(s)) == ("s/x", 1, "vault", len(CANARY))
    assert s.reveal_text() == CANARY and s.reveal() == CANARY.encode()
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with s:
        pass
    assert s.closed and "closed" in repr(s)
    with pytest.raises(tresor.InvalidInput):
        s.reveal()


def test_get_into_fills_a_bytearray(vault):
    with vault.open() as t:
        t.set("s/into", CANARY)
        buf = bytearray(64)
        n = t.get_into("s/into", buf)
        assert bytes(buf[:n]) == CANARY.encode() and not any(buf[n:])
        small = bytearray(4)
        with pytest.raises(tresor.InvalidInput) as e:
            t.get_into("s/into", small)
        assert small == bytearray(4)
        assert CANARY not in str(e.value)


def test_closed_manager_refuses(vault):
    t = vault.open()
    with t:
        t.set("c/x", "v")
    assert t.closed
    with pytest.raises(tresor.InvalidInput):
        t.get("c/x")
    t.close()  # idempotent


# ---- exceptions -------------------------------------------------------------

EXIT_CODES = {
    tresor.NotFound: 1,
    tresor.InvalidInput: 2,
    tresor.Locked: 3,
    tresor.IntegrityError: 4,
    tresor.Conflict: 5,
    tresor.Unavailable: 6,
}


def test_exception_classes_mirror_the_cli_exit_codes():
    for cls, code in EXIT_CODES.items():
        assert issubclass(cls, tresor.Error) and issubclass(cls, Exception)
        assert cls.exit_code == code
        assert cls.__module__ == "tresor"


def raised(f) -> tresor.Error:
    with pytest.raises(tresor.Error) as e:
        f()
    return e.value


def tamper(path):
    """Flips one byte of every stored version body, as an attacker with write
    access to the file would."""
    db = sqlite3.connect(path)
    rows = db.execute("SELECT secret_id, version, body FROM versions").fetchall()
    for sid, ver, body in rows:
        b = bytearray(body)
        b[len(b) // 2] ^= 0x01
        db.execute(
            "UPDATE versions SET body = ? WHERE secret_id = ? AND version = ?", (bytes(b), sid, ver)
        )
    db.commit()
    db.close()


def test_each_exception_with_its_exit_code_and_no_value(vault, tmp_path, monkeypatch):
    seen = {}
    with vault.open() as t:
        t.set("e/secret", CANARY)
        t.set("e/bin", b"\xff" + CANARY.encode())
        seen[tresor.NotFound] = raised(lambda: t.get("e/missing"))
        seen[tresor.InvalidInput] = raised(lambda: t.set("bad name!", CANARY))
        seen[tresor.Conflict] = raised(lambda: t.set("e/secret", CANARY + "2", expect_version=7))
        text_err = raised(lambda: t.get_text("e/bin"))
        assert isinstance(text_err, tresor.InvalidInput)
    seen[tresor.Unavailable] = raised(lambda: tresor.open(vault=str(tmp_path / "none.db")))
    seen[tresor.Locked] = raised(lambda: tresor.open(vault=str(vault.path)))
    wrong = tmp_path / "wrong-key"
    run_cli("--vault", str(tmp_path / "other.db"), "--key-file", str(wrong), "init", "--no-recovery", "-q")
    locked_wrong = raised(lambda: tresor.open(vault=str(vault.path), key_file=str(wrong)))
    assert isinstance(locked_wrong, tresor.Locked) and locked_wrong.kind == "auth"
    tamper(vault.path)
    with vault.open() as t:
        seen[tresor.IntegrityError] = raised(lambda: t.get("e/secret"))
    assert set(seen) == set(EXIT_CODES)
    for cls, err in seen.items():
        assert type(err) is cls, (cls, type(err), err)
        assert err.exit_code == EXIT_CODES[cls]
        assert isinstance(err.kind, str) and err.kind
        shown = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        for text in (str(err), repr(err), shown, text_err.__str__()):
            assert CANARY not in text
    assert seen[tresor.Locked].kind == "no_credential"
    assert seen[tresor.Unavailable].kind == "no_vault"
    assert seen[tresor.Conflict].kind == "conflict"


# ---- unlock chain -----------------------------------------------------------


def test_unlock_key_file_from_the_environment(vault, monkeypatch):
    with vault.open() as t:
        t.set("u/x", "v")
    monkeypatch.setenv("TRESOR_VAULT", str(vault.path))
    monkeypatch.setenv("TRESOR_KEY_FILE", str(vault.key_file))
    with tresor.open() as t:
        assert t.get_text("u/x") == "v"


def test_unlock_raw_key_from_the_environment(vault, monkeypatch):
    monkeypatch.setenv("TRESOR_KEY", vault.key_file.read_text())
    with tresor.open(vault=str(vault.path)) as t:
        t.set("u/raw", "v")
        assert t.get_text("u/raw") == "v"


@pytest.mark.parametrize("var", ["TRESOR_PASSWORD", "KEYSTORE_PASSWORD", "SECRETS_STORE_PASSWORD"])
def test_unlock_password_and_its_aliases(password_vault, monkeypatch, var):
    monkeypatch.setenv(var, "correct horse")
    with tresor.open(vault=str(password_vault)) as t:
        t.set("u/pw", "v")
        assert t.get_text("u/pw") == "v"


def test_wrong_password_is_locked_and_prompt_needs_a_terminal(password_vault, monkeypatch):
    monkeypatch.setenv("TRESOR_PASSWORD", CANARY)
    err = raised(lambda: tresor.open(vault=str(password_vault)))
    assert isinstance(err, tresor.Locked) and err.kind == "auth"
    assert CANARY not in str(err) and CANARY not in repr(err)
    monkeypatch.delenv("TRESOR_PASSWORD")
    # No terminal here (pytest captures stdin): prompt=True must not block.
    err = raised(lambda: tresor.open(vault=str(password_vault), prompt=True))
    assert isinstance(err, tresor.Locked) and err.kind == "no_credential"


def test_config_and_profile(vault, tmp_path, monkeypatch):
    config = tmp_path / "tresor.toml"
    config.write_text(
        f"""
[[stores]]
name = "env"
kind = "env"
prefix = "PYTEST_"
priority = 10

[[stores]]
name = "local"
kind = "vault"
path = "{vault.path}"
priority = 50

[profiles.vaultonly]
stores = ["local"]
"""
    )
    config.chmod(0o600)
    monkeypatch.setenv("TRESOR_KEY_FILE", str(vault.key_file))
    monkeypatch.setenv("PYTEST_APP_TOKEN", "from-env")
    with tresor.open(config=str(config)) as t:
        assert t.stores == ["env", "local"]
        assert t.set("app/token", "from-vault") == 1
        assert t.get_text("app/token") == "from-env"
        assert t.get_text("app/token", store="local") == "from-vault"
        assert t.list("app/")[0]["shadowed"] == ["local"]
    with tresor.open(config=str(config), profile="vaultonly") as t:
        assert t.stores == ["local"]
        assert t.get_text("app/token") == "from-vault"


# ---- threads ------------------------------------------------------------------


def test_one_manager_shared_by_threads(vault):
    errors = []
    with vault.open() as t:
        for i in range(8):
            t.set(f"th/{i}", f"value-{i}")

        def worker(k):
            try:
                for j in range(100):
                    i = (k + j) % 8
                    assert t.get_text(f"th/{i}") == f"value-{i}"
                    if j % 25 == 0:
                        t.set(f"th/w{k}", f"w{j}")
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors
        assert all(t.get_text(f"th/w{k}") == "w75" for k in range(8))


def test_gil_is_released_during_the_unlock(password_vault, monkeypatch):
    """While Argon2id runs for open(), another Python thread keeps running."""
    monkeypatch.setenv("TRESOR_PASSWORD", "correct horse")
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    th = threading.Thread(target=ticker)
    th.start()
    time.sleep(0.01)
    t0 = time.perf_counter()
    t = tresor.open(vault=str(password_vault))
    t1 = time.perf_counter()
    stop.set()
    th.join()
    t.close()
    during = [x for x in ticks if t0 <= x <= t1]
    # A held GIL would leave no tick at all inside the unlock.
    assert t1 - t0 > 0.01, "the unlock was too fast to observe"
    assert len(during) >= 3, (t1 - t0, len(during))


def test_the_example_script_runs(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from conftest import tresor_bin

    example = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRESOR_")}
    env["TRESOR_BIN"] = tresor_bin()
    done = subprocess.run([sys.executable, str(example)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "[redacted]" in done.stdout
    for value in ("first-password", "second-password", "third-password"):
        assert value not in done.stdout and value not in done.stderr


def test_library_warnings_become_python_warnings(vault, tmp_path, monkeypatch):
    config = tmp_path / "down.toml"
    config.write_text(
        f"""
[[stores]]
name = "team"
kind = "openbao"
address = "http://127.0.0.1:1"
token = "ENV/PYTEST_BAO_TOKEN"
priority = 10

[[stores]]
name = "local"
kind = "vault"
path = "{vault.path}"
priority = 50
"""
    )
    config.chmod(0o600)
    monkeypatch.setenv("PYTEST_BAO_TOKEN", "not-a-real-token")
    monkeypatch.setenv("TRESOR_KEY_FILE", str(vault.key_file))
    with tresor.open(config=str(config)) as t:
        t.set("w/x", "v", store="local")
        with pytest.warns(UserWarning, match="team"):
            assert t.get_text("w/x") == "v"
