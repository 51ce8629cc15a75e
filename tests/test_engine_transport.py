"""The engine's own connections (``jobqueue/engine/transport/wire.py``): each kind of address
and credentials a client's pool may carry, against private redis-server processes, then the
replies, errors, timeouts and reconnections of a ``Wire`` and of the ``DirectCaller`` on it."""

import select
import socket
import ssl
import threading
import time

import pytest
import redis
from redis.credentials import UsernamePasswordCredentialProvider

from jobqueue.engine import Engine, EngineConfig, JobState
from jobqueue.engine.errors import ConfigurationError, ConnectionFailed
from jobqueue.engine.transport.caller import DirectCaller
from jobqueue.engine.transport.connection import create_client
from jobqueue.engine.transport.wire import Wire, master_reply_error, pack
from tests.redis_server import RedisServer, make_tls_files
from tests.redis_topologies import RedisSentinel


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def server(tmp_path):
    """Starts private redis-servers with the options asked for; all are stopped after."""
    started = []

    def start(**options):
        started.append(RedisServer(tmp_path / f"redis{len(started)}", **options).start())
        return started[-1]

    yield start
    for one in started:
        one.close()


@pytest.fixture
def opened():
    """Opens wires (and clients) for a test; all are closed after it."""
    wires, clients = [], []

    def open_wire(url_or_client, **options):
        client = url_or_client
        if isinstance(client, str):
            client = create_client(client, **options)
            clients.append(client)
        wires.append(Wire.open(client))
        return wires[-1]

    yield open_wire
    for wire in wires:
        wire.close()
    for client in clients:
        client.close()


def call(wire, *command, text=False):
    wire.send(pack([command]))
    return wire.read(text=text)


def round_trip(url, keyspace, registry, **options):
    """An engine on ``url``: a job enqueued, read back, claimed and completed."""
    client = create_client(url, **options)
    try:
        engine = Engine(client, EngineConfig(prefix=keyspace.prefix), registry)
        job = engine.enqueue("tests.add", [2, 3])
        assert engine.get(job.id).state is JobState.QUEUED
        (claim,) = engine.worker_protocol().claim("default", "w").jobs
        engine.worker_protocol().complete(claim.job_id, claim.token, 5)
        assert engine.get(job.id).result == 5
    finally:
        client.close()


# -- where to connect, and as whom ---------------------------------------------------------------


def test_a_password(server, opened, keyspace, registry):
    redis_server = server(password="s3cret")
    wire = opened(redis_server.url)
    assert call(wire, "PING") == b"PONG"
    anonymous = opened(redis_server.url.replace(":s3cret@", ""))  # sends no AUTH
    assert isinstance(call(anonymous, "PING"), redis.AuthenticationError)
    with pytest.raises(redis.AuthenticationError, match="refused AUTH on connecting"):
        opened(redis_server.url.replace("s3cret", "wrong"))
    round_trip(redis_server.url, keyspace, registry)


def test_an_acl_user_and_a_clear_error_for_a_wrong_password(server, opened, keyspace, registry):
    redis_server = server()
    redis_server.client().execute_command(
        "ACL", "SETUSER", "alice", "on", ">secret", "~*", "+@all"
    )
    url = f"redis://alice:secret@127.0.0.1:{redis_server.port}/0"
    assert call(opened(url), "ACL", "WHOAMI") == b"alice"
    with pytest.raises(redis.AuthenticationError) as refused:
        opened(url.replace("secret", "wrong"))
    assert "refused AUTH on connecting: invalid username-password pair" in str(refused.value)
    with pytest.raises(ConnectionFailed, match=r"could not be reached.*invalid username-password"):
        round_trip(url.replace("secret", "wrong"), keyspace, registry)
    round_trip(url, keyspace, registry)


def test_a_credential_provider_and_a_client_name(server, opened):
    redis_server = server(password="s3cret")
    provider = UsernamePasswordCredentialProvider("default", "s3cret")
    client = redis.Redis(
        port=redis_server.port, credential_provider=provider, client_name="jq-wire"
    )
    try:
        wire = opened(client)
        assert call(wire, "CLIENT", "GETNAME") == b"jq-wire"
    finally:
        client.close()


def test_a_unix_socket(server, opened, keyspace, registry, tmp_path):
    redis_server = server(unix_socket=tmp_path / "redis.sock")
    wire = opened(redis_server.unix_url)
    assert wire.sock.family == socket.AF_UNIX
    assert call(wire, "PING") == b"PONG"
    assert wire.sock.gettimeout() is None  # blocking, with the kernel's timeouts
    round_trip(redis_server.unix_url, keyspace, registry)


