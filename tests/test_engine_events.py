"""Every transition appends an event, in the same script, with the job's new version."""

import time
from datetime import UTC, datetime, timedelta


def events(engine, keyspace, queue="default"):
    raw = keyspace.client.xrange(engine.keys.queue(queue).events)
    out = []
    for _, fields in raw:
        f = {k.decode(): v.decode() for k, v in fields.items()}
        out.append(f)
    return out


def test_each_transition_emits_one_event_with_a_bumped_version(engine, keyspace, protocol):
    job = engine.enqueue("tests.add", [1, 2], max_attempts=2)
    c = protocol.claim("default", "w").jobs[0]
    protocol.progress(c.job_id, c.token, 1, 2)
    protocol.fail(c.job_id, c.token, "x.E", "tb", delay=0)
    c = protocol.claim("default", "w").jobs[0]  # promotes (event), then claims (event)
    protocol.complete(c.job_id, c.token, 3)
    engine.delete(job.id)
    evs = [e for e in events(engine, keyspace) if e["id"] == c.local_id]
    assert [e["s"] for e in evs] == [
        "queued",
        "running",
        "running",
        "scheduled",
        "queued",
        "running",
        "succeeded",
        "deleted",
    ]
    versions = [int(e["v"]) for e in evs]
    assert versions == list(range(1, len(evs) + 1))
    assert all(e["q"] == "default" and int(e["t"]) > 0 for e in evs)
    assert evs[0]["task"] == "tests.add" and evs[0]["args"] == "[1,2]"  # what changed
    assert evs[1]["worker"] == "w" and evs[1]["att"] == "1"
    assert evs[2]["progress"].startswith('{"done":1')
    assert evs[3]["error"].startswith('{"c":"x.E"') and "errors" not in evs[3]
    assert evs[6]["result"] == "3"


def test_stale_calls_emit_nothing(engine, keyspace, protocol):
    engine.enqueue("tests.noop")
    c = protocol.claim("default", "w").jobs[0]
    before = len(events(engine, keyspace))
    protocol.renew("default", [(c.local_id, "0")])
    protocol.complete_many("default", [(c.local_id, "0", b"1", None)])
    assert len(events(engine, keyspace)) == before


def test_queue_events_and_cleared_fields(engine, keyspace):
    engine.pause("default")
    engine.resume("default")
    job = engine.enqueue("tests.noop", run_after=datetime.now(UTC) + timedelta(hours=1))
    engine.cancel(job.id)
    engine.retry(job.id)
    evs = events(engine, keyspace)
    assert [e["s"] for e in evs[:2]] == ["paused", "resumed"] and evs[0]["id"] == ""
    retried = evs[-1]
    assert retried["s"] == "queued" and retried["ended"] == "" and retried["reason"] == ""


def test_the_stream_is_capped(engine, keyspace):
    from dataclasses import replace

    from jobqueue.engine import Engine, JobSpec

    small = Engine(engine.client, replace(engine.config, events_maxlen=100), engine.registry)
    small.enqueue_many([JobSpec("tests.noop") for _ in range(2000)])
    length = keyspace.client.xlen(small.keys.queue("default").events)
    assert length < 400  # MAXLEN ~ trims whole nodes: approximately 100


def test_reaped_and_dead_lettered_jobs_emit_events(engine, keyspace, protocol):
    engine.enqueue("tests.noop")
    protocol.claim("default", "w", lease=0.01)
    time.sleep(0.05)
    protocol.reap("default")
    assert events(engine, keyspace)[-1]["s"] == "queued"
    assert events(engine, keyspace)[-1]["stalls"] == "1"
