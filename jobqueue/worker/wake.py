"""Waking an idle worker without polling: a dedicated connection (a ``Wire``) blocked in BLPOP on
the queues' wake lists, watched with select() next to the children's pipes.

Enqueue pushes a token to the queue's wake list after the job is ready, so a worker that found
nothing and then blocks can never miss a job. The BLPOP times out every ``timeout`` seconds so
the worker also claims (and so promotes due scheduled jobs) at least that often.

The worker's idle children block, with a listener of their own, on their inboxes (see
``handoff.py``).

Redis Cluster forbids BLPOP across slots, and each queue's wake list lives in its queue's slot
(``{queue}``): there ``wake_listeners()`` makes one listener per slot, each on a Wire to the
primary that holds the slot, so a worker on a cluster blocks as it does on one Redis. A
listener whose BLPOP is refused (MOVED: the slot migrated) has the client reload the cluster's
slot map before it is armed again. When a listener cannot be armed at all (Redis down), the
worker claims every ``timeout`` seconds (its ``idle_poll``) instead.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from redis.exceptions import RedisClusterException

from ..engine.transport.connection import is_cluster
from ..engine.transport.wire import Wire, pack

logger = logging.getLogger("jobqueue.worker")


def wake_listeners(client: Any, keys: list[str], timeout: float) -> list[WakeListener]:
    """Listeners for ``keys``: one on one Redis, one per hash slot on Redis Cluster."""
    if not is_cluster(client):
        return [WakeListener(client, keys, timeout)]
    by_slot: dict[int, list[str]] = {}
    for key in keys:
        by_slot.setdefault(client.keyslot(key), []).append(key)
    return [WakeListener(client, group, timeout) for group in by_slot.values()]


class WakeListener:
    """A BLPOP on the wake (or inbox) keys, on a Wire of its own: ``arm()`` sends it,
    ``fileno()`` is watched with select() or poll(), ``read()`` takes its reply.

    On Redis Cluster the keys must share one slot (else ``supported`` is False and ``arm()``
    refuses); the Wire goes to the primary holding that slot."""

    def __init__(self, client: Any, keys: list[str], timeout: float) -> None:
        self.client = client
        self.keys = keys
        self.timeout = timeout
        self.cluster = is_cluster(client)
        self.supported = not self.cluster or len({client.keyslot(k) for k in keys}) == 1
        self.wire: Wire | None = None
        self.pending = False
        self.stale_slots = False  # a cluster listener failed: reload the slot map first

    def arm(self) -> bool:
        """Start a BLPOP unless one is pending. False when it cannot (cluster, Redis down)."""
        if not self.supported:
            return False
        if self.pending:
            return True
        try:
            if self.wire is None:
                self.wire = Wire.open(self._node_client())
            self.wire.send(pack([("BLPOP", *self.keys, self.timeout)]))
        except (redis.RedisError, RedisClusterException, OSError) as exc:  # the slot map too
            self._failed(exc)
            return False
        self.pending = True
        return True

    def _node_client(self) -> Any:
        """The client whose connection the Wire copies: on Cluster, the slot's primary's."""
        if not self.cluster:
            return self.client
        if self.stale_slots:
            self.client.nodes_manager.initialize()  # MOVED, a failover: where are slots now
            self.stale_slots = False
        return self.client.get_redis_connection(self.client.get_node_from_key(self.keys[0]))

    def fileno(self) -> int:
        assert self.wire is not None, "not armed"
        return self.wire.fileno()

    def has_reply(self) -> bool:
        """True when the pending BLPOP has answered and the reply waits to be read."""
        if not self.pending or self.wire is None:
            return False
        try:
            return self.wire.has_reply()
        except (redis.RedisError, OSError):
            return True  # read() will report the broken connection

    def read(self) -> Any:
        """Consume the BLPOP reply: ``[key, value]``, or None on its timeout (or a failure,
        logged: the listener is closed, and armed again on a fresh connection)."""
        if self.wire is None:
            return None
        try:
            reply = self.wire.read()
            if isinstance(reply, Exception):  # an error reply: the BLPOP did not run
                raise reply
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return None
        self.pending = False
        return reply

    def _failed(self, exc: Exception) -> None:
        """Redis went away, or refused the BLPOP: closed, and armed again on a fresh wire."""
        logger.warning("wake_listener_failed error=%r", exc)
        self.stale_slots = self.cluster
        self.close()

    def socket_fd(self) -> int | None:
        return None if self.wire is None else self.wire.fileno()

    def close(self) -> None:
        self.pending = False
        if self.wire is not None:
            self.wire.close()
            self.wire = None
