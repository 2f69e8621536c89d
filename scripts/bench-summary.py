"""Summarises scripts/bench results: per scenario and figure, the median of each server's
runs side by side (the baseline is the ceiling; socketioxide and jsonrpsee are the peers),
the medians of the per-repetition ratios of hubs to each, and the goals of the
performance issue."""

import json
import statistics
import sys
from collections import defaultdict

SERVERS = [
    ("baseline-server", "ceiling"),
    ("jsonrpc-server", "jsonrpsee"),
    ("socketio-server", "socketioxide"),
    ("bench-server", "hubs"),
]
FIGURES = [
    "invocations_per_s", "deliveries_per_s", "p50_us", "p99_us", "p999_us",
    "server_cpu_us_per_op", "server_rss_per_connection_bytes", "held", "defects",
    "seconds", "lost", "cut", "server_peak_rss_kib",
]

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by = defaultdict(dict)  # (label, rep) -> server -> run
for run in runs:
    by[(run["label"], run["rep"])][run["server"]] = run

values = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))  # label -> figure -> server -> [v]
ratios = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))  # label -> figure -> server -> [hubs/v]
labels = []
for (label, _rep), servers in sorted(by.items(), key=lambda kv: kv[0][1]):
    if label not in labels:
        labels.append(label)
    hubs = servers.get("bench-server")
    for server, run in servers.items():
        for figure in FIGURES:
            if figure in run:
                values[label][figure][server].append(run[figure])
                if hubs and figure in hubs and run[figure]:
                    ratios[label][figure][server].append(hubs[figure] / run[figure])


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def value(label, figure, server):
    return median(values[label][figure][server])


def ratio(label, figure, server):
    return median(ratios[label][figure][server])


print()
header = f"{'scenario':30} {'figure':32}" + "".join(f" {name:>12}" for _, name in SERVERS)
header += f" {'÷ceiling':>9} {'÷socketio':>9} {'÷jsonrpc':>9}"
print(header)
for label in labels:
    for figure in FIGURES:
        if figure not in values[label]:
            continue
        row = f"{label:30} {figure:32}"
        for server, _ in SERVERS:
            v = value(label, figure, server)
            row += f" {v:12.1f}" if v == v else f" {'-':>12}"
        for server in ("baseline-server", "socketio-server", "jsonrpc-server"):
            r = ratio(label, figure, server)
            row += f" {r:9.2f}" if r == r else f" {'-':>9}"
        print(row)

hubs_json = values["echo-100-16B-json"]["invocations_per_s"]["bench-server"]
hubs_mp = values["echo-100-16B-msgpack"]["invocations_per_s"]["bench-server"]
mp_ratio = median([m / j for m, j in zip(hubs_mp, hubs_json)]) if hubs_json and hubs_mp else float("nan")

goals = [
    ("echo 100 x 16 B: >= 1.0x socketioxide inv/s", ratio("echo-100-16B-json", "invocations_per_s", "socketio-server"), lambda r: r >= 1.0),
    ("echo 100 x 16 B: CPU/inv <= socketioxide", ratio("echo-100-16B-json", "server_cpu_us_per_op", "socketio-server"), lambda r: r <= 1.0),
    ("echo 100 x 16 B: >= 0.9x the ceiling (aim)", ratio("echo-100-16B-json", "invocations_per_s", "baseline-server"), lambda r: r >= 0.9),
    ("echo 100 x 1 KiB: >= 1.0x socketioxide inv/s", ratio("echo-100-1KiB-json", "invocations_per_s", "socketio-server"), lambda r: r >= 1.0),
    ("echo 100 x 1 KiB: CPU/inv <= socketioxide", ratio("echo-100-1KiB-json", "server_cpu_us_per_op", "socketio-server"), lambda r: r <= 1.0),
    ("echo 1000: >= 1.0x socketioxide inv/s", ratio("echo-1000-16B-json", "invocations_per_s", "socketio-server"), lambda r: r >= 1.0),
    ("echo 1000: >= 1.0x jsonrpsee inv/s", ratio("echo-1000-16B-json", "invocations_per_s", "jsonrpc-server"), lambda r: r >= 1.0),
    ("echo 1000: p99 <= socketioxide", ratio("echo-1000-16B-json", "p99_us", "socketio-server"), lambda r: r <= 1.0),
    ("echo 1000: p99 <= jsonrpsee", ratio("echo-1000-16B-json", "p99_us", "jsonrpc-server"), lambda r: r <= 1.0),
    ("echo 1: p99 <= socketioxide", ratio("echo-1-16B-json", "p99_us", "socketio-server"), lambda r: r <= 1.0),
    ("echo 1: p99 <= jsonrpsee", ratio("echo-1-16B-json", "p99_us", "jsonrpc-server"), lambda r: r <= 1.0),
    ("broadcast to 1000: >= 1.0x socketioxide", ratio("broadcast-1000-json", "deliveries_per_s", "socketio-server"), lambda r: r >= 1.0),
    ("broadcast to 10000: >= 1.0x the ceiling", ratio("broadcast-10000-json", "deliveries_per_s", "baseline-server"), lambda r: r >= 1.0),
    ("10,000 idle: RSS/connection <= 12.4 KB (bytes)", value("connect-10000", "server_rss_per_connection_bytes", "bench-server"), lambda v: v <= 12.4 * 1024),
    ("MessagePack >= 1.0x JSON on echo (hubs)", mp_ratio, lambda r: r >= 1.0),
]
print()
for name, v, ok in goals:
    status = "met " if v == v and ok(v) else "MISS"
    print(f"{status}  {name:50} {v:10.2f}")
