"""How many jobs a worker's child holds: about 40 ms of work by the recent run times, at most
--prefetch. Short jobs come in large batches; a long job has none waiting behind it, and the
jobs sent to a child before its job turned out long are taken back for a free child."""

import signal
import time

import pytest

from jobqueue.compat import TaskResultStatus
from jobqueue.conf import get_engine
from jobqueue.engine import JobState
from jobqueue.worker.gate import Gate
from jobqueue.worker.prefetch import START, WINDOW, PrefetchPolicy
from tests import sample_tasks as t
from tests.conftest import wait_for


def limit(prefetch: int, run_time: float | None) -> int:
    policy = PrefetchPolicy(prefetch)
    policy.run_time = run_time
    return policy.limit()


def test_the_limit_follows_the_run_times_within_prefetch():
    assert limit(32, None) == START  # nothing ran yet
    assert limit(3, None) == 3
    assert limit(32, 0.0001) == 32  # short jobs: --prefetch
    assert limit(32, WINDOW / 10) == 10
    assert limit(32, 0.5) == limit(32, 3600) == 1  # long jobs: only the running one
    assert limit(1, 0.0) == 1


def test_the_running_average_moves_toward_each_run_time():
    policy = PrefetchPolicy(32)
    policy.ran(0.001)
    assert policy.run_time == 0.001
    policy.ran(1.0)
    assert 0.1 < policy.run_time < 1.0  # one long job is enough to hold fewer
    assert policy.limit() == 1
    for _ in range(60):
        policy.ran(0.001)
    assert policy.run_time < 0.0011
    assert policy.limit() == 32


def state(result):
    return get_engine().get(result.id).state


@pytest.mark.slow
def test_a_long_job_has_no_job_waiting_behind_it(start_worker):
    worker = start_worker("-c", "1", "--name", "long-1")
    first = t.sleep_for.enqueue(0.3)  # sets the run time: a child now holds one job
    wait_for(lambda: t.sleep_for.get_result(first.id).status == TaskResultStatus.SUCCESSFUL)
    long = t.sleep_for.enqueue(1.5)
    short = [t.add.enqueue(i, i) for i in range(3)]
    wait_for(lambda: state(long) is JobState.RUNNING)
    time.sleep(0.5)  # several claim rounds: the worker leaves them to any idle worker
    assert [state(r) for r in short] == [JobState.QUEUED] * 3
    for result in short:
        wait_for(lambda r=result: t.add.get_result(r.id).status == TaskResultStatus.SUCCESSFUL)
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()


@pytest.mark.slow
def test_before_any_run_time_no_job_waits_behind_another(start_worker):
    long = t.sleep_for.enqueue(1.5)
    short = [t.add.enqueue(i, i) for i in range(5)]
    worker = start_worker("-c", "1", "--name", "start-1")
    wait_for(lambda: state(long) is JobState.RUNNING)
    time.sleep(0.5)  # its only child is busy: the short jobs wait in Redis for any worker
    assert [state(r) for r in short] == [JobState.QUEUED] * 5
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()


def test_a_gate_gives_each_job_to_its_child_or_back_to_the_parent_never_both():
    gate = Gate()
    assert gate.take()  # job 1: the child runs it
    assert gate.revoke(sent=4) == 1  # jobs 2-4 are the parent's again
    assert [gate.take() for _ in range(3)] == [False] * 3  # the child drops them
    assert gate.take()  # job 5, sent after: the child's
    assert gate.revoke(sent=5) == 5  # nothing to take back
    assert gate.take()  # job 6


@pytest.mark.slow
def test_no_job_waits_behind_another_child_s_long_job(start_worker):
    """2 children, a 20 s job, then 50 short ones: the short ones are all done in a couple of
    seconds, by the free child (none stays bound behind the long job)."""
    worker = start_worker("-c", "2", "--name", "fair-2", "--shutdown-timeout", "0")
    warm = [t.add.enqueue(0, i) for i in range(20)]  # short run times are known: batches
    for result in warm:
        wait_for(lambda r=result: state(r) is JobState.SUCCEEDED)
    long = t.sleep_for.enqueue(20)
    short = [t.add.enqueue(i, i) for i in range(50)]
    wait_for(lambda: state(long) is JobState.RUNNING)
    wait_for(
        lambda: all(state(r) is JobState.SUCCEEDED for r in short),
        timeout=3.0,
        message=f"short jobs left: {[state(r).value for r in short].count('succeeded')}/50 done",
    )
    assert state(long) is JobState.RUNNING
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()


@pytest.mark.slow
def test_a_fresh_worker_runs_the_short_jobs_beside_a_long_one(start_worker):
    long = t.sleep_for.enqueue(20)
    short = [t.add.enqueue(i, i) for i in range(50)]
    worker = start_worker("-c", "2", "--name", "fresh-2", "--shutdown-timeout", "0")
    wait_for(
        lambda: all(state(r) is JobState.SUCCEEDED for r in short),
        timeout=10.0,  # the worker's start included
        message="short jobs waited behind the long one",
    )
    assert state(long) is JobState.RUNNING
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()


@pytest.mark.slow
def test_a_job_killed_at_its_timeout_counts_as_a_long_one(start_worker):
    worker = start_worker("-c", "1", "--name", "killed-1")
    stubborn = t.ignore_timeout.using(timeout=0.3).enqueue(30)  # killed 1 s after its timeout
    wait_for(lambda: state(stubborn) is JobState.FAILED)
    long = t.sleep_for.enqueue(1.5)
    short = [t.add.enqueue(i, i) for i in range(3)]
    wait_for(lambda: state(long) is JobState.RUNNING)
    time.sleep(0.5)
    assert [state(r) for r in short] == [JobState.QUEUED] * 3  # not held behind the long one
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()
