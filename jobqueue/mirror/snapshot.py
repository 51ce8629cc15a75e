"""Copies of what is not a job: every queue's counts and flags, the worker registry, and the
periodic schedules. The mirror takes one every second."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from ..engine import Engine
from ..models import Queue, Schedule, Worker
from .rows import refresh_settings, to_datetime


def snapshot(engine: Engine) -> None:
    """Copy queue counts, the worker registry and the schedules."""
    refresh_settings()
    _queues(engine)
    _workers(engine)
    _schedules(engine)


def _queues(engine: Engine) -> None:
    for name in engine.queues():
        info = engine.queue_info(name)
        counts = {state.value: n for state, n in info.counts.items()}
        Queue.objects.update_or_create(
            name=name,
            defaults={"paused": info.paused, "data_lost_at": info.data_lost_at, **counts},
        )


def _workers(engine: Engine) -> None:
    workers = engine.workers.all()
    with transaction.atomic():
        for w in workers:
            Worker.objects.update_or_create(
                name=w.name,
                defaults={
                    "hostname": w.hostname,
                    "pid": w.pid,
                    "queues": list(w.queues),
                    "concurrency": w.concurrency,
                    "state": w.state,
                    "alive": w.alive,
                    "current_jobs": list(w.current_jobs),
                    "successful": w.successful,
                    "failed": w.failed,
                    "working_time": w.working_time,
                    "birth": w.birth,
                    "last_heartbeat": w.last_heartbeat,
                },
            )
        Worker.objects.exclude(name__in=[w.name for w in workers]).delete()


def _schedules(engine: Engine) -> None:
    from ..schedules import all_schedules

    schedules = all_schedules()
    write_schedules(schedules, engine.schedules.get(list(schedules)))
    Schedule.objects.exclude(name__in=list(schedules)).delete()


def write_schedules(schedules: dict[str, Any], states: dict[str, dict[str, str]]) -> None:
    """Copy these schedules (``jobqueue.schedules.Schedule`` by name) with their states as
    ``engine.schedules.get`` read them. The declaration's columns are always written; the
    state's (paused, last tick, last job) only over a row holding an older or the same
    version of it, so a copy read before a change (this mirror's, a second later) never
    overwrites one read after it (the admin's, at once). The admin calls this too."""
    from ..schedules import next_run

    with transaction.atomic():
        for name, s in schedules.items():
            state = states.get(name, {})
            Schedule.objects.update_or_create(
                name=name,
                defaults={
                    "task": s.task,
                    "cron": s.cron or "",
                    "every": s.every,
                    "args": s.args,
                    "kwargs": s.kwargs,
                    "queue": s.queue,
                    "next_run": next_run(s),
                },
            )
            version = int(state.get("v") or 0)
            Schedule.objects.filter(name=name, state_version__lte=version).update(
                paused=state.get("paused") == "1",
                last_tick=to_datetime(state.get("last")),
                last_job=state.get("job", ""),
                state_version=version,
            )
