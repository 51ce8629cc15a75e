"""A Redis Cluster primary killed under load: three primaries, each with a replica; the primary
of the ``default`` queue's slot is killed (SIGKILL) while a producer enqueues and a worker
drains. The replica takes over; producers and workers carry on by themselves.

Replication is asynchronous and a cluster has no ``ENQUEUE_REPLICAS``: an enqueue the dead
primary acknowledged and had not passed on is lost. The test counts such jobs and prints the
count (docs/guarantees.md reports it); every job that is there ends succeeded.
"""

from __future__ import annotations

import pytest

from jobqueue.conf import get_engine
from jobqueue.engine import Engine, EngineConfig, JobState
from jobqueue.engine.transport.connection import create_client
from tests import sample_tasks  # noqa: F401 - registers the task the producer enqueues
from tests.conftest import wait_for
from tests.load import Producer
from tests.redis_topologies import RedisCluster

pytestmark = [pytest.mark.slow, pytest.mark.topology]


def test_producers_and_workers_carry_on_when_a_primary_dies(tmp_path, start_worker):
    cluster = RedisCluster(tmp_path, replicas=1).start()
    engine = Engine(create_client(cluster.url), EngineConfig(prefix="cf"), get_engine().registry)
    slot = engine.client.keyslot(engine.keys.queue("default").ready)
    producer = Producer(engine)
    worker = start_worker(
        "--no-mirror",
        "-c",
        "2",
        JOBQUEUE_REDIS_URL=cluster.url,
        JOBQUEUE_PREFIX="cf",
        JOBQUEUE_LEASE_SECONDS="2",
    )

    try:
        producer.start()
        wait_for(lambda: engine.counts("default")[JobState.SUCCEEDED] > 0, timeout=30)
        producer.wait_for_more(context=worker.output)
        before = len(producer.acknowledged)
        took = cluster.kill_primary(slot)
        producer.wait_for_more(context=worker.output)
        producer.done.set()
        producer.join(timeout=10)

        acknowledged = producer.acknowledged
        there = {job.id for job in engine.find(acknowledged)}
        lost = [job_id for job_id in acknowledged if job_id not in there]
        assert all(job_id in there for job_id in acknowledged[before + 5 :]), "lost after it"

        def all_succeeded() -> bool:
            jobs = engine.find(acknowledged)
            return all(job.state == JobState.SUCCEEDED for job in jobs)

        try:
            wait_for(all_succeeded, timeout=40)
        except AssertionError:
            counts = engine.counts("default")
            raise AssertionError(f"not every job ran: {counts}\n{worker.output()}") from None
        assert worker.process.poll() is None, worker.output()
        print(
            f"{len(acknowledged)} jobs, the replica took over after {took:.1f} s, "
            f"{len(lost)} acknowledged jobs lost, longest pause in enqueues "
            f"{producer.longest_gap:.1f} s, refused {producer.refused}"
        )
    finally:
        producer.done.set()
        engine.client.close()
        cluster.close()


def test_a_cluster_that_is_gone_is_connection_failed(tmp_path, registry):
    """Every node down: redis-py's cluster client raises errors that are not RedisErrors
    (no reachable node); the engine's callers get ConnectionFailed, as on one Redis."""
    from jobqueue.exceptions import ConnectionFailed

    cluster = RedisCluster(tmp_path).start()
    engine = Engine(create_client(cluster.url), EngineConfig(prefix="gone"), registry)
    try:
        engine.enqueue("tests.noop")
        for node in cluster.nodes:
            node.kill()
        with pytest.raises(ConnectionFailed, match="could not be reached"):
            engine.enqueue("tests.noop")
        with pytest.raises(ConnectionFailed):
            engine.counts("default")
    finally:
        engine.client.close()
        cluster.close()
