"""``jobqueue.api``: bulk enqueue, wait, steering a job by id, pausing a queue; each against a
real Redis (and a real worker where a job must run), with its errors for bad input."""

from __future__ import annotations

import pytest
from django.db import transaction

from jobqueue import api
from jobqueue.compat import TaskResultStatus
from jobqueue.conf import get_engine
from jobqueue.engine.errors import (
    InvalidJob,
    InvalidTransition,
    JobNotFound,
    UnknownTask,
    WaitTimeout,
)
from tests import sample_tasks as t


def queued(queue: str = "default") -> int:
    return api.counts(queue)["queued"]


def test_enqueue_many_takes_positional_keyword_or_both_in_one_round_trip():
    by_args = api.enqueue_many(t.add, [(1, 2), [3, 4]])
    by_kwargs = api.enqueue_many(t.add, kwargs=[{"a": 5, "b": 6}])
    both = api.enqueue_many(t.add, [(7,)], kwargs=[{"b": 8}])
    assert [r.args for r in by_args] == [[1, 2], [3, 4]]
    assert (by_kwargs[0].args, by_kwargs[0].kwargs) == ([], {"a": 5, "b": 6})
    assert (both[0].args, both[0].kwargs) == ([7], {"b": 8})
    assert all(r.status == TaskResultStatus.READY for r in [*by_args, *by_kwargs, *both])
    assert queued() == 4
    assert t.add.get_result(by_args[1].id).args == [3, 4]


def test_enqueue_many_keeps_the_tasks_options():
    results = api.enqueue_many(t.add.using(queue_name="low", priority=7), [(1, 1), (2, 2)])
    jobs = get_engine().find([r.id for r in results])
    assert {(j.queue, j.priority) for j in jobs} == {("low", 7)}
    first = api.enqueue_many(t.unique_report, [(9,)])
    again = api.enqueue_many(t.unique_report, [(9,)])
    assert again[0].id == first[0].id  # the unique key held by the first job


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: api.enqueue_many(t.add), "needs args"),
        (lambda: api.enqueue_many(t.add, [(1, 2)], kwargs=[{}, {}]), "1 args and 2 kwargs"),
        (lambda: api.enqueue_many(len, [(1,)]), "takes a task of a jobqueue backend"),
        (lambda: api.enqueue_many(t.add, [(1, 2), (object(),)]), "JSON-serialisable"),
        (lambda: api.enqueue_many(t.add, [(1, 2), "12"]), r"args\[1\] must be a list or tuple"),
        (lambda: api.enqueue_many(t.add, kwargs=[[("a", 1)]]), r"kwargs\[0\] must be a dict"),
    ],
)
def test_enqueue_many_refuses_bad_input_and_enqueues_nothing(call, message):
    with pytest.raises(InvalidJob, match=message):
        call()
    assert queued() == 0


@pytest.mark.django_db(transaction=True)
def test_enqueue_many_waits_for_the_commit_when_the_task_asks():
    on_commit = t.add.using(enqueue_on_commit=True)
    with pytest.raises(RuntimeError), transaction.atomic():
        api.enqueue_many(on_commit, [(1, 1)])
        raise RuntimeError("rolled back")
    assert queued() == 0
    with transaction.atomic():
        pending = api.enqueue_many(on_commit, [(1, 1), (2, 2)])
        assert queued() == 0
    assert queued() == 2
    assert [api.result(r).args for r in pending] == [[1, 1], [2, 2]]


def test_wait_returns_the_finished_result(start_worker):
    start_worker("-c", "1")
    [first, second] = api.enqueue_many(t.add, [(1, 2), (3, 4)])
    assert api.wait(first, timeout=20).return_value == 3
    done = api.wait(second.id, timeout=20)  # by id too
    assert done.status == TaskResultStatus.SUCCESSFUL and done.return_value == 7


def test_wait_gives_up_after_its_timeout_and_knows_missing_jobs():
    result = t.add.enqueue(1, 1)  # no worker runs it
    with pytest.raises(WaitTimeout):
        api.wait(result, timeout=0.2)
    with pytest.raises(JobNotFound):
        api.wait("default:nosuchjob", timeout=0.2)
    with pytest.raises(InvalidJob, match="not a jobqueue job id"):
        api.result("no colon")


def test_cancel_retry_delete_by_result_or_id():
    result = t.add.enqueue(2, 2)
    assert api.cancel(result) == "canceled"
    assert api.result(result.id).status == TaskResultStatus.FAILED
    with pytest.raises(InvalidTransition, match="is canceled"):
        api.cancel(result.id)
    api.retry(result.id)
    assert api.result(result).status == TaskResultStatus.READY
    with pytest.raises(InvalidTransition, match="only failed or canceled"):
        api.retry(result)
    api.delete(result)
    with pytest.raises(JobNotFound):
        api.delete(result)


def test_pause_and_resume_a_queue(start_worker):
    assert api.pause("default") is True
    assert api.pause("default") is False  # already paused
    start_worker("-c", "1")
    result = t.add.enqueue(1, 2)
    with pytest.raises(WaitTimeout):
        api.wait(result, timeout=1)  # nothing is taken from a paused queue
    assert api.resume("default") is True
    assert api.wait(result, timeout=20).return_value == 3
    with pytest.raises(InvalidJob, match="Queue name 'bad name' is invalid"):
        api.pause("bad name")


def test_purge_retry_all_and_counts():
    api.enqueue_many(t.add, [(1, 1)] * 3)
    engine = get_engine()
    protocol = engine.worker_protocol()
    for claimed in protocol.claim("default", "w", count=2).jobs:
        protocol.fail(claimed.job_id, claimed.token, "x.E", "tb", retry=False)
    assert api.counts("default") == {
        "scheduled": 0,
        "queued": 1,
        "running": 0,
        "succeeded": 0,
        "failed": 2,
        "canceled": 0,
    }
    assert api.retry_all("default") == 2
    assert api.purge("default", "queued") == 3
    assert queued() == 0
    with pytest.raises(InvalidJob, match="not a job state"):
        api.purge("default", "lost")


def test_a_job_of_a_task_this_process_does_not_know_has_no_task_result():
    job = get_engine().enqueue("tests.sample_tasks.add", [1, 2])
    assert api.result(job.id).status == TaskResultStatus.READY  # a task this process knows
    get_engine().registry.register("elsewhere.only", lambda: None)
    other = get_engine().enqueue("elsewhere.only")
    get_engine().registry.unregister("elsewhere.only")
    with pytest.raises(Exception, match="not a registered task"):
        api.result(other.id)
    with pytest.raises(UnknownTask):
        get_engine().enqueue("elsewhere.only")
