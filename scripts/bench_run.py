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


def setup(tresor, work):
    """10 secrets for the start-up figure, 1,000 under red/ for redaction:
    one `tresor import json` (the file is shredded after the import)."""
    names = [f"bench/s{i}" for i in range(10)] + [f"red/v{i:04d}" for i in range(1000)]
    values = {n: "".join(secrets.choice(ALNUM) for _ in range(32)) for n in names}
    path = os.path.join(work, "import.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f)
    subprocess.run([tresor, "import", "json", path, "--shred", "-q"], check=True,
                   stdout=subprocess.DEVNULL)


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


def instructions(argv, work):
    """Instructions the command executes, children included (callgrind)."""
    import glob
    for f in glob.glob(os.path.join(work, "cg.out.*")):
        os.remove(f)
    subprocess.run(["valgrind", "--tool=callgrind", "--trace-children=yes",
                    f"--callgrind-out-file={work}/cg.out.%p"] + argv,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    total = 0
    for f in glob.glob(os.path.join(work, "cg.out.*")):
        for line in open(f):
            if line.startswith(("summary:", "totals:")):
                total += int(line.split()[1])
                break
    return total


def cpu_throughput(cmd, path, rounds):
    """Median CPU seconds (user + system, children included) of `cmd FILE`."""
    import resource
    times = []
    for _ in range(rounds):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.Popen(cmd + [path], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        fd = p.stdout.fileno()
        while os.read(fd, 1 << 20):
            pass
        p.wait()
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    return statistics.median(times)


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def report(tresor, startup_json, mib, bench_redact, json_out, fnox_version=""):
    figures = {"load_before": load(), "cores": os.cpu_count()}
    rows = []  # (figure, tresor, baseline, ratio or verdict, target)
    res = json.load(open(startup_json))["results"]
    med = [statistics.median(r["times"]) * 1e3 for r in res]
    run_ms, get_ms, true_ms = med[:3]
    ratio = run_ms / (get_ms + true_ms)
    figures["startup"] = {"run_ms": run_ms, "get_ms": get_ms, "true_ms": true_ms,
                          "ratio": ratio}
    rows.append(("run -- true, 10 declared secrets (wall)", f"{run_ms:.2f} ms",
                 f"get {get_ms:.2f} + true {true_ms:.2f} ms",
                 f"{ratio:.2f}x", "<= 1.5x"))
    cpu_ms = [(r["user"] + r["system"]) * 1e3 for r in res]  # hyperfine: means
    c_ratio = cpu_ms[0] / (cpu_ms[1] + cpu_ms[2])
    figures["startup"]["cpu_ms"] = cpu_ms[:3]
    rows.append(("run -- true, 10 declared secrets (CPU, mean)", f"{cpu_ms[0]:.2f} ms",
                 f"get {cpu_ms[1]:.2f} + true {cpu_ms[2]:.2f} ms", f"{c_ratio:.2f}x",
                 "<= 1.5x"))
    work = os.path.dirname(startup_json)
    names = [r["command"] for r in res]
    ir = [instructions(c.split(), work) for c in names]
    figures["startup"]["instructions"] = dict(zip(names, ir))
    i_ratio = ir[0] / (ir[1] + ir[2])
    rows.append(("run -- true, 10 declared secrets (instructions)",
                 f"{ir[0] / 1e6:.2f} M", f"get {ir[1] / 1e6:.2f} M + true {ir[2] / 1e6:.2f} M",
                 f"{i_ratio:.2f}x", "<= 1.5x"))
    if len(med) >= 5:
        fx_ms, fget_ms = med[3:5]
        figures["fnox"] = {"version": fnox_version, "exec_ms": fx_ms, "get_ms": fget_ms}
        figures["fnox"]["cpu_ms"] = cpu_ms[3:5]
        for label, t_i, f_i in (("exec -- true, 10 age secrets", 0, 3),
                                ("get, one secret", 1, 4)):
            rows.append((f"vs {fnox_version} {label}: wall",
                         f"{med[t_i]:.2f} ms", f"{med[f_i]:.2f} ms",
                         f"tresor {med[f_i] / med[t_i]:.2f}x faster", "-"))
            rows.append((f"vs {fnox_version} {label}: CPU",
                         f"{cpu_ms[t_i]:.2f} ms", f"{cpu_ms[f_i]:.2f} ms",
                         f"tresor {cpu_ms[f_i] / cpu_ms[t_i]:.2f}x less", "-"))
            rows.append((f"vs {fnox_version} {label}: instructions",
                         f"{ir[t_i] / 1e6:.2f} M", f"{ir[f_i] / 1e6:.2f} M",
                         f"tresor {ir[f_i] / ir[t_i]:.2f}x fewer", "-"))

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
    rows.append((f"run --redact -- cat, {mib} MiB to a pipe, 1,000 secrets (wall)",
                 f"{size / red / 1e6:.0f} MB/s",
                 f"cat {size / alone / 1e6:.0f} MB/s; run without --redact "
                 f"{size / plain / 1e6:.0f} MB/s",
                 f"{red / alone:.1f}x cat's time", ">= 500 MB/s"))
    c_alone = cpu_throughput(["cat"], path, rounds)
    c_red = cpu_throughput([tresor, "run", "--prefix", "red/", "--redact", "--", "cat"], path,
                           rounds)
    filt = max(c_red - c_alone, 1e-9)
    figures["pipe"]["cpu_s"] = {"cat": c_alone, "redact": c_red}
    rows.append((f"run --redact -- cat, {mib} MiB (CPU of tresor and cat)",
                 f"{c_red:.2f} s", f"cat alone {c_alone:.2f} s",
                 f"tresor's share: {size / filt / 1e6:.0f} MB per CPU second", ">= 500 MB/s"))

    base = echo_latency(["cat"], 300)
    lat = echo_latency([tresor, "run", "--prefix", "red/", "--redact", "--", "cat"], 300)
    figures["echo_ms"] = {"cat": base, "redact": lat}
    rows.append(("echo through run --redact -- cat (median / p99)",
                 f"{lat[0]:.3f} / {lat[1]:.3f} ms", f"cat {base[0]:.3f} / {base[1]:.3f} ms",
                 f"+{lat[0] - base[0]:.3f} ms", "<= 5 ms"))

    inproc = json.loads(subprocess.run([bench_redact, str(mib)], capture_output=True,
                                       check=True).stdout)
    figures["filter"] = inproc
    rows.append((f"filter alone, {inproc['patterns']} patterns (CPU time)",
                 f"{inproc['filter_mb_s']} MB/s", f"copy {inproc['copy_mb_s']} MB/s",
                 f"one line {inproc['line_us']} us; built in {inproc['build_ms']} ms",
                 ">= 500 MB/s"))
    figures["load_after"] = load()

    print(f"cores {figures['cores']}, load average {figures['load_before']} before, "
          f"{figures['load_after']} after")
    head = ("figure", "tresor", "baseline", "ratio", "target")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(5)]
    for r in [head, tuple("-" * w for w in widths)] + rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
    if json_out:
        with open(json_out, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(sys.argv[2], sys.argv[3])
    else:
        report(*sys.argv[2:6], *sys.argv[6:8])
