"""Claim, renew, progress, complete, fail, release and reap, including every refusal."""

import time

import pytest

from jobqueue.engine import JobState
from jobqueue.engine.errors import LeaseLost


def claim_one(engine, queue="default", worker="w1", lease=None):
    batch = engine.worker_protocol().claim(queue, worker, count=1, lease=lease)
    assert len(batch.jobs) == 1
    return batch.jobs[0]


def redis_ms(keyspace):
    seconds, micros = keyspace.client.time()
    return seconds * 1000 + micros // 1000


def test_claim_leases_on_the_redis_clock_with_a_growing_fence(engine, keyspace, protocol):
    engine.enqueue_many([])  # no-op
    for i in range(3):
        engine.enqueue("tests.add", [i, i])
    before = redis_ms(keyspace)
    claims = protocol.claim("default", "w1", count=3, lease=10).jobs
    after = redis_ms(keyspace)
    assert [c.job.args[0] for c in claims] == [0, 1, 2]
    tokens = [int(c.token) for c in claims]
    assert tokens == sorted(tokens) and len(set(tokens)) == 3
    for c in claims:
        assert before + 10_000 <= c.deadline_ms <= after + 10_000
        assert c.job.state is JobState.RUNNING and c.job.attempts == 1
        assert c.job.worker_ids == ("w1",)
    assert engine.counts("default")[JobState.RUNNING] == 3
    assert protocol.claim("default", "w2").jobs == []


def test_claim_prefetch_takes_at_most_count(engine, protocol):
    for _i in range(10):
        engine.enqueue("tests.noop")
    assert len(protocol.claim("default", "w", count=4).jobs) == 4
    assert len(protocol.claim("default", "w", count=100).jobs) == 6


def test_paused_queue_is_skipped_but_accepts_jobs(engine, protocol):
    engine.pause("default")
    job = engine.enqueue("tests.noop")
    assert protocol.claim("default", "w").jobs == []
    assert engine.queue_info("default").paused
    engine.resume("default")
    assert protocol.claim("default", "w").jobs[0].job_id == job.id


def test_renew_extends_and_refuses_stale_tokens(engine, protocol):
    engine.enqueue("tests.noop")
    c = claim_one(engine, lease=1)
    good = protocol.renew("default", [(c.local_id, c.token)], lease=60)
    assert good.renewed == {c.local_id: True}
    assert good.deadline_ms >= good.now_ms + 60_000
    assert engine.get(c.job_id).lease_deadline.timestamp() * 1000 == pytest.approx(
        good.deadline_ms, abs=1
    )
    stale = protocol.renew("default", [(c.local_id, str(int(c.token) + 1))], lease=60)
    assert stale.renewed == {c.local_id: False}


def test_progress_and_its_refusal(engine, protocol):
    engine.enqueue("tests.noop")
    c = claim_one(engine)
    protocol.progress(c.job_id, c.token, 3, 10, "three of ten")
    job = engine.get(c.job_id)
    assert job.progress == {"done": 3, "total": 10, "message": "three of ten"}
    with pytest.raises(LeaseLost):
        protocol.progress(c.job_id, "0", 4, 10)
    assert engine.get(c.job_id).progress["done"] == 3


def test_complete_stores_result_with_ttl(engine, keyspace, protocol):
    engine.enqueue("tests.add", [2, 3], result_ttl=120)
    c = claim_one(engine)
    protocol.complete(c.job_id, c.token, {"sum": 5})
    job = engine.get(c.job_id)
    assert job.state is JobState.SUCCEEDED and job.result == {"sum": 5}
    assert job.finished_at is not None
    ttl = keyspace.client.pttl(engine.keys.queue("default").job(c.local_id))
    assert 110_000 < ttl <= 120_000
    assert engine.counts("default")[JobState.SUCCEEDED] == 1
    assert engine.counts("default")[JobState.RUNNING] == 0


def test_complete_refused_for_stale_token_changes_nothing(engine, protocol):
    engine.enqueue("tests.noop")
    c = claim_one(engine)
    before = engine.get(c.job_id)
    with pytest.raises(LeaseLost):
        protocol.complete(c.job_id, str(int(c.token) - 1), "stale")
    assert engine.get(c.job_id) == before


def test_complete_many_mixed(engine, protocol):
    for _ in range(3):
        engine.enqueue("tests.noop")
    claims = protocol.claim("default", "w", count=3).jobs
    statuses = protocol.complete_many(
        "default",
        [(c.local_id, c.token if i != 1 else "0", b"1", None) for i, c in enumerate(claims)],
    )
    assert statuses == [True, False, True]
    assert engine.get(claims[1].job_id).state is JobState.RUNNING


def test_fail_retries_with_backoff_then_dies(engine, protocol):
    job = engine.enqueue("tests.noop", max_attempts=2)
    c = claim_one(engine)
    state = protocol.fail(
        c.job_id, c.token, "builtins.ValueError", "Traceback: boom", attempt=1, delay=0
    )
    assert state is JobState.SCHEDULED
    stored = engine.get(job.id)
    assert stored.errors[0].exception_class == "builtins.ValueError"
    assert stored.errors[0].traceback == "Traceback: boom"
    c2 = claim_one(engine)  # due at once (delay 0): promoted by the claim
    assert c2.job_id == job.id and c2.job.attempts == 2 and int(c2.token) > int(c.token)
    state = protocol.fail(c2.job_id, c2.token, "builtins.KeyError", "tb2", attempt=2, delay=0)
    assert state is JobState.FAILED
    stored = engine.get(job.id)
    assert [e.exception_class for e in stored.errors] == [
        "builtins.ValueError",
        "builtins.KeyError",
    ]
    assert stored.worker_ids == ("w1", "w1")
    assert engine.counts("default")[JobState.FAILED] == 1


