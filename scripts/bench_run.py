"""Helpers of scripts/bench-run: the vault's secrets, the pipe and echo
measurements, and the report with the ratios against the targets."""
import json
import os
import secrets
import select
import statistics
import string
import subprocess
import sys
import time

ALNUM = string.ascii_letters + string.digits


def setup(tresor):
    """10 secrets for the start-up figure, 1,000 under red/ for redaction."""
    names = [f"bench/s{i}" for i in range(10)] + [f"red/v{i:04d}" for i in range(1000)]
    for name in names:
        value = "".join(secrets.choice(ALNUM) for _ in range(32))
        subprocess.run([tresor, "set", name, "-q"], input=value.encode(), check=True)


def throughput(cmd, path, rounds):
    """Median seconds for `cmd` to write the file to a pipe we drain."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        p = subprocess.Popen(cmd + [path], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        fd = p.stdout.fileno()
        while os.read(fd, 1 << 20):
            pass
        p.wait()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def echo_latency(cmd, lines):
    """Median and 99th percentile ms from a line into cat until it is back."""
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    out = p.stdout.fileno()
    samples = []
    for i in range(lines):
        line = f"line {i} of interactive output\n".encode()
        start = time.perf_counter()
        os.write(p.stdin.fileno(), line)
        got = b""
        while not got.endswith(b"\n"):
            select.select([out], [], [])
            got += os.read(out, 4096)
        samples.append((time.perf_counter() - start) * 1e3)
        time.sleep(0.002)
    p.stdin.close()
    p.wait()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def report(tresor, startup_json, mib, bench_redact, json_out):
    figures = {}
    res = {r["command"]: r for r in json.load(open(startup_json))["results"]}
    run_s, get_s, true_s = [statistics.median(r["times"]) for r in res.values()]
    ratio = run_s / (get_s + true_s)
    figures["startup"] = {"run_ms": run_s * 1e3, "get_ms": get_s * 1e3,
                          "true_ms": true_s * 1e3, "ratio": ratio}
    print(f"run -- true (10 declared secrets): {run_s*1e3:.2f} ms; get: {get_s*1e3:.2f} ms; "
          f"true: {true_s*1e3:.2f} ms; run / (get + true) = {ratio:.2f}x (target <= 1.5x)")

    mib = int(mib)
    path = os.path.join(os.path.dirname(startup_json), "data.txt")
    with open(path, "wb") as f:
        # Log-like text: hex words of 1 to 24 characters, 8 to a line.
        chunk = bytearray()
        n = 0
        while len(chunk) < 1 << 20:
            n += 1
            chunk += secrets.token_hex(12)[: 1 + n % 24].encode()
            chunk += b"\n" if n % 8 == 0 else b" "
        for _ in range(mib):
            f.write(chunk[: 1 << 20])
    size = mib << 20
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)  # page cache
    rounds = 5
    alone = throughput(["cat"], path, rounds)
    plain = throughput([tresor, "run", "--prefix", "red/", "--", "cat"], path, rounds)
    red = throughput([tresor, "run", "--prefix", "red/", "--redact", "--", "cat"], path, rounds)
    figures["pipe"] = {"mib": mib, "cat_mb_s": size / alone / 1e6,
                       "run_mb_s": size / plain / 1e6, "redact_mb_s": size / red / 1e6}
    print(f"through a pipe, {mib} MiB, 1,000 secrets: cat alone {size/alone/1e6:.0f} MB/s; "
          f"run without --redact {size/plain/1e6:.0f} MB/s; run --redact "
          f"{size/red/1e6:.0f} MB/s (target >= 500); redact / cat = {alone/red:.2f}x the time")

    base = echo_latency(["cat"], 300)
    lat = echo_latency([tresor, "run", "--prefix", "red/", "--redact", "--", "cat"], 300)
    figures["echo_ms"] = {"cat": base, "redact": lat}
    print(f"echo latency (median, p99): cat alone {base[0]:.3f} / {base[1]:.3f} ms; "
          f"run --redact {lat[0]:.3f} / {lat[1]:.3f} ms (target <= 5 ms)")

    inproc = json.loads(subprocess.run([bench_redact, str(mib)], capture_output=True,
                                       check=True).stdout)
    figures["filter"] = inproc
    print(f"filter alone, {inproc['patterns']} patterns (built in {inproc['build_ms']} ms): "
          f"{inproc['filter_mb_s']} MB/s against a plain copy at {inproc['copy_mb_s']} MB/s; "
          f"a short line {inproc['line_us']} us")
    if json_out:
        with open(json_out, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(sys.argv[2])
    else:
        report(*sys.argv[2:6], sys.argv[6] if len(sys.argv) > 6 else "")
