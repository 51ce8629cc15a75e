"""Running one job, inside a worker's child process.

The task is looked up by name in the registry (never imported from the name), called with its
JSON arguments (coroutines on an event loop), and its outcome returned as a small dict for the
supervising parent to record. Django's ``task_started`` / ``task_finished`` signals are sent from
here, the process where the task runs; database connections are closed around each job as
Django's request cycle does.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import time
import traceback
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections
from django.db.backends.signals import connection_created
from django.utils import timezone

from .. import compat
from ..conf import get_engine, jobqueue_settings
from ..context import JobContext
from ..engine import Job, codec, default_registry
from ..engine.bookkeeping import LOG_CAP
from ..engine.errors import (
    CorruptJob,
    JobCanceled,
    JobqueueError,
    JobTimeout,
    ResultTooLarge,
    UnknownTask,
)


class _Running:
    """What the child is running now; the SIGALRM / SIGUSR1 handlers read it."""

    active = False
    timeout: float | None = None
    connections_checked = float("-inf")  # when close_old_connections() last ran (monotonic)
    # Whether this process may hold a database connection: True until install_handlers()
    # (a fresh child, whose parent closed every connection before the fork), then set again
    # by Django's connection_created signal. Jobs that never touch the database skip the
    # checks around them.
    database_used = True


# Database connections are checked (``close_old_connections()``) before and after each job, as
# Django does around each request; the check before a job is skipped when the check after the
# previous one ran this recently (nothing used the connections in between).
RECHECK_AFTER = 1.0


def _on_alarm(signum: int, frame: Any) -> None:
    if _Running.active:
        raise JobTimeout(f"The job ran longer than its timeout of {_Running.timeout} seconds.")


def _on_cancel(signum: int, frame: Any) -> None:
    if _Running.active:
        raise JobCanceled("The job was stopped because its cancel was requested.")


def install_handlers() -> None:
    """Soft timeout (SIGALRM) and cancel (SIGUSR1) interrupt the running job's code; a
    database connection opened by a job is noticed (for the checks around the next jobs).
    Called once in a new child process, which holds no database connection yet."""
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGUSR1, _on_cancel)
    connection_created.connect(_database_used, dispatch_uid="jobqueue.execution.database_used")
    _Running.database_used = False


def _database_used(sender: Any, **kwargs: Any) -> None:
    _Running.database_used = True


def class_path(exc: BaseException) -> str:
    kind = type(exc)
    return f"{kind.__module__}.{kind.__qualname__}"


def failure(job_id: str, exc_class: str, text: str, *, retry: bool, started: float) -> dict:
    return {
        "id": job_id,
        "ok": False,
        "exc": exc_class,
        "tb": text,
        "retry": retry,
        "dur": time.monotonic() - started,
    }


def execute(
    job_id: str,
    token: str,
    job: Job | None,
    error: CorruptJob | None,
    before_call: Callable[[], None] | None = None,
) -> dict:
    """Run one claimed job; returns the outcome message for the parent. ``before_call`` is
    called just before the task's code."""
    started = time.monotonic()
    if job is None:
        return failure(
            job_id, class_path(error or CorruptJob()), str(error), retry=False, started=started
        )
    try:
        target = default_registry.get(job.task)
    except UnknownTask as exc:
        return failure(job_id, class_path(exc), str(exc), retry=False, started=started)
    if isinstance(target, compat.Task):
        return _run_django_task(target, job, token, started, before_call)
    return _run(target, job.args, job.kwargs, job, started, before_call=before_call)


def _run_django_task(
    task: Any, job: Job, token: str, started: float, before_call: Callable[[], None] | None
) -> dict:
    backend = task.get_backend()
    task_result = backend.to_result(job, task)  # a claimed job is running
    send_task_signal(compat.task_started, backend, task_result)
    args = list(job.args)
    if task.takes_context:
        args.insert(0, JobContext(task_result=task_result, job_id=job.id, token=token))
    outcome = _run(task.func, args, job.kwargs, job, started, task_result, backend, before_call)
    if outcome["ok"]:
        _finish(task_result, compat.TaskResultStatus.SUCCESSFUL, codec.loads(outcome["result"]))
        send_task_signal(compat.task_finished, backend, task_result)
    return outcome


def send_task_signal(signal_: Any, backend: Any, task_result: Any) -> None:
    """Sends Django's ``task_started`` or ``task_finished`` for a job of this child. A receiver
    that raises is logged and the others still run: it must neither kill the child (the job
    would count a stall and run again, then be dead-lettered) nor change the job's outcome."""
    replies = signal_.send_robust(sender=type(backend), task_result=task_result)
    for receiver, reply in replies:
        if isinstance(reply, Exception):
            logging.getLogger("jobqueue.worker").error(
                "task_signal_receiver_failed job=%s receiver=%s.%s",
                task_result.id,
                getattr(receiver, "__module__", "?"),
                getattr(receiver, "__qualname__", repr(receiver)),
                exc_info=reply,
            )


def _finish(task_result: Any, status: Any, value: Any = None) -> None:
    object.__setattr__(task_result, "status", status)
    object.__setattr__(task_result, "finished_at", _now())
    if status == compat.TaskResultStatus.SUCCESSFUL:
        compat.set_return_value(task_result, value)


def _now() -> Any:
    return timezone.now()


