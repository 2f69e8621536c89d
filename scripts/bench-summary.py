"""Summarises scripts/bench results: per scenario, the median of per-repetition ratios
(hubs / baseline) of each figure, and the goals of the benchmark issue."""

import json
import statistics
import sys
from collections import defaultdict

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by = defaultdict(dict)  # (label, rep) -> server -> run
for run in runs:
    by[(run["label"], run["rep"])][run["server"]] = run

FIGURES = [
    "invocations_per_s", "deliveries_per_s", "p50_us", "p99_us", "p999_us",
    "server_cpu_us_per_op", "server_rss_per_connection_bytes", "held", "defects",
]

ratios = defaultdict(lambda: defaultdict(list))
values = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
for (label, _rep), pair in sorted(by.items()):
    hubs, base = pair.get("bench-server"), pair.get("baseline-server")
    if not hubs or not base:
        continue
    for figure in FIGURES:
        if figure in hubs and figure in base:
            values[label][figure]["hubs"].append(hubs[figure])
            values[label][figure]["baseline"].append(base[figure])
            if base[figure]:
                ratios[label][figure].append(hubs[figure] / base[figure])

def median(xs):
    return statistics.median(xs) if xs else float("nan")

print()
print(f"{'scenario':32} {'figure':34} {'baseline':>12} {'hubs':>12} {'ratio':>7}")
for label in values:
    for figure in FIGURES:
        if figure not in values[label]:
            continue
        v = values[label][figure]
        print(f"{label:32} {figure:34} {median(v['baseline']):12.1f} {median(v['hubs']):12.1f} {median(ratios[label][figure]):7.2f}")

def ratio(label, figure):
    return median(ratios[label][figure])

goals = [
    ("echo, 100 connections: >= 0.8x invocations/s", ratio("echo-100-16B-json", "invocations_per_s"), lambda r: r >= 0.8),
    ("echo, 100 connections: <= 1.5x CPU per invocation", ratio("echo-100-16B-json", "server_cpu_us_per_op"), lambda r: r <= 1.5),
    ("echo, 1 connection: p50 <= 1.3x", ratio("echo-1-16B-json", "p50_us"), lambda r: r <= 1.3),
    ("echo, 1 connection: p99 <= 1.5x", ratio("echo-1-16B-json", "p99_us"), lambda r: r <= 1.5),
    ("broadcast to 1000: >= 0.8x deliveries/s", ratio("broadcast-1000-json", "deliveries_per_s"), lambda r: r >= 0.8),
    ("broadcast to 10000: >= 0.8x deliveries/s", ratio("broadcast-10000-json", "deliveries_per_s"), lambda r: r >= 0.8),
    ("10,000 idle connections: RSS/connection <= 1.25x", ratio("connect-10000", "server_rss_per_connection_bytes"), lambda r: r <= 1.25),
]
hubs_json = values["echo-100-16B-json"]["invocations_per_s"]["hubs"]
hubs_mp = values["echo-100-16B-msgpack"]["invocations_per_s"]["hubs"]
if hubs_json and hubs_mp:
    goals.append(("MessagePack >= 1.0x JSON on echo (hubs)", median([m / j for m, j in zip(hubs_mp, hubs_json)]), lambda r: r >= 1.0))

print()
for name, value, ok in goals:
    print(f"{'met ' if ok(value) else 'MISS'}  {name:55} {value:6.2f}")
