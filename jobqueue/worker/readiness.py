"""When the worker's parent looks for jobs to claim.

It claims while jobs may be ready; a claim that comes back short means every queue ran dry,
and the parent waits to be woken (an enqueue's wake-up token, a retry, a reaped lease, or the
next scheduled job coming due) instead of asking again. After a Redis error it backs off.
"""

from __future__ import annotations


class Readiness:
    def __init__(self) -> None:
        self.maybe_ready = True  # jobs may be waiting in a queue
        self.not_before = 0.0  # no claim before this monotonic time (backing off)
        self.next_due: float | None = None  # monotonic time the next scheduled job is due

    def wake(self) -> None:
        """Jobs may be ready: a wake-up, a job given back, a retry scheduled, a lease reaped."""
        self.maybe_ready = True

    def ran_dry(self) -> None:
        """A claim found fewer jobs than it asked for in every queue."""
        self.maybe_ready = False

    def back_off(self, now: float, seconds: float = 1.0) -> None:
        self.not_before = now + seconds

    def due(self, at: float) -> None:
        """A scheduled job comes due at monotonic time ``at``."""
        self.next_due = at if self.next_due is None else min(self.next_due, at)

    def claimable(self, now: float) -> bool:
        """Whether to claim now (a scheduled job that came due makes jobs maybe ready)."""
        if self.next_due is not None and now >= self.next_due:
            self.maybe_ready, self.next_due = True, None
        return self.maybe_ready and now >= self.not_before

    def due_within(self, now: float, seconds: float) -> bool:
        """Whether a scheduled job comes due within ``seconds``."""
        return self.next_due is not None and self.next_due - now < seconds
