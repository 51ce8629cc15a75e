"""Priority order, FIFO within a priority, and deferred jobs, over thousands of jobs."""

import random
import time
from datetime import UTC, datetime, timedelta

from jobqueue.engine import JobSpec


def test_priority_then_fifo_over_thousands(engine, protocol):
    rng = random.Random(7)
    specs = [JobSpec("tests.add", [i, 0], priority=rng.randint(-100, 100)) for i in range(3000)]
    for start in range(0, 3000, 250):  # several calls, so sequence numbers span calls
        engine.enqueue_many(specs[start : start + 250])
    order = []
    while True:
        batch = protocol.claim("default", "w", count=64).jobs
        if not batch:
            break
        order += [(c.job.priority, c.job.args[0]) for c in batch]
    assert len(order) == 3000
    expected = sorted(((s.priority, s.args[0]) for s in specs), key=lambda p: (-p[0], p[1]))
    assert order == expected


def test_deferred_jobs_wait_for_their_time(engine, protocol):
    soon = datetime.now(UTC) + timedelta(milliseconds=300)
    late = datetime.now(UTC) + timedelta(hours=1)
    engine.enqueue_many(
        [JobSpec("tests.add", [i, 0], run_after=soon) for i in range(200)]
        + [JobSpec("tests.add", [-1, 0], run_after=late)]
    )
    assert protocol.claim("default", "w", count=500).jobs == []
    batch = protocol.claim("default", "w", count=1)
    assert batch.next_due_ms is not None
    time.sleep(0.4)
    claimed = []
    while batch := protocol.claim("default", "w", count=50).jobs:
        claimed += batch
    assert sorted(c.job.args[0] for c in claimed) == list(range(200))
    assert all(c.job.run_at is not None for c in claimed)


def test_fifo_holds_across_single_and_bulk_enqueues_with_gaps(engine, protocol):
    # A bulk call reserves sequence numbers for all its jobs; those it does not use (a job
    # deferred, one already there) leave gaps that keep the order.
    later = datetime.now(UTC) + timedelta(hours=1)
    first = engine.enqueue("tests.add", [1, 0])
    again = JobSpec("tests.add", [0, 0], job_id="default:repeated")
    engine.enqueue_many([again])
    bulk = engine.enqueue_many(
        [
            JobSpec("tests.add", [2, 0]),
            JobSpec("tests.add", [99, 0], run_after=later),
            again,
            JobSpec("tests.add", [3, 0]),
        ]
    )
    last = engine.enqueue("tests.add", [4, 0])
    order = [c.job.id for c in protocol.claim("default", "w", count=10).jobs]
    assert order == [first.id, "default:repeated", bulk[0].id, bulk[3].id, last.id]
