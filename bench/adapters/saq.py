"""saq under the benchmark: a Redis ``Queue.from_url`` named ``bench-saq`` with saq's job
defaults (timeout 10 s, results kept 600 s), async job functions.

Enqueue is ``await queue.enqueue("noop")`` on one event loop and one queue connection kept
for the whole run. saq has no bulk enqueue (``Queue.map`` enqueues several jobs but then
waits for their results), so bulk is unsupported. The workers are ``saq
bench.adapters.saq.settings --workers 2`` (2 processes, concurrency at its default of 10 each);
the Redis URL reaches them as ``BENCH_REDIS_URL``, read when this module is imported.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis.asyncio
from saq import Queue

from bench.common import COUNTER, LATENCIES, System, main, spawn

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "bench-saq"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")  # connects lazily


async def startup(ctx: dict[str, Any]) -> None:
    ctx["redis"] = redis.asyncio.Redis.from_url(REDIS_URL)  # the job bodies' connection


async def noop(ctx: dict[str, Any]) -> None:
    await ctx["redis"].incr(COUNTER)


async def probe(ctx: dict[str, Any], *, sent: float) -> None:
    await ctx["redis"].rpush(LATENCIES, time.monotonic() - sent)


settings = {
    "queue": Queue.from_url(REDIS_URL, name=QUEUE),
    "functions": [noop, probe],
    "startup": startup,
}


class Saq(System):
    name = "saq"
    bulk_supported = False

    def setup(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.queue = Queue.from_url(self.redis_url, name=QUEUE)
        self.loop.run_until_complete(self.queue.connect())

    def enqueue_one(self, i: int) -> None:
        self.loop.run_until_complete(self.queue.enqueue("noop"))

    def enqueue_latency_probe(self, sent: float) -> None:
        self.loop.run_until_complete(self.queue.enqueue("probe", sent=sent))

    def start_workers(self) -> subprocess.Popen:
        cli = str(Path(sys.executable).parent / "saq")
        return spawn(
            [cli, "bench.adapters.saq.settings", "--workers", "2"],
            env={"PYTHONPATH": str(ROOT), "BENCH_REDIS_URL": self.redis_url},
            cwd=str(ROOT),
        )


if __name__ == "__main__":
    main(Saq)
