"""The benchmark's job bodies for jobqueue: the same as every peer's."""

import time

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task

from bench.common import COUNTER, LATENCIES

_client = None


def client():
    global _client
    if _client is None:
        from jobqueue.conf import redis_client

        _client = redis_client()
    return _client


@task
def noop():
    client().incr(COUNTER)


@task
def probe(sent: float):
    client().rpush(LATENCIES, time.monotonic() - sent)
