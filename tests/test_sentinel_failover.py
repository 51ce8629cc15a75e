"""Sentinel failovers under load: a master, two replicas and three sentinels; the master is
killed while a producer enqueues and a worker drains.

With ``ENQUEUE_REPLICAS = 2`` (every replica) every enqueue that returned is on the new master
after each failover, and the worker runs every one of them. Every replica, not one: on a
loaded machine a sentinel may miss the master's replies and fail over while it still runs,
and a job only one replica acknowledged can then be lost (docs/guarantees.md).
``bench/failover.py`` measures the same run with 0, 1 and 2 (what asynchronous replication
loses) and the time to recover.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobqueue.conf import get_engine
from jobqueue.engine import Engine, EngineConfig, JobSpec, JobState
from jobqueue.engine.errors import ConfigurationError, NotReplicated
from jobqueue.engine.transport.connection import create_client
from tests import sample_tasks  # noqa: F401 - registers the task the producer enqueues
from tests.conftest import wait_for
from tests.load import Producer
from tests.redis_server import RedisServer
from tests.redis_topologies import RedisCluster, RedisSentinel

# Two: five in a row, with a worker and a producer on this 2-core machine, left the sentinels
# without a majority for a new master 30 s after a kill in 2 of 4 runs (python -m
# bench.failover makes five in a row, without a worker).
pytestmark = pytest.mark.topology

FAILOVERS = 2
ROOT = Path(__file__).resolve().parent.parent


def documented_settings() -> dict:
    """The JOBQUEUE dict of docs/operating.md's "High availability with Sentinel"."""
    text = (ROOT / "docs" / "operating.md").read_text()
    section = text.split("## High availability with Sentinel\n", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```python\n(.*?)\n```", section, re.S)
    namespace: dict = {}
    exec(block, namespace)
    return namespace["JOBQUEUE"]


@pytest.mark.slow
def test_no_acknowledged_enqueue_is_lost_across_failovers(tmp_path, start_worker):
    """With docs/operating.md's settings."""
    documented = documented_settings()
    assert documented["REDIS_URL"].startswith("redis+sentinel://")
    sentinel = RedisSentinel(tmp_path, replicas=2, sentinels=3).start()
    config = EngineConfig(
        prefix="fo",
        enqueue_replicas=documented["ENQUEUE_REPLICAS"],
        enqueue_replicas_timeout=documented["ENQUEUE_REPLICAS_TIMEOUT"],
    )
    engine = Engine(create_client(sentinel.url), config, get_engine().registry)
    producer = Producer(engine)
    worker = start_worker(
        "--no-mirror",
        "-c",
        "2",
        JOBQUEUE_REDIS_URL=sentinel.url,
        JOBQUEUE_PREFIX="fo",
        JOBQUEUE_LEASE_SECONDS="2",
    )

    try:
        producer.start()
        # The worker runs jobs before the first failover (at start, it checks Redis once).
        wait_for(lambda: engine.counts("default")[JobState.SUCCEEDED] > 0, timeout=30)
        took = []
        for _ in range(FAILOVERS):
            producer.wait_for_more()
            took.append(sentinel.fail_over())
            sentinel.wait_for_replicas(2)
        producer.wait_for_more()
        producer.done.set()
        producer.join(timeout=10)

        acknowledged = producer.acknowledged
        found = {job.id for job in engine.find(acknowledged)}
        missing = [job_id for job_id in acknowledged if job_id not in found]
        assert not missing, f"{len(missing)} acknowledged jobs lost, first {missing[:5]}"
        assert producer.longest_gap < 15, f"enqueues stopped for {producer.longest_gap:.1f} s"

        def all_succeeded() -> bool:
            states = [job.state for job in engine.find(acknowledged)]
            return states.count(JobState.SUCCEEDED) == len(acknowledged)

        try:
            wait_for(all_succeeded, timeout=40)
        except AssertionError:
            counts = engine.counts("default")
            raise AssertionError(f"not every job ran: {counts}\n{worker.output()}") from None
        assert worker.process.poll() is None, worker.output()
        print(
            f"{len(acknowledged)} jobs, failovers took {[round(s, 1) for s in took]} s, "
            f"longest pause in enqueues {producer.longest_gap:.1f} s, refused {producer.refused}"
        )
    finally:
        producer.done.set()
        engine.client.close()
        sentinel.close()


def test_an_enqueue_no_replica_acknowledges_raises_not_replicated(private_redis, registry):
    """A master without replicas: the job is written, the caller is told it is not safe yet;
    the same enqueue again creates nothing twice and says so again."""
    config = EngineConfig(prefix="nr", enqueue_replicas=1, enqueue_replicas_timeout=0.05)
    engine = Engine(create_client(private_redis.url), config, registry)
    try:
        with pytest.raises(NotReplicated) as raised:
            engine.enqueue("tests.noop", job_id="default:one")
        error = raised.value
        assert (error.acknowledged, error.wanted) == (0, 1)
        assert "only 0 of the 1 replicas" in str(error) and "ENQUEUE_REPLICAS" in str(error)
        [job_id] = error.job_ids
        assert engine.get(job_id).state == JobState.QUEUED  # written: the caller may wait again
        with pytest.raises(NotReplicated):
            engine.enqueue("tests.noop", job_id="default:one")
        assert engine.counts("default")[JobState.QUEUED] == 1
    finally:
        engine.client.close()


def test_an_enqueue_a_replica_acknowledges_returns(tmp_path, registry):
    primary = RedisServer(tmp_path / "primary", **{"repl-diskless-sync-delay": "0"}).start()
    replica = RedisServer(tmp_path / "replica", replicaof=f"127.0.0.1 {primary.port}").start()
    config = EngineConfig(prefix="ok", enqueue_replicas=1)
    engine = Engine(create_client(primary.url), config, registry)
    try:
        in_sync = replica.client()
        wait_for(lambda: in_sync.info("replication")["master_link_status"] == "up")
        job = engine.enqueue("tests.noop")
        jobs = engine.enqueue_many([JobSpec("tests.noop") for _ in range(3)])
        held = replica.client().keys(f"ok:*{job.id.rsplit(':', 1)[-1]}*")
        assert held, "the replica does not hold the job enqueue() returned"
        assert len(jobs) == 3
    finally:
        engine.client.close()
        replica.close()
        primary.close()


@pytest.mark.slow
def test_enqueue_replicas_is_refused_on_a_cluster(tmp_path, registry):
    cluster = RedisCluster(tmp_path).start()
    try:
        with pytest.raises(ConfigurationError, match="ENQUEUE_REPLICAS = 1 is not supported"):
            Engine(create_client(cluster.url), EngineConfig(enqueue_replicas=1), registry)
    finally:
        cluster.close()
