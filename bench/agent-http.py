#!/usr/bin/env python3
"""HTTP throughput and latency of the JDK HTTP server fixture under wrk:
without the agent, with the agent (exporting to a real `jvmapm serve` on the
same machine), with the agent exporting nowhere (a closed port: its cost
inside the JVM alone), and with JFR's default profile as a reference, side
by side in one run.

Builds the release agent and analyzer and the fixtures, starts the analyzer
on free ports, then for ROUNDS rounds starts HttpService in each mode,
warms it up with wrk for WARMUP seconds, measures for DURATION seconds
(`wrk -t2 -cCONNECTIONS --latency` on /fast), and stops it. Prints the
median requests/s, p50 and p99 latency per mode and the throughput ratios,
and the JVM's own CPU time per request (user + system, from /proc), which
moves less than throughput when wrk and the JVM share two cores.

Usage: bench/agent-http.py   (knobs: ROUNDS=3 WARMUP=5 DURATION=10
CONNECTIONS=16 JAVA=java NO_BUILD=1; needs wrk: apt-get install wrk)
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

from agent_bench import AGENT, CLASSES, JAVA, JVMAPM, build, free_port

ROUNDS = int(os.environ.get("ROUNDS", "3"))
WARMUP = int(os.environ.get("WARMUP", "5"))
DURATION = int(os.environ.get("DURATION", "10"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "16"))


def start_analyzer(data):
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


def wrk(port, seconds):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}/fast"],
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


def run(mode_flags):
    server = subprocess.Popen(
        [JAVA, *mode_flags, "-cp", str(CLASSES), "HttpService"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    # JFR prints a line of its own first.
    line = server.stdout.readline()
    while not line.startswith("port "):
        line = server.stdout.readline()
    port = int(line.split()[1])
    wrk(port, WARMUP)
    cpu_before = cpu_seconds(server.pid)
    rate, p50, p99, requests = wrk(port, DURATION)
    cpu_us_per_request = (cpu_seconds(server.pid) - cpu_before) * 1e6 / requests
    server.stdin.close()
    server.wait(timeout=30)
    return rate, p50, p99, cpu_us_per_request


def main():
    if shutil.which("wrk") is None:
        sys.exit("agent-http.py needs wrk: apt-get install wrk")
    build("jvmapm-agent", "jvmapm")
    data = tempfile.mkdtemp(prefix="jvmapm-bench-")
    analyzer, grpc = start_analyzer(data)
    modes = {
        "no agent": [],
        "jvmapm agent": [f"-agentpath:{AGENT}=service=bench-http,endpoint=http://127.0.0.1:{grpc}"],
        # The same, exporting nowhere: what the agent costs inside the JVM,
        # without the encoding and the co-located analyzer's ingest.
        "agent, no backend": [f"-agentpath:{AGENT}=service=bench-http,endpoint=http://127.0.0.1:{free_port()}"],
        "JFR default": ["-XX:StartFlightRecording=settings=default,filename=" + os.path.join(data, "bench.jfr")],
    }
    results = {mode: [] for mode in modes}
    try:
        for _ in range(ROUNDS):
            for mode, flags in modes.items():
                results[mode].append(run(flags))
    finally:
        analyzer.terminate()
        analyzer.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
    version = subprocess.run([JAVA, "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    print(f"JVM: {version}; wrk -t2 -c{CONNECTIONS} {DURATION}s on /fast after {WARMUP}s warm-up; medians of {ROUNDS} rounds")
    median = statistics.median
    base = median(r[0] for r in results["no agent"])
    base_cpu = median(r[3] for r in results["no agent"])
    for mode, runs in results.items():
        rate = median(r[0] for r in runs)
        cpu = median(r[3] for r in runs)
        print(
            f"{mode:17} {rate:9.0f} req/s  p50 {median(r[1] for r in runs):6.3f} ms  "
            f"p99 {median(r[2] for r in runs):6.3f} ms  ratio {rate / base:.3f}  "
            f"JVM CPU {cpu:5.1f} us/req ({cpu - base_cpu:+5.1f})"
        )


if __name__ == "__main__":
    sys.exit(main())