def test_tls(server, opened, keyspace, registry, tls_files):
    redis_server = server(tls=tls_files)
    assert (
        redis_server.url.startswith("rediss://") and "ssl_cert_reqs=required" in redis_server.url
    )
    wire = opened(redis_server.url)
    assert isinstance(wire.sock, ssl.SSLSocket)
    assert call(wire, "ECHO", "over tls") == b"over tls"
    wire.send(pack([("BLPOP", "jq-transport-tls", 5)]))
    assert not wire.has_reply() and wire.poll(0.001) is False  # TLS reads without waiting
    redis_server.client().rpush("jq-transport-tls", "x")
    assert select.select([wire], [], [], 5)[0] == [wire]
    assert wire.read() == [b"jq-transport-tls", b"x"]
    round_trip(redis_server.url, keyspace, registry)


def test_tls_with_a_certificate_not_trusted(server, opened, tls_files):
    redis_server = server(tls=tls_files)
    untrusted = f"rediss://127.0.0.1:{redis_server.port}/0?ssl_cert_reqs=required"
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        opened(untrusted)
    unchecked = f"rediss://127.0.0.1:{redis_server.port}/0?ssl_cert_reqs=none"
    assert call(opened(unchecked), "PING") == b"PONG"


def test_the_database_of_the_url(server, opened, keyspace, registry):
    redis_server = server()
    url = f"redis://127.0.0.1:{redis_server.port}/3"
    assert call(opened(url), "SET", "jq-transport-db", "three") == b"OK"
    with redis.Redis(port=redis_server.port, db=0) as db0:
        with redis.Redis(port=redis_server.port, db=3) as db3:
            assert db3.get("jq-transport-db") == b"three" and db0.dbsize() == 0
            round_trip(url, keyspace, registry)
            assert db3.dbsize() > 1 and db0.dbsize() == 0  # the engine's keys are in db 3


@pytest.mark.slow
def test_sentinel(tmp_path, opened, keyspace, registry):
    sentinel = RedisSentinel(tmp_path).start()
    try:
        wire = opened(sentinel.url)
        port = call(wire, "CONFIG", "GET", "port")
        assert port == [b"port", str(sentinel.master.port).encode()]
        round_trip(sentinel.url, keyspace, registry)
    finally:
        sentinel.close()


def test_a_demoted_sentinel_master_is_a_connection_error():
    readonly = "READONLY You can't write against a read only replica."
    assert isinstance(master_reply_error(readonly), redis.ConnectionError)
    assert isinstance(master_reply_error("ERR nope"), redis.ResponseError)


def test_the_client_protocol_and_decoding(redis_url, opened):
    wire = opened(redis_url, protocol=3)
    key = "jq-transport-hash"
    try:
        assert call(wire, "HSET", key, "a", "1") == 1
        assert call(wire, "HGETALL", key) == [b"a", b"1"]  # RESP2 all the same
        decoding = opened(redis_url, decode_responses=True)
        assert call(decoding, "HGETALL", key) == ["a", "1"]
    finally:
        call(wire, "DEL", key)


def test_cluster_clients_are_not_served():
    with pytest.raises(ConfigurationError, match="Cluster"):
        Wire.open(object())


# -- replies and errors --------------------------------------------------------------------------


def test_error_replies_are_redis_py_exceptions_in_place(redis_url, opened):
    wire = opened(redis_url)
    key = "jq-transport-errors"
    wire.send(
        pack(
            [
                ("EVALSHA", "0" * 40, 0),
                ("NOSUCHCOMMAND",),
                ("SET", key, "x"),
                ("LPUSH", key, "y"),
                ("DEL", key),
            ]
        )
    )
    noscript, unknown, ok, wrongtype, deleted = (wire.read() for _ in range(5))
    assert isinstance(noscript, redis.exceptions.NoScriptError)
    assert str(noscript).startswith("No matching script")
    assert type(unknown) is redis.ResponseError and "NOSUCHCOMMAND" in str(unknown)
    assert ok == b"OK" and deleted == 1
    assert type(wrongtype) is redis.ResponseError and str(wrongtype).startswith("WRONGTYPE")


def test_a_replica_answers_writes_with_read_only_errors(server, opened):
    primary, replica = server(), server()
    replica.client().replicaof("127.0.0.1", primary.port)
    reply = call(opened(replica.url), "SET", "jq-transport-ro", "x")
    assert isinstance(reply, redis.exceptions.ReadOnlyError)


def test_text_replies_for_one_read(redis_url, opened):
    wire = opened(redis_url)
    key = "jq-transport-text"
    try:
        call(wire, "RPUSH", key, "é", b"\xffok")
        assert call(wire, "LRANGE", key, 0, -1, text=True) == ["é", "\ufffdok"]
        assert call(wire, "LRANGE", key, 0, -1) == ["é".encode(), b"\xffok"]
    finally:
        call(wire, "DEL", key)


