#!/usr/bin/env python3
"""The Python half of scripts/bench-python (runs in the bench venv).

    python bench_python.py populate --vault V --key-file K --n N --prefix P [--suffix S]
    python bench_python.py rust --vault V --key-file K --n N --prefix P [--seconds T]
    python bench_python.py tresor --vault V --key-file K --n N --prefix P [--seconds T]
    python bench_python.py keyring-tresor --vault V --key-file K --n N [--seconds T]
    python bench_python.py sqlite --dir D --n N [--seconds T]
    python bench_python.py hvac --addr URL --token TOKEN --n N [--seconds T]
    python bench_python.py import-time --module tresor [--runs R]

Each prints one JSON object: {"tool", "op", "ops_per_s" | "ms", "note"}.
`populate` and `rust` call the extension's private helpers
(crates/tresor-py/src/bench.rs): a vault filled in one transaction, and
`tresor::Tresor::get` timed in a Rust loop inside the same compiled library
the Python calls use. Both sides read the same pseudo-random walk of names:
(j * 7919 + 13) % N for j < 2000.
Values are random and never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path


def walk(n: int) -> list[int]:
    return [(j * 7919 + 13) % n for j in range(2000)]


def rate(op, keys, seconds: float, min_ops: int = 3) -> float:
    """Calls op over keys (in turn) for `seconds`; ops per second."""
    op(keys[0])
    done, t0 = 0, time.perf_counter()
    while True:
        for k in keys:
            op(k)
            done += 1
            if done >= min_ops and time.perf_counter() - t0 >= seconds:
                return done / (time.perf_counter() - t0)


def emit(tool: str, op: str, note: str, **fig) -> None:
    print(json.dumps({"tool": tool, "op": op, "note": note, **fig}), flush=True)


def bench_populate(a) -> None:
    from tresor import _native

    _native._bench_populate(a.vault, a.key_file, a.n, a.prefix, a.suffix)


def bench_rust(a) -> None:
    from tresor import _native

    names = [f"{a.prefix}{i:06d}{a.suffix}" for i in walk(a.n)]
    r = _native._bench_rust_get(a.vault, a.key_file, names, a.seconds)
    emit("tresor (Rust, in process)", "get",
         f"tresor::Tresor::get in a Rust loop, {a.n} secrets, read audit on", ops_per_s=round(r))


def bench_tresor(a) -> None:
    import tresor

    t = tresor.open(vault=a.vault, key_file=a.key_file)
    names = [f"{a.prefix}{i:06d}{a.suffix}" for i in walk(a.n)]
    get = t.get
    r = rate(get, names, a.seconds)
    emit("tresor (Python, in process)", "get", f"Tresor.get, {a.n} secrets, read audit on",
         ops_per_s=round(r))


def bench_keyring_tresor(a) -> None:
    os.environ["KEYRING_PROPERTY_VAULT"] = a.vault
    os.environ["KEYRING_PROPERTY_KEY_FILE"] = a.key_file
    os.environ["PYTHON_KEYRING_BACKEND"] = "tresor.keyring.TresorKeyring"
    import keyring

    kr = keyring.get_keyring()
    assert type(kr).__name__ == "TresorKeyring", kr
    services = [f"tresor-bench.bench.s{i:06d}" for i in walk(a.n)]

    def get(service):
        if keyring.get_password(service, "credential") is None:
            raise SystemExit(f"lookup of {service} found nothing")

    r = rate(get, services, a.seconds)
    emit("tresor (keyring backend)", "keyring.get_password",
         f"tresor.keyring.TresorKeyring, {a.n} secrets", ops_per_s=round(r))


def bench_sqlite(a) -> None:
    path = Path(a.dir) / "plain.sqlite"
    if not path.exists():
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE kv(name TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID")
        db.executemany(
            "INSERT INTO kv VALUES (?, ?)",
            ((f"bench/s{i:06d}", secrets.token_bytes(37)) for i in range(a.n)),
        )
        db.commit()
        db.close()
    db = sqlite3.connect(path)
    names = [f"bench/s{i:06d}" for i in walk(a.n)]

    def get(name):
        if db.execute("SELECT value FROM kv WHERE name = ?", (name,)).fetchone() is None:
            raise SystemExit("missing row")

    r = rate(get, names, a.seconds)
    emit("sqlite3 (plaintext, Python stdlib)", "get",
         f"SELECT by primary key, {a.n} rows, no encryption, no audit", ops_per_s=round(r))


def bench_hvac(a) -> None:
    import hvac

    client = hvac.Client(url=a.addr, token=a.token)
    kv = client.secrets.kv.v2
    for i in range(a.n):
        kv.create_or_update_secret(path=f"pybench/s{i:06d}",
                                   secret={"value": secrets.token_urlsafe(28)})
    paths = [f"pybench/s{i:06d}" for i in walk(a.n)]

    def get(path):
        kv.read_secret_version(path=path, raise_on_deleted_version=True)

    r = rate(get, paths, a.seconds)
    emit("hvac -> OpenBao dev server", "get",
         f"kv.v2.read_secret_version over HTTP keep-alive, {a.n} secrets (in-memory dev server)",
         ops_per_s=round(r))


def bench_import(a) -> None:
    code = ("import time; t = time.perf_counter(); import {m}; "
            "print((time.perf_counter() - t) * 1000)").format(m=a.module)
    times = []
    for _ in range(a.runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        times.append(float(out.stdout))
    emit(f"import {a.module}", "import", f"median of {a.runs} fresh interpreters",
         ms=round(statistics.median(times), 2), min_ms=round(min(times), 2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["populate", "rust", "tresor", "keyring-tresor", "sqlite",
                                    "hvac", "import-time"])
    p.add_argument("--vault")
    p.add_argument("--key-file")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--prefix", default="bench/s")
    p.add_argument("--suffix", default="")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--dir")
    p.add_argument("--addr")
    p.add_argument("--token")
    p.add_argument("--module", default="tresor")
    p.add_argument("--runs", type=int, default=30)
    a = p.parse_args()
    {
        "populate": bench_populate,
        "rust": bench_rust,
        "tresor": bench_tresor,
        "keyring-tresor": bench_keyring_tresor,
        "sqlite": bench_sqlite,
        "hvac": bench_hvac,
        "import-time": bench_import,
    }[a.what](a)


if __name__ == "__main__":
    main()
