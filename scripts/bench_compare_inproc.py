#!/usr/bin/env python3
"""In-process half of scripts/bench-compare (runs inside the bench venv).

One call = one tool at one size:

    python bench_compare_inproc.py TOOL --data DIR --size N [--budget S] ...

TOOL is one of
    keyrings.alt        keyring + keyrings.alt.file.EncryptedKeyring
    keyrings.cryptfile  keyring + keyrings.cryptfile.cryptfile.CryptFileKeyring
    seed001             scripts/bench_seed001.py EncryptedFileStorage

It grows the store in DIR to N secrets (a store left there by a call with a
smaller N is reused and extended), measures in-process `get` and `set` ops/s,
and prints ONE JSON object on stdout:

    {"records": [{tool, size, op, unit, value, note}, ...],
     "process_code": "<python -c code doing one lookup>",
     "populated": "<how the store was filled>"}

The orchestrator (scripts/bench_compare.py) then times `python -c
process_code` as whole processes. Secret values are random, 37 bytes, and are
never printed.

For the keyring backends the environment must carry PYTHON_KEYRING_BACKEND,
XDG_DATA_HOME (where the keyring file lives) and TRESOR_BENCH_KEYRING_PW (the
throwaway keyring password, fed to the backend's getpass prompt).
"""

from __future__ import annotations

import argparse
import base64
import configparser
import getpass
import json
import os
import random
import secrets
import shutil
import sys
import time
from pathlib import Path

VALUE_LEN = 37  # same value size as tresor's own bench
PW_ENV = "TRESOR_BENCH_KEYRING_PW"
USERNAME = "credential"  # seed 001's KeyringStorage uses this username

# Feed the throwaway keyring password to the backends' interactive prompts
# (EncryptedKeyring and CryptFileKeyring both ask with getpass.getpass). The
# backend then runs its real unlock path, reference-password check included.
getpass.getpass = lambda prompt="", stream=None: os.environ[PW_ENV]


