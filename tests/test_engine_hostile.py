"""Hostile or malformed data planted in Redis never executes anything and fails only that job."""

import pickle
import sys

import pytest
import redis

from jobqueue.engine import Engine, JobqueueError, JobState
from jobqueue.engine.errors import CorruptJob, UnknownTask
from tests.conftest import REDIS_URL


def plant(engine, keyspace, local_id, fields, queue="default", state="queued"):
    """Write a job hash by hand and put it in the ready set, as an attacker with Redis could."""
    qk = engine.keys.queue(queue)
    engine.runner.epoch(queue)
    keyspace.client.hset(qk.job(local_id), mapping={"state": state, "v": 1, **fields})
    keyspace.client.zadd(qk.ready, {local_id: 0})
    return f"{queue}:{local_id}"


def test_pickle_payload_is_not_unpickled(engine, keyspace, protocol):
    class Boom:
        def __reduce__(self):
            return (sys.exit, ("unpickled!",))

    job_id = plant(
        engine, keyspace, "pickled", {"task": "tests.noop", "args": pickle.dumps(Boom())}
    )
    good = engine.enqueue("tests.noop")
    claims = protocol.claim("default", "w", count=10).jobs
    by_id = {c.job_id: c for c in claims}
    bad = by_id[job_id]
    assert bad.job is None and isinstance(bad.error, CorruptJob)
    assert by_id[good.id].job is not None  # the rest of the batch is unaffected
    state = protocol.fail(
        bad.job_id, bad.token, "jobqueue.exceptions.CorruptJob", str(bad.error), retry=False
    )
    assert state is JobState.FAILED
    with pytest.raises(CorruptJob):
        engine.get(job_id)


def test_unregistered_task_names_are_never_imported(engine, keyspace, protocol):
    job_id = plant(engine, keyspace, "evil", {"task": "jq_hostile_module_xyz.run", "args": "[]"})
    plant(engine, keyspace, "evil2", {"task": "os.system", "args": '["touch /tmp/pwned"]'})
    claims = protocol.claim("default", "w", count=10).jobs
    for c in claims:
        with pytest.raises(UnknownTask):
            engine.registry.get(c.job.task)
        protocol.fail(
            c.job_id, c.token, "jobqueue.exceptions.UnknownTask", "not registered", retry=False
        )
    assert "jq_hostile_module_xyz" not in sys.modules
    assert engine.get(job_id).state is JobState.FAILED


def test_failure_record_naming_os_system_stays_text(engine, keyspace):
    qk = engine.keys.queue("default")
    engine.runner.epoch("default")
    keyspace.client.hset(
        qk.job("rec"),
        mapping={
            "state": "failed",
            "v": 3,
            "task": "tests.noop",
            "errors": '[{"c":"os.system","tb":"rm -rf /","n":1,"at":1}]',
        },
    )
    job = engine.get("default:rec")
    assert job.errors[0].exception_class == "os.system"
    assert job.errors[0].traceback == "rm -rf /"


@pytest.mark.parametrize(
    "fields",
    [
        {"task": "tests.noop", "args": "{not json"},
        {"task": "tests.noop", "args": '{"a": 1}'},  # args must be an array
        {"task": "tests.noop", "kwargs": "[1, 2]"},  # kwargs must be an object
        {"args": "[]"},  # no task at all
        {"task": "tests.noop", "timeout": "soon"},
    ],
)
def test_malformed_fields_fail_only_that_job(engine, keyspace, fields, protocol):
    bad_id = plant(engine, keyspace, "bad", fields)
    good = engine.enqueue("tests.noop")
    claims = {c.job_id: c for c in protocol.claim("default", "w", count=10).jobs}
    assert isinstance(claims[bad_id].error, CorruptJob)
    assert claims[good.id].error is None


def test_non_numeric_counters_do_not_wedge_claim(engine, keyspace, protocol):
    bad_id = plant(engine, keyspace, "badatt", {"task": "tests.noop", "att": "many", "v": "x"})
    good = engine.enqueue("tests.noop")
    claims = protocol.claim("default", "w", count=10).jobs
    assert [c.job_id for c in claims] == [good.id]
    raw = keyspace.client.hgetall(engine.keys.queue("default").job("badatt"))
    assert raw[b"state"] == b"failed" and b"malformed" in raw[b"reason"]
    with pytest.raises(CorruptJob, match="badatt"):
        engine.get(bad_id)
    assert engine.counts("default")[JobState.FAILED] == 1


