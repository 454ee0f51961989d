#!/usr/bin/env python3
"""Comparison half of tresor's benchmark: the secret stores users would otherwise
pick, measured on this machine so scripts/bench can print them beside tresor.

Run it through scripts/bench-compare (which makes sure python3 exists). Tools:

  pass                pass 1.7 (Debian): `pass show NAME`, `pass insert -m`
  gopass              gopass (Debian): `gopass show -o NAME` (`gopass show NAME`
                      when the installed gopass has no -o, as Debian 12's 1.5.0)
  keyrings.alt        python keyring + keyrings.alt.file.EncryptedKeyring
  keyrings.cryptfile  python keyring + keyrings.cryptfile CryptFileKeyring
  seed001             seed 001's EncryptedFileStorage (scripts/bench_seed001.py):
                      one Fernet-encrypted JSON file, decrypted on every read

Ops and units (one JSON record each, per tool and store size):

  get          ops/s  point lookups of random names inside one process
  set          ops/s  inserts of new names inside one process
  get-process  ms     median wall time of a whole process doing one lookup
  set-process  ms     median wall time of a whole process doing one insert

Output: the table on stderr, a JSON list of {tool, size, op, unit, value, note}
on stdout (or in --json FILE). `note` says how the value was measured and how
the store of that size was filled (real inserts, or bulk where real inserts are
too slow). Nothing here prints a secret value; all values are random 37-byte
throwaways, the GnuPG key has no passphrase and lives in a temp GNUPGHOME, and
HOME is pointed at a temp folder so the user's own stores are never touched.

Needs root (or the Debian packages already installed) and access to Debian's
and PyPI's package registries on first run. Everything temporary is removed,
and the gpg-agent killed, on exit, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
INPROC = HERE / "bench_compare_inproc.py"
TOOLS = ["pass", "gopass", "keyrings.alt", "keyrings.cryptfile", "seed001"]
VALUE_LEN = 37
PW_ENV = "TRESOR_BENCH_KEYRING_PW"

# Pinned so that numbers stay comparable between runs; the venv is rebuilt
# when this list changes.
PIP_REQS = """\
keyring==25.7.0
keyrings.alt==5.0.2
keyrings.cryptfile==1.3.9
cryptography==50.0.2
pycryptodomex==3.24.2
pycryptodome==4.4.0
argon2-cffi==25.1.0
"""

# command -> Debian package that provides it
DEB_PACKAGES = {"gpg": "gnupg", "gpg-agent": "gnupg", "gpgconf": "gnupg",
                "pass": "pass", "gopass": "gopass", "hyperfine": "hyperfine"}

# Environment variables that could point a tool at the user's real stores or
# change its behaviour; removed from the children's environment.
SCRUB_PREFIXES = ("PASSWORD_STORE_", "GOPASS_", "GPG_", "GNUPG", "PYTHON_KEYRING",
                  "KEYRING_", "XDG_")

T0 = time.monotonic()
POPULATED: dict[str, str] = {}  # tool -> how its largest store was filled


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} +{time.monotonic() - T0:5.0f}s] {msg}",
          file=sys.stderr, flush=True)


class ToolError(Exception):
    """A tool could not be set up or measured; its remaining sizes are skipped."""


def run(argv, env=None, **kw) -> subprocess.CompletedProcess:
    """Run a command whose output is not secret; its stdout goes to stderr so
    that our stdout stays pure JSON."""
    kw.setdefault("stdout", sys.stderr)
    return subprocess.run(argv, env=env, check=True, **kw)


def new_value() -> str:
    return secrets.token_urlsafe(28)[:VALUE_LEN]


# --------------------------------------------------------------------------
# installation


def ensure_debs(cmds: list[str]) -> None:
    """apt-get install the Debian packages for any missing commands (apt-get
    update first, and only when something is missing)."""
    pkgs = sorted({DEB_PACKAGES[c] for c in cmds if shutil.which(c) is None})
    if not pkgs:
        return
    if os.geteuid() != 0:
        log(f"missing Debian packages {' '.join(pkgs)} and not root: the tools that "
            "need them are skipped")
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log(f"installing Debian packages: {' '.join(pkgs)}")
    subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=sys.stderr)
    apt = ["apt-get", "install", "-y", "-qq", "--no-install-recommends"]
    if subprocess.run(apt + pkgs, env=env, stdout=sys.stderr).returncode != 0:
        for p in pkgs:  # one at a time, so that one missing package skips one tool
            subprocess.run(apt + [p], env=env, stdout=sys.stderr)


def ensure_venv(venv: Path) -> Path:
    """Create (or reuse) the venv holding keyring, the backends and
    cryptography; returns its python."""
    py = venv / "bin" / "python"
    stamp = venv / ".tresor-bench-requirements"
    if py.exists() and stamp.exists() and stamp.read_text() == PIP_REQS:
        if subprocess.run([py, "-c", "import keyring, keyrings.alt.file, "
                           "keyrings.cryptfile.cryptfile, cryptography.fernet"],
                          stderr=subprocess.DEVNULL).returncode == 0:
            log(f"reusing venv {venv}")
            return py
    if py.exists() and subprocess.run([py, "-c", "pass"]).returncode != 0:
        shutil.rmtree(venv)  # broken (its python went away): start over
    if not py.exists():
        log(f"creating venv {venv}")
        venv.parent.mkdir(parents=True, exist_ok=True)
        if subprocess.run([sys.executable, "-m", "venv", str(venv)],
                          stdout=sys.stderr).returncode != 0:
            # Debian's python3 needs python3-venv for ensurepip
            shutil.rmtree(venv, ignore_errors=True)
            if os.geteuid() == 0:
                env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
                subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=sys.stderr)
                run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                     "python3-venv"], env=env)
            run([sys.executable, "-m", "venv", str(venv)])
    log("installing pip packages into the venv: "
        + " ".join(PIP_REQS.split()))
    req = venv / "requirements.txt"
    req.write_text(PIP_REQS)
    run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", req])
    stamp.write_text(PIP_REQS)
    return py


# --------------------------------------------------------------------------
# timing whole processes


class Timer:
    """Times whole processes with hyperfine (-N: no shell, or with a shell
    whose start-up hyperfine subtracts), or with a plain loop if hyperfine is
    missing. The number of runs adapts to the command's cost."""

    def __init__(self, tmp: Path, max_runs: int, budget: float):
        self.hyperfine = shutil.which("hyperfine")
        self.tmp = tmp
        self.max_runs = max_runs
        self.budget = budget

    def median_ms(self, cmd: str, env: dict, shell: bool = False) -> tuple[float, str]:
        argv = ["sh", "-c", cmd] if shell else shlex.split(cmd)
        # one probe run: checks the command works and picks the number of runs
        t = time.perf_counter()
        p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        t = time.perf_counter() - t
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise ToolError(f"`{cmd}` exited {p.returncode}: {' | '.join(err)}")
        if t * self.max_runs <= self.budget:
            runs, warmup = self.max_runs, 3
        else:  # slow command: fewer runs; the probe was the warm-up
            runs, warmup = max(3, min(self.max_runs, int(self.budget / t))), 0
        if self.hyperfine:
            out = self.tmp / "hyperfine.json"
            hf = [self.hyperfine, "--style", "none", "--runs", str(runs),
                  "--warmup", str(warmup), "--output", "null", "--export-json", str(out)]
            hf += ["--shell", "sh"] if shell else ["-N"]
            p = subprocess.run(hf + [cmd], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            if p.returncode != 0:
                err = p.stderr.decode(errors="replace").strip().splitlines()[-3:]
                raise ToolError(f"hyperfine on `{cmd}` failed: {' | '.join(err)}")
            res = json.loads(out.read_text())["results"][0]
            how = (f"median of {len(res['times'])} runs, hyperfine "
                   + ("(sh start-up subtracted)" if shell else "-N")
                   + (f", {warmup} warm-up" if warmup else ", 1 warm-up"))
            return res["median"] * 1000, how
        times = []
        for i in range(warmup + runs):
            t = time.perf_counter()
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            if i >= warmup:
                times.append(time.perf_counter() - t)
        return statistics.median(times) * 1000, (
            f"median of {runs} runs, timed from Python"
            + (" (sh start-up included)" if shell else ""))


# --------------------------------------------------------------------------
# pass and gopass


class PassStore:
    """A pass store in a temp folder, encrypted to a throwaway GnuPG key,
    shared by pass and gopass (same on-disk format)."""

    def __init__(self, tmp: Path, env: dict):
        self.env = env
        self.dir = Path(env["PASSWORD_STORE_DIR"])
        self.count = 0
        self.how: list[list] = []
        gnupg = Path(env["GNUPGHOME"])
        gnupg.mkdir(mode=0o700)
        params = tmp / "keyparams"
        # gpg's default algorithms (rsa3072 on Debian 12's gpg 2.2), no passphrase
        params.write_text("%no-protection\nKey-Type: default\nSubkey-Type: default\n"
                          "Name-Real: tresor bench\nName-Email: bench@tresor.invalid\n"
                          "Expire-Date: 0\n%commit\n")
        run(["gpgconf", "--launch", "gpg-agent"], env=env)
        run(["gpg", "--batch", "--quiet", "--gen-key", str(params)], env=env,
            stderr=subprocess.DEVNULL)
        self.fpr, self.algo = None, "?"
        lines = subprocess.run(["gpg", "--list-secret-keys", "--with-colons"], env=env,
                               capture_output=True, text=True, check=True).stdout.splitlines()
        algos = {"1": "rsa", "18": "cv25519", "22": "ed25519", "19": "nistp"}
        for line in lines:
            f = line.split(":")
            if f[0] == "fpr" and self.fpr is None:
                self.fpr = f[9]
            if f[0] == "ssb":  # the encryption subkey is what decryption uses
                self.algo = algos.get(f[3], "algo" + f[3]) + (f[2] if f[3] == "1" else "")
        if shutil.which("pass"):
            run(["pass", "init", self.fpr], env=env)
        else:  # gopass alone: what `pass init` would write
            self.dir.mkdir(parents=True)
            (self.dir / ".gpg-id").write_text(self.fpr + "\n")
        self.gpg_version = subprocess.run(["gpg", "--version"], capture_output=True,
                                          text=True).stdout.split("\n")[0]
        # same options pass itself gives gpg when it encrypts
        self.gpg_encrypt = ["gpg", "--quiet", "--yes", "--compress-algo=none",
                            "--no-encrypt-to", "--batch", "-r", self.fpr]

    def name(self, i: int) -> str:
        return f"bench/s{i:06d}"

    def grow(self, target: int, real_upto: int) -> None:
        """Add secrets bench/sNNNNNN until the store holds `target`."""
        if target <= self.count:
            return
        (self.dir / "bench").mkdir(exist_ok=True)
        t = time.perf_counter()
        if target <= real_upto:
            # Real encryptions, one per secret, with pass's gpg options; but
            # `gpg --multifile` encrypts many files per process (and one gpg
            # per core), instead of pass's one gpg process per secret.
            plain = [self.dir / f"{self.name(i)}" for i in range(self.count, target)]
            for p in plain:
                p.write_text(new_value() + "\n")
            nproc = os.cpu_count() or 1
            procs = []
            for k in range(nproc):
                chunk = "".join(f"{p}\n" for p in plain[k::nproc])
                pr = subprocess.Popen(self.gpg_encrypt + ["--multifile", "--encrypt"],
                                      env=self.env, stdin=subprocess.PIPE,
                                      stdout=sys.stderr)
                procs.append((pr, chunk))
            for pr, chunk in procs:
                pr.communicate(chunk.encode())
            for p in plain:
                p.unlink()
            if any(pr.returncode for pr, _ in procs):
                raise ToolError("gpg --multifile --encrypt failed")
            method = "gpg-encrypted (pass's gpg options, gpg --multifile)"
        else:
            # 100k gpg encryptions take minutes on 2 cores. A lookup decrypts
            # one file and its cost does not depend on which value is inside,
            # so the rest are copies of the real encrypted files made so far.
            pool = [(self.dir / f"{self.name(i)}.gpg").read_bytes()
                    for i in range(min(self.count, 1000))]
            if not pool:
                raise ToolError("no encrypted files to copy; use a smaller first size")
            for i in range(self.count, target):
                (self.dir / f"{self.name(i)}.gpg").write_bytes(pool[i % len(pool)])
            method = f"copies of the first {len(pool)} encrypted files"
        n = target - self.count
        if self.how and self.how[-1][1] == method:
            self.how[-1][0] += n
        else:
            self.how.append([n, method])
        self.count = target
        log(f"pass store: {self.count} secrets ({self.describe()}) "
            f"in {time.perf_counter() - t:.1f}s")

    def describe(self) -> str:
        return " + ".join(f"{c} {m}" for c, m in self.how)


def bench_pass_family(a, tmp: Path, env: dict, timer: Timer, tools: list[str]) -> list[dict]:
    records = []
    store = PassStore(tmp, env)
    pass_ver = subprocess.run(["pass", "version"], env=env, capture_output=True,
                              text=True).stdout if shutil.which("pass") else ""
    pass_ver = next((w for w in pass_ver.split() if w.startswith("v1")), "?")
    gopass_ver, gopass_o = "", True
    if "gopass" in tools:
        gopass_ver = subprocess.run(["gopass", "version"], env=env, capture_output=True,
                                    text=True).stdout.strip().split("\n")[0]
    key_note = f"{store.gpg_version}, {store.algo} key without passphrase, agent running"
    value_file = tmp / "insert-value"
    value_file.write_text(new_value() + "\n")
    failed = set()
    for size in a.sizes:
        store.grow(size, a.gpg_real_upto)
        name = store.name(size // 2)
        pop = store.describe()
        for t in ("pass", "gopass"):
            if t in tools:
                POPULATED[t] = f"{size}: {pop}"
        if "pass" in tools and "pass" not in failed:
            try:
                ms, how = timer.median_ms(f"pass show {name}", env)
                records.append(rec("pass", size, "get-process", "ms", ms,
                                   f"`pass show {name}`, {how}; pass {pass_ver}; "
                                   f"{key_note}; store: {pop}"))
                # pass insert: one gpg encryption + one file; -f overwrites the
                # same new name on every run (no prompt)
                ms, how = timer.median_ms(
                    f"pass insert -m -f bench-new/insert < {shlex.quote(str(value_file))}",
                    env, shell=True)
                records.append(rec("pass", size, "set-process", "ms", ms,
                                   f"`pass insert -m -f bench-new/insert < file`, {how}; "
                                   f"pass {pass_ver}; {key_note}; store: {pop}"))
                shutil.rmtree(store.dir / "bench-new", ignore_errors=True)
                log(f"pass @ {size}: done")
            except ToolError as e:
                log(f"pass: {e}; skipping pass")
                failed.add("pass")
        if "gopass" in tools and "gopass" not in failed:
            try:
                if gopass_o and subprocess.run(
                        ["gopass", "show", "-o", name], env=env, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL).returncode != 0:
                    gopass_o = False
                    log(f"{gopass_ver} has no `show -o`: timing `gopass show NAME`")
                cmd = f"gopass show -o {name}" if gopass_o else f"gopass show {name}"
                ms, how = timer.median_ms(cmd, env)
                extra = "" if gopass_o else " (this gopass has no -o flag)"
                records.append(rec("gopass", size, "get-process", "ms", ms,
                                   f"`{cmd}`{extra}, {how}; {gopass_ver}; {key_note}; "
                                   f"store (pass format): {pop}"))
                log(f"gopass @ {size}: done")
            except ToolError as e:
                log(f"gopass: {e}; skipping gopass")
                failed.add("gopass")
    return records


# --------------------------------------------------------------------------
# python keyring backends and the seed design (inside the venv)

KEYRING_BACKENDS = {
    "keyrings.alt": "keyrings.alt.file.EncryptedKeyring",
    "keyrings.cryptfile": "keyrings.cryptfile.cryptfile.CryptFileKeyring",
}


def bench_python_tool(a, tool: str, py: Path, tmp: Path, env: dict,
                      timer: Timer) -> list[dict]:
    records = []
    data = tmp / tool
    env = dict(env)
    if tool in KEYRING_BACKENDS:
        env["PYTHON_KEYRING_BACKEND"] = KEYRING_BACKENDS[tool]
        env["XDG_DATA_HOME"] = str(data / "xdg")  # keyring file goes under here
        env[PW_ENV] = secrets.token_urlsafe(16)  # throwaway keyring password
    for size in a.sizes:
        argv = [str(py), str(INPROC), tool, "--data", str(data), "--size", str(size),
                "--budget", str(a.budget)]
        p = subprocess.run(argv, env=env, stdout=subprocess.PIPE)
        if p.returncode != 0:
            raise ToolError(f"{INPROC.name} {tool} --size {size} exited {p.returncode}")
        out = json.loads(p.stdout)
        records += out["records"]
        POPULATED[tool] = f"{size}: {out['populated']}"
        ms, how = timer.median_ms(shlex.join([str(py), "-c", out["process_code"]]), env)
        what = ("keyring.get_password in a new python (import, backend load, "
                "unlock with reference-password check, lookup)" if tool in KEYRING_BACKENDS
                else "EncryptedFileStorage(dir).retrieve in a new python")
        records.append(rec(tool, size, "get-process", "ms", ms,
                           f"`python -c` {what}, {how}; store: {out['populated']}"))
        log(f"{tool} @ {size}: " + ", ".join(
            f"{r['op']} {fmt(r['value'])} {r['unit']}" for r in records[-3:]))
    return records


# --------------------------------------------------------------------------
# output


def rec(tool, size, op, unit, value, note) -> dict:
    return {"tool": tool, "size": size, "op": op, "unit": unit,
            "value": round(value, 3), "note": note}


def fmt(v: float) -> str:
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if v >= 0.1 else f"{v:.3g}"


def print_table(records: list[dict], sizes: list[int]) -> None:
    rows: dict[tuple, dict] = {}
    for r in records:
        rows.setdefault((r["tool"], r["op"], r["unit"]), {})[r["size"]] = r["value"]
    order = {t: i for i, t in enumerate(TOOLS)}
    ops = {"get": 0, "set": 1, "get-process": 2, "set-process": 3}
    head = f"{'tool':<20}{'op':<13}{'unit':<7}" + "".join(f"{s:>12,}" for s in sizes)
    out = ["", "secret stores other than tresor (higher ops/s, lower ms are better)",
           head, "-" * len(head)]
    for key in sorted(rows, key=lambda k: (order.get(k[0], 99), ops.get(k[1], 9))):
        vals = rows[key]
        out.append(f"{key[0]:<20}{key[1]:<13}{key[2]:<7}" + "".join(
            f"{fmt(vals[s]) if s in vals else '-':>12}" for s in sizes))
    out.append("")
    out.append("how the stores were filled (at the largest size):")
    for t, how in POPULATED.items():
        out.append(f"  {t:<20}{how}")
    out.append("(each record's note in the JSON says how it was measured)")
    print("\n".join(out), file=sys.stderr, flush=True)


# --------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(
        prog="bench-compare",
        description="Benchmark pass, gopass, python keyring file backends and seed "
                    "001's design at several store sizes; JSON records on stdout.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--sizes", help="comma-separated store sizes "
                   "(default 1000,10000,100000; --quick: 1000,10000)")
    p.add_argument("--quick", action="store_true",
                   help="fewer sizes, shorter measurements, fewer runs")
    p.add_argument("--tools", default=",".join(TOOLS),
                   help=f"comma-separated subset of {','.join(TOOLS)}")
    p.add_argument("--json", metavar="FILE", help="write the JSON here instead of stdout")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    p.add_argument("--venv", default=str(cache / "tresor-bench" / "venv"),
                   help="python venv for keyring & co. (created, or reused; default %(default)s)")
    p.add_argument("--budget", type=float,
                   help="seconds per in-process measurement (default 3, --quick 1)")
    p.add_argument("--process-budget", type=float,
                   help="seconds per whole-process measurement (default 8, --quick 2)")
    p.add_argument("--max-runs", type=int,
                   help="most runs per whole-process measurement (default 30, --quick 10)")
    p.add_argument("--gpg-real-upto", type=int, default=10000,
                   help="pass store sizes up to this are really gpg-encrypted; "
                        "beyond it, encrypted files are copied (default %(default)s)")
    a = p.parse_args()
    a.sizes = sorted({int(s.replace("_", "")) for s in
                      (a.sizes or ("1000,10000" if a.quick else "1000,10000,100000")).split(",")})
    a.budget = a.budget or (1.0 if a.quick else 3.0)
    a.process_budget = a.process_budget or (2.0 if a.quick else 8.0)
    a.max_runs = a.max_runs or (10 if a.quick else 30)
    tools = [t.strip() for t in a.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in TOOLS]
    if bad:
        p.error(f"unknown tool(s) {bad}; known: {TOOLS}")

    # Ctrl-C and SIGTERM unwind through the finally below (temp dirs, agent)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))

    log(f"bench-compare: sizes {a.sizes}, tools {tools}, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    need = ["hyperfine"]
    if {"pass", "gopass"} & set(tools):
        need += ["gpg", "gpg-agent", "gpgconf", "pass"]
    if "gopass" in tools:
        need.append("gopass")
    ensure_debs(need)
    for t, cmd in (("pass", "pass"), ("gopass", "gopass")):
        if t in tools and not shutil.which(cmd):
            log(f"{cmd} is not installed: skipping {t}")
            tools.remove(t)
    if not shutil.which("gpg") and "gopass" in tools:
        tools.remove("gopass")
    if not shutil.which("hyperfine"):
        log("hyperfine is not installed: timing whole processes with a Python loop")

    tmp = Path(tempfile.mkdtemp(prefix="tresor-bench-compare."))
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB_PREFIXES)}
    env.update(HOME=str(tmp / "home"), GNUPGHOME=str(tmp / "gnupg"),
               PASSWORD_STORE_DIR=str(tmp / "pass-store"), LC_ALL="C.UTF-8")
    (tmp / "home").mkdir(mode=0o700)
    records: list[dict] = []
    errors = 0
    try:
        timer = Timer(tmp, a.max_runs, a.process_budget)
        if {"pass", "gopass"} & set(tools):
            try:
                records += bench_pass_family(a, tmp, env, timer, tools)
            except (ToolError, subprocess.CalledProcessError) as e:
                log(f"pass/gopass: {e}")
                errors += 1
        py_tools = [t for t in tools if t in KEYRING_BACKENDS or t == "seed001"]
        if py_tools:
            py = ensure_venv(Path(a.venv))
            for t in py_tools:
                try:
                    records += bench_python_tool(a, t, py, tmp, env, timer)
                except (ToolError, subprocess.CalledProcessError, ValueError) as e:
                    log(f"{t}: {e}")
                    errors += 1
    finally:
        if (tmp / "gnupg").exists():
            for what in (["--kill", "all"], ["--remove-socketdir"]):
                subprocess.run(["gpgconf", *what], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)

    print_table(records, a.sizes)
    log(f"finished in {time.monotonic() - T0:.0f}s, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        + (f", {errors} tool(s) failed" if errors else ""))
    doc = json.dumps(records, indent=1)
    if a.json:
        Path(a.json).write_text(doc + "\n")
        log(f"JSON written to {a.json}")
    else:
        print(doc)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
