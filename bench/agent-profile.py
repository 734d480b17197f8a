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

Usage: bench/agent-profile.py   (knobs: CALLS=20 JAVA=java NO_BUILD=1)
"""

import os
import re
import statistics
import subprocess

from agent_bench import AGENT, CLASSES, JAVA, build, free_port

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


def run(depth):
    options = (
        f"service=bench,endpoint=http://127.0.0.1:{free_port()},export_interval=1h,"
        "log_level=debug,hook=SlowSplit#work;SlowSplit#quick"
    )
    out = subprocess.run(
        [JAVA, f"-agentpath:{AGENT}={options}", "-cp", str(CLASSES), "SlowSplit", str(CALLS), str(depth)],
        capture_output=True,
        text=True,
        check=True,
    )
    costs = [(int(n), state) for n, state in re.findall(r"profile sample took (\d+) ns CPU \((.*?)\)", out.stderr)]
    profiles = [(int(s), int(b)) for s, b in re.findall(r"profile of (\d+) samples: (\d+) bytes", out.stderr)]
    if not costs or not profiles:
        raise RuntimeError(f"no profile lines:\n{out.stderr[-2000:]}")
    return costs, profiles


def p99(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main():
    build("jvmapm-agent")
    for depth, label in ((0, "about 5 frames"), (100, "about 105 frames")):
        sampled, profiles = run(depth)
        costs = [n for n, _ in sampled]
        by_state = {}
        for n, state in sampled:
            by_state.setdefault(state, []).append(n)
        samples = statistics.median(s for s, _ in profiles)
        text = statistics.median(b for _, b in profiles)
        added = statistics.median(profile_attributes_len(b, s) for s, b in profiles)
        print(
            f"stack {label}: {len(costs)} samples, CPU per sample median "
            f"{statistics.median(costs) / 1000:.1f} us, p99 {p99(costs) / 1000:.1f} us; "
            f"{len(profiles)} profiles of {samples:.0f} samples, folded text {text:.0f} B, "
            f"adds {added:.0f} B to the span"
        )
        for state, values in sorted(by_state.items()):
            print(
                f"  {state}: {len(values)} samples, median {statistics.median(values) / 1000:.1f} us, "
                f"p99 {p99(values) / 1000:.1f} us"
            )


if __name__ == "__main__":
    main()
