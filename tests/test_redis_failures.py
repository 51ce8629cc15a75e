"""Redis that lost its data, Redis that is full, Redis that restarts: on private servers."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from jobqueue.engine import Engine, EngineConfig, JobSpec, JobState
from jobqueue.engine.transport.connection import create_client
from tests.conftest import wait_for

FINISHED = {JobState.SUCCEEDED, JobState.FAILED}


@pytest.fixture
def engine_on(registry):
    """Engines on a private server (prefix ``dl``); their clients are closed after the test."""
    made = []

    def make(server, **config):
        engine = Engine(
            create_client(server.url, socket_timeout=5),
            EngineConfig(prefix="dl", **config),
            registry,
        )
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.client.close()


def job_ids(server, queue="default"):
    """Every job hash under ``dl`` on ``server``, read without the engine."""
    client = server.client()
    return sorted(k.decode() for k in client.scan_iter(match=f"dl:{{{queue}}}:j:*"))


# -- 1. data loss does not fail an unrelated enqueue ------------------------------------------


def test_enqueue_after_a_restart_without_persistence_writes_the_job_once(
    private_redis, engine_on, caplog
):
    engine = engine_on(private_redis)
    before = engine.enqueue("tests.noop")
    private_redis.restart()  # no persistence: everything is gone
    with caplog.at_level(logging.CRITICAL, logger="jobqueue.engine"):
        job = engine.enqueue("tests.add", [1, 2])  # enqueue_one.lua
        again = engine.enqueue("tests.add", [3, 4])
    assert job.state is JobState.QUEUED and job.id != before.id
    assert engine.get(job.id).args == [1, 2]
    assert engine.counts("default")[JobState.QUEUED] == 2  # each once, nothing half-written
    assert len(job_ids(private_redis)) == 2 and again.id != job.id
    [loss] = engine.data_loss  # noticed once
    assert loss.queue == "default" and loss.noticed_at is not None
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1, [r.getMessage() for r in critical]
    message = critical[0].getMessage()
    assert "queue=default" in message and loss.noticed_at.isoformat()[:19] in message
    assert engine.queue_info("default").data_lost_at is not None  # for health and the admin


def test_a_batch_enqueue_over_two_lost_queues_writes_every_job_once(private_redis, engine_on):
    engine = engine_on(private_redis)
    engine.enqueue_many([JobSpec("tests.noop", queue=q) for q in ("a", "b")])
    private_redis.client().flushall()
    specs = [JobSpec("tests.add", [i, 0], queue="ab"[i % 2]) for i in range(6)]
    jobs = engine.enqueue_many(specs)
    assert [j.args for j in jobs] == [[i, 0] for i in range(6)]
    assert {loss.queue for loss in engine.data_loss} == {"a", "b"}
    assert len(engine.data_loss) == 2
    for queue in ("a", "b"):
        assert engine.counts(queue)[JobState.QUEUED] == 3
        assert len(job_ids(private_redis, queue)) == 3


def test_threads_that_meet_one_loss_record_it_once(private_redis, engine_on):
    engine = engine_on(private_redis)
    engine.enqueue("tests.noop")
    private_redis.client().flushall()
    start, errors, jobs = threading.Barrier(8), [], []

    def enqueue():
        start.wait(timeout=10)
        try:
            jobs.extend(engine.enqueue("tests.noop") for _ in range(5))
        except Exception as exc:  # pragma: no cover - the failure the test looks for
            errors.append(exc)

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert errors == []
    assert len(engine.data_loss) == 1
    assert len({j.id for j in jobs}) == 40 == engine.counts("default")[JobState.QUEUED]


def test_other_operations_still_report_the_loss(private_redis, engine_on):
    """Steering a job Redis lost is refused loudly (its job is gone), then carries on."""
    from jobqueue.engine.errors import DataLossDetected

    engine = engine_on(private_redis)
    engine.enqueue("tests.noop")
    private_redis.client().flushall()
    with pytest.raises(DataLossDetected, match="lost the data of queue 'default'"):
        engine.pause("default")
    assert engine.pause("default") is True


def test_a_web_enqueue_after_data_loss_succeeds_and_sends_the_signal(private_redis, settings):
    from jobqueue.conf import get_engine
    from jobqueue.exceptions import DataLossDetected
    from jobqueue.signals import data_loss_detected
    from tests.sample_tasks import add

    settings.JOBQUEUE = {**settings.JOBQUEUE, "REDIS_URL": private_redis.url, "PREFIX": "dl"}
    received = []

    def on_loss(sender, queue, noticed_at, loss, **kwargs):
        received.append((sender, queue, noticed_at, loss))

    def broken(**kwargs):
        raise RuntimeError("a receiver that fails")

    data_loss_detected.connect(on_loss)
    data_loss_detected.connect(broken)
    try:
        first = add.enqueue(1, 2)
        private_redis.restart()
        result = add.enqueue(2, 3)  # a web request's enqueue, unrelated to the lost job
        add.enqueue(3, 4)
    finally:
        data_loss_detected.disconnect(on_loss)
        data_loss_detected.disconnect(broken)
    assert result.status.name == "READY" and result.id != first.id
    engine = get_engine()
    assert engine.get(result.id).args == [2, 3]
    assert engine.counts("default")[JobState.QUEUED] == 2
    [(sender, queue, noticed_at, loss)] = received  # once per process per loss
    assert sender is DataLossDetected and queue == "default"
    assert isinstance(loss, DataLossDetected) and noticed_at == loss.noticed_at


def test_health_and_status_carry_the_alarm_after_an_enqueue_noticed_it(private_redis, settings):
    import io
    import json

    from django.core.management import call_command

    from tests.sample_tasks import add

    settings.JOBQUEUE = {**settings.JOBQUEUE, "REDIS_URL": private_redis.url, "PREFIX": "dl"}
    add.enqueue(1, 2)
    private_redis.restart()
    add.enqueue(2, 3)
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("jobqueue", "health", "--queue", "default", "--json", stdout=out)
    assert exited.value.code == 1
    report = json.loads(out.getvalue())
    assert report["queues"][0]["data_lost_at"] is not None
    assert any("lost the data of queue 'default'" in p for p in report["problems"])
    status = io.StringIO()
    call_command("jobqueue", "status", stdout=status)
    assert "data lost" in status.getvalue()


# -- 2. Redis at maxmemory with noeviction --------------------------------------------------


def fill(server, prefix="filler"):
    """Fill Redis with 64 KiB values until it refuses one, then hold it full: maxmemory set
    64 KiB under what it uses (a refused command's freed buffers would leave room for small
    writes). Returns that maxmemory."""
    import redis

    client = server.client()
    for n in range(10_000):
        try:
            client.set(f"{prefix}:{n}", b"x" * 65536)
        except redis.ResponseError as exc:
            assert "maxmemory" in str(exc)
            break
    limit = int(client.info("memory")["used_memory"]) - 65536
    client.config_set("maxmemory", limit)
    return limit


def free(server, prefix="filler"):
    """Memory freed: the filler gone, maxmemory back to the server's 4 MiB."""
    client = server.client()
    filler = client.keys(f"{prefix}:*")
    if filler:
        client.delete(*filler)
    client.config_set("maxmemory", "4mb")


