"""Script calls on a connection each thread owns, instead of a pool checkout per call.

redis-py's command layer costs about as much as a Redis round trip on loopback: a checkout
from the connection pool (with its lock), retry and observability wrappers, its send and read
layers, and the return to the pool. jobqueue's hot paths (enqueue, the worker's claim and
acknowledgement pipeline, the mirror's stream reads) send EVALSHA and a few other commands, so
each thread keeps a ``Wire`` of its own (``wire.py``): a socket this module opens to where the
client's pool connects (same address, credentials, database, TLS and timeouts), written to with
the packed commands and read with a hiredis reader. It is opened on a thread's first call and
closed when the thread ends; a forked process opens its own. A caller may also ask to poll the
socket for the reply for a while before sleeping on it (``spin``; ``.enqueue()`` does, see
``Wire.poll``), or for the reply's strings decoded by hiredis as it parses them (``text``; the
mirror does, for the event streams it reads).

A connection error closes the wire and the call is made once more on a fresh one, as redis-py
does by default; a second failure raises. So does a reply saying the connection cannot serve
(NOAUTH, LOADING, a Sentinel master demoted to a replica, all ``redis.ConnectionError``): its
command did not run. Repeating is safe: an enqueue is keyed by its job id, an acknowledgement
carries its fence token, and the jobs of a claim whose reply was lost stay leased to nobody
until their leases expire and they are reaped. Redis Cluster clients are not served here: their
commands go through redis-py.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import redis

from .wire import Wire, pack


class DirectCaller:
    """``execute(*command)`` and ``execute_many(commands)`` on this thread's own wire."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.local = threading.local()

    def wire(self) -> Wire:
        """This thread's wire, opened on first use, and again in a forked process."""
        wire = getattr(self.local, "wire", None)
        if wire is None or wire.pid != os.getpid():
            self.local.wire = None  # a forked copy: closes this process's descriptor only
            wire = self.local.wire = Wire.open(self.client)
        return wire

    def drop(self) -> None:
        """Close this thread's wire (the next call opens another)."""
        wire, self.local.wire = getattr(self.local, "wire", None), None
        if wire is not None:
            wire.close()

    def execute(
        self,
        *command: Any,
        spin: float = 0,
        text: bool = False,
        on_sent: Callable[[], None] | None = None,
    ) -> Any:
        """One command, one reply; an error reply raises (``redis.ResponseError``). With
        ``text``, strings in the reply come decoded (UTF-8, bad bytes replaced).
        ``on_sent()`` is called once the command is sent, before its reply is read (work done
        while Redis runs it); it must not raise, and may be called twice (a retry)."""
        return self.execute_many(
            [command], raise_on_error=True, spin=spin, text=text, on_sent=on_sent
        )[0]

    def execute_many(
        self,
        commands: list[tuple[Any, ...]],
        raise_on_error: bool = False,
        on_reply: Callable[[int, Any], None] | None = None,
        spin: float = 0,
        text: bool = False,
        on_sent: Callable[[], None] | None = None,
    ) -> list:
        """Send every command in one write, read every reply. An error reply takes its
        command's place in the list (or raises with ``raise_on_error``). ``on_reply(i, reply)``
        is called with each reply that is not an error as soon as it is read, while Redis runs
        the next commands; after a connection error the commands are sent again, and it may
        be called again for the same ``i``. A bad argument raises ``redis.DataError``."""
        packed = pack(commands)
        for attempt in (1, 2):
            try:
                replies = self.exchange(packed, len(commands), on_reply, spin, text, on_sent)
            except (redis.ConnectionError, redis.TimeoutError):
                self.drop()
                if attempt == 2:
                    raise
                continue
            except BaseException:
                self.drop()  # a reply half-read (KeyboardInterrupt): the stream is lost
                raise
            if raise_on_error:
                for reply in replies:
                    if isinstance(reply, Exception):
                        raise reply
            return replies
        raise AssertionError("unreachable")  # pragma: no cover

    def execute_here(self, commands: list[tuple[Any, ...]]) -> list:
        """Send ``commands`` on the wire that served this thread's last call, with no second
        try on a fresh connection: for commands about this connection's own past (``WAIT``
        counts the replicas that have this connection's writes). Error replies take their
        command's place; a wire that is gone, or fails now, raises ``redis.ConnectionError``
        or ``redis.TimeoutError``."""
        wire = getattr(self.local, "wire", None)
        if wire is None or wire.pid != os.getpid():
            raise redis.ConnectionError("The connection that served the last call is gone.")
        try:
            return self.exchange(pack(commands), len(commands), None, 0, False, None)
        except BaseException:
            self.drop()
            raise

    def exchange(
        self,
        packed: list[bytes],
        count: int,
        on_reply: Callable[[int, Any], None] | None,
        spin: float,
        text: bool,
        on_sent: Callable[[], None] | None,
    ) -> list:
        wire = self.wire()
        wire.send(packed)
        if on_sent is not None:
            on_sent()
        replies: list[Any] = []
        for index in range(count):
            reply = wire.poll(spin, text) if spin else False
            if reply is False:
                reply = wire.read(text)
            if isinstance(reply, Exception):
                if isinstance(reply, redis.ConnectionError):  # this connection cannot serve
                    raise reply
            elif on_reply is not None:
                on_reply(index, reply)
            replies.append(reply)
        return replies
