"""A TCP proxy between clients and a Redis on loopback, for the tests of network faults.

It passes bytes both ways, one connection to Redis per client connection, until told to make
a fault: :meth:`FaultProxy.drop_replies` makes the proxy, the next ``n`` times Redis answers a
client, close that client's connection instead of passing the answer on: Redis has run the
command, the client never hears that it did. :meth:`blackhole` makes it stop passing bytes
either way, as a network that drops every packet would: connections stay open (new ones are
accepted, and held), nothing arrives, until :meth:`restore`; :meth:`cut` does the same in one
direction only. :meth:`reset` closes every connection open now (each side sees it end), and
:meth:`delay` holds every chunk back for a while before passing it on (latency). Threads and
sockets end with :meth:`close`; every socket has a timeout, so nothing here waits for ever.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any


class FaultProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.to_drop = 0
        self.dropped = 0
        self.holding = threading.Event()  # set: blackholed, bytes are held back
        self.cut_direction = ""  # "requests" or "replies": bytes that way are thrown away
        self.latency = 0.0  # seconds each chunk waits before it is passed on
        self.open: list[socket.socket] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def drop_replies(self, n: int = 1) -> None:
        """The next ``n`` replies from Redis are not passed on: their connection is closed."""
        with self.lock:
            self.to_drop = n

    def blackhole(self) -> None:
        """Pass nothing either way until :meth:`restore`: what each side sends is read and
        thrown away (a read on the other side waits for its own timeout)."""
        self.holding.set()

    def cut(self, direction: str) -> None:
        """Throw away what goes one way only until :meth:`restore`: ``"requests"`` (client to
        Redis: nothing the client sends runs) or ``"replies"`` (Redis runs every command, the
        client hears none of it)."""
        assert direction in ("requests", "replies"), direction
        self.cut_direction = direction

    def restore(self) -> None:
        """Pass bytes again both ways (what was sent while blackholed or cut is lost)."""
        self.cut_direction = ""
        self.holding.clear()

    def reset(self) -> int:
        """Close every connection open now, both its sides; returns how many there were."""
        with self.lock:
            sockets, self.open = self.open, []
        for sock in sockets:
            _close(sock)
        return len(sockets) // 2

    def delay(self, seconds: float) -> None:
        """Hold every chunk ``seconds`` before passing it on, both ways (0: no delay)."""
        self.latency = seconds

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        with self.lock:
            for sock in self.open:
                _close(sock)
        self.thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- inside --------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            server = socket.create_connection(self.target, timeout=5)
            with self.lock:
                self.open += [client, server]
            for source, sink, replies in ((client, server, False), (server, client, True)):
                threading.Thread(
                    target=self._pump, args=(source, sink, replies), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        source.settimeout(0.2)
        while not self.closed.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if self.holding.is_set() or self.cut_direction == (
                "replies" if replies else "requests"
            ):
                continue  # lost on the way
            if self.latency:
                time.sleep(self.latency)
            if replies:
                with self.lock:
                    drop = self.to_drop > 0
                    if drop:
                        self.to_drop -= 1
                        self.dropped += 1
                if drop:  # Redis ran it; its answer goes nowhere
                    break
            try:
                sink.sendall(data)
            except OSError:
                break
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
