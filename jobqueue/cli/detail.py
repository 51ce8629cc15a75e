"""``jobqueue inspect ID``: one job whole, as the admin's job page shows it, read from Redis:
task, queue, state, attempts (counted as max_attempts counts them), times, workers,
progress, arguments, result, each kept error with its traceback, its log records and its
timeline (the transitions still in the queue's event stream).

This module reads the job and makes its JSON form (``--json``; long values cut to the admin's
preview, 10,000 characters, with their whole size); ``detail_text`` writes the text from it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from django.core.management.base import CommandError

from ..engine import Engine, Job
from ..engine.codec import loads
from ..engine.errors import CorruptJob, JobNotFound
from ..engine.events import Event, parse_event
from ..engine.job import ms_to_datetime
from ..live.state import TIMES, shown
from . import inputs
from .base import Output, Subcommand, json_flag
from .detail_text import as_text
from .output import PREVIEW, cut, iso, ms_datetime

TIMELINE_SCAN = 20_000  # stream entries read at most to find a job's events
TIMELINE_PAGE = 1_000
LOG_LINES = 100  # log records shown by default, the latest


# -- reading ---------------------------------------------------------------------------------


def read_timeline(engine: Engine, job: Job) -> tuple[list[Event], bool]:
    """The job's events still in its queue's stream, oldest first, and whether they are all
    there (every version from 1 to the job's). The stream has no index by job: it is read
    from the job's enqueue on, at most TIMELINE_SCAN entries, until the job's latest event."""
    if job.enqueued_at is None:
        return [], False
    key = engine.keys.queue(job.queue).events
    start = str(max(int(job.enqueued_at.timestamp() * 1000) - 1000, 0))
    found: list[Event] = []
    scanned = 0
    while scanned < TIMELINE_SCAN:
        try:
            entries = engine.client.xrange(key, start, "+", count=TIMELINE_PAGE)
        except Exception as exc:
            raise engine.runner.translate(exc, "timeline", job.queue) from exc
        for entry_id, fields in entries:
            event = parse_event(job.queue, entry_id, fields)
            if event is not None and event.local_id == job.local_id:
                found.append(event)
        scanned += len(entries)
        if len(entries) < TIMELINE_PAGE or (found and found[-1].version >= job.version):
            break
        start = "(" + entries[-1][0].decode()
    versions = {event.version for event in found}
    return found, versions >= set(range(1, job.version + 1))


def value_json(value: Any, text: str | None = None) -> dict[str, Any]:
    """A JSON value as the output carries it: whole when its text is short, else its first
    PREVIEW characters (``preview``), with its whole size either way."""
    text = text if text is not None else json.dumps(value, ensure_ascii=False)
    if len(text) <= PREVIEW:
        return {"json_chars": len(text), "truncated": False, "value": value, "preview": None}
    return {"json_chars": len(text), "truncated": True, "value": None, "preview": text[:PREVIEW]}


def result_json(job: Job) -> dict[str, Any] | None:
    if job.result_json is None:
        return None
    if len(job.result_json) > PREVIEW:
        return value_json(None, job.result_json)
    try:
        return value_json(loads(job.result_json), job.result_json)
    except ValueError as exc:
        raise CorruptJob(f"Job {job.id!r} has a result that is not JSON: {exc}") from exc


def attempts_json(job: Job) -> dict[str, int]:
    return {
        "this_run": max(job.attempts - job.attempts_before_retry, 0),
        "max": job.max_attempts,
        "in_all": job.attempts,
        "before_retry": job.attempts_before_retry,
        "stalls": job.stalls,
    }


def log_json(record: dict[str, Any]) -> dict[str, Any]:
    when = record.get("t")
    at = None
    if isinstance(when, int | float):
        at = iso(ms_datetime(when * 1000))
    return {
        "at": at,
        "level": str(record.get("level", "")),
        "logger": str(record.get("logger", "")),
        "message": str(record.get("msg", "")),
    }


def event_json(event: Event) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, value in shown(event.changes).items():
        if name in TIMES and value.isdigit():
            changes[name] = iso(ms_to_datetime(value))
        else:
            changes[name] = value
    return {
        "version": event.version,
        "state": event.state,
        "at": iso(ms_datetime(event.at_ms)),
        "changes": changes,
    }


def job_json(
    engine: Engine, job: Job, log_lines: int | None = LOG_LINES, timeline: bool = True
) -> dict:
    """The job whole, for scripts: stable keys, ISO 8601 times (UTC), long values cut. With
    ``log_lines`` (None: no ``log``) its latest log records; with ``timeline``, its events."""
    duration = None
    if job.started_at and job.finished_at:
        duration = round((job.finished_at - job.started_at).total_seconds(), 3)
    out: dict[str, Any] = {
        "id": job.id,
        "queue": job.queue,
        "task": job.task,
        "state": job.state.value,
        "reason": job.reason,
        "cancel_requested": job.cancel_requested,
        "priority": job.priority,
        "version": job.version,
        "attempts": attempts_json(job),
        "times": {
            "enqueued_at": iso(job.enqueued_at),
            "run_at": iso(job.run_at),
            "started_at": iso(job.started_at),
            "last_attempted_at": iso(job.last_attempted_at),
            "finished_at": iso(job.finished_at),
            "lease_deadline": iso(job.lease_deadline),
        },
        "duration_seconds": duration,
        "workers": list(job.worker_ids),
        "progress": job.progress,
        "timeout_seconds": job.timeout,
        "result_ttl_seconds": job.result_ttl,
        "unique_key": job.unique_key,
        "args": value_json(job.args),
        "kwargs": value_json(job.kwargs),
        "result": result_json(job),
        "errors": [
            {
                "attempt": error.attempt,
                "at": iso(error.at),
                "exception_class": error.exception_class,
                "traceback_chars": len(error.traceback),
                "truncated": len(error.traceback) > PREVIEW,
                "traceback": cut(error.traceback)[0],
            }
            for error in job.errors
        ],
    }
    if log_lines is not None:
        records = engine.logs.read(job.id)
        kept = records[-log_lines:] if log_lines else []
        out["log"] = {"total": len(records), "records": [log_json(r) for r in kept]}
    if timeline:
        events, complete = read_timeline(engine, job)
        out["timeline"] = {
            "complete": complete,
            "events": [event_json(e) for e in events if set(e.changes) != {"progress"}],
        }
    return out


# -- the subcommand --------------------------------------------------------------------------


def handle(options: dict[str, Any], out: Output) -> None:
    from ..conf import get_engine

    [job_id] = inputs.job_ids([options["id"]])
    log_lines = inputs.number("--log-lines", options["log_lines"], minimum=0, integer=True)
    engine = get_engine()
    try:
        job = engine.get(job_id)
    except JobNotFound as exc:
        raise CommandError(
            f"{exc} Redis keeps a finished job for RESULT_TTL (failed or canceled: FAILED_TTL); "
            "the admin's job list keeps its row longer."
        ) from None
    except CorruptJob as exc:
        raise CommandError(str(exc)) from None
    facts = job_json(engine, job, log_lines=log_lines)
    if options["json"]:
        out.json(facts)
        return
    now = ms_to_datetime(engine.now_ms())
    assert now is not None
    out.lines(as_text(facts, now, log_lines))


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="ID", help="The job's id ('<queue>:<id>').")
    parser.add_argument(
        "--log-lines",
        default=str(LOG_LINES),
        help=f"The latest log records shown (default {LOG_LINES}; 0: none).",
    )
    json_flag(parser, "the job")


SUBCOMMAND = Subcommand(
    name="inspect",
    help="One job whole: arguments, result, errors, log, timeline.",
    description=(
        "Show one job as Redis holds it: task, queue, state, attempts, times, workers, "
        "progress, arguments, result, each kept error with its traceback, its log records and "
        "its timeline. Values longer than 10,000 characters are cut, with their whole size."
    ),
    arguments=arguments,
    handle=handle,
)