@pytest.fixture
def small_redis(tmp_path):
    from tests.redis_server import RedisServer

    server = RedisServer(
        tmp_path / "small", maxmemory="4mb", **{"maxmemory-policy": "noeviction"}
    ).start()
    yield server
    server.close()


def test_enqueue_into_a_full_redis_raises_a_clear_error_and_writes_nothing(small_redis, engine_on):
    from jobqueue.exceptions import RedisFull

    engine = engine_on(small_redis)
    engine.enqueue("tests.noop")
    limit = fill(small_redis)
    events = small_redis.client().xlen("dl:{default}:events")
    with pytest.raises(RedisFull, match=rf"Redis is full: .* maxmemory of {limit} bytes") as one:
        engine.enqueue("tests.add", [1, 2])  # enqueue_one.lua
    assert "not enqueued" in str(one.value) and "noeviction" in str(one.value)
    with pytest.raises(RedisFull, match="nothing was written"):
        engine.enqueue_many([JobSpec("tests.add", [i, 0]) for i in range(3)])  # enqueue.lua
    with pytest.raises(RedisFull):
        engine.enqueue("tests.noop", unique_key="u", queue="other")  # a new queue
    # Nothing half-written: one job, one event, as before.
    assert len(job_ids(small_redis)) == 1
    assert engine.counts("default")[JobState.QUEUED] == 1
    assert small_redis.client().xlen("dl:{default}:events") == events
    free(small_redis)
    assert engine.enqueue("tests.add", [1, 2]).args == [1, 2]
    assert engine.data_loss == []


