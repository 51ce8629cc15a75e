"""The mirror's CPU cost per job, measured alone: N jobs are enqueued, claimed and completed
straight through the engine (three events each), then one mirror applies them all and the
CPU time it took is printed per job. Steadier than the drain benchmark, where the mirror
shares 2 cores with Redis and the workers; use it to compare changes to the mirror.

    python bench/mirror_cost.py                  # 20,000 jobs, private redis-server, SQLite
    python bench/mirror_cost.py --n 50000 --profile
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/jqbench python bench/mirror_cost.py

It empties the jobqueue tables of the database it is given (by default a fresh SQLite file):
point DATABASE_URL at a benchmark database only. Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(redis_url: str, n: int, profile: bool) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    os.environ["JOBQUEUE_REDIS_URL"] = redis_url
    if "DATABASE_URL" in os.environ:
        os.environ["BENCH_DATABASE_URL"] = os.environ["DATABASE_URL"]
    else:  # a fresh SQLite file, so every run starts from an empty table
        folder = tempfile.mkdtemp(prefix="jq-mirror-cost-")
        os.environ["BENCH_DATABASE_URL"] = f"sqlite:///{folder}/mirror.sqlite3"
    import django

    django.setup()
    from django.core.management import call_command

    import bench.jobs  # noqa: F401 - registers the benchmark's tasks
    from jobqueue.conf import get_engine
    from jobqueue.engine import JobSpec
    from jobqueue.engine.claims import Success
    from jobqueue.mirror import Mirror
    from jobqueue.models import Job, JobTransition

    call_command("migrate", verbosity=0)
    JobTransition.objects.all().delete()
    Job.objects.all().delete()
    engine = get_engine()
    for start in range(0, n, 10000):
        engine.enqueue_many([JobSpec("bench.jobs.noop")] * min(10000, n - start))
    protocol = engine.worker_protocol()
    while batch := protocol.claim("default", "bench", count=500, parse=False).jobs:
        calls, _ = protocol.finish_calls([Success(c.job_id, c.token, "null") for c in batch], [])
        protocol.run_batch(calls)
    mirror = Mirror(engine)
    cpu, wall = time.process_time(), time.perf_counter()
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        applied = profiler.runcall(mirror.drain, 600)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    else:
        applied = mirror.drain(600)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    jobs = applied / 3
    print(
        f"mirror: {applied} events ({jobs:,.0f} jobs) in {wall:.2f} s; "
        f"CPU {cpu / jobs * 1e6:.0f} µs per job, {jobs / wall:,.0f} jobs/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", help="a Redis URL (default: a private redis-server)")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    args = parser.parse_args()
    if args.redis:
        run(args.redis, args.n, args.profile)
        return
    from tests.redis_server import RedisServer

    with RedisServer() as server:
        run(server.url, args.n, args.profile)


if __name__ == "__main__":
    main()
