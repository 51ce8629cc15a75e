"""Every exception jobqueue raises, under one root class: :class:`JobqueueError`.

Defined here, inside the engine, because the engine imports nothing of Django;
``jobqueue.exceptions`` re-exports them as the public module.
"""

from __future__ import annotations

from datetime import datetime


class JobqueueError(Exception):
    """Root of every jobqueue exception."""


class ConfigurationError(JobqueueError, ValueError):
    """A connection URL or engine option is malformed."""


class InvalidJob(JobqueueError, ValueError):
    """Enqueue input is invalid (bad queue name, priority, arguments, task name...).

    Raised before anything is written to Redis.
    """


class UnknownTask(InvalidJob):
    """The task name is not in the registry of known tasks. It is never imported."""


class JobNotFound(JobqueueError, LookupError):
    """No job with that id exists (it never did, or it expired or was deleted)."""


class InvalidTransition(JobqueueError):
    """The job is not in a state that allows the requested operation."""


class LeaseLost(JobqueueError):
    """The worker's fence token is no longer the job's current one: the job was reclaimed."""


class ConnectionFailed(JobqueueError, ConnectionError):
    """Redis could not be reached, or answered with an error jobqueue does not expect."""


class DataLossDetected(JobqueueError):
    """The queue's epoch changed: Redis lost its data (restart without persistence, flush).

    ``noticed_at`` (aware, UTC) is when this process noticed, None when not given."""

    def __init__(
        self, queue: str, expected: str, found: str, noticed_at: datetime | None = None
    ) -> None:
        self.queue, self.expected, self.found = queue, expected, found
        self.noticed_at = noticed_at
        super().__init__(
            f"Redis lost the data of queue {queue!r}: its epoch was {expected!r} and is now "
            f"{found or 'missing'!r}. Jobs enqueued before the loss are gone from Redis; run "
            "'manage.py jobqueue rebuild' and check Redis persistence (appendonly yes)."
        )


class RedisFull(JobqueueError):
    """Redis is at its ``maxmemory`` and its ``maxmemory-policy`` (``noeviction``) refuses
    writes. The refused script wrote nothing: Redis refuses a script at its first write."""


class NotReplicated(JobqueueError):
    """An enqueue wrote its jobs to the primary, but fewer replicas than ``ENQUEUE_REPLICAS``
    acknowledged them within ``ENQUEUE_REPLICAS_TIMEOUT``: a failover now could lose them.
    ``job_ids`` are the jobs concerned. Enqueueing them again with the same ``job_id`` or
    idempotency key creates nothing twice and waits for the replicas again."""

    def __init__(self, message: str, job_ids: list[str], acknowledged: int, wanted: int) -> None:
        super().__init__(message)
        self.job_ids = job_ids
        self.acknowledged = acknowledged
        self.wanted = wanted


class CorruptJob(JobqueueError):
    """A job's data in Redis is malformed (not JSON, wrong shape, wrong key type)."""


class WaitTimeout(JobqueueError, TimeoutError):
    """``wait()`` gave up before the job finished."""


class JobTimeout(JobqueueError):
    """A job ran longer than its timeout and was stopped."""


class JobCanceled(JobqueueError):
    """A running job was stopped because its cancel was requested."""


class ResultTooLarge(JobqueueError):
    """A job's return value, encoded, is larger than ``RESULT_BYTES``: the attempt fails (it
    is not retried) rather than fill Redis. Return a reference (an id, a path) instead."""


class JobStalled(JobqueueError):
    """A job's worker died or hung (its lease expired) too many times: dead-lettered."""


class ErrorsDropped(JobqueueError):
    """Not raised: the class of the entry that heads a job's errors when its oldest errors were
    dropped to keep it within ``ERRORS_KEPT`` / ``ERRORS_KEPT_BYTES``."""


# Their public import path is jobqueue.exceptions: that is the path recorded in a job's errors
# (and resolved by Django's TaskError.exception_class).
for _name, _value in list(globals().items()):
    if isinstance(_value, type) and issubclass(_value, JobqueueError):
        _value.__module__ = "jobqueue.exceptions"
