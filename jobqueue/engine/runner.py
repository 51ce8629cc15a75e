"""Running the engine's scripts: each call carries its queue's epoch, and Redis's errors come
back as jobqueue's own exceptions.

Every part of the engine (producer, reads, operations, the worker protocol, the event reader)
holds the one ``ScriptRunner`` of its engine: the client, the key names, the loaded scripts and
the epochs known so far.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis

from .codec import text
from .config import EngineConfig
from .errors import ConnectionFailed, DataLossDetected, JobqueueError, RedisFull
from .keys import KeySpace
from .transport.connection import REDIS_ERRORS, UNAVAILABLE, is_cluster
from .transport.scripts import Scripts

logger = logging.getLogger("jobqueue.engine")

# One script call: (script name, queue, KEYS, ARGV after the epoch).
Call = tuple[str, str, list[str], list[Any]]

# Called with each loss of a queue's data any runner of this process notices, once per loss,
# after it is recorded (outside the runner's lock). This is how the loss reaches the layers
# above the engine: jobqueue's app appends the sender of its ``data_loss_detected`` signal
# (``jobqueue/signals.py``). A listener that raises is logged and does not stop the others.
LOSS_LISTENERS: list[Callable[[DataLossDetected], None]] = []

# The text of Redis's OOM error (its code, "OOM", is not part of the message redis-py keeps).
OUT_OF_MEMORY = "command not allowed when used memory > 'maxmemory'"


class ScriptRunner:
    """Runs scripts about a queue with the queue's **epoch** as ARGV[1]: a random id set once
    per queue (``init_queue.lua``). A script that finds another epoch, or none, refuses to run:
    Redis lost the queue's data, and the caller gets :class:`DataLossDetected` instead of
    carrying on blind. The loss is recorded in the queue's meta hash (``lost_epoch``,
    ``lost_at``) and in :attr:`data_loss`, logged at CRITICAL and told to ``LOSS_LISTENERS``,
    once per runner, and a new epoch begins. A refused script wrote nothing (the epoch is
    checked before any write), so a caller may run it again under the new epoch: an enqueue
    does (:meth:`run_despite_loss`), since the job it brings was not lost."""

    def __init__(self, client: Any, keys: KeySpace) -> None:
        self.client = client
        self.keys = keys
        self.scripts = Scripts(client)
        self.cluster = is_cluster(client)
        self._epochs: dict[str, str] = {}
        self._epoch_lock = threading.Lock()
        self.data_loss: list[DataLossDetected] = []  # every loss this runner noticed

    # -- queues and epochs ------------------------------------------------------------------

    def epoch(self, queue: str) -> str:
        """The queue's epoch, creating it (and registering the queue name) on first use."""
        epoch = self._epochs.get(queue)
        if epoch is None:
            with self._epoch_lock:
                epoch = self._epochs.get(queue)
                if epoch is None:
                    epoch = self._init_queue(queue, lost="")
        return epoch

    def _init_queue(self, queue: str, lost: str) -> str:
        try:
            raw = self.scripts.run(
                "init_queue", [self.keys.queue(queue).meta], [secrets.token_hex(8), lost]
            )
            self.client.sadd(self.keys.queues, queue)
        except REDIS_ERRORS as exc:
            raise self.translate(exc, "init_queue") from exc
        epoch = self._epochs[queue] = text(raw)
        return epoch

    def _on_data_loss(self, queue: str, message: str, used: str | None) -> DataLossDetected:
        """Record that ``queue`` lost its data, found by a call made under epoch ``used``
        (None: unknown). Threads that all met the same loss record it once: the first one
        starts the new epoch, the others find their epoch already replaced."""
        tail = message.split("JQLOST", 1)[1].split()
        found = tail[0] if tail else ""
        with self._epoch_lock:
            known = self._epochs.get(queue)
            if used is not None and known is not None and known != used:
                # Already noticed (by another thread): the new epoch began.
                earlier = [loss for loss in self.data_loss if loss.queue == queue]
                return earlier[-1] if earlier else DataLossDetected(queue, used, found)
            expected = self._epochs.pop(queue, "")
            try:
                self._init_queue(queue, lost=expected)
            except JobqueueError:  # pragma: no cover - Redis went away again
                pass
            noticed = datetime.now(UTC)
            loss = DataLossDetected(queue, expected, found, noticed)
            self.data_loss.append(loss)
        logger.critical(
            "data_loss queue=%s noticed_at=%s expected_epoch=%s found=%s: Redis lost the jobs "
            "this queue held (restart without persistence, flush); run 'manage.py jobqueue "
            "rebuild' and check Redis persistence (appendonly yes)",
            queue,
            noticed.isoformat(timespec="milliseconds"),
            expected,
            found or "missing",
        )
        for listener in list(LOSS_LISTENERS):
            try:
                listener(loss)
            except Exception:
                logger.exception("data_loss listener %r failed", listener)
        return loss

    # -- running scripts --------------------------------------------------------------------

    def run(self, name: str, queue: str, keys: list, args: list, *options: Any) -> Any:
        """Run script ``name`` about ``queue``; ``options`` (``spin``, ``on_sent``) as
        :meth:`Scripts.run` takes them."""
        epoch = self.epoch(queue)
        try:
            return self.scripts.run(name, keys, [epoch, *args], *options)
        except REDIS_ERRORS as exc:
            raise self.translate(exc, name, queue, epoch) from exc

    def run_despite_loss(
        self, name: str, queue: str, keys: list, args: list, *options: Any
    ) -> Any:
        """:meth:`run`, once more under the new epoch when Redis lost the queue's data: for a
        script that brings new data (an enqueue), whose work was not lost. The loss is
        recorded and reported all the same; the refused call wrote nothing, so the script
        runs exactly once."""
        try:
            return self.run(name, queue, keys, args, *options)
        except DataLossDetected:
            return self.run(name, queue, keys, args, *options)

    def run_batch(
        self,
        calls: list[Call],
        raise_errors: bool = True,
        on_reply: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        """Run several calls in one round trip; returns the replies in order, raising the
        first error (translated), or with ``raise_errors=False`` putting each call's
        translated error in its place (a lost connection always raises). On Redis Cluster,
        whose pipelines cannot run scripts, the calls run one after the other.

        ``on_reply(i, reply)`` may be called with replies as they arrive, while Redis still
        runs later calls (not on Cluster, nor for one call, nor for errors); it must not use
        this thread's Redis connection, and it may see the same ``i`` twice."""
        if self.cluster or len(calls) == 1:
            out = []
            for name, queue, keys, args in calls:
                try:
                    out.append(self.run(name, queue, keys, args))
                except JobqueueError as exc:
                    if raise_errors or isinstance(exc, ConnectionFailed):
                        raise
                    out.append(exc)
            return out
        epochs = [self.epoch(queue) for _, queue, _, _ in calls]
        prepared = [
            (name, keys, [epoch, *args])
            for (name, _, keys, args), epoch in zip(calls, epochs, strict=True)
        ]
        try:
            replies = self.scripts.run_many(prepared, on_reply)
        except REDIS_ERRORS as exc:
            raise self.translate(exc, calls[0][0]) from exc
        out = []
        for (name, queue, _, _), epoch, reply in zip(calls, epochs, replies, strict=True):
            if isinstance(reply, Exception):
                error = self.translate(reply, name, queue, epoch)
                if raise_errors:
                    raise error
                reply = error
            out.append(reply)
        return out

    def now_ms(self) -> int:
        """Now, on the Redis clock (the clock every lease and heartbeat is measured on)."""
        try:
            seconds, micros = self.client.time()
        except REDIS_ERRORS as exc:
            raise self.translate(exc, "time") from exc
        return int(seconds) * 1000 + int(micros) // 1000

    def translate(
        self, exc: Exception, name: str, queue: str | None = None, epoch: str | None = None
    ) -> JobqueueError:
        """jobqueue's exception for a Redis error met while running ``name`` (under
        ``epoch``, when known): data loss (noticed and recorded here), a lost connection, or a
        refusal."""
        message = str(exc)
        if isinstance(exc, redis.ResponseError) and "JQLOST" in message and queue is not None:
            return self._on_data_loss(queue, message, epoch)
        if isinstance(exc, UNAVAILABLE):
            return ConnectionFailed(f"Redis could not be reached while running {name}: {exc}")
        if isinstance(exc, redis.ResponseError) and OUT_OF_MEMORY in message:
            return self._redis_full(name)
        return JobqueueError(f"Redis refused jobqueue's {name} script: {message}")

    def _redis_full(self, name: str) -> RedisFull:
        """The error for a script Redis refused because it is full, with its figures."""
        try:  # INFO, not CONFIG GET: managed services and least-privilege users refuse CONFIG
            memory = self.client.info("memory")
            used, limit = int(memory["used_memory"]), int(memory["maxmemory"])
            policy = str(memory.get("maxmemory_policy", "noeviction"))
            figures = (
                f"it uses {used} bytes, over its maxmemory of {limit} bytes "
                f"({limit / 2**20:.1f} MiB), and maxmemory-policy {policy} refuses writes"
            )
        except (redis.RedisError, KeyError, ValueError):  # INFO refused or unreadable
            figures = "its used memory is over maxmemory and its policy refuses writes"
        refused = (
            "the job was not enqueued (nothing was written; enqueue it again once memory is free)"
            if name.startswith("enqueue")
            else f"jobqueue's {name} script was refused and wrote nothing"
        )
        return RedisFull(
            f"Redis is full: {figures}, so {refused}. Free memory (finished jobs: "
            "'manage.py jobqueue purge', shorter RESULT_TTL / FAILED_TTL; other data kept in "
            "this Redis) or raise maxmemory; keep "
            "maxmemory-policy noeviction, so Redis never evicts jobs."
        )


class Part:
    """A part of an engine (reads, operations, the worker protocol...): it runs its scripts
    with the engine's runner, under the engine's options."""

    def __init__(self, runner: ScriptRunner, config: EngineConfig) -> None:
        self.runner = runner
        self.config = config
        self.client = runner.client
        self.keys = runner.keys
