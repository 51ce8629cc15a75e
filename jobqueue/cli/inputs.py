"""The operator's input, checked before anything is written to Redis: queue names, job ids,
states, JSON arguments and numbers. Each refusal is a CommandError naming the bad value and
saying what to give instead."""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from typing import Any

from django.core.management.base import CommandError

from ..engine.errors import InvalidJob
from ..engine.job import QUEUE_NAME_RE, JobState, parse_state, split_job_id


def configured_queues() -> list[str]:
    """Every queue of every jobqueue backend in ``settings.TASKS``, in order (what
    ``runworker`` works on when no queue is named)."""
    from ..management.commands.runworker import configured_queues as configured

    return configured()


def known_queue(name: str, engine: Any) -> str:
    """``name`` when it is a configured queue or one Redis knows (jobs were enqueued to it);
    CommandError otherwise, listing the queues there are."""
    if not QUEUE_NAME_RE.match(name):
        raise CommandError(
            f"Queue name {name!r} is invalid: use 1 to 64 characters from A-Z, a-z, 0-9, "
            "'_', '.', '-'."
        )
    configured = configured_queues()
    if name in configured:
        return name
    in_redis = engine.queues()
    if name in in_redis:
        return name
    others = [q for q in in_redis if q not in configured]
    known = ", ".join(configured) or "none"
    extra = f"; Redis also knows {', '.join(others)}" if others else ""
    raise CommandError(
        f"Queue {name!r} is not known: it is not configured (configured queues: {known}"
        f"{extra}) and no job was ever enqueued to it. Check the name, or run "
        "'manage.py jobqueue status' to see the queues."
    )


def job_ids(values: list[str]) -> list[str]:
    """The ids, each checked to be a job id (``<queue>:<id>``), duplicates dropped; one bad
    id refuses them all, so nothing is done for a mistyped list."""
    for value in values:
        try:
            split_job_id(value)
        except InvalidJob:
            raise CommandError(
                f"{value!r} is not a job id: a job id is '<queue>:<id>', like "
                "'default:9ace5f27fc0982c5774c2af5' (see 'manage.py jobqueue status' or the "
                "admin's job list)."
            ) from None
    return list(dict.fromkeys(values))


def state(value: str, allowed: Collection[JobState] | None = None, verb: str = "") -> JobState:
    """``value`` as a job state, one of ``allowed`` for ``verb`` when given."""
    try:
        parsed = parse_state(value)
    except InvalidJob as exc:
        raise CommandError(f"--status {exc}") from None
    if allowed is not None and parsed not in allowed:
        names = ", ".join(s.value for s in JobState if s in allowed)
        raise CommandError(f"--status {parsed.value!r}: only {names} jobs can be {verb}.")
    return parsed


def json_value(option: str, text: str | None, kind: type, what: str) -> Any:
    """The JSON given to ``option``, which must decode to ``kind`` (a list or a dict)."""
    if text is None:
        return kind()
    example = '[1, "two"]' if kind is list else '{"a": 1}'
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CommandError(
            f"{option} {text[:80]!r} is not valid JSON ({exc}); give {what}, quoted for the "
            f"shell, e.g. {option} '{example}'."
        ) from None
    if not isinstance(value, kind):
        raise CommandError(f"{option} must be {what}, not {type(value).__name__} ({text[:80]!r}).")
    return value


def number(option: str, text: str, *, minimum: float, integer: bool = False) -> Any:
    """``text`` as a finite number (a whole one with ``integer``) not below ``minimum``."""
    try:
        value: Any = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise CommandError(f"{option} {text!r} is not {kind}.") from None
    if not math.isfinite(value) or value < minimum:
        raise CommandError(f"{option} {text} must be {minimum:g} or more.")
    return value