def test_wrongtype_job_key_is_reported_failed_and_skipped(engine, keyspace, protocol):
    qk = engine.keys.queue("default")
    engine.runner.epoch("default")
    keyspace.client.set(qk.job("str"), "I am a string")
    keyspace.client.zadd(qk.ready, {"str": 0})
    good = engine.enqueue("tests.noop")
    assert [c.job_id for c in protocol.claim("default", "w", count=10).jobs] == [good.id]
    assert engine.counts("default")[JobState.FAILED] == 1
    with pytest.raises(CorruptJob, match="not a hash"):
        engine.get("default:str")
    assert keyspace.client.get(qk.job("str")) == b"I am a string"


def test_a_read_redis_refuses_for_its_own_reason_is_raised_not_called_corrupt(
    engine, keyspace, engine_config, registry
):
    """Only WRONGTYPE makes a job malformed. A read Redis refuses for a reason of its own (a
    cluster's slot down, a replica loading; here an ACL) is raised as a refusal, so that the
    mirror tries again instead of taking a good job for a corrupt one."""
    job = engine.enqueue("tests.noop")
    user = f"jq-noread-{keyspace.prefix}"
    keyspace.client.acl_setuser(
        user, enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-hgetall", "-hmget"]
    )
    client = redis.Redis.from_url(REDIS_URL, username=user, password="pw")
    try:
        limited = Engine(client, engine_config, registry)
        for read in (
            lambda: limited.get(job.id),
            lambda: limited.find([job.id]),
            lambda: limited.head(job.id),
        ):
            with pytest.raises(JobqueueError, match="no permissions") as refused:
                read()
            assert not isinstance(refused.value, CorruptJob)
        assert engine.get(job.id).state is JobState.QUEUED  # readable by a user who may
    finally:
        client.close()
        keyspace.client.acl_deluser(user)


def test_wrongtype_queue_key_refuses_before_writing(engine, keyspace, protocol):
    job = engine.enqueue("tests.noop")
    qk = engine.keys.queue("default")
    keyspace.client.delete(qk.events)
    keyspace.client.set(qk.events, "not a stream")
    with pytest.raises(JobqueueError, match="is a string, not a stream"):
        protocol.claim("default", "w")
    assert engine.get(job.id).state is JobState.QUEUED  # nothing was popped or lost
    assert engine.counts("default")[JobState.QUEUED] == 1


def test_fifty_megabyte_payload_is_handled(engine, keyspace, protocol):
    big = '["' + "a" * (50 * 1024 * 1024) + '"]'
    job_id = plant(engine, keyspace, "huge", {"task": "tests.noop", "args": big})
    c = protocol.claim("default", "w").jobs[0]
    assert c.job_id == job_id and len(c.job.args[0]) == 50 * 1024 * 1024
    protocol.complete(c.job_id, c.token, None)
    assert engine.get(job_id).state is JobState.SUCCEEDED


@pytest.fixture
def small_engine(keyspace, registry):
    """An engine keeping tracebacks within 10,000 bytes and log lines within 500."""
    import redis

    from jobqueue.engine import Engine, EngineConfig

    config = EngineConfig(prefix=keyspace.prefix, traceback_bytes=10_000, log_line_bytes=500)
    client = redis.Redis.from_url(keyspace.url)
    yield Engine(client, config, registry)
    client.close()


def test_a_huge_traceback_keeps_its_beginning_and_end_within_the_byte_limit(small_engine):
    job = small_engine.enqueue("tests.noop")
    protocol = small_engine.worker_protocol()
    c = protocol.claim("default", "w").jobs[0]
    traceback = "Traceback (most recent call last):\n" + "é" * 3_000_000 + "\nValueError: end"
    protocol.fail(c.job_id, c.token, "builtins.ValueError", traceback, retry=False)
    [error] = small_engine.get(job.id).errors
    assert len(error.traceback.encode()) <= 10_000
    assert error.traceback.startswith("Traceback (most recent call last):\n")
    assert error.traceback.endswith("\nValueError: end")
    assert "bytes cut ...]" in error.traceback
    short = small_engine.enqueue("tests.noop")
    c = protocol.claim("default", "w").jobs[0]
    protocol.fail(c.job_id, c.token, "builtins.ValueError", "é" * 2_500, retry=False)
    assert small_engine.get(short.id).errors[0].traceback == "é" * 2_500  # 5,000 bytes: kept


def test_a_huge_log_line_keeps_its_beginning_within_the_byte_limit(small_engine):
    job = small_engine.enqueue("tests.noop")
    small_engine.logs.append(
        job.id, [{"msg": "start " + "x" * 10_000_000, "level": "INFO"}, {"msg": "short"}]
    )
    first, second = small_engine.logs.read(job.id)
    assert len(first["msg"].encode()) <= 500
    assert first["msg"].startswith("start xxx") and "bytes cut ...]" in first["msg"]
    assert second["msg"] == "short"
