"""The parent's alarm for self-fencing: a job stops before its lease can end unrenewed, even
while the parent waits on a Redis that stopped answering.

``LeaseKeeper.fence()`` runs from the parent's loop, and the loop can be held up in one Redis
call for twice ``REDIS_SOCKET_TIMEOUT`` (10 s by default, tried once more on a fresh
connection): a network that drops every packet answers nothing and refuses nothing. That is
longer than a lease can be. So the parent also keeps ``SIGALRM`` set for the first moment a
lease it holds could end unrenewed (the job's local deadline minus the fence margin). The
handler runs between two bytecodes of whatever the parent is doing, a blocked socket read
included (Python resumes the read afterwards, PEP 475), and does one thing: SIGKILL each child
holding a job past that moment, and remember its pid. The loop then handles those children as
fenced (``LeaseKeeper.fenced``): the handler changes nothing else.

The timer is not inherited by forked processes (children, sidecars); the children set their own
SIGALRM handler for their jobs' timeouts.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from .pool import Pool


class FenceAlarm:
    def __init__(self, pool: Pool, margin: float) -> None:
        self.pool = pool
        self.margin = margin
        self.killed: set[int] = set()  # pids of children the alarm killed, not handled yet
        self.pid = os.getpid()  # the parent's: built there, before any fork

    def install(self) -> None:
        signal.signal(signal.SIGALRM, self._ring)

    def arm(self) -> None:
        """Set the alarm for the first fence point of the jobs held now (off if none)."""
        self._set(min((job.local_deadline for job in self.pool.in_flight()), default=None))

    def disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)

    def _set(self, first_deadline: float | None) -> None:
        if first_deadline is None:
            self.disarm()
        else:
            delay = first_deadline - self.margin - time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, max(delay, 0.001))

    def _ring(self, signum: int, frame: Any) -> None:
        if os.getpid() != self.pid:
            # A process forked from the parent (a child, a sidecar) runs the handler once if
            # the alarm rang just before the fork: it is not the parent's to act on.
            return
        now = time.monotonic()
        later: list[float] = []
        for child in list(self.pool.children.values()):
            deadlines = [job.local_deadline for job in child.jobs]
            if any(deadline - self.margin <= now for deadline in deadlines):
                if child.pid not in self.killed:
                    self.killed.add(child.pid)
                    child.signal(signal.SIGKILL)
            else:
                later += deadlines
        self._set(min(later, default=None))
