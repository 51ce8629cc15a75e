"""Handing a new job straight to a worker waiting idle (``enqueue_one.lua`` + ``idle.lua``)."""

import time

from jobqueue.engine import JobState


def register(engine, worker, waiting=True, ttl=3.0, queue="default"):
    handoff = engine.worker_protocol().handoff
    return handoff.read_inbox(
        queue, engine.runner.run(*handoff.idle_call(queue, worker, waiting, ttl))
    )


LEASE_FIELDS = {"state", "v", "att", "token", "worker", "workers", "last", "lease", "started"}


def test_a_job_handed_over_is_leased_exactly_as_a_claim_leases_it(engine, protocol):
    """claim.lua and enqueue_one.lua grant a lease through one helper (grant_lease)."""
    claimed_job = engine.enqueue("tests.noop")
    [claimed] = protocol.claim("default", "w1").jobs
    register(engine, "w1#0")
    handed_job = engine.enqueue("tests.noop")
    qk = engine.keys.queue("default")

    def lease(job):
        fields = engine.client.hgetall(qk.job(job.local_id))
        return {k.decode(): v.decode() for k, v in fields.items() if k.decode() in LEASE_FIELDS}

    by_claim, by_handoff = lease(claimed_job), lease(handed_job)
    assert set(by_claim) == set(by_handoff) == LEASE_FIELDS
    for name in ("state", "v", "att", "worker", "workers"):
        assert by_claim[name] == by_handoff[name]
    assert int(by_handoff["token"]) == int(by_claim["token"]) + 1  # the queue's one counter
    for job, fields in ((claimed_job, by_claim), (handed_job, by_handoff)):
        assert int(fields["lease"]) - int(fields["last"]) == 30_000
        assert engine.client.zscore(qk.leases, job.local_id) == int(fields["lease"])
    assert claimed.token == by_claim["token"]


def test_a_job_enqueued_while_a_worker_waits_is_leased_to_it(engine, protocol):
    assert register(engine, "w1")[1] == []
    job = engine.enqueue("tests.add", [2, 3])
    assert job.state is JobState.QUEUED and job.version == 1  # the snapshot the call returns
    live = engine.get(job.id)
    assert live.state is JobState.RUNNING and live.version == 2
    assert list(live.worker_ids) == ["w1"] and live.attempts == 1
    assert live.started_at == live.enqueued_at  # leased in the enqueue's own script
    qk = engine.keys.queue("default")
    assert engine.client.zcard(qk.ready) == 0 and engine.client.zcard(qk.idle) == 0
    assert engine.client.llen(qk.wake) == 0  # nobody else is woken for it
    # The worker finds the claim in its inbox: it can complete the job with that token.
    entries = engine.client.lrange(qk.inbox("w1"), 0, -1)
    claimed, started_ms = protocol.handoff.read_entry("default", entries[0])
    assert claimed.job_id == job.id and claimed.fields["args"] == "[2,3]"
    assert started_ms == int(engine.client.hget(qk.job(claimed.local_id), "started"))
    assert claimed.deadline_ms == int(engine.client.zscore(qk.leases, claimed.local_id))
    protocol.complete(claimed.job_id, claimed.token, 5)
    assert engine.get(job.id).result == 5
    events = engine.client.xrange(qk.events)
    assert [(e[1][b"s"], e[1][b"v"]) for e in events] == [
        (b"queued", b"1"),
        (b"running", b"2"),
        (b"succeeded", b"3"),
    ]


def test_a_renewal_never_brings_back_a_registration_an_enqueue_took(engine, protocol):
    def call(mode_waiting, renew=False):
        return engine.runner.run(
            *protocol.handoff.idle_call("default", "w#0", mode_waiting, 3.0, renew=renew)
        )

    idle = engine.keys.queue("default").idle
    assert not protocol.handoff.was_registered(call(True))  # a new registration
    assert protocol.handoff.was_registered(call(True, renew=True))  # renewed
    job = engine.enqueue("tests.noop")  # takes it
    reply = call(True, renew=True)
    assert not protocol.handoff.was_registered(reply) and engine.client.zcard(idle) == 0
    assert [c.job_id for c in protocol.handoff.read_inbox("default", reply)[1]] == [
        job.id
    ]  # handed over
    reply = call(False)
    assert (
        not protocol.handoff.was_registered(reply)
        and protocol.handoff.read_inbox("default", reply)[1] == []
    )


def test_a_childs_registration_leases_to_its_worker_through_the_childs_inbox(engine):
    register(engine, "host.42#1")  # child 1 of worker "host.42"
    job = engine.enqueue("tests.noop")
    live = engine.get(job.id)
    assert live.state is JobState.RUNNING and list(live.worker_ids) == ["host.42"]
    qk = engine.keys.queue("default")
    assert engine.client.llen(qk.inbox("host.42#1")) == 1
    assert engine.client.exists(qk.inbox("host.42")) == 0
    register(engine, "a#b")  # no child index: the member is the worker's name
    assert list(engine.get(engine.enqueue("tests.noop").id).worker_ids) == ["a#b"]


