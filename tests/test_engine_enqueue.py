"""Enqueue: validation before any write, deferral, uniqueness, idempotency, bulk."""

from datetime import UTC, datetime, timedelta

import pytest

from jobqueue.engine import JobSpec, JobState, codec
from jobqueue.engine.errors import InvalidJob, UnknownTask


def test_enqueue_writes_a_queued_job(engine, keyspace):
    job = engine.enqueue("tests.add", [1, 2], {"c": 3}, queue="mail", priority=7)
    assert job.state is JobState.QUEUED
    assert job.id.startswith("mail:")
    stored = engine.get(job.id)
    assert (stored.task, stored.args, stored.kwargs, stored.priority) == (
        "tests.add",
        [1, 2],
        {"c": 3},
        7,
    )
    assert stored.version == 1
    assert stored.enqueued_at is not None
    assert engine.counts("mail")[JobState.QUEUED] == 1
    assert "mail" in engine.queues()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task": "os.system"}, "'os.system' is not a registered task"),
        ({"task": "builtins.eval"}, "'builtins.eval' is not a registered task"),
        ({"args": [object()]}, "JSON-serialisable"),
        ({"args": [float("nan")]}, "JSON cannot carry"),
        ({"kwargs": {1: "x"}}, "dict key of type int at kwargs: 1"),
        ({"kwargs": {"when": datetime.now(UTC)}}, "JSON-serialisable"),
        ({"args": "abc"}, "args must be a list"),
        ({"priority": 101}, "between -100 and 100"),
        ({"priority": -101}, "between -100 and 100"),
        ({"priority": 1.5}, "whole number"),
        ({"priority": True}, "whole number"),
        ({"queue": ""}, "Queue name ''"),
        ({"queue": "q" * 65}, "is invalid"),
        ({"queue": "has space"}, "is invalid"),
        ({"queue": "a{b}"}, "is invalid"),
        ({"run_after": datetime(2030, 1, 1)}, "naive datetime"),
        ({"run_after": "tomorrow"}, "must be a datetime"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"timeout": -1}, "timeout must be a number of seconds from 0.001"),
        ({"timeout": float("inf")}, "timeout must be a number of seconds from 0.001"),
        ({"result_ttl": 0}, "result_ttl"),
        ({"unique_key": ""}, "unique_key"),
        ({"idempotency_id": 5}, "idempotency_id"),
        ({"job_id": "other:abc"}, "does not belong to queue"),
        ({"job_id": "no-colon"}, "not a jobqueue job id"),
        ({"timeout": 1e10}, r"timeout must be .* from 0.001 to 31536000 .*not 10000000000\.0"),
        ({"timeout": 0.0001}, "timeout must be .* not 0.0001"),
        ({"timeout": float("nan")}, "timeout must be .* not nan"),
        ({"priority": float("nan")}, "priority must be a whole number .* 100, not nan"),
        ({"priority": float("inf")}, "priority must be a whole number .* 100, not inf"),
        ({"max_attempts": float("-inf")}, "max_attempts must be a whole number .* not -inf"),
    ],
)
def test_bad_input_raises_naming_the_value_and_writes_nothing(engine, keyspace, options, message):
    spec = {"task": "tests.add", "args": [1, 2], "queue": "default", **options}
    task = spec.pop("task")
    args = spec.pop("args")
    with pytest.raises(InvalidJob, match=message):
        engine.enqueue(task, args, **spec)
    assert keyspace.keys() == []


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture(params=["orjson", "json"])
def encoder(request, monkeypatch):
    """Each test below runs with orjson and with the standard library's json."""
    if request.param == "json":
        monkeypatch.setattr(codec, "_dumps", codec._std_dumps)
    return request.param


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ([b"\x00" * 50_000_000], {}, r"args\[0\] is a bytes: b'\\x00"),
        ([{"a": [1, 2, 3, datetime(2020, 1, 2)]}], {}, r'args\[0\]\["a"\]\[3\] is a datetime'),
        ([], {"when": {"x" * 500}}, r'kwargs\["when"\] is a set: \{\'xxx'),
        ([], {"y" * 500: {1}}, r'kwargs\["yyy[y]*…\] is a set: \{1\}'),
        ([{1: "a"}], {}, r"dict key of type int at args\[0\]: 1"),
        ([1, [float("inf")]], {}, r"inf at args\[1\]\[0\]"),
        ([nested(5000)], {}, r"deeper than 254 levels \(at args\[0\]\[0\]"),
        ([nested(252)], {}, None),  # 254 lists, args included: as deep as it may go
    ],
)
def test_arguments_that_are_not_json_are_named_by_type_path_and_a_short_preview(
    engine, keyspace, encoder, args, kwargs, message
):
    if message is None:
        assert engine.enqueue("tests.add", args, kwargs).args == args
        return
    with pytest.raises(InvalidJob, match=message) as caught:
        engine.enqueue("tests.add", args, kwargs)
    text = str(caught.value)
    assert len(text) < 400  # never the value itself: it may be huge, or personal data
    assert "x" * 61 not in text and "\\x00" * 61 not in text
    assert keyspace.keys() == []


