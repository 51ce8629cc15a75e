"""The mirror: keeps the Django models a copy of Redis.

It reads every queue's event stream through a consumer group (``jq-mirror``), so several mirror
processes share the work and a crashed one's unacknowledged events are taken over; applies them
in batches (``mirror_apply``), then acknowledges them. Every second it also copies the queues'
counts, the worker registry and the schedules. It runs inside ``runworker`` (one process per
worker; ``--no-mirror`` or ``JOBQUEUE["MIRROR"] = False`` turns it off) or alone with
``manage.py jobqueue_mirror``.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import redis
from django.db import close_old_connections, transaction
from django.utils import timezone

from .engine import Engine, JobqueueError
from .engine.job import FINISHED_STATES, JobState
from .mirror_apply import TOMBSTONE, build, row_from_job, to_datetime, write
from .mirror_events import Event, parse_event
from .mirror_rows import refresh_settings
from .models import Job, JobTransition, Queue, QueueStat, Schedule, Worker

logger = logging.getLogger("jobqueue.mirror")
GROUP = "jq-mirror"
CLAIM_IDLE_MS = 30_000  # events a consumer left unacknowledged this long are taken over
SNAPSHOT_EVERY = 1.0
LINGER = 0.2  # seconds to wait after a small batch
PRUNE_EVERY = 3600.0


class Mirror:
    def __init__(
        self, engine: Engine, consumer: str | None = None, batch: int = 2000, block_ms: int = 500
    ) -> None:
        self.engine = engine
        self.consumer = consumer or f"{socket.gethostname()}.{os.getpid()}"
        self.batch = batch
        self.block_ms = block_ms
        self.groups: set[str] = set()
        self.recovering = True  # first read our own pending entries (a restart after a crash)
        self.next_snapshot = 0.0
        self.next_claim = 0.0
        self.next_prune = time.monotonic() + 60
        self.lags_ms: list[int] = []  # now - event time, for the events applied (benchmarks)

    # -- the loop -------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        logger.info("mirror_started consumer=%s", self.consumer)
        relax_sqlite_durability()
        while not should_stop():
            try:
                applied = self.step()
            except JobqueueError as exc:
                logger.warning("mirror_step_failed error=%s", exc)
                time.sleep(1)
                continue
            finally:
                close_old_connections()
            if 0 < applied < self.batch:
                # A small batch: let events gather a moment, so each commit (and its fsync)
                # carries many of them. Keeps the lag well under a second.
                time.sleep(LINGER)

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
            from .conf import jobqueue_settings

            self.next_prune = now + PRUNE_EVERY
            pruned = prune(jobqueue_settings.MIRROR_RETENTION_DAYS)
            if pruned:
                logger.info("mirror_pruned rows=%d", pruned)
        streams = self._streams()
        if not streams:
            self.recovering = False  # no stream, so nothing of ours is pending
            time.sleep(self.block_ms / 1000 if block else 0)
            return 0
        if now >= self.next_claim:
            self.next_claim = now + CLAIM_IDLE_MS / 1000
            self._take_over(streams)
        pending = self.recovering
        start = "0" if pending else ">"
        with _collector_paused():
            replies = self._read({key: start for key in streams}, block and not pending)
            return self._apply(streams, replies, pending)

    def _apply(self, streams: dict[str, str], replies: list, pending: bool) -> int:
        """Apply the events read, then acknowledge them; how many were applied."""
        events: list[Event] = []
        acks: dict[str, list[Any]] = {}
        text = not self.engine.cluster  # _read decoded the reply (Cluster's comes as bytes)
        for key, entries in replies:
            key = key.decode() if isinstance(key, bytes) else key
            for entry_id, fields in entries:
                acks.setdefault(key, []).append(entry_id)
                if fields:  # a pending entry trimmed from the stream has no fields
                    event = parse_event(streams[key], entry_id, fields, text)
                    if event is not None:
                        events.append(event)
        if pending and not acks:
            self.recovering = False
        if events:
            write(build(self.engine, events))
            now_ms = self.engine.redis_time_ms()
            self.lags_ms.extend(now_ms - e.at_ms for e in events)
            del self.lags_ms[:-100_000]
        for key, ids in acks.items():
            self.engine.client.xack(key, GROUP, *ids)
        return len(events)

    # -- streams and the consumer group ---------------------------------------------------

    def _streams(self) -> dict[str, str]:
        """Event stream key -> queue, for every queue; the group is created on first sight."""
        streams = {}
        for queue in self.engine.queues():
            key = self.engine.qkeys(queue).events
            if key not in self.groups:
                try:
                    self.engine.client.xgroup_create(key, GROUP, id="0", mkstream=True)
                except redis.ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise self.engine.translate(exc, "xgroup_create", queue) from exc
                self.groups.add(key)
            streams[key] = queue
        return streams

    def _read(self, streams: dict[str, str], block: bool) -> list:
        try:
            if self.engine.cluster:  # one stream per call: they live in different slots
                out: list[Any] = []
                for key, start in streams.items():
                    out += (
                        self.engine.client.xreadgroup(
                            GROUP, self.consumer, {key: start}, count=self.batch
                        )
                        or []
                    )
                return out
            # Sent on the engine's own connection (``engine/direct.py``): the reply comes as
            # Redis sends it, {stream: [[id, [name, value, ...]], ...]} (a list of pairs in
            # RESP2), without redis-py's conversion of every entry to a dict.
            command: list[Any] = ["XREADGROUP", "GROUP", GROUP, self.consumer]
            command += ["COUNT", self.batch]
            if block:
                command += ["BLOCK", self.block_ms]
            command += ["STREAMS", *streams, *streams.values()]
            direct = self.engine.scripts.direct
            assert direct is not None  # every client but Cluster's
            reply = direct.execute(*command, text=True) or []
            return list(reply.items()) if isinstance(reply, dict) else reply
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream was lost (Redis data loss): start over
                self.groups.clear()
                self.recovering = True  # so drain() goes on to read the new streams
                return []
            raise self.engine.translate(exc, "xreadgroup") from exc
        except redis.RedisError as exc:
            raise self.engine.translate(exc, "xreadgroup") from exc

    def _take_over(self, streams: dict[str, str]) -> None:
        """Claim the events another mirror process read but never acknowledged (it died)."""
        for key in streams:
            cursor = "0-0"
            try:
                for _ in range(1000):  # the whole pending list, a batch at a time
                    # Without JUSTID: redis-py returns the scan cursor only then.
                    reply = self.engine.client.xautoclaim(
                        key,
                        GROUP,
                        self.consumer,
                        CLAIM_IDLE_MS,
                        start_id=cursor,
                        count=self.batch,
                    )
                    cursor = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
                    if cursor == "0-0":
                        break
            except redis.RedisError as exc:
                logger.warning("mirror_takeover_failed stream=%s error=%s", key, exc)
        self.recovering = True  # read what is now ours from the pending list

    # -- snapshots ------------------------------------------------------------------------

    def snapshot(self) -> None:
        """Copy queue counts, the worker registry and the schedules."""
        refresh_settings()
        for name in self.engine.queues():
            info = self.engine.queue_info(name)
            counts = {state.value: n for state, n in info.counts.items()}
            Queue.objects.update_or_create(
                name=name,
                defaults={"paused": info.paused, "data_lost_at": info.data_lost_at, **counts},
            )
        workers = self.engine.workers()
        with transaction.atomic():
            for w in workers:
                Worker.objects.update_or_create(
                    name=w.name,
                    defaults={
                        "hostname": w.hostname,
                        "pid": w.pid,
                        "queues": list(w.queues),
                        "concurrency": w.concurrency,
                        "state": w.state,
                        "alive": w.alive,
                        "current_jobs": list(w.current_jobs),
                        "successful": w.successful,
                        "failed": w.failed,
                        "working_time": w.working_time,
                        "birth": w.birth,
                        "last_heartbeat": w.last_heartbeat,
                    },
                )
            Worker.objects.exclude(name__in=[w.name for w in workers]).delete()
        self._snapshot_schedules()

    def _snapshot_schedules(self) -> None:
        from .schedules import all_schedules, next_run

        schedules = all_schedules()
        states = self.engine.schedule_states(list(schedules))
        with transaction.atomic():
            for name, s in schedules.items():
                state = states.get(name, {})
                Schedule.objects.update_or_create(
                    name=name,
                    defaults={
                        "task": s.task,
                        "cron": s.cron or "",
                        "every": s.every,
                        "args": s.args,
                        "kwargs": s.kwargs,
                        "queue": s.queue,
                        "paused": state.get("paused") == "1",
                        "last_tick": to_datetime(state.get("last")),
                        "last_job": state.get("job", ""),
                        "next_run": next_run(s),
                    },
                )
            Schedule.objects.exclude(name__in=list(schedules)).delete()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a batch is applied: a batch makes tens of
    thousands of short-lived objects (no cycles: reference counting frees them), which would
    set off a collection every few hundred allocations. Measured with ``bench/mirror_cost.py``:
    about a tenth of the mirror's CPU per job."""
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
    mirror replays or ``jobqueue_rebuild`` restores, since Redis holds the truth."""
    from django.db.backends.signals import connection_created

    connection_created.connect(_relaxed, dispatch_uid="jobqueue.mirror.relaxed")


def _relaxed(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous = NORMAL")


def rebuild(engine: Engine, page: int = 1000) -> dict[str, int]:
    """Reconcile the rows with Redis: copy every job Redis holds; a row of an unfinished job
    that Redis no longer holds is marked failed (lost). Finished rows are kept: history."""
    from .mirror_apply import _upsert_jobs

    copied, seen = 0, set()
    for queue in engine.queues():
        for state in JobState:
            offset = 0
            while ids := engine.job_ids(queue, state, offset, page):
                rows = [row_from_job(job) for job in engine.find(ids)]
                with transaction.atomic():
                    _upsert_jobs(rows)
                copied += len(rows)
                seen.update(ids)
                offset += page
    active = [s.value for s in JobState if s not in FINISHED_STATES]
    unseen = [
        job_id
        for job_id in Job.objects.filter(status__in=active).values_list("id", flat=True)
        if job_id not in seen
    ]
    lost = 0
    for start in range(0, len(unseen), page):
        chunk = unseen[start : start + page]
        # A job that changed state between two pages above was not seen, yet it is there.
        moved = [row_from_job(job) for job in engine.find(chunk)]
        with transaction.atomic():
            _upsert_jobs(moved)
            gone = set(chunk) - {row.id for row in moved}
            lost += Job.objects.filter(id__in=gone, status__in=active).update(
                status=JobState.FAILED.value,
                reason="lost: Redis no longer holds this job",
                finished_at=timezone.now(),
            )
        copied += len(moved)
    return {"copied": copied, "lost": lost}


def prune(days: float, batch: int = 5000) -> int:
    """Delete rows of jobs that finished more than ``days`` ago (and their transitions)."""
    try:
        cutoff = timezone.now() - timedelta(days=days)
    except OverflowError:  # further back than dates go (days=inf): nothing is that old
        cutoff = None
    finished = [s.value for s in FINISHED_STATES]
    deleted = 0
    while cutoff is not None:
        ids = list(
            # A job that finished before the cutoff was enqueued before it too: the range on
            # enqueued_at walks an index, and there is none on finished_at to keep up.
            Job.objects.filter(
                enqueued_at__lt=cutoff, status__in=finished, finished_at__lt=cutoff
            ).values_list("id", flat=True)[:batch]
        )
        if not ids:
            break
        with transaction.atomic():
            JobTransition.objects.filter(job_id__in=ids).delete()
            deleted += Job.objects.filter(id__in=ids).delete()[1].get(Job._meta.label, 0)
    if cutoff is not None:  # tombstones of deleted jobs, as old
        JobTransition.objects.filter(version=TOMBSTONE, at__lt=cutoff).delete()
    QueueStat.objects.filter(minute__lt=timezone.now() - timedelta(days=2)).delete()
    return deleted
