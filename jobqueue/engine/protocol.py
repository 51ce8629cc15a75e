"""The worker's protocol with Redis: claim jobs under a lease, renew it, report progress,
complete, fail, release or abandon, and reap the jobs of workers that died. Every call after the
claim presents the fence token; a call with a stale token is refused and changes nothing.

Only a worker holds a :class:`WorkerProtocol` (``Engine.worker_protocol()``); nothing here is
part of the API a site uses to enqueue and steer jobs.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from typing import Any

from . import codec
from .claims import ClaimBatch, Claimed, Failure, Finished, Renewal, Success
from .codec import text
from .config import EngineConfig
from .errors import CorruptJob, LeaseLost
from .handoff import Handoff
from .job import Job, JobState, make_job_id, pairs_to_dict, split_job_id
from .runner import Call, Part, ScriptRunner

TRACEBACK_HEAD = 1000  # bytes of a clipped traceback kept from its beginning (the rest: its end)


class WorkerProtocol(Part):
    """What a worker says to Redis about the jobs it runs, each a script call: built as a
    :data:`Call` (to share a round trip with others, ``ScriptRunner.run_batch``) or run
    alone. ``handoff`` is the part about idle children (:mod:`.handoff`)."""

    def __init__(self, runner: ScriptRunner, config: EngineConfig) -> None:
        super().__init__(runner, config)
        self.handoff = Handoff(runner)

    def run_batch(self, calls: list[Call], raise_errors: bool = True) -> list[Any]:
        """Several calls in one round trip (:meth:`ScriptRunner.run_batch`)."""
        return self.runner.run_batch(calls, raise_errors=raise_errors)

    def claim(
        self,
        queue: str,
        worker: str,
        count: int = 1,
        lease: float | None = None,
        parse: bool = True,
    ) -> ClaimBatch:
        """Lease up to ``count`` ready jobs of ``queue`` to ``worker``. With ``parse=False``
        the jobs are left as text (``Claimed.fields``) for the process that runs them."""
        return self.read_claim(
            queue, self.runner.run(*self.claim_call(queue, worker, count, lease)), parse
        )

    def claim_call(self, queue: str, worker: str, count: int, lease: float | None = None) -> Call:
        """A claim, with a request id of its own: sent again (its reply was lost), the same
        call returns the jobs it leased the first time, and leases no more."""
        qk = self.keys.queue(queue)
        lease_ms = int(lease * 1000) if lease is not None else self.config.lease_ms
        request = os.urandom(8).hex()
        keys = [qk.meta, qk.ready, qk.scheduled, qk.leases, qk.events, qk.failed]
        keys.append(qk.claim_request(request))
        args = [queue, self.config.events_maxlen, qk.job_prefix, worker, lease_ms, count]
        args += [self.config.promote_batch, self.config.failed_ttl_ms]
        return ("claim", queue, keys, [*args, self.config.registry_limit, request])

    def read_claim(self, queue: str, reply: Any, parse: bool = True) -> ClaimBatch:
        next_due = int(reply[1])
        claimed = []
        for local_raw, token, deadline, fields in reply[2:]:
            local_id = text(local_raw)
            job: Job | None = None
            error: CorruptJob | None = None
            as_text: dict[str, str] | None = None
            try:
                as_text = pairs_to_dict(map(bytes.decode, fields))
                job = Job.from_fields(queue, local_id, as_text) if parse else None
            except UnicodeDecodeError as exc:
                error = CorruptJob(f"Job {queue}:{local_id} holds bytes that are not text: {exc}.")
            except CorruptJob as exc:
                error = exc
            job_id = make_job_id(queue, local_id)
            claimed.append(
                Claimed(job_id, queue, local_id, text(token), int(deadline), job, error, as_text)
            )
        return ClaimBatch(int(reply[0]), next_due if next_due >= 0 else None, claimed)

    def renew(
        self, queue: str, leases: Sequence[tuple[str, str]], lease: float | None = None
    ) -> Renewal:
        """Extend the leases of ``(local id, token)`` pairs of one queue."""
        qk = self.keys.queue(queue)
        lease_ms = int(lease * 1000) if lease is not None else self.config.lease_ms
        args: list[Any] = [lease_ms]
        for local_id, token in leases:
            args += [local_id, token]
        reply = self.runner.run(
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
        qk = self.keys.queue(queue)
        payload = codec.dumps(
            {"done": done, "total": total, "message": str(message)[:500]}, what="progress"
        )
        ok = self.runner.run(
            "progress",
            queue,
            [qk.meta, qk.events, qk.job(local_id)],
            [queue, self.config.events_maxlen, local_id, token, payload],
        )
        if not int(ok):
            raise LeaseLost(f"Job {job_id!r} is no longer leased with token {token}.")

    # -- finishing: each builder returns one (script, queue, keys, args) call --------------

    def complete_call(self, queue: str, results: Sequence[Success]) -> Call:
        qk = self.keys.queue(queue)
        keys = [qk.meta, qk.leases, qk.succeeded, qk.events, qk.uniques]
        args: list[Any] = [
            queue,
            self.config.events_maxlen,
            self.config.result_ttl * 1000,
            self.config.registry_limit,
        ]
        for item in results:
            keys += [qk.job(item.local_id), qk.done(item.local_id)]
            ttl = "" if item.result_ttl is None else int(item.result_ttl) * 1000
            args += [item.local_id, item.token, item.result, ttl]
        return ("complete", queue, keys, args)

    def fail_call(self, failure: Failure) -> Call:
        queue, local_id = split_job_id(failure.job_id)
        qk = self.keys.queue(queue)
        traceback = codec.clip(failure.traceback, self.config.traceback_bytes, TRACEBACK_HEAD)
        error = codec.dumps(
            {"c": str(failure.exception_class)[:300], "tb": traceback, "n": failure.attempt},
            what="error",
        )
        delay_ms = -1
        if failure.retry:
            delay = self.retry_delay(failure.attempt) if failure.delay is None else failure.delay
            delay_ms = int(1000 * delay)
        keys = [qk.meta, qk.leases, qk.scheduled, qk.failed, qk.canceled, qk.events]
        keys += [qk.uniques, qk.job(local_id), qk.done(local_id)]
        args = [queue, self.config.events_maxlen, self.config.failed_ttl_ms]
        args += [self.config.registry_limit, local_id, failure.token, error, delay_ms]
        args += [failure.reason[:1000], self.config.errors_kept, self.config.errors_kept_bytes]
        return ("fail", queue, keys, args)

    def release_call(self, job_id: str, token: str) -> Call:
        queue, local_id = split_job_id(job_id)
        qk = self.keys.queue(queue)
        keys = [qk.meta, qk.leases, qk.ready, qk.events, qk.wake, qk.job(local_id)]
        keys += [qk.canceled, qk.uniques, qk.done(local_id)]
        args = [queue, self.config.events_maxlen, local_id, token, self.config.failed_ttl_ms]
        return ("release", queue, keys, [*args, self.config.registry_limit, self.config.wake_cap])

    def abandon_call(self, job_id: str, token: str, why: str) -> Call:
        queue, local_id = split_job_id(job_id)
        qk = self.keys.queue(queue)
        keys = [qk.meta, qk.leases, qk.ready, qk.failed, qk.canceled, qk.events, qk.uniques]
        keys += [qk.wake, qk.job(local_id), qk.done(local_id)]
        args = [queue, self.config.events_maxlen, local_id, token, self.config.max_stalls]
        args += [self.config.failed_ttl_ms, self.config.registry_limit, why, self.config.wake_cap]
        return ("abandon", queue, keys, args)

    def finish_many(self, successes: Sequence[Success], failures: Sequence[Failure]) -> Finished:
        """Record many successes and failures in one round trip (the worker's batched ack).
        Stale tokens are refused one by one, never for the whole batch."""
        calls, read = self.finish_calls(successes, failures)
        return read(self.runner.run_batch(calls) if calls else [])

    def finish_calls(
        self, successes: Sequence[Success], failures: Sequence[Failure]
    ) -> tuple[list[Call], Callable[[list[Any]], Finished]]:
        """The calls recording these outcomes, and how to read their replies (so a caller can
        send them in the same round trip as other calls)."""
        by_queue: dict[str, list[Success]] = {}
        for item in successes:
            by_queue.setdefault(item.queue, []).append(item)
        calls = [self.complete_call(q, items) for q, items in by_queue.items()]
        calls += [self.fail_call(f) for f in failures]

        def read(replies: list[Any]) -> Finished:
            done: dict[str, bool] = {}
            for items, reply in zip(by_queue.values(), replies, strict=False):
                for item, status in zip(items, reply, strict=True):
                    done[item.job_id] = bool(int(status))
            states = {}
            for failure, reply in zip(failures, replies[len(by_queue) :], strict=True):
                state = text(reply)
                states[failure.job_id] = JobState(state) if state else None
            return Finished(done, states)

        return calls, read

    def complete_many(
        self, queue: str, results: Sequence[tuple[str, str, bytes, int | None]]
    ) -> list[bool]:
        """Record success of ``(local id, token, result JSON, result ttl)`` jobs of one queue."""
        items = [
            Success(make_job_id(queue, lid), token, result, ttl)
            for lid, token, result, ttl in results
        ]
        reply = self.runner.run(*self.complete_call(queue, items))
        return [bool(int(s)) for s in reply]

    def complete(
        self, job_id: str, token: str, result: Any = None, result_ttl: int | None = None
    ) -> None:
        """Record one job's success. Raises LeaseLost when the token is stale."""
        item = Success(job_id, token, codec.dumps(result, what="return value"), result_ttl)
        if not int(self.runner.run(*self.complete_call(item.queue, [item]))[0]):
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
        failure = Failure(job_id, token, exception_class, traceback, attempt, retry, delay, reason)
        state = text(self.runner.run(*self.fail_call(failure)))
        if not state:
            raise LeaseLost(
                f"Job {job_id!r} is no longer leased with token {token}; "
                "its failure was not recorded."
            )
        return JobState(state)

    def release(self, job_id: str, token: str) -> JobState:
        """Give a running job back to the queue, attempt not counted (graceful shutdown).
        Returns QUEUED, or CANCELED when its cancel was requested."""
        state = text(self.runner.run(*self.release_call(job_id, token)))
        if not state:
            raise LeaseLost(f"Job {job_id!r} is no longer leased with token {token}.")
        return JobState(state)

    def abandon(self, job_id: str, token: str, why: str = "its process died") -> JobState:
        """The process running the job died: count a stall now (requeue, or dead-letter at
        the stall limit) instead of waiting for the lease to expire."""
        state = text(self.runner.run(*self.abandon_call(job_id, token, why)))
        if not state:
            raise LeaseLost(f"Job {job_id!r} is no longer leased with token {token}.")
        return JobState(state)

    def reap(self, queue: str, batch: int = 100) -> tuple[list[str], list[str]]:
        """Reclaim jobs of ``queue`` whose lease expired: returns (requeued ids, ended ids)."""
        qk = self.keys.queue(queue)
        requeued, ended = self.runner.run(
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
                self.config.failed_ttl_ms,
                self.config.registry_limit,
                self.config.wake_cap,
            ],
        )
        return (
            [make_job_id(queue, text(x)) for x in requeued],
            [make_job_id(queue, text(x)) for x in ended],
        )