def test_unknown_task_is_its_own_exception(engine):
    with pytest.raises(UnknownTask):
        engine.enqueue("not.registered")


def test_oversized_arguments_are_refused(engine, keyspace):
    big = "x" * (engine.config.max_payload_bytes + 1)
    with pytest.raises(InvalidJob, match="more than the limit"):
        engine.enqueue("tests.add", [big, 1])
    assert keyspace.keys() == []


def test_bulk_is_validated_as_a_whole(engine, keyspace):
    specs = [JobSpec("tests.add", [i, i]) for i in range(10)] + [
        JobSpec("tests.add", priority=500)
    ]
    with pytest.raises(InvalidJob, match="priority"):
        engine.enqueue_many(specs)
    assert keyspace.keys() == []


def test_bulk_enqueue_many_queues_keeps_order(engine):
    specs = [JobSpec("tests.add", [i, 1], queue=("a" if i % 3 else "b")) for i in range(1203)]
    jobs = engine.enqueue_many(specs)
    assert [j.args[0] for j in jobs] == list(range(1203))
    assert engine.counts("a")[JobState.QUEUED] + engine.counts("b")[JobState.QUEUED] == 1203
    assert len({j.id for j in jobs}) == 1203


def test_bulk_over_several_chunks_returns_new_and_existing_jobs_in_order(engine):
    # 1,200 jobs in three script calls; the jobs of each are built while Redis runs the
    # next, and jobs that were already there are read back afterwards.
    first = engine.enqueue("tests.add", [0, 0], unique_key="held")
    again = engine.enqueue("tests.add", [0, 1])
    specs = [JobSpec("tests.add", [i, 1]) for i in range(1200)]
    specs[10] = JobSpec("tests.add", [10, 1], unique_key="held")  # held by `first`
    specs[700] = JobSpec("tests.add", [0, 1], job_id=again.id)  # that id exists
    jobs = engine.enqueue_many(specs)
    assert len(jobs) == 1200 and jobs[10].id == first.id and jobs[700].id == again.id
    assert [j.args[0] for j in jobs[11:700]] == list(range(11, 700))
    assert jobs[700].args == [0, 1] and [j.args[0] for j in jobs[701:]] == list(range(701, 1200))
    assert engine.counts("default")[JobState.QUEUED] == 1200  # 1,198 new ones and the two


def test_run_after_defers(engine, protocol):
    later = datetime.now(UTC) + timedelta(hours=1)
    job = engine.enqueue("tests.noop", run_after=later)
    assert job.state is JobState.SCHEDULED
    assert abs((engine.get(job.id).run_at - later).total_seconds()) < 0.002
    assert engine.counts("default")[JobState.SCHEDULED] == 1
    assert protocol.claim("default", "w").jobs == []


