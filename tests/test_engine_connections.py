"""Connections: URLs, Sentinel, Cluster; data-loss detection on a private Redis."""

import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import redis

from jobqueue.engine import Engine, EngineConfig, JobState
from jobqueue.engine.errors import ConfigurationError, ConnectionFailed, DataLossDetected
from jobqueue.engine.transport.connection import create_client, get_client
from jobqueue.engine.transport.wire import Wire, pack
from tests.conftest import wait_for
from tests.redis_server import (
    RedisServer,
    TlsFiles,
    free_port,
    make_tls_files,
)
from tests.redis_topologies import RedisCluster, RedisSentinel


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://localhost", "unknown scheme"),
        ("redis+sentinel://127.0.0.1:26379", "does not name the service"),
        ("redis+sentinel://127.0.0.1:notaport/svc", "malformed host"),
        ("redis+cluster://nohostport", "malformed host"),
        (12, "must be a string"),
    ],
)
def test_bad_urls_raise_naming_the_url(url, message):
    with pytest.raises(ConfigurationError, match=message):
        create_client(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://user:hunter2@localhost",
        "redis+sentinel://:hunter2@127.0.0.1:26379",
        "redis+cluster://:hunter2@nohostport",
        "redis+sentinel://127.0.0.1:26379?sentinel_password=hunter2",
    ],
)
def test_a_bad_urls_error_never_shows_its_password(url):
    with pytest.raises(ConfigurationError) as caught:
        create_client(url)
    message = str(caught.value)
    assert "hunter2" not in message and "***" in message, message
    assert message.count("Redis URL") + message.count("Sentinel URL") == 1, message


@pytest.fixture
def engine_at(registry):
    """Engines on other servers; their clients are closed after the test."""
    made = []

    def make(url, prefix, **options):
        engine = Engine(create_client(url, **options), EngineConfig(prefix=prefix), registry)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.client.close()


def test_one_client_per_url_per_process(redis_url):
    assert get_client(redis_url) is get_client(redis_url)


def test_unix_socket_url_is_understood():
    client = create_client("unix:///tmp/nonexistent.sock?db=2")
    assert client.connection_pool.connection_kwargs["path"] == "/tmp/nonexistent.sock"


def test_unreachable_redis_raises_connection_failed(engine_at):
    from tests.redis_server import free_port

    engine = engine_at(f"redis://127.0.0.1:{free_port()}/0", "x", socket_connect_timeout=0.5)
    with pytest.raises(ConnectionFailed, match="could not be reached"):
        engine.enqueue("tests.noop")


def roundtrip(engine):
    jobs = [engine.enqueue("tests.add", [i, 1], queue=q) for i, q in enumerate(["a", "b", "c"])]
    for queue in ("a", "b", "c"):
        batch = engine.worker_protocol().claim(queue, "w", count=5)
        for c in batch.jobs:
            engine.worker_protocol().complete(c.job_id, c.token, sum(c.job.args))
    assert [engine.get(j.id).result for j in jobs] == [1, 2, 3]
    assert [engine.wait(j.id, 1).state for j in jobs] == [JobState.SUCCEEDED] * 3
    assert engine.queues() == ["a", "b", "c"]


def test_data_loss_is_detected_loudly(private_redis, engine_at):
    engine = engine_at(private_redis.url, "dl")
    job = engine.enqueue("tests.noop")
    private_redis.restart()  # no persistence: everything is gone
    with pytest.raises(DataLossDetected, match="lost the data of queue 'default'"):
        engine.worker_protocol().claim("default", "w")
    assert engine.data_loss and engine.data_loss[0].queue == "default"
    assert engine.queue_info("default").data_lost_at is not None
    # It carries on with a new epoch once the loss has been reported.
    assert engine.worker_protocol().claim("default", "w").jobs == []
    assert engine.enqueue("tests.noop").id != job.id


def test_flush_is_detected_by_another_process_view(private_redis, engine_at):
    engine = engine_at(private_redis.url, "dl")
    engine.enqueue("tests.noop")
    private_redis.client().flushall()
    engine.enqueue("tests.noop")  # the new job was not lost: written, the loss recorded
    assert [loss.queue for loss in engine.data_loss] == ["default"]
    engine.enqueue("tests.noop")
    assert engine.counts("default")[JobState.QUEUED] == 2


