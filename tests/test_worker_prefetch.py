"""How many jobs a worker's child holds: about 40 ms of work by the recent run times, at most
--prefetch. Short jobs come in large batches; a long job has none waiting behind it."""

import signal
import time
from types import SimpleNamespace

import pytest

from jobqueue.compat import TaskResultStatus
from jobqueue.conf import get_engine
from jobqueue.engine import JobState
from jobqueue.worker_exchange import PREFETCH_START, PREFETCH_WINDOW, Exchange
from tests import sample_tasks as t
from tests.conftest import wait_for


def limit(prefetch: int, run_time: float | None) -> int:
    worker = SimpleNamespace(options=SimpleNamespace(prefetch=prefetch), run_time=run_time)
    return Exchange._limit(worker)  # type: ignore[arg-type]


def test_the_limit_follows_the_run_times_within_prefetch():
    assert limit(32, None) == PREFETCH_START  # nothing ran yet
    assert limit(3, None) == 3
    assert limit(32, 0.0001) == 32  # short jobs: --prefetch
    assert limit(32, PREFETCH_WINDOW / 10) == 10
    assert limit(32, 0.5) == limit(32, 3600) == 1  # long jobs: only the running one
    assert limit(1, 0.0) == 1


def test_the_running_average_moves_toward_each_run_time():
    worker = SimpleNamespace(run_time=None)
    Exchange._ran(worker, 0.001)  # type: ignore[arg-type]
    assert worker.run_time == 0.001
    Exchange._ran(worker, 1.0)  # type: ignore[arg-type]
    assert 0.1 < worker.run_time < 1.0  # one long job is enough to hold fewer
    for _ in range(60):
        Exchange._ran(worker, 0.001)  # type: ignore[arg-type]
    assert worker.run_time < 0.0011


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
def test_before_any_run_time_a_child_holds_the_starting_number(start_worker):
    long = t.sleep_for.enqueue(1.5)
    short = [t.add.enqueue(i, i) for i in range(PREFETCH_START + 3)]
    worker = start_worker("-c", "1", "--name", "start-1")
    wait_for(lambda: state(long) is JobState.RUNNING)
    time.sleep(0.3)
    states = [state(r) for r in short]
    assert states.count(JobState.RUNNING) == PREFETCH_START - 1  # leased, behind the long one
    assert states.count(JobState.QUEUED) == 4
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
