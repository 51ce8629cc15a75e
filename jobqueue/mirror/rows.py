"""From Redis to row values: which ``jobqueue_job`` column shows each Job attribute, and how.

The engine's one table of the job hash's fields (``engine.job.FIELDS``) says what each field
means and how its text reads; this module only says which column shows the value, and how the
value becomes the column's (a naive datetime when ``USE_TZ`` is off, '' for text columns
where the job has nothing, the result decoded). From both, once at import, it builds the table
the mirror applies to every event's changed fields.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from ..engine import codec
from ..engine.job import ERRORS_DROPPED, FIELDS, JobError, JobState, errors_dropped, ms_to_datetime
from ..engine.job import Job as EngineJob
from ..models import Job


class _Zone:
    """settings.USE_TZ, read once per batch (``refresh()``), not once per value converted."""

    aware = True

    @classmethod
    def refresh(cls) -> None:
        cls.aware = bool(settings.USE_TZ)


refresh_settings = _Zone.refresh


def _zone(value: datetime | None) -> datetime | None:
    if value is None or _Zone.aware:
        return value
    return timezone.make_naive(value)


def to_datetime(ms: Any) -> datetime | None:
    """Milliseconds on the Redis clock (int, str or bytes; empty: None) as a column's value."""
    return _zone(ms_to_datetime(ms))


def ms_datetime(ms: int) -> datetime:
    """to_datetime for a time known to be there (an event's)."""
    value = _zone(ms_to_datetime(ms))
    assert value is not None
    return value