@pytest.mark.slow
def test_sentinel(tmp_path, engine_at):
    sentinel = RedisSentinel(tmp_path).start()
    try:
        roundtrip(engine_at(sentinel.url, "s"))
    finally:
        sentinel.close()


@pytest.mark.slow
def test_cluster_runs_the_same_scripts(tmp_path, engine_at):
    cluster = RedisCluster(tmp_path).start()
    try:
        engine = engine_at(cluster.url, "c")
        roundtrip(engine)
        from jobqueue.engine import JobSpec

        jobs = engine.enqueue_many([JobSpec("tests.noop", queue=f"q{i % 5}") for i in range(50)])
        assert len(jobs) == 50
        slots = {engine.client.keyslot(engine.keys.queue(f"q{i}").ready) for i in range(5)}
        assert len(slots) > 1  # the queues really live in different slots
    finally:
        cluster.close()


# -- URLs: users, TLS, query options ---------------------------------------------------------


def test_sentinel_url_carries_the_acl_user_tls_and_the_sentinels_own_credentials():
    client = create_client(
        "rediss+sentinel://jobqueue:s%40cret@127.0.0.1:26379,127.0.0.1:26380/mymaster/3"
        "?sentinel_username=watcher&sentinel_password=eyes&ssl_ca_certs=/ca.pem"
        "&ssl_cert_reqs=none&socket_timeout=7.5",
        socket_connect_timeout=1.5,
    )
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("jobqueue", "s@cret", 3)
    assert issubclass(pool.connection_class, redis.SSLConnection)
    assert (kwargs["ssl_ca_certs"], kwargs["ssl_cert_reqs"]) == ("/ca.pem", "none")
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (7.5, 1.5)
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [26379, 26380]
    watcher = sentinels[0].connection_pool
    assert watcher.connection_kwargs["username"] == "watcher"
    assert watcher.connection_kwargs["password"] == "eyes"
    assert issubclass(watcher.connection_class, redis.SSLConnection)  # TLS to them too
    assert "sentinel_password" not in kwargs and "sentinel_username" not in kwargs


def test_sentinels_can_be_reached_without_tls():
    client = create_client(
        "rediss+sentinel://127.0.0.1:26379/mymaster?sentinel_ssl=no&ssl_cert_reqs=none"
    )
    assert issubclass(client.connection_pool.connection_class, redis.SSLConnection)
    sentinel = client.connection_pool.sentinel_manager.sentinels[0].connection_pool
    assert not issubclass(sentinel.connection_class, redis.SSLConnection)


def test_a_password_alone_is_the_default_users():
    client = create_client("redis+sentinel://:hunter2@127.0.0.1:26379/mymaster")
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["password"] == "hunter2" and kwargs.get("username") is None


def test_timeouts_default_to_the_modules_constants(redis_url):
    from jobqueue.engine.transport import connection

    kwargs = create_client(redis_url).connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == connection.SOCKET_TIMEOUT
    assert kwargs["socket_connect_timeout"] == connection.CONNECT_TIMEOUT


@pytest.mark.parametrize(
    "url",
    [
        "rediss+cluster://jobqueue:hunter2@127.0.0.1:7000?socket_timeout=soon",
        "rediss+sentinel://jobqueue:hunter2@127.0.0.1:7000/m?ssl_min_version=x",
        "rediss+sentinel://jobqueue:hunter2@127.0.0.1:7000/m?ssl_ca_cert=/ca.pem",
        "rediss+cluster://jobqueue:hunter2@127.0.0.1:7000?sentinel_password=hunter2",
    ],
)
def test_a_malformed_option_names_it_without_the_password(url):
    with pytest.raises(ConfigurationError, match=r"malformed|unknown option") as caught:
        create_client(url)
    assert "hunter2" not in str(caught.value) and "jobqueue:***@" in str(caught.value)
    assert url.split("?")[1].split("=")[0] in str(caught.value)  # names the option


# -- timeouts --------------------------------------------------------------------------------


def test_the_fault_proxy_blackholes_both_ways_and_restores(redis_url):
    from tests.fault_proxy import FaultProxy

    port = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs["port"]
    with FaultProxy(("127.0.0.1", port)) as proxy:
        client = redis.Redis.from_url(proxy.url, socket_timeout=0.3, retry=None)
        assert client.ping()
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            client.ping()
        assert time.monotonic() - started < 1.5
        fresh = redis.Redis.from_url(proxy.url, socket_timeout=0.3, retry=None)
        with pytest.raises(redis.TimeoutError):  # a new connection hears nothing either
            fresh.ping()
        proxy.restore()
        fresh.connection_pool.disconnect()
        assert fresh.ping()
        client.close()
        fresh.close()


