"""The worker's side of handing a new job straight to an idle child (the engine's side, and the
whole design, is described in ``jobqueue/engine/handoff.py``).

The parent keeps one registration per idle child and queue in the queues' idle sets (member
``<worker>#<child index>``); each idle child blocks on its own inboxes and runs what an enqueue
hands it at once (``child.JobSource``), then tells the parent it ``took`` it. The parent makes
the registrations when a child has nothing to run, renews them before their ttl, drops one when
its child takes the job it brought, and drops the others (taking what their inboxes still hold)
when their child got other work, before it claims jobs itself, and when it stops. A
registration it renews or drops that is no longer there, its inbox empty, was taken by an
enqueue whose job the child has popped but not yet announced: that child counts as busy until
it announces it (at most ``AWAIT_TOOK``), so ``--prefetch 1`` is kept exactly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ..engine.claims import Claimed
from ..engine.errors import ConnectionFailed, CorruptJob
from ..engine.protocol import WorkerProtocol
from ..engine.runner import Call
from .pool import Child, InFlight, Pool

logger = logging.getLogger("jobqueue.worker")
AWAIT_TOOK = 10.0  # seconds a child whose registration was taken counts as busy, unheard from

# One registration call made: (queue, child index, whether the registration should be there).
Made = tuple[str, int, bool]


@dataclass
class WorkerStats:
    """The worker's counters, shown in its heartbeat."""

    claimed: int = 0  # jobs taken, by claims and hand-offs
    succeeded: int = 0
    failed: int = 0
    working_time: float = 0.0  # seconds its children spent running jobs


@dataclass(eq=False)
class Handoff:
    protocol: WorkerProtocol
    worker: str  # the worker's name
    queues: tuple[str, ...]
    ttl: float  # seconds a registration lasts unless renewed
    pool: Pool
    stats: WorkerStats
    live: dict[tuple[str, int], float] = field(default_factory=dict)  # (queue, child) -> lapses

    def __post_init__(self) -> None:
        self.engine_side = self.protocol.handoff

    def member(self, child: int) -> str:
        return f"{self.worker}#{child}"

    def inboxes(self, child: int) -> dict[str, str]:
        """A child's inbox keys, each with its queue."""
        return {self.protocol.keys.queue(q).inbox(self.member(child)): q for q in self.queues}

    # -- registering idle children -----------------------------------------------------------

    def register(self, room: int) -> None:
        """About to block: let enqueues hand new jobs straight to the children that have
        nothing to run, ``room`` registrations in all at most (each may bring one job)."""
        made, calls = self._register_calls(self.pool.idle(), room)
        if not calls:
            return
        try:
            replies = self.protocol.run_batch(calls, raise_errors=False)
        except ConnectionFailed:
            self.forget(made)  # perhaps registered: such registrations lapse
            return
        self.read(made, replies)

    def _register_calls(self, children: list[int], room: int) -> tuple[list[Made], list[Call]]:
        """Each of ``children`` in each queue where it is not registered (or its
        registration is half over), queue by queue in order of precedence: with little room,
        every idle child waits on the first queues. A renewal expects the registration there."""
        now = time.monotonic()
        self.live = {pair: end for pair, end in self.live.items() if end > now}
        due = [
            (queue, child)
            for queue in self.queues
            for child in children
            if self.live.get((queue, child), 0.0) < now + self.ttl / 2
        ]
        room -= sum(1 for pair in self.live if pair not in due)
        due = due[: max(room, 0)]
        made = [(queue, child, (queue, child) in self.live) for queue, child in due]
        for pair in due:  # counted from before the call: it lapses no later than in Redis
            self.live[pair] = now + self.ttl
        calls = [
            self.engine_side.idle_call(q, self.member(c), True, self.ttl, renew=renew)
            for q, c, renew in made
        ]
        return made, calls

    def drop_calls(self, keep: list[int] | None = None) -> tuple[list[Made], list[Call]]:
        """Calls dropping every registration but those of the ``keep`` children (all of them
        when ``keep`` is None); read their replies with :meth:`read`."""
        pairs = [pair for pair in self.live if keep is None or pair[1] not in keep]
        for pair in pairs:
            del self.live[pair]
        made = [(queue, child, True) for queue, child in pairs]
        return made, [self.engine_side.idle_call(q, self.member(c), False) for q, c, _ in made]

    def forget(self, made: list[Made]) -> None:
        """These calls may not have run: let their registrations lapse."""
        for queue, child, _ in made:
            self.live.pop((queue, child), None)

    def read(self, made: list[Made], replies: list[Any]) -> None:
        """Take the jobs the replies handed over (leased already: they go to the children
        like claimed ones), and note the children whose registration an enqueue took while
        their inbox is empty (they popped the job and will announce it)."""
        handed: list[InFlight] = []
        now = time.monotonic()
        for (queue, child, expected), reply in zip(made, replies, strict=True):
            if isinstance(reply, Exception):
                logger.error("idle_registration_failed queue=%s error=%s", queue, reply)
                continue
            try:
                now_ms, claims = self.engine_side.read_inbox(queue, reply)
            except CorruptJob as exc:  # planted data: its jobs' leases expire and are reaped
                logger.error("inbox_unreadable queue=%s error=%s", queue, exc)
                continue
            if expected and not claims and not self.engine_side.was_registered(reply):
                self.live.pop((queue, child), None)  # a renewal that found it gone made nothing
                if child in self.pool.children:
                    self.pool.children[child].unannounced_until = now + AWAIT_TOOK
            handed += [_in_flight(claim, now, now_ms) for claim in claims]
        if handed:
            self.stats.claimed += len(handed)
            self.pool.assign(handed)

    @property
    def registered(self) -> bool:
        return bool(self.live)

    # -- a child took a job from its inbox ---------------------------------------------------

    def took(self, child: Child, message: dict[str, Any]) -> None:
        """The child took (and runs now) a job an enqueue pushed into its inbox."""
        try:
            claim, since_ms = self.engine_side.read_entry(message["took"], message["entry"])
        except CorruptJob as exc:  # the child could not read it either, and runs nothing
            logger.error("inbox_unreadable queue=%s error=%s", message["took"], exc)
            return
        self.stats.claimed += 1
        self.live.pop((claim.queue, child.index), None)  # the enqueue removed it
        child.took(_in_flight(claim, float(message["at"]), since_ms))

    # -- stopping --------------------------------------------------------------------------

    def give_back(self) -> None:
        """The worker stops: drop every registration, and give back (release) what was
        handed over meanwhile. With Redis unreachable the registrations lapse, and the leases
        of jobs handed over expire and are reaped."""
        if not self.live:
            return
        made, calls = self.drop_calls()
        try:
            replies = self.protocol.run_batch(calls, raise_errors=False)
        except ConnectionFailed:
            return
        claims: list[Claimed] = []
        for (queue, _, _), reply in zip(made, replies, strict=True):
            try:
                if not isinstance(reply, Exception):
                    claims += self.engine_side.read_inbox(queue, reply)[1]
            except CorruptJob as exc:  # planted data: its jobs' leases expire and are reaped
                logger.error("inbox_unreadable queue=%s error=%s", queue, exc)
        calls = [self.protocol.release_call(c.job_id, c.token) for c in claims]
        try:
            if calls:
                self.protocol.run_batch(calls, raise_errors=False)
        except ConnectionFailed:
            pass


def _in_flight(claim: Claimed, now: float, since_ms: int) -> InFlight:
    """A job leased at Redis time ``since_ms``, seen at monotonic time ``now``."""
    return InFlight(claim, claim.timeout, now + (claim.deadline_ms - since_ms) / 1000)
