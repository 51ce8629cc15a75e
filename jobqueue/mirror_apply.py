"""Turning engine events into rows: the mirror's writes, batched and idempotent.

A job's row carries the version of the last event applied to it. Events at or below that version
are ignored (replays, out-of-order deliveries). When a job's events are not contiguous with its
row (the stream was trimmed, or another mirror process holds the events in between), the job is
read whole from Redis instead: Redis is the truth, the row a copy.

Rows are written with one conditional upsert per chunk (``ON CONFLICT … WHERE version <
excluded.version``, on PostgreSQL and SQLite alike), so concurrent mirror processes can never
write an older version over a newer one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .engine import CorruptJob, Engine, JobNotFound, codec
from .engine.job import Job as EngineJob
from .models import FINISHED_STATUSES, Job, JobTransition, QueueStat

CHUNK = 400
JOB_COLUMNS = [f for f in Job._meta.concrete_fields if f.name != "updated_at"]


def to_datetime(ms: Any) -> datetime | None:
    if ms in (None, "", b""):
        return None
    value = datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
    return value if settings.USE_TZ else timezone.make_naive(value)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or settings.USE_TZ:
        return value
    return timezone.make_naive(value)


def _json(text: str, default: Any) -> Any:
    if text == "":
        return default
    try:
        return codec.loads(text)
    except ValueError:
        return text  # kept as text: the row shows what Redis holds


def _arguments_text(row: Job) -> str:
    return codec.encode([row.args, row.kwargs]).decode()[:10000]


def apply_changes(row: Job, changes: dict[str, str]) -> None:
    """Apply an event's changed job-hash fields (verbatim; '' clears) to a row."""
    for name, value in changes.items():
        if name == "task":
            row.task = value
        elif name in ("args", "kwargs"):
            setattr(row, name, _json(value, [] if name == "args" else {}))
            row.arguments_text = _arguments_text(row)
        elif name == "prio":
            row.priority = int(value or 0)
        elif name == "max":
            row.max_attempts = int(value or 1)
        elif name == "timeout":
            row.timeout = float(value) if value else None
        elif name == "unique":
            row.unique_key = value
        elif name in ("enq", "run_at", "started", "last", "ended"):
            column = {
                "enq": "enqueued_at",
                "run_at": "scheduled_for",
                "started": "started_at",
                "last": "last_attempted_at",
                "ended": "finished_at",
            }[name]
            setattr(row, column, to_datetime(value))
        elif name in ("att", "stalls"):
            setattr(row, "attempts" if name == "att" else "stalls", int(value or 0))
        elif name == "worker":
            row.worker = value
        elif name == "workers":
            row.worker_ids = value.split()
        elif name == "result":
            row.result = _json(value, None)
        elif name == "errors":
            row.errors = _json(value, [])
            last = row.errors[-1] if isinstance(row.errors, list) and row.errors else {}
            row.error_class = str(last.get("c", ""))[:300] if isinstance(last, dict) else ""
            row.error_traceback = str(last.get("tb", "")) if isinstance(last, dict) else ""
        elif name == "progress":
            row.progress = _json(value, None)
        elif name == "cancel":
            row.cancel_requested = value == "1"
        elif name == "reason":
            row.reason = value


def row_from_job(job: EngineJob) -> Job:
    """A whole row from the job as Redis holds it."""
    last_error = job.errors[-1] if job.errors else None
    row = Job(
        id=job.id,
        queue=job.queue,
        task=job.task,
        status=job.state.value,
        version=job.version,
        args=job.args,
        kwargs=job.kwargs,
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
    row.arguments_text = _arguments_text(row)
    return row


@dataclass
class Event:
    entry_id: str
    queue: str
    local_id: str
    state: str
    version: int
    at_ms: int
    changes: dict[str, str]

    @property
    def job_id(self) -> str:
        return f"{self.queue}:{self.local_id}"


def parse_event(queue: str, entry_id: Any, fields: dict) -> Event | None:
    f = {k.decode(): v.decode(errors="replace") for k, v in fields.items()}
    try:
        core = {"id", "q", "s", "v", "t"}
        changes = {k: v for k, v in f.items() if k not in core}
        return Event(
            entry_id.decode(),
            f.get("q") or queue,
            f["id"],
            f["s"],
            int(f["v"]),
            int(f["t"]),
            changes,
        )
    except (KeyError, ValueError):
        return None  # not one of ours: skipped (and acknowledged)


@dataclass
class Batch:
    """What one batch of events does to the database."""

    rows: dict[str, Job] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    transitions: list[JobTransition] = field(default_factory=list)
    stats: dict[tuple[str, datetime], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0, 0])
    )
    queues_touched: dict[str, int] = field(default_factory=dict)  # queue -> last event ms


