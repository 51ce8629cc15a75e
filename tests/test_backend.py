"""Django's task API on jobqueue: enqueue here, run by a real `runworker --burst` process."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from jobqueue.compat import (
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task,
    task_backends,
    task_enqueued,
)
from tests import sample_tasks as t


def burst(run_worker, *args):
    result = run_worker("--burst", "-c", "1", *args)
    assert result.returncode == 0, result.stderr
    return result


def test_the_backend_declares_and_passes_validation():
    backend = task_backends["default"]
    assert type(backend).__name__ == "RedisBackend"
    assert backend.supports_defer and backend.supports_async_task
    assert backend.supports_get_result and backend.supports_priority
    assert backend.check() == []


def test_enqueue_run_success(run_worker):
    result = t.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    assert result.enqueued_at is not None and result.args == [2, 3]
    from jobqueue.conf import get_engine

    assert result.enqueued_at == get_engine().get(result.id).enqueued_at  # Redis's time
    burst(run_worker)
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.started_at and result.finished_at and result.last_attempted_at
    assert result.started_at <= result.finished_at
    assert result.attempts == 1 and len(result.worker_ids) == 1
    assert result.errors == []
    fetched = t.add.get_result(result.id)
    assert fetched.return_value == 5 and fetched.task.func is t.add.func


def test_failing_task_is_failed_with_errors(run_worker):
    result = t.boom.enqueue("kaput")
    burst(run_worker)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 1  # one attempt by default
    [error] = result.errors
    assert error.exception_class_path == "builtins.ValueError"
    assert "ValueError: kaput" in error.traceback and "Traceback" in error.traceback
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018


def test_retries_are_visible_as_attempts(run_worker):
    result = t.fail_twice.enqueue("r1")
    burst(run_worker)
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert result.return_value == "ok after 3"
    assert result.attempts == 3
    assert [e.exception_class_path for e in result.errors] == ["builtins.ConnectionError"] * 2


def test_backend_wide_max_attempts(run_worker, settings):
    settings.TASKS = {
        "default": {**settings.TASKS["default"], "OPTIONS": {"max_attempts": 2}},
    }
    result = t.boom.enqueue()
    burst(run_worker)
    assert t.boom.get_result(result.id).attempts == 2


def test_priority_orders_execution(run_worker):
    for label, priority in [("low", -50), ("mid", 0), ("top", 100), ("high", 10), ("mid2", 0)]:
        t.log_order.using(priority=priority).enqueue(label)
    burst(run_worker, "--prefetch", "1")
    assert t.recorded("order") == ["top", "high", "mid", "mid2", "low"]


def test_queue_precedence_follows_the_command_line(run_worker):
    t.log_order.using(queue_name="low").enqueue("from-low")
    t.log_order.using(queue_name="high").enqueue("from-high")
    burst(run_worker, "high", "low", "--prefetch", "1")
    assert t.recorded("order") == ["from-high", "from-low"]


def test_run_after_is_respected(run_worker):
    import time

    due = timezone.now() + timedelta(seconds=5)  # beyond what a burst worker waits for (1 s)
    later = t.add.using(run_after=due).enqueue(1, 1)
    now = t.add.enqueue(2, 2)
    burst(run_worker)
    assert timezone.now() < due, "the machine is too slow for this test's timing"
    assert t.add.get_result(later.id).status == TaskResultStatus.READY
    assert t.add.get_result(now.id).status == TaskResultStatus.SUCCESSFUL
    time.sleep(max((due - timezone.now()).total_seconds(), 0) + 0.1)
    burst(run_worker)
    assert t.add.get_result(later.id).return_value == 2


def test_async_task_runs(run_worker):
    result = t.async_double.enqueue(21)
    burst(run_worker)
    assert t.async_double.get_result(result.id).return_value == 42


def test_context_has_attempt_job_id_token_and_progress(run_worker):
    result = t.with_context.enqueue(steps=4)
    burst(run_worker)
    result.refresh()
    value = result.return_value
    assert value["job_id"] == value["result_id"] == result.id
    assert value["attempt"] == 1 and int(value["token"]) > 0
    from jobqueue.conf import get_engine

    assert get_engine().get(result.id).progress == {"done": 4, "total": 4, "message": "step 4"}


def test_non_json_return_value_fails_the_job(run_worker):
    result = t.returns_a_set.enqueue()
    burst(run_worker)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert "JSON-serialisable" in result.errors[0].traceback


def test_unique_key_from_the_task_decorator():
    first = t.unique_report.enqueue(7)
    again = t.unique_report.enqueue(7)
    other = t.unique_report.enqueue(8)
    assert first.id == again.id != other.id


def test_signals_are_sent_from_the_process_where_each_happens(run_worker):
    import os

    seen = []

    def on_enqueued(sender, task_result, **kwargs):
        seen.append((task_result.id, os.getpid()))

    task_enqueued.connect(on_enqueued)
    try:
        result = t.add.enqueue(1, 2)
    finally:
        task_enqueued.disconnect(on_enqueued)
    assert seen == [(result.id, os.getpid())]
    burst(run_worker)
    started, finished = t.recorded("signals")
    assert started.startswith(f"started {result.id} RUNNING")
    assert finished.startswith(f"finished {result.id} SUCCESSFUL")
    assert started.split()[-1] == finished.split()[-1] != str(os.getpid())


@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit_rolled_back_enqueues_nothing(settings):
    settings.TASKS = {
        "default": {**settings.TASKS["default"], "OPTIONS": {"enqueue_on_commit": True}},
    }
    with pytest.raises(RuntimeError), transaction.atomic():
        result = t.add.enqueue(1, 1)
        raise RuntimeError("roll back")
    with pytest.raises(TaskResultDoesNotExist):
        t.add.get_result(result.id)
    with transaction.atomic():
        committed = t.add.enqueue(1, 1)
        with pytest.raises(TaskResultDoesNotExist):
            t.add.get_result(committed.id)  # not yet: the transaction is open
    assert t.add.get_result(committed.id).status == TaskResultStatus.READY


@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit_per_call():
    with pytest.raises(RuntimeError), transaction.atomic():
        result = t.add.using(enqueue_on_commit=True).enqueue(5, 5)
        raise RuntimeError("roll back")
    with pytest.raises(TaskResultDoesNotExist):
        t.add.get_result(result.id)


def test_get_result_of_unknown_ids():
    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result("default:doesnotexist")
    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result("not an id at all")


def test_async_enqueue_and_get_result():
    import asyncio

    async def go():
        result = await t.add.aenqueue(3, 4)
        fetched = await t.add.aget_result(result.id)
        return result, fetched

    result, fetched = asyncio.run(go())
    assert fetched.id == result.id and fetched.status == TaskResultStatus.READY


def local_function_task():
    def inner():
        return 1

    return task(inner)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (local_function_task, "module level"),
        (lambda: t.add.using(priority=101), "priority must be a whole number"),
        (lambda: t.add.using(queue_name="nope"), "Queue 'nope' is not valid"),
        (lambda: t.add.using(max_attempts=0), "max_attempts must be a whole number from 1"),
        (lambda: t.add.using(timeout=-1), "timeout must be a number of seconds from 0.001"),
        (lambda: t.add.using(timeout=1e10), "timeout must be .* to 31536000 .*not 10000000000.0"),
        (lambda: t.add.using(priority=float("nan")), "priority must be a whole number"),
        (lambda: t.add.using(priority=float("inf")), "priority must be a whole number"),
        (lambda: t.add.using(unique_key=""), "unique_key must be a non-empty string"),
    ],
)
def test_djangos_own_validation_rejects_bad_tasks(make, message):
    with pytest.raises(InvalidTask, match=message):
        make()


def test_takes_context_needs_a_context_argument():
    with pytest.raises(InvalidTask, match="first argument of 'context'"):
        task(takes_context=True)(t.add.func)


@override_settings(USE_TZ=True)
def test_naive_run_after_is_refused():
    from datetime import datetime

    with pytest.raises(InvalidTask, match="aware datetime"):
        t.add.using(run_after=datetime(2030, 1, 1))


def test_arguments_that_are_not_json_are_refused_and_nothing_written(keyspace):
    from jobqueue.exceptions import InvalidJob

    with pytest.raises((InvalidJob, TypeError)):
        t.add.enqueue(object(), 1)
    assert [k for k in keyspace.keys() if b":j:" in k] == []


def test_each_enqueue_goes_to_the_engine_of_the_settings_of_the_moment(settings, keyspace):
    # A task's options are checked once per backend; the engine may change under it.
    from jobqueue.conf import get_engine
    from tests.conftest import KeySpace, new_prefix

    first = t.add.enqueue(1, 2)
    other = KeySpace(keyspace.url, new_prefix())
    settings.JOBQUEUE = {**settings.JOBQUEUE, "PREFIX": other.prefix}
    try:
        second = t.add.enqueue(3, 4)
        assert get_engine().get(second.id).args == [3, 4]
        assert [k for k in other.keys() if k.endswith(second.id.split(":")[1].encode())]
    finally:
        other.cleanup()
        other.close()
    settings.JOBQUEUE = {**settings.JOBQUEUE, "PREFIX": keyspace.prefix}
    assert get_engine().get(first.id).args == [1, 2]
    assert t.add.enqueue(5, 6).status == TaskResultStatus.READY


def test_using_refuses_unknown_options():
    with pytest.raises(TypeError, match="unknown option"):
        t.add.using(retries=3)
