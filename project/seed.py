"""The demo's first start: a handful of example jobs of every kind, so that each admin page (the
jobs, a job's page, the queues, the workers, the schedules) has something to show within a
minute.

"First start" is a marker key under the site's prefix, taken with ``SET NX``: a new (or
flushed) Redis is seeded once, however often the demo starts and however many demos share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from jobqueue.conf import jobqueue_settings, redis_client

from .examples import BY_NAME, enqueue_example


@dataclass(frozen=True)
class Batch:
    example: str
    count: int
    priority: int | None = None
    delay: float = 0


BATCHES = [
    Batch("add", 5),
    Batch("add", 3, priority=50),  # enqueued after the others, run before them
    Batch("send_welcome_email", 4),
    Batch("send_welcome_email", 2, delay=30),  # scheduled: ready in 30 s
    Batch("build_report", 2, priority=10),
    Batch("build_report", 1, delay=45),
    Batch("flaky", 3),
    Batch("always_fails", 1),
    Batch("runs_too_long", 1, priority=-10),
    Batch("refresh_cache", 3),  # unique: one job
    Batch("fetch_status", 2),
    Batch("add", 2, priority=-50, delay=20),
]


@dataclass(frozen=True)
class Seeded:
    jobs: int  # distinct jobs (a unique task's repeats are one)
    scheduled: int  # of which ready only later
    queues: list[str]


def marker_key() -> str:
    return f"{jobqueue_settings.PREFIX}:demo:seeded"


def seed_first_start() -> Seeded | None:
    """Enqueue BATCHES unless this Redis was seeded before (then None). Raises Redis's or
    jobqueue's error when Redis cannot be used; the marker is then given back, so the next
    start tries again."""
    client = redis_client()
    if not client.set(marker_key(), datetime.now(UTC).isoformat(), nx=True):
        return None
    try:
        ids: set[str] = set()
        scheduled: set[str] = set()
        queues: set[str] = set()
        for batch in BATCHES:
            example = BY_NAME[batch.example]
            results = enqueue_example(
                example, batch.count, priority=batch.priority, delay=batch.delay
            )
            ids.update(result.id for result in results)
            if batch.delay:
                scheduled.update(result.id for result in results)
            queues.add(example.queue)
    except BaseException:
        client.delete(marker_key())
        raise
    return Seeded(jobs=len(ids), scheduled=len(scheduled), queues=sorted(queues))
