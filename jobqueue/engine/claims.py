"""The worker protocol's value objects: what a claim gives a worker (:class:`Claimed` jobs
under a lease) and what the worker reports back (:class:`Success`, :class:`Failure`)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CorruptJob
from .job import Job, JobState


@dataclass(frozen=True, slots=True)
class Claimed:
    """One leased job. ``job`` is None when its data in Redis was malformed (``error`` says
    why); the worker must then fail it with that error instead of running anything."""

    job_id: str
    queue: str
    local_id: str
    token: str
    deadline_ms: int
    job: Job | None
    error: CorruptJob | None = None
    fields: dict[str, str] | None = None  # the job hash as text, to hand to another process

    @property
    def timeout(self) -> float | None:
        """The job's timeout, read from its fields (no full parse needed)."""
        try:
            text = (self.fields or {}).get("timeout")
            return float(text) if text else None
        except ValueError:
            return None

    @property
    def attempts(self) -> int:
        try:
            return int((self.fields or {}).get("att") or 0)
        except ValueError:
            return 0


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    now_ms: int  # the Redis clock when the claim ran
    next_due_ms: int | None  # earliest scheduled job of the queue, if any
    jobs: list[Claimed]


@dataclass(frozen=True, slots=True)
class Renewal:
    now_ms: int
    deadline_ms: int
    renewed: dict[str, bool]  # local id -> still ours
    cancel_requested: set[str]  # local ids whose cancel was requested


@dataclass(frozen=True, slots=True)
class Success:
    job_id: str
    token: str
    result: bytes | str  # the return value, already JSON
    result_ttl: int | None = None  # None: the job's own, else the configured default

    @property
    def queue(self) -> str:
        return self.job_id.partition(":")[0]

    @property
    def local_id(self) -> str:
        return self.job_id.partition(":")[2]


@dataclass(frozen=True, slots=True)
class Failure:
    job_id: str
    token: str
    exception_class: str
    traceback: str
    attempt: int = 0
    retry: bool = True  # False: this error must not be retried (unknown task, corrupt data)
    delay: float | None = None  # None: exponential backoff with jitter
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Finished:
    completed: dict[str, bool]  # job id -> recorded (False: the lease was lost)
    failed: dict[str, JobState | None]  # job id -> new state (None: the lease was lost)
