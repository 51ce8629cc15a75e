"""``jobqueue mirror``, ``rebuild`` and ``prune``: the mirror run on its own, the database
reconciled with Redis, old rows deleted. The commands ``jobqueue_mirror``,
``jobqueue_rebuild`` and ``jobqueue_prune`` are these same subcommands under their old names."""

from __future__ import annotations

import argparse
import signal
from typing import Any

from django.core.management.base import CommandError

from ..engine import JobqueueError
from .base import Output, Subcommand


def mirror_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--once", action="store_true", help="Apply every event there is now, then exit."
    )
    parser.add_argument("--batch", default="2000", help="Events per batch (default 2000).")


def mirror_handle(options: dict[str, Any], out: Output) -> None:
    from ..conf import get_engine
    from ..mirror import Mirror
    from ..mirror.maintenance import database_problem

    try:
        batch = int(options["batch"])
    except ValueError:
        raise CommandError(f"--batch {options['batch']!r} is not a whole number.") from None
    if batch < 1:
        raise CommandError(f"--batch {batch} must be 1 or more.")
    problem = database_problem()
    if problem:
        raise CommandError(problem)
    mirror = Mirror(get_engine(), batch=batch)
    try:
        if options["once"]:
            applied = mirror.drain()
            mirror.snapshot()
            out.line(f"Applied {applied} events.")
            return
        stop = {"now": False}
        signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
        signal.signal(signal.SIGINT, lambda *a: stop.update(now=True))
        mirror.run(should_stop=lambda: stop["now"])
    except JobqueueError as exc:
        raise CommandError(f"The mirror cannot run: {exc}") from exc


def rebuild_handle(options: dict[str, Any], out: Output) -> None:
    from ..conf import get_engine
    from ..mirror import Mirror, rebuild

    engine = get_engine()
    try:
        counts = rebuild(engine)
        Mirror(engine).snapshot()
    except JobqueueError as exc:
        raise CommandError(f"Rebuild failed: {exc}") from exc
    out.line(f"Copied {counts['copied']} jobs from Redis; marked {counts['lost']} lost.")


def prune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--days",
        default=None,
        help="Age in days (default: JOBQUEUE['MIRROR_RETENTION_DAYS']).",
    )


def prune_handle(options: dict[str, Any], out: Output) -> None:
    from ..conf import jobqueue_settings
    from ..mirror import prune

    days = options["days"]
    if days is None:
        days = jobqueue_settings.MIRROR_RETENTION_DAYS
    try:
        days = float(days)
    except ValueError:
        raise CommandError(f"--days {days!r} is not a number.") from None
    if not days >= 0:  # also refuses nan
        raise CommandError(f"--days {days} must be zero or more.")
    deleted = prune(days)
    out.line(f"Deleted {deleted} rows of jobs finished over {days:g} days ago.")


def no_arguments(parser: argparse.ArgumentParser) -> None:
    return None


MIRROR = Subcommand(
    name="mirror",
    help="Copy Redis into the database for the admin, on its own (runworker runs one too).",
    description=(
        "Copy jobs, queues, workers and schedules from Redis into the database, continuously "
        "(or once with --once). Several can run: they share the work."
    ),
    arguments=mirror_arguments,
    handle=mirror_handle,
)
REBUILD = Subcommand(
    name="rebuild",
    help="Reconcile the database with Redis (after Redis lost data).",
    description=(
        "Copy every job Redis holds into the database, and mark unfinished jobs that Redis no "
        "longer holds as failed (lost). Use it after Redis lost data, or when installing "
        "jobqueue into a site that already has jobs."
    ),
    arguments=no_arguments,
    handle=rebuild_handle,
)
PRUNE = Subcommand(
    name="prune",
    help="Delete the database rows of jobs finished long ago.",
    description=(
        "Delete the rows of jobs that finished more than --days days ago (and their timelines)."
    ),
    arguments=prune_arguments,
    handle=prune_handle,
)
SUBCOMMANDS = [MIRROR, REBUILD, PRUNE]
