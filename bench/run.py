#!/usr/bin/env python3
"""Runs the benchmark suite and writes docs/BENCHMARKS.md and docs/benchmarks.png.

Each server under test is pinned to CPU 1 and the load generator to CPU 0,
so that every server gets exactly one core. Scenarios run RUNS times,
alternating servers, and the table shows the median and the spread.

Adding a server configuration is one line in SERVERS.
"""

import datetime
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
QUICK = os.environ.get("BENCH_QUICK") == "1"

# Limits that would throttle a load test are lifted for Zerorelay; everything
# else (sessions, outboxes, acks, seqs) stays on.
ZR_SETS = [
    "--set", "limits.rate_per_sec=100000000", "--set", "limits.rate_burst=100000000",
    "--set", "server.max_connections=1000000", "--set", "session.max_sessions=1000000",
    "--set", "server.max_handshaking_per_ip=1000000", "--set", "session.max_per_user=1000000",
    "--set", "server.worker_threads=1", "--log-level", "warn",
]

# name, command (with {port}), protocol, extra environment
SERVERS = [
    ("zerorelay", [os.path.join(BIN, "zerorelay"), "serve", "--listen", "127.0.0.1:{port}", *ZR_SETS], "zerorelay", {}),
    ("baseline", [os.path.join(BIN, "baseline"), "--listen", "127.0.0.1:{port}", "--threads", "1"], "raw", {}),
    ("ws", ["node", os.path.join(ROOT, "bench/node/ws-server.js")], "raw", {"PORT": "{port}"}),
    ("socket.io", ["node", os.path.join(ROOT, "bench/node/socketio-server.js")], "socketio", {"PORT": "{port}"}),
]

SCENARIOS = [
    # name, loadgen arguments, servers (None = all)
    ("fanout", ["--scenario", "fanout", "--subscribers", "1000", "--seconds", "5"], None),
    # The same fan-out with the raw servers' payload padded to 223 bytes, the
    # size of Zerorelay's `message` frame around 64-byte data: equal bytes on
    # the wire, so the ratio measures the implementation, not protocol v1.
    ("fanout223", ["--scenario", "fanout", "--subscribers", "1000", "--seconds", "5", "--raw-payload-bytes", "223"], ["zerorelay", "baseline"]),
    # The same fan-out with a deeper in-flight window: how each server's
    # batching (deliveries per write) follows the load it is offered.
    ("fanout_w64", ["--scenario", "fanout", "--subscribers", "1000", "--seconds", "5", "--window", "64"], ["zerorelay", "baseline"]),
    ("fanout_w128", ["--scenario", "fanout", "--subscribers", "1000", "--seconds", "5", "--window", "128"], ["zerorelay", "baseline"]),
    ("paced", ["--scenario", "paced", "--subscribers", "1000", "--rate", "20", "--seconds", "5"], None),
    ("direct", ["--scenario", "direct", "--pairs", "100", "--rate", "10", "--seconds", "5"], ["zerorelay"]),
    ("churn", ["--scenario", "churn", "--concurrency", "64", "--seconds", "5"], None),
    ("idle10k", ["--scenario", "idle", "--connections", "10000", "--concurrency", "64"], None),
    ("idle50k", ["--scenario", "idle", "--connections", "50000", "--concurrency", "64"], None),
]
if QUICK:
    SCENARIOS = [s for s in SCENARIOS if s[0] not in ("idle50k",)]


