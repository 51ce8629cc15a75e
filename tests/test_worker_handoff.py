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
    return engine.client.zrange(engine.keys.queue(queue).idle, 0, -1)


def test_an_idle_worker_is_handed_each_new_job(start_worker):
    worker = start_worker("-c", "2", "--name", "handoff-1")
    both = [b"handoff-1#0", b"handoff-1#1"]  # each child, blocked on its own inbox
    wait_for(lambda: idle_workers() == both, message="the worker never waited idle")
    results = []
    for i in range(5):
        result = t.add.enqueue(i, 1)
        wait_for(lambda r=result: t.add.get_result(r.id).status == TaskResultStatus.SUCCESSFUL)
        results.append(result)
        wait_for(lambda: idle_workers() == both)  # waiting again
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
    wait_for(lambda: idle_workers() == [b"busy-1#0"])
    slow = t.sleep_for.enqueue(1.5)
    wait_for(lambda: get_engine().get(slow.id).state is JobState.RUNNING)
    assert idle_workers() == []  # no room: not registered
    queued = t.add.enqueue(2, 2)
    assert get_engine().get(queued.id).state is JobState.QUEUED
    wait_for(lambda: t.add.get_result(queued.id).status == TaskResultStatus.SUCCESSFUL)
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()


def test_a_job_a_child_took_from_its_inbox_has_its_lease_renewed(start_worker):
    # The child takes the job and tells its parent, which renews the lease like any other:
    # a job running for three lease lengths is neither reaped nor run twice.
    worker = start_worker("-c", "1", "--name", "renew-1", JOBQUEUE_LEASE_SECONDS="1")
    wait_for(lambda: idle_workers() == [b"renew-1#0"])
    result = t.sleep_for.enqueue(3)
    wait_for(lambda: get_engine().get(result.id).state is JobState.RUNNING)
    assert get_engine().get(result.id).started_at == get_engine().get(result.id).enqueued_at
    wait_for(lambda: t.sleep_for.get_result(result.id).status == TaskResultStatus.SUCCESSFUL)
    job = get_engine().get(result.id)
    assert job.attempts == 1 and job.stalls == 0
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()


def test_a_child_busy_with_one_queue_is_not_registered_for_the_other(start_worker):
    worker = start_worker("default", "emails", "-c", "1", "--name", "two-q")
    wait_for(lambda: idle_workers() == [b"two-q#0"] and idle_workers("emails") == [b"two-q#0"])
    slow = t.sleep_for.enqueue(1.5)
    wait_for(lambda: get_engine().get(slow.id).state is JobState.RUNNING)
    # Busy: its other registration is dropped, so an email is not handed into the inbox of a
    # child that runs something else (the worker may still claim it, within its prefetch).
    wait_for(lambda: idle_workers("emails") == [])
    email = t.add.using(queue_name="emails").enqueue(1, 1)
    inbox = get_engine().keys.queue("emails").inbox("two-q#0")
    assert get_engine().client.llen(inbox) == 0  # not handed to it (it is not blocked there)
    wait_for(lambda: t.add.get_result(email.id).status == TaskResultStatus.SUCCESSFUL)
    wait_for(lambda: idle_workers() == [b"two-q#0"])  # idle again: registered again
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()
    assert idle_workers() == [] and idle_workers("emails") == []
