"""Celery under the benchmark: the Redis broker with no result backend (``ignore_result``),
``task.delay()`` one job at a time, and for the workers ``celery -A bench.adapters.celery
worker --pool prefork -c 2`` (one parent, 2 child processes) without gossip, mingle and
heartbeat, on the queue "bench", logging at WARNING. Everything else is Celery's default:
JSON serializer, early acks, prefetch multiplier 4.

Celery has no bulk enqueue API (``group`` sends one message per task), so ``bulk`` is
skipped, and the drain and memory workloads enqueue one ``delay()`` at a time.

The worker imports this module: it reads the broker's URL from ``BENCH_REDIS_URL``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import redis
from celery import Celery

from bench.common import COUNTER, LATENCIES, System, main, spawn

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "bench"

app = Celery("bench", broker=os.environ.get("BENCH_REDIS_URL"))
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
)
_client = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return _client


# Named explicitly: run as ``python -m``, this module is ``__main__`` in the enqueuer.
@app.task(name="bench.noop")
def noop() -> None:
    client().incr(COUNTER)


@app.task(name="bench.probe")
def probe(sent: float) -> None:
    client().rpush(LATENCIES, time.monotonic() - sent)


class CeleryQueue(System):
    name = "celery"
    bulk_supported = False

    def setup(self) -> None:
        app.conf.broker_url = self.redis_url

    def enqueue_one(self, i: int) -> None:
        noop.delay()

    def enqueue_latency_probe(self, sent: float) -> None:
        probe.delay(sent)

    def start_workers(self) -> subprocess.Popen:
        args = [sys.executable, "-m", "celery", "-A", "bench.adapters.celery", "worker"]
        args += ["--pool", "prefork", "-c", "2", "--without-gossip", "--without-mingle"]
        args += ["--without-heartbeat", "-Q", QUEUE, "--loglevel", "WARNING"]
        env = {"PYTHONPATH": str(ROOT), "BENCH_REDIS_URL": self.redis_url}
        return spawn(args, env=env, cwd=str(ROOT))


if __name__ == "__main__":
    main(CeleryQueue)
