"""arq under the benchmark: queue ``bench-arq``, ``WorkerSettings`` with arq's defaults
(``max_jobs`` 10, ``poll_delay`` 0.5 s, results kept 1 h), async job functions.

Enqueue is ``await redis.enqueue_job("noop")`` on one event loop and one ``ArqRedis`` pool
kept for the whole run; arq has no bulk API. arq runs one worker per process, so the
workers are 2 ``arq bench.adapters.arq.WorkerSettings`` processes under a small ``sh -c``
launcher that waits for both. The Redis URL reaches them as ``BENCH_REDIS_URL``, read
when this module is imported.
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
from arq.connections import RedisSettings, create_pool

from bench.common import COUNTER, LATENCIES, System, main, spawn

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "bench-arq"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# sh, not python, as the launcher keeps its own memory out of the rss figure (~1 MB). The
# workers get the group's SIGTERM too: the trap makes sh wait for them to exit.
LAUNCHER = 'trap : TERM; "$0" "$1" & "$0" "$1" & wait; wait'


async def startup(ctx: dict[str, Any]) -> None:
    ctx["bench"] = redis.asyncio.Redis.from_url(REDIS_URL)  # the job bodies' connection


async def noop(ctx: dict[str, Any]) -> None:
    await ctx["bench"].incr(COUNTER)


async def probe(ctx: dict[str, Any], sent: float) -> None:
    await ctx["bench"].rpush(LATENCIES, time.monotonic() - sent)


class WorkerSettings:
    functions = [noop, probe]
    on_startup = startup
    queue_name = QUEUE
    redis_settings = RedisSettings.from_dsn(REDIS_URL)


class Arq(System):
    name = "arq"
    bulk_supported = False

    def setup(self) -> None:
        self.loop = asyncio.new_event_loop()
        settings = RedisSettings.from_dsn(self.redis_url)
        self.pool = self.loop.run_until_complete(create_pool(settings, default_queue_name=QUEUE))

    def enqueue_one(self, i: int) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("noop"))

    def enqueue_latency_probe(self, sent: float) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("probe", sent))

    def start_workers(self) -> subprocess.Popen:
        cli = str(Path(sys.executable).parent / "arq")
        return spawn(
            ["sh", "-c", LAUNCHER, cli, "bench.adapters.arq.WorkerSettings"],
            env={"PYTHONPATH": str(ROOT), "BENCH_REDIS_URL": self.redis_url},
            cwd=str(ROOT),
        )


if __name__ == "__main__":
    main(Arq)
