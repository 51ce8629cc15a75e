"""The worker's child processes and the jobs each one holds.

Children are forked from the single-threaded parent (so forking is safe), each with a duplex
pipe. A child runs the jobs sent to it in order; the first job it holds is the one it is
running, the others wait in its pipe (prefetch).
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from django.db import connections

from .engine import Claimed, codec
from .worker_child import child_main, start_blocked

FRAME = struct.Struct("!i")  # Connection.send_bytes's length prefix (-1: LONG_FRAME follows)
LONG_FRAME = struct.Struct("!Q")
READ_SIZE = 1 << 16


@dataclass
class InFlight:
    """A claimed job, from its claim until its outcome is recorded."""

    claimed: Claimed
    timeout: float | None
    local_deadline: float  # monotonic time its lease ends, as far as this worker knows

    @property
    def job_id(self) -> str:
        return self.claimed.job_id


@dataclass
class Child:
    index: int
    process: Any
    conn: Connection
    jobs: deque[InFlight] = field(default_factory=deque)
    current_since: float | None = None  # when its first job started (monotonic)
    stopping: bool = False
    unread: bytearray = field(default_factory=bytearray)  # the start of a message still coming

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def send(self, jobs: list[InFlight]) -> None:
        """Hand jobs to the child, in one message; it runs them in order."""
        messages = []
        for job in jobs:
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
        self.conn.send_bytes(codec.encode(messages))

    def messages(self) -> list[bytes]:
        """Every whole message the child has written so far, without waiting: what the pipe
        holds, read in large chunks and split on ``Connection.send_bytes``'s framing (a 4-byte
        big-endian length, then the bytes), instead of a poll() and two reads per message. Stops
        at the end of the pipe (the child is gone: its sentinel reports it)."""
        fd, unread = self.conn.fileno(), self.unread
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        try:
            while poller.poll(0):  # readable, or hung up (then the read returns nothing)
                chunk = os.read(fd, READ_SIZE)
                if not chunk:
                    break
                unread += chunk
        except OSError:
            pass
        out, start = [], 0
        while len(unread) - start >= 4:
            (size,) = FRAME.unpack_from(unread, start)
            head = 4
            if size == -1:  # 2 GiB or more: an 8-byte length follows
                if len(unread) - start < 12:
                    break
                (size,) = LONG_FRAME.unpack_from(unread, start + 4)
                head = 12
            if len(unread) - start - head < size:
                break  # the rest has not arrived yet
            out.append(bytes(unread[start + head : start + head + size]))
            start += head + size
        del unread[:start]
        return out

    def took(self, job: InFlight) -> None:
        """The child took a job handed to it through its inbox: it runs that one next (it
        finished everything before it; it starts it before what waits in its pipe)."""
        self.jobs.appendleft(job)
        self.current_since = time.monotonic()

    def finished(self, job_id: str) -> InFlight | None:
        """The child reported on its first job: drop it, the next one starts now."""
        if not self.jobs or self.jobs[0].job_id != job_id:
            return None
        job = self.jobs.popleft()
        self.current_since = time.monotonic() if self.jobs else None
        return job

    def signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass


class Poller:
    """``multiprocessing.connection.wait()`` with one poll() object kept across calls: that
    function builds and fills a selector every time, and the parent waits about once per job.
    Readers are connections, sockets or objects with ``fileno()``, or file descriptors."""

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
        parent_fds: list[int] | None = None,
        inboxes: Callable[[int], dict[str, str]] | None = None,
    ) -> None:
        self.context = multiprocessing.get_context("fork")
        self.size = size
        self.children: dict[int, Child] = {}
        self.parent_fds = parent_fds or []
        self.inboxes = inboxes  # a child's inbox keys (with their queues), if it has any

    def start(self) -> None:
        for index in range(self.size):
            self.spawn(index)

    def spawn(self, index: int) -> Child:
        # The parent keeps no database connection across a fork: the child would share it.
        connections.close_all()
        parent_conn, child_conn = self.context.Pipe(duplex=True)
        inherited = [*self.parent_fds]
        inherited += [c.conn.fileno() for c in self.children.values()]
        inherited.append(parent_conn.fileno())
        process = self.context.Process(
            target=child_main,
            args=(
                child_conn,
                os.getpid(),
                inherited,
                self.inboxes(index) if self.inboxes else None,
            ),
            name=f"jobqueue-child-{index}",
            daemon=True,
        )
        start_blocked(process)
        child_conn.close()
        child = Child(index, process, parent_conn)
        self.children[index] = child
        return child

    def kill(self, child: Child) -> list[InFlight]:
        """SIGKILL a child; returns the jobs it held (the first one was running)."""
        child.signal(signal.SIGKILL)
        return self.reaped(child)

    def reaped(self, child: Child) -> list[InFlight]:
        """Forget a child that is gone (or killed); returns the jobs it held."""
        child.process.join(timeout=5)
        child.conn.close()
        self.children.pop(child.index, None)
        jobs = list(child.jobs)
        child.jobs.clear()
        return jobs

    def in_flight(self) -> list[InFlight]:
        return [job for child in self.children.values() for job in child.jobs]

    def stop_all(self, timeout: float = 5.0) -> None:
        """Close every pipe (children exit on EOF); kill the ones that do not."""
        for child in list(self.children.values()):
            child.conn.close()
        deadline = time.monotonic() + timeout
        for child in list(self.children.values()):
            child.process.join(timeout=max(deadline - time.monotonic(), 0))
            if child.process.is_alive():
                child.signal(signal.SIGKILL)
                child.process.join(timeout=5)
        self.children.clear()