SKIPPED = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit():
    want = 400_000
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_server(name, cmd, env_extra):
    port = free_port()
    cmd = [c.replace("{port}", str(port)) for c in cmd]
    env = dict(os.environ)
    env.update({k: v.replace("{port}", str(port)) for k, v in env_extra.items()})
    p = subprocess.Popen(["taskset", "-c", "1", *cmd], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    line = p.stdout.readline()
    if "listening" not in line:
        p.kill()
        raise RuntimeError(f"{name} did not start: {line!r}")
    time.sleep(0.3)
    return p, port


def run_one(server, scenario, wrap=(), extra_args=(), during=None):
    """Runs one scenario against a fresh server.

    `wrap` goes before the server's command (valgrind), `extra_args` after
    the load generator's, and `during(pid)` starts an observer of the server
    that is stopped when the load generator is done (it returns a callable
    that stops it).
    """
    name, cmd, proto, env_extra = server
    sname, args, only = scenario
    p, port = start_server(name, [*wrap, *cmd], env_extra)
    stop = during(p.pid) if during else None
    try:
        out = subprocess.run(
            ["taskset", "-c", "0", os.path.join(BIN, "loadgen"), "--proto", proto,
             "--url", f"ws://127.0.0.1:{port}/ws", "--label", name, "--server-pid", str(p.pid),
             *args, *extra_args],
            capture_output=True, text=True, timeout=300,
        )
        sys.stderr.write(out.stderr)
        if out.returncode != 0:
            print(f"  {name} {sname}: loadgen failed ({out.returncode})", file=sys.stderr)
            return None
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["scenario"] = sname
        return result
    finally:
        if stop:
            stop()
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# The profile: where each server's time goes per delivery, in the fan-out
# scenario and in the paced one (every delivery a turn of its own). Callgrind counts user-space instructions in the measured window
# (the load generator zeroes the counters when the window opens and dumps
# them when it closes); `perf stat` counts the system calls of a normal run.
PROFILED = ["zerorelay", "baseline"]
PROFILE_SCENARIO = ("fanout", ["--scenario", "fanout", "--subscribers", "1000", "--seconds", "5"], None)
# One message at a time (each its own write): the fixed cost of a turn.
PACED_PROFILE_SCENARIO = ("paced", ["--scenario", "paced", "--subscribers", "1000", "--rate", "5", "--seconds", "4"], None)
SYSCALLS = ["sendto", "recvfrom", "epoll_wait"]
PROFILE_FILE = os.path.join(ROOT, "docs/bench-profile.jsonl")


def self_costs(path):
    """Instructions per function (self cost) and the total, from a callgrind dump."""
    names, cost, fn, skip = {}, {}, None, False

    def name(ref):
        ident, _, text = ref.partition(" ")
        if text:
            names[ident] = text
        return names.get(ident, ident)

    for line in open(path):
        if line.startswith("fn="):
            fn = name(line[3:].strip())
        elif line.startswith("cfn="):
            name(line[4:].strip())
        elif line.startswith("calls="):
            skip = True  # the next cost line is the callee's inclusive cost
        elif line[:1].isdigit() or line[:1] in "+-*":
            if skip:
                skip = False
                continue
            parts = line.split()
            if len(parts) >= 2 and fn is not None:
                cost[fn] = cost.get(fn, 0) + int(parts[1])
    return cost, sum(cost.values())


def callgrind_profile(server, outdir, scenario=PROFILE_SCENARIO, kind="callgrind"):
    name = server[0]
    out = os.path.join(outdir, f"{name}-{kind}.out")
    wrap = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    r = run_one(server, scenario, wrap=wrap, extra_args=["--callgrind"])
    if r is None:
        return None
    # The load generator's dump, the first after the counters were zeroed
    # (the dump at exit goes to the file without a number).
    cost, total = self_costs(out + ".1")
    delivered = r["delivered"]
    top = sorted(cost.items(), key=lambda kv: -kv[1])[:12]
    return {
        "server": name, "profile": kind, "delivered": delivered,
        "instructions": total, "instructions_per_delivery": total / delivered,
        "top": [[fn, c / delivered] for fn, c in top],
    }


def syscall_profile(server, outdir):
    name = server[0]
    out = os.path.join(outdir, f"{name}.perfstat")

    def perf_stat(pid):
        events = ",".join(f"syscalls:sys_enter_{c}" for c in SYSCALLS)
        perf = subprocess.Popen(["perf", "stat", "-x,", "-e", events, "-p", str(pid), "-o", out],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop():
            perf.send_signal(2)  # SIGINT: perf stat writes its counts and exits
            perf.wait(timeout=30)
        return stop

    r = run_one(server, PROFILE_SCENARIO, during=perf_stat)
    if r is None:
        return None
    counts = {}
    for line in open(out):
        f = line.strip().split(",")
        if len(f) > 2 and f[2].startswith("syscalls:sys_enter_") and f[0].isdigit():
            counts[f[2].removeprefix("syscalls:sys_enter_")] = int(f[0])
    # Counted over the whole run (setup included: a few thousand calls
    # against millions), so divided by every delivery of the run.
    delivered = r["delivered_in_run"]
    return {
        "server": name, "profile": "syscalls", "delivered": delivered,
        "deliveries_per_server_cpu_s": r["deliveries_per_server_cpu_s"],
        "per_delivery": {c: counts.get(c, 0) / delivered for c in SYSCALLS},
    }


def paced_callgrind_profile(server, outdir):
    return callgrind_profile(server, outdir, PACED_PROFILE_SCENARIO, "callgrind_paced")


def profile():
    import shutil
    import tempfile

    missing = [t for t in ("valgrind", "callgrind_control", "perf") if shutil.which(t) is None]
    if missing:
        print(f"profile skipped: {', '.join(missing)} not installed (make bench installs them)", file=sys.stderr)
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="zerorelay-profile-") as outdir:
        for name in PROFILED:
            server = next(s for s in SERVERS if s[0] == name)
            for measure in (callgrind_profile, paced_callgrind_profile, syscall_profile):
                r = measure(server, outdir)
                if r is not None:
                    print(json.dumps(r))
                    results.append(r)
    with open(PROFILE_FILE, "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")


def profile_section():
    if not os.path.exists(PROFILE_FILE):
        return []
    with open(PROFILE_FILE) as f:
        rs = [json.loads(line) for line in f if line.strip()]
    by = {(r["server"], r["profile"]): r for r in rs}
    names = [n for n in PROFILED if (n, "callgrind") in by or (n, "syscalls") in by]
    if not names:
        return []

    def cell(n, kind, get, f):
        r = by.get((n, kind))
        return f(get(r)) if r else "–"

    lines = [
        "## Profile: the cost of one delivery",
        "",
        "The fan-out scenario again, once per server, by `make bench` (or `bench/run.py --profile`), "
        "and the paced scenario at 5 messages/s, where every delivery is a turn of its own. "
        "User-space instructions come from callgrind, counted only in the measured window (the load generator zeroes the counters when the window opens and dumps them when it closes); "
        "under callgrind the server is the bottleneck, so its batches are larger than in the table above. "
        "System calls come from `perf stat` on a normal run, divided by every delivery of that run.",
        "",
        "| | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---" for _ in names) + " |",
        "| user-space instructions per delivery | " + " | ".join(cell(n, "callgrind", lambda r: r["instructions_per_delivery"], lambda v: f"{v:,.0f}") for n in names) + " |",
        "| the same, each message its own write (paced, 5 messages/s) | " + " | ".join(cell(n, "callgrind_paced", lambda r: r["instructions_per_delivery"], lambda v: f"{v:,.0f}") for n in names) + " |",
    ]
    for c in SYSCALLS:
        lines.append(f"| `{c}` calls per 1,000 deliveries | " + " | ".join(
            cell(n, "syscalls", lambda r: r["per_delivery"][c] * 1000, lambda v: f"{v:,.1f}") for n in names) + " |")
    lines.append("| deliveries per `sendto` | " + " | ".join(
        cell(n, "syscalls", lambda r: r["per_delivery"]["sendto"], lambda v: f"{1 / v:,.1f}" if v else "–") for n in names) + " |")
    lines.append("| deliveries per server-CPU-s in that run | " + " | ".join(
        cell(n, "syscalls", lambda r: r["deliveries_per_server_cpu_s"], lambda v: f"{v:,.0f}") for n in names) + " |")
    for n in names:
        r = by.get((n, "callgrind"))
        if not r:
            continue
        lines += ["", f"Where {n}'s instructions go (self cost per delivery, top functions):", "",
                  "| instructions | function |", "| ---: | --- |"]
        for fn, v in r["top"]:
            short = fn if len(fn) <= 110 else fn[:107] + "…"
            lines.append(f"| {v:,.1f} | `{short}` |")
    return lines


