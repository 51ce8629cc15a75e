"""The mirror's SQL: reading the rows a batch is about, and writing a batch.

Raw SQL with ``executemany``, the same on PostgreSQL and SQLite: a conditional upsert for new
rows (``INSERT … ON CONFLICT (id) DO UPDATE … WHERE version < excluded.version``), for known
rows an ``UPDATE … WHERE version < ?`` of only the columns that changed, timeline rows with
``ON CONFLICT DO NOTHING``. Concurrent mirror processes can never write an older version over
a newer one. Only quoted identifiers are formatted into the SQL; every value is a parameter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ..engine import codec
from ..models import Job, JobTransition, Queue, QueueStat
from .batch import TOMBSTONE, Batch, Known
from .rows import db_datetime, ms_datetime, to_datetime

CHUNK = 400  # rows per upsert when rows are written whole (rebuild)
COLUMNS = [f for f in Job._meta.concrete_fields if f.column != "updated_at"]
DEFAULTS: dict[str, Any] = {str(f.column): f.get_default() for f in COLUMNS}
POSITION = {str(f.column): i for i, f in enumerate(COLUMNS)}  # column -> its upsert parameter


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


def known_rows(job_ids: list[str]) -> dict[str, Known]:
    """id -> (version, enqueued_at, last_attempted_at, status, ready_at) of the rows that
    exist, the times as the cursor returns them (``rows.db_datetime`` reads those used)."""
    q = connection.ops.quote_name
    rows = _rows_in(
        f"SELECT {q('id')}, {q('version')}, {q('enqueued_at')}, "  # noqa: S608
        f"{q('last_attempted_at')}, {q('status')}, {q('ready_at')} "
        f"FROM {q(Job._meta.db_table)} WHERE {q('id')} IN",
        job_ids,
    )
    return {row[0]: row[1:] for row in rows}


def row_errors(job_ids: list[str]) -> dict[str, Any]:
    """id -> errors of the rows among ``job_ids`` that exist."""
    if not job_ids:
        return {}
    return dict(Job.objects.filter(id__in=job_ids).values_list("id", "errors"))


def tombstones(job_ids: list[str]) -> dict[str, datetime | None]:
    """The jobs among ``job_ids`` that were deleted, and when (one indexed query)."""
    if not job_ids:
        return {}
    q = connection.ops.quote_name
    rows = _rows_in(
        f"SELECT {q('job_id')}, {q('at')} FROM {q(JobTransition._meta.db_table)} "  # noqa: S608
        f"WHERE {q('version')} = %s AND {q('job_id')} IN",
        job_ids,
        (TOMBSTONE,),
    )
    return {job_id: db_datetime(at) for job_id, at in rows}


def write(batch: Batch) -> None:
    """Apply the batch in one transaction."""
    adapt = adapters()
    with transaction.atomic(), connection.cursor() as cursor:
        if batch.restarted:
            JobTransition.objects.filter(job_id__in=list(batch.restarted)).delete()
        rows = [r for job_id, r in batch.full.items() if job_id not in batch.deleted]
        if rows:
            _upsert(cursor, rows, adapt)
        _update(cursor, batch.changed, adapt)
        if batch.transitions:
            when, changed = adapt["finished_at"], adapt["errors"]
            _add_transitions(
                cursor,
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
            _add_transitions(cursor, [(job_id, TOMBSTONE, "deleted", now, "{}") for job_id in ids])
        if batch.stats:
            _add_stats(cursor, batch.stats)
        for queue, ms in batch.queues_touched.items():
            at = to_datetime(ms)
            Queue.objects.filter(name=queue).exclude(last_activity__gte=at).update(
                last_activity=at
            )


def record_poison(queue: str, what: str) -> None:
    """Count one stream entry of ``queue`` the mirror could not apply, shown on the queues
    dashboard; ``what`` says which and why."""
    Queue.objects.get_or_create(name=queue)
    Queue.objects.filter(name=queue).update(
        poison_entries=F("poison_entries") + 1, last_poison=what
    )


def _add_transitions(cursor: Any, rows: list[tuple]) -> None:
    """Timeline rows ``(job_id, version, status, at, changes)``, each at most once."""
    table = connection.ops.quote_name(JobTransition._meta.db_table)
    cursor.executemany(
        f"INSERT INTO {table} (job_id, version, status, at, changes) "  # noqa: S608
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (job_id, version) DO NOTHING",
        rows,
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
        params[POSITION[column]] = adapt[column](value)
    return params


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


def upsert_rows(rows: list[dict[str, Any]]) -> None:
    """Upsert whole rows, as ``rows.row_values`` makes them (rebuild uses it)."""
    adapt = adapters()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            _upsert(cursor, rows[start : start + CHUNK], adapt)


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
