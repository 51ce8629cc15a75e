"""The harness itself: real Redis, isolated prefixes, nothing left behind."""

import redis

from jobqueue.conf import jobqueue_settings
from tests.conftest import KeySpace, new_prefix


def test_each_test_has_its_own_prefix_on_a_real_redis(keyspace, redis_url):
    assert jobqueue_settings.PREFIX == keyspace.prefix
    assert jobqueue_settings.REDIS_URL == redis_url
    with redis.Redis.from_url(redis_url) as client:
        assert client.ping() is True


def test_keyspace_cleanup_removes_its_keys_and_only_those(redis_url):
    client = keyspace_client = redis.Redis.from_url(redis_url)
    space = KeySpace(redis_url, new_prefix())
    neighbour = KeySpace(redis_url, new_prefix())
    try:
        for i in range(1200):  # more than one SCAN page
            client.set(f"{space.prefix}:{{q}}:k{i}", i)
        client.hset(f"{space.prefix}:{{q}}:job:1", "state", "queued")
        client.set(f"{neighbour.prefix}:kept", 1)
        assert len(space.keys()) == 1201
        assert space.cleanup() == 1201
        assert space.keys() == []
        assert client.get(f"{neighbour.prefix}:kept") == b"1"
    finally:
        neighbour.cleanup()
        space.close()
        neighbour.close()
        keyspace_client.close()


def test_private_redis_can_be_restarted_and_flushed(private_redis):
    client = private_redis.client()
    client.set("k", "v")
    private_redis.restart()  # no persistence: the data is gone, as after a crash
    client = private_redis.client()
    assert client.get("k") is None
    client.set("k2", "v")
    client.flushall()  # allowed: this server belongs to the test
    assert client.dbsize() == 0
    assert private_redis.url.startswith("redis://127.0.0.1:")


def test_private_redis_with_options(tmp_path):
    from tests.redis_server import RedisServer

    with RedisServer(tmp_path / "aof", appendonly="yes") as server:
        client = server.client()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.set("durable", "1")
        server.restart()
        assert server.client().get("durable") == b"1"
