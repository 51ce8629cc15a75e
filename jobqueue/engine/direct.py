"""Script calls on a connection each thread keeps, instead of a pool checkout per call.

redis-py's command layer costs about as much as a Redis round trip on loopback: a checkout
from the connection pool (with its lock), retry and observability wrappers, and the return to
the pool. jobqueue's hot paths (enqueue, the worker's claim and acknowledgement pipeline) send
EVALSHA and nothing else, so they keep one connection per thread taken once from the client's
own pool (same address, credentials, TLS and timeouts) and write the packed commands straight
to it. A thread that ends returns its connection to the pool.

A connection error closes the connection and the call is made once more on a fresh one, as
redis-py does by default; a second failure raises. Repeating is safe: an enqueue is keyed by
its job id, an acknowledgement carries its fence token, and the jobs of a claim whose reply was
lost stay leased to nobody until their leases expire and they are reaped. Redis Cluster clients
are not served here: their commands go through redis-py.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import redis

try:
    from hiredis import pack_command as _pack_one
except ImportError:  # pragma: no cover - hiredis is in requirements.txt
    _pack_one = None  # type: ignore[assignment]


class _Held:
    """One thread's connection; given back to its pool when the thread's locals go away."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.pid = os.getpid()
        self.conn = pool.get_connection()

    def __del__(self) -> None:
        try:
            if self.pid == os.getpid():
                self.pool.release(self.conn)
        except Exception:  # noqa: S110 - interpreter shutdown, a pool already reset
            pass


class DirectCaller:
    """``execute(*command)`` and ``execute_many(commands)`` on this thread's own connection."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.pool = client.connection_pool
        self.local = threading.local()

    def _connection(self) -> Any:
        held = getattr(self.local, "held", None)
        if held is None or held.pid != os.getpid():  # first use, or a forked copy
            held = self.local.held = _Held(self.pool)
        return held.conn

    def _drop(self, conn: Any) -> None:
        conn.disconnect()

    def execute(self, *command: Any) -> Any:
        """One command, one reply; an error reply raises (``redis.ResponseError``)."""
        return self.execute_many([command], raise_on_error=True)[0]

    def execute_many(
        self,
        commands: list[tuple[Any, ...]],
        raise_on_error: bool = False,
        on_reply: Callable[[int, Any], None] | None = None,
    ) -> list:
        """Send every command in one write, read every reply. An error reply takes its
        command's place in the list (or raises with ``raise_on_error``). ``on_reply(i, reply)``
        is called with each reply that is not an error as soon as it is read, while Redis runs
        the next commands; after a connection error the commands are sent again, and it may
        be called again for the same ``i``."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.send_packed_command(_pack(conn, commands), check_health=False)
                replies = []
                for index in range(len(commands)):
                    try:
                        replies.append(conn.read_response())
                    except redis.ResponseError as exc:
                        replies.append(exc)
                        continue
                    if on_reply is not None:
                        on_reply(index, replies[-1])
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                self._drop(conn)
                if attempt == 2:
                    if isinstance(exc, redis.RedisError):
                        raise
                    raise redis.ConnectionError(str(exc)) from exc
                continue
            except BaseException:
                self._drop(conn)  # a reply half-read (KeyboardInterrupt): the stream is lost
                raise
            if raise_on_error:
                for reply in replies:
                    if isinstance(reply, Exception):
                        raise reply
            return replies
        raise AssertionError("unreachable")  # pragma: no cover


def _pack(conn: Any, commands: list[tuple[Any, ...]]) -> Any:
    """The commands in Redis's protocol: hiredis's packer when installed (jobqueue's
    arguments are str, bytes and numbers), else redis-py's."""
    if _pack_one is None:
        return conn.pack_commands(commands)
    try:
        return [b"".join([_pack_one(command) for command in commands])]
    except TypeError as exc:
        message = f"A Redis command argument is not a str, bytes or number: {exc}"
        raise redis.DataError(message) from exc
