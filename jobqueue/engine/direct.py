"""Script calls on a connection each thread keeps, instead of a pool checkout per call.

redis-py's command layer costs about as much as a Redis round trip on loopback: a checkout
from the connection pool (with its lock), retry and observability wrappers, and the return to
the pool. jobqueue's hot paths (enqueue, the worker's claim and acknowledgement pipeline) send
EVALSHA and nothing else, so they keep one connection per thread taken once from the client's
own pool (same address, credentials, TLS and timeouts) and write the packed commands straight
to it. A thread that ends returns its connection to the pool.

Once connected, the commands go straight to the connection's socket and the replies are read
with a hiredis reader of this module's own (``_Wire``): redis-py's send and read layers (a
timeout set again per read, push-notification handling) and Python's socket timeouts (a
``poll()`` before every blocking call) cost about a tenth of a loopback round trip. A plain
TCP or Unix socket gets its timeout from the kernel instead (``SO_RCVTIMEO``/``SO_SNDTIMEO``)
and is given back to the pool as redis-py set it. A caller may also ask to poll the socket for
the reply for a few microseconds before sleeping on it (``spin``; ``.enqueue()`` does, see
``_Wire.spin_for_reply``), or for the reply's strings decoded by hiredis as it parses them
(``text``; the mirror does, for the event streams it reads).

A connection error closes the connection and the call is made once more on a fresh one, as
redis-py does by default; a second failure raises. Repeating is safe: an enqueue is keyed by
its job id, an acknowledgement carries its fence token, and the jobs of a claim whose reply was
lost stay leased to nobody until their leases expire and they are reaped. Redis Cluster clients
are not served here: their commands go through redis-py.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

try:
    import hiredis
    from hiredis import pack_command as _pack_one
except ImportError:  # pragma: no cover - hiredis is in requirements.txt
    hiredis = None  # type: ignore[assignment]
    _pack_one = None  # type: ignore[assignment]

_PUSH = getattr(hiredis, "PushNotification", ())  # RESP3 out-of-band messages (hiredis >= 3.2)
_TIMEOUTS = (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO)
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1e6))


class _Wire:
    """A connected connection's socket, read with a hiredis reader of this module's own that
    turns error replies into redis-py's exceptions (through the connection's parser)."""

    def __init__(self, conn: Any) -> None:
        self.sock = conn._sock
        options: dict[str, Any] = {
            "protocolError": redis.exceptions.InvalidResponse,
            "replyError": conn._parser.parse_error,
        }
        self.encoding = conn.encoder.encoding if conn.encoder.decode_responses else None
        if self.encoding:
            options["encoding"] = self.encoding
        self.reader = hiredis.Reader(**options)
        self.buffer = bytearray(65536)
        self.spin_misses = self.spin_skip = 0
        self.timeout = self.sock.gettimeout()
        self.plain = type(self.sock) is socket.socket  # not TLS: no flags on TLS reads
        self.kernel_timeout = self.plain and self.timeout is not None
        if self.kernel_timeout:
            for option in _TIMEOUTS:
                self.sock.setsockopt(socket.SOL_SOCKET, option, _timeval(self.timeout))
            self.sock.settimeout(None)

    @staticmethod
    def usable(conn: Any) -> bool:
        return (
            hiredis is not None
            and getattr(conn, "_sock", None) is not None
            and callable(getattr(getattr(conn, "_parser", None), "parse_error", None))
            and hasattr(conn, "encoder")
        )

    def restore(self) -> None:
        """Give the socket back its Python-level timeout, as redis-py set it."""
        if self.kernel_timeout and self.sock.fileno() != -1:
            for option in _TIMEOUTS:
                self.sock.setsockopt(socket.SOL_SOCKET, option, _timeval(0))
            self.sock.settimeout(self.timeout)

    def read_more(self, flags: int = 0) -> None:
        """Feed the reader what the socket holds (waiting for it unless ``flags`` say not)."""
        size = self.sock.recv_into(self.buffer, 0, flags)
        if not size:
            raise redis.ConnectionError("Connection closed by server.")
        self.reader.feed(self.buffer, 0, size)  # type: ignore[arg-type]

    def exchange(
        self,
        packed: list[bytes],
        count: int,
        on_reply: Any,
        spin: float = 0,
        text: bool = False,
        on_sent: Any = None,
    ) -> list:
        sock, reader = self.sock, self.reader
        if text:  # strings decoded by hiredis (UTF-8, bad bytes replaced)
            reader.set_encoding("utf-8", "replace")
        try:
            for chunk in packed:
                sock.sendall(chunk)
            if on_sent is not None:
                on_sent()
            replies: list[Any] = []
            for index in range(count):
                reply = reader.gets()
                if reply is False and spin and self.plain:
                    reply = self.spin_for_reply(spin)
                while reply is False or isinstance(reply, _PUSH):
                    if reply is False:
                        self.read_more()
                    reply = reader.gets()
                replies.append(reply)
                if on_reply is not None and not isinstance(reply, Exception):
                    on_reply(index, reply)
        except (BlockingIOError, TimeoutError) as exc:  # the kernel's or Python's timeout
            raise redis.TimeoutError(f"Timeout talking to Redis: {exc}") from exc
        finally:
            if text:
                reader.set_encoding(self.encoding)
        return replies

    def spin_for_reply(self, seconds: float) -> Any:
        """Poll the socket without sleeping for up to ``seconds``: the reply, or False when
        none came in time. Sleeping until the reply comes costs a wake-up, tens of
        microseconds on a virtual machine, more than Redis takes to run a script; polling
        costs the CPU time of the wait. After a miss (a remote or busy Redis), the next
        2, 4, ... 1024 calls do not poll; a reply in time starts polling every call again."""
        if self.spin_skip:
            self.spin_skip -= 1
            return False
        give_up = time.perf_counter() + seconds
        reply: Any = False
        while reply is False:
            try:
                self.read_more(_DONTWAIT)
            except BlockingIOError:
                if time.perf_counter() > give_up:
                    self.spin_misses = min(self.spin_misses + 1, 10)
                    self.spin_skip = 2**self.spin_misses
                    return False
                continue
            reply = self.reader.gets()
        self.spin_misses = 0
        return reply


class _Held:
    """One thread's connection; given back to its pool when the thread's locals go away."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.pid = os.getpid()
        self.conn = pool.get_connection()
        self.wire: _Wire | None = None

    def exchange(
        self,
        commands: list[tuple[Any, ...]],
        on_reply: Any,
        spin: float = 0,
        text: bool = False,
        on_sent: Any = None,
    ) -> list:
        """Send ``commands`` in one write and read their replies (errors in place)."""
        conn = self.conn
        packed = _pack(conn, commands)
        wire = self.wire
        if wire is None or wire.sock is not getattr(conn, "_sock", None):
            wire = self.wire = _Wire(conn) if _Wire.usable(conn) else None
        if wire is not None:
            return wire.exchange(packed, len(commands), on_reply, spin, text, on_sent)
        # Not connected (first use, or after a drop): redis-py's layer connects.
        conn.send_packed_command(packed, check_health=False)
        if on_sent is not None:
            on_sent()
        replies: list[Any] = []
        for index in range(len(commands)):
            try:
                replies.append(conn.read_response())
            except redis.ResponseError as exc:
                replies.append(exc)
                continue
            if on_reply is not None:
                on_reply(index, replies[-1])
        return replies

    def drop(self) -> None:
        self.wire = None
        self.conn.disconnect()

    def __del__(self) -> None:
        try:
            if self.pid == os.getpid():
                if self.wire is not None:
                    self.wire.restore()
                self.pool.release(self.conn)
        except Exception:  # noqa: S110 - interpreter shutdown, a pool already reset
            pass


