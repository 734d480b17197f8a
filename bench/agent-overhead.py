#!/usr/bin/env python3
"""Agent overhead benchmark: JVM start-up time and RSS with and without the
agent on the idle fixture, the cost of one sampling round, the cost of one
instrumented call, and the cost of one HTTP transaction on the application
thread.

Builds the release agent and the Java fixtures, then, interleaved RUNS times:
starts `java Idle` without and with `-agentpath:libjvmapm_agent.so`, times
exec to the fixture's "ready" line (start-up), waits SETTLE seconds (so the
agent's first sampling round, which looks its beans up, has run), and reads
VmRSS. The agent exports to a closed port: start-up and RSS must not depend
on a backend. Then one JVM runs with `interval=100ms,log_level=debug` and the
agent's own "sampling round took N us" lines give the round cost. Then
the CallLoop fixture times a tiny method in a tight loop, without the agent,
with `hook=CallLoop#work` (each call a transaction), and with main hooked
too (each call instrumented but nested in main's transaction), 3 runs each,
and with calls made 100 a transaction, each a recorded step or not.
Then the ExchangeLoop fixture hands requests to the JDK HTTP server's filter
chain in-process on one thread (no sockets: quieter than wrk) and prints ns
per request, the best of its rounds, without the agent, with it and with
`cpu=off` (no thread-CPU clock reads), 3 runs interleaved, medians.
Last, the OutgoingLoop fixture makes HttpURLConnection calls to a loopback
responder in the same JVM, 100 a batch: without the agent, with it and the
calls outside any transaction, and with `hook=OutgoingLoop#batch` (each a
CLIENT span with its traceparent, exported to a real `jvmapm serve`), 5 runs
interleaved, medians of each run's best round.
Last, the HandOffLoop fixture hands tiny tasks to a one-thread
ThreadPoolExecutor, 100 a batch, by execute (a lambda) and by submit (a
FutureTask): without the agent, with it and the batch outside any
transaction, and with `hook=HandOffLoop#batch` (each task carries the
transaction to the pool's thread), 5 runs interleaved, medians of each
run's best round.

Usage: bench/agent-overhead.py   (knobs: RUNS=11 SETTLE=2 JAVA=java NO_BUILD=1)
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent_bench import AGENT, CLASSES, JAVA, build, free_port, start_analyzer

RUNS = int(os.environ.get("RUNS", "11"))
SETTLE = float(os.environ.get("SETTLE", "2"))


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def idle_run(agent_options):
    """Start-up milliseconds and settled RSS KiB of one idle JVM."""
    command = [JAVA]
    if agent_options is not None:
        command.append(f"-agentpath:{AGENT}={agent_options}")
    command += ["-cp", str(CLASSES), "Idle"]
    started = time.perf_counter()
    jvm = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = jvm.stdout.readline()
    startup_ms = (time.perf_counter() - started) * 1000
    if line.strip() != "ready":
        raise RuntimeError(f"fixture said {line!r}: {jvm.stderr.read()}")
    time.sleep(SETTLE)
    rss = rss_kb(jvm.pid)
    jvm.stdin.close()
    jvm.wait(timeout=30)
    return startup_ms, rss


def sampling_rounds():
    """Microseconds per sampling round: (first round, steady rounds)."""
    options = f"service=bench,endpoint=http://127.0.0.1:{free_port()},interval=100ms,export_interval=1h,log_level=debug"
    jvm = subprocess.Popen(
        [JAVA, f"-agentpath:{AGENT}={options}", "-cp", str(CLASSES), "Idle"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(6)
    _, stderr = jvm.communicate(input="", timeout=30)
    rounds = [int(m) for m in re.findall(r"sampling round took (\d+) us", stderr)]
    if len(rounds) < 10:
        raise RuntimeError(f"too few rounds logged: {stderr}")
    return rounds[0], rounds[1:]


def fixture_ns(agent_options, *fixture):
    """The nanoseconds a timing fixture prints ("ns_per_call X" or
    "ns_per_request X": the best round of one JVM); `fixture` is its class
    and arguments, after JVM options of its own if any; `agent_options` the
    agent's (None: no agent)."""
    command = [JAVA]
    if agent_options is not None:
        command.append(f"-agentpath:{AGENT}={agent_options}")
    command += ["-cp", str(CLASSES), *fixture]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"ns_per_\w+ ([0-9.]+)", out).group(1))


def outgoing_calls():
    """Prints what an outgoing call inside a transaction adds to its thread."""
    loop = ("OutgoingLoop", "5000", "100")
    with tempfile.TemporaryDirectory() as data:
        analyzer, grpc = start_analyzer(data)
        try:
            options = f"service=bench-outgoing,endpoint=http://127.0.0.1:{grpc}"
            modes = {"without": None, "outside": options, "inside": f"{options},hook=OutgoingLoop#batch"}
            runs = {mode: [] for mode in modes}
            for _ in range(5):
                for mode, agent_options in modes.items():
                    runs[mode].append(fixture_ns(agent_options, *loop))
        finally:
            analyzer.terminate()
            analyzer.wait()
    without, outside, inside = (statistics.median(runs[mode]) for mode in modes)
    print(
        f"outgoing call:       without {without:.0f} ns   agent, outside a transaction {outside:.0f} ns   "
        f"inside one {inside:.0f} ns   added inside {inside - outside:+.0f} ns a call "
        "(OutgoingLoop: HttpURLConnection to a loopback responder, 100 calls a transaction; medians of 5, interleaved)"
    )


