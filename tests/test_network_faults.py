"""Workers behind network faults (``tests/fault_proxy.py`` between the worker and a private
Redis): connections reset, latency, Redis out of reach longer than a lease, one direction
cut. Each fault is bounded in time; the worker lives through all of them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jobqueue.conf import get_engine
from jobqueue.engine import Engine, EngineConfig, JobState
from jobqueue.engine.transport.connection import create_client
from tests import sample_tasks  # noqa: F401 - registers the tasks enqueued here
from tests.conftest import wait_for
from tests.fault_proxy import FaultProxy

pytestmark = pytest.mark.slow

LEASE = 2.0
SOCKET_TIMEOUT = 5.5  # the shortest allowed: a read that hears nothing gives up sooner


@pytest.fixture
def proxied(private_redis):
    """A fault proxy in front of the private Redis, and an engine straight to that Redis."""
    port = private_redis.port
    engine = Engine(
        create_client(private_redis.url), EngineConfig(prefix="jq"), get_engine().registry
    )
    with FaultProxy(("127.0.0.1", port)) as proxy:
        yield proxy, engine
    engine.client.close()


def attempts(directory: Path) -> dict[int, tuple[float, float]]:
    """Each attempt's fence token -> (when it started, its last stamp)."""
    out = {}
    for start in directory.glob("*.start"):
        token = int(start.name.split(".")[0])
        stamps = directory / str(token)
        last = float(stamps.read_text()) if stamps.exists() else float(start.read_text())
        out[token] = (float(start.read_text()), last)
    return out


@pytest.mark.parametrize("fault", ["blackhole", "requests", "replies"])
def test_a_worker_cut_off_past_its_lease_stops_its_job_before_another_attempt_starts(
    fault, proxied, private_redis, start_worker, tmp_path
):
    """Worker A reaches Redis through the proxy; it is cut off (both ways, or one) for longer
    than its lease. A stops its job before the lease ends; worker B, straight to Redis, runs
    the job again, and the two attempts' side effects never overlap in time."""
    proxy, engine = proxied
    effects = tmp_path / "effects"
    effects.mkdir()
    job = engine.enqueue("tests.sample_tasks.stamp_attempt", [str(effects), 4])
    env = {
        "JOBQUEUE_PREFIX": "jq",
        "JOBQUEUE_LEASE_SECONDS": str(LEASE),
        "JOBQUEUE_REDIS_SOCKET_TIMEOUT": str(SOCKET_TIMEOUT),
    }
    worker_a = start_worker("-c", "1", "--no-mirror", JOBQUEUE_REDIS_URL=proxy.url, **env)
    wait_for(lambda: attempts(effects), message="the job never started on worker A")
    time.sleep(0.3)  # a renewal or two went through
    cut_at = time.time()
    if fault == "blackhole":
        proxy.blackhole()
    else:
        proxy.cut(fault)
    worker_b = start_worker("-c", "1", "--no-mirror", JOBQUEUE_REDIS_URL=private_redis.url, **env)
    try:
        wait_for(lambda: engine.get(job.id).state == JobState.SUCCEEDED, timeout=30)
    except AssertionError:
        raise AssertionError(
            f"{engine.get(job.id)}\nA: {worker_a.output()}\nB: {worker_b.output()}"
        ) from None
    runs = attempts(effects)
    assert len(runs) == 2, runs
    (first, (_, a_last)), (second, (b_start, _)) = sorted(runs.items())
    assert second > first
    # A renewed at most LEASE seconds before the cut: its lease ended by cut_at + LEASE.
    assert a_last < cut_at + LEASE, (
        f"worker A's attempt ran {a_last - cut_at:.2f} s after the cut, past its lease"
        f"\n{worker_a.output()}"
    )
    assert b_start > a_last, "the two attempts overlapped"
    assert engine.get(job.id).attempts == 2
    proxy.restore()
    # A's loop waited on Redis meanwhile (up to twice its socket timeout): it says so after.
    try:
        wait_for(lambda: "self_fenced" in worker_a.output(), timeout=2 * SOCKET_TIMEOUT + 5)
    except AssertionError:
        raise AssertionError(f"A never said it fenced itself:\n{worker_a.output()}") from None
    assert worker_a.process.poll() is None, worker_a.output()  # A lives on


def test_resets_and_latency_lose_nothing(proxied, start_worker):
    """Every connection of the worker reset three times, then 20 ms of latency each way:
    the worker reconnects by itself, and every job succeeds."""
    proxy, engine = proxied
    env = {"JOBQUEUE_PREFIX": "jq", "JOBQUEUE_LEASE_SECONDS": str(LEASE)}
    worker = start_worker("-c", "2", "--no-mirror", JOBQUEUE_REDIS_URL=proxy.url, **env)
    ids = [engine.enqueue("tests.sample_tasks.add", [n, 1]).id for n in range(20)]
    wait_for(lambda: engine.counts("default")[JobState.SUCCEEDED] == 20, timeout=30)
    resets = 0
    for _ in range(3):
        ids += [engine.enqueue("tests.sample_tasks.add", [n, 2]).id for n in range(20)]
        resets += proxy.reset()
        time.sleep(0.3)
    proxy.delay(0.02)
    ids += [engine.enqueue("tests.sample_tasks.add", [n, 3]).id for n in range(20)]

    def all_done() -> bool:
        return all(job.state == JobState.SUCCEEDED for job in engine.find(ids))

    try:
        wait_for(all_done, timeout=40)
    except AssertionError:
        raise AssertionError(f"{engine.counts('default')}\n{worker.output()}") from None
    assert resets >= 3  # the worker's connections were there to reset
    assert [job.result for job in engine.find(ids[:20])] == [n + 1 for n in range(20)]
    assert worker.process.poll() is None, worker.output()