def build(engine: Engine, events: list[Event]) -> Batch:
    batch = Batch()
    by_job: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        batch.queues_touched[event.queue] = max(
            batch.queues_touched.get(event.queue, 0), event.at_ms
        )
        if event.local_id:
            by_job[event.job_id].append(event)
    existing = Job.objects.in_bulk(list(by_job))
    for job_id, job_events in by_job.items():
        job_events.sort(key=lambda e: e.version)
        row = existing.get(job_id)
        current = row.version if row else 0
        fresh = [e for e in job_events if e.version > current or e.state == "deleted"]
        if any(e.state == "deleted" for e in fresh):
            batch.deleted.add(job_id)
            continue
        if fresh:
            contiguous = all(e.version == current + i + 1 for i, e in enumerate(fresh))
            if contiguous:
                row = row or Job(id=job_id, queue=fresh[0].queue)
                for event in fresh:
                    _count(batch, row, event)
                    _apply(row, event)
            else:
                try:
                    row = row_from_job(engine.get(job_id))
                except (JobNotFound, CorruptJob):
                    if row is None:
                        continue  # gone from Redis and never seen: nothing to copy
                    for event in fresh:
                        _apply(row, event)
            batch.rows[job_id] = row
        elif row is None:
            continue
        # Every event of a job with a row joins its timeline, late ones too (another mirror
        # process applied newer events first); replays hit the unique (job, version) and are
        # ignored.
        batch.transitions += [
            JobTransition(
                job_id=job_id,
                version=event.version,
                status=event.state,
                at=to_datetime(event.at_ms) or timezone.now(),
                changes=event.changes,
            )
            for event in job_events
            if event.version > 0
        ]
    return batch


def _apply(row: Job, event: Event) -> None:
    apply_changes(row, event.changes)
    row.status, row.version = event.state, event.version
    if event.state in FINISHED_STATUSES:
        row.cancel_requested = False  # every script that ends a job drops its cancel request


def _count(batch: Batch, row: Job, event: Event) -> None:
    """Per-minute statistics: starts (with their wait) and ends (with their run time)."""
    at = to_datetime(event.at_ms)
    if at is None:
        return
    stat = batch.stats[(event.queue, at.replace(second=0, microsecond=0))]
    if event.state == "running" and "att" in event.changes and row.enqueued_at:
        stat[4] += 1
        stat[2] += max(int((at - row.enqueued_at).total_seconds() * 1000), 0)
    elif event.state in ("succeeded", "failed"):
        stat[0 if event.state == "succeeded" else 1] += 1
        started = row.last_attempted_at
        if started:
            stat[3] += max(int((at - started).total_seconds() * 1000), 0)


def write(batch: Batch) -> None:
    with transaction.atomic():
        rows = [r for job_id, r in batch.rows.items() if job_id not in batch.deleted]
        for start in range(0, len(rows), CHUNK):
            _upsert_jobs(rows[start : start + CHUNK])
        if batch.transitions:
            JobTransition.objects.bulk_create(
                batch.transitions, ignore_conflicts=True, batch_size=CHUNK
            )
        if batch.deleted:
            ids = list(batch.deleted)
            JobTransition.objects.filter(job_id__in=ids).delete()
            Job.objects.filter(id__in=ids).delete()
        if batch.stats:
            _add_stats(batch.stats)


def _upsert_jobs(rows: list[Job]) -> None:
    """Insert or update rows, never replacing a newer version with an older one."""
    table = connection.ops.quote_name(Job._meta.db_table)
    names = [connection.ops.quote_name(str(f.column)) for f in JOB_COLUMNS]
    updated = connection.ops.quote_name("updated_at")
    now = timezone.now()
    placeholders = "(" + ", ".join(["%s"] * (len(names) + 1)) + ")"
    params: list[Any] = []
    for row in rows:
        params += [f.get_db_prep_save(getattr(row, f.attname), connection) for f in JOB_COLUMNS]
        params.append(Job._meta.get_field("updated_at").get_db_prep_save(now, connection))
    assignments = ", ".join(f"{n} = excluded.{n}" for n in [*names, updated] if n != names[0])
    version = connection.ops.quote_name("version")
    # Only quoted column names are formatted in; every value is a parameter.
    sql = (
        f"INSERT INTO {table} ({', '.join(names)}, {updated}) VALUES "  # noqa: S608
        f"{', '.join([placeholders] * len(rows))} "
        f"ON CONFLICT ({names[0]}) DO UPDATE SET {assignments} "
        f"WHERE {table}.{version} < excluded.{version}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _add_stats(stats: dict[tuple[str, datetime], list[int]]) -> None:
    table = connection.ops.quote_name(QueueStat._meta.db_table)
    minute_field = QueueStat._meta.get_field("minute")
    counters = ["succeeded", "failed", "wait_ms", "run_ms", "started"]
    params: list[Any] = []
    for (queue, minute), values in stats.items():
        params += [queue, minute_field.get_db_prep_save(minute, connection), *values]
    placeholders = "(" + ", ".join(["%s"] * (2 + len(counters))) + ")"
    # Only quoted identifiers are formatted in; every value is a parameter.
    sql = (
        f"INSERT INTO {table} (queue, minute, {', '.join(counters)}) VALUES "  # noqa: S608
        f"{', '.join([placeholders] * len(stats))} "
        f"ON CONFLICT (queue, minute) DO UPDATE SET "
        + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counters)
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
