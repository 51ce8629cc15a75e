"""A lost reply is not a lost attempt: a call Redis ran whose answer never reached the worker
(the connection dropped on the way back, through ``tests/fault_proxy.py``) is sent again, and
Redis recognises it: a claim returns the jobs it leased the first time (and leases no more), a
success or a failure already recorded is answered as recorded."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
import redis

from jobqueue.engine import Engine, EngineConfig, JobState
from jobqueue.engine.errors import ConnectionFailed
from tests.fault_proxy import FaultProxy


@pytest.fixture
def proxied(keyspace, registry):
    """An engine that talks to the test's Redis through a fault proxy, and the proxy; the
    worker's connection is open before the test makes a fault (its handshake is not the
    reply dropped)."""
    url = urlparse(keyspace.url)
    with FaultProxy((url.hostname or "127.0.0.1", url.port or 6379)) as proxy:
        client = redis.Redis.from_url(proxy.url)
        engine = Engine(client, EngineConfig(prefix=keyspace.prefix), registry)
        engine.worker_protocol().claim("warm-up", "w")  # opens the scripts' connection
        yield engine, proxy
        client.close()


def leased(engine: Engine, queue: str = "default") -> list[bytes]:
    return engine.client.zrange(engine.keys.queue(queue).leases, 0, -1)


def test_a_claim_sent_again_gets_the_jobs_it_leased_and_no_more(proxied):
    engine, proxy = proxied
    first, second = engine.enqueue("tests.noop"), engine.enqueue("tests.noop")
    proxy.drop_replies(1)  # the claim runs; its reply is lost; the call is sent again
    batch = engine.worker_protocol().claim("default", "w", count=1)
    assert proxy.dropped == 1
    assert [c.job_id for c in batch.jobs] == [first.id]
    assert leased(engine) == [first.id.partition(":")[2].encode()]  # one job, not two
    assert engine.get(first.id).attempts == 1 and engine.get(first.id).token == batch.jobs[0].token
    assert engine.get(second.id).state is JobState.QUEUED


def test_a_claim_whose_reply_never_came_is_asked_again_by_the_same_call(proxied):
    """Both sends lost: the worker keeps the call and sends it again later (``Exchange``):
    it learns of the job leased the first time, which never counts as a stall."""
    engine, proxy = proxied
    job = engine.enqueue("tests.noop")
    protocol = engine.worker_protocol()
    call = protocol.claim_call("default", "w", 1)
    proxy.drop_replies(2)
    with pytest.raises(ConnectionFailed):
        protocol.run_batch([call])
    assert engine.get(job.id).state is JobState.RUNNING  # leased, the worker does not know
    [reply] = protocol.run_batch([call])
    [claimed] = protocol.read_claim("default", reply).jobs
    assert claimed.job_id == job.id and claimed.token == engine.get(job.id).token
    assert protocol.claim("default", "w", count=1).jobs == []  # a new call: nothing left
    protocol.complete(claimed.job_id, claimed.token, 1)
    done = engine.get(job.id)
    assert (done.state, done.attempts, done.stalls) == (JobState.SUCCEEDED, 1, 0)


def test_a_success_or_failure_sent_again_is_answered_as_recorded(proxied):
    engine, proxy = proxied
    ok, bad = engine.enqueue("tests.noop"), engine.enqueue("tests.noop", max_attempts=1)
    protocol = engine.worker_protocol()
    first, second = protocol.claim("default", "w", count=2).jobs
    proxy.drop_replies(1)
    protocol.complete(first.job_id, first.token, 42)  # no LeaseLost: it was recorded
    assert engine.get(ok.id).result == 42
    proxy.drop_replies(1)
    state = protocol.fail(second.job_id, second.token, "builtins.ValueError", "tb", attempt=1)
    assert state is JobState.FAILED and proxy.dropped == 2
    assert len(engine.get(bad.id).errors) == 1  # recorded once
    # Another token is still refused.
    assert protocol.complete_many("default", [(first.local_id, "999", b"1", None)]) == [False]


def test_a_worker_sends_a_claim_whose_reply_never_came_again_and_runs_its_job(proxied):
    """The worker's round trip (``Exchange``) loses both sends of its claim: it keeps the
    call, sends it again on its next turn, and hands the job leased the first time to a child."""
    from tests.test_worker_parts import FakeChildren, exchange_for

    engine, proxy = proxied
    job = engine.enqueue("tests.noop")
    children = FakeChildren(2)
    try:
        exchange = exchange_for(engine.worker_protocol(), children.pool)
        proxy.drop_replies(2)
        exchange.run(stopping=False)  # Redis ran the claim; the worker heard nothing
        assert engine.get(job.id).state is JobState.RUNNING and exchange.unanswered
        exchange.run(stopping=False)
        assert children.received(0) + children.received(1) == [job.id]
        assert not exchange.unanswered and exchange.stats.claimed == 1
    finally:
        children.close()
