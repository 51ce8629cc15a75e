"""Script calls on a connection each thread keeps (``jobqueue/engine/transport/caller.py``), and
the lean single-job enqueue script (``enqueue_one.lua``)."""

import os
import socket
import threading
import time

import pytest
import redis

from jobqueue.engine import Engine, EngineConfig, JobSpec, JobState
from jobqueue.engine.errors import ConnectionFailed
from jobqueue.engine.transport.caller import DirectCaller
from jobqueue.engine.transport.connection import create_client
from tests.conftest import wait_for


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def connected(client, client_id) -> bool:
    """Whether the connection with this CLIENT ID is still open, as Redis sees it."""
    return bool(client.execute_command("CLIENT", "LIST", "ID", client_id))


def test_each_thread_keeps_its_own_connection(client):
    caller = DirectCaller(client)
    mine = caller.execute("CLIENT", "ID")
    assert caller.execute("CLIENT", "ID") == mine  # kept, not opened per call
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(caller.execute("CLIENT", "ID")))
    thread.start()
    thread.join()
    assert theirs[0] != mine
    assert caller.execute("CLIENT", "ID") == mine


def test_a_thread_that_ends_closes_its_connection(client):
    caller = DirectCaller(client)
    ids = []
    thread = threading.Thread(target=lambda: ids.append(caller.execute("CLIENT", "ID")))
    thread.start()
    thread.join()
    del thread
    wait_for(lambda: not connected(client, ids[0]), timeout=5, message="still connected")


def test_error_replies_keep_their_place_and_the_connection(client):
    caller = DirectCaller(client)
    replies = caller.execute_many([("PING",), ("NOSUCHCOMMAND",), ("ECHO", "x")])
    assert replies[0] == b"PONG" and replies[2] == b"x"
    assert isinstance(replies[1], redis.ResponseError)
    with pytest.raises(redis.ResponseError, match="NOSUCHCOMMAND"):
        caller.execute("NOSUCHCOMMAND")
    assert caller.execute("ECHO", "still usable") == b"still usable"
    with pytest.raises(redis.DataError, match="not a str, bytes or number"):
        caller.execute("ECHO", None)


def test_a_reply_can_come_as_text_and_the_next_ones_come_as_bytes_again(client):
    caller = DirectCaller(client)
    caller.execute("PING")  # connected: replies are read by the engine's own reader
    key = "jq-test-direct-text"
    try:
        client.rpush(key, "é", b"\xffok")
        assert caller.execute("LRANGE", key, 0, -1, text=True) == ["é", "\ufffdok"]
        assert caller.execute("LRANGE", key, 0, -1) == ["é".encode(), b"\xffok"]
    finally:
        client.delete(key)


def test_replies_can_be_taken_as_they_arrive(client):
    caller = DirectCaller(client)
    seen = []
    replies = caller.execute_many(
        [("ECHO", "a"), ("NOSUCHCOMMAND",), ("ECHO", "b")],
        on_reply=lambda index, reply: seen.append((index, reply)),
    )
    assert seen == [(0, b"a"), (2, b"b")]  # in order, errors left out
    assert replies[0] == b"a" and isinstance(replies[1], redis.ResponseError)


def test_a_forked_child_opens_its_own_connection(client):
    caller = DirectCaller(client)
    parent_id = caller.execute("CLIENT", "ID")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        ok = caller.execute("CLIENT", "ID") != parent_id and caller.execute("PING") == b"PONG"
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.close(read)
    os.waitpid(pid, 0)
    assert caller.execute("CLIENT", "ID") == parent_id  # the parent's connection is untouched


def test_engine_survives_a_redis_restart_between_calls(private_redis, registry):
    client = create_client(private_redis.url)
    try:
        engine = Engine(client, EngineConfig(prefix="rs"), registry)
        engine.enqueue("tests.noop")
        private_redis.restart()  # the kept connection is now dead: the call reconnects
        # The restart lost the queue's data: noticed and recorded, and this new job enqueued.
        assert engine.enqueue("tests.noop").state is JobState.QUEUED
        assert [loss.queue for loss in engine.data_loss] == ["default"]
        assert engine.enqueue("tests.noop").state is JobState.QUEUED
        assert engine.counts("default")[JobState.QUEUED] == 2
        private_redis.close()
        with pytest.raises(ConnectionFailed, match="could not be reached"):
            engine.enqueue("tests.noop")
    finally:
        client.close()


