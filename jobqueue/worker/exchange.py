"""The worker parent's round trip to Redis: one pipeline that records the outcomes gathered,
gives back or abandons jobs, drops the idle registrations it no longer wants, and claims as
many jobs as the children have room for; then the jobs are shared among the children.

Outcomes wait up to FLUSH_DELAY for company (``outcomes.py``), and claims wait until half the
children's room is free, so each round trip carries many jobs.

A claim whose reply never came (Redis unreachable: the call may have run) is sent again, the
same call with the same request id, before any new claim: Redis answers with the jobs it
leased the first time (``claim.lua``), so none stays leased to this worker unknown to it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ..engine.claims import ClaimBatch
from ..engine.errors import ConnectionFailed, JobqueueError
from ..engine.protocol import WorkerProtocol
from ..engine.runner import Call
from .handoff import Handoff, WorkerStats
from .outcomes import OutcomeBuffer
from .pool import InFlight, Pool
from .prefetch import PrefetchPolicy
from .readiness import Readiness

logger = logging.getLogger("jobqueue.worker")


@dataclass(eq=False)
class Exchange:
    protocol: WorkerProtocol
    worker: str  # the worker's name
    queues: tuple[str, ...]  # in order of precedence
    max_jobs: int | None  # --max-jobs
    pool: Pool
    prefetch: PrefetchPolicy
    outcomes: OutcomeBuffer
    handoff: Handoff
    readiness: Readiness
    stats: WorkerStats
    unanswered: list[Call] = field(default_factory=list)  # claims whose reply was lost

    def capacity(self, stopping: bool) -> int:
        """Jobs the children can take now (none while stopping, none past --max-jobs)."""
        if stopping:
            return 0
        free = self.pool.room(self.prefetch.limit())
        if self.max_jobs is not None:
            free = min(free, self.max_jobs - self.stats.claimed)
        return max(free, 0)

    def wanted(self, stopping: bool) -> int:
        """How many jobs to claim now (0: not now)."""
        free = self.capacity(stopping)
        if free <= 0 or not self.readiness.claimable(time.monotonic()):
            return 0
        room = self.prefetch.limit() * len(self.pool.children)
        if self.pool.in_flight() and free < room / 2:
            return 0  # wait for more room: claims of one job at a time cost a round trip each
        return free

    def run(self, stopping: bool, force: bool = False) -> None:
        """One round trip, if there is anything to say (``force``: even to only drop the
        registrations, when stopping)."""
        if self.unanswered and not self._claim_again():
            return
        want = self.wanted(stopping)
        # Each registration may still bring a job: a claim leaves room for them, or, when
        # they would take all the room, drops them first. Stopping drops them all; otherwise
        # only those of children that got other work are dropped.
        registered = len(self.handoff.live)
        keep: list[int] | None = self.pool.idle()
        if force or stopping:
            keep = None
        elif want and want <= registered:
            # Drop them all first, and claim in the next round trip, once the replies tell
            # which registrations an enqueue took (their children hold a job not announced).
            keep, want = None, 0
        elif want:
            want -= registered
        dropping, drop_calls = self.handoff.drop_calls(keep)
        now = time.monotonic()
        due = self.outcomes.due(now, bool(self.pool.in_flight()), stopping)
        if not (want or force or dropping or due):
            return
        calls, read = self.outcomes.calls(self.protocol)
        # The calls recording successes and failures come first, then releases and abandons.
        finishing = len(calls) - len(self.outcomes.releases) - len(self.outcomes.abandons)
        outcomes = len(calls)
        calls += drop_calls
        if want:
            calls.append(self.protocol.claim_call(self.queues[0], self.worker, want))
        if not calls:
            return
        started = time.monotonic()
        try:
            replies = self.protocol.run_batch(calls, raise_errors=False)
        except ConnectionFailed as exc:
            logger.warning("redis_unreachable pending=%d error=%s", outcomes, exc)
            self.readiness.back_off(time.monotonic())  # outcomes are kept and sent again
            self.handoff.forget(dropping)  # perhaps not dropped: they lapse, jobs are reaped
            if want:
                self.unanswered.append(calls[-1])  # it may have leased jobs: asked again
            return
        if outcomes:
            recorded = self.outcomes.recorded(
                read, replies[:finishing], replies[finishing:outcomes]
            )
            self.stats.succeeded += recorded.succeeded
            self.stats.failed += recorded.failed
        if drop_calls:
            self.handoff.read(dropping, replies[outcomes : outcomes + len(drop_calls)])
        if want:
            self._claimed(want, replies[-1], started)
        if outcomes and recorded.requeued:
            # A retry scheduled or a job given back: claim again, even if the claim sent
            # with the outcomes found nothing. It may not have seen them: an outcome whose
            # script Redis did not know yet (NOSCRIPT) runs again after the whole round trip.
            self.readiness.wake()

    def _claimed(self, want: int, reply: Any, started: float) -> None:
        got = self._take_reply(self.queues[0], reply, started)
        for other in self.queues[1:]:  # the next queues, in order of precedence
            if got >= want:
                return
            started = time.monotonic()
            call = self.protocol.claim_call(other, self.worker, want - got)
            try:
                [reply] = self.protocol.run_batch([call], raise_errors=False)
            except ConnectionFailed as exc:
                logger.warning("claim_failed queue=%s error=%s", other, exc)
                self.readiness.back_off(time.monotonic())
                self.unanswered.append(call)
                return
            except JobqueueError as exc:
                logger.error("claim_failed queue=%s error=%s", other, exc)
                continue
            got += self._take_reply(other, reply, started)
        if got < want:
            self.readiness.ran_dry()  # every queue ran dry: wait to be woken

    def _claim_again(self) -> bool:
        """Send the claims whose reply was lost again, as they were; take what they leased.
        False while Redis is still unreachable (try again later)."""
        started = time.monotonic()
        try:
            replies = self.protocol.run_batch(self.unanswered, raise_errors=False)
        except ConnectionFailed as exc:
            logger.warning("claim_failed again=%d error=%s", len(self.unanswered), exc)
            self.readiness.back_off(time.monotonic())
            return False
        for (_, queue, _, _), reply in zip(self.unanswered, replies, strict=True):
            self._take_reply(queue, reply, started)
        self.unanswered = []
        self.readiness.wake()
        return True

    def _take_reply(self, queue: str, reply: Any, started: float) -> int:
        """Hand the jobs of a claim's reply to the children; an error reply (data loss,
        reported loudly by the engine, or bad data) is logged and brings none."""
        if isinstance(reply, Exception):
            logger.error("claim_failed queue=%s error=%s", queue, reply)
            return 0
        return self._take(self.protocol.read_claim(queue, reply, parse=False), started)

    def _take(self, batch: ClaimBatch, started: float) -> int:
        """Hand a claim's jobs to the children; their leases count from ``started``."""
        if batch.next_due_ms is not None:
            self.readiness.due(started + (batch.next_due_ms - batch.now_ms) / 1000)
        jobs = [
            InFlight(c, c.timeout, started + (c.deadline_ms - batch.now_ms) / 1000)
            for c in batch.jobs
        ]
        self.stats.claimed += len(jobs)
        self.pool.assign(jobs)
        return len(jobs)
