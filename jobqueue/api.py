"""jobqueue's Python API, for what Django's task API does not cover: bulk enqueue, waiting for a
result, steering one job by its id, and pausing a queue. Everything else goes through Django's
own API (``@task``, ``.enqueue()``, ``.get_result()``)::

    from jobqueue import api

    results = api.enqueue_many(add, [(1, 2), (3, 4)])  # one round trip to Redis
    done = api.wait(results[0], timeout=10)  # blocks until the job ends, no polling
    api.cancel(results[1])
    api.pause("emails")

A job is named by its TaskResult or its id. Errors are jobqueue's (``jobqueue.exceptions``):
``InvalidJob`` for bad input, ``JobNotFound``, ``InvalidTransition`` (retrying a job that has
not failed, cancelling a finished one), ``WaitTimeout``, ``ConnectionFailed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import compat
from .conf import get_engine
from .engine.errors import InvalidJob

__all__ = [
    "cancel",
    "counts",
    "delete",
    "enqueue_many",
    "pause",
    "purge",
    "result",
    "resume",
    "retry",
    "retry_all",
    "wait",
]


def enqueue_many(
    task: Any,
    args: Iterable[Sequence[Any]] | None = None,
    *,
    kwargs: Iterable[Mapping[str, Any]] | None = None,
) -> list[Any]:
    """Enqueue one job of ``task`` per item, in one round trip to Redis, and return their
    TaskResults in order. ``args`` holds each job's positional arguments, ``kwargs`` each
    job's keyword arguments; given both, they pair up one to one. The task's options apply
    (queue, priority, run_after, max_attempts, unique_key, enqueue_on_commit...). Everything
    is checked first: one bad item raises InvalidJob and nothing is enqueued.

    >>> api.enqueue_many(send_welcome_email, kwargs=[{"address": a} for a in addresses])
    """
    from .backends import RedisBackend

    backend = task.get_backend() if isinstance(task, compat.Task) else None
    if not isinstance(backend, RedisBackend):
        raise InvalidJob(
            f"enqueue_many() takes a task of a jobqueue backend (jobqueue.backends."
            f"RedisBackend), not {task!r}."
        )
    positional = None if args is None else list(args)
    keywords = None if kwargs is None else list(kwargs)
    if positional is None and keywords is None:
        raise InvalidJob("enqueue_many() needs args=[...], kwargs=[...] or both.")
    if positional is not None and keywords is not None and len(positional) != len(keywords):
        raise InvalidJob(
            f"enqueue_many() got {len(positional)} args and {len(keywords)} kwargs; give one "
            "of each per job."
        )
    _check_items(
        "args", positional, (list, tuple), "a list or tuple of a job's positional arguments"
    )
    _check_items("kwargs", keywords, Mapping, "a dict of a job's keyword arguments")
    size = len(positional if positional is not None else keywords or [])
    calls = [
        (
            positional[i] if positional is not None else (),
            keywords[i] if keywords is not None else {},
        )
        for i in range(size)
    ]
    return backend.enqueue_many(task, calls)  # type: ignore[no-any-return]


def _check_items(name: str, items: list | None, kind: Any, what: str) -> None:
    for index, item in enumerate(items or ()):
        if not isinstance(item, kind):
            raise InvalidJob(f"{name}[{index}] must be {what}, not {type(item).__name__}.")


def result(job: Any) -> Any:
    """The TaskResult of a job, whatever its task, read from Redis now."""
    return _task_result(get_engine().get(_job_id(job)))


def wait(job: Any, timeout: float = 30.0) -> Any:
    """Block until the job ends (succeeded, failed or canceled) and return its TaskResult.
    Redis tells this call when the job ends: nothing polls. Raises WaitTimeout after
    ``timeout`` seconds, JobNotFound for a job that does not exist."""
    return _task_result(get_engine().wait(_job_id(job), timeout))


def retry(job: Any) -> None:
    """Put a failed or canceled job back in its queue, with a fresh budget of attempts."""
    get_engine().retry(_job_id(job))


def cancel(job: Any, reason: str = "canceled") -> str:
    """Cancel a job: ``"canceled"`` at once when it waits, ``"requested"`` when it runs (its
    worker stops it, and it ends canceled)."""
    return get_engine().cancel(_job_id(job), reason)


def delete(job: Any) -> None:
    """Delete a job from Redis, whatever its state, with its log (its row stays in the
    database as history until pruned)."""
    get_engine().delete(_job_id(job))


def pause(queue: str) -> bool:
    """Stop workers from taking jobs from ``queue`` (enqueueing still works); True if it was
    running."""
    return get_engine().pause(queue)


def resume(queue: str) -> bool:
    """Let workers take jobs from ``queue`` again; True if it was paused."""
    return get_engine().resume(queue)


def purge(queue: str, status: str) -> int:
    """Delete every job of ``queue`` in ``status`` (any state but running); how many."""
    return get_engine().purge(queue, status)


def retry_all(queue: str, status: str = "failed") -> int:
    """Retry every failed (or canceled) job of ``queue``; how many."""
    return get_engine().retry_all(queue, status)


def counts(queue: str) -> dict[str, int]:
    """How many jobs of ``queue`` are in each state, from Redis now."""
    return {state.value: n for state, n in get_engine().counts(queue).items()}


def _job_id(job: Any) -> str:
    return job if isinstance(job, str) else str(job.id)


def _task_result(job: Any) -> Any:
    """The job's TaskResult, made by the backend its task belongs to."""
    from .backends import RedisBackend

    task = RedisBackend.task_for(job.task)
    return task.get_backend().to_result(job, task)
