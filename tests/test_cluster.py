"""``runworker`` on a real Redis Cluster (three primaries on loopback) behaves as on one Redis:
a burst worker exits once nothing is ready, a running worker blocks on each queue's wake list
(one BLPOP per hash slot, on the primary holding it) and picks up new jobs, schedules fire,
SIGTERM stops it, the mirror copies every job, and the API's steering works, all without a
cross-slot error. One cluster serves the whole module."""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from jobqueue import api
from jobqueue.conf import get_engine
from jobqueue.engine import JobSpec
from tests.conftest import ROOT, kill_and_read, new_prefix, wait_for
from tests.redis_topologies import RedisCluster
from tests.sample_tasks import recorded

pytestmark = [pytest.mark.slow, pytest.mark.topology]

QUEUES = ["default", "high", "low", "emails", "reports", "images", "sms"]  # settings_cluster
ORDER = "tests.sample_tasks.log_order"
SLOT_ERRORS = ("CROSSSLOT", "MOVED", "ASK ", "TRYAGAIN", "Traceback")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[RedisCluster]:
    server = RedisCluster(tmp_path_factory.mktemp("cluster")).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def migrated(cluster, tmp_path_factory) -> Path:
    """A migrated SQLite database, copied by each test that runs the mirror."""
    database = tmp_path_factory.mktemp("db") / "migrated.sqlite3"
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=site_env(cluster.url, "unused", database),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return database


@pytest.fixture
def site(cluster, migrated, settings, tmp_path) -> dict[str, str]:
    """This process and the workers it starts on the cluster, under a fresh prefix, with a
    database of their own."""
    prefix = new_prefix()
    settings.JOBQUEUE = {**settings.JOBQUEUE, "REDIS_URL": cluster.url, "PREFIX": prefix}
    database = tmp_path / "mirror.sqlite3"
    shutil.copy(migrated, database)
    return site_env(cluster.url, prefix, database)


def site_env(url: str, prefix: str, database: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_cluster",
        "JOBQUEUE_REDIS_URL": url,
        "JOBQUEUE_PREFIX": prefix,
        "JOBQUEUE_MIRROR": "1",
        "DATABASE_URL": f"sqlite:///{database}",
        "PYTHONWARNINGS": "error",
        **extra,
    }


def database_of(env: dict[str, str]) -> str:
    return env["DATABASE_URL"].removeprefix("sqlite:///")


def mirrored(env: dict[str, str]) -> dict[str, tuple[str, str]]:
    """The mirror's job rows: id -> (queue, status)."""
    with sqlite3.connect(database_of(env)) as db:
        rows = db.execute("SELECT id, queue, status FROM jobqueue_job").fetchall()
    return {job_id: (queue, status) for job_id, queue, status in rows}


def runworker(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "runworker", "--concurrency", "2", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_site_worker(env: dict[str, str], log: Any, *args: str) -> subprocess.Popen:
    """``runworker ARGS`` for the site, in a session of its own (killed with its children),
    writing to the open file ``log``."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "runworker", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def no_slot_errors(output: str) -> None:
    found = [line for line in output.splitlines() if any(e in line for e in SLOT_ERRORS)]
    assert not found, found[:5]


def enqueue_labels(labels: dict[str, str], **options) -> list[str]:
    """One ``log_order(label)`` job per label, on the label's queue; their ids."""
    specs = [JobSpec(ORDER, [label], queue=queue, **options) for label, queue in labels.items()]
    return [job.id for job in get_engine().enqueue_many(specs)]


def test_the_queues_lie_on_every_primary(site):
    engine = get_engine()
    slots = {engine.client.keyslot(engine.keys.queue(q).wake) for q in QUEUES}
    primaries = {engine.client.get_node_from_key(engine.keys.queue(q).wake).name for q in QUEUES}
    assert len(slots) == len(QUEUES)
    assert len(primaries) == 3


def test_burst_runs_every_job_once_mirrors_them_and_exits(site):
    labels = {f"{queue}-{i}": queue for queue in QUEUES for i in range(6)}
    ids = enqueue_labels(labels)
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=4)
    [deferred] = enqueue_labels({"deferred": "sms"}, run_after=later)

    started = time.monotonic()
    done = runworker(site, "--burst", *QUEUES)
    took = time.monotonic() - started

    assert done.returncode == 0, done.stderr[-2000:]
    no_slot_errors(done.stdout + done.stderr)
    assert took < 20  # before the fix it never exited; about 2 s here, start-up included
    assert sorted(recorded("order")) == sorted(labels)  # every job once, none twice
    assert "deferred" not in recorded("order")  # due in 4 s: left, as on one Redis
    assert get_engine().get(deferred).state == "scheduled"
    rows = mirrored(site)  # a burst worker leaves the database up to date
    assert {job_id: rows[job_id] for job_id in ids} == {
        job_id: (queue, "succeeded") for job_id, queue in zip(ids, labels.values(), strict=True)
    }
    assert rows[deferred] == ("sms", "scheduled")


