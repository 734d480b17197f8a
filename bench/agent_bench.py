"""What the agent benchmarks (agent-overhead.py, agent-http.py,
agent-tomcat.py) share: where the release build and the compiled fixtures
live, building them, a free local port, a `jvmapm serve` to export to,
and for the HTTP benchmarks a
measured wrk run with the server's CPU time split by kind of thread, and
the report."""

import os
import re
import socket
import statistics
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
JAVA = os.environ.get("JAVA", "java")
CLASSES = TARGET / "java-fixtures"
AGENT = TARGET / "release" / "libjvmapm_agent.so"
JVMAPM = TARGET / "release" / "jvmapm"


def build(*packages):
    """Builds the release `packages` and compiles the Java fixtures, unless NO_BUILD=1."""
    if os.environ.get("NO_BUILD") == "1":
        return
    flags = [arg for package in packages for arg in ("-p", package)]
    subprocess.run(["cargo", "build", "--release", "--quiet", *flags], cwd=ROOT, check=True)
    CLASSES.mkdir(parents=True, exist_ok=True)
    sources = sorted(str(p) for p in (ROOT / "java-fixtures").glob("*.java"))
    subprocess.run(["javac", "--release", "17", "-d", str(CLASSES), *sources], check=True)


def free_port():
    """A local port nothing listens on (closed again at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_analyzer(data):
    """A release `jvmapm serve` on `data` (a directory), listening: the
    process and its OTLP/gRPC port."""
    grpc = free_port()
    server = subprocess.Popen(
        [str(JVMAPM), "serve", "--data", data, "--grpc", f"127.0.0.1:{grpc}", "--http", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for line in server.stdout:
        if "query API" in line:
            break
    return server, grpc


def wrk(url, seconds, connections):
    """`wrk -t2` on `url`: requests/s, p50 and p99 latency (ms), requests.
    Stops the benchmark if an answer was not 2xx (or 3xx)."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    failed = re.search(r"Non-2xx or 3xx responses: ([0-9]+)", out)
    if failed:
        raise SystemExit(f"{url} answered {failed.group(1)} requests with neither 2xx nor 3xx")
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    requests = int(re.search(r"([0-9]+) requests in", out).group(1))

    def latency(percentile):
        value, unit = re.search(rf"\s{percentile}%\s+([0-9.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return rate, latency(50), latency(99), requests


# The agent's threads, jvmapm-exporter and jvmapm-sampler (the kernel keeps
# the first 15 characters of a thread's name).
AGENT_THREADS = "jvmapm-"
# How often the threads' CPU times are read during a measured run, so that a
# thread that ends in it loses only what it ran after its last reading.
THREAD_SAMPLE_SECONDS = 0.2
# The columns of CPU per request: the whole process, then by kind of thread.
CPU_COLUMNS = ("total", "app", "agent", "JVM")


def stat_times(path):
    """The name (`comm`) and user plus system CPU ticks in a /proc stat file."""
    with open(path) as f:
        text = f.read()
    name, fields = text[text.index("(") + 1 :].rsplit(")", 1)
    fields = fields.split()
    return name, int(fields[11]) + int(fields[12])


def thread_times(pid):
    """{thread id: (name, CPU ticks)} of the threads process `pid` has now."""
    times = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            times[int(tid)] = stat_times(f"/proc/{pid}/task/{tid}/stat")
        except (FileNotFoundError, ProcessLookupError):
            pass  # ended since the listing
    return times


def thread_kind(name, application):
    """"agent" for the agent's threads, "app" for a name starting with one of
    the `application` prefixes (the server's request threads), else "JVM"
    (compilers, GC, VM Thread and the few other threads a server keeps)."""
    if name.startswith(AGENT_THREADS):
        return "agent"
    if name.startswith(application):
        return "app"
    return "JVM"


@dataclass
class Run:
    """One measured wrk run: requests/s, p50 and p99 (ms), the server's CPU
    microseconds per request by column (CPU_COLUMNS), and how many of its
    threads ended during the run."""

    rate: float
    p50: float
    p99: float
    cpu: dict
    threads_ended: int


def measure(pid, url, warmup, seconds, connections, application):
    """Warms `url` up with wrk, then measures it for `seconds` while reading
    the CPU time of process `pid` and of each of its threads, before, every
    THREAD_SAMPLE_SECONDS and after. A thread that starts during the run
    counts from zero; one that ends keeps its last reading: what it ran
    after that (all of it, if it started and ended between two readings)
    is in "total" only. `application` is a tuple of the thread name
    prefixes of the server's request threads."""
    wrk(url, warmup, connections)
    _, total_before = stat_times(f"/proc/{pid}/stat")
    before = thread_times(pid)
    latest = dict(before)
    done = threading.Event()

    def sample():
        while not done.wait(THREAD_SAMPLE_SECONDS):
            latest.update(thread_times(pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        rate, p50, p99, requests = wrk(url, seconds, connections)
    finally:
        done.set()
        sampler.join()
    after = thread_times(pid)
    _, total_after = stat_times(f"/proc/{pid}/stat")
    ended = len(latest.keys() - after.keys())
    latest.update(after)
    used = dict.fromkeys(CPU_COLUMNS, 0)
    used["total"] = total_after - total_before
    for tid, (name, spent) in latest.items():
        spent_before = before[tid][1] if tid in before else 0
        used[thread_kind(name, application)] += spent - spent_before
    us_per_tick = 1e6 / os.sysconf("SC_CLK_TCK")
    cpu = {column: used[column] * us_per_tick / requests for column in CPU_COLUMNS}
    return Run(rate, p50, p99, cpu, ended)


def print_modes(results):
    """A table of the modes' runs (lists of Run): medians of requests/s, p50,
    p99 and CPU per request, the throughput ratio and each CPU column's
    difference against the first mode (no agent)."""
    median = statistics.median
    runs_without = next(iter(results.values()))
    base_rate = median(r.rate for r in runs_without)
    base_cpu = {column: median(r.cpu[column] for r in runs_without) for column in CPU_COLUMNS}
    cpu_header = "".join(f"{'CPU ' + column:>21}" for column in CPU_COLUMNS)
    print(f"{'mode':29} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6}{cpu_header}")
    for mode, runs in results.items():
        rate = median(r.rate for r in runs)
        cpu_cells = ""
        for column in CPU_COLUMNS:
            cpu = median(r.cpu[column] for r in runs)
            cpu_cells += f" {cpu:9.1f} ({cpu - base_cpu[column]:+7.1f})"
        print(
            f"{mode:29} {rate:9.1f} {median(r.p50 for r in runs):7.3f} {median(r.p99 for r in runs):7.3f} "
            f"{rate / base_rate:6.3f}{cpu_cells}"
        )
    print(
        "CPU: user + system microseconds per request (/proc), in brackets against the first mode; "
        "app: the server's request threads, agent: jvmapm-*, JVM: all others (JIT, GC, VM Thread...)"
    )
    for mode, runs in results.items():
        ended = sum(r.threads_ended for r in runs)
        if ended:
            print(f"{mode}: {ended} threads ended during the measured runs; what they ran after their last reading is in CPU total only")
