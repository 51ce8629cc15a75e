"""Admin operations: retry (one, all), cancel, delete, purge in batches, pause/resume."""

import threading
import time

import pytest

from jobqueue.engine import JobSpec, JobState
from jobqueue.engine.errors import InvalidJob, InvalidTransition, JobNotFound


def fail_one(engine, queue="default"):
    c = engine.worker_protocol().claim(queue, "w").jobs[0]
    engine.worker_protocol().fail(c.job_id, c.token, "builtins.RuntimeError", "tb", retry=False)
    return c.job_id


def test_retry_a_failed_job_gives_it_a_fresh_budget(engine, protocol):
    engine.enqueue("tests.noop", max_attempts=1)
    job_id = fail_one(engine)
    engine.retry(job_id)
    job = engine.get(job_id)
    assert job.state is JobState.QUEUED and job.finished_at is None and job.reason is None
    assert engine.counts("default")[JobState.FAILED] == 0
    c = protocol.claim("default", "w2").jobs[0]
    assert protocol.fail(c.job_id, c.token, "x.E", "tb", delay=0) is JobState.FAILED
    assert len(engine.get(job_id).errors) == 2
    job = engine.get(job_id)
    assert (job.attempts, job.attempts_before_retry) == (2, 1)  # 1 of 1 since the retry


def test_head_reads_a_job_without_its_result(engine, protocol):
    engine.enqueue("tests.noop")
    c = protocol.claim("default", "w").jobs[0]
    protocol.complete(c.job_id, c.token, "x" * 3_000_000)
    job, size = engine.head(c.job_id)
    assert job.state is JobState.SUCCEEDED and job.result_json is None
    assert size == len(engine.get(c.job_id).result_json) > 3_000_000
    queued = engine.enqueue("tests.noop")
    assert engine.head(queued.id)[1] == 0
    with pytest.raises(JobNotFound, match="default:nope"):
        engine.head("default:nope")
    with pytest.raises(InvalidJob):
        engine.head("no colon")


def test_retry_refusals(engine):
    job = engine.enqueue("tests.noop")
    with pytest.raises(InvalidTransition, match="is queued; only failed or canceled"):
        engine.retry(job.id)
    with pytest.raises(JobNotFound):
        engine.retry("default:doesnotexist")


def test_retry_after_expiry_ttl_is_removed(engine, keyspace):
    engine.enqueue("tests.noop")
    job_id = fail_one(engine)
    key = engine.keys.queue("default").job(job_id.split(":")[1])
    assert keyspace.client.pttl(key) > 0
    engine.retry(job_id)
    assert keyspace.client.pttl(key) == -1


def test_retry_all_in_batches(engine, monkeypatch, protocol):
    from jobqueue.engine import operations

    monkeypatch.setattr(operations, "BATCH", 7)
    engine.enqueue_many([JobSpec("tests.noop") for _ in range(30)])
    claims = protocol.claim("default", "w", count=30).jobs
    for c in claims:
        protocol.fail(c.job_id, c.token, "x.E", "tb", retry=False)
    assert engine.retry_all("default", "failed") == 30
    assert engine.counts("default")[JobState.QUEUED] == 30
    with pytest.raises(InvalidJob, match="Only failed or canceled"):
        engine.retry_all("default", "queued")
    with pytest.raises(InvalidJob, match="not a job state"):
        engine.retry_all("default", "bogus")


def test_cancel_queued_and_scheduled_at_once(engine):
    from datetime import UTC, datetime, timedelta

    queued = engine.enqueue("tests.noop")
    scheduled = engine.enqueue("tests.noop", run_after=datetime.now(UTC) + timedelta(hours=1))
    assert engine.cancel(queued.id) == "canceled"
    assert engine.cancel(scheduled.id, reason="not needed") == "canceled"
    assert engine.get(scheduled.id).reason == "not needed"
    counts = engine.counts("default")
    assert counts[JobState.CANCELED] == 2 and counts[JobState.QUEUED] == 0
    assert counts[JobState.SCHEDULED] == 0
    with pytest.raises(InvalidTransition, match="is canceled"):
        engine.cancel(queued.id)
    engine.retry(queued.id)
    assert engine.get(queued.id).state is JobState.QUEUED


def test_delete_any_state(engine, protocol):
    job = engine.enqueue("tests.noop")
    c = protocol.claim("default", "w").jobs[0]
    engine.delete(job.id)
    with pytest.raises(JobNotFound):
        engine.get(job.id)
    assert engine.counts("default")[JobState.RUNNING] == 0
    assert not protocol.complete_many("default", [(c.local_id, c.token, b"1", None)])[0]
    with pytest.raises(JobNotFound):
        engine.delete(job.id)


def test_purge_by_state_in_bounded_batches(engine, keyspace):
    engine.enqueue_many([JobSpec("tests.noop", unique_key=f"u{i}") for i in range(1234)])
    keep = engine.enqueue("tests.noop", queue="other")
    assert engine.operations.purge("default", "queued", batch=100) == 1234
    assert engine.counts("default")[JobState.QUEUED] == 0
    assert keyspace.client.hlen(engine.keys.queue("default").uniques) == 0
    job_keys = [k for k in keyspace.keys() if b"{default}:j:" in k]
    assert job_keys == []
    assert engine.get(keep.id).state is JobState.QUEUED
    with pytest.raises(InvalidJob, match="Running jobs cannot be purged"):
        engine.purge("default", "running")


def test_pause_resume_report_changes(engine):
    assert engine.pause("default") is True
    assert engine.pause("default") is False
    assert engine.resume("default") is True
    assert engine.resume("default") is False