LOG_FLUSH_EVERY = 0.5  # seconds a log record may wait before it is kept with its job


class JobLogHandler(logging.Handler):
    """Collects the log records a task writes while it runs, and keeps them with the job as
    they come: the first at once, the next ones at most every LOG_FLUSH_EVERY seconds (so a
    job's page shows them while it runs), the rest when the job ends.

    One per process, on the root logger, installed once (installing one per job would make
    logging rebuild every logger's level cache each time); it keeps records only while a job
    runs."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[dict[str, Any]] = []
        self.active = False
        self.job_id = ""
        self.flushed_at = float("-inf")
        self.flushing = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.active or self.flushing:
            return
        if len(self.records) >= LOG_CAP:
            del self.records[0]
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.records.append(
            {
                "t": round(record.created, 3),
                "level": record.levelname,
                "logger": record.name,
                "msg": message,
            }
        )
        if time.monotonic() - self.flushed_at >= LOG_FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Keep the records gathered with the job (a Redis error loses them, logged)."""
        if not self.records or self.flushing:
            return
        records, self.records = self.records, []
        self.flushing = True
        try:
            get_engine().logs.append(self.job_id, records)
        except JobqueueError as error:
            logging.getLogger("jobqueue.worker").warning(
                "job_logs_lost job=%s error=%s", self.job_id, error
            )
        finally:
            self.flushing = False
            self.flushed_at = time.monotonic()


_capture: dict[int, JobLogHandler] = {}  # pid -> this process's handler
TASK_LOGGERS = ("django.tasks", "django_tasks")  # Django 6's and the backport's


def _log_handler() -> JobLogHandler:
    handler = _capture.get(os.getpid())
    if handler is None:
        _capture.clear()
        level = logging.getLevelName(jobqueue_settings.JOB_LOG_LEVEL)
        handler = _capture[os.getpid()] = JobLogHandler(level)
        root = logging.getLogger()
        if root.level > level:
            # Django's own task loggers keep the level they had: lowering the root for the
            # jobs' logs would otherwise print "Task started/finished" for every job (and
            # build those records, a cost per job) where nobody asked for them.
            for name in TASK_LOGGERS:
                task_logger = logging.getLogger(name)
                if task_logger.level == logging.NOTSET:
                    task_logger.setLevel(root.level)
            root.setLevel(level)  # once per process
        root.addHandler(handler)
    return handler


class CapturedLogs:
    """Keep the log records written during one job with the job."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.handler = _log_handler()

    def __enter__(self) -> JobLogHandler:
        handler = self.handler
        handler.records, handler.job_id, handler.flushed_at = [], self.job_id, float("-inf")
        handler.active = True
        return handler

    def __exit__(self, *exc: object) -> None:
        self.handler.active = False
        self.handler.flush()


def _run(
    func: Any,
    args: list,
    kwargs: dict,
    job: Job,
    started: float,
    task_result: Any = None,
    backend: Any = None,
    before_call: Callable[[], None] | None = None,
) -> dict:
    if _Running.database_used and time.monotonic() - _Running.connections_checked > RECHECK_AFTER:
        close_old_connections()
    _Running.timeout = job.timeout
    with CapturedLogs(job.id):
        return _call(func, args, kwargs, job, started, task_result, backend, before_call)


_coroutine_functions: dict[Any, bool] = {}  # a task's function -> is it a coroutine function


def _is_coroutine_function(func: Any) -> bool:
    """inspect.iscoroutinefunction, asked once per task function rather than once per job."""
    try:
        return _coroutine_functions[func]
    except KeyError:
        found = _coroutine_functions[func] = inspect.iscoroutinefunction(func)
        return found
    except TypeError:  # not hashable
        return inspect.iscoroutinefunction(func)


def _call(
    func: Any,
    args: list,
    kwargs: dict,
    job: Job,
    started: float,
    task_result: Any,
    backend: Any,
    before_call: Callable[[], None] | None,
) -> dict:
    if before_call is not None:
        before_call()  # raises OSError when the parent is gone: the child ends
    try:
        _Running.active = True
        if job.timeout:
            signal.setitimer(signal.ITIMER_REAL, job.timeout)
        if _is_coroutine_function(func):
            value = asyncio.run(func(*args, **kwargs))
        else:
            value = func(*args, **kwargs)
        _Running.active = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        result = codec.dumps(value, what="return value")
        limit = get_engine().config.max_result_bytes
        if len(result) > limit:
            raise ResultTooLarge(
                f"The job's return value takes {len(result)} bytes encoded, more than the limit "
                f"of {limit} (JOBQUEUE['RESULT_BYTES']); return a reference (an id, a path) "
                "instead."
            )
    except BaseException as exc:
        _Running.active = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        text = "".join(traceback.format_exception(exc))
        retry = not isinstance(exc, (JobCanceled, ResultTooLarge))
        if task_result is not None:
            task_result.errors.append(
                compat.TaskError(exception_class_path=class_path(exc), traceback=text)
            )
            _finish(task_result, compat.TaskResultStatus.FAILED)
            send_task_signal(compat.task_finished, backend, task_result)
        return failure(job.id, class_path(exc), text, retry=retry, started=started)
    finally:
        _Running.active = False
        if _Running.database_used:
            close_old_connections()
            _Running.connections_checked = time.monotonic()
    return {"id": job.id, "ok": True, "result": result.decode(), "dur": time.monotonic() - started}
