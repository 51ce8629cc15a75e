"""huey 3 under the benchmark: a ``RedisHuey`` named ``bench-huey`` with its defaults (results
on, ``store_none`` off so the ``None``-returning jobs store nothing, blocking ``BRPOP``
dequeue); huey is at-most-once (a job popped by a worker that dies is lost).

Enqueue is calling the ``@huey.task`` function (huey has no bulk API); the workers are
``huey_consumer bench.adapters.huey.huey -w 2 -k process -q`` (one consumer process with its
scheduler, and 2 worker processes; quiet: no log line per job). The Redis URL reaches the
consumer as ``BENCH_REDIS_URL``, read when this module is imported.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

import redis
from huey import RedisHuey

from bench.common import COUNTER, LATENCIES, System, main, spawn

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")  # connects lazily

huey = RedisHuey("bench-huey", url=REDIS_URL)
client = redis.Redis.from_url(REDIS_URL)  # the job bodies' connection (lazy too)


@huey.task()
def noop() -> None:
    client.incr(COUNTER)


@huey.task()
def probe(sent: float) -> None:
    client.rpush(LATENCIES, time.monotonic() - sent)


class Huey(System):
    name = "huey"
    bulk_supported = False

    def setup(self) -> None:
        # huey names tasks after their module: enqueue through the module imported under its
        # real name (as the consumer imports it), not this ``__main__`` copy.
        os.environ["BENCH_REDIS_URL"] = self.redis_url
        self.jobs = importlib.import_module("bench.adapters.huey")
        if self.jobs.REDIS_URL != self.redis_url:  # imported earlier, for another Redis
            self.jobs = importlib.reload(self.jobs)

    def enqueue_one(self, i: int) -> None:
        self.jobs.noop()

    def enqueue_latency_probe(self, sent: float) -> None:
        self.jobs.probe(sent)

    def start_workers(self) -> subprocess.Popen:
        consumer = str(Path(sys.executable).parent / "huey_consumer")
        return spawn(
            # -q: no log line per job (jobqueue's worker writes none either)
            [consumer, "bench.adapters.huey.huey", "-w", "2", "-k", "process", "-q"],
            env={"PYTHONPATH": str(ROOT), "BENCH_REDIS_URL": self.redis_url},
            cwd=str(ROOT),
        )


if __name__ == "__main__":
    main(Huey)