def test_one_job_per_registration_then_the_ready_set(engine):
    register(engine, "w1")
    first, second = engine.enqueue("tests.noop"), engine.enqueue("tests.noop")
    assert engine.get(first.id).state is JobState.RUNNING
    assert engine.get(second.id).state is JobState.QUEUED


def test_a_new_job_never_jumps_the_jobs_already_waiting(engine, protocol):
    # A child may register after jobs were queued and before its parent claimed them: the
    # next enqueue must not hand it a newer job ahead of those (order and priority hold).
    older = engine.enqueue("tests.noop")
    register(engine, "w1")
    newer = engine.enqueue("tests.noop")
    assert engine.get(newer.id).state is JobState.QUEUED
    assert engine.client.llen(engine.keys.queue("default").inbox("w1")) == 0
    assert engine.client.zcard(engine.keys.queue("default").idle) == 1  # still registered
    claimed = protocol.claim("default", "w2", count=2).jobs
    assert [c.job_id for c in claimed] == [older.id, newer.id]
    register(engine, "w1")  # the ready set is empty again: the next job is handed over
    assert engine.get(engine.enqueue("tests.noop").id).state is JobState.RUNNING


def test_unregistering_hands_over_what_the_inbox_holds(engine):
    register(engine, "w1")
    job = engine.enqueue("tests.noop")
    now_ms, claims = register(engine, "w1", waiting=False)
    assert [c.job_id for c in claims] == [job.id] and now_ms > 0
    assert engine.client.exists(engine.keys.queue("default").inbox("w1")) == 0
    assert engine.enqueue("tests.noop").state is JobState.QUEUED
    assert engine.get(engine.enqueue("tests.noop").id).state is JobState.QUEUED


def test_a_lapsed_registration_or_a_paused_queue_gets_no_job(engine, protocol):
    register(engine, "w1", ttl=0.05)
    time.sleep(0.1)
    job = engine.enqueue("tests.noop")
    assert engine.get(job.id).state is JobState.QUEUED
    register(engine, "w2")
    engine.pause("default")
    assert engine.get(engine.enqueue("tests.noop").id).state is JobState.QUEUED
    engine.resume("default")
    assert len(protocol.claim("default", "w3", count=5).jobs) == 2  # the two that waited
    assert engine.get(engine.enqueue("tests.noop").id).state is JobState.RUNNING


def test_a_job_leased_to_a_worker_that_died_idle_is_reaped(engine_config, registry):
    import dataclasses

    import redis

    from jobqueue.engine import Engine
    from tests.conftest import REDIS_URL

    client = redis.Redis.from_url(REDIS_URL)
    try:
        engine = Engine(client, dataclasses.replace(engine_config, lease_seconds=0.2), registry)
        register(engine, "gone")  # then the worker died: nobody reads its inbox
        job = engine.enqueue("tests.noop")
        assert engine.get(job.id).state is JobState.RUNNING
        time.sleep(0.3)
        engine.worker_protocol().reap("default")
        again = engine.get(job.id)
        assert again.state is JobState.QUEUED and again.stalls == 1
        assert engine.worker_protocol().claim("default", "w2").jobs[0].job_id == job.id
        engine.client.delete(engine.keys.queue("default").inbox("gone"))
    finally:
        client.close()


def test_planted_data_at_the_inbox_key_makes_the_job_wait_in_the_ready_set(engine):
    register(engine, "w1")
    engine.client.set(engine.keys.queue("default").inbox("w1"), "not a list")
    job = engine.enqueue("tests.noop")
    assert engine.get(job.id).state is JobState.QUEUED
    engine.client.delete(engine.keys.queue("default").inbox("w1"))


def test_an_unreadable_inbox_entry_is_reported_not_crashed_on(engine, protocol):
    import pytest

    from jobqueue.engine.errors import CorruptJob

    with pytest.raises(CorruptJob, match="not a claim"):
        protocol.handoff.read_entry("default", b"not json")
    with pytest.raises(CorruptJob, match="not a claim"):
        protocol.handoff.read_entry("default", b'["id", "1"]')


def test_planted_queue_keys_stop_enqueue_one_before_it_writes(engine):
    import pytest

    from jobqueue.engine import JobqueueError

    qk = engine.keys.queue("default")
    prefix = engine.config.prefix  # only this test's keys: other clients may share the server
    engine.runner.epoch("default")
    for key, idle_worker in (
        (qk.idle, False),
        (qk.events, False),
        (qk.ready, False),
        (qk.wake, False),
        (qk.leases, True),
        (qk.meta, False),
    ):
        if idle_worker:
            register(engine, "w1")
        saved = engine.client.dump(key)
        engine.client.delete(key)
        engine.client.set(key, "planted")
        before = {k: engine.client.dump(k) for k in engine.client.keys(f"{prefix}:*")}
        with pytest.raises(JobqueueError, match=f"{key} is a string"):
            engine.enqueue("tests.noop")
        after = {k: engine.client.dump(k) for k in engine.client.keys(f"{prefix}:*")}
        assert after == before  # nothing written (nor taken back half-way), no job key
        assert engine.client.get(key) == b"planted"
        engine.client.delete(key)
        if saved is not None:
            engine.client.restore(key, 0, saved)
    job = engine.enqueue("tests.noop")  # the worker registered last takes it
    assert engine.get(job.id).state is JobState.RUNNING
