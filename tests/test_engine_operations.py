"""Admin operations: retry (one, all), cancel, delete, purge in batches, pause/resume."""

import threading
import time

import pytest

from jobqueue.engine import InvalidJob, InvalidTransition, JobNotFound, JobSpec, JobState


def fail_one(engine, queue="default"):
    c = engine.claim(queue, "w").jobs[0]
    engine.fail(c.job_id, c.token, "builtins.RuntimeError", "tb", retry=False)
    return c.job_id


def test_retry_a_failed_job_gives_it_a_fresh_budget(engine):
    engine.enqueue("tests.noop", max_attempts=1)
    job_id = fail_one(engine)
    engine.retry(job_id)
    job = engine.get(job_id)
    assert job.state is JobState.QUEUED and job.finished_at is None and job.reason is None
    assert engine.counts("default")[JobState.FAILED] == 0
    c = engine.claim("default", "w2").jobs[0]
    assert engine.fail(c.job_id, c.token, "x.E", "tb", delay=0) is JobState.FAILED
    assert len(engine.get(job_id).errors) == 2


def test_retry_refusals(engine):
    job = engine.enqueue("tests.noop")
    with pytest.raises(InvalidTransition, match="is queued; only failed or canceled"):
        engine.retry(job.id)
    with pytest.raises(JobNotFound):
        engine.retry("default:doesnotexist")


def test_retry_after_expiry_ttl_is_removed(engine, keyspace):
    engine.enqueue("tests.noop")
    job_id = fail_one(engine)
    key = engine.qkeys("default").job(job_id.split(":")[1])
    assert keyspace.client.pttl(key) > 0
    engine.retry(job_id)
    assert keyspace.client.pttl(key) == -1


def test_retry_all_in_batches(engine, monkeypatch):
    from jobqueue.engine import operations

    monkeypatch.setattr(operations, "BATCH", 7)
    engine.enqueue_many([JobSpec("tests.noop") for _ in range(30)])
    claims = engine.claim("default", "w", count=30).jobs
    for c in claims:
        engine.fail(c.job_id, c.token, "x.E", "tb", retry=False)
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


def test_delete_any_state(engine):
    job = engine.enqueue("tests.noop")
    c = engine.claim("default", "w").jobs[0]
    engine.delete(job.id)
    with pytest.raises(JobNotFound):
        engine.get(job.id)
    assert engine.counts("default")[JobState.RUNNING] == 0
    assert not engine.complete_many("default", [(c.local_id, c.token, b"1", None)])[0]
    with pytest.raises(JobNotFound):
        engine.delete(job.id)


def test_purge_by_state_in_bounded_batches(engine, keyspace):
    engine.enqueue_many([JobSpec("tests.noop", unique_key=f"u{i}") for i in range(1234)])
    keep = engine.enqueue("tests.noop", queue="other")
    assert engine.purge("default", "queued", batch=100) == 1234
    assert engine.counts("default")[JobState.QUEUED] == 0
    assert keyspace.client.hlen(engine.qkeys("default").uniques) == 0
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


def test_wait_returns_when_the_job_ends_without_polling(engine):
    job = engine.enqueue("tests.add", [1, 2])
    c = engine.claim("default", "w").jobs[0]

    def finish():
        time.sleep(0.3)
        engine.complete(c.job_id, c.token, 3)

    thread = threading.Thread(target=finish)
    started = time.monotonic()
    thread.start()
    done = engine.wait(job.id, timeout=10)
    elapsed = time.monotonic() - started
    thread.join()
    assert done.state is JobState.SUCCEEDED and done.result == 3
    assert 0.25 < elapsed < 5


def test_wait_on_finished_missing_and_timeout(engine):
    from jobqueue.engine import WaitTimeout

    job = engine.enqueue("tests.noop")
    engine.cancel(job.id)
    assert engine.wait(job.id, timeout=1).state is JobState.CANCELED
    with pytest.raises(JobNotFound):
        engine.wait("default:nosuchjob", timeout=1)
    pending = engine.enqueue("tests.noop")
    with pytest.raises(WaitTimeout, match=r"did not finish within 0\.2 seconds"):
        engine.wait(pending.id, timeout=0.2)


def test_reads_paged_and_ordered(engine):
    jobs = engine.enqueue_many([JobSpec("tests.add", [i, 0]) for i in range(25)])
    page1 = engine.jobs("default", "queued", offset=0, limit=10)
    page3 = engine.jobs("default", "queued", offset=20, limit=10)
    assert [j.id for j in page1] == [j.id for j in jobs[:10]]
    assert [j.id for j in page3] == [j.id for j in jobs[20:]]
    for c in engine.claim("default", "w", count=3).jobs:
        engine.complete(c.job_id, c.token, None)
    finished = engine.job_ids("default", "succeeded")
    assert len(finished) == 3
    info = engine.queue_info("default")
    assert info.epoch and info.created_at and not info.paused and info.data_lost_at is None


def test_apply_many_runs_a_batch_per_round_trip_and_reports_each_job(engine):
    from jobqueue.engine import operations

    queued = [engine.enqueue("tests.noop") for _ in range(3)]
    running = engine.enqueue("tests.noop", queue="other")
    engine.claim("other", "w")
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