def test_max_jobs_stops_after_n_across_primaries(site):
    labels = {f"n-{queue}": queue for queue in QUEUES}
    enqueue_labels(labels)
    done = runworker(site, "--no-mirror", "--max-jobs", "3", "-c", "1", "--prefetch", "1", *QUEUES)
    assert done.returncode == 0, done.stderr[-2000:]
    no_slot_errors(done.stdout + done.stderr)
    ran = recorded("order")
    assert len(ran) == 3 and set(ran) <= set(labels)
    assert sum(api.counts(queue)["queued"] for queue in QUEUES) == len(QUEUES) - 3


def blocked_in_blpop(cluster: RedisCluster) -> int:
    """How many primaries have a client blocked in BLPOP."""
    blocked = 0
    for node in cluster.nodes:
        with redis.Redis(port=node.port) as client:
            if any(c.get("cmd") == "blpop" for c in client.client_list()):
                blocked += 1
    return blocked


def test_a_running_worker_blocks_picks_up_jobs_fires_a_schedule_and_stops(site, cluster, tmp_path):
    schedule = '{"tick": {"task": "tests.sample_tasks.log_order", "every": 1, '
    schedule += '"args": ["tick"], "queue": "sms"}}'
    env = {**site, "JOBQUEUE_TEST_SCHEDULES": schedule}
    log = (tmp_path / "worker.log").open("w+")
    worker = start_site_worker(env, log, "--concurrency", "2", *QUEUES)
    try:
        # Idle, it waits in a BLPOP on every primary (each holds some queue's wake list).
        wait_for(lambda: blocked_in_blpop(cluster) == 3, timeout=20, message="no BLPOP")
        labels = {f"new-{queue}": queue for queue in QUEUES}
        started = time.monotonic()
        ids = enqueue_labels(labels)
        wait_for(lambda: set(labels) <= set(recorded("order")), timeout=10)
        assert time.monotonic() - started < 5  # woken, not found by a slow poll
        wait_for(lambda: "tick" in recorded("order"), timeout=10, message="no schedule ran")
        wait_for(
            lambda: all(mirrored(site).get(i, ("", ""))[1] == "succeeded" for i in ids),
            timeout=10,
            message="the mirror did not copy the jobs",
        )
        wait_for(
            lambda: schedule_row(site)[0].startswith("sms:"),
            timeout=10,
            message="the mirror did not copy the schedule's state",
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        output = kill_and_read([worker], log)
    assert "worker_stopped" in output, output[-2000:]
    no_slot_errors(output)
    assert sorted(label for label in recorded("order") if label != "tick") == sorted(labels)
    last_job, last_tick = schedule_row(site)
    assert get_engine().get(last_job).state == "succeeded"
    assert last_tick is not None


def schedule_row(env: dict[str, str]) -> tuple[str, str | None]:
    """The mirror's row of the schedule "tick": its last job and last tick."""
    with sqlite3.connect(database_of(env)) as db:
        rows = db.execute(
            "SELECT last_job, last_tick FROM jobqueue_schedule WHERE name = 'tick'"
        ).fetchall()
    return rows[0] if rows else ("", None)


def test_steering_through_the_api(site):
    boom = "tests.sample_tasks.boom"
    engine = get_engine()
    failed = [job.id for job in engine.enqueue_many([JobSpec(boom, queue=q) for q in QUEUES])]
    done = runworker(site, "--burst", "--no-mirror", *QUEUES)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {engine.get(i).state for i in failed} == {"failed"}

    api.retry(failed[0])  # one job
    assert engine.get(failed[0]).state == "queued"
    assert api.retry_all("high") == 1  # every failed job of a queue
    assert api.purge("low", "failed") == 1
    assert engine.find([failed[2]]) == []

    assert api.pause("sms") is True
    [paused] = enqueue_labels({"paused": "sms"})
    done = runworker(site, "--burst", "--no-mirror", *QUEUES)
    assert done.returncode == 0, done.stderr[-2000:]
    no_slot_errors(done.stdout + done.stderr)
    assert engine.get(paused).state == "queued"  # a paused queue is left alone
    assert {engine.get(i).state for i in failed[:2]} == {"failed"}  # ran again, failed

    assert api.resume("sms") is True
    done = runworker(site, "--burst", "--no-mirror", *QUEUES)
    assert done.returncode == 0, done.stderr[-2000:]
    assert engine.get(paused).state == "succeeded"
    assert api.counts("sms")["succeeded"] == 1
    assert recorded("order") == ["paused"]


def test_the_live_tail_waits_between_empty_reads_and_sees_every_queue(site):
    """The live feed's thread reads the tail in a loop: on a cluster (no XREAD BLOCK across
    slots) an empty read pauses instead of returning at once, and events of every queue come."""
    engine = get_engine()
    tail = engine.event_tail()
    enqueue_labels({"first": "default"})  # the queues exist, the tail starts at their end
    tail.follow_new_queues()
    started = time.monotonic()
    assert tail.read(block=True) == []
    assert time.monotonic() - started >= 0.09
    ids = enqueue_labels({f"seen-{queue}": queue for queue in QUEUES})
    tail.follow_new_queues()  # the queues that appeared since, from their first entry
    seen: set[str] = set()

    def every_one_seen() -> bool:
        seen.update(event.job_id for event in tail.read(block=True))
        return seen >= set(ids)

    wait_for(every_one_seen, timeout=5, message="the tail missed events")
    assert seen == set(ids)


def test_a_small_kill_storm_on_three_primaries(site, tmp_path):
    """300 jobs on three queues, one on each primary, two workers, one of them SIGKILLed (with
    its children) five times while busy: every job ends succeeded, its success recorded once,
    its side effect at least once; nothing left leased."""
    import random

    from jobqueue.engine import JobState
    from tests.sample_tasks import client, key

    engine = get_engine()
    one_per_primary: dict[str, str] = {}
    for queue in QUEUES:
        node = engine.client.get_node_from_key(engine.keys.queue(queue).wake).name
        one_per_primary.setdefault(node, queue)
    queues = list(one_per_primary.values())
    assert len(queues) == 3, one_per_primary
    specs = [
        JobSpec("tests.sample_tasks.count_effect", [0.01], queue=queues[i % 3]) for i in range(300)
    ]
    ids = [job.id for job in engine.enqueue_many(specs)]
    env = {**site, "JOBQUEUE_LEASE_SECONDS": "1", "JOBQUEUE_MAX_STALLS": "100"}
    log = (tmp_path / "workers.log").open("w+")
    args = ("--concurrency", "2", "--no-mirror", *queues)
    workers = [start_site_worker(env, log, *args) for _ in range(2)]
    rng = random.Random(7)
    kills = 0
    try:
        deadline = time.monotonic() + 60
        while kills < 5 and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.2, 0.4))
            if not any(engine.counts(q)[JobState.RUNNING] for q in queues):
                continue
            os.killpg(workers[0].pid, signal.SIGKILL)
            workers[0].wait(timeout=10)
            workers[0] = start_site_worker(env, log, *args)
            kills += 1
        assert kills == 5, "the jobs ran out before five kills"

        def succeeded() -> int:
            return sum(job.state == JobState.SUCCEEDED for job in engine.find(ids))

        wait_for(lambda: succeeded() == len(ids), timeout=60, message="jobs left unfinished")
    finally:
        output = kill_and_read(workers, log)
    for queue in queues:
        assert engine.client.zcard(engine.keys.queue(queue).leases) == 0
    effects = {k.decode(): int(v) for k, v in client().hgetall(key("effects")).items()}
    assert {job_id for job_id in ids if effects.get(job_id, 0) < 1} == set()
    done_events: dict[str, int] = {}
    for queue in queues:
        for _, fields in engine.client.xrange(engine.keys.queue(queue).events):
            if fields[b"s"] == b"succeeded":
                done_events[fields[b"id"].decode()] = (
                    done_events.get(fields[b"id"].decode(), 0) + 1
                )
    assert len(done_events) == len(ids) and set(done_events.values()) == {1}
    no_slot_errors(output)


