"""Settings of the test suite: the demo site's, plus the sample tasks and short retry delays.

Worker processes started by tests read a few environment variables, so one test can shorten
leases or declare schedules for the workers it starts.
"""

import json
import os

from project.settings import *  # noqa: F403
from project.settings import JOBQUEUE

TASKS = {
    "default": {
        "BACKEND": "jobqueue.backends.RedisBackend",
        "QUEUES": ["default", "high", "low", "emails", "reports"],
        "OPTIONS": {},
    }
}

JOBQUEUE = {
    **JOBQUEUE,
    "TASK_MODULES": ["tests.sample_tasks"],
    "RETRY_BACKOFF": 0.05,
    "RETRY_BACKOFF_MAX": 0.2,
    "LEASE_SECONDS": float(os.environ.get("JOBQUEUE_LEASE_SECONDS", "30")),
    "MAX_STALLS": int(os.environ.get("JOBQUEUE_MAX_STALLS", "3")),
    "WORKER_DEAD_AFTER": float(os.environ.get("JOBQUEUE_WORKER_DEAD_AFTER", "15")),
    "MIRROR": os.environ.get("JOBQUEUE_MIRROR", "0") == "1",
    "RESULT_BYTES": int(os.environ.get("JOBQUEUE_RESULT_BYTES", str(16 * 1024 * 1024))),
    "SCHEDULES": json.loads(os.environ.get("JOBQUEUE_TEST_SCHEDULES", "{}")),
    "REDIS_SOCKET_TIMEOUT": float(os.environ.get("JOBQUEUE_REDIS_SOCKET_TIMEOUT", "10")),
}
