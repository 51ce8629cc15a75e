"""What every system's benchmark adapter shares: the workloads' definitions, measurement
helpers, and the command line each adapter runs under.

An adapter is a module with a ``System`` subclass, run as::

    python -m bench.adapters.<name> --workload drain --redis redis://127.0.0.1:PORT/0 --n 20000

It prints one JSON object on its last line of stdout: ``{"value": <number>, "unit": "...",
...extra}``. The orchestrator (``bench/run.py``) gives each run a freshly flushed, dedicated
Redis, and runs the systems interleaved.

The workloads (the same job body everywhere: one ``INCR bench:counter``):

- ``enqueue``: N jobs, one enqueue call each, from one process -> jobs/s
- ``bulk``: N jobs through the system's bulk API (skipped when it has none) -> jobs/s
- ``drain``: N jobs already queued, 2 worker processes started: jobs/s between the first job
  done and the last
- ``latency``: idle workers; one job at a time, enqueue -> start of the job body, ms p50 / p99
- ``memory``: Redis ``used_memory`` grown per queued job, bytes
- ``rss``: resident memory of an idle worker (all its processes), MB
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import redis

COUNTER = "bench:counter"
LATENCIES = "bench:latencies"
WORKLOADS = ("enqueue", "bulk", "drain", "latency", "memory", "rss")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB (Linux /proc)."""
    total, todo, seen = 0, [pid], set()
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            with open(f"/proc/{current}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
        todo += children.get(current, [])
    return total / 1024


class System:
    """One job queue under test. Subclasses implement the workloads they support."""

    name = "?"
    bulk_supported = True

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.redis = redis.Redis.from_url(redis_url)

    # Override these --------------------------------------------------------------------

    def enqueue_one(self, i: int) -> None:
        raise NotImplementedError

    def enqueue_bulk(self, n: int) -> None:
        raise NotImplementedError

    def enqueue_latency_probe(self, sent: float) -> None:
        """Enqueue the latency job: it does ``rpush(LATENCIES, time.monotonic() - sent)``."""
        raise NotImplementedError

    def start_workers(self) -> subprocess.Popen:
        """Start 2 worker processes (in their own session) and return the parent process."""
        raise NotImplementedError

    def setup(self) -> None:
        """Anything to do before a workload (imports, declarations)."""

    # The workloads ---------------------------------------------------------------------

    def run_enqueue(self, n: int) -> dict[str, Any]:
        self.enqueue_one(-1)  # warm-up: connections, script loading
        started = time.perf_counter()
        for i in range(n):
            self.enqueue_one(i)
        return {"value": n / (time.perf_counter() - started), "unit": "jobs/s"}

    def run_bulk(self, n: int) -> dict[str, Any]:
        if not self.bulk_supported:
            return {"value": None, "unit": "jobs/s", "note": "no bulk API"}
        started = time.perf_counter()
        self.enqueue_bulk(n)
        return {"value": n / (time.perf_counter() - started), "unit": "jobs/s"}

    def run_drain(self, n: int) -> dict[str, Any]:
        if self.bulk_supported:
            self.enqueue_bulk(n)
        else:
            for i in range(n):
                self.enqueue_one(i)
        workers = self.start_workers()
        try:
            start_count, started = self._wait_counter(lambda c: c > 0, timeout=120)
            end_count, ended = self._wait_counter(lambda c: c >= n, timeout=600)
        finally:
            stop(workers)
        return {"value": (end_count - start_count) / (ended - started), "unit": "jobs/s"}

    def run_latency(self, n: int) -> dict[str, Any]:
        samples = max(50, n)  # the runner passes its --probes here (1,000 by default)
        workers = self.start_workers()
        try:
            time.sleep(3)  # let every worker process start and go idle
            for _ in range(samples + 20):
                before = self.redis.llen(LATENCIES)
                self.enqueue_latency_probe(time.monotonic())
                deadline = time.monotonic() + 30
                while self.redis.llen(LATENCIES) == before:
                    if time.monotonic() > deadline:
                        raise RuntimeError("a latency probe never ran")
                    time.sleep(0.0005)
                time.sleep(0.01)  # idle again before the next probe
        finally:
            stop(workers)
        values = [float(v) * 1000 for v in self.redis.lrange(LATENCIES, 20, -1)]
        return {"value": percentile(values, 50), "p99": percentile(values, 99), "unit": "ms"}

    def run_memory(self, n: int) -> dict[str, Any]:
        self.enqueue_one(-1)  # warm-up: what it leaves is in both readings
        time.sleep(0.2)
        before = self.redis.info("memory")["used_memory"]
        if self.bulk_supported:
            self.enqueue_bulk(n)
        else:
            for i in range(n):
                self.enqueue_one(i)
        after = self.redis.info("memory")["used_memory"]
        return {"value": (after - before) / n, "unit": "bytes/job"}

    def run_rss(self, n: int) -> dict[str, Any]:
        workers = self.start_workers()
        try:
            time.sleep(4)
            return {"value": rss_mb(workers.pid), "unit": "MB"}
        finally:
            stop(workers)

    def _wait_counter(self, done: Callable[[int], bool], timeout: float) -> tuple[int, float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = int(self.redis.get(COUNTER) or 0)
            if done(count):
                return count, time.perf_counter()
            time.sleep(0.002)
        raise RuntimeError(f"{self.name}: counter stuck at {self.redis.get(COUNTER)!r}")


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    """Stop a worker and everything it started (its session)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass


def spawn(
    args: list[str], env: dict[str, str] | None = None, cwd: str | None = None
) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def main(system_class: type[System]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", choices=WORKLOADS, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    system = system_class(args.redis)
    system.setup()
    result = getattr(system, f"run_{args.workload}")(args.n)
    print(json.dumps({"system": system.name, "workload": args.workload, **result}))
    sys.stdout.flush()


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
