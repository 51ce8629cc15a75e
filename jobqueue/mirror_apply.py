"""Turning engine events into rows: the mirror's writes, batched and idempotent.

A job's row carries the version of the last event applied to it. Events at or below that version
are ignored (replays, out-of-order deliveries). When a job's events are not contiguous with its
row (the stream was trimmed, or another mirror process holds the events in between), the job is
read whole from Redis instead: Redis is the truth, the row a copy.

For speed, a batch touches each row once and writes only what changed: a new job's row is one
conditional upsert (``ON CONFLICT … WHERE version < excluded.version``), a known job's change an
``UPDATE … WHERE id = ? AND version < ?`` run with ``executemany`` per set of changed columns,
timeline rows an ``INSERT … ON CONFLICT DO NOTHING``. The same SQL runs on PostgreSQL and
SQLite, and concurrent mirror processes can never write an older version over a newer one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .engine import Engine
from .mirror_events import Event
from .mirror_rows import (
    COLUMNS,
    DEFAULTS,
    adapters,
    arguments_text,
    changes_to_columns,
    ms_datetime,
    refresh_settings,
    row_columns,
    row_from_job,
    to_datetime,
)
from .models import FINISHED_STATUSES, Job, JobTransition, Queue, QueueStat

CHUNK = 400
__all__ = ["Batch", "build", "row_from_job", "to_datetime", "write"]


@dataclass
class Batch:
    """What one batch of events does to the database."""

    # Rows to upsert; a column a row leaves out is written as its default.
    full: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: dict[str, dict[str, Any]] = field(default_factory=dict)  # known rows: new values
    deleted: set[str] = field(default_factory=set)
    restarted: set[str] = field(default_factory=set)  # ids reused by a new job: old timeline out
    transitions: list[tuple[str, int, str, datetime, dict]] = field(default_factory=list)
    stats: dict[tuple[str, int], list[int]] = field(  # (queue, minute in ms): counters
        default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0, 0])
    )
    queues_touched: dict[str, int] = field(default_factory=dict)  # queue -> last event ms


def build(engine: Engine, events: list[Event]) -> Batch:
    refresh_settings()
    batch = Batch()
    by_job: dict[str, list[Event]] = defaultdict(list)
    deleting: set[str] = set()  # jobs with a 'deleted' event in this batch (rare)
    touched = batch.queues_touched
    for event in events:
        if event.at_ms > touched.get(event.queue, 0):
            touched[event.queue] = event.at_ms
        if event.local_id:
            by_job[event.job_id].append(event)
            if event.state == "deleted":
                deleting.add(event.job_id)
    known = _known(list(by_job))
    gaps: dict[str, list[Event]] = {}
    transitions = batch.transitions
    for job_id, job_events in by_job.items():
        if len(job_events) > 1:
            job_events.sort(key=_version)
        current, enqueued, started = known.get(job_id, _UNKNOWN)
        if job_id in deleting and any(
            e.state == "deleted" and (e.version > current or e.version == 0) for e in job_events
        ):
            batch.deleted.add(job_id)
            continue
        if current and _restarts(job_events[0], enqueued):  # the id of an expired job, reused
            batch.restarted.add(job_id)
            current, enqueued, started = 0, None, None
        fresh = [e for e in job_events if e.version > current]
        if fresh and _follows(fresh, current):
            values: dict[str, Any] = {}
            for event in fresh:
                changes_to_columns(event.changes, values)
                _count(
                    batch,
                    event,
                    values.get("enqueued_at", enqueued),
                    values.get("last_attempted_at", started),
                )
                values["status"], values["version"] = event.state, event.version
                if event.state in FINISHED_STATUSES:
                    values["cancel_requested"] = False  # the scripts drop it without an event
            if current:
                batch.changed[job_id] = values
            else:
                # Only what differs from the defaults: the upsert fills in the rest.
                values["id"], values["queue"] = job_id, fresh[0].queue
                values.setdefault("arguments_text", NO_ARGUMENTS)
                batch.full[job_id] = values
        elif fresh:
            gaps[job_id] = fresh if current else []
        if current or job_id in batch.full or fresh:
            for e in job_events:
                if e.version > 0:
                    transitions.append(
                        (job_id, e.version, e.state, ms_datetime(e.at_ms), e.changes)
                    )
    _read_whole(engine, batch, gaps)
    _skip_tombstoned(batch)
    return batch


_UNKNOWN = (0, None, None)  # (version, enqueued_at, last_attempted_at) of a job with no row
NO_ARGUMENTS = arguments_text([], {})
_version = attrgetter("version")


def _follows(fresh: list[Event], current: int) -> bool:
    """Whether the events' versions go on from ``current`` one by one."""
    for event in fresh:
        current += 1
        if event.version != current:
            return False
    return True


