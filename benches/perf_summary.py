#!/usr/bin/env python3
"""Summarises `perf script` output (perf record -g --call-graph dwarf) of the broker.

Prints, as shares of all samples:
  - the hottest leaf functions (where the CPU time is spent),
  - each hot leaf with the first ggcore / rustls / rumqttc / bytes frame above it
    (which part of the broker asked for that work),
  - inclusive time of ggcore, rustls and tokio functions.

Usage: perf script -i FILE | benches/perf_summary.py [N]
"""
import collections
import re
import sys

ATTRIBUTE = re.compile(r"(ggcore::|rustls::|tokio_rustls|rumqttc::|bytes::)")
INCLUSIVE = re.compile(r"(ggcore::[A-Za-z_:<>]+|rustls::[A-Za-z_:<>]+|tokio::[a-z_:]+)")


def samples(lines):
    stack = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if stack:
                yield stack
                stack = []
            continue
        if line.startswith((" ", "\t")):
            parts = line.strip().split(" ", 1)
            if len(parts) == 2:
                sym = re.sub(r"\+0x[0-9a-f]+", "", parts[1])
                stack.append(re.sub(r" \(.*\)$", "", sym))
    if stack:
        yield stack


def attribution(stack):
    for frame in stack[1:]:
        if ATTRIBUTE.search(frame) and "poll_fn" not in frame:
            return frame[:110]
    return "?"


def main():
    top = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    leaf, pair, inclusive = collections.Counter(), collections.Counter(), collections.Counter()
    n = 0
    for stack in samples(sys.stdin):
        n += 1
        leaf[stack[0][:60]] += 1
        pair[(stack[0][:60], attribution(stack))] += 1
        seen = set()
        for frame in stack:
            m = INCLUSIVE.match(frame)
            if m and m.group(1) not in seen:
                seen.add(m.group(1))
                inclusive[m.group(1)] += 1
    if n == 0:
        print("no samples")
        return
    print(f"samples {n}")
    print("== leaf functions")
    for k, c in leaf.most_common(top):
        print(f"{c * 100 / n:5.1f}% {k}")
    print("== leaf  <-  first ggcore/rustls/rumqttc/bytes frame above it")
    for (l, a), c in pair.most_common(top + 5):
        print(f"{c * 100 / n:5.1f}% {l}  <-  {a}")
    print("== inclusive")
    for k, c in inclusive.most_common(top * 2):
        print(f"{c * 100 / n:5.1f}% {k}")


if __name__ == "__main__":
    main()