def test_a_producer_against_a_blackholed_redis_fails_within_its_timeout(
    redis_url, engine_at, keyspace
):
    from tests.fault_proxy import FaultProxy

    port = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs["port"]
    with FaultProxy(("127.0.0.1", port)) as proxy:
        engine = engine_at(proxy.url, keyspace.prefix, socket_timeout=0.5)
        engine.enqueue("tests.noop")  # connected, scripts loaded
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(ConnectionFailed, match="Timeout"):
            engine.enqueue("tests.noop")
        # The read times out, and is tried once more on a fresh connection: twice the timeout.
        assert time.monotonic() - started < 2 * 0.5 + 0.8


def test_the_settings_timeouts_reach_the_client(settings):
    from jobqueue.conf import redis_client

    settings.JOBQUEUE = {
        **settings.JOBQUEUE,
        "REDIS_SOCKET_TIMEOUT": 6.5,
        "REDIS_CONNECT_TIMEOUT": 0.75,
    }
    kwargs = redis_client().connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (6.5, 0.75)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("REDIS_SOCKET_TIMEOUT", 5, "must be more than 5 seconds"),
        ("REDIS_SOCKET_TIMEOUT", 0, "greater than zero"),
        ("REDIS_SOCKET_TIMEOUT", "10", "must be a number"),
        ("REDIS_CONNECT_TIMEOUT", -1, "greater than zero"),
    ],
)
def test_bad_timeouts_are_refused_naming_the_value(settings, key, value, message):
    from django.core.exceptions import ImproperlyConfigured

    from jobqueue.conf import jobqueue_settings

    settings.JOBQUEUE = {**settings.JOBQUEUE, key: value}
    with pytest.raises(ImproperlyConfigured, match=f"{key}.*{message}"):
        jobqueue_settings.as_dict()


# -- Sentinel and Cluster with the docs' ACL user, over TLS ----------------------------------

OPERATING = (Path(__file__).resolve().parent.parent / "docs" / "operating.md").read_text()


def from_operating(pattern: str) -> list[str]:
    """The words of what ``pattern``'s group finds in docs/operating.md."""
    found = re.search(pattern, OPERATING, re.M)
    assert found, f"docs/operating.md no longer says {pattern!r}"
    return shlex.split(found.group(1))


SETUSER = from_operating(r"^redis-cli (ACL SETUSER .*)$")
# Redis Cluster clients also read the cluster's layout: the docs' rule for a cluster.
CLUSTER_RULES = from_operating(r"cluster, add\s+`([^`]+)`")


def add_doc_user(client: redis.Redis, *rules: str) -> str:
    """docs/operating.md's least-privilege user on this server; returns its user:password."""
    client.execute_command(*SETUSER, *rules)
    return "jobqueue:change-me"


def tls_options(tls: TlsFiles) -> dict[str, str]:
    return {
        "tls-cert-file": str(tls.cert),
        "tls-key-file": str(tls.key),
        "tls-ca-cert-file": str(tls.ca),
        "tls-auth-clients": "no",
    }


def users_connected(client: redis.Redis) -> set[str]:
    me = client.client_id()
    return {c["user"] for c in client.client_list() if int(c["id"]) != me}


