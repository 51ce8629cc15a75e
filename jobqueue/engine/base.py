"""The engine's shared core: configuration, the client, key names, scripts, epochs, and the
translation of Redis errors into jobqueue's own exceptions.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from .connection import is_cluster
from .errors import ConnectionFailed, DataLossDetected, JobqueueError
from .keys import KeySpace, QueueKeys
from .registry import TaskRegistry, default_registry
from .scripts import Scripts

if TYPE_CHECKING:
    from .job import Job

logger = logging.getLogger("jobqueue.engine")


@dataclass(frozen=True)
class EngineConfig:
    """Engine options. ``jobqueue.conf`` builds one from ``settings.JOBQUEUE``."""

    prefix: str = "jq"
    lease_seconds: float = 30.0
    result_ttl: int = 86400  # seconds a succeeded job stays in Redis
    failed_ttl: int = 7 * 86400  # seconds a failed or canceled job stays in Redis
    registry_limit: int = 10000
    events_maxlen: int = 100000
    max_stalls: int = 3
    wake_cap: int = 100  # most wake-up tokens kept per queue
    promote_batch: int = 100  # most due scheduled jobs promoted per claim
    backoff_base: float = 1.0  # first retry delay, doubled for each later attempt
    backoff_max: float = 3600.0
    max_payload_bytes: int = 16 * 1024 * 1024
    worker_dead_after: float = 15.0  # seconds without heartbeat before a worker is dead
    worker_forget_after: float = 3600.0  # seconds before a dead worker is removed
    # Microseconds an enqueue polls for Redis's reply before sleeping on it (0: never).
    enqueue_spin_us: int = 200

    @property
    def lease_ms(self) -> int:
        return int(self.lease_seconds * 1000)


class EngineBase:
    def __init__(
        self,
        client: Any,
        config: EngineConfig | None = None,
        registry: TaskRegistry | None = None,
    ) -> None:
        self.client = client
        self.config = config or EngineConfig()
        self.registry = registry if registry is not None else default_registry
        self.keys = KeySpace(self.config.prefix)
        self.scripts = Scripts(client)
        self.cluster = is_cluster(client)
        self._epochs: dict[str, str] = {}
        self._epoch_lock = threading.Lock()
        self.data_loss: list[DataLossDetected] = []  # every loss this engine noticed

    if TYPE_CHECKING:

        def get(self, job_id: str) -> Job: ...

    # -- queues and epochs -------------------------------------------------------------

    def qkeys(self, queue: str) -> QueueKeys:
        return self.keys.queue(queue)

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
        keys = self.qkeys(queue)
        try:
            raw = self.scripts.run("init_queue", [keys.meta], [secrets.token_hex(8), lost])
            self.client.sadd(self.keys.queues, queue)
        except redis.RedisError as exc:
            raise self._translate(exc, "init_queue") from exc
        epoch = raw.decode() if isinstance(raw, bytes) else str(raw)
        self._epochs[queue] = epoch
        return epoch

    def _on_data_loss(self, queue: str, message: str) -> DataLossDetected:
        tail = message.split("JQLOST", 1)[1].split()
        found = tail[0] if tail else ""
        expected = self._epochs.pop(queue, "")
        try:
            self._init_queue(queue, lost=expected)
        except JobqueueError:  # pragma: no cover - Redis went away again
            pass
        loss = DataLossDetected(queue, expected, found)
        self.data_loss.append(loss)
        logger.critical("data_loss queue=%s expected_epoch=%s found=%s", queue, expected, found)
        return loss

    # -- running scripts ----------------------------------------------------------------

    def run(
        self,
        name: str,
        queue: str,
        keys: list[str],
        args: list[Any],
        spin: float = 0,
        on_sent: Callable[[], None] | None = None,
    ) -> Any:
        """Run script ``name`` for ``queue``, passing the queue's epoch as ARGV[1]."""
        try:
            return self.scripts.run(name, keys, [self.epoch(queue), *args], spin, on_sent)
        except redis.RedisError as exc:
            raise self._translate(exc, name, queue) from exc

    def run_batch(
        self,
        calls: list[tuple[str, str, list[str], list[Any]]],
        raise_errors: bool = True,
        on_reply: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        """Run several ``(script, queue, keys, args)`` calls in one round trip; returns the
        replies in order, raising the first error (translated), or with ``raise_errors=False``
        putting each call's translated error in its place. On Redis Cluster, whose pipelines
        cannot run scripts, the calls run one after the other.

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
        prepared = [(name, keys, [self.epoch(queue), *args]) for name, queue, keys, args in calls]
        try:
            replies = self.scripts.run_many(prepared, on_reply)
        except redis.RedisError as exc:
            raise self._translate(exc, calls[0][0]) from exc
        out = []
        for (name, queue, _, _), reply in zip(calls, replies, strict=True):
            if isinstance(reply, Exception):
                error = self._translate(reply, name, queue)
                if raise_errors:
                    raise error
                reply = error
            out.append(reply)
        return out

    def _translate(self, exc: Exception, name: str, queue: str | None = None) -> JobqueueError:
        message = str(exc)
        if isinstance(exc, redis.ResponseError) and "JQLOST" in message and queue is not None:
            return self._on_data_loss(queue, message)
        if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            return ConnectionFailed(f"Redis could not be reached while running {name}: {exc}")
        return JobqueueError(f"Redis refused jobqueue's {name} script: {message}")

    def translate(self, exc: Exception, name: str, queue: str | None = None) -> JobqueueError:
        """Public form of the error translation, for callers running their own pipelines."""
        return self._translate(exc, name, queue)


def decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
