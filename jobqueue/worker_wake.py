"""Waking an idle worker without polling: a dedicated connection blocked in BLPOP on the queues'
wake lists, watched with select() next to the children's pipes.

Enqueue pushes a token to the queue's wake list after the job is ready, so a worker that found
nothing and then blocks can never miss a job. The BLPOP times out every ``timeout`` seconds so
the worker also claims (and so promotes due scheduled jobs) at least that often.

The worker's idle children block on their own inboxes: the parent registers each child that
has nothing to run in its queues' idle sets (``IdleRegistration``), and an enqueue may lease a
new job to the worker straight away and push the claim into that child's inbox (see
``jobqueue/engine/handoff.py``); the child takes it without waking the parent first.

Redis Cluster forbids BLPOP across slots; there the worker falls back to claiming every
``CLUSTER_POLL`` seconds (and never registers as idle).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from .engine import CorruptJob
from .engine.connection import is_cluster

logger = logging.getLogger("jobqueue.worker")
CLUSTER_POLL = 0.05


class IdleRegistration:
    """The worker's registrations in its queues' idle sets, one per idle child and queue
    (member ``<worker>#<child index>``). Each idle child blocks on its own inboxes and runs
    what an enqueue hands it at once (``worker_child.JobSource``); the parent only keeps the
    registrations: it makes them when a child has nothing to run, renews them before their
    ttl, drops one when its child takes the job it brought, and drops the others (with what
    their inboxes still hold) when their child got other work, before it claims jobs itself,
    and when it stops. A registration it renews or drops that is no longer there, its inbox
    empty, was taken by an enqueue whose job the child has popped but not yet announced:
    ``read`` reports that child, which the parent counts as busy until it hears from it."""

    def __init__(self, engine: Any, worker: str, queues: tuple[str, ...], ttl: float) -> None:
        self.engine = engine
        self.worker = worker
        self.queues = queues
        self.ttl = ttl
        self.live: dict[tuple[str, int], float] = {}  # (queue, child) -> when it lapses

    @property
    def registered(self) -> bool:
        return bool(self.live)

    def member(self, child: int) -> str:
        return f"{self.worker}#{child}"

    def inboxes(self, child: int) -> dict[str, str]:
        """A child's inbox keys, each with its queue."""
        return {self.engine.qkeys(q).inbox(self.member(child)): q for q in self.queues}

    def register_calls(self, children: list[int], room: int) -> tuple[list, list[Any]]:
        """``(calls made, calls)`` registering each of ``children`` in each queue where it is
        not registered (or its registration is half over), ``room`` registrations in all at
        most (each may bring one job), queue by queue in order of precedence. Each call made is
        ``(queue, child, renewing)``: a renewal expects the registration to be there."""
        now = time.monotonic()
        self.live = {pair: end for pair, end in self.live.items() if end > now}
        due = [  # the first queues first: with little room, every idle child waits on those
            (queue, child)
            for queue in self.queues
            for child in children
            if self.live.get((queue, child), 0.0) < now + self.ttl / 2
        ]
        room -= sum(1 for pair in self.live if pair not in due)
        due = due[: max(room, 0)]
        made = [(queue, child, (queue, child) in self.live) for queue, child in due]
        for pair in due:  # counted from before the call: it lapses no later than in Redis
            self.live[pair] = now + self.ttl
        calls = [
            self.engine.idle_call(q, self.member(c), True, self.ttl, renew=renew)
            for q, c, renew in made
        ]
        return made, calls

    def unregister_calls(self, keep: list[int] | None = None) -> tuple[list, list[Any]]:
        """``(calls made, calls)`` dropping every registration but those of the ``keep``
        children (all of them when ``keep`` is None); each call made is ``(queue, child, True)``
        (the registration is expected to be there)."""
        pairs = [pair for pair in self.live if keep is None or pair[1] not in keep]
        for pair in pairs:
            del self.live[pair]
        made = [(queue, child, True) for queue, child in pairs]
        return made, [self.engine.idle_call(q, self.member(c), False) for q, c, _ in made]

    def consumed(self, queue: str, child: int) -> None:
        """The child took the job this registration brought (the enqueue removed it)."""
        self.live.pop((queue, child), None)

    def forget(self, made: list) -> None:
        """These calls may not have run: let their registrations lapse."""
        for queue, child, _ in made:
            self.live.pop((queue, child), None)

    def read(self, made: list, replies: list[Any]) -> tuple[list[tuple[Any, int]], list[int]]:
        """``(claims, taken)``: the claims handed over, each with the Redis time its remaining
        lease counts from, and the children whose registration an enqueue took while their
        inbox is empty (they popped the job and will announce it)."""
        out: list[tuple[Any, int]] = []
        taken: list[int] = []
        for (queue, child, expected), reply in zip(made, replies, strict=True):
            if isinstance(reply, Exception):
                logger.error("idle_registration_failed queue=%s error=%s", queue, reply)
                continue
            try:
                now_ms, claims = self.engine.read_inbox(queue, reply)
            except CorruptJob as exc:  # planted data: its jobs' leases expire and are reaped
                logger.error("inbox_unreadable queue=%s error=%s", queue, exc)
                continue
            if expected and not claims and not self.engine.was_registered(reply):
                self.live.pop((queue, child), None)  # a renewal that found it gone made nothing
                taken.append(child)
            out += [(claim, now_ms) for claim in claims]
        return out, taken


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
