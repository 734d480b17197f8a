#!/usr/bin/env python3
"""Agent profile benchmark: what one stack sample of a slow transaction costs
the profiler thread, and the bytes a profile adds to a span.

Builds the release agent and the Java fixtures, then runs the SlowSplit
fixture (each hooked work() call spins 450 ms and sleeps 150 ms, so about 50
samples land after profile_after, 70% of a running thread, 30% of a sleeping
one) with `log_level=debug`, at a stack depth of about 5 frames and again
about 105 frames deep. The agent's own debug lines give the CPU time of each
sample on the profiler thread's clock ("profile sample took N ns CPU") and
each profile's folded text ("profile of N samples: B bytes"); the bytes a
profile adds to its span are that text plus the five attributes' protobuf
framing. The agent exports to a closed port: no backend is involved.

For a running thread HotSpot's handshake may walk the stack on that thread
itself, so its share of the walk is not on the profiler's clock; the
throughput of an application with profiling on against off measures that
side and is not part of this script.

Each depth runs twice, interleaved: the agent as shipped (JVMTI
GetThreadListStackTraces) and the agent built with the feature
`agct-probe` (into target/agct-probe), whose profiler takes the same
samples with AsyncGetCallTrace from a SIGPROF handler on the sampled
thread (native-agent/src/agct.rs). Its cost has two parts, printed apart:
the profiler thread's (signal sent, answer awaited) and the handler's on
the sampled thread ("agct handler took N ns CPU").

Usage: bench/agent-profile.py   (knobs: CALLS=20 JAVA=java NO_BUILD=1)
"""

import os
import re
import statistics
import subprocess

from agent_bench import AGENT, CLASSES, JAVA, ROOT, build, free_port

AGCT_TARGET = ROOT / "target" / "agct-probe"
AGCT_AGENT = AGCT_TARGET / "release" / AGENT.name

CALLS = int(os.environ.get("CALLS", "20"))


def varint_len(n):
    length = 1
    while n >= 0x80:
        n >>= 7
        length += 1
    return length


def field_len(inner):
    """A length-delimited field: tag, length, body."""
    return 1 + varint_len(inner) + inner


def attribute_len(key, string=None, integer=None):
    """The bytes of one KeyValue attribute in a span."""
    if string is not None:
        value = field_len(len(string))
    else:
        value = 1 + varint_len(integer)
    return field_len(field_len(len(key)) + field_len(value))


def profile_attributes_len(text_bytes, samples):
    return (
        attribute_len("jvmapm.profile", string="x" * text_bytes)
        + attribute_len("jvmapm.profile.samples", integer=samples)
        + attribute_len("jvmapm.profile.dropped", integer=0)
        + attribute_len("jvmapm.profile.truncated", integer=0)
        + attribute_len("jvmapm.profile.interval", integer=10_000)
    )


def run(agent, depth):
    options = (
        f"service=bench,endpoint=http://127.0.0.1:{free_port()},export_interval=1h,"
        "log_level=debug,hook=SlowSplit#work;SlowSplit#quick"
    )
    out = subprocess.run(
        [JAVA, f"-agentpath:{agent}={options}", "-cp", str(CLASSES), "SlowSplit", str(CALLS), str(depth)],
        capture_output=True,
        text=True,
        check=True,
    )
    costs = [(int(n), state) for n, state in re.findall(r"profile sample took (\d+) ns CPU \((.*?)\)", out.stderr)]
    profiles = [(int(s), int(b)) for s, b in re.findall(r"profile of (\d+) samples: (\d+) bytes", out.stderr)]
    handler = [int(n) for n in re.findall(r"agct handler took (\d+) ns CPU", out.stderr)]
    if not costs or not profiles:
        raise RuntimeError(f"no profile lines:\n{out.stderr[-2000:]}")
    return costs, profiles, handler


def p99(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main():
    build("jvmapm-agent")
    if os.environ.get("NO_BUILD") != "1":
        subprocess.run(
            ["cargo", "build", "--release", "--quiet", "-p", "jvmapm-agent", "--features", "agct-probe"],
            cwd=ROOT,
            env={**os.environ, "CARGO_TARGET_DIR": str(AGCT_TARGET)},
            check=True,
        )
    for depth, label in ((0, "about 5 frames"), (100, "about 105 frames")):
        for agent, method in ((AGENT, "JVMTI"), (AGCT_AGENT, "AsyncGetCallTrace")):
            report(f"{method}, stack {label}", *run(agent, depth))


def report(label, sampled, profiles, handler):
    costs = [n for n, _ in sampled]
    by_state = {}
    for n, state in sampled:
        by_state.setdefault(state, []).append(n)
    samples = statistics.median(s for s, _ in profiles)
    text = statistics.median(b for _, b in profiles)
    added = statistics.median(profile_attributes_len(b, s) for s, b in profiles)
    print(
        f"{label}: {len(costs)} samples, profiler CPU per sample median "
        f"{statistics.median(costs) / 1000:.1f} us, p99 {p99(costs) / 1000:.1f} us; "
        f"{len(profiles)} profiles of {samples:.0f} samples, folded text {text:.0f} B, "
        f"adds {added:.0f} B to the span"
    )
    if handler:
        print(
            f"  signal handler on the sampled thread: {len(handler)} samples, median "
            f"{statistics.median(handler) / 1000:.1f} us, p99 {p99(handler) / 1000:.1f} us"
        )
    for state, values in sorted(by_state.items()):
        print(
            f"  {state}: {len(values)} samples, median {statistics.median(values) / 1000:.1f} us, "
            f"p99 {p99(values) / 1000:.1f} us"
        )


if __name__ == "__main__":
    main()
