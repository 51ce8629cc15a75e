"""Enqueueing from one thread and from many: does polling for the reply help, and how does
jobqueue compare with huey as a web server enqueues?

A single ``.enqueue()`` polls its socket for Redis's reply for up to
``JOBQUEUE["ENQUEUE_SPIN_MICROSECONDS"]`` before sleeping on it (docs/architecture.md, point
6). That was measured from one thread; a web server enqueues from many. This measures Django's
``noop.enqueue()`` (bench/jobs.py) from 1 thread and from 8 threads (each enqueueing its share
of the jobs, all started together), with the spin at 0 (off, the default) and at 200 µs; and,
with ``--huey`` (the peers' virtualenv, ``python -m bench --install-peers``), huey's
``noop()`` the same way, in a process of its own. Interleaved repetitions, on a private
``redis-server`` flushed before each run::

    python -m bench.enqueue_threads             # 5 repetitions × 20,000 jobs per configuration
    python -m bench.enqueue_threads --huey --spins 0
    python -m bench.enqueue_threads --n 5000 --repeat 2 --threads 1,4,8 --spins 0,50,200

Per configuration, medians of the repetitions (min–max): jobs/s over all threads (from the
moment they start together to the last one's end), the latency of one call (``perf_counter``
around each, all calls of all threads: p50 and p99), and the process's CPU time per job
(``process_time``, all threads). Each thread's first enqueue (its connection) is not timed.
Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentile  # noqa: E402

PEERS_PYTHON = ROOT / "bench" / ".venv-peers" / "bin" / "python"
Config = tuple[str, int, int]  # system, threads, spin (µs; jobqueue only)


def threaded(enqueue: Callable[[], object], threads: int, n: int) -> dict[str, float]:
    """``n`` calls of ``enqueue`` shared by ``threads`` threads started together."""
    start = threading.Barrier(threads + 1)
    timings: list[list[float]] = [[] for _ in range(threads)]

    def produce(mine: list[float]) -> None:
        enqueue()  # this thread's connection
        start.wait()
        clock = time.perf_counter
        for _ in range(n // threads):
            before = clock()
            enqueue()
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


def run_jobqueue(threads: int, spin: int, n: int) -> dict[str, float]:
    """Django's ``noop.enqueue()`` with the spin at ``spin`` µs (a fresh engine)."""
    from django.conf import settings
    from django.test import override_settings

    from bench.jobs import noop

    with override_settings(JOBQUEUE={**settings.JOBQUEUE, "ENQUEUE_SPIN_MICROSECONDS": spin}):
        noop.enqueue()  # the engine and the task's plan, made once, before the threads
        return threaded(noop.enqueue, threads, n)


def run_huey(threads: int, n: int, redis_url: str) -> dict[str, float]:
    """huey's ``noop()``, in the peers' Python (``--huey-run``, below)."""
    done = subprocess.run(
        [str(PEERS_PYTHON), "-m", "bench.enqueue_threads", "--huey-run", f"{threads},{n}"],
        cwd=ROOT,
        env={**os.environ, "BENCH_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def huey_run(spec: str) -> None:
    threads, n = map(int, spec.split(","))
    from bench.adapters import huey

    huey.noop()  # the connection pool, before the threads
    print(json.dumps(threaded(huey.noop, threads, n)))


def cell(values: list[float], digits: int = 0) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:,.{digits}f} ({low:,.{digits}f}–{high:,.{digits}f})"


def paired(runs: list[dict[str, float]], others: list[dict[str, float]], key: str) -> str:
    return cell([a[key] / b[key] for a, b in zip(runs, others, strict=True)], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="jobs per run")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", default="1,8", help="comma-separated thread counts")
    parser.add_argument("--spins", default="0,200", help="comma-separated spins, µs")
    parser.add_argument("--huey", action="store_true", help="huey too (the peers' venv)")
    parser.add_argument("--huey-run", help=argparse.SUPPRESS)  # THREADS,N: one huey run
    args = parser.parse_args()
    if args.huey_run:
        huey_run(args.huey_run)
        return
    if args.huey and not PEERS_PYTHON.exists():
        parser.error("--huey needs the peers' virtualenv: python -m bench --install-peers")
    threads = list(map(int, args.threads.split(",")))
    configs: list[Config] = [
        ("jobqueue", t, s) for t in threads for s in map(int, args.spins.split(","))
    ] + ([("huey", t, 0) for t in threads] if args.huey else [])
    results: dict[Config, list[dict[str, float]]] = {c: [] for c in configs}
    from tests.redis_server import RedisServer

    with RedisServer() as server:
        os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
        os.environ["JOBQUEUE_REDIS_URL"] = server.url
        import django

        django.setup()
        client = server.client()
        for rep in range(args.repeat):
            for config in configs[rep % len(configs) :] + configs[: rep % len(configs)]:
                system, count, spin = config
                client.flushall()
                if system == "huey":
                    result = run_huey(count, args.n, server.url)
                else:
                    result = run_jobqueue(count, spin, args.n)
                results[config].append(result)
                print(
                    f"[{rep + 1}/{args.repeat}] {system} {count} thread(s), spin {spin:3} µs: "
                    + ", ".join(f"{k} {v:,.1f}" for k, v in result.items()),
                    file=sys.stderr,
                )
    print(
        f"\n`noop.enqueue()` (huey: `noop()`), {args.n:,} jobs per run, medians of "
        f"{args.repeat} interleaved runs (min–max), {os.cpu_count()} cores\n\n"
        "| system | producer threads | spin (µs) | jobs/s | per call p50 (µs) "
        "| per call p99 (µs) | CPU per job (µs) |\n|---|---|---|---|---|---|---|"
    )
    for (system, count, spin), runs in results.items():
        print(
            f"| {system} | {count} | {spin if system == 'jobqueue' else '—'} | "
            f"{cell([r['jobs/s'] for r in runs])} | {cell([r['p50'] for r in runs], 1)} | "
            f"{cell([r['p99'] for r in runs], 1)} | {cell([r['cpu'] for r in runs], 1)} |"
        )
    print()
    for (system, count, spin), runs in results.items():
        off = results.get(("jobqueue", count, 0))
        if system == "jobqueue" and spin and off:  # the runs of the same repetition, paired
            print(
                f"- jobqueue, {count} thread(s), spin {spin} µs vs 0: jobs/s "
                f"{paired(runs, off, 'jobs/s')}×, CPU per job {paired(runs, off, 'cpu')}×"
            )
        if system == "huey" and off:
            print(
                f"- {count} thread(s): jobqueue (spin 0) vs huey, jobs/s "
                f"{paired(off, runs, 'jobs/s')}×, CPU per job {paired(off, runs, 'cpu')}×"
            )


if __name__ == "__main__":
    main()
