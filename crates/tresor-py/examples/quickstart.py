"""A tour of the tresor package, runnable as it is:

    python examples/quickstart.py

It makes a throwaway vault with the tresor CLI (on PATH, or TRESOR_BIN), then
uses it from Python. In an application you would call ``tresor.open()`` with
no arguments and let TRESOR_VAULT / TRESOR_KEY_FILE / TRESOR_PASSWORD (or an
unlock session) decide, as for the CLI.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from pathlib import Path

import tresor


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        vault, key = Path(d, "vault.db"), Path(d, "key")
        cli = os.environ.get("TRESOR_BIN", "tresor")
        subprocess.run([cli, "--vault", vault, "--key-file", key, "init", "--no-recovery", "-q"],
                       check=True)

        with tresor.open(vault=vault, key_file=key) as t:
            # Write: text or bytes; each write is a new version.
            t.set("db/password", "first-password", reason="initial")
            v = t.set("db/password", "second-password", reason="rotated by hand")
            print("db/password is at version", v)

            # Read: bytes, text, an older version, or a label.
            assert t.get("db/password") == b"second-password"
            assert t.get_text("db/password", label="previous") == "first-password"

            # A value you want wiped after use: a Secret, or your own bytearray.
            with t.get_secret("db/password") as secret:
                print(secret)  # <tresor.Secret 'db/password' version 2 from 'vault' [redacted]>
                use(secret.reveal())
            buf = bytearray(64)
            n = t.get_into("db/password", buf)
            use(bytes(buf[:n]))
            buf[:] = bytes(len(buf))  # wipe it yourself

            # Staged rotation, then promote; roll back if it went wrong.
            t.rotate("db/password", "third-password", stage=True)
            t.promote("db/password")
            t.rollback("db/password", 2, reason="third was bad")

            # Check-and-set: fail instead of overwriting someone else's change.
            try:
                t.set("db/password", "racing-write", expect_version=1)
            except tresor.Conflict as e:
                print("conflict (exit code", e.exit_code, "):", e)

            # Listing, history, metadata, deletion.
            t.meta("db/password", {"owner": "platform-team"})
            for entry in t.list("db/"):
                print(entry["name"], "v", entry["current"], entry["metadata"])
            print([h["version"] for h in t.history("db/password")])
            t.delete("db/password")
            assert not t.exists("db/password")
            t.undelete("db/password")

            # One manager, many threads: calls release the GIL.
            threads = [threading.Thread(target=t.get, args=("db/password",)) for _ in range(4)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()

            try:
                t.get("no/such-secret")
            except tresor.NotFound as e:
                print("not found (exit code", e.exit_code, "):", e)


def use(value: bytes) -> None:
    """Stands for handing the value to a client library."""
    assert value


if __name__ == "__main__":
    main()