def hold_full(server) -> int:
    """Redis full from now on: maxmemory set to half of what it uses (noeviction)."""
    client = server.client()
    limit = int(client.info("memory")["used_memory"]) // 2
    client.config_set("maxmemory", limit)
    return limit


def test_the_protocol_on_a_full_redis(small_redis, engine_on):
    """What a worker meets when Redis fills up: renewals (and enqueues, heartbeats) are
    refused with nothing written; claims, successes and failures still go through: each script's
    first write removes (Redis refuses only a script whose first write may add memory, and
    lets a script that has written finish)."""
    from jobqueue.exceptions import RedisFull

    engine = engine_on(small_redis)
    first, second, third = (engine.enqueue("tests.add", [i, 1]) for i in (1, 2, 3))
    protocol = engine.worker_protocol()
    claimed, failing = protocol.claim("default", "w", count=2).jobs
    hold_full(small_redis)
    with pytest.raises(RedisFull, match="renew script was refused and wrote nothing"):
        protocol.renew("default", [(claimed.local_id, claimed.token)])
    protocol.complete(claimed.job_id, claimed.token, 2)  # recorded (LeaseLost otherwise)
    assert engine.get(first.id).state is JobState.SUCCEEDED
    state = protocol.fail(failing.job_id, failing.token, "ValueError", "tb", retry=False)
    assert state is JobState.FAILED and engine.get(second.id).state is JobState.FAILED
    [other] = protocol.claim("default", "w", count=1).jobs
    assert other.job_id == third.id
    with pytest.raises(RedisFull):
        engine.enqueue("tests.noop")
    free(small_redis)
    protocol.complete(other.job_id, other.token, 4)
    assert engine.get(third.id).result == 4


# -- 2, 3. a running worker when Redis is full, paused, or cut off ----------------------------


def private_engine(server):
    """An engine on ``server`` under the worker's prefix (``dl``), with the site's tasks."""
    from jobqueue.conf import get_engine
    from jobqueue.discovery import autodiscover

    autodiscover()

    return Engine(create_client(server.url), EngineConfig(prefix="dl"), get_engine().registry)


def worker_on(start_worker, url, *args, **env):
    return start_worker("-c", "1", *args, JOBQUEUE_REDIS_URL=url, JOBQUEUE_PREFIX="dl", **env)


@pytest.mark.slow
def test_a_worker_on_a_full_redis_records_its_job_and_keeps_running(small_redis, start_worker):
    from jobqueue.exceptions import RedisFull

    engine = private_engine(small_redis)
    try:
        job = engine.enqueue("tests.sample_tasks.quiet_sleep", [1.5])
        worker = worker_on(start_worker, small_redis.url)
        wait_for(lambda: engine.get(job.id).state is JobState.RUNNING, 20, message="not run")
        hold_full(small_redis)
        with pytest.raises(RedisFull):
            engine.enqueue("tests.sample_tasks.quiet_sleep", [0])
        done = wait_for(lambda: engine.get(job.id).state in FINISHED, 15, message="no outcome")
        assert done and engine.get(job.id).state is JobState.SUCCEEDED
        assert engine.get(job.id).attempts == 1
        free(small_redis)
        after = engine.enqueue("tests.sample_tasks.quiet_sleep", [0])
        wait_for(lambda: engine.get(after.id).state is JobState.SUCCEEDED, 20, message="stuck")
        assert worker.process.poll() is None, worker.output()
    finally:
        engine.client.close()


