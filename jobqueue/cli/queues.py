"""``jobqueue purge``, ``pause`` and ``resume``: a queue's jobs in one state deleted, and a
queue's workers stopped from (or let back to) taking its jobs."""

from __future__ import annotations

import argparse
from typing import Any

from ..engine.job import PURGEABLE_STATES
from . import inputs
from .base import Output, Subcommand
from .output import plural


def purge_handle(options: dict[str, Any], out: Output) -> None:
    from ..conf import get_engine

    engine = get_engine()
    state = inputs.state(options["status"], PURGEABLE_STATES, "purged (cancel running jobs first)")
    queue = inputs.known_queue(options["queue"], engine)
    removed = engine.purge(queue, state)
    out.line(f"Deleted {plural(removed, f'{state.value} job')} of queue {queue!r}.")


def pause_handle(paused: bool) -> Any:
    def handle(options: dict[str, Any], out: Output) -> None:
        from ..conf import get_engine

        engine = get_engine()
        queue = inputs.known_queue(options["queue"], engine)
        if paused:
            changed = engine.pause(queue)
            out.line(
                f"Queue {queue!r} paused: workers take no job from it (enqueueing still works)."
                if changed
                else f"Queue {queue!r} was already paused; nothing changed."
            )
        else:
            changed = engine.resume(queue)
            out.line(
                f"Queue {queue!r} resumed: workers take its jobs again."
                if changed
                else f"Queue {queue!r} was not paused; nothing changed."
            )

    return handle


def queue_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("queue", metavar="QUEUE", help="The queue's name.")


def purge_arguments(parser: argparse.ArgumentParser) -> None:
    queue_argument(parser)
    states = ", ".join(sorted(s.value for s in PURGEABLE_STATES))
    parser.add_argument("--status", required=True, help=f"The state to purge ({states}).")


SUBCOMMANDS = [
    Subcommand(
        name="purge",
        help="Delete every job of a queue in one state.",
        description=(
            "Delete from Redis every job of QUEUE in the state given (not running: cancel those "
            "first), in batches, and say how many."
        ),
        arguments=purge_arguments,
        handle=purge_handle,
    ),
    Subcommand(
        name="pause",
        help="Stop workers taking jobs from a queue (enqueueing still works).",
        description="Pause QUEUE: workers take no job from it until it is resumed.",
        arguments=queue_argument,
        handle=pause_handle(True),
    ),
    Subcommand(
        name="resume",
        help="Let workers take jobs from a paused queue again.",
        description="Resume QUEUE, paused with 'jobqueue pause'.",
        arguments=queue_argument,
        handle=pause_handle(False),
    ),
]
