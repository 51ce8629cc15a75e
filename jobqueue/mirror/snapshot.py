"""Copies of what is not a job: every queue's counts and flags, the worker registry, and the
periodic schedules. The mirror takes one every second.

A snapshot reads each table once and writes only the rows whose values changed: at rest it
writes nothing, so the mirror's once-a-second work stays small beside a worker's children."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from ..engine import Engine, WorkerInfo
from ..models import Queue, Schedule, Worker
from .rows import refresh_settings, to_datetime

Copied = type[Queue] | type[Worker] | type[Schedule]  # the models a snapshot writes
# A schedule's state columns: written only over an older version of them (write_schedules).
STATE_COLUMNS = ("paused", "last_tick", "last_job", "state_version")


def snapshot(engine: Engine) -> None:
    """Copy queue counts, the worker registry and the schedules."""
    from ..schedules import all_schedules

    refresh_settings()
    # Redis first, then the writes in one transaction: a single commit, when there is any.
    queues = {name: _queue_values(engine, name) for name in engine.queues()}
    workers = {w.name: _worker_values(w) for w in engine.workers.all()}
    schedules = all_schedules()
    states = engine.schedules.get(list(schedules))
    with transaction.atomic():
        sync_rows(Queue, queues)
        sync_rows(Worker, workers, delete_others=True)
        write_schedules(schedules, states, delete_others=True)


def sync_rows(
    model: Copied,
    wanted: dict[str, dict[str, Any]],
    delete_others: bool = False,
    read_also: tuple[str, ...] = (),
) -> dict[str, dict[str, Any]]:
    """Make ``model``'s rows (keyed by ``name``) hold ``wanted``'s values: a missing row is
    created, a row whose values differ is updated (``updated_at`` too, where the model has
    one), and with ``delete_others`` a row of a name not in ``wanted`` is deleted. Columns
    not named in ``wanted`` are left as they are. Returns the rows as read before writing
    (with the ``read_also`` columns too), by name."""
    fields = sorted({f for values in wanted.values() for f in values} | set(read_also))
    rows = model.objects
    have = {row["name"]: row for row in rows.values("name", *fields)}
    stamp = {"updated_at": timezone.now()} if _has_field(model, "updated_at") else {}
    for name, values in wanted.items():
        row = have.get(name)
        if row is None:  # not create(): another mirror may insert it meanwhile
            rows.update_or_create(name=name, defaults=values)
        elif any(row[f] != v for f, v in values.items()):
            rows.filter(name=name).update(**values, **stamp)
    if delete_others and (others := have.keys() - wanted.keys()):
        rows.filter(name__in=others).delete()
    return have


def _has_field(model: Copied, name: str) -> bool:
    return any(f.name == name for f in model._meta.concrete_fields)


def _queue_values(engine: Engine, name: str) -> dict[str, Any]:
    info = engine.queue_info(name)
    counts = {state.value: n for state, n in info.counts.items()}
    return {"paused": info.paused, "data_lost_at": info.data_lost_at, **counts}


def _worker_values(w: WorkerInfo) -> dict[str, Any]:
    return {
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
    }


def write_schedules(
    schedules: dict[str, Any], states: dict[str, dict[str, str]], delete_others: bool = False
) -> None:
    """Copy these schedules (``jobqueue.schedules.Schedule`` by name) with their states as
    ``engine.schedules.get`` read them; with ``delete_others``, delete the rows of schedules
    not among them. The declaration's columns are written when they changed; the state's
    (paused, last tick, last job) only over a row holding an older or the same version of
    it, so a copy read before a change (this mirror's, a second later) never overwrites one
    read after it (the admin's, at once). The admin calls this too."""
    from ..schedules import next_run

    declarations = {
        name: {
            "task": s.task,
            "cron": s.cron or "",
            "every": s.every,
            "args": s.args,
            "kwargs": s.kwargs,
            "queue": s.queue,
            "next_run": next_run(s),
        }
        for name, s in schedules.items()
    }
    with transaction.atomic():
        have = sync_rows(Schedule, declarations, delete_others, read_also=STATE_COLUMNS)
        for name in schedules:
            state = states.get(name, {})
            values = {
                "paused": state.get("paused") == "1",
                "last_tick": to_datetime(state.get("last")),
                "last_job": state.get("job", ""),
                "state_version": int(state.get("v") or 0),
            }
            row = have.get(name)
            if row is None or any(row[column] != values[column] for column in STATE_COLUMNS):
                older = Schedule.objects.filter(
                    name=name, state_version__lte=values["state_version"]
                )
                older.update(**values)
