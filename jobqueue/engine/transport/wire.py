"""One connection to Redis on a socket this module opens and owns, read with a hiredis reader.

``Wire.open(client)`` connects to where a redis-py client's pool connects (host and port, a Unix
socket, TLS, the master a Sentinel names) with the same credentials, database, client name and
timeouts, read through the pool's public ``connection_kwargs``. It always speaks RESP2, whatever
protocol the client uses. Redis Cluster clients are not served here.

Replies come as hiredis parses them: bytes (or str when the client decodes responses, or for one
reply read with ``text``), ints, lists, None. An error reply is returned as a redis-py exception
instance in its place, never raised: in a pipeline the caller decides what an error means. The
socket failing raises ``redis.ConnectionError``, its timeout ``redis.TimeoutError``, a reply
Redis's protocol does not allow ``redis.exceptions.InvalidResponse``; after any of them the wire
is unusable and must be closed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import time
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import hiredis
import redis
from redis import exceptions as errors
from redis.sentinel import SentinelConnectionPool

from ..errors import ConfigurationError

# Socket timeout when the client's pool sets none (jobqueue's own clients always set one).
DEFAULT_TIMEOUT = 10.0

# Error codes redis-py turns into its own exception classes; the code is left out of the message.
CODES: dict[str, type[errors.RedisError]] = {
    "ERR": errors.ResponseError,
    "NOSCRIPT": errors.NoScriptError,
    "WRONGPASS": errors.AuthenticationError,
    "NOAUTH": errors.AuthenticationError,
    "NOPERM": errors.NoPermissionError,
    "LOADING": errors.BusyLoadingError,
    "READONLY": errors.ReadOnlyError,
    "OOM": errors.OutOfMemoryError,
    "EXECABORT": errors.ExecAbortError,
}
ERR_MESSAGES: dict[str, type[errors.RedisError]] = {
    "max number of clients reached": redis.ConnectionError,
    "invalid password": errors.AuthenticationError,
    "AUTH <password> called without any password configured for the default user. Are you "
    "sure your configuration is correct?": errors.AuthenticationError,
}
# What a master demoted to a replica answers a blocked client (a Sentinel failover).
DEMOTED = "UNBLOCKED force unblock from blocking operation, instance state changed"


def reply_error(message: str) -> errors.RedisError:
    """The exception redis-py would raise for the error reply ``message``."""
    code, _, rest = message.partition(" ")
    kind = CODES.get(code)
    if kind is None:
        return errors.ResponseError(message)
    if code == "ERR":
        kind = ERR_MESSAGES.get(rest, errors.ResponseError)
    return kind(rest)


def master_reply_error(message: str) -> errors.RedisError:
    """``reply_error`` for a Sentinel-managed master: a READONLY reply means the master was
    demoted (a failover), a connection error as for redis-py, so the call goes to the new one."""
    error = reply_error(message)
    if isinstance(error, errors.ReadOnlyError) or message.startswith(DEMOTED):
        return redis.ConnectionError(f"The previous master is now a replica: {message}")
    return error


def pack(commands: list[tuple[Any, ...]]) -> list[bytes]:
    """``commands`` in Redis's protocol, in one chunk (jobqueue's arguments are str, bytes and
    numbers; str is sent as UTF-8)."""
    try:
        return [b"".join([hiredis.pack_command(command) for command in commands])]
    except TypeError as exc:
        message = f"A Redis command argument is not a str, bytes or number: {exc}"
        raise redis.DataError(message) from exc


def timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1e6))


def connect(
    address: str | tuple[str, int],
    kw: Mapping[str, Any],
    timeout: float | None,
    context: ssl.SSLContext | None,
) -> socket.socket:
    """A socket connected to a Unix socket's path or a TCP (host, port), set up as redis-py's
    are (no delay, keepalive unless turned off), after its TLS handshake with ``context``."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.create_connection(address, timeout=timeout)
    try:
        if isinstance(address, str):
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if kw.get("socket_keepalive", True):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            options = kw.get("socket_keepalive_options")
            for name, value in (options if isinstance(options, Mapping) else {}).items():
                sock.setsockopt(socket.IPPROTO_TCP, name, value)
        return context.wrap_socket(sock, server_hostname=address[0]) if context else sock
    except BaseException:
        sock.close()
        raise


CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def tls_context(kw: Mapping[str, Any]) -> ssl.SSLContext:
    """The context redis-py's SSLConnection builds from the same ``ssl_*`` options."""
    reqs = kw.get("ssl_cert_reqs", "required")
    if reqs is None:
        reqs = ssl.CERT_NONE
    elif isinstance(reqs, str):
        if reqs not in CERT_REQS:
            raise redis.RedisError(f"Invalid SSL Certificate Requirements Flag: {reqs}")
        reqs = CERT_REQS[reqs]
    context = ssl.create_default_context()
    # check_hostname first: verify_mode cannot become CERT_NONE while it is on.
    context.check_hostname = bool(kw.get("ssl_check_hostname", True)) and reqs != ssl.CERT_NONE
    context.verify_mode = reqs
    for flag in kw.get("ssl_include_verify_flags") or ():
        context.verify_flags |= flag
    for flag in kw.get("ssl_exclude_verify_flags") or ():
        context.verify_flags &= ~flag
    if kw.get("ssl_certfile"):  # a client certificate (a key file alone makes none)
        context.load_cert_chain(
            kw["ssl_certfile"], kw.get("ssl_keyfile"), password=kw.get("ssl_password")
        )
    cafile, capath, cadata = (kw.get(f"ssl_ca_{name}") for name in ("certs", "path", "data"))
    if cafile is not None or capath is not None or cadata is not None:
        context.load_verify_locations(cafile=cafile, capath=capath, cadata=cadata)
    if kw.get("ssl_min_version") is not None:
        context.minimum_version = kw["ssl_min_version"]
    if kw.get("ssl_ciphers"):
        context.set_ciphers(kw["ssl_ciphers"])
    return context


