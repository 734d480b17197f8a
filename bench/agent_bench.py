"""What the agent benchmarks (agent-overhead.py, agent-http.py,
agent-tomcat.py) share: where the release build and the compiled fixtures
live, building them, a free local port, a wrk run and a process's CPU time."""

import os
import re
import socket
import statistics
import subprocess
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


def wrk(url, seconds, connections):
    """`wrk -t2` on `url`: requests/s, p50 and p99 latency (ms), requests."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    requests = int(re.search(r"([0-9]+) requests in", out).group(1))

    def latency(percentile):
        value, unit = re.search(rf"\s{percentile}%\s+([0-9.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return rate, latency(50), latency(99), requests


def cpu_seconds(pid):
    """User plus system CPU time of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_modes(results):
    """One line per mode from its runs' (req/s, p50, p99, CPU us/request):
    medians, the throughput ratio and the CPU per request against the
    first mode (no agent)."""
    median = statistics.median
    runs_without = next(iter(results.values()))
    base = median(r[0] for r in runs_without)
    base_cpu = median(r[3] for r in runs_without)
    for mode, runs in results.items():
        rate = median(r[0] for r in runs)
        cpu = median(r[3] for r in runs)
        print(
            f"{mode:20} {rate:9.0f} req/s  p50 {median(r[1] for r in runs):6.3f} ms  "
            f"p99 {median(r[2] for r in runs):6.3f} ms  ratio {rate / base:.3f}  "
            f"JVM CPU {cpu:5.1f} us/req ({cpu - base_cpu:+5.1f})"
        )
