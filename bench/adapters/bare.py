"""The ceiling: a bare Redis list with no guarantees at all (no acknowledgement, no retry, no
result, a job lost if a worker dies holding it).

Enqueue is one ``LPUSH`` of a small JSON message on ``bench:bare``; bulk is pipelined
``LPUSH`` in chunks of 10,000; the worker is this module run as ``python -m
bench.adapters.bare --worker URL``, which forks into 2 processes, each looping ``BRPOP`` and
running the job body (``INCR`` or the latency ``RPUSH``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis

from bench.common import COUNTER, LATENCIES, System, main, spawn

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "bench:bare"
NOOP = json.dumps({"job": "noop"})


class Bare(System):
    name = "bare"

    def enqueue_one(self, i: int) -> None:
        self.redis.lpush(QUEUE, NOOP)

    def enqueue_bulk(self, n: int) -> None:
        for start in range(0, n, 10000):
            pipe = self.redis.pipeline(transaction=False)
            for _ in range(min(10000, n - start)):
                pipe.lpush(QUEUE, NOOP)
            pipe.execute()

    def enqueue_latency_probe(self, sent: float) -> None:
        self.redis.lpush(QUEUE, json.dumps({"job": "probe", "sent": sent}))

    def start_workers(self) -> subprocess.Popen:
        return spawn(
            [sys.executable, "-m", "bench.adapters.bare", "--worker", self.redis_url],
            env={"PYTHONPATH": str(ROOT)},
            cwd=str(ROOT),
        )


def work(url: str) -> None:
    """One worker process: pop a message, run the job body, repeat (until killed)."""
    client = redis.Redis.from_url(url)
    while True:
        popped = client.brpop([QUEUE], timeout=1)
        if popped is None:
            continue
        message = json.loads(popped[1])
        if message["job"] == "noop":
            client.incr(COUNTER)
        else:
            client.rpush(LATENCIES, time.monotonic() - message["sent"])


def run_workers(url: str) -> None:
    """Fork a second worker process; the parent is the first one."""
    if os.fork() == 0:
        work(url)
    work(url)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        run_workers(sys.argv[2])
    else:
        main(Bare)
