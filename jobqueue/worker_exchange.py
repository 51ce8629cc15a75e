"""The worker parent's exchange with Redis: one round trip that records the outcomes gathered,
gives back or abandons jobs, drops the idle registrations it no longer wants, and claims as
many jobs as the children have room for; then the jobs are shared among the children. Also
the idle children's registrations, and the jobs an enqueue handed straight to a child
(``jobqueue/engine/handoff.py``)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from .engine import ConnectionFailed, CorruptJob, Engine, JobqueueError, JobState
from .engine.lease import Failure, Success
from .worker_pool import Child, InFlight, Pool
from .worker_wake import IdleRegistration

logger = logging.getLogger("jobqueue.worker")
FLUSH_DELAY = 0.004  # seconds an outcome may wait for others to share its round trip
AWAIT_TOOK = 10.0  # seconds a child whose registration was taken counts as busy, unheard from
PREFETCH_WINDOW = 0.04  # seconds of work a child holds, judged by the recent jobs' run times
PREFETCH_START = 8  # jobs a child may hold before any run time is known (at most --prefetch)
RUN_TIME_WEIGHT = 0.2  # weight of each finished job in the running average of run times


class Exchange:
    """Mixed into :class:`jobqueue.worker.Worker`, which provides these attributes."""

    engine: Engine
    pool: Pool
    options: Any
    idle: IdleRegistration
    successes: list[Success]
    failures: list[Failure]
    releases: list[InFlight]
    abandons: list[tuple[InFlight, str]]
    claimed_total: int
    succeeded: int
    failed: int
    maybe_ready: bool
    next_claim: float
    next_due: float | None
    signals: int
    pending_since: float | None
    awaiting: dict[int, float]  # child -> until when it counts as holding an unannounced job
    run_time: float | None  # running average of the jobs' run times, seconds

    if TYPE_CHECKING:

        def _in_flight(self) -> list[InFlight]: ...  # from Upkeep

    def _held(self, child: Child) -> int:
        """Jobs the child holds, counting one it popped from its inbox and not announced."""
        until = self.awaiting.get(child.index)
        if until is not None and until < time.monotonic():
            del self.awaiting[child.index]  # no job came (the registration had lapsed)
            until = None
        return len(child.jobs) + (until is not None)

    def _limit(self) -> int:
        """Jobs each child may hold now (the running one and those behind it): about
        PREFETCH_WINDOW of work by the recent jobs' run times, at least 1, at most --prefetch.
        Short jobs come in large batches, and a long one never has others waiting behind it
        that an idle worker could run."""
        prefetch = self.options.prefetch
        if self.run_time is None:
            return min(prefetch, PREFETCH_START)
        return max(1, min(prefetch, int(PREFETCH_WINDOW / max(self.run_time, 1e-6))))

    def _ran(self, seconds: float) -> None:
        """A job ran this long: update the running average that sets the limit."""
        if self.run_time is None:
            self.run_time = seconds
        else:
            self.run_time += RUN_TIME_WEIGHT * (seconds - self.run_time)

    def _capacity(self) -> int:
        if self.signals:
            return 0
        limit = self._limit()
        free = sum(max(limit - self._held(c), 0) for c in self.pool.children.values())
        if self.options.max_jobs is not None:
            free = min(free, self.options.max_jobs - self.claimed_total)
        return max(free, 0)

    def _exchange(self, force: bool = False) -> None:
        """One round trip to Redis: record the outcomes gathered, give back or abandon jobs,
        and claim as many jobs as the children can take (from the first queue; the next ones
        are asked in turn when it runs dry). Outcomes wait up to FLUSH_DELAY for company, and
        claims wait until half the children's room is free, so each trip carries many jobs."""
        want = self._claim_wanted()
        # Each registration may still bring a job: a claim leaves room for them, or, when
        # they would take all the room, drops them first. Stopping drops them all; otherwise
        # only those of children that got other work are dropped.
        registered = len(self.idle.live)
        keep: list[int] | None = self._idle_children()
        if force or self.signals:
            keep = None
        elif want and want <= registered:
            # Drop them all first, and claim in the next round trip, once the replies tell
            # which registrations an enqueue took (their children hold a job not announced).
            keep, want = None, 0
        elif want:
            want -= registered
        dropping, drop_calls = self.idle.unregister_calls(keep)
        if not (want or force or dropping or self._outcomes_due()):
            return
        successes, failures = self.successes, self.failures
        releases, abandons = self.releases, self.abandons
        calls, read = self.engine.finish_calls(successes, failures)
        finishing = len(calls)
        calls += [self.engine.release_call(j.job_id, j.claimed.token) for j in releases]
        calls += [self.engine.abandon_call(j.job_id, j.claimed.token, why) for j, why in abandons]
        outcomes = len(calls)
        calls += drop_calls
        unregistering = len(drop_calls)
        queue = self.options.queues[0]
        if want:
            calls.append(self.engine.claim_call(queue, self.options.name, want))
        if not calls:
            return
        started = time.monotonic()
        try:
            replies = self.engine.run_batch(calls, raise_errors=False)
        except ConnectionFailed as exc:
            logger.warning("redis_unreachable pending=%d error=%s", outcomes, exc)
            self.next_claim = time.monotonic() + 1.0  # outcomes are kept and sent again
            self.idle.forget(dropping)  # perhaps not dropped: they lapse, their jobs are reaped
            return
        if outcomes:
            self._recorded(read, replies[:finishing], replies[finishing:outcomes])
        if unregistering:
            handed, taken = self.idle.read(dropping, replies[outcomes : outcomes + unregistering])
            self._await_took(taken)
            self._take_handoffs(handed)
        if want:
            self._claimed(queue, want, replies[-1], started)

    def _claim_wanted(self) -> int:
        """How many jobs to claim now (0: not now)."""
        free = self._capacity()
        now = time.monotonic()
        if self.next_due is not None and now >= self.next_due:
            self.maybe_ready, self.next_due = True, None
        if free <= 0 or not self.maybe_ready or now < self.next_claim:
            return 0
        room = self._limit() * len(self.pool.children)
        if self._in_flight() and free < room / 2:
            return 0  # wait for more room: claims of one job at a time cost a round trip each
        return free

    def _outcomes_due(self) -> bool:
        if self.releases or self.abandons:
            return True
        if not (self.successes or self.failures):
            self.pending_since = None
            return False
        now = time.monotonic()
        if self.pending_since is None:
            self.pending_since = now
        return (
            now - self.pending_since >= FLUSH_DELAY or not self._in_flight() or bool(self.signals)
        )

    def _recorded(self, read: Any, finish_replies: list, other_replies: list) -> None:
        errors = [r for r in [*finish_replies, *other_replies] if isinstance(r, Exception)]
        for error in errors:
            logger.error("ack_failed error=%s", error)
        if not errors:
            finished = read(finish_replies)
            for job_id, recorded in finished.completed.items():
                self.succeeded += recorded
                if not recorded:
                    logger.warning("stale_result_discarded job=%s", job_id)
            for job_id, state in finished.failed.items():
                self.failed += state is not None
                if state is None:
                    logger.warning("stale_failure_discarded job=%s", job_id)
            if other_replies or any(s is JobState.SCHEDULED for s in finished.failed.values()):
                self.maybe_ready = True  # a retry or a job given back: claim again
        self.successes, self.failures, self.releases, self.abandons = [], [], [], []
        self.pending_since = None

    def _claimed(self, queue: str, want: int, reply: Any, started: float) -> None:
        if isinstance(reply, Exception):  # data loss (reported loudly by the engine), bad data
            logger.error("claim_failed queue=%s error=%s", queue, reply)
            got = 0
        else:
            got = self._take(queue, self.engine.read_claim(queue, reply, parse=False), started)
        for other in self.options.queues[1:]:  # the next queues, in order of precedence
            if got >= want:
                return
            started = time.monotonic()
            try:
                batch = self.engine.claim(other, self.options.name, count=want - got, parse=False)
            except ConnectionFailed as exc:
                logger.warning("claim_failed queue=%s error=%s", other, exc)
                self.next_claim = time.monotonic() + 1.0
                return
            except JobqueueError as exc:
                logger.error("claim_failed queue=%s error=%s", other, exc)
                continue
            got += self._take(other, batch, started)
        if got < want:
            self.maybe_ready = False  # every queue ran dry: wait to be woken

    def _take(self, queue: str, batch: Any, started: float) -> int:
        if batch.next_due_ms is not None:
            due = started + (batch.next_due_ms - batch.now_ms) / 1000
            self.next_due = due if self.next_due is None else min(self.next_due, due)
        self._assign(
            [
                InFlight(c, c.timeout, started + (c.deadline_ms - batch.now_ms) / 1000)
                for c in batch.jobs
            ]
        )
        return len(batch.jobs)

    def _take_handoffs(self, handoffs: list[tuple[Any, int]]) -> None:
        """Jobs an enqueue leased to this worker while it waited idle."""
        now = time.monotonic()
        jobs = [
            InFlight(claim, claim.timeout, now + (claim.deadline_ms - since_ms) / 1000)
            for claim, since_ms in handoffs
        ]
        if jobs:
            self._assign(jobs)

    def _took(self, child: Child, message: dict) -> None:
        """A child took a job an enqueue pushed into its inbox (and runs it now)."""
        try:
            claim, since_ms = self.engine.read_handoff(message["took"], message["entry"])
        except CorruptJob as exc:  # the child could not read it either, and runs nothing
            logger.error("inbox_unreadable queue=%s error=%s", message["took"], exc)
            return
        deadline = float(message["at"]) + (claim.deadline_ms - since_ms) / 1000
        self.claimed_total += 1
        self.idle.consumed(claim.queue, child.index)
        self.awaiting.pop(child.index, None)
        child.took(InFlight(claim, claim.timeout, deadline))

    def _register_idle(self) -> None:
        """About to block: let enqueues hand new jobs straight to the children that have
        nothing to run."""
        pairs, calls = self.idle.register_calls(self._idle_children(), room=self._capacity())
        if not calls:
            return
        try:
            replies = self.engine.run_batch(calls, raise_errors=False)
        except ConnectionFailed:
            self.idle.forget(pairs)  # perhaps registered: such registrations lapse
            return
        handed, taken = self.idle.read(pairs, replies)
        self._await_took(taken)
        self._take_handoffs(handed)

    def _await_took(self, children: list[int]) -> None:
        until = time.monotonic() + AWAIT_TOOK
        for index in children:
            self.awaiting[index] = until

    def _idle_children(self) -> list[int]:
        return [
            c.index for c in self.pool.children.values() if not self._held(c) and not c.stopping
        ]

    def _assign(self, jobs: list[InFlight]) -> None:
        """Share jobs among the children (fewest held first), one pipe message per child."""
        self.claimed_total += len(jobs)
        shares: dict[int, list[InFlight]] = {}
        for job in jobs:
            child = min(
                self.pool.children.values(),
                key=lambda c: self._held(c) + len(shares.get(c.index, ())),
            )
            shares.setdefault(child.index, []).append(job)
        for index, share in shares.items():
            try:
                self.pool.children[index].send(share)  # the child's from here on
            except OSError:
                pass  # the child died: its sentinel reports it and its jobs are handed back
