"""Job value objects: states, the job as read from Redis, and job ids.

A job id is ``<queue>:<local id>``; the queue part tells which hash slot (and so which keys) the
job lives in, so any process can find a job from its id alone.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from . import codec
from .errors import CorruptJob, InvalidJob

QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
LOCAL_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MIN_PRIORITY, MAX_PRIORITY = -100, 100


class JobState(StrEnum):
    SCHEDULED = "scheduled"  # waiting for run_after, or for a retry's backoff
    QUEUED = "queued"  # ready to be claimed
    RUNNING = "running"  # leased to a worker
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # dead: last attempt failed, or stalled too often
    CANCELED = "canceled"


ACTIVE_STATES = frozenset({JobState.SCHEDULED, JobState.QUEUED, JobState.RUNNING})
FINISHED_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED})
RETRYABLE_STATES = frozenset({JobState.FAILED, JobState.CANCELED})
CANCELABLE_STATES = ACTIVE_STATES
PURGEABLE_STATES = frozenset(JobState) - {JobState.RUNNING}


def parse_state(value: Any) -> JobState:
    """``value`` as a JobState; InvalidJob naming it when it is not one."""
    try:
        return JobState(value)
    except ValueError:
        names = ", ".join(state.value for state in JobState)
        raise InvalidJob(f"{value!r} is not a job state; use one of {names}.") from None


_valid_queue_names: set[str] = set()  # names already checked (a few per site)


def validate_queue_name(name: Any) -> str:
    if type(name) is str and name in _valid_queue_names:
        return name
    if not isinstance(name, str) or not QUEUE_NAME_RE.match(name):
        raise InvalidJob(
            f"Queue name {name!r} is invalid: use 1 to 64 characters from A-Z, a-z, 0-9, "
            "'_', '.', '-'."
        )
    if len(_valid_queue_names) < 1000:
        _valid_queue_names.add(name)
    return name


class _RandomIds:
    """Fresh local ids, 12 random bytes from os.urandom as hex, taken from a buffer filled
    256 ids at a time (one system call for many enqueues). A forked process empties the buffer
    it inherits, so it never hands out its parent's ids; a lock keeps threads apart."""

    SIZE = 12 * 256

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.forget()
        os.register_at_fork(after_in_child=self.forget)

    def forget(self) -> None:
        self.buffer, self.offset = b"", 0

    def next(self) -> str:
        with self.lock:
            if self.offset >= len(self.buffer):
                self.buffer, self.offset = os.urandom(self.SIZE), 0
            start = self.offset
            self.offset += 12
            return self.buffer[start : start + 12].hex()


new_local_id = _RandomIds().next


def make_job_id(queue: str, local_id: str) -> str:
    return f"{queue}:{local_id}"


def split_job_id(job_id: Any) -> tuple[str, str]:
    """``"<queue>:<local>"`` -> ``(queue, local)``; raises JobNotFound-compatible InvalidJob."""
    if isinstance(job_id, str):
        queue, sep, local = job_id.partition(":")
        if sep and QUEUE_NAME_RE.match(queue) and LOCAL_ID_RE.match(local):
            return queue, local
    raise InvalidJob(f"{job_id!r} is not a jobqueue job id (expected '<queue>:<id>').")


@lru_cache(maxsize=4096)
def ms_to_datetime(value: Any) -> datetime | None:
    """Milliseconds on the Redis clock (int, str or bytes) as an aware datetime. Cached: the
    jobs of one bulk enqueue, and the times of one job, share their values."""
    if value in (None, b"", ""):
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def datetime_to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class JobError:
    """One failed attempt: the exception's class path and traceback, as text."""

    exception_class: str
    traceback: str
    at: datetime | None = None
    attempt: int = 0


def _int(default: int) -> Callable[[str], int]:
    return lambda text: int(text) if text else default