def log(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def new_value() -> str:
    """A random 37-character secret (URL-safe base64 alphabet)."""
    return secrets.token_urlsafe(28)[:VALUE_LEN]


def measure(op, keys, budget: float, min_ops: int, max_ops: int) -> tuple[float, int]:
    """Call op(key) over keys in turn until `budget` seconds have passed and at
    least `min_ops` calls were made, or `max_ops` calls; return (ops/s, calls)."""
    n = 0
    t0 = time.perf_counter()
    while True:
        op(keys[n % len(keys)])
        n += 1
        elapsed = time.perf_counter() - t0
        if n >= max_ops or (elapsed >= budget and n >= min_ops):
            return n / elapsed, n


class State:
    """How many secrets the store in DIR holds, and how they got there."""

    def __init__(self, data: Path):
        self.path = data / "bench-state.json"
        if self.path.exists():
            d = json.loads(self.path.read_text())
        else:
            d = {"count": 0, "how": []}
        self.count: int = d["count"]
        self.how: list[list] = d["how"]  # [[count, method], ...]

    def add(self, count: int, method: str) -> None:
        if count <= 0:
            return
        if self.how and self.how[-1][1] == method:
            self.how[-1][0] += count
        else:
            self.how.append([count, method])
        self.count += count
        self.path.write_text(json.dumps({"count": self.count, "how": self.how}))

    def describe(self) -> str:
        return " + ".join(f"{c} {m}" for c, m in self.how)


# --------------------------------------------------------------------------
# keyring backends


def service_name(i: int) -> str:
    # seed 001's KeyringStorage: service "<app>.<provider>.<key>", user "credential"
    return f"tresor-bench.bench.s{i:06d}"


def bulk_entries_alt(kr, items):
    """Encrypted INI values for keyrings.alt EncryptedKeyring, byte-for-byte
    the format of its encrypt() + set_password() (PBKDF2 -> AES-256-CFB,
    "pw:" prefix, JSON of base64 fields), except that all entries share one
    random KDF salt so PBKDF2 runs once instead of once per entry. A lookup
    still runs PBKDF2 with the stored salt, so lookup cost is unchanged."""
    salt = kr.Random.get_random_bytes(kr.block_size)
    key = kr.KDF.PBKDF2(kr.keyring_key, salt, dkLen=kr.block_size)[: kr.block_size]
    b64 = lambda b: base64.encodebytes(b).decode()[:-1]  # noqa: E731
    for service, value in items:
        iv = kr.Random.get_random_bytes(kr.AES.block_size)
        ct = kr.AES.new(key, kr.AES.MODE_CFB, iv).encrypt(kr.pw_prefix + value.encode())
        blob = json.dumps(dict(salt=b64(salt), IV=b64(iv), password_encrypted=b64(ct))).encode()
        yield service, "\n" + base64.encodebytes(blob).decode()


def bulk_entries_cryptfile(kr, items):
    """Encrypted INI values for keyrings.cryptfile CryptFileKeyring, the format
    of its encrypt() + set_password() (Argon2id -> AES-128-GCM with
    service\\0username as associated data), except that all entries share one
    KDF salt so Argon2 (t=15, m=64 MiB: ~0.3 s here) runs once, not 100k
    times. A lookup still runs Argon2 with the stored salt."""
    from argon2.low_level import Type, hash_secret_raw
    from Crypto.Cipher import AES

    salt = os.urandom(16)
    key = hash_secret_raw(
        secret=kr.keyring_key.encode(kr.password_encoding), salt=salt,
        time_cost=kr.time_cost, memory_cost=kr.memory_cost,
        parallelism=kr.parallelism, hash_len=16, type=Type.ID)
    b64 = lambda b: base64.encodebytes(b).decode()[:-1]  # noqa: E731
    mode = kr._get_mode(kr.aesmode)
    for service, value in items:
        cipher = AES.new(key, mode)
        cipher.update(kr._generate_assoc(service, USERNAME))
        data, mac = cipher.encrypt_and_digest(value.encode())
        blob = json.dumps(dict(salt=b64(salt), data=b64(data), mac=b64(mac),
                               nonce=b64(cipher.nonce))).encode()
        yield service, "\n" + base64.encodebytes(blob).decode()


def run_keyring(args, tool: str) -> dict:
    import keyring

    if tool == "keyrings.alt":
        from keyrings.alt.escape import escape
        bulk = bulk_entries_alt
        real_upto = args.real_upto if args.real_upto is not None else 1000
    else:
        from keyrings.cryptfile.escape import escape
        bulk = bulk_entries_cryptfile
        # one Argon2 per set_password: 1000 real inserts would take ~6 minutes
        real_upto = args.real_upto if args.real_upto is not None else 0

    kr = keyring.get_keyring()
    expected = os.environ["PYTHON_KEYRING_BACKEND"].rsplit(".", 1)[1]
    assert type(kr).__name__ == expected, f"wrong backend {kr!r}"
    data = Path(args.data)
    state = State(data)
    _ = kr.keyring_key  # creates the file (reference password) or unlocks it
    path = kr.file_path

    # ---- populate up to args.size
    t0 = time.perf_counter()
    if state.count < args.size and args.size <= real_upto:
        for i in range(state.count, args.size):
            keyring.set_password(service_name(i), USERNAME, new_value())
        state.add(args.size - state.count, "via keyring.set_password")
    elif state.count < args.size:
        items = [(service_name(i), new_value()) for i in range(state.count, args.size)]
        config = configparser.RawConfigParser()
        config.read(path, encoding="utf-8")
        if tool == "keyrings.cryptfile":
            kr._check_version(config)  # the assoc format depends on the file version
        user = escape(USERNAME)
        for service, ini_value in bulk(kr, items):
            section = escape(service)
            if not config.has_section(section):
                config.add_section(section)
            config.set(section, user, ini_value)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            config.write(f)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        # check that the library reads back what was bulk-written
        for service, value in random.sample(items, min(2, len(items))):
            assert keyring.get_password(service, USERNAME) == value, "bulk write unreadable"
        state.add(len(items), "bulk-written into the INI file in one go (shared KDF salt)")
    log(f"{tool}: {state.count} secrets ({state.describe()}) in "
        f"{time.perf_counter() - t0:.1f}s; file {os.path.getsize(path) / 1e6:.1f} MB")

    # ---- in-process get: random existing names
    names = [service_name(random.randrange(args.size)) for _ in range(2000)]

    def get(service):
        if keyring.get_password(service, USERNAME) is None:
            raise SystemExit(f"lookup of {service} found nothing")

    get(names[-1])  # warm-up
    get_ops, get_n = measure(get, names, args.budget, args.min_ops, args.max_ops)

    # ---- in-process set: new names; the file is restored afterwards
    backup = path + ".bak"
    shutil.copy2(path, backup)
    new = [f"tresor-bench.new.n{j:06d}" for j in range(set_cap(args))]
    set_ops, set_n = measure(lambda s: keyring.set_password(s, USERNAME, new_value()),
                             new, args.budget, args.min_ops, len(new))
    os.replace(backup, path)

    backend = os.environ["PYTHON_KEYRING_BACKEND"]
    versions = pkg_versions("keyring", tool)
    pop = state.describe()
    records = [
        rec(tool, args.size, "get", "ops/s", get_ops,
            f"keyring.get_password, {get_n} random names, one process, unlocked; "
            f"{backend}; {versions}; store: {pop}"),
        rec(tool, args.size, "set", "ops/s", set_ops,
            f"keyring.set_password of {set_n} new names (file rewritten each time); "
            f"{backend}; {versions}; store: {pop}"),
    ]
    code = (
        "import getpass,os;"
        f"getpass.getpass=lambda prompt='',stream=None: os.environ[{PW_ENV!r}];"
        "import keyring;"
        f"assert keyring.get_password({service_name(args.size // 2)!r}, {USERNAME!r}) is not None"
    )
    return {"records": records, "process_code": code, "populated": pop}


# --------------------------------------------------------------------------
# seed 001 design


def run_seed(args) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_seed001 import EncryptedFileStorage

    data = Path(args.data)
    state = State(data)
    st = EncryptedFileStorage(data)
    key = lambda i: f"s{i:06d}"  # noqa: E731  (provider "bench", key "sNNNNNN")
    real_upto = args.real_upto if args.real_upto is not None else 1000

    t0 = time.perf_counter()
    if state.count < args.size and args.size <= real_upto:
        # the real thing: one store() per secret, each rewriting the whole file
        for i in range(state.count, args.size):
            st.store("bench", key(i), new_value())
        state.add(args.size - state.count, "via store() one by one")
    elif state.count < args.size:
        # O(n^2) to fill one by one: load once, add all, encrypt and write once
        creds = st._load_credentials()
        assert len(creds) == state.count, "store unreadable"
        for i in range(state.count, args.size):
            creds[f"bench.{key(i)}"] = new_value()
        st._save_credentials(creds)
        state.add(args.size - state.count, "added in one _save_credentials() (one encryption)")
    log(f"seed001: {state.count} secrets ({state.describe()}) in "
        f"{time.perf_counter() - t0:.1f}s; file "
        f"{st.credentials_file.stat().st_size / 1e6:.1f} MB")

    keys = [key(random.randrange(args.size)) for _ in range(2000)]

    def get(k):
        if st.retrieve("bench", k) is None:
            raise SystemExit(f"lookup of {k} found nothing")

    get(keys[-1])
    get_ops, get_n = measure(get, keys, args.budget, args.min_ops, args.max_ops)

    path = st.credentials_file
    backup = path.with_suffix(".bak")
    shutil.copy2(path, backup)
    new = [f"n{j:06d}" for j in range(set_cap(args))]
    set_ops, set_n = measure(lambda k: st.store("new", k, new_value()),
                             new, args.budget, args.min_ops, len(new))
    os.replace(backup, path)

    versions = pkg_versions("cryptography")
    pop = state.describe()
    records = [
        rec("seed001", args.size, "get", "ops/s", get_ops,
            f"EncryptedFileStorage.retrieve (whole file decrypted + parsed per call), "
            f"{get_n} random names; {versions}; store: {pop}"),
        rec("seed001", args.size, "set", "ops/s", set_ops,
            f"EncryptedFileStorage.store of {set_n} new names (whole file re-encrypted "
            f"+ rewritten per call); {versions}; store: {pop}"),
    ]
    code = (
        f"import sys;sys.path.insert(0,{str(Path(__file__).resolve().parent)!r});"
        "from pathlib import Path;from bench_seed001 import EncryptedFileStorage as S;"
        f"assert S(Path({str(data)!r})).retrieve('bench',{key(args.size // 2)!r}) is not None"
    )
    return {"records": records, "process_code": code, "populated": pop}


# --------------------------------------------------------------------------


def set_cap(args) -> int:
    """At most size/20 inserts per set measurement, so the store grows by at
    most 5% while it is measured (it is restored afterwards)."""
    return max(args.min_ops, min(args.max_ops, args.size // 20))


def pkg_versions(*names: str) -> str:
    from importlib.metadata import version

    return ", ".join(f"{n} {version(n)}" for n in names)


def rec(tool, size, op, unit, value, note):
    return {"tool": tool, "size": size, "op": op, "unit": unit,
            "value": round(value, 3), "note": note}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("tool", choices=["keyrings.alt", "keyrings.cryptfile", "seed001"])
    p.add_argument("--data", required=True, help="store directory (kept between sizes)")
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--budget", type=float, default=3.0, help="seconds per measurement")
    p.add_argument("--min-ops", type=int, default=3)
    p.add_argument("--max-ops", type=int, default=20000)
    p.add_argument("--real-upto", type=int, default=None,
                   help="fill with real one-by-one inserts while size <= this")
    args = p.parse_args()
    Path(args.data).mkdir(parents=True, exist_ok=True)
    out = run_seed(args) if args.tool == "seed001" else run_keyring(args, args.tool)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
