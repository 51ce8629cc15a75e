"""The worker under what production throws at it: real processes, real signals, real Redis."""

import os
import signal
import time

import pytest

from jobqueue.compat import TaskResultStatus
from jobqueue.conf import get_engine, jobqueue_settings
from jobqueue.engine import JobState
from tests import sample_tasks as t
from tests.conftest import wait_for

pytestmark = pytest.mark.slow


def state(result):
    return get_engine().get(result.id).state


def test_timeout_stops_the_job_and_the_worker_keeps_serving(run_worker):
    slow = t.sleep_for.using(timeout=0.5).enqueue(20)
    after = t.add.enqueue(1, 2)
    started = time.monotonic()
    run = run_worker("--burst", "-c", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert time.monotonic() - started < 15
    slow_result = t.sleep_for.get_result(slow.id)
    assert slow_result.status == TaskResultStatus.FAILED
    assert slow_result.errors[0].exception_class_path == "jobqueue.exceptions.JobTimeout"
    assert "timeout of 0.5 seconds" in slow_result.errors[0].traceback
    assert t.add.get_result(after.id).return_value == 3


def test_a_job_ignoring_its_soft_timeout_is_killed_and_retried(run_worker):
    stubborn = t.ignore_timeout.using(timeout=0.5, max_attempts=2).enqueue(30)
    run = run_worker("--burst", "-c", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    result = t.ignore_timeout.get_result(stubborn.id)
    assert result.status == TaskResultStatus.FAILED and result.attempts == 2
    assert all(e.exception_class_path == "jobqueue.exceptions.JobTimeout" for e in result.errors)
    assert "its process was killed" in result.errors[-1].traceback
    assert t.recorded("ignored_timeout")  # the soft timeout fired first


def test_a_crashed_job_runs_again(run_worker):
    job = t.crash_once.enqueue()
    run = run_worker("--burst", "-c", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    result = t.crash_once.get_result(job.id)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == "survived"
    assert result.attempts == 2
    assert get_engine().get(job.id).stalls == 1
    assert "child_died" in run.stderr


def test_a_signal_receiver_that_raises_changes_nothing_about_the_job(run_worker):
    """Django's task_started / task_finished receivers run in the child: one that raises is
    logged, and neither kills the child (a stall, a run again) nor fails the job."""
    job = t.upsets_receivers.enqueue()
    other = t.add.enqueue(1, 1)
    run = run_worker("--burst", "-c", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    stored = get_engine().get(job.id)
    assert stored.state is JobState.SUCCEEDED and stored.attempts == 1 and stored.stalls == 0
    assert t.upsets_receivers.get_result(job.id).return_value == "ran"
    assert run.stderr.count(f"task_signal_receiver_failed job={job.id}") == 2, run.stderr
    assert "a receiver failed for" in run.stderr
    assert t.add.get_result(other.id).return_value == 2


def test_a_job_that_always_crashes_is_dead_after_max_stalls(run_worker):
    job = t.crash_always.enqueue()
    ok = t.add.enqueue(2, 2)
    run = run_worker("--burst", "-c", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    stored = get_engine().get(job.id)
    assert stored.state is JobState.FAILED and stored.stalls == 3
    assert "stalled 3 times" in stored.reason and "exit code 4" in stored.reason
    result = t.crash_always.get_result(job.id)
    assert result.errors[-1].exception_class_path == "jobqueue.exceptions.JobStalled"
    assert t.add.get_result(ok.id).return_value == 4


def test_holding_the_gil_past_the_lease_is_not_reclaimed(run_worker):
    job = t.hold_gil.enqueue(2.5)  # 2.5 x the lease
    run = run_worker("--burst", "-c", "1", JOBQUEUE_LEASE_SECONDS="1")
    assert run.returncode == 0, run.stdout + run.stderr
    stored = get_engine().get(job.id)
    assert stored.state is JobState.SUCCEEDED
    assert stored.stalls == 0 and stored.attempts == 1
    assert len(t.recorded("gil_runs")) == 1


def test_a_stale_worker_changes_nothing(start_worker, run_worker):
    """SIGSTOP a worker past its lease, let another finish the job, SIGCONT the first."""
    job = t.slow_effect.enqueue(1.5)
    stale = start_worker("-c", "1", JOBQUEUE_LEASE_SECONDS="1")
    wait_for(lambda: state(job) is JobState.RUNNING, message="the job never started")
    first_token = get_engine().get(job.id).token
    stale.signal_group(signal.SIGSTOP)
    try:
        time.sleep(1.5)  # the lease (1 s) expires while the worker is frozen
        run = run_worker("--burst", "-c", "1", JOBQUEUE_LEASE_SECONDS="1")
        assert run.returncode == 0, run.stdout + run.stderr
        done = get_engine().get(job.id)
        assert done.state is JobState.SUCCEEDED and done.stalls == 1
        assert int(done.token or 0) != int(first_token) or done.token is None
    finally:
        stale.signal_group(signal.SIGCONT)
    time.sleep(3)  # the stale attempt wakes up: it must change nothing
    assert get_engine().get(job.id) == done
    stale.signal(signal.SIGTERM)
    assert stale.wait(15) == 0


def test_graceful_shutdown_finishes_short_jobs_and_gives_back_long_ones(start_worker):
    short = t.announced_sleep.enqueue("short", 1.0)
    long = t.announced_sleep.enqueue("long", 60)
    worker = start_worker("-c", "2", "--shutdown-timeout", "2")
    # Both running in their children (claimed is not enough: a claimed job may still wait in
    # a child's pipe, and those are given back at shutdown).
    wait_for(lambda: sorted(t.recorded("started")) == ["long", "short"])
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()
    assert time.monotonic() - started < 10
    assert t.announced_sleep.get_result(short.id).status == TaskResultStatus.SUCCESSFUL
    given_back = get_engine().get(long.id)
    assert given_back.state is JobState.QUEUED
    assert given_back.attempts == 0 and given_back.worker_ids == ()
    assert "worker_stopping" in worker.output()


def test_jobs_waiting_in_a_childs_pipe_are_given_back_at_shutdown(start_worker):
    first = t.announced_sleep.enqueue("first", 1.0)
    waiting = [t.add.enqueue(i, i) for i in range(2)]
    worker = start_worker("-c", "1", "--prefetch", "3", "--shutdown-timeout", "10")
    wait_for(lambda: t.recorded("started") == ["first"])  # running, the others in its pipe
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()
    assert state(first) is JobState.SUCCEEDED
    assert [state(r) for r in waiting] == [JobState.QUEUED, JobState.QUEUED]


def test_a_second_signal_exits_at_once(start_worker, run_worker):
    long = t.announced_sleep.enqueue("long", 60)
    worker = start_worker("-c", "1", JOBQUEUE_LEASE_SECONDS="1")
    wait_for(lambda: t.recorded("started") == ["long"])
    worker.signal(signal.SIGTERM)
    time.sleep(0.2)
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) != 0
    assert time.monotonic() - started < 2
    assert state(long) is JobState.RUNNING  # still leased: nobody released it
    time.sleep(1.2)  # the lease expires; any worker reclaims the job
    assert get_engine().worker_protocol().reap("default")[0] == [long.id]


@pytest.mark.parametrize("prefetch", ["32", "1"])
def test_worker_registry_heartbeat_state_and_clean_exit(start_worker, prefetch):
    # With --prefetch 1 the job starts within 0.2 s of the worker's first heartbeat: the
    # change (busy) was held back for the pace of heartbeats, then forgotten until the next.
    worker = start_worker("-c", "1", "--prefetch", prefetch, "--name", "reg-test")

    def registered():
        found = [w for w in get_engine().workers.all() if w.name == "reg-test"]
        return found[0] if found else None

    info = wait_for(registered, message="the worker never registered")
    assert info.alive and info.state == "idle" and info.pid == worker.pid
    assert info.queues == ("default", "high", "low", "emails", "reports")
    job = t.sleep_for.enqueue(1.5)
    busy = wait_for(lambda: (w := registered()) and w.state == "busy" and w)
    assert busy.current_jobs == (job.id,)
    wait_for(lambda: (w := registered()) and w.successful == 1, timeout=10)
    assert registered().working_time >= 1.4
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert registered() is None


def test_a_killed_worker_is_shown_dead_then_forgotten(start_worker):
    from dataclasses import replace

    from jobqueue.engine import Engine

    worker = start_worker("-c", "1", "--name", "doomed", JOBQUEUE_WORKER_DEAD_AFTER="1")
    wait_for(lambda: any(w.name == "doomed" for w in get_engine().workers.all()))
    worker.signal_group(signal.SIGKILL)
    worker.wait(10)
    engine = get_engine()
    short = Engine(
        engine.client, replace(engine.config, worker_dead_after=1, worker_forget_after=2)
    )
    dead = wait_for(
        lambda: [w for w in short.workers.all() if w.name == "doomed" and not w.alive], timeout=10
    )
    assert dead[0].state == "dead"
    wait_for(lambda: short.workers.forget_dead() == 1 or not short.workers.all(), timeout=10)
    assert [w for w in short.workers.all() if w.name == "doomed"] == []


def test_task_logs_are_kept_with_the_job(run_worker):
    job = t.chatty.enqueue(3)
    run = run_worker("--burst", "-c", "1")
    assert run.returncode == 0, run.stderr
    records = get_engine().logs.read(job.id)
    assert [r["msg"] for r in records] == [
        "line 1 of 3",
        "line 2 of 3",
        "line 3 of 3",
        "careful <b>bold</b>",
    ]
    assert records[0]["level"] == "INFO" and records[0]["logger"] == "tests.sample_tasks.chatty"


def test_task_logs_are_capped(run_worker):
    from jobqueue.engine.bookkeeping import LOG_CAP

    job = t.chatty.enqueue(LOG_CAP + 50)
    assert run_worker("--burst", "-c", "1").returncode == 0
    records = get_engine().logs.read(job.id)
    assert len(records) == LOG_CAP and records[-1]["msg"] == "careful <b>bold</b>"


def test_startup_warns_when_redis_can_evict_jobs(private_redis, keyspace, run_worker):
    private_redis.client().config_set("maxmemory-policy", "allkeys-lru")
    run = run_worker("--burst", JOBQUEUE_REDIS_URL=private_redis.url)
    assert run.returncode == 0, run.stderr
    assert "maxmemory-policy is 'allkeys-lru'" in run.stderr and "noeviction" in run.stderr


def test_startup_warns_after_data_loss(private_redis, run_worker):
    from jobqueue.engine import Engine, EngineConfig
    from jobqueue.engine.errors import DataLossDetected
    from jobqueue.engine.transport.connection import create_client

    engine = Engine(
        create_client(private_redis.url), EngineConfig(prefix="jq"), get_engine().registry
    )
    try:
        engine.runner.epoch("default")
        private_redis.client().flushall()
        with pytest.raises(DataLossDetected):
            engine.pause("default")
    finally:
        engine.client.close()
    run = run_worker("--burst", JOBQUEUE_REDIS_URL=private_redis.url, JOBQUEUE_PREFIX="jq")
    assert run.returncode == 0, run.stderr
    assert "lost the data of queue 'default'" in run.stderr


def test_self_fencing_stops_the_job_before_its_lease_ends(private_redis, start_worker, tmp_path):
    """Redis goes away: the worker cannot renew, so it kills the job before the lease ends."""
    from jobqueue.engine import Engine, EngineConfig
    from jobqueue.engine.transport.connection import create_client

    engine = Engine(
        create_client(private_redis.url), EngineConfig(prefix="jq"), get_engine().registry
    )
    stamp = tmp_path / "alive"
    try:
        job = engine.enqueue("tests.sample_tasks.touch_file", [str(stamp), 60])
    finally:
        engine.client.close()
    worker = start_worker(
        "-c",
        "1",
        JOBQUEUE_REDIS_URL=private_redis.url,
        JOBQUEUE_PREFIX="jq",
        JOBQUEUE_LEASE_SECONDS="2",
    )
    wait_for(stamp.exists, message="the job never started")
    time.sleep(0.5)  # at least one renewal happened
    redis_gone = time.time()
    private_redis.kill()
    time.sleep(4)
    last_write = float(stamp.read_text())
    assert last_write < redis_gone + 2, "the job outlived its lease"
    assert "self_fenced" in worker.output(), worker.output()
    assert job.id in worker.output()
    assert worker.process.poll() is None  # the worker itself keeps running

    def cpu_seconds(pid):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    before = cpu_seconds(worker.pid)
    time.sleep(2)
    used = cpu_seconds(worker.pid) - before
    assert used < 0.5, f"the worker spins while Redis is away: {used:.2f} s of CPU in 2 s"


def test_kill_storm(start_worker):
    """2,000 jobs, 3 workers of 2 children, 20+ SIGKILLs of busy workers: every job ends
    succeeded exactly once; side effects at least once; nothing left leased."""
    import random

    from jobqueue.engine import JobSpec

    engine = get_engine()
    total = 2000
    specs = [JobSpec("tests.sample_tasks.count_effect", [0.01]) for _ in range(total)]
    jobs = engine.enqueue_many(specs)
    env = {"JOBQUEUE_LEASE_SECONDS": "1", "JOBQUEUE_MAX_STALLS": "100"}
    workers = [start_worker("-c", "2", **env) for _ in range(3)]
    rng = random.Random(42)
    kills = 0
    deadline = time.monotonic() + 120
    while kills < 20 and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.1, 0.3))
        if engine.counts("default")[JobState.RUNNING] == 0:
            continue
        index = rng.randrange(len(workers))
        workers[index].signal_group(signal.SIGKILL)  # the parent and its children
        workers[index].wait(10)
        workers[index] = start_worker("-c", "2", **env)
        kills += 1
    assert kills >= 20

    def drained():
        counts = engine.counts("default")
        return counts[JobState.SUCCEEDED] == total and counts[JobState.RUNNING] == 0

    wait_for(drained, timeout=120, interval=0.2, message=str(engine.counts("default")))
    for worker in workers:
        worker.signal(signal.SIGTERM)
    counts = engine.counts("default")
    assert counts[JobState.QUEUED] == counts[JobState.SCHEDULED] == counts[JobState.FAILED] == 0
    assert engine.client.zcard(engine.keys.queue("default").leases) == 0
    effects = {k.decode(): int(v) for k, v in engine.client.hgetall(t.key("effects")).items()}
    assert set(effects) == {j.id for j in jobs} and min(effects.values()) >= 1
    succeeded_events: dict[str, int] = {}
    for _, fields in engine.client.xrange(engine.keys.queue("default").events):
        if fields[b"s"] == b"succeeded":
            local = fields[b"id"].decode()
            succeeded_events[local] = succeeded_events.get(local, 0) + 1
    assert len(succeeded_events) == total and set(succeeded_events.values()) == {1}
    print(f"kills={kills} reruns={sum(effects.values()) - total}")


def test_worker_exits_with_its_parent_process_group_gone(start_worker):
    """Children die with their parent: no job outlives the process renewing its lease."""
    worker = start_worker("-c", "2")
    job = t.pid.enqueue()
    wait_for(lambda: state(job) is JobState.SUCCEEDED)
    child_pid = t.pid.get_result(job.id).return_value
    worker.signal(signal.SIGKILL)  # only the parent
    worker.wait(10)

    def gone():
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, timeout=10, message="a child outlived its parent")


def test_capturing_job_logs_leaves_djangos_task_loggers_as_they_were():
    # Lowering the root level for the jobs' logs must not switch on Django's own
    # "Task started/finished" records in the worker (a cost per job, and output nobody asked for).
    import logging

    from jobqueue.worker import execution

    root = logging.getLogger()
    saved = root.level, dict(execution._capture)
    loggers = [logging.getLogger(name) for name in execution.TASK_LOGGERS]
    levels = [lg.level for lg in loggers]  # the demo's settings quiet Django 6's task logger
    try:
        for lg in loggers:
            lg.setLevel(logging.NOTSET)  # a site that did not configure them
        root.setLevel(logging.WARNING)
        execution._capture.clear()
        handler = execution._log_handler()
        assert (
            root.level == logging.getLevelName(jobqueue_settings.JOB_LOG_LEVEL) < logging.WARNING
        )
        assert all(not lg.isEnabledFor(logging.INFO) for lg in loggers)
        assert all(lg.isEnabledFor(logging.ERROR) for lg in loggers)  # failures still logged
        assert logging.getLogger("myapp.tasks").isEnabledFor(logging.INFO)  # jobs' own logs
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        execution._capture.clear()
        execution._capture.update(saved[1])
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def test_the_parents_poller_follows_its_readers():
    import multiprocessing

    from jobqueue.worker.pool import Poller

    poller = Poller()
    a_parent, a_child = multiprocessing.Pipe()
    b_read, b_write = os.pipe()
    try:
        assert poller.wait([a_parent, b_read], 0) == []
        a_child.send_bytes(b"x")
        assert poller.wait([a_parent, b_read], 1) == [a_parent]
        os.write(b_write, b"y")
        assert set(poller.wait([a_parent, b_read], 1)) == {a_parent, b_read}
        assert poller.wait([b_read], 1) == [b_read]  # a reader left out is not reported
        os.close(b_write)  # a closed other end (a process sentinel) is reported too
        os.read(b_read, 1)
        assert poller.wait([b_read], 1) == [b_read]
    finally:
        for conn in (a_parent, a_child):
            conn.close()
        os.close(b_read)
