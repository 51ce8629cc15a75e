"""Periodic schedules: a task enqueued on a cron expression or at a fixed interval.

Declared in settings::

    JOBQUEUE = {"SCHEDULES": {
        "nightly-report": {"task": "project.tasks.build_report", "cron": "0 3 * * *",
                           "kwargs": {"rows": 500}},
        "heartbeat": {"task": "project.tasks.add", "every": 60, "args": [1, 1]},
    }}

or with the decorator, over a ``@task``::

    @periodic(cron="*/15 * * * *")
    @task
    def sync_accounts(): ...

Every worker runs the scheduler, and each tick is enqueued exactly once however many do: the
job of a tick has an id derived from the schedule's name and the tick's time, so a second worker
enqueueing the same tick finds the job already there. The last tick is kept in Redis, so
restarts neither repeat nor forget ticks. Missed ticks (no worker running): when a worker comes
back, the schedule runs once for the latest missed tick, then follows its timetable again;
missed ticks are never replayed one by one. Ticks that fall while a schedule is paused are
skipped. Times are on the Redis clock; cron expressions are read in UTC unless the schedule
names a ``timezone``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .conf import jobqueue_settings
from .cron import Cron, CronError
from .engine import Engine, JobSpec
from .engine.job import QUEUE_NAME_RE, make_job_id, ms_to_datetime

logger = logging.getLogger("jobqueue.schedules")
_declared: dict[str, Schedule] = {}


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str  # the registered task's module path
    cron: str | None = None
    every: float | None = None  # seconds
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        where = f"Schedule {self.name!r}"
        if (self.cron is None) == (self.every is None):
            raise ValueError(f"{where} needs exactly one of 'cron' and 'every'.")
        if self.cron is not None:
            Cron(self.cron)  # raises CronError naming the bad part
        if self.every is not None and (
            isinstance(self.every, bool)
            or not isinstance(self.every, int | float)
            or self.every <= 0
        ):
            raise ValueError(
                f"{where}: 'every' must be a positive number of seconds, not {self.every!r}."
            )
        if not isinstance(self.queue, str) or not QUEUE_NAME_RE.match(self.queue):
            raise ValueError(f"{where}: queue {self.queue!r} is not a valid queue name.")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{where}: timezone {self.timezone!r} is unknown.") from None

    def next_tick(self, after: datetime) -> datetime:
        """The first tick strictly after ``after`` (aware, UTC)."""
        if self.every is not None:
            period = self.every
            ticks = int(after.timestamp() // period) + 1
            return datetime.fromtimestamp(ticks * period, tz=UTC)
        zone = ZoneInfo(self.timezone)
        return Cron(self.cron or "").next_after(after.astimezone(zone)).astimezone(UTC)

    def latest_tick(self, after: datetime, until: datetime) -> datetime | None:
        """The latest tick in ``(after, until]``, or None."""
        tick = self.next_tick(after)
        if tick > until:
            return None
        if self.every is not None:
            return datetime.fromtimestamp(until.timestamp() // self.every * self.every, tz=UTC)
        latest = tick
        for _ in range(10000):
            following = self.next_tick(latest)
            if following > until:
                break
            latest = following
        return latest

    def job_id(self, tick: datetime) -> str:
        digest = hashlib.sha256(f"{self.name}|{int(tick.timestamp() * 1000)}".encode()).hexdigest()
        return make_job_id(self.queue, "s" + digest[:23])


def from_settings(name: str, spec: Any) -> Schedule:
    if not isinstance(spec, dict) or not isinstance(spec.get("task"), str):
        raise ValueError(f"JOBQUEUE['SCHEDULES'][{name!r}] must be a dict with a 'task' path.")
    unknown = set(spec) - {
        "task",
        "cron",
        "every",
        "args",
        "kwargs",
        "queue",
        "priority",
        "timezone",
    }
    if unknown:
        raise ValueError(f"JOBQUEUE['SCHEDULES'][{name!r}] has unknown keys {sorted(unknown)}.")
    return Schedule(name=name, **spec)


def periodic(
    *,
    cron: str | None = None,
    every: float | None = None,
    name: str | None = None,
    args: list | None = None,
    kwargs: dict | None = None,
) -> Callable[[Any], Any]:
    """Decorator: run this task on a schedule. Put it above ``@task``."""

    def decorate(task: Any) -> Any:
        schedule = Schedule(
            name=name or task.module_path,
            task=task.module_path,
            cron=cron,
            every=every,
            args=list(args or []),
            kwargs=dict(kwargs or {}),
            queue=task.queue_name,
            priority=task.priority,
        )
        _declared[schedule.name] = schedule
        return task

    return decorate


def all_schedules() -> dict[str, Schedule]:
    """Every schedule: the decorated ones, then settings (which win on a name clash)."""
    schedules = dict(_declared)
    for name, spec in (jobqueue_settings.SCHEDULES or {}).items():
        schedules[name] = from_settings(name, spec)
    return schedules


class Scheduler:
    """Runs inside every worker: enqueues each schedule's due tick, once."""

    def __init__(self, engine: Engine, schedules: dict[str, Schedule]) -> None:
        self.engine = engine
        self.schedules = schedules

    def tick(self) -> list[str]:
        """Enqueue the due ticks; returns the ids of the jobs enqueued (or found) now."""
        if not self.schedules:
            return []
        now = ms_to_datetime(self.engine.now_ms())
        assert now is not None
        states = self.engine.schedules.get(list(self.schedules))
        enqueued = []
        for name, schedule in self.schedules.items():
            state = states.get(name, {})
            if "last" not in state:  # first seen: start from now, run at the next tick
                self.engine.schedules.set(name, last=int(now.timestamp() * 1000))
                continue
            last = ms_to_datetime(state["last"]) or now
            tick = schedule.latest_tick(last, now)
            if tick is None:
                continue
            tick_ms = int(tick.timestamp() * 1000)
            if state.get("paused") == "1":
                self.engine.schedules.set(name, last=tick_ms)  # paused: skipped
                continue
            job = self.run(schedule, job_id=schedule.job_id(tick))
            self.engine.schedules.set(name, last=tick_ms, job=job.id)
            enqueued.append(job.id)
            logger.info(
                "schedule_fired schedule=%s tick=%s job=%s", name, tick.isoformat(), job.id
            )
        return enqueued

    def run(self, schedule: Schedule, job_id: str | None = None) -> Any:
        """Enqueue one run of ``schedule`` now (``job_id`` makes it once per tick)."""
        s = schedule
        spec = JobSpec(s.task, s.args, s.kwargs, s.queue, s.priority, job_id=job_id)
        return self.engine.enqueue_many([spec])[0]


def next_run(schedule: Schedule, after: datetime | None = None) -> datetime:
    return schedule.next_tick(after or datetime.now(UTC))


def validate_all() -> list[str]:
    """Problems with the declared schedules, as sentences (for the system check)."""
    problems = []
    raw = jobqueue_settings.SCHEDULES or {}
    for name, spec in raw.items():
        try:
            from_settings(name, spec)
        except (ValueError, CronError, TypeError) as exc:
            problems.append(str(exc))
    return problems


__all__ = ["Schedule", "Scheduler", "all_schedules", "next_run", "periodic"]
