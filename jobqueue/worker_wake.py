"""Waking an idle worker without polling: a dedicated connection blocked in BLPOP on the queues'
wake lists, watched with select() next to the children's pipes.

Enqueue pushes a token to the queue's wake list after the job is ready, so a worker that found
nothing and then blocks can never miss a job. The BLPOP times out every ``timeout`` seconds so
the worker also claims (and so promotes due scheduled jobs) at least that often.

Redis Cluster forbids BLPOP across slots; there the worker falls back to claiming every
``CLUSTER_POLL`` seconds.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from .engine.connection import is_cluster

logger = logging.getLogger("jobqueue.worker")
CLUSTER_POLL = 0.05


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

    def read(self) -> bool:
        """Consume the BLPOP reply; True when it was a wake-up token, False on its timeout."""
        try:
            reply = self.conn.read_response()
        except (redis.RedisError, OSError) as exc:
            logger.warning("wake_listener_failed error=%r", exc)
            self.close()
            return False
        self.pending = False
        return reply is not None

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
