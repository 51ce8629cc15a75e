"""A child's announcement of a job it took from its inbox (``child.JobSource``), sent so that
it does not wake the parent while the job starts.

The parent must hear of such a job: it renews the job's lease, enforces its hard timeout,
delivers a cancel request, and does not count the child as free. But the announcement wakes
the parent, and a process just woken is favoured by the scheduler: sent just before the job's
code was called, it woke the parent onto the core the job was about to start on, and the
job's start waited its turn (the larger part of the pickup latency's slowest 1%, measured in
docs/performance.md). So the announcement goes out ``ANNOUNCE_AFTER`` into the job's run, from
a thread of the child's, or with the outcome when the job ends sooner: a short job wakes the
parent once, not twice.

Contracts:

- The parent hears of the job once, always before its outcome, and at most ``ANNOUNCE_AFTER``
  (plus the thread's wait for the interpreter's lock, a few milliseconds under a busy job)
  after its code is called. Leases last seconds, so nothing the parent does for the job is
  late; the hard timeout counts from when the child took the job (the announcement says when).
- The thread has the child's signals blocked: a timeout's SIGALRM or a cancel's SIGUSR1
  interrupts the job's own thread, even while that thread waits in a system call.
- A child that dies before announcing leaves its job to its lease: the reaper finds the lease
  ended and counts a stall, as for any job a dead worker held.
"""

from __future__ import annotations

import signal
import threading
import time

from .forking import CHILD_SIGNALS
from .pipe import Pipe

ANNOUNCE_AFTER = 0.005  # seconds into a handed job's run before its parent is told of it


class Announcer:
    def __init__(self, pipe: Pipe, after: float = ANNOUNCE_AFTER) -> None:
        self.pipe = pipe
        self.after = after
        self.changed = threading.Condition()
        self.owed: bytes | None = None  # the announcement not sent yet
        self.due_at: float | None = None  # when the thread sends it (monotonic)
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="jobqueue-announcer", daemon=True)
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, CHILD_SIGNALS)
        try:
            self.thread.start()  # it inherits the blocked mask and keeps it
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def owe(self, message: bytes) -> None:
        """A job was taken from an inbox: ``message`` tells the parent so."""
        with self.changed:
            self.owed = message

    def starting(self) -> None:
        """The job's code is about to be called: the announcement is due ``after`` from now."""
        with self.changed:
            if self.owed is not None:
                self.due_at = time.monotonic() + self.after
                self.changed.notify()

    def settle(self) -> None:
        """The job ended (or never started): send the announcement now if the thread has not,
        before the outcome. Raises OSError when the parent is gone."""
        with self.changed:
            owed, self.owed, self.due_at = self.owed, None, None
            if owed is not None:
                self.pipe.send(owed)

    def close(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify()
        self.thread.join()

    def _run(self) -> None:
        with self.changed:
            while not self.closed:
                if self.due_at is None:
                    self.changed.wait()
                    continue
                rest = self.due_at - time.monotonic()
                if rest > 0:
                    self.changed.wait(rest)
                    continue
                owed, self.owed, self.due_at = self.owed, None, None
                if owed is not None:
                    try:
                        self.pipe.send(owed)
                    except OSError:
                        return  # the parent is gone: the job's own thread finds out next
