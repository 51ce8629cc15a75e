"""`manage.py runworker`: options, misuse, processes, and the registry of tasks."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jobqueue.compat import TaskResultStatus, task_backends
from jobqueue.conf import get_engine
from jobqueue.engine import JobState
from tests import sample_tasks as t


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuchqueue"], "Queue 'nosuchqueue' is not configured; configured queues: default"),
        (["bad queue"], "Queue name 'bad queue' is invalid"),
        (["default", "default"], "named twice"),
        (["--concurrency", "0"], "'0' must be 1 or more"),
        (["--concurrency", "many"], "'many' is not a whole number"),
        (["--max-jobs", "-5"], "'-5' must be 1 or more"),
        (["--prefetch", "x"], "'x' is not a whole number"),
        (["--shutdown-timeout", "soon"], "--shutdown-timeout 'soon' is not a number"),
        (["--shutdown-timeout", "-1"], "must be zero or more"),
        (["--name", "has space"], "--name 'has space' is invalid"),
    ],
)
def test_misuse_is_a_command_error_naming_the_value(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("runworker", *args)


def test_misuse_from_the_shell_prints_the_error_not_a_traceback(run_worker):
    result = run_worker("--concurrency", "zero")
    assert result.returncode == 1
    assert "CommandError: 'zero' is not a whole number." in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_redis_is_a_command_error(run_worker):
    from tests.redis_server import free_port

    result = run_worker("--burst", JOBQUEUE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert result.returncode == 1
    assert "cannot be used" in result.stderr and "Start Redis" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unmigrated_database_is_one_line_naming_migrate(run_worker, tmp_path):
    """The mirror would write to tables that are not there: the worker does not start."""
    t.add.enqueue(1, 2)
    database = f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}"
    result = run_worker("--burst", "-c", "1", DATABASE_URL=database, JOBQUEUE_MIRROR="1")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("CommandError: The database lacks jobqueue's tables")
    assert "manage.py migrate" in line and "0001_initial" in line
    assert get_engine().counts("default")[JobState.QUEUED] == 1  # nothing ran
    no_mirror = run_worker("--burst", "-c", "1", "--no-mirror", DATABASE_URL=database)
    assert no_mirror.returncode == 0, no_mirror.stderr


def test_burst_exits_zero_when_nothing_is_ready(run_worker):
    result = run_worker("--burst")
    assert result.returncode == 0, result.stderr


def test_jobqueue_worker_is_the_same_command(run_worker):
    result = t.add.enqueue(4, 5)
    run = run_worker("--burst", command="jobqueue_worker")
    assert run.returncode == 0, run.stderr
    assert t.add.get_result(result.id).return_value == 9


def test_max_jobs_stops_after_n(run_worker):
    results = [t.add.enqueue(i, i) for i in range(5)]
    run = run_worker("--max-jobs", "2", "-c", "1", "--prefetch", "1")
    assert run.returncode == 0, run.stderr
    states = [t.add.get_result(r.id).status for r in results]
    assert states.count(TaskResultStatus.SUCCESSFUL) == 2
    assert states.count(TaskResultStatus.READY) == 3


def test_concurrency_runs_jobs_in_several_processes(run_worker):
    # Claimed in one batch and shared among the children. (Long jobs would not do: the jobs
    # behind a long one go to whichever child is free, perhaps always the same one.)
    results = [t.pid.enqueue() for _ in range(8)]
    run = run_worker("--burst", "-c", "2")
    assert run.returncode == 0, run.stderr
    pids = {t.pid.get_result(r.id).return_value for r in results}
    assert len(pids) == 2


def test_children_start_with_what_the_parent_loaded_frozen(run_worker):
    # Their garbage collector never scans Django and the task modules again: no long pauses.
    result = t.frozen_objects.enqueue()
    run = run_worker("--burst", "-c", "1")
    assert run.returncode == 0, run.stderr
    assert t.frozen_objects.get_result(result.id).return_value > 10_000


def test_a_jobs_database_connection_is_checked_after_it_as_after_a_request(run_worker, settings):
    # A child skips the checks while no job has opened a connection; once one has, the
    # connection is closed after each job unless CONN_MAX_AGE keeps it, as Django's request
    # cycle does.
    first, second = t.database_connection_open.enqueue(), t.database_connection_open.enqueue()
    run = run_worker("--burst", "-c", "1")
    assert run.returncode == 0, run.stderr
    kept = bool(settings.DATABASES["default"].get("CONN_MAX_AGE", 0))
    assert t.database_connection_open.get_result(first.id).return_value is False
    assert t.database_connection_open.get_result(second.id).return_value is kept


def test_a_job_naming_an_unregistered_task_fails_and_is_never_imported(run_worker, keyspace):
    engine = get_engine()
    engine.registry.register("tests.not_in_the_worker.run", lambda: None)  # known here only
    try:
        job = engine.enqueue("tests.not_in_the_worker.run")
    finally:
        engine.registry.unregister("tests.not_in_the_worker.run")
    run = run_worker("--burst")
    assert run.returncode == 0, run.stderr
    failed = engine.get(job.id)
    assert failed.state is JobState.FAILED
    assert failed.errors[0].exception_class == "jobqueue.exceptions.UnknownTask"
    assert "not a registered task" in failed.errors[0].traceback
    assert failed.attempts == 1  # not retried


def test_backend_checks(settings):
    from jobqueue.backends import RedisBackend

    backend = RedisBackend(
        "x", {"QUEUES": ["ok", "bad queue"], "OPTIONS": {"max_attempts": 0, "retries": 2}}
    )
    ids = sorted(m.id for m in backend.configuration_errors())
    assert ids == ["jobqueue.E011", "jobqueue.E011", "jobqueue.E012"]
    assert backend.check() == []  # left to jobqueue's own check: reported once
    messages = " ".join(m.msg for m in backend.configuration_errors())
    assert (
        "'max_attempts'] = 0 is invalid" in messages and "'retries'] is not an option" in messages
    )
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "jobqueue"]
    assert [m.id for m in RedisBackend("y", {}).check()] == ["jobqueue.E010"]
    assert [m.id for m in backend.check()] == ["jobqueue.E010", *ids]  # no jobqueue check then


@pytest.mark.django_db  # Django 6.1's model checks ask the database what it supports
def test_backend_checks_run_with_djangos_check_framework(settings):
    from django.core import checks

    settings.TASKS = {
        "default": {"BACKEND": "jobqueue.backends.RedisBackend", "OPTIONS": {"timeout": "long"}}
    }
    ids = [m.id for m in checks.run_checks() if m.id.startswith("jobqueue.")]
    assert ids == ["jobqueue.E011"]
    [error] = task_backends["default"].configuration_errors()
    assert error.msg.startswith("TASKS['default']['OPTIONS']")


@pytest.mark.django_db
def test_cache_alias_reuses_the_django_redis_connection(settings, keyspace, redis_url):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "jobs": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_url},
    }
    settings.JOBQUEUE = {**settings.JOBQUEUE, "CACHE_ALIAS": "jobs"}
    from django_redis import get_redis_connection

    engine = get_engine()
    assert engine.client is get_redis_connection("jobs")
    result = t.add.enqueue(1, 1)
    assert engine.get(result.id).state is JobState.QUEUED


def test_a_result_past_the_byte_limit_fails_its_job_without_a_retry(run_worker):
    big = t.add.using(max_attempts=3).enqueue("x" * 5000, "y")  # 5,003 bytes encoded
    small = t.add.enqueue("x" * 100, "y")
    run = run_worker("--burst", JOBQUEUE_RESULT_BYTES="1000")
    assert run.returncode == 0, run.stderr
    job = get_engine().get(big.id)
    assert job.state is JobState.FAILED and job.attempts == 1  # not retried: it would again
    [error] = job.errors
    assert error.exception_class == "jobqueue.exceptions.ResultTooLarge"
    assert "5003 bytes" in error.traceback and "RESULT_BYTES" in error.traceback
    assert job.result_json is None
    assert t.add.get_result(small.id).return_value == "x" * 100 + "y"


def test_a_burst_worker_waits_for_a_retry_on_a_redis_that_never_ran_the_fail_script(
    private_redis, run_worker
):
    """On a Redis that has not loaded the fail script yet, a failure's outcome and the next
    claim could share a round trip; the outcome got NOSCRIPT and ran again after the claim,
    which then had not seen the retry it scheduled, and a burst worker exited with the job
    scheduled (1 run in 10 of test_the_acl_user_runs_a_site_and_nothing_else on Python 3.12).
    The worker now loads every script at start, and claims again after any retry. This runs
    the same shape three times on a Redis whose scripts were flushed: it did not fail before
    the fix in 9 runs (the race needs the outcomes and a claim in one round trip), so it
    guards the whole path, not that race alone."""
    from jobqueue.engine import Engine, EngineConfig
    from jobqueue.engine.transport.connection import create_client

    engine = Engine(
        create_client(private_redis.url), EngineConfig(prefix="jq"), get_engine().registry
    )
    try:
        for attempt in range(3):
            private_redis.client().script_flush()
            private_redis.client().delete("jq:test:attempts:noscript")  # the worker's prefix
            # Jobs before and after it: its failure is recorded with their outcomes, and with
            # the next claim, in one round trip.
            engine.enqueue("tests.sample_tasks.add", [1, 2])
            job = engine.enqueue("tests.sample_tasks.fail_twice", ["noscript"], max_attempts=3)
            engine.enqueue("tests.sample_tasks.boom")
            done = run_worker(
                "--burst", "-c", "1", JOBQUEUE_REDIS_URL=private_redis.url, JOBQUEUE_PREFIX="jq"
            )
            assert done.returncode == 0, done.stderr
            found = engine.get(job.id)
            assert found.state == JobState.SUCCEEDED, (attempt, found.state, found.errors)
    finally:
        engine.client.close()