def move_slot(cluster: RedisCluster, slot: int) -> tuple[int, int]:
    """Migrate ``slot`` (its keys too) to the next primary, as ``redis-cli --cluster reshard``
    does; returns the ports of the primary it left and of the one holding it now."""
    clients = [redis.Redis(port=node.port) for node in cluster.nodes]
    try:
        ids = [client.execute_command("CLUSTER", "MYID").decode() for client in clients]
        [source] = [
            i
            for i, c in enumerate(clients)
            if c.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
        ]
        target = (source + 1) % len(clients)
        src, dst = clients[source], clients[target]
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            src.migrate("127.0.0.1", cluster.nodes[target].port, keys, 0, 5000)
        for client in clients:
            client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
        return cluster.nodes[source].port, cluster.nodes[target].port
    finally:
        for client in clients:
            client.close()


def test_a_worker_follows_its_queue_to_another_primary(site, cluster, tmp_path):
    """Last in the module: it moves a queue's slot (resharding). The worker's BLPOP there is
    refused (MOVED); it reloads the slot map and blocks on the primary holding the slot now."""
    engine = get_engine()
    slot = engine.client.keyslot(engine.keys.queue("images").wake)
    enqueue_labels({"before": "images"})  # the queue has keys to migrate
    log = (tmp_path / "worker.log").open("w+")
    worker = start_site_worker(site, log, "--concurrency", "1", "--no-mirror", "images")
    try:
        wait_for(lambda: recorded("order") == ["before"], timeout=20)
        wait_for(lambda: blocked_in_blpop(cluster) == 1, timeout=10, message="no BLPOP")
        left, now_at = move_slot(cluster, slot)

        def blocked_at(port: int) -> bool:
            with redis.Redis(port=port) as client:
                return any(c.get("cmd") == "blpop" for c in client.client_list())

        wait_for(lambda: blocked_at(now_at) and not blocked_at(left), timeout=10)
        enqueue_labels({"after": "images"})
        wait_for(lambda: recorded("order") == ["before", "after"], timeout=10)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        output = kill_and_read([worker], log)
    assert "Traceback" not in output, output[-2000:]


