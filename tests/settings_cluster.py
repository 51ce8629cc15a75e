"""The test settings with seven queues, for the Redis Cluster tests: their hash tags fall on
all three primaries of ``tests.redis_topologies.RedisCluster`` (``tests/test_cluster.py``
checks)."""

from tests.settings import *  # noqa: F403
from tests.settings import TASKS

TASKS = {"default": {**TASKS["default"], "QUEUES": [*TASKS["default"]["QUEUES"], "images", "sms"]}}