def test_run_after_in_the_past_is_queued_at_once(engine):
    job = engine.enqueue("tests.noop", run_after=datetime.now(UTC) - timedelta(seconds=5))
    assert job.state is JobState.QUEUED


def test_unique_key_returns_the_live_job(engine, protocol):
    first = engine.enqueue("tests.add", [1, 1], unique_key="report:42")
    second = engine.enqueue("tests.add", [2, 2], unique_key="report:42")
    assert second.id == first.id and second.args == [1, 1]
    assert engine.counts("default")[JobState.QUEUED] == 1
    claimed = protocol.claim("default", "w").jobs[0]
    protocol.complete(claimed.job_id, claimed.token, 2)
    third = engine.enqueue("tests.add", [3, 3], unique_key="report:42")
    assert third.id != first.id  # the key is free again once the job ended


def test_unique_key_is_freed_by_cancel_and_failure(engine, protocol):
    a = engine.enqueue("tests.noop", unique_key="u")
    engine.cancel(a.id)
    b = engine.enqueue("tests.noop", unique_key="u")
    assert b.id != a.id
    claimed = protocol.claim("default", "w").jobs[0]
    protocol.fail(claimed.job_id, claimed.token, "builtins.ValueError", "tb", retry=False)
    c = engine.enqueue("tests.noop", unique_key="u")
    assert c.id not in (a.id, b.id)


def test_idempotency_id_makes_a_retried_enqueue_create_nothing(engine):
    first = engine.enqueue("tests.add", [1, 2], idempotency_id="order-7-confirmation")
    again = engine.enqueue("tests.add", [1, 2], idempotency_id="order-7-confirmation")
    assert again.id == first.id
    assert engine.counts("default")[JobState.QUEUED] == 1
    other = engine.enqueue("tests.add", [1, 2], idempotency_id="order-8-confirmation")
    assert other.id != first.id


def test_explicit_job_id_is_idempotent(engine):
    job_id = "default:my-own-id_1"
    first = engine.enqueue("tests.noop", job_id=job_id)
    second = engine.enqueue("tests.noop", job_id=job_id)
    assert first.id == second.id == job_id
    assert engine.counts("default")[JobState.QUEUED] == 1


