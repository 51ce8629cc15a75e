"""Connections: URLs, Sentinel, Cluster; data-loss detection on a private Redis."""

import pytest

from jobqueue.engine import (
    ConfigurationError,
    ConnectionFailed,
    DataLossDetected,
    Engine,
    EngineConfig,
    JobState,
)
from jobqueue.engine.connection import create_client, get_client
from tests.redis_server import RedisCluster, RedisSentinel


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
        batch = engine.claim(queue, "w", count=5)
        for c in batch.jobs:
            engine.complete(c.job_id, c.token, sum(c.job.args))
    assert [engine.get(j.id).result for j in jobs] == [1, 2, 3]
    assert [engine.wait(j.id, 1).state for j in jobs] == [JobState.SUCCEEDED] * 3
    assert engine.queues() == ["a", "b", "c"]


def test_data_loss_is_detected_loudly(private_redis, engine_at):
    engine = engine_at(private_redis.url, "dl")
    job = engine.enqueue("tests.noop")
    private_redis.restart()  # no persistence: everything is gone
    with pytest.raises(DataLossDetected, match="lost the data of queue 'default'"):
        engine.claim("default", "w")
    assert engine.data_loss and engine.data_loss[0].queue == "default"
    assert engine.queue_info("default").data_lost_at is not None
    # It carries on with a new epoch once the loss has been reported.
    assert engine.claim("default", "w").jobs == []
    assert engine.enqueue("tests.noop").id != job.id


def test_flush_is_detected_by_another_process_view(private_redis, engine_at):
    engine = engine_at(private_redis.url, "dl")
    engine.enqueue("tests.noop")
    private_redis.client().flushall()
    with pytest.raises(DataLossDetected):
        engine.enqueue("tests.noop")
    engine.enqueue("tests.noop")
    assert engine.counts("default")[JobState.QUEUED] == 1


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
        slots = {engine.client.keyslot(engine.qkeys(f"q{i}").ready) for i in range(5)}
        assert len(slots) > 1  # the queues really live in different slots
    finally:
        cluster.close()
