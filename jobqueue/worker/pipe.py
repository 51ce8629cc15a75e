"""The pipe between a worker's parent and one child: a Unix stream socket pair carrying
messages framed by this module, a 4-byte big-endian length and then that many bytes (JSON
made by the engine's codec). Our own framing, so nothing depends on how another library
frames its messages.

The parent reads what a child wrote without waiting (:meth:`Pipe.messages`), many messages per
read; a child waits for its next messages (:meth:`Pipe.receive`).
"""

from __future__ import annotations

import socket
import struct

HEADER = struct.Struct("!I")
READ_SIZE = 1 << 16


class Pipe:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.unread = bytearray()  # the start of a message still coming

    @classmethod
    def pair(cls) -> tuple[Pipe, Pipe]:
        """Two connected ends: one for the parent, one for the child."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(parent), cls(child)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, data: bytes) -> None:
        """Send one message whole (waits while the other side's buffer is full). Raises
        OSError when the other side is gone."""
        if len(data) > 0xFFFFFFFF:
            raise ValueError(f"A pipe message of {len(data)} bytes is over 4 GiB.")
        self.sock.sendall(HEADER.pack(len(data)) + data)

    def messages(self) -> list[bytes]:
        """Every whole message that has arrived, without waiting; [] when none has. At the
        end of the stream (the other side is gone) it returns what came before."""
        while True:
            try:
                chunk = self.sock.recv(READ_SIZE, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if not chunk:
                break
            self.unread += chunk
        return self._split()

    def receive(self) -> list[bytes] | None:
        """Wait for at least one whole message and return every whole one there is; None at
        the end of the stream."""
        while True:
            found = self._split()
            if found:
                return found
            chunk = self.sock.recv(READ_SIZE)
            if not chunk:
                return None
            self.unread += chunk

    def _split(self) -> list[bytes]:
        unread, start, out = self.unread, 0, []
        while len(unread) - start >= HEADER.size:
            (size,) = HEADER.unpack_from(unread, start)
            begin = start + HEADER.size
            if len(unread) - begin < size:
                break  # the rest has not arrived yet
            out.append(bytes(unread[begin : begin + size]))
            start = begin + size
        del unread[:start]
        return out

    def close(self) -> None:
        self.sock.close()