def test_a_reply_waited_for_without_blocking(redis_url, opened):
    wire, other = opened(redis_url), redis.Redis.from_url(redis_url)
    key = "jq-transport-wait"
    try:
        wire.send(pack([("BLPOP", key, 5)]))
        assert not wire.has_reply()
        assert wire.poll(0.005) is False and (wire.spin_misses, wire.spin_skip) == (1, 2)
        other.rpush(key, "v")
        assert select.select([wire.fileno()], [], [], 5)[0]
        assert wire.has_reply() and wire.has_reply()  # parsed once, kept for read()
        assert wire.read() == [key.encode(), b"v"]
        assert not wire.has_reply()
    finally:
        other.delete(key)
        other.close()


def test_a_protocol_error_is_invalid_response():
    ours, theirs = socket.socketpair()
    wire = Wire(ours, timeout=1.0)
    try:
        theirs.sendall(b"?not redis\r\n")
        with pytest.raises(redis.exceptions.InvalidResponse):
            wire.read()
    finally:
        wire.close()
        theirs.close()


def test_a_connection_the_server_closes(redis_url, opened):
    wire, other = opened(redis_url), redis.Redis.from_url(redis_url)
    try:
        other.execute_command("CLIENT", "KILL", "ID", call(wire, "CLIENT", "ID"))
        with pytest.raises(redis.ConnectionError, match="closed by server"):
            wire.read()
    finally:
        other.close()


def test_a_bad_argument_is_a_data_error():
    with pytest.raises(redis.DataError, match="not a str, bytes or number"):
        pack([("ECHO", None)])


# -- timeouts and reconnections ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tcp", "tls"])
def test_a_server_that_stops_answering_times_out(server, opened, tls_files, kind):
    redis_server = server(tls=tls_files if kind == "tls" else None)
    wire = opened(redis_server.url, socket_timeout=0.3)
    caller = DirectCaller(create_client(redis_server.url, socket_timeout=0.3))
    assert call(wire, "PING") == b"PONG" and caller.execute("PING") == b"PONG"
    redis_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            call(wire, "PING")
        assert 0.25 < time.monotonic() - started < 1.0
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            caller.execute("PING")  # tried twice: a fresh connection times out too
        assert time.monotonic() - started < 2.0
        redis_server.resume()
        assert caller.execute("PING") == b"PONG"
    finally:
        redis_server.resume()
        caller.client.close()


def test_the_caller_reconnects_after_a_restart(private_redis):
    client = create_client(private_redis.url)
    caller = DirectCaller(client)
    try:
        assert caller.execute("PING") == b"PONG"
        before = caller.wire()
        private_redis.restart()
        assert caller.execute("ECHO", "again") == b"again"  # sent again on a fresh wire
        assert caller.wire() is not before and before.fileno() == -1  # the dead one closed
        private_redis.close()
        with pytest.raises(redis.ConnectionError, match="Error connecting to Redis"):
            caller.execute("PING")
    finally:
        client.close()


def test_threads_share_nothing(redis_url):
    client = create_client(redis_url)
    caller = DirectCaller(client)
    seen, errors = set(), []

    def work():
        try:
            for i in range(200):
                assert caller.execute("ECHO", str(i)) == str(i).encode()
            seen.add(caller.execute("CLIENT", "ID"))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(seen) == 4
    client.close()


# -- the worker's wake listener ------------------------------------------------------------------


def wait_until_readable(listener):
    assert select.select([listener], [], [], 5)[0], "the BLPOP never answered"
    assert listener.has_reply()


def test_the_wake_listener_blocks_on_its_own_wire(redis_url, caplog):
    from jobqueue.worker.wake import WakeListener

    client, other = create_client(redis_url), redis.Redis.from_url(redis_url)
    key = "jq-transport-wake"
    listener = WakeListener(client, [key], timeout=0.2)
    try:
        assert listener.socket_fd() is None and not listener.has_reply()
        assert listener.arm() and listener.arm()  # one BLPOP pending
        assert listener.socket_fd() == listener.fileno() > 0
        other.rpush(key, "token")
        wait_until_readable(listener)
        assert listener.read() == [key.encode(), b"token"]
        assert listener.arm()
        wait_until_readable(listener)  # its timeout
        assert listener.read() is None and listener.arm()
        other.execute_command("CLIENT", "KILL", "ID", wire_id(other, listener.wire))
        wait_until_readable(listener)  # what select() reports: read() finds it closed
        assert listener.read() is None and listener.socket_fd() is None
        assert "wake_listener_failed" in caplog.text
        assert listener.arm()  # a fresh connection
        other.rpush(key, "again")
        wait_until_readable(listener)
        assert listener.read() == [key.encode(), b"again"]
    finally:
        listener.close()
        other.delete(key)
        other.close()
        client.close()


def wire_id(admin, wire):
    """The CLIENT ID of ``wire``'s connection, found by its local port."""
    port = wire.sock.getsockname()[1]
    (found,) = [i["id"] for i in admin.client_list() if i["addr"].endswith(f":{port}")]
    return found
