"""How the parent reads what a child wrote to its pipe: whole messages, in the order sent,
however the bytes arrive."""

import os
import socket
import threading
from multiprocessing import Pipe

from jobqueue.worker_pool import Child


def child_with_pipe():
    parent, child = Pipe(duplex=True)
    return Child(0, None, parent), child


def test_every_message_written_so_far_in_order():
    reader, writer = child_with_pipe()
    assert reader.messages() == []  # nothing yet: no wait
    sent = [b"one", b"", b"x" * 200_000, b"four"]  # one longer than a read
    threading.Thread(target=lambda: [writer.send_bytes(m) for m in sent]).start()
    got: list[bytes] = []
    while len(got) < len(sent):
        got += reader.messages()
    assert got == sent


def test_a_message_arriving_in_pieces_is_kept_until_whole():
    reader, writer = child_with_pipe()
    raw = socket.socket(fileno=os.dup(writer.fileno()))
    frame = (5).to_bytes(4, "big") + b"hello"
    raw.sendall(frame[:2])
    assert reader.messages() == []
    raw.sendall(frame[2:7])
    assert reader.messages() == []
    raw.sendall(frame[7:] + (2).to_bytes(4, "big") + b"hi")
    assert reader.messages() == [b"hello", b"hi"]
    long_header = (-1).to_bytes(4, "big", signed=True) + (3).to_bytes(8, "big")  # 2 GiB and up
    raw.sendall(long_header[:6])
    assert reader.messages() == []
    raw.sendall(long_header[6:] + b"big")
    assert reader.messages() == [b"big"]
    raw.close()


def test_the_messages_before_the_end_of_the_pipe_are_kept():
    reader, writer = child_with_pipe()
    writer.send_bytes(b"last words")
    writer.close()
    assert reader.messages() == [b"last words"]
    assert reader.messages() == []  # ended: nothing more, and no error
