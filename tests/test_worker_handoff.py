"""A worker waiting idle gets new jobs handed straight to it by the enqueue (no claim)."""

import signal

import pytest

from jobqueue.compat import TaskResultStatus
from jobqueue.conf import get_engine
from jobqueue.engine import JobState
from tests import sample_tasks as t
from tests.conftest import wait_for

pytestmark = pytest.mark.slow


def idle_workers(queue="default"):
    engine = get_engine()
    return engine.client.zrange(engine.qkeys(queue).idle, 0, -1)


def test_an_idle_worker_is_handed_each_new_job(start_worker):
    worker = start_worker("-c", "2", "--name", "handoff-1")
    wait_for(lambda: idle_workers() == [b"handoff-1"], message="the worker never waited idle")
    results = []
    for i in range(5):
        result = t.add.enqueue(i, 1)
        wait_for(lambda r=result: t.add.get_result(r.id).status == TaskResultStatus.SUCCESSFUL)
        results.append(result)
        wait_for(lambda: idle_workers() == [b"handoff-1"])  # waiting again
    jobs = [get_engine().get(r.id) for r in results]
    assert [j.result for j in jobs] == [1, 2, 3, 4, 5]
    # Leased by the enqueue's own script: it started in the very millisecond it was enqueued.
    assert all(j.started_at == j.enqueued_at for j in jobs)
    assert all(list(j.worker_ids) == ["handoff-1"] for j in jobs)
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()
    assert idle_workers() == []  # a stopped worker is not waited on


def test_a_busy_worker_is_not_registered_and_jobs_wait_their_turn(start_worker):
    worker = start_worker("-c", "1", "--prefetch", "1", "--name", "busy-1")
    wait_for(lambda: idle_workers() == [b"busy-1"])
    slow = t.sleep_for.enqueue(1.5)
    wait_for(lambda: get_engine().get(slow.id).state is JobState.RUNNING)
    assert idle_workers() == []  # no room: not registered
    queued = t.add.enqueue(2, 2)
    assert get_engine().get(queued.id).state is JobState.QUEUED
    wait_for(lambda: t.add.get_result(queued.id).status == TaskResultStatus.SUCCESSFUL)
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()