def _restarts(first: Event, enqueued: datetime | None) -> bool:
    enq = first.changes.get("enq")
    return (
        first.version == 1
        and bool(enq)
        and enqueued is not None
        and (to_datetime(enq) or enqueued) > enqueued
    )


def _read_whole(engine: Engine, batch: Batch, gaps: dict[str, list[Event]]) -> None:
    """Jobs whose events do not follow their row: copy them whole from Redis. One that Redis
    forgot meanwhile keeps its row, with what the events themselves say."""
    found = set()
    for job in engine.find(list(gaps)):
        batch.full[job.id] = row_columns(row_from_job(job))
        found.add(job.id)
    for job_id, fresh in gaps.items():
        if job_id not in found and fresh:
            values: dict[str, Any] = {}
            for event in fresh:
                changes_to_columns(event.changes, values)
                values["status"], values["version"] = event.state, event.version
            batch.changed[job_id] = values


TOMBSTONE = 2**62  # the version of the transition row left where a deleted job was


def _rows_in(query: str, ids: list[str], params: tuple = ()) -> list[tuple]:
    """The rows of ``query`` (raw SQL ending in ``IN``, its other ``params`` first) for
    ``ids``, asked 500 at a time. Raw SQL: the mirror asks such questions for every batch."""
    rows: list[tuple] = []
    with connection.cursor() as cursor:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            cursor.execute(f"{query} ({', '.join(['%s'] * len(chunk))})", [*params, *chunk])
            rows += cursor.fetchall()
    return rows


def _known(job_ids: list[str]) -> dict[str, tuple]:
    """id -> (version, enqueued_at, last_attempted_at) of the rows that exist."""
    q = connection.ops.quote_name
    rows = _rows_in(
        f"SELECT {q('id')}, {q('version')}, {q('enqueued_at')}, "  # noqa: S608
        f"{q('last_attempted_at')} FROM {q(Job._meta.db_table)} WHERE {q('id')} IN",
        job_ids,
    )
    return {
        job_id: (version, _db_datetime(enqueued), _db_datetime(started))
        for job_id, version, enqueued, started in rows
    }


