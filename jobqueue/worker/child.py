"""A worker's child process: receives jobs from its parent over a pipe, runs them one at a time,
and sends each outcome back. It never changes a job's state in Redis: the parent claims,
renews, acknowledges and, when needed, kills.

While it has nothing to run, a child also blocks on its own inboxes (one per queue): an enqueue
that finds it registered as idle leases the new job to it and pushes the claim there
(``handoff.py``), and the child starts it at once, without waking its parent first. It tells
the parent it took the job (which then renews its lease like any other) before running it,
and runs it before any job still waiting in its pipe.

Signals: SIGINT and SIGTERM are ignored (the parent decides when children stop); SIGUSR2 means
"start no more jobs" (jobs already sent are answered ``skipped``); SIGUSR1 cancels the running
job; SIGALRM is the running job's soft timeout. The child dies with its parent (``forking.py``),
so a job can never outlive the worker that renews its lease.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from collections import deque
from typing import Any

from ..engine import Job, codec
from ..engine.errors import CorruptJob
from ..engine.handoff import Handoff
from .forking import CHILD_SIGNALS, prepare_forked
from .gate import Gate
from .pipe import Pipe

logger = logging.getLogger("jobqueue.worker")


class _Stop:
    requested = False


def _on_stop(signum: int, frame: Any) -> None:
    _Stop.requested = True


def decode_job(message: dict) -> tuple[str, str, Job | None, CorruptJob | None]:
    job_id, token = message["id"], message["token"]
    queue, _, local_id = job_id.partition(":")
    if message.get("error"):
        return job_id, token, None, CorruptJob(message["error"])
    try:
        return job_id, token, Job.from_fields(queue, local_id, message["fields"]), None
    except CorruptJob as exc:
        return job_id, token, None, exc


class JobSource:
    """Where a child's next job comes from: a job handed to it through its inboxes first, then
    the jobs its parent sent over the pipe, in order, but for those the parent took back
    (``gate.py``); when it has none, it waits for either."""

    def __init__(
        self, pipe: Pipe, inboxes: dict[str, str], wait: float, gate: Gate | None = None
    ) -> None:
        self.pipe = pipe
        self.gate = gate  # the parent may take back a job from the pipe until it starts
        self.inboxes = inboxes  # inbox key -> queue
        self.queued: deque[dict] = deque()
        self.owed: bytes | None = None  # the announcement of a job taken from an inbox
        self.listener: Any = None
        if inboxes:
            from ..conf import get_engine
            from .wake import WakeListener

            self.listener = WakeListener(get_engine().client, list(inboxes), wait)
        self.poller = select.poll()
        self.poller.register(pipe.fileno(), select.POLLIN)

    def next(self) -> dict | None:
        """The next job's message; None when the parent closed the pipe."""
        answered = False  # the inbox's connection is known to be readable
        while True:
            handed, answered = self._handed(answered), False
            if handed is not None:
                return handed
            while self.queued:
                job = self.queued.popleft()
                if self.gate is None or self.gate.take():
                    return job  # else the parent took it back: another child runs it
            armed = self.listener is not None and self.listener.arm()
            if armed:
                self.poller.register(self.listener.fileno(), select.POLLIN)
            try:
                events = self.poller.poll(None if armed or self.listener is None else 1000)
            except InterruptedError:  # pragma: no cover - PEP 475 retries poll()
                events = []
            if armed:
                fd = self.listener.fileno()
                self.poller.unregister(fd)
                answered = any(ready == fd for ready, _ in events)
            if any(fd == self.pipe.fileno() for fd, _ in events):
                try:
                    messages = self.pipe.receive()
                except OSError:
                    return None
                if messages is None:
                    return None
                for message in messages:
                    self.queued.extend(codec.loads(message))

    def _handed(self, answered: bool) -> dict | None:
        """A claim an enqueue pushed into an inbox, announced to the parent; None if none."""
        if self.listener is None or not (answered or self.listener.has_reply()):
            return None
        reply = self.listener.read()
        if not reply:
            return None  # the BLPOP timed out: armed again when idle
        key = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        queue, entry = self.inboxes[key], reply[1]
        entry = entry.decode() if isinstance(entry, bytes) else str(entry)
        try:
            claim, _ = Handoff.read_entry(queue, entry)
        except CorruptJob as exc:  # planted data: its job's lease expires and it is reaped
            logger.error("inbox_unreadable queue=%s error=%s", queue, exc)
            return None
        self.owed = codec.encode({"took": queue, "entry": entry, "at": time.monotonic()})
        return {"id": claim.job_id, "token": claim.token, "fields": claim.fields}

    def announce(self) -> None:
        """Tell the parent about the job taken from an inbox (once): just before its code is
        called, so that waking the parent does not delay the job's start, and always before
        its outcome."""
        if self.owed is not None:
            owed, self.owed = self.owed, None
            self.pipe.send(owed)


def child_main(
    pipe: Pipe,
    parent_pid: int,
    inherited_fds: list[int],
    inboxes: dict[str, str] | None = None,
    gate: Gate | None = None,
    inbox_wait: float = 5.0,
) -> None:
    """Entry point of a forked child."""
    prepare_forked(parent_pid, inherited_fds)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, _on_stop)
    from .execution import execute, install_handlers

    install_handlers()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, CHILD_SIGNALS)
    source = JobSource(pipe, inboxes or {}, inbox_wait, gate)
    while True:
        try:
            message = source.next()
        except OSError:  # the parent is gone (a broken pipe)
            break
        if message is None:
            break
        job_id, token, job, error = decode_job(message)
        try:
            if _Stop.requested:
                outcome: dict = {"id": job_id, "skipped": True}
            else:
                outcome = execute(job_id, token, job, error, before_call=source.announce)
            source.announce()
            pipe.send(codec.encode(outcome))
        except OSError:  # the parent is gone (a broken pipe)
            os._exit(0)
    os._exit(0)