def burst_worker(run_worker, url: str) -> None:
    result = run_worker(
        "--burst",
        "--no-mirror",
        "-c",
        "1",
        JOBQUEUE_REDIS_URL=url,
        JOBQUEUE_PREFIX="jq",
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    assert "change-me" not in result.stderr + result.stdout


@pytest.fixture
def tls_files(tmp_path):
    return make_tls_files(tmp_path / "tls")


@pytest.mark.slow
def test_tls_sentinel_with_an_acl_user(tmp_path, tls_files, engine_at, registry, run_worker):
    registry.register("tests.sample_tasks.add", lambda a, b: a + b)
    master = RedisServer(tmp_path / "master", tls=tls_files).start()
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    lines = [f"port 0\ntls-port {port}\nbind 127.0.0.1\ndir {tmp_path}\ntls-replication yes"]
    lines += [f"{name} {value}" for name, value in tls_options(tls_files).items()]
    lines.append(f"sentinel monitor mymaster 127.0.0.1 {master.port} 1")
    lines.append("user default off")  # the sentinel has its own user: the URL's query names it
    lines.append("user watcher on >eyes +@all")
    conf.write_text("\n".join(lines) + "\n")
    sentinel = subprocess.Popen(
        ["redis-server", str(conf), "--sentinel", "--logfile", str(tmp_path / "sentinel.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        admin = master.client()
        user = add_doc_user(admin)
        ca = f"ssl_ca_certs={tls_files.ca}"
        watcher = "sentinel_username=watcher&sentinel_password=eyes"
        url = f"rediss+sentinel://{user}@127.0.0.1:{port}/mymaster/0?{ca}&{watcher}"
        engine = wait_for(lambda: reachable_engine(engine_at, url), 10, 0.1)
        roundtrip(engine)
        assert users_connected(admin) >= {"jobqueue"}
        # The hot path's own socket (a Wire) reaches the master over TLS, as the ACL user.
        wire = Wire.open(engine.client)
        try:
            wire.send(pack([("CLIENT", "INFO")]))
            assert wire.tls and " user=jobqueue " in wire.read(text=True)
        finally:
            wire.close()
        job = engine.enqueue("tests.sample_tasks.add", [2, 3])
        burst_worker(run_worker, url)
        assert engine.wait(job.id, 5).result == 5
        anonymous = url.replace(f"&{watcher}", "")  # the sentinel asks for its user
        wrongs = [anonymous, url.replace("change-me", "hunter2"), url.replace("eyes", "hunter2")]
        for wrong in wrongs:
            with pytest.raises(ConnectionFailed) as caught:
                engine_at(wrong, "jq").enqueue("tests.noop")
            message = str(caught.value)
            assert "hunter2" not in message and "change-me" not in message, message
    finally:
        sentinel.terminate()
        sentinel.wait(10)
        master.close()


def reachable_engine(engine_at, url):
    """An engine on ``url`` once the sentinel has found its master (None before)."""
    engine = engine_at(url, "jq")
    try:
        engine.client.ping()
    except redis.RedisError:
        return None
    return engine


@pytest.mark.slow
def test_tls_cluster_with_an_acl_user(tmp_path, tls_files, engine_at, registry, run_worker):
    registry.register("tests.sample_tasks.add", lambda a, b: a + b)
    options = {"cluster-enabled": "yes", "tls-cluster": "yes"}
    nodes = [RedisServer(tmp_path / f"node{i}", tls=tls_files, **options) for i in range(3)]
    try:
        for node in nodes:
            node.start()
        tls = ["--tls", "--cacert", str(tls_files.ca)]
        subprocess.run(
            ["redis-cli", *tls, "--cluster", "create"]
            + [f"127.0.0.1:{n.port}" for n in nodes]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        admins = [node.client() for node in nodes]
        wait_for(lambda: all(a.cluster("info")["cluster_state"] == "ok" for a in admins), 20)
        for admin in admins:
            user = add_doc_user(admin, *CLUSTER_RULES)
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
        url = f"rediss+cluster://{user}@{hosts}?ssl_ca_certs={tls_files.ca}"
        engine = engine_at(url, "jq")
        roundtrip(engine)
        assert all("jobqueue" in users_connected(admin) for admin in admins)
        job = engine.enqueue("tests.sample_tasks.add", [2, 3])
        burst_worker(run_worker, url)
        assert engine.wait(job.id, 5).result == 5
        refused = [e for admin in admins for e in admin.acl_log() if e["username"] == "jobqueue"]
        assert refused == []
    finally:
        for node in nodes:
            node.close()


def test_runworker_never_prints_the_password_of_a_url_it_cannot_use(private_redis, run_worker):
    private_redis.client().acl_setuser("someone", enabled=True, passwords=["+right"])
    url = private_redis.url.replace("redis://", "redis://someone:hunter2@")
    result = run_worker("--burst", "--no-mirror", JOBQUEUE_REDIS_URL=url, timeout=30)
    assert result.returncode != 0
    assert "cannot be used" in result.stderr and "someone:***@" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


@pytest.mark.parametrize("scheme", ["rediss+sentinel", "rediss+cluster", "redis+cluster"])
def test_the_settings_take_every_url_form(scheme):
    from jobqueue.conf import validate

    assert validate({"REDIS_URL": f"{scheme}://u:p@127.0.0.1:7000/mymaster"}) == []
    assert validate({"REDIS_URL": f"{scheme.replace('redis', 'valkey')}://x:1/m"}) != []
