"""The benchmark's settings with six more queues, for ``bench/cluster.py``."""

from bench.settings import *  # noqa: F403
from bench.settings import TASKS

QUEUES = [f"q{i}" for i in range(6)]
TASKS = {"default": {**TASKS["default"], "QUEUES": [*TASKS["default"]["QUEUES"], *QUEUES]}}
