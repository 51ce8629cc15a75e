"""Dramatiq under the benchmark: a ``RedisBroker`` with its default middleware (no results),
``actor.send()`` one job at a time, and for the workers ``dramatiq bench.adapters.dramatiq
--processes 2 --threads 8`` (its defaults: one parent, 2 worker processes of 8 threads),
on the queue "bench".

Dramatiq has no bulk enqueue API (``group`` sends one message after another), so ``bulk``
is skipped, and the drain and memory workloads enqueue one ``send()`` at a time.

The worker imports this module: it reads the broker's URL from ``BENCH_REDIS_URL``. The
enqueuer sets that variable, then imports this module under its own name, so its actors
are bound to a broker on the benchmark's Redis (the ``__main__`` copy's broker is unused).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from bench.common import COUNTER, LATENCIES, System, main, spawn

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "bench"

broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL"))
dramatiq.set_broker(broker)
_client = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return _client


@dramatiq.actor(queue_name=QUEUE)
def noop() -> None:
    client().incr(COUNTER)


@dramatiq.actor(queue_name=QUEUE)
def probe(sent: float) -> None:
    client().rpush(LATENCIES, time.monotonic() - sent)


class Dramatiq(System):
    name = "dramatiq"
    bulk_supported = False

    def setup(self) -> None:
        os.environ["BENCH_REDIS_URL"] = self.redis_url
        self.actors = importlib.import_module("bench.adapters.dramatiq")

    def enqueue_one(self, i: int) -> None:
        self.actors.noop.send()

    def enqueue_latency_probe(self, sent: float) -> None:
        self.actors.probe.send(sent)

    def start_workers(self) -> subprocess.Popen:
        cli = str(Path(sys.executable).parent / "dramatiq")
        args = [cli, "bench.adapters.dramatiq", "--processes", "2", "--threads", "8"]
        env = {"PYTHONPATH": str(ROOT), "BENCH_REDIS_URL": self.redis_url}
        return spawn(args, env=env, cwd=str(ROOT))


if __name__ == "__main__":
    main(Dramatiq)
