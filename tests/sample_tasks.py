"""Tasks the test suite enqueues. Side effects go to Redis keys under the test's own prefix
(``record``), so tests can see what a worker process did."""

from __future__ import annotations

import asyncio
import gc
import os
import time

import redis

from jobqueue.compat import task, task_finished, task_started
from jobqueue.conf import jobqueue_settings


def client() -> redis.Redis:
    from jobqueue.conf import redis_client

    return redis_client()


def key(name: str) -> str:
    return f"{jobqueue_settings.PREFIX}:test:{name}"


def record(name: str, value: object) -> None:
    client().rpush(key(name), str(value))


def recorded(name: str) -> list[str]:
    return [v.decode() for v in client().lrange(key(name), 0, -1)]


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def boom(message: str = "boom") -> None:
    raise ValueError(message)


@task(max_attempts=3)
def fail_twice(label: str) -> str:
    attempt = client().incr(key(f"attempts:{label}"))
    if attempt < 3:
        raise ConnectionError(f"attempt {attempt} failed")
    return f"ok after {attempt}"


@task
def log_order(label: str) -> str:
    record("order", label)
    return label


@task
async def async_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


@task(takes_context=True)
def with_context(context, steps: int = 3) -> dict:
    for done in range(1, steps + 1):
        context.set_progress(done, steps, f"step {done}")
    return {
        "job_id": context.job_id,
        "token": context.token,
        "attempt": context.attempt,
        "result_id": context.task_result.id,
    }


@task(unique_key=lambda report_id: f"report:{report_id}")
def unique_report(report_id: int) -> int:
    return report_id


@task
def returns_a_set() -> object:
    return {1, 2}


@task
def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task
def pid() -> int:
    return os.getpid()


@task
def frozen_objects() -> int:
    """How many objects the running process's garbage collector ignores (gc.freeze())."""
    return gc.get_freeze_count()


@task
def database_connection_open() -> bool:
    """Whether the job found its process's database connection open; then it uses it."""
    from django.db import connection

    was_open = connection.connection is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return was_open


@task
def quiet_sleep(seconds: float) -> float:
    """``sleep_for`` that touches nothing but the clock: the signal receivers below skip it,
    so it runs to the end while Redis is full, paused or down (tests/test_redis_failures.py)."""
    time.sleep(seconds)
    return seconds


@task(takes_context=True)
def append_run(context, path: str) -> str:
    """Appends the job's id to the file ``path``, one line per run: what ran, and how often,
    kept outside Redis (which the test kills). Quiet, as ``quiet_sleep``."""
    with open(path, "a") as f:
        f.write(context.job_id + "\n")
    return context.job_id


QUIET = (".quiet_sleep", ".append_run")  # tasks the receivers below leave alone


def _recorded_task(task_result) -> bool:
    path = task_result.task.module_path
    return path.startswith("tests.sample_tasks") and not path.endswith(QUIET)


def _on_started(sender, task_result, **kwargs):
    if _recorded_task(task_result):
        record("signals", f"started {task_result.id} {task_result.status} {os.getpid()}")


def _on_finished(sender, task_result, **kwargs):
    if _recorded_task(task_result):
        record("signals", f"finished {task_result.id} {task_result.status} {os.getpid()}")


task_started.connect(_on_started, dispatch_uid="tests.sample_tasks.started")
task_finished.connect(_on_finished, dispatch_uid="tests.sample_tasks.finished")


@task
def upsets_receivers() -> str:
    """A job whose task_started and task_finished receivers (below) raise."""
    return "ran"


def _raise_for_upsetting(sender, task_result, **kwargs):
    if task_result.task.module_path.endswith(".upsets_receivers"):
        raise RuntimeError(f"a receiver failed for {task_result.id}")


task_started.connect(_raise_for_upsetting, dispatch_uid="tests.sample_tasks.upset_started")
task_finished.connect(_raise_for_upsetting, dispatch_uid="tests.sample_tasks.upset_finished")


# -- for the worker-hardening tests ------------------------------------------------------------


@task(takes_context=True)
def crash_once(context) -> str:
    if client().incr(key(f"crash:{context.job_id}")) == 1:
        os._exit(3)  # the child process dies mid-job
    return "survived"


@task
def crash_always() -> None:
    os._exit(4)


@task
def hold_gil(seconds: float) -> int:
    """Pure Python: holds the GIL the whole time (nothing else runs in this process)."""
    deadline = time.monotonic() + seconds
    spins = 0
    while time.monotonic() < deadline:
        spins += 1
    record("gil_runs", spins)
    return os.getpid()


@task
def ignore_timeout(seconds: float) -> None:
    from jobqueue.exceptions import JobTimeout

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(deadline - time.monotonic())
        except JobTimeout:
            record("ignored_timeout", 1)


@task(takes_context=True)
def count_effect(context, seconds: float = 0.02) -> str:
    client().hincrby(key("effects"), context.job_id, 1)
    time.sleep(seconds)
    return context.job_id


@task(takes_context=True)
def slow_effect(context, seconds: float) -> int:
    time.sleep(seconds)
    record("slow_effect", f"{context.job_id} {os.getpid()}")
    return os.getpid()


def _stamp_until(path: str, seconds: float) -> None:
    """Writes the time to ``path`` every 50 ms for ``seconds``. Each stamp is written beside
    ``path`` and renamed over it, so a reader never sees a half-written file, even when the
    process is killed in the middle of a write."""
    deadline = time.monotonic() + seconds
    scratch = f"{path}.writing"
    while time.monotonic() < deadline:
        with open(scratch, "w") as f:
            f.write(repr(time.time()))
        os.replace(scratch, path)
        time.sleep(0.05)


@task
def touch_file(path: str, seconds: float) -> None:
    """Writes the time to ``path`` every 50 ms: shows when the process stopped."""
    _stamp_until(path, seconds)


@task(takes_context=True)
def stamp_attempt(context, directory: str, seconds: float) -> str:
    """For ``seconds``, writes the time every 50 ms to ``directory/<fence token>``, one file
    per attempt, after writing the time it started to ``<fence token>.start``: when each
    attempt ran, seen from outside."""
    path = os.path.join(directory, str(context.token))
    with open(f"{path}.start", "w") as f:
        f.write(repr(time.time()))
    _stamp_until(path, seconds)
    return path


@task
def chatty(lines: int = 3) -> int:
    import logging

    log = logging.getLogger("tests.sample_tasks.chatty")
    log.debug("not kept: below INFO")
    for n in range(lines):
        log.info("line %d of %d", n + 1, lines)
    log.warning("careful <b>bold</b>")
    return lines


@task
def fail_first_time(label: str) -> str:
    if client().incr(key(f"first:{label}")) == 1:
        raise RuntimeError("first attempt fails")
    return f"{label} ok"


@task
def announced_sleep(label: str, seconds: float) -> str:
    """Says it started (a job claimed may still wait in a child's pipe), then sleeps."""
    record("started", label)
    time.sleep(seconds)
    return label


@task(takes_context=True)
def progress_steps(context, steps: int = 5, pause: float = 0.4) -> int:
    """Moves its progress bar and logs a line each step, slowly enough to be watched."""
    import logging

    log = logging.getLogger("tests.sample_tasks.progress_steps")
    for done in range(1, steps + 1):
        time.sleep(pause)
        context.set_progress(done, steps, f"step {done} of {steps}")
        log.info("step %d of %d", done, steps)
    return steps