def metric(results, server, scenario, path):
    vals = []
    for r in results:
        if r["server"] == server and r["scenario"] == scenario:
            v = r
            for k in path:
                v = v.get(k) if isinstance(v, dict) else None
            if v is not None:
                vals.append(float(v))
    return vals


def fmt(vals, unit="", scale=1.0, digits=0):
    if not vals:
        return "–"
    med = statistics.median(vals) / scale
    lo, hi = min(vals) / scale, max(vals) / scale
    return f"{med:,.{digits}f}{unit} ({lo:,.{digits}f}–{hi:,.{digits}f})"


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return cpu, os.cpu_count(), platform.release()


def write_report(results):
    names = [s[0] for s in SERVERS]
    cpu, cores, kernel = machine()
    today = datetime.date.today().isoformat()
    lines = [
        "# Benchmarks",
        "",
        f"Measured {today} on {cpu}, {cores} cores, Linux {kernel}, by `make bench`: each server pinned to one core (CPU 1) with one runtime thread where it has a setting for it, the load generator on the other core (CPU 0), {RUNS} runs per scenario alternating servers (idle memory: one run). Cells show the median and, in parentheses, the lowest and highest run.",
        "",
        "| scenario | metric | " + " | ".join(names) + " |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]

    def row(scenario, label, path, **kw):
        cells = [fmt(metric(results, n, scenario, path), **kw) for n in names]
        lines.append(f"| {scenario} | {label} | " + " | ".join(cells) + " |")

    row("fanout", "deliveries/s", ["deliveries_per_s"])
    row("fanout", "deliveries per server-CPU-s", ["deliveries_per_server_cpu_s"])
    row("fanout", "server CPU used (s per run)", ["server_cpu_s"], digits=2)
    row("fanout", "load generator CPU (s per run)", ["loadgen_cpu_s"], digits=2)
    row("fanout", "frame bytes per delivery", ["frame_bytes"])
    row("fanout", "lost messages", ["loss"])
    row("fanout", "duplicates", ["duplicates"])
    row("fanout223", "deliveries per server-CPU-s", ["deliveries_per_server_cpu_s"])
    row("fanout223", "frame bytes per delivery", ["frame_bytes"])
    row("fanout223", "lost messages", ["loss"])
    row("fanout223", "duplicates", ["duplicates"])
    for w in ("fanout_w64", "fanout_w128"):
        row(w, "deliveries per server-CPU-s", ["deliveries_per_server_cpu_s"])
        row(w, "latency p50 (µs)", ["latency_us", "p50"])
        row(w, "lost messages", ["loss"])
        row(w, "duplicates", ["duplicates"])
    row("paced", "lost messages", ["loss"])
    row("paced", "latency p50 (µs)", ["latency_us", "p50"])
    row("paced", "latency p99 (µs)", ["latency_us", "p99"])
    row("paced", "latency max (µs)", ["latency_us", "max"])
    row("direct", "round trip p50 (µs)", ["rtt_us", "p50"])
    row("direct", "round trip p99 (µs)", ["rtt_us", "p99"])
    row("churn", "connect + hello per s", ["per_second"])
    row("idle10k", "server RSS per connection (bytes)", ["bytes_per_connection"])
    row("idle50k", "server RSS per connection (bytes)", ["bytes_per_connection"])
    def med(server, scenario, path):
        v = metric(results, server, scenario, path)
        return statistics.median(v) if v else None

    def ratio(scenario, path):
        z, b = med("zerorelay", scenario, path), med("baseline", scenario, path)
        return z / b if z is not None and b else None

    eff, eff_eq = ratio("fanout", ["deliveries_per_server_cpu_s"]), ratio("fanout223", ["deliveries_per_server_cpu_s"])
    p99 = ratio("paced", ["latency_us", "p99"])
    idle = med("zerorelay", "idle10k", ["bytes_per_connection"])
    targets = []
    if eff is not None:
        targets.append(f"fan-out deliveries per server-CPU-second {eff:.0%} of the baseline's (target ≥ 90%)")
    if eff_eq is not None:
        targets.append(f"{eff_eq:.0%} with equal bytes on the wire")
    for w in ("fanout_w64", "fanout_w128"):
        e = ratio(w, ["deliveries_per_server_cpu_s"])
        if e is not None:
            targets.append(f"{e:.0%} with a window of {w.removeprefix('fanout_w')} messages")
    if p99 is not None:
        targets.append(f"paced p99 {p99:.2f}× the baseline's (target ≤ 1.2×)")
    if idle is not None:
        targets.append(f"{idle:,.0f} bytes per idle connection (target ≤ 5,120)")
    if targets:
        lines += ["", "Zerorelay against the baseline, medians of this run: " + "; ".join(targets) + "."]
    bottlenecks = sorted({(r["server"], r.get("bottleneck")) for r in results if r["scenario"] == "fanout"})
    lines += [
        "",
        "Fan-out: 1,000 subscribers in one group, one publisher, 64-byte payloads carrying a send time, the publisher at most 32 messages ahead of the average subscriber; 5 measured seconds after 1 s of warm-up. Zero loss and zero duplicates are checked for every subscriber. Fanout223: the same, with the baseline's payload padded to 223 bytes, the size of Zerorelay's whole `message` frame (seq, kind, sender, session, group, timestamp around the same 64-byte data), so that both put the same bytes on the wire. Fanout_w64 and fanout_w128: the fan-out with the publisher up to 64 or 128 messages ahead. Paced: the same at 20 messages/s, where neither side is saturated. Direct: 100 pairs, each sending 10 messages/s to its partner, which echoes (Zerorelay only: the other servers have no addressing). Churn: 64 workers connecting, saying hello (or the Socket.IO handshake) and closing. Idle: connections joined to a group, server resident memory growth divided by the connection count.",
        "",
        "Bottleneck in fan-out (a side above 90% of its core): " + ", ".join(f"{s}: {b}" for s, b in bottlenecks) + ".",
        "",
        *(["Not measured here: " + "; ".join(SKIPPED) + " (the hard limit cannot be raised inside this sandbox)."] if SKIPPED else []),
        "",
        "![Fan-out efficiency and paced latency](benchmarks.png)",
        "",
        "## Reproduce",
        "",
        "```sh",
        "make bench            # builds release binaries, installs ws, socket.io, valgrind and perf, runs everything",
        "BENCH_RUNS=5 make bench",
        "make bench-profile    # only the profile (callgrind and perf stat), then the report again",
        "```",
        "",
        "Raw results, one JSON object per run: [`bench-results.jsonl`](bench-results.jsonl); the profile's: [`bench-profile.jsonl`](bench-profile.jsonl).",
    ]
    prof = profile_section()
    if prof:
        lines += ["", *prof]
    findings = os.path.join(ROOT, "bench/findings.md")
    if os.path.exists(findings):
        lines += ["", open(findings).read().rstrip()]
    with open(os.path.join(ROOT, "docs/BENCHMARKS.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(ROOT, "docs/bench-results.jsonl"), "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    chart(results, names)


def chart(results, names):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart", file=sys.stderr)
        return
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4))
    eff = [statistics.median(metric(results, n, "fanout", ["deliveries_per_server_cpu_s"]) or [0]) / 1e6 for n in names]
    p99 = [statistics.median(metric(results, n, "paced", ["latency_us", "p99"]) or [0]) / 1e3 for n in names]
    p50 = [statistics.median(metric(results, n, "paced", ["latency_us", "p50"]) or [0]) / 1e3 for n in names]
    a.bar(names, eff, color="#3b7dd8")
    a.set_title("Fan-out: million deliveries per server-CPU-second")
    b.bar([f"{n}\np50" for n in names], p50, color="#7fb3f0")
    b.bar([f"{n}\np99" for n in names], p99, color="#d8743b")
    b.set_title("Paced fan-out latency (ms)")
    b.tick_params(axis="x", labelsize=7)
    windows = [("fanout", "32"), ("fanout_w64", "64"), ("fanout_w128", "128")]
    for i, (n, color) in enumerate([("zerorelay", "#3b7dd8"), ("baseline", "#999999")]):
        ys = [statistics.median(metric(results, n, w, ["deliveries_per_server_cpu_s"]) or [0]) / 1e6 for w, _ in windows]
        c.bar([j + i * 0.4 for j in range(len(windows))], ys, width=0.4, color=color, label=n)
    c.set_xticks([j + 0.2 for j in range(len(windows))], [f"{label} ahead" for _, label in windows])
    c.set_title("Fan-out by publisher window: M deliveries per CPU-s")
    c.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(ROOT, "docs/benchmarks.png"), dpi=110)


