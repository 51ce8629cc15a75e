"""``jobqueue status``: one screen of queues, workers and schedules, read from Redis now (the
live truth, not the mirror's rows); ``--json`` gives the same for scripts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis

from ..engine import Engine, JobState, WorkerInfo
from ..engine.codec import text as decoded
from ..engine.job import ms_to_datetime
from .base import Output, Subcommand, json_flag, redis_json, redis_location
from .inputs import configured_queues
from .output import NOTHING, ago, iso, plural, span, stamp, table, until

# A ready job's score is (100 - priority) * 2**44 + its sequence (lua/_lib.lua, ready_score):
# the jobs of one priority share a band of this width, first come first.
SCORE_STEP = 2**44
PRIORITY_BANDS = 201  # priorities -100 to 100


@dataclass
class Waiting:
    job_id: str
    since: datetime  # when it became ready, as near as its hash tells


@dataclass
class QueueRow:
    name: str
    configured: bool
    paused: bool
    counts: dict[JobState, int]
    oldest: Waiting | None
    data_lost_at: datetime | None
    live_workers: int


@dataclass
class ScheduleRow:
    name: str
    task: str
    queue: str
    cron: str | None
    every: float | None
    paused: bool
    next_run: datetime | None
    last_tick: datetime | None
    last_job: str | None
    last_run: datetime | None  # when the last job was enqueued, if Redis still holds it


@dataclass
class Status:
    now: datetime
    location: str
    prefix: str
    queues: list[QueueRow]
    workers: list[WorkerInfo]
    schedules: list[ScheduleRow]
    schedule_problem: str = ""
    notes: list[str] = field(default_factory=list)


def oldest_waiting(engine: Engine, queue: str) -> Waiting | None:
    """The queued job that has waited longest: the first of each priority's band of the ready
    set (FIFO within a priority), whichever became ready first. One ZRANGE per priority that
    has jobs waiting (a few), then their hashes."""
    ready = engine.keys.queue(queue).ready
    client = engine.client
    firsts: list[str] = []
    floor = "-inf"
    for _ in range(PRIORITY_BANDS):
        try:
            found = client.zrangebyscore(ready, floor, "+inf", start=0, num=1, withscores=True)
        except redis.RedisError as exc:
            raise engine.runner.translate(exc, "oldest_waiting", queue) from exc
        if not found:
            break
        member, score = found[0]
        firsts.append(f"{queue}:{decoded(member)}")
        floor = str((int(score) // SCORE_STEP + 1) * SCORE_STEP)
    candidates = []
    for job in engine.find(firsts):
        # Ready since its enqueue, its deferred time, or its last attempt (a job requeued
        # after a stall, or retried by hand, waits since later than its enqueue).
        times = [t for t in (job.enqueued_at, job.run_at, job.last_attempted_at) if t]
        if times:
            candidates.append(Waiting(job.id, max(times)))
    return min(candidates, key=lambda w: w.since, default=None)


def schedule_rows(engine: Engine, now: datetime) -> tuple[list[ScheduleRow], str]:
    """Every schedule with its state in Redis; and the problem, when they cannot be read."""
    from ..discovery import autodiscover
    from ..schedules import all_schedules

    try:
        autodiscover()  # @periodic schedules are declared when their tasks module is imported
        schedules = all_schedules()
    except Exception as exc:  # a broken tasks module or SCHEDULES setting: say so, go on
        return [], f"The schedules cannot be read: {type(exc).__name__}: {exc}"
    states = engine.schedules.get(sorted(schedules))
    last_jobs = [s["job"] for s in states.values() if s.get("job")]
    enqueued = {job.id: job.enqueued_at for job in engine.find(last_jobs)}
    rows = []
    for name in sorted(schedules):
        schedule, state = schedules[name], states.get(name, {})
        paused = state.get("paused") == "1"
        last_job = state.get("job") or None
        rows.append(
            ScheduleRow(
                name=name,
                task=schedule.task,
                queue=schedule.queue,
                cron=schedule.cron,
                every=schedule.every,
                paused=paused,
                next_run=None if paused else schedule.next_tick(now),
                last_tick=ms_to_datetime(state.get("last")),
                last_job=last_job,
                last_run=enqueued.get(last_job) if last_job else None,
            )
        )
    return rows, ""


def collect(engine: Engine) -> Status:
    from ..conf import jobqueue_settings

    now = ms_to_datetime(engine.now_ms())
    assert now is not None
    configured = configured_queues()
    names = configured + [q for q in engine.queues() if q not in configured]
    workers = engine.workers.all()
    queues = []
    for name in names:
        info = engine.queue_info(name)
        queues.append(
            QueueRow(
                name=name,
                configured=name in configured,
                paused=info.paused,
                counts=info.counts,
                oldest=oldest_waiting(engine, name) if info.counts[JobState.QUEUED] else None,
                data_lost_at=info.data_lost_at,
                live_workers=sum(1 for w in workers if w.alive and name in w.queues),
            )
        )
    schedules, problem = schedule_rows(engine, now)
    return Status(
        now=now,
        location=redis_location(),
        prefix=jobqueue_settings.PREFIX,
        queues=queues,
        workers=workers,
        schedules=schedules,
        schedule_problem=problem,
    )


# -- JSON ------------------------------------------------------------------------------------


def as_json(status: Status) -> dict[str, Any]:
    now = status.now
    return {
        "now": iso(now),
        "redis": redis_json(),
        "queues": [
            {
                "name": q.name,
                "configured": q.configured,
                "paused": q.paused,
                "counts": {s.value: q.counts.get(s, 0) for s in JobState},
                "oldest_waiting": None
                if q.oldest is None
                else {
                    "job": q.oldest.job_id,
                    "since": iso(q.oldest.since),
                    "age_seconds": round((now - q.oldest.since).total_seconds(), 3),
                },
                "live_workers": q.live_workers,
                "data_lost_at": iso(q.data_lost_at),
            }
            for q in status.queues
        ],
        "workers": [
            {
                "name": w.name,
                "hostname": w.hostname,
                "pid": w.pid,
                "alive": w.alive,
                "state": w.state,
                "queues": list(w.queues),
                "concurrency": w.concurrency,
                "current_jobs": list(w.current_jobs),
                "last_heartbeat": iso(w.last_heartbeat),
                "heartbeat_age_seconds": None
                if w.last_heartbeat is None
                else round((now - w.last_heartbeat).total_seconds(), 3),
                "started_at": iso(w.birth),
                "successful": w.successful,
                "failed": w.failed,
                "working_seconds": round(w.working_time, 3),
            }
            for w in status.workers
        ],
        "schedules": [
            {
                "name": s.name,
                "task": s.task,
                "queue": s.queue,
                "cron": s.cron,
                "every_seconds": s.every,
                "paused": s.paused,
                "next_run": iso(s.next_run),
                "last_tick": iso(s.last_tick),
                "last_job": s.last_job,
                "last_run": iso(s.last_run),
            }
            for s in status.schedules
        ],
        "schedules_problem": status.schedule_problem or None,
    }


# -- text ------------------------------------------------------------------------------------


def every_words(seconds: float) -> str:
    """An interval as a person says it: "every minute", "every 90 seconds"."""
    if seconds == int(seconds) and seconds >= 1:
        whole = int(seconds)
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
            if whole % size == 0:
                count = whole // size
                return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds:g} seconds"


def queue_lines(status: Status) -> list[str]:
    if not status.queues:
        return [
            "Queues: none. No jobqueue backend is configured in settings.TASKS and no job was "
            "enqueued yet."
        ]
    headers = ["queue", "state", *(s.value for s in JobState), "oldest waiting", "workers"]
    rows = []
    for q in status.queues:
        state = "paused" if q.paused else "active"
        if q.data_lost_at is not None:
            state += f", data lost {ago(q.data_lost_at, status.now)}"
        if not q.configured:
            state += ", not configured"
        oldest = (
            NOTHING if q.oldest is None else span((status.now - q.oldest.since).total_seconds())
        )
        rows.append(
            [q.name, state, *(q.counts.get(s, 0) for s in JobState), oldest, q.live_workers]
        )
    lines = ["Queues", *table(headers, rows)]
    for q in status.queues:
        waiting = q.counts.get(JobState.QUEUED, 0)
        if waiting and not q.live_workers and not q.paused:
            lines.append(
                f"  ! {plural(waiting, 'job')} {'waits' if waiting == 1 else 'wait'} in "
                f"{q.name!r} and no live worker takes from it."
            )
    return lines


def worker_lines(status: Status) -> list[str]:
    alive = [w for w in status.workers if w.alive]
    dead = [w for w in status.workers if not w.alive]
    title = f"Workers: {len(alive)} alive" + (f", {len(dead)} dead" if dead else "")
    if not status.workers:
        return ["Workers: none. No worker is alive; start one with 'manage.py runworker'."]
    headers = ["name", "host/pid", "status", "state", "jobs", "heartbeat", "up", "queues"]
    rows = [
        [
            w.name,
            f"{w.hostname}/{w.pid}",
            "alive" if w.alive else "dead",
            w.state,
            f"{len(w.current_jobs)}/{w.concurrency}",
            ago(w.last_heartbeat, status.now),
            NOTHING if w.birth is None else span((status.now - w.birth).total_seconds()),
            ", ".join(w.queues),
        ]
        for w in status.workers
    ]
    lines = [title, *table(headers, rows)]
    if not alive:
        lines.append("  ! No worker is alive; start one with 'manage.py runworker'.")
    for w in alive:
        if w.current_jobs:
            lines.append(f"  {w.name} runs {', '.join(w.current_jobs)}")
    return lines


def schedule_lines(status: Status) -> list[str]:
    if status.schedule_problem:
        return ["Schedules", f"  ! {status.schedule_problem}"]
    if not status.schedules:
        return ["Schedules: none declared (JOBQUEUE['SCHEDULES'] or @periodic)."]
    headers = ["name", "task", "when", "state", "next run", "last run"]
    rows = []
    for s in status.schedules:
        when = f"cron {s.cron}" if s.cron else every_words(s.every or 0)
        if s.next_run is None:
            next_run = NOTHING
        else:
            next_run = f"{until(s.next_run, status.now)} ({stamp(s.next_run)})"
        if s.last_job is None:
            last = "never"
        elif s.last_run is not None:
            last = f"{ago(s.last_run, status.now)}, {s.last_job}"
        else:
            last = f"{s.last_job} (no longer in Redis)"
        rows.append([s.name, s.task, when, "paused" if s.paused else "active", next_run, last])
    return ["Schedules", *table(headers, rows)]


def as_text(status: Status) -> list[str]:
    head = f"{status.location}, prefix {status.prefix!r}, at {stamp(status.now)}"
    return [
        head,
        "",
        *queue_lines(status),
        "",
        *worker_lines(status),
        "",
        *schedule_lines(status),
    ]


def handle(options: dict[str, Any], out: Output) -> None:
    from ..conf import get_engine

    status = collect(get_engine())
    if options["json"]:
        out.json(as_json(status))
    else:
        out.lines(as_text(status))


def arguments(parser: Any) -> None:
    json_flag(parser, "the queues, workers and schedules")


SUBCOMMAND = Subcommand(
    name="status",
    help="Queues, workers and schedules on one screen, from Redis now.",
    description=(
        "Show every queue (jobs in each state, the oldest waiting job's age, paused or not, "
        "its live workers), every worker (host and pid, alive or dead, state, current jobs, "
        "heartbeat) and every schedule (next run, last run), as Redis holds them now."
    ),
    arguments=arguments,
    handle=handle,
)
