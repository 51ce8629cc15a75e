"""``jobqueue retry``, ``cancel`` and ``delete``: jobs steered by id, or every job of a queue in
a state. Every input is checked before anything is written: a mistyped id, state or queue
changes nothing. Steering by id goes on past a job that is gone or in the wrong state, reports
each id, and ends non-zero when any failed."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import CommandError

from ..engine.job import CANCELABLE_STATES, PURGEABLE_STATES, RETRYABLE_STATES, JobState
from . import inputs
from .base import Output, Subcommand
from .output import plural

# operation -> (past participle, the states it applies to)
STEERING: dict[str, tuple[str, frozenset[JobState]]] = {
    "retry": ("retried", RETRYABLE_STATES),
    "cancel": ("canceled", CANCELABLE_STATES),
    "delete": ("deleted", frozenset(JobState)),
}


def steer_by_ids(operation: str, job_ids: list[str], out: Output) -> None:
    from ..conf import get_engine

    done_words = STEERING[operation][0]
    results = get_engine().apply_many(operation, job_ids)
    failed = 0
    for job_id, error in results.items():
        if error is None:
            out.line(f"{job_id}: {done_words}")
        else:
            failed += 1
            out.problem(f"{job_id}: not {done_words}: {error}")
    done = len(results) - failed
    summary = f"{done_words.capitalize()} {done} of {plural(len(results), 'job')}."
    if failed:
        raise CommandError(f"{summary} {failed} could not be {done_words} (see above).")
    out.line(summary)


def steer_queue(operation: str, queue: str, state: JobState, out: Output) -> None:
    """Every job of ``queue`` in ``state``: retried or purged by the engine's bulk scripts, or
    canceled (deleted, when running) page by page."""
    from ..conf import get_engine

    engine = get_engine()

    def what(count: int) -> str:
        return f"{plural(count, f'{state.value} job')} of queue {queue!r}"

    if operation == "retry":
        out.line(f"Retried {what(engine.retry_all(queue, state))}.")
        return
    if operation == "delete" and state in PURGEABLE_STATES:
        out.line(f"Deleted {what(engine.purge(queue, state))}.")
        return
    done, failed = page_through(engine, operation, queue, state)
    if operation == "cancel" and state is JobState.RUNNING:
        words = f"Asked {what(done)} to stop (their workers cancel them)"
    else:
        words = f"{STEERING[operation][0].capitalize()} {what(done)}"
    if failed:
        words += f"; {failed} changed state meanwhile and were left alone"
    out.line(words + ".")


def page_through(
    engine: Any, operation: str, queue: str, state: JobState, page: int = 500
) -> tuple[int, int]:
    """Apply ``operation`` to the jobs of ``queue`` in ``state``, a page at a time, at most as
    many as were there when it began (jobs arriving meanwhile are not chased). Returns how
    many were done and how many failed (they changed state in between)."""
    budget = engine.counts(queue)[state]
    done = failed = offset = 0
    # A running job asked to stop stays running (in the set) until its worker stops it.
    stays = operation == "cancel" and state is JobState.RUNNING
    while budget > 0:
        ids = engine.reads.job_ids(queue, state, offset, min(page, budget))
        if not ids:
            break
        budget -= len(ids)
        errors = engine.apply_many(operation, ids)
        refused = sum(1 for error in errors.values() if error is not None)
        done += len(ids) - refused
        failed += refused
        offset += len(ids) if stays else refused
    return done, failed


def steering_handle(operation: str) -> Any:
    def handle(options: dict[str, Any], out: Output) -> None:
        from ..conf import get_engine

        ids, queue, status = options["ids"], options["queue"], options["status"]
        if ids and (queue or status):
            raise CommandError(
                f"Give job ids or --queue with --status, not both (got "
                f"{plural(len(ids), 'id')} and {'--queue' if queue else '--status'})."
            )
        if ids:
            steer_by_ids(operation, inputs.job_ids(ids), out)
            return
        if not (queue and status):
            missing = "--status" if queue else "--queue" if status else "job ids"
            raise CommandError(
                f"Name the jobs to {operation}: give their ids, or --queue QUEUE --status STATE "
                f"for every job of a queue in a state ({missing} is missing)."
            )
        past, allowed = STEERING[operation]
        wanted = inputs.state(status, allowed, past)
        steer_queue(operation, inputs.known_queue(queue, get_engine()), wanted, out)

    return handle


def steering_arguments(operation: str) -> Any:
    allowed = STEERING[operation][1]
    states = ", ".join(s.value for s in JobState if s in allowed)

    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("ids", nargs="*", metavar="ID", help="Job ids ('<queue>:<id>').")
        parser.add_argument("--queue", default=None, help="Every job of this queue...")
        parser.add_argument("--status", default=None, help=f"...in this state ({states}).")

    return arguments


STEERING_HELP = {
    "retry": "Put failed or canceled jobs back in their queue, with a fresh budget of attempts.",
    "cancel": "Cancel waiting jobs at once; running ones are stopped by their worker.",
    "delete": "Delete jobs from Redis, in any state (their rows stay in the admin's history).",
}


def steering(operation: str) -> Subcommand:
    return Subcommand(
        name=operation,
        help=STEERING_HELP[operation],
        description=(
            f"{STEERING_HELP[operation]} Name the jobs by id, or every job of a queue in a "
            "state with --queue and --status. Each id is reported; the exit status is 1 when "
            "any could not be "
            f"{STEERING[operation][0]} (the others are {STEERING[operation][0]} all the same)."
        ),
        arguments=steering_arguments(operation),
        handle=steering_handle(operation),
    )


SUBCOMMANDS = [steering("retry"), steering("cancel"), steering("delete")]