def _db_datetime(value: Any) -> datetime | None:
    """A datetime as a raw cursor returns it (text on SQLite), as Django would give it."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value))
    if settings.USE_TZ and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _skip_tombstoned(batch: Batch) -> None:
    """A job deleted from Redis leaves a tombstone (a transition row at version TOMBSTONE):
    a late event of it, delivered after its delete, must not bring its row back. One indexed
    query per batch. A later job that reuses the id (enqueued after the delete) is let in."""
    new = [job_id for job_id in batch.full if job_id not in batch.changed]
    if not new:
        return
    q = connection.ops.quote_name
    rows = _rows_in(
        f"SELECT {q('job_id')}, {q('at')} FROM {q(JobTransition._meta.db_table)} "  # noqa: S608
        f"WHERE {q('version')} = %s AND {q('job_id')} IN",
        new,
        (TOMBSTONE,),
    )
    dead: dict[str, Any] = {job_id: _db_datetime(at) for job_id, at in rows}
    for job_id, at in dead.items():
        enqueued = batch.full[job_id].get("enqueued_at")
        if enqueued is None or enqueued <= at:
            del batch.full[job_id]
            batch.transitions = [t for t in batch.transitions if t[0] != job_id]
        else:
            batch.restarted.add(job_id)


def _count(
    batch: Batch, event: Event, enqueued: datetime | None, started: datetime | None
) -> None:
    """Per-minute statistics: starts (with their wait) and ends (with their run time). The
    minute is kept as milliseconds until the batch is written (one conversion per minute)."""
    at_ms, state = event.at_ms, event.state
    if state == "running":
        if "att" in event.changes and enqueued:
            stat = batch.stats[(event.queue, at_ms - at_ms % 60_000)]
            stat[4] += 1
            stat[2] += max(int((ms_datetime(at_ms) - enqueued).total_seconds() * 1000), 0)
    elif state == "succeeded" or state == "failed":
        stat = batch.stats[(event.queue, at_ms - at_ms % 60_000)]
        stat[0 if state == "succeeded" else 1] += 1
        if started:
            stat[3] += max(int((ms_datetime(at_ms) - started).total_seconds() * 1000), 0)


def write(batch: Batch) -> None:
    adapt = adapters()
    q = connection.ops.quote_name
    with transaction.atomic(), connection.cursor() as cursor:
        if batch.restarted:
            JobTransition.objects.filter(job_id__in=list(batch.restarted)).delete()
        rows = [r for job_id, r in batch.full.items() if job_id not in batch.deleted]
        if rows:
            _upsert(cursor, rows, adapt)
        _update(cursor, batch.changed, adapt)
        if batch.transitions:
            table = connection.ops.quote_name(JobTransition._meta.db_table)
            when, changed = adapt["finished_at"], adapt["errors"]
            cursor.executemany(
                f"INSERT INTO {table} (job_id, version, status, at, changes) "  # noqa: S608
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (job_id, version) DO NOTHING",
                [
                    (job_id, version, state, when(at), changed(changes))
                    for job_id, version, state, at, changes in batch.transitions
                ],
            )
        if batch.deleted:
            ids = list(batch.deleted)
            JobTransition.objects.filter(job_id__in=ids).delete()
            Job.objects.filter(id__in=ids).delete()
            now = adapt["finished_at"](timezone.now())
            cursor.executemany(
                f"INSERT INTO {q(JobTransition._meta.db_table)} "  # noqa: S608
                "(job_id, version, status, at, changes) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (job_id, version) DO NOTHING",
                [(job_id, TOMBSTONE, "deleted", now, "{}") for job_id in ids],
            )
        if batch.stats:
            _add_stats(cursor, batch.stats)
        for queue, ms in batch.queues_touched.items():
            at = to_datetime(ms)
            Queue.objects.filter(name=queue).exclude(last_activity__gte=at).update(
                last_activity=at
            )


def _upsert(cursor: Any, rows: list[dict[str, Any]], adapt: dict) -> None:
    """Insert or update whole rows, never replacing a newer version with an older one (or a
    job with the earlier job that had its id)."""
    q = connection.ops.quote_name
    table = q(Job._meta.db_table)
    columns = [str(f.column) for f in COLUMNS]
    now = adapt["updated_at"](timezone.now())
    names = [q(c) for c in [*columns, "updated_at"]]
    assignments = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
    version, enqueued = q("version"), q("enqueued_at")
    # Only quoted column names are formatted in; every value is a parameter.
    cursor.executemany(
        f"INSERT INTO {table} ({', '.join(names)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(names))}) "
        f"ON CONFLICT ({names[0]}) DO UPDATE SET {assignments} "
        f"WHERE {table}.{version} < excluded.{version} "
        f"OR {table}.{enqueued} < excluded.{enqueued}",
        [[*_params(row, columns, adapt), now] for row in rows],
    )


def _params(row: dict[str, Any], columns: list[str], adapt: dict) -> list[Any]:
    """A row's parameters: the columns it has, adapted; every other column its default's
    adapted value (adapted once per batch: a new job's row has few columns of its own)."""
    template = adapt.get("__defaults__")
    if template is None:  # once per batch (setdefault would build its argument every time)
        template = adapt["__defaults__"] = [adapt[c](DEFAULTS[c]) for c in columns]
    params = template.copy()
    for column, value in row.items():
        params[_POSITION[column]] = adapt[column](value)
    return params


_POSITION = {str(f.column): i for i, f in enumerate(COLUMNS)}  # column -> its upsert parameter


def _update(cursor: Any, changed: dict[str, dict[str, Any]], adapt: dict) -> None:
    """Known rows: one UPDATE per set of changed columns, run for every row with that set."""
    q = connection.ops.quote_name
    now = adapt["updated_at"](timezone.now())
    groups: dict[tuple[str, ...], list[tuple]] = defaultdict(list)
    for job_id, values in changed.items():
        columns = tuple(sorted(values))
        groups[columns].append(
            (*[adapt[c](values[c]) for c in columns], now, job_id, values["version"])
        )
    table = q(Job._meta.db_table)
    for columns, params in groups.items():
        assignments = ", ".join(f"{q(c)} = %s" for c in (*columns, "updated_at"))
        cursor.executemany(
            f"UPDATE {table} SET {assignments} WHERE {q('id')} = %s "  # noqa: S608
            f"AND {q('version')} < %s",
            params,
        )


def _add_stats(cursor: Any, stats: dict[tuple[str, int], list[int]]) -> None:
    table = connection.ops.quote_name(QueueStat._meta.db_table)
    counters = ["succeeded", "failed", "wait_ms", "run_ms", "started"]
    params: list[Any] = []
    for (queue, minute_ms), values in stats.items():
        minute = ms_datetime(minute_ms)
        params += [queue, connection.ops.adapt_datetimefield_value(minute), *values]
    placeholders = "(" + ", ".join(["%s"] * (2 + len(counters))) + ")"
    # Only quoted identifiers are formatted in; every value is a parameter.
    cursor.execute(
        f"INSERT INTO {table} (queue, minute, {', '.join(counters)}) VALUES "  # noqa: S608
        f"{', '.join([placeholders] * len(stats))} "
        "ON CONFLICT (queue, minute) DO UPDATE SET "
        + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counters),
        params,
    )


def _upsert_jobs(rows: list[Job]) -> None:
    """Upsert whole model rows (rebuild uses it)."""
    adapt = adapters()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            _upsert(cursor, [row_columns(r) for r in rows[start : start + CHUNK]], adapt)