class Wire:
    """A connected socket and its reader. Not thread-safe: one thread uses a wire at a time."""

    def __init__(
        self,
        sock: socket.socket,
        timeout: float | None,
        encoding: str | None = None,
        encoding_errors: str = "strict",
        on_error: Any = reply_error,
    ) -> None:
        self.sock = sock
        # Closed as soon as the wire is dropped (a thread that ends, a forked copy replaced),
        # by a finalizer holding the socket: in a dropped reference cycle the socket could be
        # finalized first, unclosed. (So on_error is a plain function, not a bound method.)
        self.closer = weakref.finalize(self, sock.close)
        self.pid = os.getpid()  # a forked process must open its own
        self.timeout = timeout
        self.encoding, self.encoding_errors = encoding, encoding_errors
        options: dict[str, Any] = {"protocolError": errors.InvalidResponse, "replyError": on_error}
        if encoding:
            options.update(encoding=encoding, errors=encoding_errors)
        self.reader = hiredis.Reader(**options)
        self.buffer = bytearray(65536)
        self.parked: Any = False  # a reply has_reply() parsed and read() has not returned yet
        self.spin_misses = self.spin_skip = 0  # poll()'s back-off
        self.tls = isinstance(sock, ssl.SSLSocket)
        # A plain socket is blocking, its timeouts kept by the kernel: Python's own timeout
        # would poll() before every read and write. TLS reads need Python's timeout.
        if self.tls or timeout is None:
            sock.settimeout(timeout)
        else:
            sock.settimeout(None)
            for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
                sock.setsockopt(socket.SOL_SOCKET, option, timeval(timeout))

    @classmethod
    def open(cls, client: Any) -> Wire:
        """A wire to where ``client``'s pool connects, authenticated and on its database.
        Raises redis.ConnectionError (AuthenticationError for refused credentials) or
        redis.TimeoutError when it cannot."""
        pool = getattr(client, "connection_pool", None)
        if pool is None:
            raise ConfigurationError("Redis Cluster clients are served by redis-py, not a Wire.")
        kw = pool.connection_kwargs
        if kw.get("ssl_validate_ocsp") or kw.get("ssl_validate_ocsp_stapled"):
            raise ConfigurationError("jobqueue's connections do not validate TLS with OCSP.")
        timeout = kw.get("socket_timeout", DEFAULT_TIMEOUT)
        on_error = reply_error
        address: str | tuple[str, int]
        if issubclass(pool.connection_class, redis.UnixDomainSocketConnection):
            address = where = kw["path"]
        else:
            if isinstance(pool, SentinelConnectionPool):
                address = pool.get_master_address()  # asks the sentinels, on every open
                if pool.is_master:
                    on_error = master_reply_error
            else:
                address = (kw.get("host", "localhost"), int(kw.get("port", 6379)))
            where = f"{address[0]}:{address[1]}"
        try:
            tls = issubclass(pool.connection_class, redis.SSLConnection)  # Sentinel's SSL too
            context = tls_context(kw) if tls else None
            sock = connect(address, kw, kw.get("socket_connect_timeout") or timeout, context)
        except TimeoutError as exc:  # before OSError: it is one
            raise redis.TimeoutError(f"Timeout connecting to Redis at {where}") from exc
        except OSError as exc:  # refused, unreachable, a certificate not trusted
            raise redis.ConnectionError(f"Error connecting to Redis at {where}: {exc}") from exc
        decode = kw.get("decode_responses", False)
        wire = cls(
            sock,
            timeout,
            kw.get("encoding", "utf-8") if decode else None,
            kw.get("encoding_errors", "strict"),
            on_error,
        )
        try:
            wire.handshake(kw, where)
        except BaseException:
            wire.close()
            raise
        return wire

    def handshake(self, kw: Mapping[str, Any], where: str) -> None:
        """AUTH, SELECT and CLIENT SETNAME as the pool's options ask, in one round trip."""
        commands: list[tuple[Any, ...]] = []
        provider = kw.get("credential_provider")
        if provider is not None:
            commands.append(("AUTH", *provider.get_credentials()))
        elif kw.get("password") is not None:
            user = kw.get("username")
            commands.append(("AUTH", user, kw["password"]) if user else ("AUTH", kw["password"]))
        if int(kw.get("db") or 0):
            commands.append(("SELECT", int(kw["db"])))
        if kw.get("client_name"):
            commands.append(("CLIENT", "SETNAME", kw["client_name"]))
        if not commands:
            return
        self.send(pack(commands))
        for command in commands:  # after a refused AUTH the next ones fail too: say why
            reply = self.read()
            if isinstance(reply, Exception):  # AuthenticationError stays one
                kind = type(reply) if isinstance(reply, redis.ConnectionError) else None
                message = f"Redis at {where} refused {command[0]} on connecting: {reply}"
                raise (kind or redis.ConnectionError)(message) from reply

    def send(self, packed: list[bytes]) -> None:
        """Write the packed commands (``pack()``); their replies are read in order."""
        try:
            for chunk in packed:
                self.sock.sendall(chunk)
        except (BlockingIOError, TimeoutError) as exc:  # the kernel's timeout, or Python's
            raise redis.TimeoutError(f"Timeout writing to Redis: {exc}") from exc
        except OSError as exc:
            raise redis.ConnectionError(f"Error writing to Redis: {exc}") from exc

    def read(self, text: bool = False) -> Any:
        """The next reply, waiting for it up to the socket timeout. With ``text``, its strings
        are decoded (UTF-8, bad bytes replaced), unless has_reply() already parsed it."""
        if text:
            with self.as_text():
                return self.read()
        reply = self.parked
        if reply is False:
            reply = self.reader.gets()
        else:
            self.parked = False
        while reply is False:
            self.fill(wait=True)
            reply = self.reader.gets()
        return reply

    def has_reply(self) -> bool:
        """Whether a whole reply is ready, without waiting: one already received, or what the
        socket holds now completes one (it is then parsed and kept for read())."""
        if self.parked is False:
            self.parked = self.reader.gets()
            while self.parked is False and self.fill(wait=False):
                self.parked = self.reader.gets()
        return self.parked is not False

    def poll(self, seconds: float, text: bool = False) -> Any:
        """The next reply if it comes within ``seconds``, polling the socket without sleeping;
        else False (then read() waits for it). Sleeping until the reply comes costs a
        wake-up, more on a virtual machine than Redis takes to run a script; polling costs
        the CPU time of the wait. After a miss (a remote or busy Redis), the next 2, 4, ...
        1024 calls do not poll; a reply in time starts polling every call again."""
        if text:
            with self.as_text():
                return self.poll(seconds)
        if self.parked is False:
            self.parked = self.reader.gets()  # a reply already received
        if self.parked is False:
            if self.spin_skip:
                self.spin_skip -= 1
                return False
            give_up = time.perf_counter() + seconds
            while not self.has_reply():
                if time.perf_counter() > give_up:
                    self.spin_misses = min(self.spin_misses + 1, 10)
                    self.spin_skip = 2**self.spin_misses
                    return False
            self.spin_misses = 0
        return self.read()

    def fill(self, wait: bool) -> bool:
        """Feed the reader what the socket holds, waiting for it up to the timeout or not at
        all; False when nothing came (only without waiting)."""
        sock = self.sock
        try:
            if not wait and self.tls:  # TLS reads take no flags: non-blocking for this one
                sock.settimeout(0)
                try:
                    size = sock.recv_into(self.buffer)
                finally:
                    sock.settimeout(self.timeout)
            else:
                size = sock.recv_into(self.buffer, 0, 0 if wait else socket.MSG_DONTWAIT)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError) as exc:
            # EAGAIN: nothing yet (not waiting), or the kernel's timeout
            if not wait:
                return False
            raise redis.TimeoutError(f"Timeout reading from Redis: {exc}") from exc
        except TimeoutError as exc:
            raise redis.TimeoutError(f"Timeout reading from Redis: {exc}") from exc
        except OSError as exc:
            raise redis.ConnectionError(f"Error reading from Redis: {exc}") from exc
        if not size:
            raise redis.ConnectionError("Connection closed by server.")
        self.reader.feed(self.buffer, 0, size)  # type: ignore[arg-type]
        return True

    @contextlib.contextmanager
    def as_text(self) -> Iterator[None]:
        self.reader.set_encoding("utf-8", "replace")
        try:
            yield
        finally:
            self.reader.set_encoding(self.encoding, self.encoding_errors)

    def fileno(self) -> int:
        """The socket's descriptor, for select() and poll(); -1 once closed."""
        return self.sock.fileno()

    def close(self) -> None:
        """Close the socket: only this process's descriptor (a forked copy leaves its parent's
        connection alone). Idempotent."""
        self.closer()
