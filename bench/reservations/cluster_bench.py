#!/usr/bin/env python3
"""PERSISTENT RESERVE OUT latency through real vios-agents (bench/reservations/README.md).

Starts the local control plane (e2e/controlplane), one vios-operator and N vios-agents in their
own network namespaces serving one VIOSVolume (e2e/lib/pr_cluster.py), and drives PR OUT from one
vios-prtool session on agent-a: each iteration REGISTER (0 -> key), RESERVE (Write Exclusive),
RELEASE, REGISTER (key -> 0). With N > 1 every state change is also applied by the other agents
over the peer channel (gRPC, mutual TLS) before the command completes. Latency is the tool's
submit-to-completion time of each command. Needs root (network namespaces).

    VIOS_BUILD_DIR=build-pr-rel python3 bench/reservations/cluster_bench.py --agents 1 3 --iterations 200
    ... --agents 3 --concurrent      # one session per agent, all at once (CAS races)
"""

import argparse
import json
import os
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "e2e"))

from controlplane import ControlPlane  # noqa: E402
from lib.pr_cluster import PrCluster  # noqa: E402

INITIATOR = "iqn.2026-11.dev.vios:pr-bench"
COMMANDS = ("register", "reserve", "release", "unregister")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def run(cp, workdir, agents, iterations):
    names = ["agent-%s" % chr(ord("a") + i) for i in range(agents)]
    cluster = PrCluster(cp, workdir, names, [INITIATOR])
    try:
        cluster.start()
        s = cluster.session("agent-a", INITIATOR)
        lat = {c: [] for c in COMMANDS}
        for i in range(iterations + 10):
            key = "%x" % (0x1000 + i)
            steps = (("register", "register 0 " + key), ("reserve", "reserve %s we" % key),
                     ("release", "release %s we" % key), ("unregister", "register %s 0" % key))
            for name, line in steps:
                answer = s(line)
                if answer["status"] != "GOOD":
                    raise RuntimeError("%s: %r" % (line, answer))
                if i >= 10:  # warm-up: connections, caches
                    lat[name].append(answer["us"] / 1000.0)
        metrics = cluster.agents["agent-a"].metrics()
        notify = [line for line in metrics.splitlines()
                  if line.startswith("vios_pr_notify_latency_seconds_sum") or
                  line.startswith("vios_pr_notify_latency_seconds_count")]
        return lat, notify
    finally:
        cluster.close()


def run_concurrent(cp, workdir, agents, iterations):
    """One session per agent, all issuing REGISTER / unREGISTER of their own key at once: every
    command races the others for the VIOSVolume's resourceVersion."""
    names = ["agent-%s" % chr(ord("a") + i) for i in range(agents)]
    initiators = ["%s-%s" % (INITIATOR, n) for n in names]
    cluster = PrCluster(cp, workdir, names, initiators)
    try:
        cluster.start()
        sessions = [cluster.session(n, i) for n, i in zip(names, initiators)]
        lat = []
        lock = threading.Lock()

        retried = []

        def loop(index, s):
            # An initiator retries ABORTED COMMAND (the agent's answer after 32 lost races);
            # the latency counted is the whole command, retries included.
            mine, retries = [], 0
            for i in range(iterations + 10):
                key = "%x" % (0x100000 * (index + 1) + i)
                for line in ("register 0 " + key, "register %s 0" % key):
                    total = 0.0
                    while True:
                        answer = s(line)
                        total += answer["us"] / 1000.0
                        if answer["status"] == "GOOD":
                            break
                        if answer["status"] != "CHECK_CONDITION" or answer["sense_key"] != 0x0B:
                            raise RuntimeError("%s: %r" % (line, answer))
                        retries += 1
                    if i >= 10:
                        mine.append(total)
            with lock:
                lat.extend(mine)
                retried.append(retries)

        threads = [threading.Thread(target=loop, args=(i, s)) for i, s in enumerate(sessions)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        races = 0
        for name in names:
            for line in cluster.agents[name].metrics().splitlines():
                if line.startswith("vios_pr_store_conflicts_total{"):
                    races += int(float(line.rsplit(" ", 1)[1]))
        return lat, races, elapsed, sum(retried)
    finally:
        cluster.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--concurrent", action="store_true",
                        help="one session per agent, all issuing PR OUT at the same time")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="vios-pr-bench-")
    cp = ControlPlane(os.path.join(workdir, "controlplane"), install_crds=True)
    cp.start()
    results = {}
    try:
        for n in args.agents if args.concurrent else ():
            lat, races, elapsed, retries = run_concurrent(cp, os.path.join(workdir, "conc-%d" % n), n,
                                                 args.iterations)
            results[n] = {"p50_ms": round(percentile(lat, 50), 2),
                          "p99_ms": round(percentile(lat, 99), 2),
                          "max_ms": round(max(lat), 2), "commands": len(lat),
                          "store_conflicts": races, "aborted_command_retries": retries,
                          "commands_per_s": round(len(lat) / elapsed, 1)}
            print("%d agent(s) issuing concurrently: %r" % (n, results[n]))
        for n in args.agents if not args.concurrent else ():
            lat, notify = run(cp, os.path.join(workdir, "agents-%d" % n), n, args.iterations)
            results[n] = {c: {"p50_ms": round(percentile(v, 50), 2),
                              "p99_ms": round(percentile(v, 99), 2),
                              "max_ms": round(max(v), 2)} for c, v in lat.items()}
            print("%d agent(s), %d iterations:" % (n, args.iterations))
            for c in COMMANDS:
                r = results[n][c]
                print("  %-10s p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms"
                      % (c, r["p50_ms"], r["p99_ms"], r["max_ms"]))
            print("  agent-a " + "; ".join(notify))
    finally:
        cp.stop()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
