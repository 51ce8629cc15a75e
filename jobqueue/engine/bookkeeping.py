"""The worker registry, per-job logs and schedule state: bookkeeping beside the job state
machine. None of it is a job transition, so none of it is a script or an event.

- ``<prefix>:workers`` (zset: name -> last heartbeat ms) and ``<prefix>:worker:<name>`` (hash),
  like RQ's ``rq:workers`` / ``rq:worker:<name>``. A worker whose heartbeat is older than
  ``worker_dead_after`` is shown as dead; after ``worker_forget_after`` it is removed.
- ``<prefix>:{<queue>}:log:<id>`` (list of JSON records), capped, expiring with the job.
- ``<prefix>:schedules`` (hash): ``<name>:last`` (last tick ms), ``<name>:paused``,
  ``<name>:job`` (id of the last job enqueued), one field each so no update overwrites another,
  and ``<name>:v``, the state's version, bumped in the same MULTI as every change: a copy made
  from an older read (the mirror's row) can tell it is older.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import codec
from .codec import text
from .job import ms_to_datetime, split_job_id
from .runner import Part
from .transport.connection import REDIS_ERRORS

LOG_CAP = 500  # records kept per job


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    alive: bool
    last_heartbeat: datetime | None
    hostname: str = ""
    pid: int = 0
    queues: tuple[str, ...] = ()
    concurrency: int = 0
    birth: datetime | None = None
    state: str = "dead"  # idle, busy, stopping; dead when the heartbeat stopped
    current_jobs: tuple[str, ...] = ()
    successful: int = 0
    failed: int = 0
    working_time: float = 0.0  # seconds spent running jobs


class WorkerRegistry(Part):
    """Every worker's record, like RQ's ``rq:workers``: kept by each worker's heartbeat."""

    def heartbeat(self, name: str, fields: Mapping[str, Any]) -> None:
        """Record a worker's state and heartbeat (on the Redis clock)."""
        now = self.runner.now_ms()
        key = self.keys.worker(name)
        mapping = {
            k: (",".join(v) if isinstance(v, list | tuple) else v) for k, v in fields.items()
        }
        mapping["last_heartbeat"] = now
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(key, mapping=mapping)
            pipe.pexpire(key, int(self.config.worker_forget_after * 1000))
            pipe.zadd(self.keys.workers, {name: now})
            pipe.execute()
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "worker_heartbeat") from exc

    def gone(self, name: str) -> None:
        """A worker's clean exit: remove it from the registry."""
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(self.keys.worker(name))
            pipe.zrem(self.keys.workers, name)
            pipe.execute()
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "worker_gone") from exc

    def all(self) -> list[WorkerInfo]:
        """Every registered worker, live ones first; dead ones are marked ``alive=False``."""
        try:
            now = self.runner.now_ms()
            entries = self.client.zrange(self.keys.workers, 0, -1, withscores=True)
            pipe = self.client.pipeline(transaction=False)
            for name, _ in entries:
                pipe.hgetall(self.keys.worker(text(name)))
            hashes = pipe.execute() if entries else []
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "workers") from exc
        out = []
        for (raw_name, score), raw in zip(entries, hashes, strict=True):
            h = {text(k): text(v) for k, v in raw.items()}
            alive = now - score < self.config.worker_dead_after * 1000
            out.append(
                WorkerInfo(
                    name=text(raw_name),
                    alive=alive,
                    last_heartbeat=ms_to_datetime(int(score)),
                    hostname=h.get("hostname", ""),
                    pid=int(h.get("pid") or 0),
                    queues=tuple(q for q in h.get("queues", "").split(",") if q),
                    concurrency=int(h.get("concurrency") or 0),
                    birth=ms_to_datetime(h.get("birth")),
                    state=h.get("state", "unknown") if alive else "dead",
                    current_jobs=tuple(j for j in h.get("current_jobs", "").split(",") if j),
                    successful=int(h.get("successful") or 0),
                    failed=int(h.get("failed") or 0),
                    working_time=float(h.get("working_time") or 0),
                )
            )
        out.sort(key=lambda w: (not w.alive, w.name))
        return out

    def forget_dead(self) -> int:
        """Remove workers whose heartbeat stopped longer than ``worker_forget_after`` ago."""
        try:
            cutoff = self.runner.now_ms() - int(self.config.worker_forget_after * 1000)
            names = self.client.zrangebyscore(self.keys.workers, "-inf", cutoff)
            if names:
                pipe = self.client.pipeline(transaction=False)
                for name in names:
                    pipe.delete(self.keys.worker(text(name)))
                pipe.zrem(self.keys.workers, *names)
                pipe.execute()
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "forget_dead_workers") from exc
        return len(names)


class JobLogs(Part):
    """The log records each task wrote while it ran, kept beside its job."""

    def append(self, job_id: str, records: Sequence[Mapping[str, Any]]) -> None:
        """Keep log records written by the task while it ran (the last LOG_CAP of them)."""
        if not records:
            return
        queue, local_id = split_job_id(job_id)
        key = self.keys.queue(queue).log(local_id)
        cap = self.config.log_line_bytes
        encoded = [
            codec.encode({**r, "msg": codec.clip(str(r.get("msg", "")), cap)}) for r in records
        ]
        ttl = max(self.config.failed_ttl, self.config.result_ttl) * 1000
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.rpush(key, *encoded)
            pipe.ltrim(key, -LOG_CAP, -1)
            pipe.pexpire(key, ttl)
            pipe.execute()
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "append_logs", queue) from exc

    def read(self, job_id: str, start: int = 0) -> list[dict[str, Any]]:
        """The job's log records, from the ``start``-th on."""
        queue, local_id = split_job_id(job_id)
        try:
            raw = self.client.lrange(self.keys.queue(queue).log(local_id), start, -1)
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "logs", queue) from exc
        records = []
        for item in raw:
            try:
                record = codec.loads(item)
            except ValueError:
                record = {"msg": item.decode(errors="replace"), "level": "?"}
            if isinstance(record, dict):
                records.append(record)
        return records


class ScheduleStates(Part):
    """Each periodic schedule's state: its last tick, whether it is paused, its last job."""

    def get(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        """``{name: {"last": ms, "paused": "1", "job": id, "v": version}}`` for each schedule
        (fields present only when set), all read at one moment."""
        if not names:
            return {}
        fields = [f"{n}:{part}" for n in names for part in ("last", "paused", "job", "v")]
        try:
            values = self.client.hmget(self.keys.schedules, fields)
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "schedule_states") from exc
        states: dict[str, dict[str, str]] = {n: {} for n in names}
        for field_name, value in zip(fields, values, strict=True):
            if value is not None:
                name, _, part = field_name.rpartition(":")
                states[name][part] = text(value)
        return states

    def set(self, name: str, **parts: str | int | None) -> None:
        """Set (or, with None, clear) fields of one schedule's state, and bump its version in
        the same transaction (one key, so one slot on a cluster too)."""
        key = self.keys.schedules
        try:
            pipe = self.client.pipeline(transaction=True)
            for part, value in parts.items():
                if value is None:
                    pipe.hdel(key, f"{name}:{part}")
                else:
                    pipe.hset(key, f"{name}:{part}", value)
            pipe.hincrby(key, f"{name}:v", 1)
            pipe.execute()
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "set_schedule_state") from exc
