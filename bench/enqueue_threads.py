"""Does polling for the enqueue reply help a multi-threaded producer?

A single ``.enqueue()`` polls its socket for Redis's reply for up to
``JOBQUEUE["ENQUEUE_SPIN_MICROSECONDS"]`` before sleeping on it (docs/architecture.md, point
6). That was measured from one thread; a web server enqueues from many. This measures Django's
``noop.enqueue()`` (bench/jobs.py) from 1 thread and from 8 threads (each enqueueing its share
of the jobs, all started together), with the spin at 0 (off) and at 200 µs (the default), in
interleaved repetitions on a private ``redis-server`` flushed before each run::

    python -m bench.enqueue_threads     # 5 repetitions × 20,000 jobs per configuration
    python -m bench.enqueue_threads --n 5000 --repeat 2 --threads 1,4,8 --spins 0,50,200

Per configuration, medians of the repetitions (min–max): jobs/s over all threads (from the
moment they start together to the last one's end), the latency of one call (``perf_counter``
around each, all calls of all threads: p50 and p99), and the process's CPU time per job
(``process_time``, all threads). Each thread's first enqueue (its connection) is not timed.
Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentile  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402


def run(threads: int, spin: int, n: int) -> dict[str, float]:
    """``n`` enqueues from ``threads`` threads with the spin at ``spin`` µs (a fresh engine)."""
    from django.conf import settings
    from django.test import override_settings

    from bench.jobs import noop

    with override_settings(JOBQUEUE={**settings.JOBQUEUE, "ENQUEUE_SPIN_MICROSECONDS": spin}):
        noop.enqueue()  # the engine and the task's plan, made once, before the threads
        start = threading.Barrier(threads + 1)
        timings: list[list[float]] = [[] for _ in range(threads)]

        def produce(mine: list[float]) -> None:
            noop.enqueue()  # this thread's connection
            start.wait()
            clock = time.perf_counter
            for _ in range(n // threads):
                before = clock()
                noop.enqueue()
                mine.append(clock() - before)

        workers = [threading.Thread(target=produce, args=(t,)) for t in timings]
        for worker in workers:
            worker.start()
        start.wait()
        cpu, wall = time.process_time(), time.perf_counter()
        for worker in workers:
            worker.join()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    calls = [t * 1e6 for mine in timings for t in mine]
    return {
        "jobs/s": len(calls) / wall,
        "p50": percentile(calls, 50),
        "p99": percentile(calls, 99),
        "cpu": cpu / len(calls) * 1e6,
    }


def cell(values: list[float], digits: int = 0) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:,.{digits}f} ({low:,.{digits}f}–{high:,.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="jobs per run")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", default="1,8", help="comma-separated thread counts")
    parser.add_argument("--spins", default="0,200", help="comma-separated spins, µs")
    args = parser.parse_args()
    configs = [
        (t, s) for t in map(int, args.threads.split(",")) for s in map(int, args.spins.split(","))
    ]
    results: dict[tuple[int, int], list[dict[str, float]]] = {c: [] for c in configs}
    with RedisServer() as server:
        os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
        os.environ["JOBQUEUE_REDIS_URL"] = server.url
        import django

        django.setup()
        client = server.client()
        for rep in range(args.repeat):
            for threads, spin in configs[rep % len(configs) :] + configs[: rep % len(configs)]:
                client.flushall()
                result = run(threads, spin, args.n)
                results[threads, spin].append(result)
                print(
                    f"[{rep + 1}/{args.repeat}] {threads} thread(s), spin {spin:3} µs: "
                    + ", ".join(f"{k} {v:,.1f}" for k, v in result.items()),
                    file=sys.stderr,
                )
    print(
        f"\n`noop.enqueue()`, {args.n:,} jobs per run, medians of {args.repeat} interleaved "
        f"runs (min–max), {os.cpu_count()} cores\n\n"
        "| producer threads | spin (µs) | jobs/s | per call p50 (µs) | per call p99 (µs) "
        "| CPU per job (µs) |\n|---|---|---|---|---|---|"
    )
    for (threads, spin), runs in results.items():
        print(
            f"| {threads} | {spin} | {cell([r['jobs/s'] for r in runs])} | "
            f"{cell([r['p50'] for r in runs], 1)} | {cell([r['p99'] for r in runs], 1)} | "
            f"{cell([r['cpu'] for r in runs], 1)} |"
        )
    print()
    for (threads, spin), runs in results.items():
        off = results.get((threads, 0))
        if spin and off:  # the runs of the same repetition, paired
            speed = [on["jobs/s"] / no["jobs/s"] for on, no in zip(runs, off, strict=True)]
            cpu = [on["cpu"] / no["cpu"] for on, no in zip(runs, off, strict=True)]
            print(
                f"- {threads} thread(s), spin {spin} µs vs 0: jobs/s {cell(speed, 2)}×, "
                f"CPU per job {cell(cpu, 2)}×"
            )


if __name__ == "__main__":
    main()
