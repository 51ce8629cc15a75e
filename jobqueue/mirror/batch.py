"""What one batch of events does to the database, worked out without touching it: pure
functions of the events, the rows' current versions (``sql.known_rows``), the jobs read whole
from Redis (for events that do not follow their row) and the tombstones of deleted jobs.

A job's row carries the version of the last event applied to it. Events at or below that
version are ignored (replays, out-of-order deliveries). When a job's events are not contiguous
with its row (the stream was trimmed, or another mirror process holds the events in between),
the job is read whole from Redis instead: Redis is the truth, the row a copy. A deleted job
leaves a tombstone, so a late event cannot bring its row back.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

from ..engine.events import Event
from ..engine.job import FINISHED_STATES
from ..engine.job import Job as EngineJob
from .rows import (
    append_error,
    arguments_text,
    changes_to_columns,
    db_datetime,
    ms_datetime,
    refresh_settings,
    row_values,
)

TOMBSTONE = 2**62  # the version of the transition row left where a deleted job was


@dataclass
class Batch:
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
    # Jobs whose events do not follow their row, to read whole from Redis (with the events,
    # for a job Redis no longer holds; none for a job that has no row yet).
    gaps: dict[str, list[Event]] = field(default_factory=dict)

    def new_rows(self) -> list[str]:
        """Ids of jobs whose rows this batch creates (those a tombstone may forbid)."""
        return [job_id for job_id in self.full if job_id not in self.changed]


# (version, enqueued_at, last_attempted_at, status, ready_at) of a job's row, its times as
# the database cursor returns them (converted by db_datetime when used); a job with no row:
Known = tuple[int, Any, Any, str | None, Any]
_UNKNOWN: Known = (0, None, None, None, None)
NO_ARGUMENTS = arguments_text([], {})
FINISHED = frozenset(state.value for state in FINISHED_STATES)
_version = attrgetter("version")
_MS = timedelta(milliseconds=1)


def job_ids(events: list[Event]) -> list[str]:
    """The jobs the events are about (queue events have none)."""
    return list(dict.fromkeys(event.job_id for event in events if event.local_id))


def error_jobs(events: list[Event]) -> list[str]:
    """The jobs whose events add an error (whose rows' errors ``build`` needs)."""
    return list(dict.fromkeys(e.job_id for e in events if "error" in e.changes))


def build(
    events: list[Event], known: dict[str, Known], errors: dict[str, Any] | None = None
) -> Batch:
    """The batch for ``events``, given the rows that exist (``known``, by job id) and the
    errors of those among them whose events add an error (``errors``, by job id)."""
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
    transitions = batch.transitions
    for job_id, job_events in by_job.items():
        if len(job_events) > 1:
            job_events.sort(key=_version)
        current, enqueued, started, status, ready = known.get(job_id, _UNKNOWN)
        if job_id in deleting and any(
            e.state == "deleted" and (e.version > current or e.version == 0) for e in job_events
        ):
            batch.deleted.add(job_id)
            continue
        if current and _restarts(job_events[0], enqueued):  # the id of an expired job, reused
            batch.restarted.add(job_id)
            current, enqueued, started, status, ready = _UNKNOWN
        fresh = [e for e in job_events if e.version > current]
        # An event that left a big value out ('big': the job hash holds it) makes the row
        # come whole from Redis, like a gap.
        if fresh and _follows(fresh, current) and not any("big" in e.changes for e in fresh):
            values: dict[str, Any] = {}
            for event in fresh:
                changes_to_columns(event.changes, values)
                if "error" in event.changes:
                    before = values["errors"] if "errors" in values else None
                    if before is None and current and errors:
                        before = errors.get(job_id)
                    append_error(event.changes, before, values)
                state = event.state
                # ready_at: when this attempt could first run, which the wait before start
                # is measured from. Entering 'scheduled', that is its run_at; entering
                # 'queued', now, unless it comes from 'scheduled' (promoted once due, maybe
                # long after: waiting out a delay or a backoff is not waiting for a worker).
                if state == "queued":
                    if status != "scheduled" or ready is None:
                        ready = values["ready_at"] = ms_datetime(event.at_ms)
                elif state == "scheduled":
                    ready = values["ready_at"] = values.get("scheduled_for")
                else:
                    _count(batch, event, ready, values.get("last_attempted_at", started))
                status = values["status"] = state
                values["version"] = event.version
                if event.state in FINISHED:
                    values["cancel_requested"] = False  # the scripts drop it without an event
            if current:
                batch.changed[job_id] = values
            else:
                # Only what differs from the defaults: the upsert fills in the rest.
                values["id"], values["queue"] = job_id, fresh[0].queue
                values.setdefault("arguments_text", NO_ARGUMENTS)
                batch.full[job_id] = values
        elif fresh:
            batch.gaps[job_id] = fresh if current else []
        if current or job_id in batch.full or fresh:
            for e in job_events:
                if e.version > 0:
                    transitions.append(
                        (job_id, e.version, e.state, ms_datetime(e.at_ms), e.changes)
                    )
    return batch


def _follows(fresh: list[Event], current: int) -> bool:
    """Whether the events' versions go on from ``current`` one by one."""
    for event in fresh:
        current += 1
        if event.version != current:
            return False
    return True


def _restarts(first: Event, enqueued: Any) -> bool:
    enq = first.changes.get("enq")
    if first.version != 1 or not enq or enqueued is None:
        return False
    before = db_datetime(enqueued)
    return before is not None and ms_datetime(int(enq)) > before


def fill_gaps(batch: Batch, jobs: list[EngineJob]) -> None:
    """The jobs of ``batch.gaps``, as Redis holds them now, become whole rows. One that Redis
    forgot meanwhile keeps its row, with what the events themselves say."""
    found = set()
    for job in jobs:
        batch.full[job.id] = row_values(job)
        found.add(job.id)
    for job_id, fresh in batch.gaps.items():
        if job_id not in found and fresh:
            values: dict[str, Any] = {}
            for event in fresh:
                changes_to_columns(event.changes, values)
                values["status"], values["version"] = event.state, event.version
            batch.changed[job_id] = values


def skip_tombstoned(batch: Batch, tombstones: dict[str, datetime | None]) -> None:
    """A deleted job's late events must not bring its row back (``tombstones``: the new rows'
    jobs deleted before, and when). A later job that reuses the id (enqueued after the
    delete) is let in, its predecessor's timeline dropped."""
    for job_id, at in tombstones.items():
        enqueued = batch.full[job_id].get("enqueued_at")
        if enqueued is None or at is None or enqueued <= at:
            del batch.full[job_id]
            batch.transitions = [t for t in batch.transitions if t[0] != job_id]
        else:
            batch.restarted.add(job_id)


def _count(batch: Batch, event: Event, ready: Any, started: Any) -> None:
    """Per-minute statistics: starts (with their wait since the attempt was ready, counted
    only when that time is known) and ends (with their run time). The minute is kept as
    milliseconds until the batch is written (one conversion per minute)."""
    at_ms, state = event.at_ms, event.state
    if state == "running":
        if "att" in event.changes and ready:  # a start, not a progress or cancel request
            stat = batch.stats[(event.queue, at_ms - at_ms % 60_000)]
            stat[4] += 1
            stat[2] += _ms_since(ready, at_ms)
    elif state == "succeeded" or state == "failed":
        stat = batch.stats[(event.queue, at_ms - at_ms % 60_000)]
        stat[0 if state == "succeeded" else 1] += 1
        if started:
            stat[3] += _ms_since(started, at_ms)


def _ms_since(since: Any, at_ms: int) -> int:
    """Whole milliseconds from ``since`` (a time as a row or an event gives it) to ``at_ms``,
    exactly (no float rounding); 0 when ``since`` is later."""
    start = db_datetime(since)
    return max((ms_datetime(at_ms) - start) // _MS, 0) if start else 0
