"""jobqueue on a three-primary Redis Cluster against one Redis: drain and pickup latency.

Six queues (``q0`` … ``q5``, whose hash tags fall on all three primaries) and three
``runworker --concurrency 1 --no-mirror`` processes serving all six, the same on both; each
run on a fresh private ``redis-server`` or a fresh cluster (``tests/redis_topologies.py``),
one after the other, repeated::

    python -m bench.cluster                  # 20,000 jobs, 3 repetitions
    python -m bench.cluster --n 5000 --repeat 2

drain: ``--n`` jobs enqueued in bulk across the six queues, then the workers start; jobs/s from
the first job done to the last. latency: the workers idle, one probe at a time, each on the next
queue; from ``.enqueue()`` to the job's start (p50 and p99 of 400). The mirror is off on both:
this compares the engine on the two topologies (the mirror on a cluster reads the event
streams queue by queue). Medians of the repetitions (min–max) are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.adapters.jobqueue import Jobqueue  # noqa: E402
from bench.common import System, spawn  # noqa: E402

QUEUES = [f"q{i}" for i in range(6)]
SETTINGS = "bench.settings_cluster"


class JobqueueOnSixQueues(Jobqueue):
    name = "jobqueue"
    settings_module = SETTINGS

    def __init__(self, redis_url: str) -> None:
        from jobqueue.engine.transport.connection import create_client

        self.redis_url = redis_url
        self.redis = create_client(redis_url)  # a cluster client for a cluster URL
        self.sent = 0

    def enqueue_bulk(self, n: int) -> None:
        from jobqueue.engine import JobSpec

        specs = [JobSpec("bench.jobs.noop", queue=queue) for queue in QUEUES]
        for start in range(0, n, 6000):
            count = min(6000, n - start)
            self.engine.enqueue_many([specs[i % 6] for i in range(count)])

    def enqueue_latency_probe(self, sent: float) -> None:
        self.probe.using(queue_name=QUEUES[self.sent % 6]).enqueue(sent)
        self.sent += 1

    def start_workers(self) -> subprocess.Popen:
        command = f"{sys.executable} manage.py runworker --concurrency 1 --no-mirror"
        command += " " + " ".join(QUEUES)
        env = {
            "DJANGO_SETTINGS_MODULE": self.settings_module,
            "JOBQUEUE_REDIS_URL": self.redis_url,
        }
        return spawn(
            ["sh", "-c", f"{command} & {command} & {command} & wait"], env=env, cwd=str(ROOT)
        )

    run_drain = System.run_drain  # without the mirror's lag: the mirror is off


def measure(url: str, workload: str, n: int) -> dict[str, Any]:
    """One workload in a fresh process (Django set up for ``url``)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.cluster", "--child", workload, "--url", url, "--n", str(n)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode:
        raise SystemExit(f"{workload} on {url} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(values: list[float], digits: int = 2) -> str:
    return (
        f"{statistics.median(values):,.{digits}f} ({min(values):,.{digits}f}–"
        f"{max(values):,.{digits}f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["drain", "latency"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        system = JobqueueOnSixQueues(options.url)
        system.setup()
        print(json.dumps(getattr(system, f"run_{options.child}")(options.n)))
        return

    from tests.redis_server import RedisServer
    from tests.redis_topologies import RedisCluster

    results: dict[str, dict[str, list[float]]] = {}
    for repetition in range(options.repeat):
        for topology in ("one Redis", "3-primary cluster"):
            with tempfile.TemporaryDirectory(prefix="jq-bench-cluster-") as directory:
                if topology == "one Redis":
                    server: Any = RedisServer(Path(directory)).start()
                else:
                    server = RedisCluster(Path(directory)).start()
                try:
                    drain = measure(server.url, "drain", options.n)
                    latency = measure(server.url, "latency", options.n)
                finally:
                    server.close()
            mine = results.setdefault(topology, {"drain": [], "p50": [], "p99": []})
            mine["drain"].append(drain["value"])
            mine["p50"].append(latency["value"])
            mine["p99"].append(latency["p99"])
            print(
                f"[{repetition + 1}/{options.repeat}] {topology}: drain {drain['value']:,.0f} "
                f"jobs/s, pickup p50 {latency['value']:.2f} ms, p99 {latency['p99']:.2f} ms",
                flush=True,
            )
    print("\n| topology | drain, 3 workers, 6 queues (jobs/s) | pickup latency p50 (ms) ", end="")
    print("| pickup latency p99 (ms) |\n|---|---|---|---|")
    for topology, mine in results.items():
        print(
            f"| {topology} | {spread(mine['drain'], 0)} | {spread(mine['p50'])} | "
            f"{spread(mine['p99'])} |"
        )


if __name__ == "__main__":
    main()