@pytest.mark.slow
def test_a_result_finished_while_redis_was_paused_is_recorded_after(private_redis, start_worker):
    engine = private_engine(private_redis)
    try:
        job = engine.enqueue("tests.sample_tasks.quiet_sleep", [0.5])
        worker = worker_on(start_worker, private_redis.url)
        wait_for(lambda: engine.get(job.id).state is JobState.RUNNING, 20, message="not run")
        private_redis.pause()  # SIGSTOP: connections stay open, nothing is answered
        try:
            time.sleep(3)  # the job ends meanwhile; its outcome waits in the worker
        finally:
            private_redis.resume()
        wait_for(lambda: engine.get(job.id).state is JobState.SUCCEEDED, 20, message="lost")
        finished = engine.get(job.id)
        assert finished.result == 0.5 and finished.attempts == 1 and finished.stalls == 0
        assert worker.process.poll() is None, worker.output()
    finally:
        engine.client.close()


BUSY_SCRIPT = """
local start = redis.call('TIME')
local began = tonumber(start[1]) + tonumber(start[2]) / 1e6
while true do
  local now = redis.call('TIME')
  if tonumber(now[1]) + tonumber(now[2]) / 1e6 - began > tonumber(ARGV[1]) then return 1 end
end
"""


@pytest.mark.slow
def test_an_outcome_redis_refused_while_busy_is_sent_again(private_redis, start_worker):
    """A long script makes Redis answer BUSY to every other call: the job's success, refused
    so, is kept and sent again until Redis takes it (it was dropped, and the job ran again
    once its lease ended)."""
    admin = private_redis.client()
    admin.config_set("busy-reply-threshold", 100)  # ms a script runs before others get BUSY
    engine = private_engine(private_redis)
    try:
        job = engine.enqueue("tests.sample_tasks.quiet_sleep", [0.8])
        worker = worker_on(start_worker, private_redis.url, JOBQUEUE_LEASE_SECONDS="4")
        wait_for(lambda: engine.get(job.id).state is JobState.RUNNING, 20, message="not run")
        busy = threading.Thread(target=admin.eval, args=(BUSY_SCRIPT, 0, 2.5), daemon=True)
        busy.start()  # the job ends while Redis is busy: its success is refused with BUSY
        busy.join(10)
        wait_for(lambda: engine.get(job.id).state is JobState.SUCCEEDED, 20, message="lost")
        finished = engine.get(job.id)
        assert finished.result == 0.8 and finished.attempts == 1 and finished.stalls == 0
        assert "outcomes_kept" in worker.output(), worker.output()
        assert worker.process.poll() is None, worker.output()
    finally:
        engine.client.close()