def test_fresh_ids_are_random_hex_never_repeated_nor_shared_with_a_fork():
    import os

    from jobqueue.engine.job import LOCAL_ID_RE, new_local_id

    ids = [new_local_id() for _ in range(5000)]  # across many refills of the buffer
    assert len(set(ids)) == 5000
    assert all(len(i) == 24 and LOCAL_ID_RE.match(i) and int(i, 16) >= 0 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the ids it makes next
        os.write(write, " ".join(new_local_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child_ids = os.read(read, 1000).decode().split()
    os.close(read)
    parent_ids = [new_local_id() for _ in range(3)]
    assert len(child_ids) == 3 and not set(child_ids) & set(parent_ids)


def test_a_draft_is_built_while_redis_runs_and_gets_its_time_after(engine):
    seen = []

    def draft(job):
        seen.append((job, job.enqueued_at))

    job = engine.enqueue_many([JobSpec("tests.add", [1, 2])], draft=draft)[0]
    assert len(seen) == 1 and seen[0][0] is job  # the very job returned
    assert seen[0][1] is None  # built before the reply: no time yet
    assert job.enqueued_at == engine.get(job.id).enqueued_at is not None


def test_a_draft_that_raises_changes_nothing(engine):
    def draft(job):
        raise RuntimeError("a caller's bug")

    job = engine.enqueue_many([JobSpec("tests.add", [1, 2])], draft=draft)[0]
    assert job.enqueued_at == engine.get(job.id).enqueued_at is not None


def test_a_plain_enqueue_writes_what_enqueue_writes(engine, protocol):
    # The options are checked once (plain_enqueue); each call only checks its arguments.
    options = dict(queue="emails", priority=7, max_attempts=3, timeout=2.5, result_ttl=60)
    plan = engine.producer.plain_enqueue(JobSpec("tests.add", **options))
    planned = engine.producer.enqueue_plain(plan, (1,), {"b": 2})
    usual = engine.enqueue("tests.add", [1], {"b": 2}, **options)
    assert planned.id.startswith("emails:") and planned.id != usual.id
    for field in ("state", "args", "kwargs", "priority", "max_attempts", "timeout", "result_ttl"):
        assert getattr(planned, field) == getattr(usual, field)
        assert getattr(engine.get(planned.id), field) == getattr(engine.get(usual.id), field)
    assert planned.enqueued_at == engine.get(planned.id).enqueued_at is not None

    def stored(job):
        fields = engine.client.hgetall(engine.keys.queue("emails").job(job.id.split(":")[1]))
        return {k: v for k, v in fields.items() if k != b"enq"}

    assert stored(planned) == stored(usual)
    claimed = protocol.claim("emails", "w1", count=2).jobs
    assert [c.job_id for c in claimed] == [planned.id, usual.id]


def test_a_plain_enqueue_refuses_what_is_not_plain_and_bad_arguments(engine, keyspace):
    later = datetime.now(UTC) + timedelta(hours=1)
    for spec in (
        JobSpec("tests.add", [1, 2]),
        JobSpec("tests.add", unique_key="u"),
        JobSpec("tests.add", run_after=later),
        JobSpec("tests.add", idempotency_id="i"),
    ):
        with pytest.raises(InvalidJob, match="plain_enqueue"):
            engine.producer.plain_enqueue(spec)
    with pytest.raises(InvalidJob, match="max_attempts"):
        engine.producer.plain_enqueue(JobSpec("tests.add", max_attempts=0))
    with pytest.raises(UnknownTask):
        engine.producer.plain_enqueue(JobSpec("tests.nope"))
    plan = engine.producer.plain_enqueue(JobSpec("tests.add"))
    with pytest.raises(InvalidJob, match="args"):
        engine.producer.enqueue_plain(plan, {1, 2})
    with pytest.raises(InvalidJob, match=r"JSON-serialisable .* args\[0\] is a object"):
        engine.producer.enqueue_plain(plan, (object(),))
    with pytest.raises(InvalidJob, match="limit"):
        engine.producer.enqueue_plain(plan, ("x" * (engine.config.max_payload_bytes + 1),))
    assert keyspace.keys() == []


def test_a_repeated_call_returns_the_stored_job_not_its_draft(engine):
    spec = JobSpec("tests.add", [1, 2])
    item = engine.producer._prepare(spec)  # one id, sent twice (a lost reply)
    plan = engine.producer._plan(spec, item.fields)
    first = engine.producer._enqueue_one(plan, item)
    drafts = []
    again = engine.producer._enqueue_one(plan, item, draft=drafts.append)
    assert again == engine.get(first.id) and again is not drafts[-1]
    assert engine.counts("default")[JobState.QUEUED] == 1


def test_a_bulk_enqueue_leaves_one_wake_token_per_ready_job_up_to_the_cap(engine):
    # One token per job a blocked worker may claim; at most the cap (a worker takes one
    # token per wake and then claims in batches), and none for a job that waits its turn.
    qk = engine.keys.queue("default")
    cap = engine.config.wake_cap
    engine.enqueue_many([JobSpec("tests.noop") for _ in range(3)])
    assert engine.client.llen(qk.wake) == 3
    later = datetime.now(UTC) + timedelta(hours=1)
    engine.enqueue_many([JobSpec("tests.noop", run_after=later) for _ in range(5)])
    assert engine.client.llen(qk.wake) == 3
    engine.enqueue_many([JobSpec("tests.noop") for _ in range(cap + 50)])
    assert engine.client.llen(qk.wake) == cap
    assert engine.client.lrange(qk.wake, 0, -1) == [b"1"] * cap
