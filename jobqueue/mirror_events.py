"""Event stream entries, as the mirror reads them: each becomes an :class:`Event` (the job, its
new state and version, the time, and the job-hash fields it changed, verbatim)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Event:
    entry_id: str
    queue: str
    local_id: str
    state: str
    version: int
    at_ms: int
    changes: dict[str, str]
    job_id: str = field(init=False)  # "<queue>:<local id>", made once

    def __post_init__(self) -> None:
        self.job_id = f"{self.queue}:{self.local_id}"


def parse_event(
    queue: str, entry_id: Any, fields: list | dict, text: bool = False
) -> Event | None:
    """An event from a stream entry: its fields as Redis sends them (a flat name, value
    list) or as a dict. ``text`` says every name and value is already a str (a reply read
    with an encoding), so they need no check. None for an entry that is not one of ours."""
    try:
        if isinstance(fields, dict):
            changes: dict = dict(fields)
        else:  # an odd last name (not ours) is dropped; the checks below refuse the entry
            pairs = iter(fields)
            changes = dict(zip(pairs, pairs, strict=False))
        if not text and not all(type(k) is str and type(v) is str for k, v in changes.items()):
            changes = {_text(k): _text(v) for k, v in changes.items()}  # as Redis sent them
        queue = changes.pop("q", None) or queue
        local_id, state = changes.pop("id"), changes.pop("s")
        version, at_ms = int(changes.pop("v")), int(changes.pop("t"))
        return Event(_text(entry_id), queue, local_id, state, version, at_ms, changes)
    except (KeyError, ValueError, AttributeError, TypeError):
        return None  # not one of ours: skipped (and acknowledged)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, str):
        return value
    raise TypeError(f"not a string: {value!r}")
