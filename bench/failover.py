"""What a Sentinel failover costs an enqueueing producer, with and without ENQUEUE_REPLICAS.

A master, two replicas and three sentinels (``tests/redis_topologies.py``; the sentinels call
the master down after 1 s without a reply). A producer thread enqueues as fast as it can,
each job with an id of its own, trying a failed enqueue again with the same id; the master is
killed (SIGKILL) ``--failovers`` times, each time after ``--between`` seconds of enqueueing,
and the killed server comes back as a replica. At the end, every id an enqueue returned is
looked for on the last master::

    python -m bench.failover                    # 5 failovers, replicas 0, 1 then 2
    python -m bench.failover --failovers 3 --replicas 1

Per setting: enqueues acknowledged, acknowledged jobs missing at the end (lost), enqueues/s
between failovers, the sentinels' failover times, how many times the sentinels switched to a
new master (more than the kills: they also failed over a master that was alive, a split
brain), and the longest time the producer went without an acknowledged enqueue. Numbers are
printed, never asserted (``tests/test_sentinel_failover.py`` asserts that with every replica
acknowledging nothing acknowledged is lost).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobqueue.engine import Engine, EngineConfig, TaskRegistry  # noqa: E402
from jobqueue.engine.errors import ConnectionFailed, NotReplicated  # noqa: E402
from jobqueue.engine.transport.connection import create_client  # noqa: E402
from tests.redis_topologies import RedisSentinel  # noqa: E402


def noop() -> None:
    return None


def run(replicas: int, failovers: int, between: float) -> dict:
    registry = TaskRegistry()
    registry.register("bench.noop", noop)
    with tempfile.TemporaryDirectory(prefix="jq-failover-") as directory:
        sentinel = RedisSentinel(Path(directory), 2, sentinels=3, down_after_ms=1000).start()
        config = EngineConfig(prefix="fo", enqueue_replicas=replicas)
        engine = Engine(create_client(sentinel.url), config, registry)
        acknowledged: list[str] = []
        stamps: list[float] = []
        refused = {"ConnectionFailed": 0, "NotReplicated": 0}
        done = threading.Event()

        def produce() -> None:
            number = 0
            while not done.is_set():
                try:
                    job = engine.enqueue("bench.noop", job_id=f"default:p{number:07d}")
                except (ConnectionFailed, NotReplicated) as exc:
                    refused[type(exc).__name__] += 1
                    time.sleep(0.02)
                    continue
                acknowledged.append(job.id)
                stamps.append(time.monotonic())
                number += 1

        producer = threading.Thread(target=produce, daemon=True)
        rates, took = [], []
        try:
            producer.start()
            for _ in range(failovers):
                count, started = len(acknowledged), time.monotonic()
                time.sleep(between)
                rates.append((len(acknowledged) - count) / (time.monotonic() - started))
                took.append(sentinel.fail_over())
                sentinel.wait_for_replicas(2)
            time.sleep(between)
            done.set()
            producer.join(timeout=30)
            switches = sentinel.switches()
            found = set()
            for start in range(0, len(acknowledged), 1000):
                found.update(job.id for job in engine.find(acknowledged[start : start + 1000]))
        finally:
            done.set()
            engine.client.close()
            sentinel.close()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return {
        "acknowledged": len(acknowledged),
        "lost": len(acknowledged) - len(found),
        "rate": statistics.median(rates),
        "failover": took,
        "gap": max(gaps, default=0.0),
        "refused": refused,
        "switches": switches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failovers", type=int, default=5)
    parser.add_argument("--between", type=float, default=3.0, help="seconds between failovers")
    parser.add_argument("--replicas", default="0,1,2", help="ENQUEUE_REPLICAS values to run")
    options = parser.parse_args()
    print("| ENQUEUE_REPLICAS | acknowledged | lost | enqueues/s | failover (s) ", end="")
    print("| new masters for the kills | longest pause (s) | refused |")
    print("|---|---|---|---|---|---|---|---|")
    for replicas in (int(value) for value in options.replicas.split(",")):
        r = run(replicas, options.failovers, options.between)
        failover = ", ".join(f"{seconds:.1f}" for seconds in r["failover"])
        refused = ", ".join(f"{name} {count}" for name, count in r["refused"].items() if count)
        print(
            f"| {replicas} | {r['acknowledged']:,} | {r['lost']:,} | {r['rate']:,.0f} | "
            f"{failover} | {r['switches']} for {options.failovers} | {r['gap']:.1f} | "
            f"{refused or 'none'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
