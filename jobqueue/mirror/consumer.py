"""The mirror: keeps the Django models a copy of Redis.

It reads every queue's event stream through the engine's :class:`EventReader`, as a member of
the consumer group ``jq-mirror``, so several mirror processes share the work and a crashed
one's unacknowledged events are taken over; applies them in batches, then acknowledges them.
Every second it also takes a snapshot of the queues' counts, the worker registry and the
schedules. It runs inside ``runworker`` (a side process; ``--no-mirror`` or
``JOBQUEUE["MIRROR"] = False`` turns it off) or alone with ``manage.py jobqueue mirror``.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, DataError, IntegrityError, close_old_connections

from ..engine import Engine, JobqueueError
from ..engine.events import Event
from .batch import Batch, build, error_jobs, fill_gaps, job_ids, skip_tombstoned
from .maintenance import prune
from .snapshot import snapshot
from .sql import known_rows, record_poison, row_errors, tombstones, write

logger = logging.getLogger("jobqueue.mirror")
GROUP = "jq-mirror"
CLAIM_IDLE_MS = 30_000  # events a consumer left unacknowledged this long are taken over
SNAPSHOT_EVERY = 1.0
TICK = 0.1  # seconds between two reads while the streams hold less than a batch
QUIET_TICK = 0.5  # ... and while the queues are quiet: two reads in a row found < QUIET
QUIET = 500  # events: fewer than 5,000 a second at TICK, 1,000 at QUIET_TICK
PRUNE_EVERY = 3600.0
# What an entry the mirror cannot apply raises: a field's text that does not read as the field
# (``engine.job.FIELDS``), or a value the database refuses. Redis's errors (JobqueueError) and a
# database that cannot be reached are not poison: the step fails and is tried again.
POISON = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    ArithmeticError,
    DataError,
    IntegrityError,
)


class Mirror:
    def __init__(
        self,
        engine: Engine,
        consumer: str | None = None,
        batch: int = 2000,
        block_ms: int = 500,
        claim_idle_ms: int = CLAIM_IDLE_MS,
    ) -> None:
        self.engine = engine
        self.consumer = consumer or f"{socket.gethostname()}.{os.getpid()}"
        self.batch = batch
        self.block_ms = block_ms
        self.reader = engine.event_reader(
            GROUP, self.consumer, count=batch, block_ms=block_ms, claim_idle_ms=claim_idle_ms
        )
        self.recovering = True  # first read our own pending entries (a restart after a crash)
        self.next_snapshot = 0.0
        self.next_claim = 0.0
        self.next_prune = time.monotonic() + 60
        self.lags_ms: list[int] = []  # now - event time, for the events applied (benchmarks)
        self.failing: str | None = None  # why the last step failed (None: it did not)
        self.last_applied = 0  # events the last read applied (pause_after)

    # -- the loop -------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        logger.info("mirror_started consumer=%s", self.consumer)
        relax_sqlite_durability()
        while not should_stop():
            try:
                recovered = self.recovering  # a read of its own pending entries
                applied = self.step(block=False)
            except (JobqueueError, DatabaseError) as exc:
                # Redis or the database cannot be used: said in one line (again only when the
                # reason changes), tried again in a second.
                if str(exc) != self.failing:
                    logger.error("mirror_step_failed error=%s", exc)
                self.failing = str(exc)
                self.recovering = True  # what it read and did not apply is read again first
                time.sleep(1)
                continue
            finally:
                close_old_connections()
            self.failing = None
            if not recovered:  # a read of its own pending entries says nothing of the pace
                time.sleep(self.pause_after(applied))

    def pause_after(self, applied: int) -> float:
        """How long to wait before the next read, after one that applied ``applied`` events.

        A full batch: none, there is more. Less: TICK, on the mirror's own timer, never
        blocked on the streams. A blocked read wakes the mirror at each enqueue, the moment a
        worker's child wakes to run the job, and on a small machine the two compete for a
        core (pickup latency); events gather meanwhile, so each commit carries many. When the
        queues are quiet (two reads in a row with fewer than QUIET events: under about 1,700
        jobs a second), QUIET_TICK: the mirror then wakes beside a child's pickup less often,
        and its rows lag by at most QUIET_TICK. Two reads, not one, so that a mirror that has
        just caught up in a full drain reads again soon (docs/performance.md, "The mirror
        when the queues are quiet")."""
        quiet = applied < QUIET and self.last_applied < QUIET
        self.last_applied = applied
        if applied >= self.batch:
            return 0.0
        return QUIET_TICK if quiet else TICK

    def drain(self, timeout: float = 30.0) -> int:
        """Apply everything there is now, then return how many events were applied."""
        total, deadline = 0, time.monotonic() + timeout
        while time.monotonic() < deadline:
            recovering = self.recovering  # a recovery read of nothing is not the end
            applied = self.step(block=False)
            total += applied
            if not applied and not recovering and not self.recovering:
                break
        return total

    def step(self, block: bool = True) -> int:
        """Read one batch from the streams, apply it, acknowledge it; snapshot when due."""
        now = time.monotonic()
        if now >= self.next_snapshot:
            self.next_snapshot = now + SNAPSHOT_EVERY
            self.snapshot()
        if now >= self.next_prune:
            from ..conf import jobqueue_settings

            self.next_prune = now + PRUNE_EVERY
            pruned = prune(jobqueue_settings.MIRROR_RETENTION_DAYS)
            if pruned:
                logger.info("mirror_pruned rows=%d", pruned)
        streams = self.reader.streams()
        if not streams:
            self.recovering = False  # no stream, so nothing of ours is pending
            time.sleep(self.block_ms / 1000 if block else 0)
            return 0
        if now >= self.next_claim:
            self.next_claim = now + self.reader.claim_idle_ms / 1000
            for key in self.reader.take_over(streams):
                logger.warning("mirror_takeover_failed stream=%s", key)
            self.recovering = True  # read what is now ours from the pending list
        pending = self.recovering
        with _collector_paused():
            delivery = self.reader.read(streams, pending=pending, block=block)
            if delivery.lost:
                self.recovering = True  # so drain() goes on to read the new streams
                return 0
            if pending and not delivery.entries:
                self.recovering = False
            if delivery.events:
                self.apply(delivery.events)
                now_ms = self.engine.now_ms()
                self.lags_ms.extend(now_ms - e.at_ms for e in delivery.events)
                del self.lags_ms[:-100_000]
            self.reader.ack(delivery)
            return len(delivery.events)

    def apply(self, events: list[Event]) -> None:
        """Write what the events do to the rows (without acknowledging them). An entry that
        cannot be applied (poison) is left out, logged, counted on its queue's row, and its
        job copied whole from Redis instead; every other event is applied."""
        try:
            self._apply(events)
        except JobqueueError:
            raise
        except POISON:
            # Some entry cannot be applied: apply them one at a time, to leave out only it.
            for event in events:
                try:
                    self._apply([event])
                except JobqueueError:
                    raise
                except POISON as exc:
                    self._poisoned(event, exc)

    def _apply(self, events: list[Event]) -> None:
        batch = build(events, known_rows(job_ids(events)), row_errors(error_jobs(events)))
        fill_gaps(batch, self.engine.find(list(batch.gaps)))
        skip_tombstoned(batch, tombstones(batch.new_rows()))
        write(batch)

    def _poisoned(self, event: Event, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        logger.warning(
            "mirror_poison entry=%s queue=%s job=%s error=%r",
            event.entry_id,
            event.queue,
            event.job_id,
            error,
        )
        record_poison(event.queue, f"{event.entry_id} (job {event.job_id}): {error}")
        if not event.local_id:
            return
        batch = Batch(gaps={event.job_id: []})  # the job as Redis holds it, or no change
        fill_gaps(batch, self.engine.find([event.job_id]))
        skip_tombstoned(batch, tombstones(batch.new_rows()))
        try:
            write(batch)
        except POISON as again:
            logger.warning("mirror_poison_copy_failed job=%s error=%r", event.job_id, str(again))

    def snapshot(self) -> None:
        """Copy queue counts, the worker registry and the schedules."""
        snapshot(self.engine)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a batch is applied: a batch makes tens of
    thousands of short-lived objects (no cycles: reference counting frees them), which would
    set off a collection every few hundred allocations."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def relax_sqlite_durability() -> None:
    """On SQLite, the mirror's connection commits without waiting for the disk
    (``synchronous = NORMAL``, safe in WAL mode): a crash may lose the last commits, which the
    mirror replays or ``jobqueue rebuild`` restores, since Redis holds the truth."""
    from django.db.backends.signals import connection_created

    connection_created.connect(_relaxed, dispatch_uid="jobqueue.mirror.relaxed")


def _relaxed(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous = NORMAL")