def test_fail_backoff_delays_the_retry(engine, protocol):
    engine.enqueue("tests.noop", max_attempts=3)
    c = claim_one(engine)
    protocol.fail(c.job_id, c.token, "x.Error", "tb", attempt=1, delay=30)
    job = engine.get(c.job_id)
    assert job.state is JobState.SCHEDULED
    assert protocol.claim("default", "w").jobs == []
    delays = [protocol.retry_delay(n) for n in (1, 2, 3, 4)]
    assert 0.5 <= delays[0] <= 1.0 and 4 <= delays[3] <= 8


def test_fail_without_retry_and_refusal(engine, protocol):
    engine.enqueue("tests.noop", max_attempts=5)
    c = claim_one(engine)
    with pytest.raises(LeaseLost):
        protocol.fail(c.job_id, "0", "x.Error", "tb")
    assert engine.get(c.job_id).state is JobState.RUNNING
    assert (
        protocol.fail(c.job_id, c.token, "x.Error", "tb", retry=False, reason="bad data")
        is JobState.FAILED
    )
    assert engine.get(c.job_id).reason == "bad data"


def test_release_returns_the_job_uncounted_to_the_front(engine, protocol):
    first = engine.enqueue("tests.noop")
    c = claim_one(engine)
    engine.enqueue("tests.noop")
    protocol.release(c.job_id, c.token)
    job = engine.get(first.id)
    assert job.state is JobState.QUEUED and job.attempts == 0 and job.worker_ids == ()
    assert claim_one(engine).job_id == first.id  # back at the front
    with pytest.raises(LeaseLost):
        protocol.release(c.job_id, c.token)


def test_reap_requeues_expired_leases_and_fences_the_old_worker(engine, protocol):
    job = engine.enqueue("tests.noop")
    stale = claim_one(engine, worker="dead", lease=0.05)
    assert protocol.reap("default") == ([], [])  # not expired yet
    time.sleep(0.1)
    assert protocol.reap("default") == ([job.id], [])
    stored = engine.get(job.id)
    assert stored.state is JobState.QUEUED and stored.stalls == 1
    fresh = claim_one(engine, worker="alive")
    assert int(fresh.token) > int(stale.token)
    with pytest.raises(LeaseLost):
        protocol.complete(stale.job_id, stale.token, "from the dead")
    protocol.complete(fresh.job_id, fresh.token, "ok")
    assert engine.get(job.id).result == "ok"
    assert engine.get(job.id).worker_ids == ("dead", "alive")


def test_a_job_that_stalls_every_time_is_dead_lettered(engine, protocol):
    job = engine.enqueue("tests.noop", max_attempts=10)
    for _ in range(engine.config.max_stalls):
        claim_one(engine, lease=0.02)
        time.sleep(0.05)
        protocol.reap("default")
    stored = engine.get(job.id)
    assert stored.state is JobState.FAILED
    assert stored.stalls == engine.config.max_stalls
    assert "stalled" in stored.reason and "dead-lettered" in stored.reason
    assert engine.counts("default")[JobState.FAILED] == 1


def test_cancel_of_running_job_is_requested_seen_on_renew_and_ends_canceled(engine, protocol):
    engine.enqueue("tests.noop", max_attempts=3)
    c = claim_one(engine)
    assert engine.cancel(c.job_id) == "requested"
    assert engine.get(c.job_id).cancel_requested
    renewal = protocol.renew("default", [(c.local_id, c.token)])
    assert renewal.cancel_requested == {c.local_id}
    state = protocol.fail(c.job_id, c.token, "jobqueue.Canceled", "canceled by request")
    assert state is JobState.CANCELED
    assert engine.counts("default")[JobState.CANCELED] == 1


def test_abandon_counts_a_stall_at_once(engine, protocol):
    job = engine.enqueue("tests.noop", max_attempts=5)
    for expected in (JobState.QUEUED, JobState.QUEUED, JobState.FAILED):
        c = claim_one(engine)
        assert protocol.abandon(c.job_id, c.token, "its process was killed") is expected
    stored = engine.get(job.id)
    assert stored.stalls == 3 and "its process was killed" in stored.reason
    with pytest.raises(LeaseLost):
        protocol.abandon(c.job_id, c.token)


def test_finish_many_acks_successes_and_failures_in_one_round_trip(engine, protocol):
    from jobqueue.engine.protocol import Failure, Success

    jobs = [engine.enqueue("tests.noop", queue=q, max_attempts=2) for q in ("a", "b", "a", "b")]
    claims = [protocol.claim(q, "w").jobs[0] for q in ("a", "b", "a", "b")]
    finished = protocol.finish_many(
        [
            Success(claims[0].job_id, claims[0].token, b"1"),
            Success(claims[1].job_id, "0", b"2"),
            Success(claims[3].job_id, claims[3].token, b'"x"'),
        ],
        [Failure(claims[2].job_id, claims[2].token, "x.E", "tb", attempt=1, delay=60)],
    )
    assert finished.completed == {
        claims[0].job_id: True,
        claims[1].job_id: False,
        claims[3].job_id: True,
    }
    assert finished.failed == {claims[2].job_id: JobState.SCHEDULED}
    assert [engine.get(j.id).state for j in jobs] == [
        JobState.SUCCEEDED,
        JobState.RUNNING,
        JobState.SCHEDULED,
        JobState.SUCCEEDED,
    ]