def test_a_queue_migrated_while_its_jobs_run_loses_and_repeats_nothing(site, cluster, tmp_path):
    """Last too: the slot of a queue whose jobs are running moves to another primary, its
    keys a hundred at a time (the slot MIGRATING on one side and IMPORTING on the other, so
    scripts meet ASK and TRYAGAIN replies on the way). Every job runs once, ends succeeded,
    and the mirror's rows say so."""
    from tests.sample_tasks import client, key

    engine = get_engine()
    slot = engine.client.keyslot(engine.keys.queue("sms").wake)
    specs = [JobSpec("tests.sample_tasks.count_effect", [0.01], queue="sms") for _ in range(300)]
    ids = [job.id for job in engine.enqueue_many(specs)]
    log = (tmp_path / "worker.log").open("w+")
    worker = start_site_worker(site, log, "--concurrency", "2", "sms")

    def succeeded() -> int:
        return sum(job.state == "succeeded" for job in engine.find(ids))

    try:
        wait_for(lambda: succeeded() >= 30, timeout=30, message="the worker never started")
        moved_at = succeeded()
        move_slot(cluster, slot)
        assert moved_at < len(ids), "every job ran before the slot moved: nothing was tested"
        wait_for(lambda: succeeded() == len(ids), timeout=60, message="jobs left unfinished")
        effects = client().hgetall(key("effects"))
        counts = {job_id: int(effects.get(job_id.encode(), 0)) for job_id in ids}
        assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
        wait_for(
            lambda: (
                sum(status == "succeeded" for _, status in mirrored(site).values()) >= len(ids)
            ),
            timeout=30,
            message="the mirror's rows lag",
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        output = kill_and_read([worker], log)
    assert "Traceback" not in output, output[-3000:]
