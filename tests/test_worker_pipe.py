"""The pipe between a worker's parent and a child (``jobqueue/worker/pipe.py``): whole
messages, in the order sent, however the bytes arrive; the parent never waits, a child does."""

import threading

from jobqueue.worker.pipe import HEADER, Pipe


def test_every_message_written_so_far_in_order():
    reader, writer = Pipe.pair()
    assert reader.messages() == []  # nothing yet: no wait
    sent = [b"one", b"", b"x" * 200_000, b"four"]  # one longer than a read
    threading.Thread(target=lambda: [writer.send(m) for m in sent]).start()
    got: list[bytes] = []
    while len(got) < len(sent):
        got += reader.messages()
    assert got == sent
    reader.close()
    writer.close()


def test_a_message_arriving_in_pieces_is_kept_until_whole():
    reader, writer = Pipe.pair()
    frame = HEADER.pack(5) + b"hello"
    writer.sock.sendall(frame[:2])
    assert reader.messages() == []
    writer.sock.sendall(frame[2:7])
    assert reader.messages() == []
    writer.sock.sendall(frame[7:] + HEADER.pack(2) + b"hi")
    assert reader.messages() == [b"hello", b"hi"]
    reader.close()
    writer.close()


def test_the_messages_before_the_end_of_the_pipe_are_kept():
    reader, writer = Pipe.pair()
    writer.send(b"last words")
    writer.close()
    assert reader.messages() == [b"last words"]
    assert reader.messages() == []  # ended: nothing more, and no error
    reader.close()


def test_a_child_waits_for_whole_messages_and_sees_the_end():
    parent, child = Pipe.pair()
    frame = HEADER.pack(3) + b"abc" + HEADER.pack(1) + b"d"

    def trickle():
        for i in range(len(frame)):
            parent.sock.sendall(frame[i : i + 1])
        parent.close()

    threading.Thread(target=trickle).start()
    got: list[bytes] = []
    while (messages := child.receive()) is not None:
        got += messages
    assert got == [b"abc", b"d"]
    child.close()
