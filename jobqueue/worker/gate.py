"""The hand-shake by which a worker's parent takes back jobs it sent to a child that has not
started them (they wait in its pipe behind a job that runs long), so that another child, or
another worker, runs them.

Every job a parent sends through a child's pipe has a number (1, 2, ... in the order sent).
The gate is a little shared memory and a lock, made before the child is forked:

- ``taken``: the number of the last job the child took from its pipe (to run it or to drop it);
- ``(revoked_from, revoked_to]``: the numbers the parent took back.

Before starting a job from its pipe, the child, under the lock, counts it as taken and drops it
if its number was taken back. The parent, under the lock, takes back every job after the
child's ``taken``. So a job is either run by that child or taken back, never both: the lock
orders the two decisions. The section under the lock is a few loads and stores; a child killed
inside it leaves the lock held, so the parent only ever waits a moment for it (a gate whose
child died is thrown away with its child).
"""

from __future__ import annotations

import multiprocessing
from typing import Any

TAKEN, REVOKED_FROM, REVOKED_TO = 0, 1, 2
LOCK_WAIT = 0.05  # seconds the parent waits for the lock before trying again later


class Gate:
    def __init__(self, context: Any = None) -> None:
        context = context or multiprocessing.get_context("fork")
        self.lock = context.Lock()
        self.numbers = context.RawArray("q", 3)  # taken, revoked_from, revoked_to

    # -- the child's side -------------------------------------------------------------------

    def take(self) -> bool:
        """The child is about to start the next job from its pipe: False if the parent took
        it back (the child drops it and sends no outcome)."""
        numbers = self.numbers
        with self.lock:
            number = numbers[TAKEN] + 1
            numbers[TAKEN] = number
            return not numbers[REVOKED_FROM] < number <= numbers[REVOKED_TO]

    # -- the parent's side ------------------------------------------------------------------

    def revoke(self, sent: int) -> int | None:
        """Take back every job after the one the child took last, up to number ``sent`` (the
        last sent). Returns the number of the last job the child took (those after it are
        the parent's again), or None if the lock was busy (try again later)."""
        if not self.lock.acquire(timeout=LOCK_WAIT):
            return None
        try:
            taken = self.numbers[TAKEN]
            self.numbers[REVOKED_FROM] = taken
            self.numbers[REVOKED_TO] = sent
            return int(taken)
        finally:
            self.lock.release()