@pytest.mark.slow
def test_a_result_for_a_job_reclaimed_meanwhile_is_refused(private_redis, start_worker):
    """The worker is cut off (its ACL user switched off, its connections killed) while its
    job ends; meanwhile the lease expires and another worker takes the job. When the worker
    is let in again, its result is refused, never written over the newer attempt."""
    admin = private_redis.client()
    admin.acl_setuser("worker", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all"])
    engine = private_engine(private_redis)
    try:
        job = engine.enqueue("tests.sample_tasks.quiet_sleep", [1])
        url = f"redis://worker:pw@127.0.0.1:{private_redis.port}/0"
        worker = worker_on(start_worker, url, JOBQUEUE_LEASE_SECONDS="2")
        wait_for(lambda: engine.get(job.id).state is JobState.RUNNING, 20, message="not run")
        admin.acl_setuser("worker", enabled=False)
        admin.client_kill_filter(user="worker")
        protocol = engine.worker_protocol()
        reclaimed = wait_for(
            lambda: protocol.reap("default")[0] and protocol.claim("default", "other").jobs,
            15,
            message="the lease never expired",
        )
        time.sleep(1)  # the job has ended: its result waits in the worker
        admin.acl_setuser("worker", enabled=True)
        wait_for(lambda: "stale_result_discarded" in worker.output(), 20, message="no refusal")
        current = engine.get(job.id)
        assert current.state is JobState.RUNNING and current.token == reclaimed[0].token
        protocol.complete(job.id, reclaimed[0].token, "the newer attempt's")
        assert engine.get(job.id).result == "the newer attempt's"
        assert worker.process.poll() is None, worker.output()
    finally:
        engine.client.close()


# -- 4. Redis with AOF (appendfsync always) killed during a run ---------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("total", "kills"), [(500, 3), pytest.param(5000, 5, marks=pytest.mark.long)]
)
def test_aof_redis_killed_during_a_run_keeps_every_acknowledged_job(
    total, kills, tmp_path, start_worker
):
    """``total`` jobs enqueued while a worker runs them and Redis is SIGKILLed ``kills``
    times: every enqueue acknowledged before a kill is there after the restart, no loss is
    noticed, and the run drains with every job run at least once (re-executions counted)."""
    from jobqueue.exceptions import ConnectionFailed
    from tests.redis_server import RedisServer

    server = RedisServer(tmp_path / "aof", appendonly="yes", appendfsync="always").start()
    engine = private_engine(server)
    runs = tmp_path / "runs.txt"
    acknowledged: list[str] = []
    refused = [0]
    stop = threading.Event()

    def enqueue_all():
        for n in range(total):
            while not stop.is_set():
                try:  # the same idempotency id when sent again: never two jobs for one n
                    job = engine.enqueue(
                        "tests.sample_tasks.append_run", [str(runs)], idempotency_id=f"n{n}"
                    )
                except ConnectionFailed:
                    refused[0] += 1
                    time.sleep(0.02)
                    continue
                acknowledged.append(job.id)
                time.sleep(0.004)  # spread over the kills
                break

    producer = threading.Thread(target=enqueue_all, daemon=True)
    try:
        worker = worker_on(start_worker, server.url, "-c", "2", JOBQUEUE_LEASE_SECONDS="3")
        producer.start()
        # The worker is up before the first kill (at start it checks Redis once, and stops).
        wait_for(lambda: engine.counts("default")[JobState.SUCCEEDED] > 0, timeout=30)
        for _ in range(kills):
            time.sleep(0.8)
            server.kill()
            before = list(acknowledged)  # all acknowledged while Redis was up
            time.sleep(0.3)
            server.start()
            keys = [engine.keys.queue("default").job(i.split(":", 1)[1]) for i in before]
            client = server.client()
            missing = [key for key in keys if not client.exists(key)]
            assert not missing, f"{len(missing)} acknowledged jobs lost: {missing[:3]}"
        producer.join(timeout=30 + total * 0.01)
        assert not producer.is_alive(), f"{len(acknowledged)} of {total} enqueued"
        assert len(set(acknowledged)) == total

        def drained():
            counts = engine.counts("default")
            return counts[JobState.SUCCEEDED] == total and counts[JobState.QUEUED] == 0

        try:
            wait_for(drained, 30 + total * 0.01)
        except AssertionError:
            raise AssertionError(
                f"not drained: {engine.counts('default')}\n{worker.output()}"
            ) from None
        lines = runs.read_text().split()
        per_job = {job_id: lines.count(job_id) for job_id in acknowledged}
        assert min(per_job.values()) >= 1 and set(lines) == set(acknowledged)
        rerun = sum(n - 1 for n in per_job.values())
        print(f"kills={kills} refused_enqueues={refused[0]} re-executions={rerun}")
        assert rerun < total  # at-least-once, not a replay of the run
        assert engine.data_loss == []  # the epoch survived with the data
        assert worker.process.poll() is None, worker.output()
    finally:
        stop.set()
        producer.join(timeout=10)
        engine.client.close()
        server.close()


