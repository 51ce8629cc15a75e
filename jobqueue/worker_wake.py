"""Waking an idle worker without polling: a dedicated connection blocked in BLPOP on the queues'
wake lists, watched with select() next to the children's pipes.

Enqueue pushes a token to the queue's wake list after the job is ready, so a worker that found
nothing and then blocks can never miss a job. The BLPOP times out every ``timeout`` seconds so
the worker also claims (and so promotes due scheduled jobs) at least that often.

The worker also blocks on its inboxes: while it waits idle it is registered in its queues'
idle sets (``IdleRegistration``), and an enqueue may lease a new job to it straight away and
push the claim there (see ``jobqueue/engine/handoff.py``).

Redis Cluster forbids BLPOP across slots; there the worker falls back to claiming every
``CLUSTER_POLL`` seconds (and never registers as idle).
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from .engine import CorruptJob
from .engine.connection import is_cluster

logger = logging.getLogger("jobqueue.worker")
CLUSTER_POLL = 0.05


class IdleRegistration:
    """The worker's registrations in its queues' idle sets: made just before it blocks,
    dropped (with what its inboxes hold) in the first exchange after it wakes."""

    def __init__(self, engine: Any, worker: str, queues: tuple[str, ...], ttl: float) -> None:
        self.engine = engine
        self.worker = worker
        self.queues = queues
        self.ttl = ttl
        self.waiting_on: tuple[str, ...] = ()  # the queues it is registered in
        self.inboxes = {engine.qkeys(q).inbox(worker): q for q in queues}

    @property
    def registered(self) -> bool:
        return bool(self.waiting_on)

    def register_calls(self, room: int) -> list[Any]:
        """Register in the first ``room`` queues (each registration may bring one job)."""
        self.waiting_on = self.queues[: max(room, 0)]
        return [self.engine.idle_call(q, self.worker, True, self.ttl) for q in self.waiting_on]

    def unregister_calls(self) -> list[Any]:
        return [self.engine.idle_call(q, self.worker, False) for q in self.waiting_on]

    def read(self, replies: list[Any]) -> list[tuple[Any, int]]:
        """The claims handed over, each with the Redis time its remaining lease counts from."""
        out: list[tuple[Any, int]] = []
        for queue, reply in zip(self.waiting_on, replies, strict=True):
            if isinstance(reply, Exception):
                logger.error("idle_registration_failed queue=%s error=%s", queue, reply)
                continue
            try:
                now_ms, claims = self.engine.read_inbox(queue, reply)
            except CorruptJob as exc:  # planted data: its jobs' leases expire and are reaped
                logger.error("inbox_unreadable queue=%s error=%s", queue, exc)
                continue
            out += [(claim, now_ms) for claim in claims]
        return out

    def handoff(self, reply: Any) -> tuple[Any, int] | None:
        """A BLPOP reply that came from an inbox, as a claim; None for a wake-up token."""
        if not reply:
            return None
        key = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        queue = self.inboxes.get(key)
        if queue is None:
            return None
        try:
            return self.engine.read_handoff(queue, reply[1])
        except CorruptJob as exc:
            logger.error("inbox_unreadable queue=%s error=%s", queue, exc)
            return None


class WakeListener:
    def __init__(self, client: Any, keys: list[str], timeout: float) -> None:
        self.client = client
        self.keys = keys
        self.timeout = timeout
        self.supported = not is_cluster(client)
        self.conn: Any = None
        self.pending = False

    @property
    def poll_interval(self) -> float:
        return self.timeout if self.supported else CLUSTER_POLL

    def arm(self) -> bool:
        """Start a BLPOP unless one is pending. False when it cannot (cluster, Redis down)."""
        if not self.supported:
            return False
        if self.pending:
            return True
        try:
            if self.conn is None:
                self.conn = self.client.connection_pool.make_connection()
                self.conn.connect()
            self.conn.send_command("BLPOP", *self.keys, self.timeout)
        except (redis.RedisError, OSError) as exc:
            logger.warning("wake_listener_failed error=%r", exc)
            self.close()
            return False
        self.pending = True
        return True

    def fileno(self) -> int:
        return int(self.conn._sock.fileno())

    def has_reply(self) -> bool:
        """True when the pending BLPOP has answered and the reply waits to be read."""
        if not self.pending or self.conn is None:
            return False
        try:
            return bool(self.conn.can_read(timeout=0))
        except (redis.RedisError, OSError):
            return True  # read() will report the broken connection

    def read(self) -> Any:
        """Consume the BLPOP reply: ``[key, value]``, or None on its timeout."""
        try:
            reply = self.conn.read_response()
        except (redis.RedisError, OSError) as exc:
            logger.warning("wake_listener_failed error=%r", exc)
            self.close()
            return None
        self.pending = False
        return reply

    def socket_fd(self) -> int | None:
        if self.conn is None or getattr(self.conn, "_sock", None) is None:
            return None
        return self.fileno()

    def close(self) -> None:
        self.pending = False
        if self.conn is not None:
            try:
                self.conn.disconnect()
            except (redis.RedisError, OSError):
                pass
            self.conn = None
