"""The worker's side: claim jobs under a lease, renew it, report progress, complete, fail,
release, and reap the jobs of workers that died. Every call after the claim presents the fence
token; a call with a stale token is refused and changes nothing.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import codec
from .base import EngineBase, decode
from .errors import CorruptJob, LeaseLost
from .job import Job, JobState, make_job_id, pairs_to_dict, split_job_id

MAX_TRACEBACK = 64 * 1024  # characters of traceback kept per failed attempt


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


class LeaseMixin(EngineBase):
    def claim(
        self, queue: str, worker: str, count: int = 1, lease: float | None = None
    ) -> ClaimBatch:
        """Lease up to ``count`` ready jobs of ``queue`` to ``worker``."""
        qk = self.qkeys(queue)
        lease_ms = int(lease * 1000) if lease is not None else self.config.lease_ms
        reply = self.run(
            "claim",
            queue,
            [qk.meta, qk.ready, qk.scheduled, qk.leases, qk.events, qk.failed],
            [
                queue,
                self.config.events_maxlen,
                qk.job_prefix,
                worker,
                lease_ms,
                count,
                self.config.promote_batch,
                self.config.failed_ttl * 1000,
                self.config.registry_limit,
            ],
        )
        next_due = int(reply[1])
        claimed = []
        for local_raw, token, deadline, fields in reply[2:]:
            local_id = decode(local_raw)
            job: Job | None = None
            error: CorruptJob | None = None
            try:
                job = Job.from_redis(queue, local_id, pairs_to_dict(fields))
            except CorruptJob as exc:
                error = exc
            claimed.append(
                Claimed(
                    make_job_id(queue, local_id),
                    queue,
                    local_id,
                    decode(token),
                    int(deadline),
                    job,
                    error,
                )
            )
        return ClaimBatch(int(reply[0]), next_due if next_due >= 0 else None, claimed)

    def renew(
        self, queue: str, leases: Sequence[tuple[str, str]], lease: float | None = None
    ) -> Renewal:
        """Extend the leases of ``(local id, token)`` pairs of one queue."""
        qk = self.qkeys(queue)
        lease_ms = int(lease * 1000) if lease is not None else self.config.lease_ms
        args: list[Any] = [lease_ms]
        for local_id, token in leases:
            args += [local_id, token]
        reply = self.run(
            "renew", queue, [qk.meta, qk.leases, *(qk.job(lid) for lid, _ in leases)], args
        )
        statuses = [int(s) for s in reply[2:]]
        return Renewal(
            now_ms=int(reply[0]),
            deadline_ms=int(reply[1]),
            renewed={lid: s > 0 for (lid, _), s in zip(leases, statuses, strict=True)},
            cancel_requested={lid for (lid, _), s in zip(leases, statuses, strict=True) if s == 2},
        )

    def progress(
        self, job_id: str, token: str, done: float, total: float | None = None, message: str = ""
    ) -> None:
        """Record a running job's progress. Raises LeaseLost when the token is stale."""
        queue, local_id = split_job_id(job_id)
        qk = self.qkeys(queue)
        payload = codec.dumps(
            {"done": done, "total": total, "message": str(message)[:500]}, what="progress"
        )
        ok = self.run(
            "progress",
            queue,
            [qk.meta, qk.events, qk.job(local_id)],
            [queue, self.config.events_maxlen, local_id, token, payload],
        )
        if not int(ok):
            raise LeaseLost(f"Job {job_id!r} is no longer leased with token {token}.")

    def complete_many(
        self, queue: str, results: Sequence[tuple[str, str, bytes, int | None]]
    ) -> list[bool]:
        """Record success of ``(local id, token, result JSON, result ttl)`` jobs of one queue."""
        qk = self.qkeys(queue)
        keys = [qk.meta, qk.leases, qk.succeeded, qk.events, qk.uniques]
        args: list[Any] = [
            queue,
            self.config.events_maxlen,
            self.config.result_ttl * 1000,
            self.config.registry_limit,
        ]
        for local_id, token, result, ttl in results:
            keys += [qk.job(local_id), qk.done(local_id)]
            args += [local_id, token, result, "" if ttl is None else int(ttl) * 1000]
        reply = self.run("complete", queue, keys, args)
        return [bool(int(s)) for s in reply]

    def complete(
        self, job_id: str, token: str, result: Any = None, result_ttl: int | None = None
    ) -> None:
        """Record one job's success. Raises LeaseLost when the token is stale."""
        queue, local_id = split_job_id(job_id)
        encoded = codec.dumps(result, what="return value")
        if not self.complete_many(queue, [(local_id, token, encoded, result_ttl)])[0]:
            raise LeaseLost(
                f"Job {job_id!r} is no longer leased with token {token}; "
                "its result was not recorded."
            )

    def retry_delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: half fixed, half random, capped."""
        delay = min(self.config.backoff_max, self.config.backoff_base * 2 ** max(attempt - 1, 0))
        return delay / 2 + random.uniform(0, delay / 2)

    def fail(
        self,
        job_id: str,
        token: str,
        exception_class: str,
        traceback: str,
        *,
        attempt: int = 0,
        retry: bool = True,
        delay: float | None = None,
        reason: str = "",
    ) -> JobState:
        """Record a failed attempt; returns the job's new state (scheduled for a retry,
        failed, or canceled). Raises LeaseLost when the token is stale."""
        queue, local_id = split_job_id(job_id)
        qk = self.qkeys(queue)
        if len(traceback) > MAX_TRACEBACK:
            traceback = traceback[:1000] + "\n[...]\n" + traceback[-(MAX_TRACEBACK - 1000) :]
        error = codec.dumps(
            {"c": str(exception_class)[:300], "tb": traceback, "n": attempt}, what="error"
        )
        delay_ms = -1
        if retry:
            delay_ms = int(1000 * (self.retry_delay(attempt) if delay is None else delay))
        reply = self.run(
            "fail",
            queue,
            [
                qk.meta,
                qk.leases,
                qk.scheduled,
                qk.failed,
                qk.canceled,
                qk.events,
                qk.uniques,
                qk.job(local_id),
                qk.done(local_id),
            ],
            [
                queue,
                self.config.events_maxlen,
                self.config.failed_ttl * 1000,
                self.config.registry_limit,
                local_id,
                token,
                error,
                delay_ms,
                reason[:1000],
            ],
        )
        state = decode(reply)
        if not state:
            raise LeaseLost(
                f"Job {job_id!r} is no longer leased with token {token}; "
                "its failure was not recorded."
            )
        return JobState(state)

    def release(self, job_id: str, token: str) -> JobState:
        """Give a running job back to the queue, attempt not counted (graceful shutdown).
        Returns QUEUED, or CANCELED when its cancel was requested."""
        queue, local_id = split_job_id(job_id)
        qk = self.qkeys(queue)
        state = decode(
            self.run(
                "release",
                queue,
                [
                    qk.meta,
                    qk.leases,
                    qk.ready,
                    qk.events,
                    qk.wake,
                    qk.job(local_id),
                    qk.canceled,
                    qk.uniques,
                    qk.done(local_id),
                ],
                [
                    queue,
                    self.config.events_maxlen,
                    local_id,
                    token,
                    self.config.failed_ttl * 1000,
                    self.config.registry_limit,
                ],
            )
        )
        if not state:
            raise LeaseLost(f"Job {job_id!r} is no longer leased with token {token}.")
        return JobState(state)

    def reap(self, queue: str, batch: int = 100) -> tuple[list[str], list[str]]:
        """Reclaim jobs of ``queue`` whose lease expired: returns (requeued ids, ended ids)."""
        qk = self.qkeys(queue)
        requeued, ended = self.run(
            "reap",
            queue,
            [qk.meta, qk.leases, qk.ready, qk.failed, qk.events, qk.uniques, qk.wake, qk.canceled],
            [
                queue,
                self.config.events_maxlen,
                qk.job_prefix,
                qk.done_prefix,
                self.config.max_stalls,
                batch,
                self.config.failed_ttl * 1000,
                self.config.registry_limit,
            ],
        )
        return (
            [make_job_id(queue, decode(x)) for x in requeued],
            [make_job_id(queue, decode(x)) for x in ended],
        )
