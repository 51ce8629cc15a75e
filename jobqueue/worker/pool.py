"""The worker's child processes and the jobs each one holds.

Children are forked from the single-threaded parent (so forking is safe), each with a
:class:`Pipe`. A child runs the jobs sent to it in order; the first job it holds is the one it
is running, the others wait in its pipe (prefetch). A child whose job has run longer than
``take_back_after`` is *stuck*: it is sent nothing more, and the jobs waiting behind its job
are taken back (:class:`Gate`) for a child that is free, or for Redis.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connections

from ..engine import codec
from ..engine.claims import Claimed
from .child import child_main
from .forking import start_blocked
from .gate import Gate
from .pipe import Pipe
from .prefetch import TAKE_BACK_AFTER


@dataclass
class InFlight:
    """A claimed job, from its claim until its outcome is recorded."""

    claimed: Claimed
    timeout: float | None
    local_deadline: float  # monotonic time its lease ends, as far as this worker knows
    number: int = 0  # its number in its child's pipe (0: not sent through a pipe)

    @property
    def job_id(self) -> str:
        return self.claimed.job_id


@dataclass
class Child:
    index: int
    process: Any
    pipe: Pipe
    gate: Gate
    jobs: deque[InFlight] = field(default_factory=deque)
    sent: int = 0  # the number of the last job sent through its pipe
    current_since: float | None = None  # when its first job started (monotonic)
    # Until when it counts as holding a job it took from its inbox and has not announced yet
    # (the registration that brought the job is gone, its inbox empty: see handoff.py).
    unannounced_until: float | None = None

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def held(self, now: float) -> int:
        """Jobs the child holds, counting one it took from its inbox and not announced."""
        if self.unannounced_until is not None and self.unannounced_until < now:
            self.unannounced_until = None  # no job came (the registration had lapsed)
        return len(self.jobs) + (self.unannounced_until is not None)

    def send(self, jobs: list[InFlight]) -> None:
        """Hand jobs to the child, in one message; it runs them in order."""
        messages = []
        for job in jobs:
            self.sent += 1
            job.number = self.sent
            claimed = job.claimed
            message: dict[str, Any] = {"id": claimed.job_id, "token": claimed.token}
            if claimed.error is not None:
                message["error"] = str(claimed.error)
            else:
                message["fields"] = claimed.fields
            messages.append(message)
        if not self.jobs:
            self.current_since = time.monotonic()
        self.jobs.extend(jobs)
        self.pipe.send(codec.encode(messages))

    def took(self, job: InFlight) -> None:
        """The child took a job handed to it through its inbox: it runs that one next (it
        finished everything before it; it starts it before what waits in its pipe)."""
        self.unannounced_until = None
        self.jobs.appendleft(job)
        self.current_since = time.monotonic()

    def finished(self, job_id: str) -> InFlight | None:
        """The child reported on its first job: drop it, the next one starts now."""
        if not self.jobs or self.jobs[0].job_id != job_id:
            return None
        job = self.jobs.popleft()
        self.current_since = time.monotonic() if self.jobs else None
        return job

    def stuck(self, now: float, after: float) -> bool:
        """Its job has run longer than ``after`` seconds."""
        return self.current_since is not None and now - self.current_since > after

    def take_back(self) -> list[InFlight]:
        """The jobs waiting behind the one it runs, which it will now not start (empty if
        the gate was busy: tried again on the parent's next turn)."""
        taken = self.gate.revoke(self.sent)
        if taken is None:
            return []
        back = [job for job in self.jobs if job.number > taken]
        for job in back:
            self.jobs.remove(job)
        return back

    def signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass


class Poller:
    """``select.poll()`` over a set of readers kept across calls (the parent waits about once
    per job). Readers are objects with ``fileno()``, or file descriptors."""

    def __init__(self) -> None:
        self.poller = select.poll()
        self.registered: frozenset[int] = frozenset()

    def wait(self, readers: list[Any], timeout: float) -> list[Any]:
        by_fd = {
            reader if isinstance(reader, int) else reader.fileno(): reader for reader in readers
        }
        fds = frozenset(by_fd)
        if fds != self.registered:
            for fd in self.registered - fds:
                self.poller.unregister(fd)
            for fd in fds - self.registered:
                self.poller.register(fd, select.POLLIN)
            self.registered = fds
        events = self.poller.poll(max(timeout, 0) * 1000)
        return [by_fd[fd] for fd, _ in events if fd in by_fd]


class Pool:
    def __init__(
        self,
        size: int,
        *,
        parent_fds: Callable[[], list[int]] | None = None,
        inboxes: Callable[[int], dict[str, str]] | None = None,
    ) -> None:
        self.context = multiprocessing.get_context("fork")
        self.size = size
        self.children: dict[int, Child] = {}
        self.parent_fds = parent_fds or list  # the parent's descriptors a child must close
        self.inboxes = inboxes  # a child's inbox keys (with their queues), if it has any
        self.take_back_after = TAKE_BACK_AFTER

    def start(self) -> None:
        for index in range(self.size):
            self.spawn(index)

    def spawn(self, index: int) -> Child:
        # The parent keeps no database connection across a fork: the child would share it.
        connections.close_all()
        parent_end, child_end = Pipe.pair()
        gate = Gate(self.context)
        inherited = self.parent_fds()
        inherited += [c.pipe.fileno() for c in self.children.values()]
        inherited.append(parent_end.fileno())
        process = self.context.Process(
            target=child_main,
            args=(
                child_end,
                os.getpid(),
                inherited,
                self.inboxes(index) if self.inboxes else None,
                gate,
            ),
            name=f"jobqueue-child-{index}",
            daemon=True,
        )
        start_blocked(process)
        child_end.close()
        child = Child(index, process, parent_end, gate)
        self.children[index] = child
        return child

    def kill(self, child: Child) -> list[InFlight]:
        """SIGKILL a child; returns the jobs it held (the first one was running)."""
        child.signal(signal.SIGKILL)
        return self.reaped(child)

    def reaped(self, child: Child) -> list[InFlight]:
        """Forget a child that is gone (or killed); returns the jobs it held."""
        child.process.join(timeout=5)
        child.pipe.close()
        self.children.pop(child.index, None)
        jobs = list(child.jobs)
        child.jobs.clear()
        return jobs

    def in_flight(self) -> list[InFlight]:
        return [job for child in self.children.values() for job in child.jobs]

    def holder(self, job: InFlight) -> Child | None:
        for child in self.children.values():
            if job in child.jobs:
                return child
        return None

    def free(self, now: float) -> list[Child]:
        """The children that are not stuck."""
        after = self.take_back_after
        return [c for c in self.children.values() if not c.stuck(now, after)]

    def room(self, limit: int) -> int:
        """Jobs the children that are not stuck can take now, each holding up to ``limit``."""
        now = time.monotonic()
        return sum(max(limit - c.held(now), 0) for c in self.free(now))

    def idle(self) -> list[int]:
        """The children that hold nothing."""
        now = time.monotonic()
        return [c.index for c in self.children.values() if not c.held(now)]

    def assign(self, jobs: list[InFlight], limit: int | None = None) -> list[InFlight]:
        """Share jobs among the children that are not stuck (fewest held first; all of them
        if every one is), one pipe message per child; with ``limit``, none holds more, and
        the jobs left over are returned."""
        now = time.monotonic()
        children = self.free(now) or list(self.children.values())
        shares: dict[int, list[InFlight]] = {}
        left: list[InFlight] = []
        for i, job in enumerate(jobs):
            child = min(children, key=lambda c: c.held(now) + len(shares.get(c.index, ())))
            if limit is not None and child.held(now) + len(shares.get(child.index, ())) >= limit:
                left = jobs[i:]  # the child holding fewest is full: so is every other
                break
            shares.setdefault(child.index, []).append(job)
        for index, share in shares.items():
            try:
                self.children[index].send(share)  # the child's from here on
            except OSError:
                pass  # the child died: its sentinel reports it and its jobs are handed back
        return left

    def rebalance(self, now: float, limit: int) -> list[InFlight]:
        """Take back the jobs waiting behind a stuck child's job and share them among the
        children that are free, up to ``limit`` each; returns those none could take (for
        Redis: another worker may be free)."""
        after = self.take_back_after
        back: list[InFlight] = []
        for child in self.children.values():
            if len(child.jobs) > 1 and child.stuck(now, after):
                back += child.take_back()
        if not back:
            return []
        if not self.free(now):
            return back
        return self.assign(back, limit)

    def stuck_in(self, now: float) -> float:
        """Seconds until a child holding jobs behind the one it runs becomes stuck (inf:
        none does)."""
        after = self.take_back_after
        return min(
            (
                max(c.current_since + after - now, 0.0)
                for c in self.children.values()
                if len(c.jobs) > 1 and c.current_since is not None
            ),
            default=float("inf"),
        )

    def signal_all(self, signum: int) -> None:
        for child in self.children.values():
            child.signal(signum)

    def stop_all(self, timeout: float = 5.0) -> None:
        """Close every pipe (children exit at its end); kill the ones that do not."""
        for child in list(self.children.values()):
            child.pipe.close()
        deadline = time.monotonic() + timeout
        for child in list(self.children.values()):
            child.process.join(timeout=max(deadline - time.monotonic(), 0))
            if child.process.is_alive():
                child.signal(signal.SIGKILL)
                child.process.join(timeout=5)
        self.children.clear()