def test_the_operating_pages_data_loss_receiver_runs(private_redis, settings, capsys):
    """docs/operating.md's receiver ("Health checks"), run on a real loss."""
    import re
    from pathlib import Path

    from jobqueue.signals import data_loss_detected
    from tests.sample_tasks import add

    doc = (Path(__file__).resolve().parent.parent / "docs" / "operating.md").read_text()
    section = doc.split("## Health checks\n", 1)[1].split("\n## ", 1)[0]
    (python,) = re.findall(r"```python\n(.*?)\n```", section, re.S)
    namespace: dict = {}
    exec(python, namespace)
    settings.JOBQUEUE = {**settings.JOBQUEUE, "REDIS_URL": private_redis.url, "PREFIX": "dl"}
    try:
        add.enqueue(1, 1)
        private_redis.restart()
        assert add.enqueue(1, 2).status.name == "READY"
    finally:
        assert data_loss_detected.disconnect(namespace["page_on_data_loss"])
    out = capsys.readouterr().out
    assert re.search(r"Redis lost the jobs of queue 'default' \(noticed \d\d:\d\d:\d\d UTC\)", out)


@pytest.mark.slow
def test_a_running_worker_notices_a_loss_and_carries_on(private_redis, start_worker):
    """Redis restarts without persistence under a running worker: it logs the loss at
    CRITICAL (once), does not exit, and runs the jobs enqueued after."""
    engine = private_engine(private_redis)
    try:
        first = engine.enqueue("tests.sample_tasks.quiet_sleep", [0])
        worker = worker_on(start_worker, private_redis.url)
        wait_for(lambda: engine.get(first.id).state is JobState.SUCCEEDED, 20, message="stuck")
        private_redis.restart()
        jobs = [engine.enqueue("tests.sample_tasks.quiet_sleep", [0]) for _ in range(3)]
        for job in jobs:
            wait_for(lambda j=job: engine.get(j.id).state is JobState.SUCCEEDED, 20)
        wait_for(lambda: "data_loss queue=default" in worker.output(), 10, message="silent")
        assert worker.output().count("CRITICAL jobqueue.engine data_loss queue=default") == 1
        assert worker.process.poll() is None, worker.output()
    finally:
        engine.client.close()


@pytest.mark.database
def test_the_queues_dashboard_shows_the_loss(private_redis, settings, db):
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    from tests.sample_tasks import add

    settings.JOBQUEUE = {**settings.JOBQUEUE, "REDIS_URL": private_redis.url, "PREFIX": "dl"}
    add.enqueue(1, 1)
    private_redis.restart()
    add.enqueue(1, 2)
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw"))
    page = client.get(reverse("admin:jobqueue_queue_changelist")).content.decode()
    row = page.split('data-queue="default"', 1)[1].split("</tr>", 1)[0]
    assert "data lost</span>" in row


def test_a_loss_is_recorded_when_a_process_that_never_knew_the_queue_came_first(
    private_redis, engine_on
):
    """After the loss, a new process (a web worker started since) makes the queue a new
    epoch without knowing of any loss; the first old process to call still records it."""
    old, new, third = (engine_on(private_redis) for _ in range(3))
    old.enqueue("tests.noop")
    third.runner.epoch("default")  # knows the epoch too
    private_redis.restart()
    new.enqueue("tests.noop")
    assert new.queue_info("default").data_lost_at is None  # nothing to know it by
    old.enqueue("tests.noop")
    lost_at = old.queue_info("default").data_lost_at
    assert lost_at is not None and [loss.queue for loss in old.data_loss] == ["default"]
    third.enqueue("tests.noop")  # the same loss: recorded once
    assert third.queue_info("default").data_lost_at == lost_at
    assert old.counts("default")[JobState.QUEUED] == 3