def db_datetime(value: Any) -> datetime | None:
    """A datetime column's value as a raw cursor returns it (text on SQLite), as Django would
    give it. The mirror reads its rows with raw SQL, and converts only the values it uses."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value))
    if _Zone.aware and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _text_or_empty(value: str | None) -> str:
    return "" if value is None else value


def _json_or_text(text: str | None) -> Any:
    """A JSON column's value from JSON text; text that is not JSON is kept as it is (the row
    shows what Redis holds)."""
    if text is None:
        return None
    try:
        return codec.loads(text)
    except ValueError:
        return text


# Job attribute -> (its column, how its value becomes the column's; None: as it is).
COLUMNS: dict[str, tuple[str, Callable[[Any], Any] | None]] = {
    "task": ("task", None),
    "args": ("args", None),
    "kwargs": ("kwargs", None),
    "priority": ("priority", None),
    "attempts": ("attempts", None),
    "max_attempts": ("max_attempts", None),
    "attempts_before_retry": ("attempts_before_retry", None),
    "stalls": ("stalls", None),
    "timeout": ("timeout", None),
    "unique_key": ("unique_key", _text_or_empty),
    "enqueued_at": ("enqueued_at", _zone),
    "run_at": ("scheduled_for", _zone),
    "started_at": ("started_at", _zone),
    "last_attempted_at": ("last_attempted_at", _zone),
    "finished_at": ("finished_at", _zone),
    "result_json": ("result", _json_or_text),
    "progress": ("progress", None),
    "cancel_requested": ("cancel_requested", None),
    "reason": ("reason", _text_or_empty),
}


def _workers(ids: tuple[str, ...], columns: dict[str, Any]) -> None:
    columns["worker_ids"] = list(ids)
    columns["worker"] = ids[-1] if ids else ""


def _error_row(e: JobError) -> dict[str, Any]:
    return {
        "c": e.exception_class,
        "tb": e.traceback,
        "n": e.attempt,
        "at": int(e.at.timestamp() * 1000) if e.at else None,
    }


def _errors(errors: tuple[JobError, ...], columns: dict[str, Any]) -> None:
    _set_errors([_error_row(e) for e in errors], columns)


def _set_errors(entries: list[dict[str, Any]], columns: dict[str, Any]) -> None:
    columns["errors"] = entries
    last = entries[-1] if entries else None
    columns["error_class"] = last["c"][:300] if last else ""
    columns["error_traceback"] = last["tb"] if last else ""


def append_error(changes: dict[str, str], before: Any, columns: dict[str, Any]) -> None:
    """A failure's event (fail.lua) carries its new error only: appended to the errors the row
    had (``before``), the oldest dropped as the job hash's were ('ekept', 'edrop'), so the row
    keeps the errors the job keeps. An event that is not that is left out."""
    entries = [
        e
        for e in (before if isinstance(before, list) else [])
        if isinstance(e, dict) and e.get("c") != ERRORS_DROPPED
    ]
    try:
        entries += [_error_row(e) for e in FIELDS["errors"].read(f"[{changes['error']}]")]
        kept, dropped = int(changes.get("ekept") or 0), int(changes.get("edrop") or 0)
    except (ValueError, TypeError, KeyError, AttributeError):
        return
    if dropped:
        entries = [_error_row(errors_dropped(dropped)), *entries[-kept:]]
    _set_errors(entries, columns)


# Job attributes shown in more than one column: attribute -> what sets those columns.
SPREAD: dict[str, Callable[[Any, dict[str, Any]], None]] = {
    "worker_ids": _workers,
    "errors": _errors,
}


def _lenient(read: Callable[[str], Any]) -> Callable[[str], Any]:
    """A JSON field read as the engine reads it, or kept as text when it is not that JSON."""

    def lenient(text: str) -> Any:
        try:
            return read(text)
        except (ValueError, TypeError, KeyError, AttributeError):
            return text

    return lenient


def _column_reader(read: Callable[[str], Any], adapt: Callable | None) -> Callable[[str], Any]:
    return read if adapt is None else (lambda text: adapt(read(text)))


_JSON_FIELDS = {"args", "kwargs", "errors", "progress"}

# Job-hash field -> (column, its text -> the column's value): what an event's changes set.
FIELD_COLUMNS: dict[str, tuple[str, Callable[[str], Any]]] = {
    name: (
        COLUMNS[field.attribute][0],
        _column_reader(
            _lenient(field.read) if name in _JSON_FIELDS else field.read,
            COLUMNS[field.attribute][1],
        ),
    )
    for name, field in FIELDS.items()
    if field.attribute in COLUMNS
}
# Job-hash field -> (its text -> the attribute's value, what sets the columns).
FIELD_SPREAD = {
    name: (field.read, SPREAD[field.attribute])
    for name, field in FIELDS.items()
    if field.attribute in SPREAD
}


def changes_to_columns(changes: dict[str, str], columns: dict[str, Any]) -> None:
    """Apply an event's changed job-hash fields (verbatim; '' clears) to column values."""
    for name, text in changes.items():
        known = FIELD_COLUMNS.get(name)
        if known is not None:
            column, read = known
            columns[column] = read(text)
        elif name in FIELD_SPREAD:
            read, spread = FIELD_SPREAD[name]
            try:
                spread(read(text), columns)
            except (ValueError, TypeError, KeyError, AttributeError):
                columns[name] = text  # the row shows what Redis holds
    if "args" in columns or "kwargs" in columns:
        columns["arguments_text"] = arguments_text(columns.get("args"), columns.get("kwargs"))


def arguments_text(args: Any, kwargs: Any) -> str:
    """The arguments as one text, searched by the admin."""
    return codec.encode([args or [], kwargs or {}]).decode()[:10000]


def row_values(job: EngineJob) -> dict[str, Any]:
    """Every column of a job's row, from the job as Redis holds it."""
    values: dict[str, Any] = {
        "id": job.id,
        "queue": job.queue,
        "status": job.state.value,
        "version": job.version,
        "arguments_text": arguments_text(job.args, job.kwargs),
    }
    for attribute, (column, adapt) in COLUMNS.items():
        value = getattr(job, attribute)
        values[column] = value if adapt is None else adapt(value)
    for attribute, spread in SPREAD.items():
        spread(getattr(job, attribute), values)
    # Redis does not say since when a queued job's attempt could run (the mirror learns it
    # from the events: batch.build); a scheduled job's can run at its run_at.
    values["ready_at"] = values["scheduled_for"] if job.state is JobState.SCHEDULED else None
    return values


def row_from_job(job: EngineJob) -> Job:
    """A whole row (unsaved model instance) from the job as Redis holds it."""
    return Job(**row_values(job))
