"""From Redis to row values: the job hash's fields (as events carry them) and whole engine jobs,
turned into ``jobqueue_job`` columns, and column values adapted for the database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .engine import codec
from .engine.job import Job as EngineJob
from .models import Job


class _Zone:
    """settings.USE_TZ, read once per batch (``refresh()``): reading a setting costs about a
    microsecond, and a batch converts tens of thousands of times."""

    aware = True

    @classmethod
    def refresh(cls) -> None:
        cls.aware = bool(settings.USE_TZ)


refresh_settings = _Zone.refresh


def to_datetime(ms: Any) -> datetime | None:
    if ms in (None, "", b""):
        return None
    return _datetime_at(int(ms), _Zone.aware)


def ms_datetime(ms: int) -> datetime:
    """to_datetime for a time known to be there (an event's)."""
    return _datetime_at(ms, _Zone.aware)


@lru_cache(maxsize=8192)
def _datetime_at(ms: int, aware: bool) -> datetime:
    """Cached: the jobs of one claim or one acknowledgement share a millisecond, and each
    time is converted for several columns and events."""
    value = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return value if aware else timezone.make_naive(value)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or settings.USE_TZ:
        return value
    return timezone.make_naive(value)


def _json(text: str, default: Any = None) -> Any:
    if text == "":
        return default
    try:
        return codec.loads(text)
    except ValueError:
        return text  # kept as text: the row shows what Redis holds


def _int(default: int) -> Callable[[str], int]:
    return lambda text: int(text) if text else default


# job-hash field -> (column, how to read the text Redis holds; '' means cleared)
FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "task": ("task", str),
    "prio": ("priority", _int(0)),
    "max": ("max_attempts", _int(1)),
    "timeout": ("timeout", lambda text: float(text) if text else None),
    "unique": ("unique_key", str),
    "enq": ("enqueued_at", to_datetime),
    "run_at": ("scheduled_for", to_datetime),
    "started": ("started_at", to_datetime),
    "last": ("last_attempted_at", to_datetime),
    "ended": ("finished_at", to_datetime),
    "att": ("attempts", _int(0)),
    "stalls": ("stalls", _int(0)),
    "worker": ("worker", str),
    "workers": ("worker_ids", str.split),
    "args": ("args", lambda text: _json(text, [])),
    "kwargs": ("kwargs", lambda text: _json(text, {})),
    "result": ("result", _json),
    "progress": ("progress", _json),
    "cancel": ("cancel_requested", lambda text: text == "1"),
    "reason": ("reason", str),
}


def changes_to_columns(changes: dict[str, str], columns: dict[str, Any]) -> None:
    """Apply an event's changed job-hash fields (verbatim; '' clears) to column values."""
    for name, text in changes.items():
        known = FIELDS.get(name)
        if known is not None:
            column, read = known
            columns[column] = read(text)
        elif name == "errors":
            errors = _json(text, [])
            last = errors[-1] if isinstance(errors, list) and errors else {}
            last = last if isinstance(last, dict) else {}
            columns["errors"] = errors
            columns["error_class"] = str(last.get("c", ""))[:300]
            columns["error_traceback"] = str(last.get("tb", ""))
    if "args" in columns or "kwargs" in columns:
        columns["arguments_text"] = arguments_text(columns.get("args"), columns.get("kwargs"))


def arguments_text(args: Any, kwargs: Any) -> str:
    return codec.encode([args or [], kwargs or {}]).decode()[:10000]


def row_from_job(job: EngineJob) -> Job:
    """A whole row from the job as Redis holds it."""
    last_error = job.errors[-1] if job.errors else None
    return Job(
        id=job.id,
        queue=job.queue,
        task=job.task,
        status=job.state.value,
        version=job.version,
        args=job.args,
        kwargs=job.kwargs,
        arguments_text=arguments_text(job.args, job.kwargs),
        priority=job.priority,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        stalls=job.stalls,
        timeout=job.timeout,
        unique_key=job.unique_key or "",
        enqueued_at=_aware(job.enqueued_at),
        scheduled_for=_aware(job.run_at),
        started_at=_aware(job.started_at),
        last_attempted_at=_aware(job.last_attempted_at),
        finished_at=_aware(job.finished_at),
        worker=job.worker_ids[-1] if job.worker_ids else "",
        worker_ids=list(job.worker_ids),
        result=job.result if job.result_json is not None else None,
        error_class=last_error.exception_class if last_error else "",
        error_traceback=last_error.traceback if last_error else "",
        errors=[
            {
                "c": e.exception_class,
                "tb": e.traceback,
                "n": e.attempt,
                "at": int(e.at.timestamp() * 1000) if e.at else None,
            }
            for e in job.errors
        ],
        progress=job.progress,
        cancel_requested=job.cancel_requested,
        reason=job.reason or "",
    )


COLUMNS = [f for f in Job._meta.concrete_fields if f.column != "updated_at"]
DEFAULTS: dict[str, Any] = {str(f.column): f.get_default() for f in COLUMNS}


def row_columns(row: Job) -> dict[str, Any]:
    return {str(f.column): getattr(row, f.attname) for f in COLUMNS}


def adapters() -> dict[str, Callable[[Any], Any]]:
    """Per column, how a Python value becomes a parameter for this database. On SQLite the
    conversions Django would make (ISO text in UTC, JSON text) are done directly: the mirror
    converts hundreds of thousands of values a minute."""
    fast_sqlite = connection.vendor == "sqlite" and settings.USE_TZ
    out: dict[str, Callable[[Any], Any]] = {}
    for f in [*COLUMNS, Job._meta.get_field("updated_at")]:
        kind = f.get_internal_type()
        column = str(f.column)
        if kind == "JSONField" and fast_sqlite:
            out[column] = _sqlite_json
        elif kind == "JSONField":
            # None is SQL NULL, as Django saves it.
            out[column] = _django_json(f)
        elif kind == "DateTimeField" and fast_sqlite:
            out[column] = _sqlite_datetime
        elif kind == "DateTimeField":
            out[column] = connection.ops.adapt_datetimefield_value
        else:
            out[column] = _same
    return out


def _django_json(f: Any) -> Callable[[Any], Any]:
    def adapt(value: Any) -> Any:
        return None if value is None else f.get_db_prep_value(value, connection)

    return adapt


def _same(value: Any) -> Any:
    return value


def _sqlite_json(value: Any) -> str | None:
    return None if value is None else codec.encode(value).decode()


@lru_cache(maxsize=8192)
def _sqlite_datetime(value: datetime | None) -> str | None:
    """What Django stores in SQLite for an aware datetime: naive UTC, ISO with a space.
    Cached, as ``_datetime_at`` (equal datetimes in other zones are equal keys, and give
    the same UTC text)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:  # those made by to_datetime are UTC already
        value = value.astimezone(UTC)
    return str(value.replace(tzinfo=None))