def test_wait_returns_when_the_job_ends_without_polling(engine, protocol):
    job = engine.enqueue("tests.add", [1, 2])
    c = protocol.claim("default", "w").jobs[0]

    def finish():
        time.sleep(0.3)
        protocol.complete(c.job_id, c.token, 3)

    thread = threading.Thread(target=finish)
    started = time.monotonic()
    thread.start()
    done = engine.wait(job.id, timeout=10)
    elapsed = time.monotonic() - started
    thread.join()
    assert done.state is JobState.SUCCEEDED and done.result == 3
    assert 0.25 < elapsed < 5


def test_wait_on_finished_missing_and_timeout(engine):
    from jobqueue.engine.errors import WaitTimeout

    job = engine.enqueue("tests.noop")
    engine.cancel(job.id)
    assert engine.wait(job.id, timeout=1).state is JobState.CANCELED
    with pytest.raises(JobNotFound):
        engine.wait("default:nosuchjob", timeout=1)
    pending = engine.enqueue("tests.noop")
    with pytest.raises(WaitTimeout, match=r"did not finish within 0\.2 seconds"):
        engine.wait(pending.id, timeout=0.2)


def test_reads_paged_and_ordered(engine, protocol):
    jobs = engine.enqueue_many([JobSpec("tests.add", [i, 0]) for i in range(25)])
    page1 = engine.reads.jobs("default", "queued", offset=0, limit=10)
    page3 = engine.reads.jobs("default", "queued", offset=20, limit=10)
    assert [j.id for j in page1] == [j.id for j in jobs[:10]]
    assert [j.id for j in page3] == [j.id for j in jobs[20:]]
    for c in protocol.claim("default", "w", count=3).jobs:
        protocol.complete(c.job_id, c.token, None)
    finished = engine.reads.job_ids("default", "succeeded")
    assert len(finished) == 3
    info = engine.queue_info("default")
    assert info.epoch and info.created_at and not info.paused and info.data_lost_at is None


def test_apply_many_runs_a_batch_per_round_trip_and_reports_each_job(engine, protocol):
    from jobqueue.engine import operations

    queued = [engine.enqueue("tests.noop") for _ in range(3)]
    running = engine.enqueue("tests.noop", queue="other")
    protocol.claim("other", "w")
    missing = "default:" + "0" * 24
    ids = [j.id for j in queued] + [running.id, missing, "not an id", queued[0].id]
    results = engine.apply_many("cancel", ids)
    assert list(results) == ids[:-1]  # each id once, in order
    assert [results[j.id] for j in queued] == [None, None, None]
    assert results[running.id] is None  # a running job: cancel requested
    assert isinstance(results[missing], JobNotFound)
    assert isinstance(results["not an id"], InvalidJob)
    assert {engine.get(j.id).state for j in queued} == {JobState.CANCELED}
    retried = engine.apply_many("retry", [j.id for j in queued] + [running.id])
    assert isinstance(retried.pop(running.id), InvalidTransition)
    assert set(retried.values()) == {None}
    # More ids than one batch: several round trips, every job handled.
    many = [engine.enqueue("tests.noop").id for _ in range(operations.BATCH + 5)]
    assert set(engine.apply_many("delete", many).values()) == {None}
    assert engine.counts("default")[JobState.QUEUED] == 3


def test_every_script_keeps_the_wake_list_within_its_cap(registry, keyspace, redis_url):
    """The wake list's cap (``EngineConfig.wake_cap``) holds whatever wakes the workers."""
    import redis

    from jobqueue.engine import Engine, EngineConfig

    client = redis.Redis.from_url(redis_url)
    engine = Engine(client, EngineConfig(prefix=keyspace.prefix, wake_cap=3), registry)
    protocol = engine.worker_protocol()
    wake = engine.keys.queue("default").wake

    def woken() -> int:
        return int(client.llen(wake))

    engine.enqueue_many([JobSpec("tests.noop") for _ in range(10)])  # enqueue.lua
    assert woken() == 3
    for _ in range(5):
        engine.enqueue("tests.noop")  # enqueue_one.lua
    assert woken() == 3
    client.delete(wake)
    claimed = protocol.claim("default", "w", count=10).jobs
    for job in claimed[:5]:
        protocol.fail(job.job_id, job.token, "x.E", "tb", retry=False)
    for job in claimed[5:]:
        protocol.release(job.job_id, job.token)  # release.lua
    assert woken() == 3
    client.delete(wake)
    assert engine.retry_all("default") == 5  # retry_all.lua
    assert woken() == 3
    client.delete(wake)
    claimed = protocol.claim("default", "w", count=10, lease=0.001).jobs
    time.sleep(0.01)
    assert len(protocol.reap("default")[0]) == 10  # reap.lua (stall in _lib.lua)
    assert woken() == 3
    client.delete(wake)
    claimed = protocol.claim("default", "w", count=5).jobs
    for job in claimed:
        protocol.abandon(job.job_id, job.token)  # abandon.lua
    assert woken() == 3
    client.delete(wake)
    engine.purge("default", "queued")
    engine.enqueue("tests.noop")
    [failed] = protocol.claim("default", "w").jobs
    protocol.fail(failed.job_id, failed.token, "x.E", "tb", retry=False)
    for _ in range(4):
        engine.retry(failed.job_id)  # retry.lua
        [again] = protocol.claim("default", "w", count=1).jobs
        protocol.fail(again.job_id, again.token, "x.E", "tb", retry=False)
    assert woken() == 3
    client.delete(wake)
    for _ in range(5):
        engine.pause("default")
        engine.resume("default")  # pause.lua
    assert woken() == 3
    client.close()
