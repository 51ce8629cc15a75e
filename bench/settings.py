"""Django settings for benchmarking jobqueue: the demo site's, with the benchmark's task
module, its own SQLite file for the mirror (``BENCH_DATABASE_URL``), Redis at
``JOBQUEUE_REDIS_URL``, and ``BENCH_ENQUEUE_SPIN_MICROSECONDS`` to measure the enqueue's reply
spin (off by default)."""

import os
import tempfile
from pathlib import Path

from project.settings import *  # noqa: F403
from project.settings import JOBQUEUE, database_from_url

DATABASES = {
    "default": database_from_url(
        os.environ.get("BENCH_DATABASE_URL")
        or f"sqlite:///{Path(tempfile.gettempdir()) / 'jobqueue-bench-mirror.sqlite3'}"
    )
}
DEBUG = False  # as in production: no query log, no debug cursor
TASKS = {
    "default": {
        "BACKEND": "jobqueue.backends.RedisBackend",
        "QUEUES": ["default", "emails", "reports"],
    }
}
JOBQUEUE = {**JOBQUEUE, "TASK_MODULES": ["bench.jobs"], "PREFIX": "jqbench"}
if os.environ.get("BENCH_ENQUEUE_SPIN_MICROSECONDS"):  # the reply spin, to measure it
    JOBQUEUE["ENQUEUE_SPIN_MICROSECONDS"] = int(os.environ["BENCH_ENQUEUE_SPIN_MICROSECONDS"])
LOGGING = {"version": 1, "disable_existing_loggers": False}