def fd_limit():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def unmeasurable():
    """Scenarios that need more open files than this machine allows, with why."""
    limit = fd_limit()
    out = []
    for s in SCENARIOS:
        if s[0].startswith("idle"):
            n = int(s[1][s[1].index("--connections") + 1])
            if n + 1000 > limit:
                out.append((s, f"{s[0]}: {n:,} connections need more than this machine's limit of {limit:,} open files per process"))
    return out


def report_from(path):
    """Rewrites the report from saved results (no measuring)."""
    with open(path) as f:
        results = [json.loads(line) for line in f if line.strip()]
    SKIPPED.extend(why for _, why in unmeasurable())
    write_report(results)


def rbac_config(path):
    """20 roles of 10 wildcard patterns each; the last allows the bench group
    (ben*), so a publish walks every rule of its action."""
    lines = ["[auth]", "default_roles = [" + ", ".join(f'"role{r}"' for r in range(20)) + "]"]
    for r in range(20):
        allow = [f'"publish:team-{r}-{p}-*"' for p in range(10)]
        if r == 19:
            allow[9] = '"publish:ben*"'
            allow.append('"join:ben*"')
        lines += [f"[auth.roles.role{r}]", "allow = [" + ", ".join(allow) + "]"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def rbac():
    """Fan-out with and without 20 roles / 200 patterns, alternating."""
    import tempfile
    cfg = os.path.join(tempfile.mkdtemp(), "rbac.toml")
    rbac_config(cfg)
    off = SERVERS[0]
    on = ("zerorelay+rbac", [*off[1], "--config", cfg], off[2], off[3])
    compare(off, on)


def metrics():
    """Fan-out with metrics on (the default) and off, alternating, with the
    bare tokio-tungstenite relay as the baseline of the same run."""
    on = SERVERS[0]
    off = ("zerorelay-metrics-off", [*on[1], "--set", "metrics.enabled=false"], on[2], on[3])
    compare(off, on, SERVERS[1])


def compare(off, on, baseline=None):
    """Runs the fan-out scenario for each server in turn, RUNS times,
    alternating the order, and prints each one's rates."""
    scenario = SCENARIOS[0]
    servers = [off, on] + ([baseline] if baseline else [])
    rows = {s[0]: [] for s in servers}
    for run in range(RUNS):
        for server in (servers if run % 2 == 0 else servers[::-1]):
            r = run_one(server, scenario)
            if r is not None:
                print(json.dumps(r))
                rows[server[0]].append(r)
    for name, rs in rows.items():
        rates = sorted(round(r["deliveries_per_server_cpu_s"]) for r in rs)
        print(f"{name}: deliveries per server-CPU-second {rates}")


def main():
    raise_fd_limit()
    if sys.argv[1:] == ["--rbac"]:
        rbac()
        return
    if sys.argv[1:] == ["--metrics"]:
        metrics()
        return
    if sys.argv[1:] == ["--profile"]:
        # Profile only, then the report again from the saved results.
        profile()
        report_from(os.path.join(ROOT, "docs/bench-results.jsonl"))
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--report-from":
        report_from(sys.argv[2])
        return
    for s, why in unmeasurable():
        print("skipped " + why, file=sys.stderr)
        SCENARIOS.remove(s)
        SKIPPED.append(why)
    results = []
    for run in range(RUNS):
        order = SERVERS if run % 2 == 0 else list(reversed(SERVERS))
        for scenario in SCENARIOS:
            # Memory per idle connection barely moves between runs; it is
            # measured once (the slowest scenario to set up).
            if scenario[0].startswith("idle") and run > 0:
                continue
            for server in order:
                if scenario[2] is not None and server[0] not in scenario[2]:
                    continue
                r = run_one(server, scenario)
                if r is not None:
                    r["run"] = run + 1
                    print(json.dumps(r))
                    results.append(r)
    profile()
    write_report(results)


if __name__ == "__main__":
    main()
