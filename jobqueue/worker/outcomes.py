"""The outcomes the worker's parent has heard of and not yet recorded in Redis.

Children report each job's outcome over their pipes; the parent records them in batches, in the
round trip that also claims (``exchange.py``). An outcome waits up to ``FLUSH_DELAY`` for
company, so one round trip carries many; jobs given back (released) or whose process died
(abandoned) go at once. Nothing is dropped when Redis is unreachable: the outcomes stay here
and are sent with the next round trip. Nor when Redis refuses them with an error reply (busy
running a long script, out of memory, a data loss it just reported): they are sent again after
a pause that doubles up to REFUSED_PAUSE_MAX, for REFUSED_FOR seconds, then dropped with an
error line (the jobs then run again once their leases end). Sending them again is safe: an
outcome Redis recorded the first time is answered as recorded, not applied twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..engine.claims import Failure, Finished, Success
from ..engine.job import JobState
from ..engine.protocol import WorkerProtocol
from ..engine.runner import Call
from .pool import InFlight

logger = logging.getLogger("jobqueue.worker")
FLUSH_DELAY = 0.004  # seconds an outcome may wait for others to share its round trip
REFUSED_PAUSE, REFUSED_PAUSE_MAX = 0.25, 2.0  # seconds before refused outcomes are sent again
REFUSED_FOR = 30.0  # seconds refused outcomes are sent again before they are dropped


@dataclass(frozen=True)
class Recorded:
    """What a round trip recorded."""

    succeeded: int = 0
    failed: int = 0
    requeued: bool = False  # a job went back to a queue (given back, or a retry scheduled)
    kept: bool = False  # Redis refused some: all are sent again later


class OutcomeBuffer:
    def __init__(self) -> None:
        self.successes: list[Success] = []
        self.failures: list[Failure] = []
        self.releases: list[InFlight] = []  # given back, attempt not counted
        self.abandons: list[tuple[InFlight, str]] = []  # their process died: a stall, and why
        self.pending_since: float | None = None  # when the oldest unrecorded outcome came
        self.refused_since: float | None = None  # when Redis first refused the ones here
        self.resend_at = 0.0  # when outcomes Redis refused may be sent again (monotonic)
        self.pause = REFUSED_PAUSE  # the pause before the next sending of refused outcomes

    @property
    def pending(self) -> bool:
        return bool(self.successes or self.failures or self.releases or self.abandons)

    def add(self, job: InFlight, message: dict[str, Any]) -> None:
        """A child's report on ``job``: ``skipped`` (it was stopping), ``ok`` with the result
        (JSON text), or the exception's class, traceback and whether it may be retried."""
        claimed = job.claimed
        if message.get("skipped"):
            self.releases.append(job)
        elif message["ok"]:
            self.successes.append(Success(claimed.job_id, claimed.token, message["result"]))
        else:
            self.fail(job, message["exc"], message["tb"], retry=message["retry"])

    def fail(
        self, job: InFlight, exception_class: str, traceback: str, retry: bool = True
    ) -> None:
        claimed = job.claimed
        self.failures.append(
            Failure(
                claimed.job_id,
                claimed.token,
                exception_class,
                traceback,
                attempt=claimed.attempts,
                retry=retry,
            )
        )

    def release(self, jobs: list[InFlight]) -> None:
        self.releases.extend(jobs)

    def abandon(self, job: InFlight, why: str) -> None:
        self.abandons.append((job, why))

    def due(self, now: float, in_flight: bool, stopping: bool) -> bool:
        """Whether to record now: jobs given back or abandoned at once; outcomes once the
        oldest has waited FLUSH_DELAY, or when no job is left running that could join them."""
        if now < self.resend_at:
            return False
        if self.releases or self.abandons:
            return True
        if not (self.successes or self.failures):
            self.pending_since = None
            return False
        if self.pending_since is None:
            self.pending_since = now
        return now - self.pending_since >= FLUSH_DELAY or not in_flight or stopping

    def flush_at(self) -> float | None:
        """When the waiting outcomes are due (monotonic), if any wait. (Refused ones wait for
        ``resend_at``: the parent's loop looks every 50 ms while outcomes are pending.)"""
        return None if self.pending_since is None else self.pending_since + FLUSH_DELAY

    def calls(self, protocol: WorkerProtocol) -> tuple[list[Call], Callable[[list], Finished]]:
        """The calls recording everything here: successes and failures first (their replies
        read with the returned function), then releases and abandons."""
        calls, read = protocol.finish_calls(self.successes, self.failures)
        calls += [protocol.release_call(j.job_id, j.claimed.token) for j in self.releases]
        calls += [protocol.abandon_call(j.job_id, j.claimed.token, w) for j, w in self.abandons]
        return calls, read

    def recorded(
        self, read: Callable[[list], Finished], finish_replies: list, other_replies: list
    ) -> Recorded:
        """The round trip that carried :meth:`calls` is done: count what it recorded, and
        forget the outcomes (a stale token's outcome is refused by Redis and logged here)."""
        errors = [r for r in [*finish_replies, *other_replies] if isinstance(r, Exception)]
        for error in errors:
            logger.error("ack_failed error=%s", error)
        if errors and self._send_again():
            return Recorded(kept=True)
        self.refused_since, self.resend_at = None, 0.0
        result = Recorded()
        if not errors:
            finished = read(finish_replies)
            for job_id, done in finished.completed.items():
                if not done:
                    logger.warning("stale_result_discarded job=%s", job_id)
            for job_id, state in finished.failed.items():
                if state is None:
                    logger.warning("stale_failure_discarded job=%s", job_id)
            result = Recorded(
                succeeded=sum(finished.completed.values()),
                failed=sum(state is not None for state in finished.failed.values()),
                requeued=bool(other_replies)
                or any(s is JobState.SCHEDULED for s in finished.failed.values()),
            )
        self.successes, self.failures, self.releases, self.abandons = [], [], [], []
        self.pending_since = None
        return result

    def _send_again(self, now: float | None = None) -> bool:
        """Redis refused some of the outcomes sent: keep them all for a later round trip
        (True), unless they have been refused for REFUSED_FOR seconds (False: dropped)."""
        now = time.monotonic() if now is None else now
        if self.refused_since is None:
            self.refused_since, self.pause = now, REFUSED_PAUSE
        else:
            self.pause = min(self.pause * 2, REFUSED_PAUSE_MAX)
        pause = self.pause
        if now - self.refused_since >= REFUSED_FOR:
            logger.error(
                "outcomes_dropped successes=%d failures=%d releases=%d abandons=%d: refused "
                "for %.0f s; their jobs run again once their leases end",
                len(self.successes),
                len(self.failures),
                len(self.releases),
                len(self.abandons),
                now - self.refused_since,
            )
            return False
        self.resend_at = now + pause
        if self.pending_since is None:
            self.pending_since = now
        logger.warning("outcomes_kept resend_in=%.2f: Redis refused them", pause)
        return True
