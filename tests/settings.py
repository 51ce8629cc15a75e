"""Settings of the test suite: the demo site's, plus the sample tasks and short retry delays."""

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
}
