"""What a live page knows of a job: a small dict of the columns it shows, from a whole job (a
snapshot) or merged from the events since (a delta). Times are milliseconds on the Redis
clock; the page writes them in words. Versions order everything: a page never applies an older
state over a newer one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..engine import codec
from ..engine.events import Event
from ..engine.job import Job, datetime_to_ms

# Job-hash field -> the key a page knows it by, and how its text reads ('' clears).
SHOWN: dict[str, tuple[str, Any]] = {
    "task": ("task", str),
    "att": ("attempts", lambda t: int(t) if t else 0),
    "att0": ("attempts_before", lambda t: int(t) if t else 0),
    "max": ("max_attempts", lambda t: int(t) if t else 1),
    "enq": ("enqueued_at", lambda t: int(t) if t else None),
    "started": ("started_at", lambda t: int(t) if t else None),
    "ended": ("finished_at", lambda t: int(t) if t else None),
    "run_at": ("scheduled_for", lambda t: int(t) if t else None),
    "workers": ("workers", lambda t: t.split()),
    "cancel": ("cancel_requested", lambda t: t == "1"),
    "reason": ("reason", str),
}
TIMELINE_CAP = 50  # transitions a delta carries at most (a page reloads when it has lost some)


# The fields a timeline row shows, and the times among them (in milliseconds).
TIMELINE_FIELDS = ("att", "worker", "run_at", "started", "ended", "reason", "cancel", "lease")
TIMES = frozenset({"enq", "run_at", "started", "ended", "last", "lease"})


def shown(changes: dict[str, str]) -> dict[str, str]:
    """What a timeline row says of a transition's changes: a few fields, short."""
    return {name: changes[name][:200] for name in TIMELINE_FIELDS if changes.get(name)}


def _progress(text: str) -> dict[str, Any] | None:
    try:
        value = codec.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def job_state(job: Job) -> dict[str, Any]:
    """A whole job as a page knows it."""

    def ms(value: Any) -> int | None:
        return None if value is None else datetime_to_ms(value)

    return {
        "id": job.id,
        "v": job.version,
        "status": job.state.value,
        "queue": job.queue,
        "task": job.task,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "attempts_before": job.attempts_before_retry,
        "enqueued_at": ms(job.enqueued_at),
        "started_at": ms(job.started_at),
        "finished_at": ms(job.finished_at),
        "scheduled_for": ms(job.run_at),
        "workers": list(job.worker_ids),
        "progress": job.progress,
        "cancel_requested": job.cancel_requested,
        "reason": job.reason or "",
    }


@dataclass
class Delta:
    """What the events of one job since the last flush changed, merged in version order."""

    id: str
    queue: str
    v: int = 0
    status: str = ""
    first_v: int = 0  # the version of the first event merged (1: the job is new)
    changes: dict[str, Any] = field(default_factory=dict)
    # (v, state, at ms, the changed fields): shown() only if a job page asks for it
    timeline: list[tuple[int, str, int, dict[str, str]]] = field(default_factory=list)
    finished: bool = False

    def merge(self, event: Event) -> None:
        if event.version <= self.v:
            return  # replayed or out of order: never an older state over a newer one
        if not self.first_v:
            self.first_v = event.version
        self.v, self.status = event.version, event.state
        for name, text in event.changes.items():
            if name == "progress":
                self.changes["progress"] = _progress(text)
            elif name in SHOWN:
                key, read = SHOWN[name]
                try:
                    self.changes[key] = read(text)
                except ValueError:
                    continue
        if len(self.timeline) < TIMELINE_CAP and set(event.changes) != {"progress"}:
            # A transition; a progress tick moves the bar, it is not a step of the timeline.
            self.timeline.append((event.version, event.state, event.at_ms, event.changes))
        self.finished = event.state in ("succeeded", "failed", "canceled", "deleted")

    def as_message(self, timeline: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "v": self.v, "status": self.status, **self.changes}
        if timeline:
            out["timeline"] = [
                {"v": v, "status": s, "at": at, "changes": shown(c)}
                for v, s, at, c in self.timeline
            ]
        return out