def hand_offs():
    """Prints what handing a task to an executor costs with the agent."""
    options = f"service=bench-handoff,endpoint=http://127.0.0.1:{free_port()}"
    modes = {"without": None, "outside": options, "inside": f"{options},hook=HandOffLoop#batch"}
    for how in ("execute", "submit"):
        runs = {mode: [] for mode in modes}
        for _ in range(5):
            for mode, agent_options in modes.items():
                runs[mode].append(fixture_ns(agent_options, "HandOffLoop", "200000", "100", how))
        without, outside, inside = (statistics.median(runs[mode]) for mode in modes)
        print(
            f"executor hand-off ({how}): without {without:.0f} ns   agent, outside a transaction {outside:.0f} ns "
            f"({outside - without:+.0f})   inside one {inside:.0f} ns ({inside - without:+.0f}) a task "
            "(HandOffLoop: a one-thread ThreadPoolExecutor, 100 tasks a batch; medians of 5, interleaved)"
        )


def main():
    build("jvmapm-agent", "jvmapm")
    options = f"service=bench,endpoint=http://127.0.0.1:{free_port()}"
    without, with_agent = [], []
    idle_run(None)  # warm the page cache
    for _ in range(RUNS):
        without.append(idle_run(None))
        with_agent.append(idle_run(options))
    median = statistics.median
    start_without = median(s for s, _ in without)
    start_with = median(s for s, _ in with_agent)
    rss_without = median(r for _, r in without)
    rss_with = median(r for _, r in with_agent)
    version = subprocess.run([JAVA, "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    print(f"JVM: {version}; {RUNS} runs each side, interleaved; medians")
    print(f"start-up to main():  without {start_without:7.1f} ms   with agent {start_with:7.1f} ms   added {start_with - start_without:+6.1f} ms")
    print(f"RSS after {SETTLE:g} s:      without {rss_without / 1024:7.1f} MB   with agent {rss_with / 1024:7.1f} MB   added {(rss_with - rss_without) / 1024:+6.1f} MB")
    first, steady = sampling_rounds()
    steady.sort()
    print(
        f"sampling round:      first (bean lookup) {first} us; then median {median(steady):.0f} us, "
        f"p90 {steady[int(len(steady) * 0.9)]} us over {len(steady)} rounds"
    )
    call_loop = ("CallLoop", "2000000")
    plain = [fixture_ns(None, *call_loop) for _ in range(3)]
    hooked = [fixture_ns(f"{options},hook=CallLoop#work", *call_loop) for _ in range(3)]
    # With main hooked too, every call of work runs inside main's
    # transaction: the wrapper runs, the helper sees a transaction open and
    # returns at once. That is the cost of instrumentation itself.
    nested = [fixture_ns(f"{options},hook=CallLoop#main;CallLoop#work", *call_loop) for _ in range(3)]
    print(
        f"instrumented call:   without {median(plain):.2f} ns   each call a transaction {median(hooked):.1f} ns   "
        f"each call nested in one {median(nested):.1f} ns   (enter + exit, medians of 3)"
    )
    # Steps: 100 calls a transaction (batch), plain and each one a step.
    batches = ("CallLoop", "1000000", "100")
    plain_batches, stepped = [], []
    for _ in range(3):
        plain_batches.append(fixture_ns(f"{options},hook=CallLoop#batch", *batches))
        stepped.append(fixture_ns(f"{options},hook=CallLoop#batch;CallLoop#work", *batches))
    print(
        f"recorded step:       {median(stepped) - median(plain_batches):.1f} ns a step "
        f"({median(stepped):.1f} against {median(plain_batches):.1f} ns a call, 100 calls a transaction, "
        "each a step or not; medians of 3, interleaved)"
    )
    transaction_modes = {"without": None, "agent": options, "agent, cpu=off": f"{options},cpu=off"}
    transactions = {mode: [] for mode in transaction_modes}
    for _ in range(3):
        for mode, agent_options in transaction_modes.items():
            transactions[mode].append(fixture_ns(agent_options, "-XX:+AlwaysPreTouch", "ExchangeLoop"))
    baseline = median(transactions.pop("without"))
    added = "   ".join(f"{mode} {median(ns):.0f} ns ({median(ns) - baseline:+.0f})" for mode, ns in transactions.items())
    print(
        f"HTTP transaction:    without {baseline:.0f} ns   {added}   "
        "(ExchangeLoop: the JDK filter chain in-process, best round; medians of 3, interleaved)"
    )
    outgoing_calls()
    hand_offs()


if __name__ == "__main__":
    sys.exit(main())
