#!/usr/bin/env python3
"""Time and peak memory of `jvmapm heap` (histogram, Finalizers and threads
with --no-dominators; and the full report with the dominator tree, retained
sizes and leak suspects) beside hprof-slurp on the same heap dump of at
least 1 GB, in one run.

Builds the release jvmapm, compiles the BigHeap fixture, runs it with
-Xmx4g until it holds about SIZE_MB of live objects, dumps it with
`jcmd GC.heap_dump` into target/bench-heap/ (kept for later runs), then
runs each tool ROUNDS times, alternating, and prints the median wall time,
the throughput and the peak RSS (from wait4) of each.

Usage: bench/heap-dump.py   (knobs: SIZE_MB=1200 ROUNDS=3 NO_BUILD=1;
needs hprof-slurp: cargo install hprof-slurp)
"""

import os
import shutil
import statistics
import subprocess
import sys
import time

from agent_bench import CLASSES, JAVA, JVMAPM, TARGET, build

SIZE_MB = int(os.environ.get("SIZE_MB", "1200"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
DUMP = TARGET / "bench-heap" / f"big-{SIZE_MB}.hprof"


def make_dump():
    if DUMP.exists():
        return
    DUMP.parent.mkdir(parents=True, exist_ok=True)
    jvm = subprocess.Popen(
        [JAVA, "-Xmx4g", "-cp", str(CLASSES), "BigHeap", str(SIZE_MB)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert jvm.stdout.readline().strip() == "ready"
    jcmd = shutil.which("jcmd") or "jcmd"
    subprocess.run([jcmd, str(jvm.pid), "GC.heap_dump", str(DUMP)], check=True, stdout=subprocess.DEVNULL)
    jvm.stdin.close()
    jvm.wait()


def measure(command):
    """Wall seconds and peak RSS (MB) of one run of `command`."""
    started = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - started
    if status != 0:
        sys.exit(f"{command[0]} failed with status {status}")
    return seconds, usage.ru_maxrss / 1024


def main():
    slurp = shutil.which("hprof-slurp")
    if slurp is None:
        sys.exit("heap-dump.py needs hprof-slurp: cargo install hprof-slurp")
    build("jvmapm")
    make_dump()
    size = DUMP.stat().st_size
    tools = {
        "jvmapm heap --no-dominators": [str(JVMAPM), "heap", "--json", "--no-dominators", str(DUMP)],
        "hprof-slurp": [slurp, str(DUMP)],
        "jvmapm heap (full)": [str(JVMAPM), "heap", "--json", str(DUMP)],
    }
    # Read once so both start from the page cache.
    subprocess.run(["cat", str(DUMP)], stdout=subprocess.DEVNULL, check=True)
    results = {name: [] for name in tools}
    for _ in range(ROUNDS):
        for name, command in tools.items():
            results[name].append(measure(command))
    print(f"dump {DUMP.name}: {size / 1e9:.2f} GB; medians of {ROUNDS} rounds, alternating")
    for name, runs in results.items():
        seconds = statistics.median(r[0] for r in runs)
        rss = statistics.median(r[1] for r in runs)
        print(f"{name:28} {seconds:6.2f} s  {size / seconds / 1e9:5.2f} GB/s  peak RSS {rss:7.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