def test_enqueue_one_creates_the_same_job_as_the_bulk_script(engine, protocol):
    one = engine.enqueue("tests.add", [1, 2], priority=5, max_attempts=3, timeout=2.5)
    (many,) = engine.enqueue_many(
        [
            JobSpec("tests.add", [1, 2], priority=5, max_attempts=3, timeout=2.5),
            JobSpec("tests.noop", job_id="default:" + "ab" * 12),
        ]
    )[:1]
    a, b = engine.get(one.id), engine.get(many.id)
    for field in ("state", "version", "task", "args", "priority", "max_attempts", "timeout"):
        assert getattr(a, field) == getattr(b, field), field
    events = engine.client.xrange(engine.keys.queue("default").events)
    assert [e[1][b"s"] for e in events[:2]] == [b"queued", b"queued"]
    assert set(events[0][1]) == set(events[1][1])  # the same fields travel in the event
    # Priority order holds across both scripts: the priority-5 jobs come before a plain one.
    engine.enqueue("tests.noop")
    claimed = protocol.claim("default", "w", count=3).jobs
    assert [c.job_id for c in claimed][:2] == [one.id, many.id]


def test_enqueue_one_repeated_after_a_lost_reply_leaves_the_job_alone(engine, protocol):
    job = engine.enqueue("tests.noop")
    protocol.claim("default", "w")
    qk = engine.keys.queue("default")
    local_id = job.id.split(":", 1)[1]
    keys = [qk.meta, qk.ready, qk.events, qk.wake, qk.idle, qk.leases, qk.job(local_id)]
    reply = engine.runner.run(
        "enqueue_one", "default", keys, ["default", 100, 100, local_id, 0, qk.inbox_prefix, 30000]
    )
    assert reply[1] == b"exists"
    assert engine.get(job.id).state is JobState.RUNNING
    assert engine.client.zcard(qk.ready) == 0


def test_a_redis_that_stops_answering_times_out_and_a_fresh_connection_follows(redis_url):
    client = redis.Redis.from_url(redis_url, socket_timeout=0.3)
    other = redis.Redis.from_url(redis_url)
    caller = DirectCaller(client)
    try:
        first = caller.execute("CLIENT", "ID")
        sock = caller.wire().sock
        assert sock.gettimeout() is None  # the kernel keeps the time limit
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16) != bytes(16)
        other.execute_command("CLIENT", "PAUSE", 1500, "ALL")
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError, match="Timeout"):
            caller.execute("PING")  # tried twice, 0.3 s each
        assert time.monotonic() - started < 1.2
        other.execute_command("CLIENT", "UNPAUSE")
        assert caller.execute("ECHO", "back") == b"back"  # on a fresh connection
        assert caller.execute("CLIENT", "ID") != first
        wait_for(lambda: not connected(other, first), timeout=5, message="not closed")
    finally:
        other.execute_command("CLIENT", "UNPAUSE")
        client.close()
        other.close()


def test_a_reply_polled_for_comes_back_and_a_late_one_is_slept_on(client):
    caller = DirectCaller(client)
    assert caller.execute("ECHO", "polled", spin=0.05) == b"polled"
    wire = caller.wire()
    assert (wire.spin_misses, wire.spin_skip) == (0, 0)
    other = redis.Redis(
        connection_pool=redis.ConnectionPool(**client.connection_pool.connection_kwargs)
    )
    try:
        other.execute_command("CLIENT", "PAUSE", 100, "ALL")
        assert caller.execute("ECHO", "late", spin=0.001) == b"late"  # the poll gave up
        assert (wire.spin_misses, wire.spin_skip) == (1, 2)  # the next 2 calls sleep at once
        for word in ("a", "b"):
            assert caller.execute("ECHO", word, spin=0.05) == word.encode()
        assert wire.spin_skip == 0
        assert caller.execute("ECHO", "polled again", spin=0.05) == b"polled again"
        assert wire.spin_misses == 0
    finally:
        other.execute_command("CLIENT", "UNPAUSE")
        other.close()