def _optional(read: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda text: read(text) if text else None


def _json_list(text: str) -> list[Any]:
    value = codec.loads(text) if text else []
    if not isinstance(value, list):
        raise TypeError(f"a JSON array was expected, not {text[:100]!r}")
    return value


def _json_object(text: str) -> dict[str, Any]:
    value = codec.loads(text) if text else {}
    if not isinstance(value, dict):
        raise TypeError(f"a JSON object was expected, not {text[:100]!r}")
    return value


def _progress(text: str) -> dict[str, Any] | None:
    value = codec.loads(text) if text else None
    return value if isinstance(value, dict) else None


# The entry that heads a job's errors once its oldest were dropped (fail.lua writes the same).
ERRORS_DROPPED = "jobqueue.exceptions.ErrorsDropped"


def errors_dropped(count: int) -> JobError:
    """The entry saying that ``count`` earlier errors were dropped, as fail.lua writes it."""
    return JobError(ERRORS_DROPPED, f"{count} earlier errors were dropped.")


def _errors(text: str) -> tuple[JobError, ...]:
    return tuple(
        JobError(
            exception_class=str(e["c"]),
            traceback=str(e["tb"]),
            at=ms_to_datetime(e.get("at")),
            attempt=int(e.get("n", 0)),
        )
        for e in (codec.loads(text) if text else ())
    )


@dataclass(frozen=True, slots=True)
class Field:
    attribute: str  # the Job attribute it becomes
    read: Callable[[str], Any]  # its text as Redis holds it -> the attribute's value


# The job hash's fields: the one table of what each means. Events carry changed fields
# verbatim, with '' for a field the transition removed, which reads as the attribute's
# default. The hash also holds fields no Job attribute shows: 'worker' (the last of
# 'workers'), 'w' (wait() calls waiting) and 'edrop' (errors dropped, see fail.lua).
FIELDS: dict[str, Field] = {
    "task": Field("task", str),
    "state": Field("state", JobState),
    "v": Field("version", _int(0)),
    "args": Field("args", _json_list),
    "kwargs": Field("kwargs", _json_object),
    "prio": Field("priority", _int(0)),
    "att": Field("attempts", _int(0)),
    "max": Field("max_attempts", _int(1)),
    "att0": Field("attempts_before_retry", _int(0)),
    "stalls": Field("stalls", _int(0)),
    "timeout": Field("timeout", _optional(float)),
    "ttl": Field("result_ttl", _optional(int)),
    "unique": Field("unique_key", _optional(str)),
    "enq": Field("enqueued_at", ms_to_datetime),
    "run_at": Field("run_at", ms_to_datetime),
    "started": Field("started_at", ms_to_datetime),
    "last": Field("last_attempted_at", ms_to_datetime),
    "ended": Field("finished_at", ms_to_datetime),
    "workers": Field("worker_ids", lambda text: tuple(text.split())),
    "token": Field("token", _optional(str)),
    "lease": Field("lease_deadline", ms_to_datetime),
    "result": Field("result_json", _optional(str)),
    "errors": Field("errors", _errors),
    "progress": Field("progress", _progress),
    "cancel": Field("cancel_requested", lambda text: text == "1"),
    "reason": Field("reason", _optional(str)),
}


@dataclass(frozen=True, slots=True)
class Job:
    """A job as stored in Redis at one version."""

    id: str
    queue: str
    task: str
    state: JobState
    version: int
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    attempts: int = 0
    max_attempts: int = 1
    attempts_before_retry: int = 0  # attempts made before the last manual retry
    stalls: int = 0
    timeout: float | None = None
    result_ttl: int | None = None
    unique_key: str | None = None
    enqueued_at: datetime | None = None
    run_at: datetime | None = None
    started_at: datetime | None = None
    last_attempted_at: datetime | None = None
    finished_at: datetime | None = None
    worker_ids: tuple[str, ...] = ()
    token: str | None = None
    lease_deadline: datetime | None = None
    result_json: str | None = None
    errors: tuple[JobError, ...] = ()
    progress: dict[str, Any] | None = None
    cancel_requested: bool = False
    reason: str | None = None

    @property
    def local_id(self) -> str:
        return self.id.partition(":")[2]

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def result(self) -> Any:
        """The task's return value (decoded JSON), or None when there is none."""
        return None if self.result_json is None else codec.loads(self.result_json)

    @classmethod
    def from_redis(cls, queue: str, local_id: str, raw: dict[bytes, bytes]) -> Job:
        """Build a Job from HGETALL output. Raises CorruptJob when the data is malformed."""
        try:
            fields = {k.decode(): v.decode() for k, v in raw.items()}
        except UnicodeDecodeError as exc:
            raise CorruptJob(
                f"Job {make_job_id(queue, local_id)!r} holds bytes that are not text: {exc}."
            ) from exc
        return cls.from_fields(queue, local_id, fields)

    @classmethod
    def from_fields(cls, queue: str, local_id: str, h: dict[str, str]) -> Job:
        """Build a Job from its hash fields as text (:data:`FIELDS`). Raises CorruptJob when
        one is malformed, or the task or state is missing."""
        job_id = make_job_id(queue, local_id)
        try:
            values = {}
            for name, text in h.items():
                known = FIELDS.get(name)
                if known is not None:
                    values[known.attribute] = known.read(text)
            return cls(id=job_id, queue=queue, **{"version": 0, **values})
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise CorruptJob(f"Job {job_id!r} is malformed in Redis: {exc!r}.") from exc


def pairs_to_dict(flat: Iterable[Any]) -> dict[Any, Any]:
    """Redis's flat ``[k1, v1, k2, v2, ...]`` reply as a dict."""
    it = iter(flat)
    return dict(zip(it, it, strict=True))
