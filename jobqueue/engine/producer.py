"""Enqueue: one job or many, validated before anything is written to Redis."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import codec
from .codec import text
from .config import EngineConfig
from .errors import DataLossDetected, InvalidJob
from .job import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    Job,
    JobState,
    datetime_to_ms,
    make_job_id,
    ms_to_datetime,
    new_local_id,
    split_job_id,
    validate_queue_name,
)
from .registry import TaskRegistry
from .replication import await_replicas
from .runner import Call, Part, ScriptRunner

if TYPE_CHECKING:
    from .reads import Reads

CHUNK = 500  # jobs per script call in a bulk enqueue (all chunks go in one round trip; at
# most 4000: enqueue.lua passes two values per job to one ZADD, and Lua's unpack() stops at 8000)
REPLY_STATES = {state.value.encode(): state for state in JobState}  # as a script replies
MAX_KEY_LENGTH = 200
# A job's timeout, in seconds: at least a millisecond (the soft timeout's timer counts in
# microseconds; 0 would switch it off), at most a year (longer overflows the timer on some
# platforms: 1e10 s does on 64-bit Linux).
MIN_TIMEOUT, MAX_TIMEOUT = 0.001, 365 * 86400


@dataclass(frozen=True)
class JobSpec:
    """What to enqueue. ``Engine.enqueue`` takes the same fields as keyword arguments."""

    task: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    run_after: datetime | None = None
    max_attempts: int = 1
    timeout: float | None = None
    result_ttl: int | None = None
    unique_key: str | None = None
    idempotency_id: str | None = None
    job_id: str | None = None


@dataclass(slots=True)
class _Prepared:
    spec: JobSpec
    local_id: str
    run_at_ms: int
    fields: list[Any]
    args: list[Any]
    kwargs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PlainEnqueue:
    """One kind of plain job (fresh id, no unique key, ready now) with its options checked and
    enqueue_one.lua's input built once, by ``Engine.plain_enqueue``: each
    ``Engine.enqueue_plain`` call only checks and encodes the arguments."""

    producer: Any  # the Producer that made it (its keys, its configuration)
    spec: JobSpec  # what it was made from (without arguments, from plain_enqueue)
    keys: tuple[str, ...]  # the script's KEYS but the job hash
    job_prefix: str  # the job hash's key, less the local id
    head: tuple[Any, ...]  # its ARGV after the epoch, before the local id
    tail: tuple[Any, ...]  # its ARGV after the local id, before the job's fields
    task: tuple[str, str]  # the job's first fields: "task", its name
    options: tuple[Any, ...]  # the job's fields after those two (and "prio" when not 0)


def _plain(spec: JobSpec) -> bool:
    """A job enqueue_one.lua can create: fresh id, no unique key, ready now."""
    return (
        spec.job_id is None
        and spec.idempotency_id is None
        and spec.unique_key is None
        and spec.run_after is None
    )


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if type(value) is int and low <= value <= high:
        return value  # the common case, checked first
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value != int(value)
    ):
        raise InvalidJob(f"{name} must be a whole number between {low} and {high}, not {value!r}.")
    if not low <= value <= high:
        raise InvalidJob(f"{name} must be between {low} and {high}, not {value!r}.")
    return int(value)


def valid_timeout(value: Any) -> bool:
    """Whether ``value`` is a timeout a job may have (seconds, MIN_TIMEOUT to MAX_TIMEOUT)."""
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and MIN_TIMEOUT <= value <= MAX_TIMEOUT  # False for nan
    )


def _check_key(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_KEY_LENGTH:
        raise InvalidJob(
            f"{name} must be a non-empty string of at most {MAX_KEY_LENGTH} characters, "
            f"not {value!r}."
        )
    return value


class Producer(Part):
    """Creates jobs: ``enqueue.lua`` for any batch, ``enqueue_one.lua`` for the common single
    plain job (which may hand it straight to an idle worker, see :mod:`.handoff`)."""

    def __init__(
        self, runner: ScriptRunner, config: EngineConfig, registry: TaskRegistry, reads: Reads
    ) -> None:
        super().__init__(runner, config)
        self.registry = registry
        self.reads = reads

    def plain_enqueue(self, spec: JobSpec) -> PlainEnqueue:
        """Check a plain spec's options once (raises InvalidJob or UnknownTask) for
        :meth:`enqueue_plain`. The spec has no arguments, ``job_id``, ``idempotency_id``,
        ``unique_key`` nor ``run_after``."""
        if not _plain(spec) or spec.args or spec.kwargs:
            raise InvalidJob(
                "plain_enqueue() takes a spec without args, kwargs, job_id, idempotency_id, "
                f"unique_key or run_after; use enqueue_many() for {spec!r}."
            )
        return self._plan(spec, self._prepare(spec).fields)

    def _plan(self, spec: JobSpec, fields: list[Any]) -> PlainEnqueue:
        qk, priority = self.keys.queue(spec.queue), int(spec.priority)
        return PlainEnqueue(
            self,
            spec,
            (qk.meta, qk.ready, qk.events, qk.wake, qk.idle, qk.leases),
            qk.job_prefix,
            (spec.queue, self.config.events_maxlen, self.config.wake_cap),
            (priority, qk.inbox_prefix, self.config.lease_ms),
            (fields[0], fields[1]),
            (*fields[2:], "prio", priority) if priority else tuple(fields[2:]),
        )

    def enqueue_plain(
        self,
        plan: PlainEnqueue,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        draft: Callable[[Job], None] | None = None,
    ) -> Job:
        """``enqueue_many([spec], draft)[0]`` for the plan's spec with these arguments, its
        options not checked again: the common ``.enqueue()``, kept short."""
        args, kwargs, fields = self._arguments(args, {} if kwargs is None else kwargs)
        fields = [*plan.task, *fields, *plan.options]
        item = _Prepared(plan.spec, new_local_id(), 0, fields, args, kwargs)
        return self._enqueue_one(plan, item, draft)

    def enqueue_many(
        self, specs: Iterable[JobSpec], draft: Callable[[Job], None] | None = None
    ) -> list[Job]:
        """Enqueue many jobs in one round trip; returns the jobs in the order given.

        Everything is validated first: one bad spec raises InvalidJob and nothing is written.
        A queue whose data Redis lost is reported (``ScriptRunner``) but does not fail the
        enqueue: these jobs are new, and are written once under the queue's new epoch.

        ``draft(job)`` lets a caller build what it returns from a job while Redis creates it
        (for one plain job: fresh id, no unique key, ready now): that job's ``enqueued_at`` is
        None until the reply comes, and is then set. A draft whose job is not the one returned
        (the id was there already) is to be thrown away; one that raises is ignored.
        """
        prepared = [self._prepare(spec) for spec in specs]
        if not prepared:
            return []
        if len(prepared) == 1 and _plain(prepared[0].spec):
            item = prepared[0]
            # A plan for this one job: its arguments are among the plan's options here.
            plan = self._plan(item.spec, item.fields)
            item.fields = [*plan.task, *plan.options]  # with "prio"
            return [self._enqueue_one(plan, item, draft)]
        by_queue: dict[str, list[int]] = {}
        for index, item in enumerate(prepared):
            by_queue.setdefault(item.spec.queue, []).append(index)
        calls: list[Call] = []
        chunks: list[tuple[str, list[int]]] = []
        for queue, indexes in by_queue.items():
            for start in range(0, len(indexes), CHUNK):
                chunk = indexes[start : start + CHUNK]
                keys, args = self._script_input(queue, [prepared[i] for i in chunk])
                calls.append(("enqueue", queue, keys, args))
                chunks.append((queue, chunk))
        jobs: list[Job | None] = [None] * len(prepared)

        def created(call: int, reply: Any) -> None:
            """The jobs a chunk created and not built yet (built while Redis runs the next
            chunks, or afterwards for replies not seen then). A created job's reply is its
            state; one that was not created is a list (status, the id there, its state)."""
            now_ms = int(reply[0])
            for index, state in zip(chunks[call][1], reply[1:], strict=True):
                if jobs[index] is None and not isinstance(state, list):
                    job_state = REPLY_STATES.get(state) or JobState(text(state))
                    jobs[index] = self._new_job(prepared[index], now_ms, job_state)

        replies = self.runner.run_batch(calls, raise_errors=False, on_reply=created)
        lost = [call for call, reply in enumerate(replies) if isinstance(reply, DataLossDetected)]
        if lost:  # refused before any write: these jobs were not lost, enqueue them now
            again = self.runner.run_batch([calls[call] for call in lost], raise_errors=False)
            for call, reply in zip(lost, again, strict=True):
                replies[call] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        for call, ((queue, chunk), reply) in enumerate(zip(chunks, replies, strict=True)):
            created(call, reply)
            for index, state in zip(chunk, reply[1:], strict=True):
                if jobs[index] is None:  # already there (same id, or a unique key held)
                    jobs[index] = self.reads.get(make_job_id(queue, text(state[1])))
        created_jobs = [job for job in jobs if job is not None]
        if self.config.enqueue_replicas:
            await_replicas(self.runner, self.config, [job.id for job in created_jobs])
        return created_jobs

    def _enqueue_one(
        self, plan: PlainEnqueue, item: _Prepared, draft: Callable[[Job], None] | None = None
    ) -> Job:
        """The common case in one lean script (enqueue_one.lua): fresh id, no unique key,
        ready now. The job (and the caller's ``draft``) is built while Redis runs the script:
        on a virtual machine the reply takes longer to come than both take to build."""
        spec = item.spec
        keys = [*plan.keys, plan.job_prefix + item.local_id]
        args = [*plan.head, item.local_id, *plan.tail, *item.fields]
        spin = self.config.enqueue_spin_us / 1e6
        drafts: list[Job] = []

        def while_redis_runs() -> None:
            try:  # version 1, as created (it may already be leased to an idle worker)
                job = self._new_job(item, None, JobState.QUEUED)  # the time comes with the reply
                if draft is not None:
                    draft(job)
            except Exception:  # built again after the reply, where it raises as it would
                return
            drafts.append(job)

        now_ms, status, _ = self.runner.run_despite_loss(
            "enqueue_one", spec.queue, keys, args, spin, while_redis_runs
        )
        if text(status) != "new":  # a repeated call after a lost reply: the job is there
            job = self.reads.get(make_job_id(spec.queue, item.local_id))
        elif drafts:
            job = drafts[-1]
            object.__setattr__(job, "enqueued_at", ms_to_datetime(int(now_ms)))  # not seen yet
        else:
            job = self._new_job(item, int(now_ms), JobState.QUEUED)
        if self.config.enqueue_replicas:
            await_replicas(self.runner, self.config, [job.id])
        return job

    def validate(self, spec: JobSpec) -> None:
        """Raise InvalidJob (or UnknownTask) if ``spec`` could not be enqueued."""
        self._prepare(spec)

    def _prepare(self, spec: JobSpec) -> _Prepared:
        if not isinstance(spec.task, str) or spec.task not in self.registry:
            self.registry.get(spec.task)  # raises UnknownTask with the full sentence
        queue = validate_queue_name(spec.queue)
        _check_int("priority", spec.priority, MIN_PRIORITY, MAX_PRIORITY)
        max_attempts = _check_int("max_attempts", spec.max_attempts, 1, 1000)
        run_at_ms = 0
        if spec.run_after is not None:
            if not isinstance(spec.run_after, datetime):
                raise InvalidJob(f"run_after must be a datetime, not {spec.run_after!r}.")
            if spec.run_after.tzinfo is None or spec.run_after.utcoffset() is None:
                raise InvalidJob(
                    f"run_after {spec.run_after!r} is a naive datetime; pass an aware one "
                    "(for example django.utils.timezone.now() + timedelta(...))."
                )
            run_at_ms = datetime_to_ms(spec.run_after)
        args, kwargs, fields = self._arguments(spec.args, spec.kwargs)
        fields[:0] = ["task", spec.task]
        if max_attempts != 1:
            fields += ["max", max_attempts]
        if spec.timeout is not None:
            if not valid_timeout(spec.timeout):
                raise InvalidJob(
                    f"timeout must be a number of seconds from {MIN_TIMEOUT} to {MAX_TIMEOUT} "
                    f"(a year), not {spec.timeout!r}."
                )
            fields += ["timeout", repr(float(spec.timeout))]
        if spec.result_ttl is not None:
            ttl = _check_int("result_ttl", spec.result_ttl, 1, 10 * 365 * 86400)
            fields += ["ttl", ttl]
        _check_key("unique_key", spec.unique_key)  # passed on its own: the script checks it
        idempotency = _check_key("idempotency_id", spec.idempotency_id)
        if spec.job_id is not None:
            job_queue, local_id = split_job_id(spec.job_id)
            if job_queue != queue:
                raise InvalidJob(f"job_id {spec.job_id!r} does not belong to queue {queue!r}.")
        elif idempotency is not None:
            local_id = hashlib.sha256(idempotency.encode()).hexdigest()[:24]
        else:
            local_id = new_local_id()
        return _Prepared(spec, local_id, run_at_ms, fields, args, kwargs)

    def _arguments(self, args: Any, kwargs: Any) -> tuple[list[Any], dict[str, Any], list[Any]]:
        """``(args, kwargs, their job fields)``: checked, copied and encoded."""
        if not isinstance(args, list | tuple):
            raise InvalidJob(f"args must be a list or tuple, not {type(args).__name__}.")
        if not isinstance(kwargs, Mapping):
            raise InvalidJob(f"kwargs must be a dict, not {type(kwargs).__name__}.")
        args, kwargs = list(args), dict(kwargs)
        fields: list[Any] = []
        size = 0
        if args:
            encoded = codec.dumps(args, what="args")
            size += len(encoded)
            fields += ["args", encoded]
        if kwargs:
            encoded = codec.dumps(kwargs, what="kwargs")
            size += len(encoded)
            fields += ["kwargs", encoded]
        if size > self.config.max_payload_bytes:
            raise InvalidJob(
                f"The job's arguments take {size} bytes, more than the limit of "
                f"{self.config.max_payload_bytes} (JOBQUEUE['ARGUMENTS_BYTES']); pass a "
                "reference (an id, a path) instead."
            )
        return args, kwargs, fields

    def _script_input(self, queue: str, items: list[_Prepared]) -> tuple[list, list]:
        qk = self.keys.queue(queue)
        keys = [qk.meta, qk.ready, qk.scheduled, qk.events, qk.wake, qk.uniques]
        args: list[Any] = [queue, self.config.events_maxlen, self.config.wake_cap, len(items)]
        for item in items:
            keys.append(qk.job(item.local_id))
            args += [
                item.local_id,
                item.run_at_ms,
                int(item.spec.priority),
                item.spec.unique_key or "",
                len(item.fields) // 2,
                *item.fields,
            ]
        return keys, args

    def _new_job(self, item: _Prepared, now_ms: int | None, state: JobState) -> Job:
        spec = item.spec
        return Job(
            id=make_job_id(spec.queue, item.local_id),
            queue=spec.queue,
            task=spec.task,
            state=state,
            version=1,
            args=item.args,
            kwargs=item.kwargs,
            priority=int(spec.priority),
            max_attempts=int(spec.max_attempts),
            timeout=float(spec.timeout) if spec.timeout is not None else None,
            result_ttl=spec.result_ttl,
            unique_key=spec.unique_key,
            enqueued_at=ms_to_datetime(now_ms),
            run_at=ms_to_datetime(item.run_at_ms) if state is JobState.SCHEDULED else None,
        )
