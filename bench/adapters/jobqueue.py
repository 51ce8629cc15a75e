"""jobqueue under the benchmark: enqueue through Django's task API, bulk through the engine,
and ``manage.py runworker --concurrency 2`` (leases, events and the mirror on)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import System, main, percentile, spawn, stop

ROOT = Path(__file__).resolve().parents[2]


class Jobqueue(System):
    name = "jobqueue"
    settings_module = "bench.settings"  # of this process and of the workers it starts

    def setup(self) -> None:
        os.environ["DJANGO_SETTINGS_MODULE"] = self.settings_module
        os.environ["JOBQUEUE_REDIS_URL"] = self.redis_url
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from bench.jobs import noop, probe
        from jobqueue.conf import get_engine

        self.noop, self.probe, self.engine = noop, probe, get_engine()

    def enqueue_one(self, i: int) -> None:
        self.noop.enqueue()

    def enqueue_bulk(self, n: int) -> None:
        from jobqueue.engine import JobSpec

        spec = JobSpec("bench.jobs.noop")
        for start in range(0, n, 10000):
            self.engine.enqueue_many([spec] * min(10000, n - start))

    def enqueue_latency_probe(self, sent: float) -> None:
        self.probe.enqueue(sent)

    def start_workers(self) -> subprocess.Popen:
        env = {
            "DJANGO_SETTINGS_MODULE": self.settings_module,
            "JOBQUEUE_REDIS_URL": self.redis_url,
        }
        return spawn(
            [sys.executable, "manage.py", "runworker", "--concurrency", "2"],
            env=env,
            cwd=str(ROOT),
        )

    def run_drain(self, n: int) -> dict[str, Any]:
        """The drain, with the mirror running; then, workers still up, how far behind Redis
        the mirror wrote each finished job's row."""
        from jobqueue.models import Job, JobTransition

        JobTransition.objects.all().delete()
        Job.objects.all().delete()
        self.enqueue_bulk(n)
        workers = self.start_workers()
        try:
            start_count, started = self._wait_counter(lambda c: c > 0, timeout=120)
            end_count, ended = self._wait_counter(lambda c: c >= n, timeout=600)
            lag = self.mirror_lag(n)
        finally:
            stop(workers)
        return {"value": (end_count - start_count) / (ended - started), "unit": "jobs/s", **lag}

    def mirror_lag(self, n: int) -> dict[str, Any]:
        """How far behind Redis the mirror's rows were written (p50 / p99, ms): over the whole
        drain, and over the jobs that finished in its second half. The mirror starts with the
        worker, so it first applies the ``queued`` events of all ``n`` jobs, enqueued before it
        started, while the first jobs already finish: the first half's lag is mostly that
        catch-up, the second half's the lag of a mirror keeping up with the drain."""
        from jobqueue.models import Job

        deadline = time.monotonic() + 120
        while Job.objects.filter(status="succeeded").count() < n and time.monotonic() < deadline:
            time.sleep(0.2)
        rows = sorted(
            Job.objects.filter(status="succeeded").values_list("finished_at", "updated_at")
        )
        lags = [(updated - finished).total_seconds() * 1000 for finished, updated in rows]
        return {
            "mirror_rows": len(lags),
            "mirror_lag_p50_ms": percentile(lags, 50),
            "mirror_lag_p99_ms": percentile(lags, 99),
            "mirror_lag_p99_second_half_ms": percentile(lags[len(lags) // 2 :], 99),
        }


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(Jobqueue)
