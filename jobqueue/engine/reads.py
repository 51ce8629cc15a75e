"""Reads: a job by id, counts per state, jobs per state (paged), queues, and wait()."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from .codec import text
from .errors import CorruptJob, JobNotFound, JobqueueError, WaitTimeout
from .job import (
    FIELDS,
    FINISHED_STATES,
    Job,
    JobState,
    ms_to_datetime,
    parse_state,
    split_job_id,
    validate_queue_name,
)
from .runner import Part
from .transport.connection import REDIS_ERRORS

BLOCK_SLICE = 5.0  # seconds per BLPOP; below the client's socket timeout


@dataclass(frozen=True)
class QueueInfo:
    name: str
    paused: bool
    counts: dict[JobState, int]
    epoch: str | None
    created_at: datetime | None
    data_lost_at: datetime | None  # when the engine noticed Redis lost this queue's data


class Reads(Part):
    """Reading jobs and queues: plain Redis reads (no script changes anything here)."""

    def get(self, job_id: str) -> Job:
        """The job with this id. Raises JobNotFound, CorruptJob for malformed data (its key
        holds another type, or a field does not read), ConnectionFailed, or JobqueueError when
        Redis refuses the read for a reason of its own (a cluster's slot down, an ACL)."""
        return self.get_many([job_id])[0]

    def get_many(self, job_ids: Sequence[str]) -> list[Job]:
        """Jobs by id, in one round trip. Raises JobNotFound for the first missing one."""
        jobs = []
        for found in self._read(job_ids):
            if isinstance(found, Exception):
                raise found
            jobs.append(found)
        return jobs

    def find(self, job_ids: Sequence[str]) -> list[Job]:
        """The jobs that exist among ``job_ids``, in one round trip (missing or malformed ones
        are skipped; a read Redis refuses raises JobqueueError, as for ``get``)."""
        return [found for found in self._read(job_ids) if isinstance(found, Job)]

    def head(self, job_id: str) -> tuple[Job, int]:
        """The job without its result (``result_json`` is None) and the result's size in
        bytes (0: none), in one round trip: for a page that shows a preview, so that a
        40 MiB result is not read to show its first lines. Raises JobNotFound, or CorruptJob
        for malformed data."""
        queue, local_id = split_job_id(job_id)
        jkey = self.keys.queue(queue).job(local_id)
        names = [name for name in FIELDS if name != "result"]
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(jkey, names)
        pipe.hstrlen(jkey, "result")
        try:
            values, size = pipe.execute()
        except REDIS_ERRORS as exc:
            if _wrong_type(exc):
                raise CorruptJob(f"Job {job_id!r} is not a hash in Redis: {exc}.") from exc
            raise self.runner.translate(exc, "get", queue) from exc
        found = zip(names, values, strict=True)
        raw = {name.encode(): value for name, value in found if value is not None}
        if not raw:
            raise JobNotFound(f"No job {job_id!r}: it never existed, expired, or was deleted.")
        return Job.from_redis(queue, local_id, raw), int(size)

    def _read(self, job_ids: Sequence[str]) -> list[Job | JobqueueError]:
        """Each job, or the error that stands for it (not found, malformed)."""
        parsed = [split_job_id(job_id) for job_id in job_ids]
        pipe = self.client.pipeline(transaction=False)
        for queue, local_id in parsed:
            pipe.hgetall(self.keys.queue(queue).job(local_id))
        try:
            replies = pipe.execute(raise_on_error=False)
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "get") from exc
        out: list[Job | JobqueueError] = []
        for job_id, (queue, local_id), raw in zip(job_ids, parsed, replies, strict=True):
            if _wrong_type(raw):
                out.append(CorruptJob(f"Job {job_id!r} is not a hash in Redis: {raw}."))
            elif isinstance(raw, Exception):  # refused (a cluster down, an ACL, loading): raised
                raise self.runner.translate(raw, "get", queue)
            elif not raw:
                out.append(
                    JobNotFound(f"No job {job_id!r}: it never existed, expired, or was deleted.")
                )
            else:
                try:
                    out.append(Job.from_redis(queue, local_id, raw))
                except CorruptJob as exc:
                    out.append(exc)
        return out

    def queues(self) -> list[str]:
        """Every queue name ever used under this prefix."""
        try:
            return sorted(text(q) for q in self.client.smembers(self.keys.queues))
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "queues") from exc

    def counts(self, queue: str) -> dict[JobState, int]:
        """How many jobs of ``queue`` are in each state."""
        return self.queue_info(queue).counts

    def queue_info(self, queue: str) -> QueueInfo:
        validate_queue_name(queue)
        qk = self.keys.queue(queue)
        sets = [
            (JobState.SCHEDULED, qk.scheduled),
            (JobState.QUEUED, qk.ready),
            (JobState.RUNNING, qk.leases),
            (JobState.SUCCEEDED, qk.succeeded),
            (JobState.FAILED, qk.failed),
            (JobState.CANCELED, qk.canceled),
        ]
        pipe = self.client.pipeline(transaction=False)
        for _, key in sets:
            pipe.zcard(key)
        pipe.hgetall(qk.meta)
        try:
            *sizes, meta = pipe.execute()
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "queue_info", queue) from exc
        meta = {text(k): text(v) for k, v in meta.items()}
        return QueueInfo(
            name=queue,
            paused=meta.get("paused") == "1",
            counts={state: int(size) for (state, _), size in zip(sets, sizes, strict=True)},
            epoch=meta.get("epoch"),
            created_at=ms_to_datetime(meta.get("created")),
            data_lost_at=ms_to_datetime(meta.get("lost_at")),
        )

    def job_ids(
        self, queue: str, state: JobState | str, offset: int = 0, limit: int = 50
    ) -> list[str]:
        """Ids of ``queue``'s jobs in ``state``: next to run first for queued / scheduled /
        running, most recent first for finished states."""
        wanted = parse_state(state)
        zset = self.keys.queue(validate_queue_name(queue)).of_state(wanted.value)
        try:
            ids = self.client.zrange(
                zset, offset, offset + limit - 1, desc=wanted in FINISHED_STATES
            )
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "job_ids", queue) from exc
        return [f"{queue}:{text(i)}" for i in ids]

    def jobs(
        self, queue: str, state: JobState | str, offset: int = 0, limit: int = 50
    ) -> list[Job]:
        """A page of ``queue``'s jobs in ``state`` (see :meth:`job_ids` for the order)."""
        return self.find(self.job_ids(queue, state, offset, limit))

    def wait(self, job_id: str, timeout: float = 30.0) -> Job:
        """Block until the job ends (succeeded, failed or canceled) and return it.

        No polling: the job's end pushes to a list this call blocks on (BLPOP). Raises
        WaitTimeout after ``timeout`` seconds, JobNotFound if the job does not exist.
        """
        queue, local_id = split_job_id(job_id)
        qk = self.keys.queue(queue)
        deadline = time.monotonic() + timeout
        while True:
            try:
                state = text(self.runner.scripts.run("wait_prepare", [qk.job(local_id)], []))
            except REDIS_ERRORS as exc:
                raise self.runner.translate(exc, "wait_prepare", queue) from exc
            if not state:
                raise JobNotFound(f"No job {job_id!r}: it never existed, expired, or was deleted.")
            if state != "waiting":
                return self.get(job_id)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(f"Job {job_id!r} did not finish within {timeout} seconds.")
            try:
                self.client.blpop(
                    [qk.done(local_id)], timeout=max(min(remaining, BLOCK_SLICE), 0.01)
                )
            except REDIS_ERRORS as exc:
                raise self.runner.translate(exc, "wait", queue) from exc


def _wrong_type(reply: Any) -> bool:
    """Whether Redis refused a read because the job's key holds another type (the job is
    malformed), not for a reason of its own (the key's slot is down, the user may not read it,
    a replica still loading): only the first makes the job corrupt."""
    return isinstance(reply, redis.ResponseError) and str(reply).startswith("WRONGTYPE")
