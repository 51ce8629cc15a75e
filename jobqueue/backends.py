"""jobqueue as a backend of Django's task framework.

::

    TASKS = {
        "default": {
            "BACKEND": "jobqueue.backends.RedisBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"max_attempts": 3, "enqueue_on_commit": True},
        }
    }

On Django 6 the base class is ``django.tasks.backends.base.BaseTaskBackend``; on Django 5.2 it
is the ``django_tasks`` backport's. Both are imported through :mod:`jobqueue.compat`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.signals import setting_changed
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from . import compat
from .compat import InvalidTask, TaskError, TaskResult, TaskResultDoesNotExist, TaskResultStatus
from .conf import get_engine
from .engine import Job, JobSpec, JobState, default_registry
from .engine.errors import CorruptJob, InvalidJob, JobNotFound
from .engine.job import MAX_PRIORITY, MIN_PRIORITY, QUEUE_NAME_RE, make_job_id, new_local_id
from .engine.producer import MAX_TIMEOUT, MIN_TIMEOUT, PlainEnqueue, valid_timeout

# The one mapping of jobqueue's states onto Django's statuses.
STATUS = {
    JobState.SCHEDULED: TaskResultStatus.READY,
    JobState.QUEUED: TaskResultStatus.READY,
    JobState.RUNNING: TaskResultStatus.RUNNING,
    JobState.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    JobState.FAILED: TaskResultStatus.FAILED,
    JobState.CANCELED: TaskResultStatus.FAILED,
}

# Backend OPTIONS: name -> (check, description).
BACKEND_OPTIONS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "max_attempts": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1000,
        "a whole number from 1 to 1000",
    ),
    "timeout": (
        lambda v: v is None or valid_timeout(v),
        f"a number of seconds from {MIN_TIMEOUT} to {MAX_TIMEOUT} (a year), or None",
    ),
    "result_ttl": (
        lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0),
        "a positive whole number of seconds, or None",
    ),
    "enqueue_on_commit": (lambda v: isinstance(v, bool), "True or False"),
}
TASK_OPTIONS = ("max_attempts", "timeout", "unique_key", "result_ttl", "enqueue_on_commit")


def _check_task_option(name: str, value: Any) -> None:
    if value is None:
        return
    if name == "unique_key":
        if not (callable(value) or (isinstance(value, str) and value)):
            raise InvalidTask(
                f"unique_key must be a non-empty string or a callable, not {value!r}."
            )
        return
    check, description = BACKEND_OPTIONS[name]
    if not check(value):
        raise InvalidTask(f"{name} must be {description}, not {value!r}.")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobqueueTask(compat.Task):  # type: ignore[misc,type-arg]
    """Django's Task plus jobqueue's options, accepted by ``@task(...)`` and ``.using(...)``.

    ``unique_key`` is a string, or a callable receiving the task's arguments and returning
    one: while a job with that key is scheduled, queued or running, enqueueing again returns
    that job instead of a new one.
    """

    max_attempts: int | None = None
    timeout: float | None = None
    unique_key: str | Callable[..., str] | None = None
    result_ttl: int | None = None
    enqueue_on_commit: bool | None = None

    def __post_init__(self) -> None:
        compat.Task.__post_init__(self)
        # The worker finds tasks by name in this registry, and nowhere else.
        if self.module_path not in default_registry:
            default_registry.register(self.module_path, self)

    def get_backend(self) -> Any:
        """Django's lookup (a thread-local per alias), kept per alias once it gave a
        RedisBackend (which any thread may share) until settings.TASKS changes: every
        ``.enqueue()`` and every job a worker runs asks for it."""
        backend = _backends.get(self.backend)
        if backend is None:
            backend = compat.Task.get_backend(self)
            if isinstance(backend, RedisBackend):
                _backends[self.backend] = backend
        return backend

    def using(  # type: ignore[override]
        self,
        *,
        priority: int | None = None,
        queue_name: str | None = None,
        run_after: datetime | None = None,
        backend: str | None = None,
        **options: Any,
    ) -> JobqueueTask:
        unknown = set(options) - set(TASK_OPTIONS)
        if unknown:
            raise TypeError(
                f"using() got unknown option(s) {sorted(unknown)}; jobqueue's task options are "
                f"{', '.join(TASK_OPTIONS)}."
            )
        task: Any = compat.Task.using(
            self, priority=priority, queue_name=queue_name, run_after=run_after, backend=backend
        )
        return dataclasses.replace(task, **options) if options else task  # type: ignore[no-any-return]


_backends: dict[str, Any] = {}  # alias -> its RedisBackend, see JobqueueTask.get_backend
_UNSEEN: Any = object()  # a task RedisBackend has not validated yet


@receiver(setting_changed)
def _forget_backends(*, setting: str, **kwargs: Any) -> None:
    if setting == "TASKS":
        _backends.clear()


class RedisBackend(compat.BaseTaskBackend):
    """Django tasks on jobqueue: Redis-backed, leased, fenced, retried, visible in the admin."""

    task_class = JobqueueTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        self.queue_order: list[str] = list(params.get("QUEUES", ["default"]))
        # Tasks are immutable and validated when created; this backend instance (rebuilt
        # when settings.TASKS changes) validates each one again once, not on every enqueue,
        # and keeps what enqueues its plain jobs (fresh id, no unique key, ready now, not
        # waiting for a commit) with the options checked: None for a task whose are not.
        self._plans: dict[Any, PlainEnqueue | None] = {}

    # -- validation and checks ----------------------------------------------------------

    def validate_task(self, task: Any) -> None:
        priority = getattr(task, "priority", 0)
        if isinstance(priority, float) and not math.isfinite(priority):
            # Django's own check would raise ValueError / OverflowError from int(priority).
            raise InvalidTask(
                f"priority must be a whole number between {MIN_PRIORITY} and {MAX_PRIORITY}, "
                f"not {priority!r}."
            )
        super().validate_task(task)
        for name in TASK_OPTIONS:
            _check_task_option(name, getattr(task, name, None))

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """What the task framework's own check reports (when it runs: Django 6's, or the
        backport's when its app is installed). With jobqueue installed, its app's check
        ``jobqueue.checks.check_backends`` reports E011 and E012 on every stack, so they are
        left to it (each reported once); without it, they come here, after E010."""
        messages: list[checks.CheckMessage] = list(super().check(**kwargs))
        if not apps.is_installed("jobqueue"):
            messages.append(
                checks.Error(
                    f"TASKS[{self.alias!r}] uses jobqueue.backends.RedisBackend but 'jobqueue' "
                    "is not in INSTALLED_APPS.",
                    hint="Add 'jobqueue' to INSTALLED_APPS (above 'channels').",
                    id="jobqueue.E010",
                )
            )
            messages += self.configuration_errors()
        return messages

    def configuration_errors(self) -> list[checks.CheckMessage]:
        """E011 (OPTIONS not a dict, an unknown option, a bad value) and E012 (a bad queue
        name)."""
        messages: list[checks.CheckMessage] = []
        where = f"TASKS[{self.alias!r}]"
        options = self.options if isinstance(self.options, Mapping) else None
        if options is None:
            messages.append(
                checks.Error(
                    f"{where}['OPTIONS'] must be a dict, not {self.options!r}.", id="jobqueue.E011"
                )
            )
        for name, value in (options or {}).items():
            if name not in BACKEND_OPTIONS:
                problem = f"is not an option of RedisBackend; known: {', '.join(BACKEND_OPTIONS)}"
            elif not BACKEND_OPTIONS[name][0](value):
                problem = f"= {value!r} is invalid: it must be {BACKEND_OPTIONS[name][1]}"
            else:
                continue
            messages.append(
                checks.Error(f"{where}['OPTIONS'][{name!r}] {problem}.", id="jobqueue.E011")
            )
        for queue in self.queue_order:
            if not isinstance(queue, str) or not QUEUE_NAME_RE.match(queue):
                messages.append(
                    checks.Error(
                        f"{where}['QUEUES'] has an invalid queue name {queue!r}.",
                        hint="Use 1 to 64 characters from A-Z, a-z, 0-9, '_', '.', '-'.",
                        id="jobqueue.E012",
                    )
                )
        return messages

    def option(self, task: Any, name: str) -> Any:
        value = getattr(task, name, None)
        return self.options.get(name) if value is None else value

    # -- enqueue --------------------------------------------------------------------------

    def spec(self, task: Any, args: Any, kwargs: Any, job_id: str | None = None) -> JobSpec:
        run_after = task.run_after
        if run_after is not None and timezone.is_naive(run_after) and not settings.USE_TZ:
            run_after = timezone.make_aware(run_after)
        unique = task.unique_key
        if callable(unique):
            unique = unique(*args, **kwargs)
        return JobSpec(
            task=task.module_path,
            args=list(args),
            kwargs=dict(kwargs),
            queue=task.queue_name,
            priority=task.priority,
            run_after=run_after,
            max_attempts=self.option(task, "max_attempts") or 1,
            timeout=self.option(task, "timeout"),
            result_ttl=self.option(task, "result_ttl"),
            unique_key=unique,
            job_id=job_id,
        )

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        engine = get_engine()
        try:
            plan = self._plans.get(task, _UNSEEN)
        except TypeError:  # an option that cannot be hashed: validate every time
            plan = _UNSEEN
        if plan is _UNSEEN or (plan is not None and plan.producer is not engine.producer):
            plan = self._plan(task, engine, validate=plan is _UNSEEN)
        if plan is not None:  # the common case, kept short
            return self._enqueued(
                task, lambda draft: engine.producer.enqueue_plain(plan, args, kwargs, draft)
            )
        if self.option(task, "enqueue_on_commit"):
            spec = self.spec(task, args, kwargs, make_job_id(task.queue_name, new_local_id()))
            engine.validate(spec)  # bad input fails now, not at commit
            transaction.on_commit(lambda: self._enqueue_spec(task, spec))
            return self._pending_result(task, spec)
        return self._enqueue_spec(task, self.spec(task, args, kwargs))

    def _plan(self, task: Any, engine: Any, validate: bool) -> PlainEnqueue | None:
        """The task's plain enqueue, or None when its jobs are not plain; validated (raises
        InvalidTask or InvalidJob) and kept unless ``validate`` is false (seen before)."""
        if validate:
            self.validate_task(task)
        plan = None
        if (
            task.run_after is None
            and task.unique_key is None
            and not self.option(task, "enqueue_on_commit")
        ):
            plan = engine.producer.plain_enqueue(self.spec(task, (), {}))
        if len(self._plans) < 10000:
            try:
                self._plans[task] = plan
            except TypeError:
                pass
        return plan

    def enqueue_many(self, task: Any, calls: list[tuple[Sequence, Mapping]]) -> list[Any]:
        """Enqueue a job of ``task`` for each ``(args, kwargs)`` in one round trip to Redis;
        their TaskResults in order. Everything is checked first: one bad call raises
        InvalidJob (naming it) and nothing is enqueued."""
        self.validate_task(task)
        specs = [self.spec(task, args, kwargs) for args, kwargs in calls]
        engine = get_engine()
        if self.option(task, "enqueue_on_commit"):
            specs = [
                dataclasses.replace(s, job_id=make_job_id(s.queue, new_local_id())) for s in specs
            ]
            for spec in specs:
                engine.validate(spec)  # bad input fails now, not at commit
            transaction.on_commit(lambda: self._announce(task, engine.enqueue_many(specs)))
            return [self._pending_result(task, spec) for spec in specs]
        return self._announce(task, engine.enqueue_many(specs))

    def _announce(self, task: Any, jobs: list[Job]) -> list[Any]:
        results = [
            self.to_result(job, task if job.task == task.module_path else None) for job in jobs
        ]
        for result in results:
            compat.task_enqueued.send(type(self), task_result=result)
        return results

    def _enqueue_spec(self, task: Any, spec: JobSpec) -> Any:
        return self._enqueued(task, lambda draft: get_engine().enqueue_many([spec], draft)[0])

    def _enqueued(self, task: Any, enqueue: Callable[[Callable[[Job], None]], Job]) -> Any:
        """``enqueue(draft)``'s job as a TaskResult, announced with ``task_enqueued``."""
        drafted: list[tuple[Job, Any]] = []

        def draft(job: Job) -> None:  # built while Redis creates the job
            drafted.append((job, self.to_result(job, task)))

        job = enqueue(draft)
        if drafted and drafted[-1][0] is job:
            result = drafted[-1][1]
            object.__setattr__(result, "enqueued_at", job.enqueued_at)  # known from the reply
        else:
            result = self.to_result(job, task if job.task == task.module_path else None)
        compat.task_enqueued.send(type(self), task_result=result)
        return result

    def _pending_result(self, task: Any, spec: JobSpec) -> Any:
        """The result of an enqueue that waits for the transaction to commit."""
        return TaskResult(
            task=task,
            id=str(spec.job_id),
            status=TaskResultStatus.READY,
            enqueued_at=None,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=list(spec.args),
            kwargs=dict(spec.kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )

    # -- results --------------------------------------------------------------------------

    def get_result(self, result_id: str) -> Any:
        try:
            job = get_engine().get(result_id)
        except (JobNotFound, InvalidJob) as exc:
            raise TaskResultDoesNotExist(str(exc)) from exc
        return self.to_result(job)

    @staticmethod
    def task_for(name: str) -> Any:
        """The Task registered under ``name``, discovering tasks modules once if needed."""
        target = default_registry.get(name) if name in default_registry else None
        if target is None:
            from .discovery import autodiscover

            autodiscover()
            target = default_registry.get(name) if name in default_registry else None
        if not isinstance(target, compat.Task):
            raise TaskResultDoesNotExist(
                f"The job's task {name!r} is not a registered task in this process."
            )
        return target

    def to_result(self, job: Job, task: Any = None) -> Any:
        """The TaskResult of a job, in one table: statuses, times, errors, attempts."""
        status = STATUS[job.state]
        errors = [
            TaskError(exception_class_path=e.exception_class, traceback=e.traceback)
            for e in job.errors
        ]
        if (
            status == TaskResultStatus.FAILED
            and job.reason
            and (job.state is JobState.CANCELED or not errors or "stalled" in job.reason)
        ):
            kind = "JobCanceled" if job.state is JobState.CANCELED else "JobStalled"
            errors.append(
                TaskError(exception_class_path=f"jobqueue.exceptions.{kind}", traceback=job.reason)
            )
        result: Any = TaskResult(
            task=task or self.task_for(job.task),
            id=job.id,
            status=status,
            enqueued_at=job.enqueued_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            last_attempted_at=job.last_attempted_at,
            args=job.args,
            kwargs=job.kwargs,
            backend=self.alias,
            errors=errors,
            worker_ids=list(job.worker_ids),
        )
        if status == TaskResultStatus.SUCCESSFUL:
            try:
                compat.set_return_value(result, job.result)
            except ValueError as exc:
                raise CorruptJob(f"Job {job.id!r} has a result that is not JSON: {exc}") from exc
        return result
