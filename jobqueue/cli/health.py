"""``jobqueue health``: a check for a container's HEALTHCHECK or a monitor. Healthy when Redis
answers, every queue checked has a live worker, and Redis has not lost a queue's data lately.

Exit status: 0 healthy; 1 unhealthy (one line per problem on stderr); 2 the check could not
run (Redis cannot be reached, a bad option)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from ..engine import JobqueueError
from ..engine.errors import ConnectionFailed
from ..engine.job import ms_to_datetime
from . import inputs
from .base import Output, Subcommand, redis_json, redis_location, unreachable
from .output import ago, iso, plural, stamp

HEALTHY, UNHEALTHY, CANNOT_CHECK = 0, 1, 2
LOSS_WINDOW = 3600.0  # seconds a noticed data loss keeps the check failing


@dataclass
class QueueHealth:
    name: str
    live_workers: int
    data_lost_at: datetime | None


@dataclass
class Report:
    checked_at: datetime | None
    queues: list[QueueHealth] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    code: int = HEALTHY


def examine(engine: Any, queues: list[str], loss_window: float) -> Report:
    """Redis's answer, the live workers of each queue and any recent data loss."""
    try:
        engine.client.ping()
    except redis.RedisError as exc:
        raise engine.runner.translate(exc, "ping") from exc
    now = ms_to_datetime(engine.now_ms())
    assert now is not None
    report = Report(checked_at=now)
    workers = [w for w in engine.workers.all() if w.alive]
    recent = now - timedelta(seconds=loss_window)
    noticed_here = {loss.queue for loss in engine.data_loss}
    for name in queues:
        info = engine.queue_info(name)
        live = sum(1 for w in workers if name in w.queues)
        report.queues.append(QueueHealth(name, live, info.data_lost_at))
        if not live:
            report.problems.append(
                f"no live worker takes jobs from queue {name!r}: start one "
                f"('manage.py runworker {name}') or check why the workers stopped heartbeating"
            )
        lost = info.data_lost_at
        if loss_window and (name in noticed_here or (lost is not None and lost >= recent)):
            when = f" {ago(lost, now)} ({stamp(lost)})" if lost is not None else ""
            report.problems.append(
                f"Redis lost the data of queue {name!r}{when}: jobs enqueued before then are "
                "gone; run 'manage.py jobqueue rebuild' and check Redis persistence "
                "(appendonly yes)"
            )
    report.code = UNHEALTHY if report.problems else HEALTHY
    return report


def as_json(report: Report) -> dict[str, Any]:
    return {
        "healthy": report.code == HEALTHY,
        "exit_code": report.code,
        "redis": redis_json(),
        "checked_at": iso(report.checked_at),
        "queues": [
            {
                "name": q.name,
                "live_workers": q.live_workers,
                "data_lost_at": iso(q.data_lost_at),
            }
            for q in report.queues
        ],
        "problems": report.problems,
    }


def handle(options: dict[str, Any], out: Output) -> None:
    from ..conf import get_engine

    try:
        engine = get_engine()
        window = inputs.number("--data-loss-window", options["data_loss_window"], minimum=0)
        if options["queue"]:
            queues = [inputs.known_queue(q, engine) for q in dict.fromkeys(options["queue"])]
        else:
            queues = inputs.configured_queues()
            if not queues:
                raise CommandError(
                    "No queue to check: configure a jobqueue.backends.RedisBackend in "
                    "settings.TASKS, or name queues with --queue."
                )
        report = examine(engine, queues, window)
    except (ConnectionFailed, redis.RedisError) as exc:
        report = Report(checked_at=None, problems=[unreachable(exc)], code=CANNOT_CHECK)
    except CommandError as exc:  # bad input: the check did not run
        report = Report(checked_at=None, problems=[str(exc)], code=CANNOT_CHECK)
    except (JobqueueError, ImproperlyConfigured) as exc:  # JOBQUEUE malformed, Redis refused
        report = Report(checked_at=None, problems=[str(exc)], code=CANNOT_CHECK)
    if options["json"]:
        out.json(as_json(report))
    elif report.code == CANNOT_CHECK:
        raise CommandError(report.problems[0], returncode=CANNOT_CHECK)
    elif report.code == HEALTHY:
        served = ", ".join(
            f"{q.name} ({plural(q.live_workers, 'live worker')})" for q in report.queues
        )
        out.line(f"healthy: {redis_location()} answers; {served}.")
    else:
        for problem in report.problems:
            out.problem(f"unhealthy: {problem}")
    if report.code != HEALTHY:
        raise SystemExit(report.code)


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="QUEUE",
        help="A queue that must have a live worker (repeat for several; default: every "
        "configured queue).",
    )
    parser.add_argument(
        "--data-loss-window",
        default=str(int(LOSS_WINDOW)),
        metavar="SECONDS",
        help=f"A data loss noticed this recently is a problem (default {int(LOSS_WINDOW)}; "
        "0: ignore data loss).",
    )
    parser.add_argument(
        "--json", action="store_true", help="Write the report as JSON (the exit status is kept)."
    )


SUBCOMMAND = Subcommand(
    name="health",
    help="Exit 0 when Redis answers, each queue has a live worker and no data was lost.",
    description=(
        "Check that Redis answers, that every configured queue (or each --queue) has at least "
        "one live worker, and that Redis has not lost a queue's data within "
        "--data-loss-window seconds. For a container's HEALTHCHECK or a monitor."
    ),
    epilog=(
        "Exit status: 0 healthy (one line on stdout); 1 unhealthy (one line per problem on "
        "stderr); 2 the check could not run (Redis cannot be reached, a bad option). Docker "
        "reserves 2 in a HEALTHCHECK: write 'manage.py jobqueue health || exit 1' there."
    ),
    arguments=arguments,
    handle=handle,
)