class DirectCaller:
    """``execute(*command)`` and ``execute_many(commands)`` on this thread's own connection."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.pool = client.connection_pool
        self.local = threading.local()

    def _held(self) -> _Held:
        held = self.local.__dict__.get("held")
        if held is None or held.pid != os.getpid():  # first use, or a forked copy
            held = self.local.held = _Held(self.pool)
        return held

    def _connection(self) -> Any:
        return self._held().conn

    def execute(
        self,
        *command: Any,
        spin: float = 0,
        text: bool = False,
        on_sent: Callable[[], None] | None = None,
    ) -> Any:
        """One command, one reply; an error reply raises (``redis.ResponseError``). With
        ``text``, strings in the reply may come decoded (UTF-8, bad bytes replaced): the
        caller must accept both str and bytes (a connection not yet made replies with bytes).
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
        be called again for the same ``i``."""
        for attempt in (1, 2):
            held = self._held()
            try:
                replies = held.exchange(commands, on_reply, spin, text, on_sent)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                held.drop()
                if attempt == 2:
                    if isinstance(exc, redis.RedisError):
                        raise
                    raise redis.ConnectionError(str(exc)) from exc
                continue
            except BaseException:
                held.drop()  # a reply half-read (KeyboardInterrupt): the stream is lost
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
