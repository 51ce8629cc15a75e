"""RQ under the benchmark: ``Queue.enqueue`` one job at a time, ``Queue.enqueue_many`` with
``Queue.prepare_data`` items in one Redis pipeline per 10,000 jobs for bulk, and
``rq worker-pool -n 2 -w rq.worker.SimpleWorker`` for the workers: one pool process with 2
simple workers (each runs its jobs in-process), not burst, logging at WARNING. Everything
else is RQ's default (result_ttl 500 s, pickle serializer), on the queue "bench".

RQ's default worker class, ``rq.worker.Worker``, forks a work horse per job instead: set
WORKER_CLASS to it to measure that (about 8x slower to drain no-op jobs on 2 cores).
The job bodies use the connection the worker already has (the current job's).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from rq import Queue, get_current_job

from bench.common import COUNTER, LATENCIES, System, main, spawn

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "bench"
WORKER_CLASS = "rq.worker.SimpleWorker"
# By dotted path: run as ``python -m``, this module is ``__main__`` in the enqueuer.
NOOP, PROBE = "bench.adapters.rq.noop", "bench.adapters.rq.probe"


def noop() -> None:
    get_current_job().connection.incr(COUNTER)


def probe(sent: float) -> None:
    get_current_job().connection.rpush(LATENCIES, time.monotonic() - sent)


class RQ(System):
    name = "rq"

    def setup(self) -> None:
        self.queue = Queue(QUEUE, connection=self.redis)

    def enqueue_one(self, i: int) -> None:
        self.queue.enqueue(NOOP)

    def enqueue_bulk(self, n: int) -> None:
        for start in range(0, n, 10000):
            datas = [Queue.prepare_data(NOOP) for _ in range(min(10000, n - start))]
            with self.redis.pipeline() as pipe:
                self.queue.enqueue_many(datas, pipeline=pipe)
                pipe.execute()

    def enqueue_latency_probe(self, sent: float) -> None:
        self.queue.enqueue(PROBE, sent)

    def start_workers(self) -> subprocess.Popen:
        cli = str(Path(sys.executable).parent / "rq")
        args = [cli, "worker-pool", "-n", "2", "-w", WORKER_CLASS, "--logging-level", "WARNING"]
        return spawn(
            [*args, "-u", self.redis_url, QUEUE], env={"PYTHONPATH": str(ROOT)}, cwd=str(ROOT)
        )


if __name__ == "__main__":
    main(RQ)
