#!/usr/bin/env python3
"""HTTP throughput and latency of the JDK HTTP server fixture under wrk:
without the agent, with the agent (exporting to a real `jvmapm serve` on the
same machine), with the agent exporting nowhere (a closed port: its cost
inside the JVM alone), the same with `cpu=off`, without profiles and with
every transaction profiled from 2 ms on, and with JFR's default
profile as a reference, side by side in one run.

Builds the release agent and analyzer and the fixtures, starts the analyzer
on free ports, then for ROUNDS rounds starts HttpService in each mode,
warms it up with wrk for WARMUP seconds, measures for DURATION seconds
(`wrk -t2 -cCONNECTIONS --latency` on /fast), and stops it. Prints the
median requests/s, p50 and p99 latency per mode and the throughput ratios,
and the JVM's own CPU time per request (user + system, from /proc), which
moves less than throughput when wrk and the JVM share two cores: in total,
and split by thread (from /proc/PID/task/*/stat, read before, every 0.2 s
during and after the measured run) into the server's request threads (the
JDK server's dispatcher and the fixture's executor), the agent's own
(jvmapm-exporter, jvmapm-sampler) and the JVM's other threads (JIT
compilers, GC, VM Thread, ...), each with its difference to no agent.

BASELINE_AGENT=/path/to/libjvmapm_agent.so adds a mode with that build of
the agent (exporting nowhere), so a change is measured against the agent
before it in the same run, e.g. one built from an older commit:
  git worktree add /tmp/base COMMIT && (cd /tmp/base &&
  CARGO_TARGET_DIR=/tmp/base-target cargo build --release -p jvmapm-agent)
  BASELINE_AGENT=/tmp/base-target/release/libjvmapm_agent.so bench/agent-http.py

ENDPOINT=/sql?n=10 measures another endpoint of the fixture instead of
/fast (/sql runs n JDBC statements on Debian's H2, half of them prepared; the
H2 jar goes on the class path when it is there). ENDPOINT=/query is an
endpoint of about 1 ms, the one issue 14 asks the throughput ratio on: one
H2 query scanning the orders the fixture makes at start. (Without H2 both
answer 503, and the run stops: wrk must see only 2xx answers.)

ENDPOINT=/compute CONNECTIONS=2 is CPU-bound work of about 200 ms a request,
longer than the agent's profile_after, so every transaction is profiled
(about ten samples each): with MODES="agent, no backend|no backend, no
profiles" it measures what profiling costs a server's throughput.

MODES="no agent|baseline, no backend" runs only the modes named (separated
by |), for a longer comparison of two of them.

Usage: bench/agent-http.py   (knobs: ROUNDS=3 WARMUP=5 DURATION=10
CONNECTIONS=16 JAVA=java NO_BUILD=1 BASELINE_AGENT= ENDPOINT=/fast MODES=;
needs wrk: apt-get install wrk)
"""

import os
import shutil
import subprocess
import sys
import tempfile

from agent_bench import AGENT, CLASSES, JAVA, build, free_port, measure, print_modes, start_analyzer

ROUNDS = int(os.environ.get("ROUNDS", "3"))
WARMUP = int(os.environ.get("WARMUP", "5"))
DURATION = int(os.environ.get("DURATION", "10"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "16"))
ENDPOINT = os.environ.get("ENDPOINT", "/fast")
MODES = os.environ.get("MODES", "")
H2_JAR = "/usr/share/java/h2.jar"
# The JDK server's request threads: its dispatcher (accepts, and selects the
# connections) and the fixture's executor (pool-1-thread-N), which parses
# each request, runs the filters and the handler and writes the response.
REQUEST_THREADS = ("HTTP-Dispatcher", "pool-")


def run(mode_flags):
    server = subprocess.Popen(
        [JAVA, *mode_flags, "-cp", os.pathsep.join([str(CLASSES), H2_JAR]), "HttpService"],
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
    url = f"http://127.0.0.1:{port}{ENDPOINT}"
    result = measure(server.pid, url, WARMUP, DURATION, CONNECTIONS, REQUEST_THREADS)
    server.stdin.close()
    server.wait(timeout=30)
    return result


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
        # The same without the two thread-CPU clock reads per transaction.
        "no backend, cpu=off": [
            f"-agentpath:{AGENT}=service=bench-http,endpoint=http://127.0.0.1:{free_port()},cpu=off"
        ],
        "JFR default": ["-XX:StartFlightRecording=settings=default,filename=" + os.path.join(data, "bench.jfr")],
        # Stack samples: none at all, and every transaction sampled from 2 ms
        # on (with the default budget of 200 samples a second, so the
        # profiler spends its whole budget): what profiling costs at most.
        "no backend, no profiles": [
            f"-agentpath:{AGENT}=service=bench-http,endpoint=http://127.0.0.1:{free_port()},profile_after=off"
        ],
        "no backend, profiles from 2ms": [
            f"-agentpath:{AGENT}=service=bench-http,endpoint=http://127.0.0.1:{free_port()},"
            "profile_after=2ms,profile_interval=1ms"
        ],
    }
    baseline = os.environ.get("BASELINE_AGENT")
    if baseline:
        modes["baseline, no backend"] = [
            f"-agentpath:{baseline}=service=bench-http,endpoint=http://127.0.0.1:{free_port()}"
        ]
    if MODES:
        modes = {mode: flags for mode, flags in modes.items() if mode in MODES.split("|")}
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
    print(f"JVM: {version}; wrk -t2 -c{CONNECTIONS} {DURATION}s on {ENDPOINT} after {WARMUP}s warm-up; medians of {ROUNDS} rounds")
    print_modes(results)

if __name__ == "__main__":
    sys.exit(main())
