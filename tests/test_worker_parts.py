"""The worker parent's parts, built and driven in this process (no worker process): when to
claim (Readiness), the outcomes waiting to be recorded (OutcomeBuffer), and the round trip
(Exchange) between a real Redis and children that are only pipes here."""

from __future__ import annotations

import time

import pytest

from jobqueue.engine import JobState, codec
from jobqueue.worker.exchange import Exchange
from jobqueue.worker.gate import Gate
from jobqueue.worker.handoff import Handoff, WorkerStats
from jobqueue.worker.outcomes import FLUSH_DELAY, OutcomeBuffer
from jobqueue.worker.pipe import Pipe
from jobqueue.worker.pool import Child, Pool
from jobqueue.worker.prefetch import START, PrefetchPolicy
from jobqueue.worker.readiness import Readiness


def test_readiness_claims_until_dry_then_waits_for_a_wake_or_a_due_job():
    ready = Readiness()
    assert ready.claimable(now=100.0)
    ready.ran_dry()
    assert not ready.claimable(now=100.0)
    ready.due(105.0)
    ready.due(103.0)  # the earliest due job counts
    assert ready.due_within(100.0, 5) and not ready.due_within(100.0, 2)
    assert not ready.claimable(now=102.9)
    assert ready.claimable(now=103.0) and ready.next_due is None
    ready.back_off(now=103.0, seconds=1.0)  # a Redis error
    assert not ready.claimable(now=103.5) and ready.claimable(now=104.0)
    ready.ran_dry()
    ready.wake()
    assert ready.claimable(now=104.0)


class FakeChildren:
    """A pool whose children are pipes only: what the parent sends, the test reads."""

    def __init__(self, count: int) -> None:
        self.pool = Pool(count)
        self.ends: dict[int, Pipe] = {}
        for index in range(count):
            parent_end, child_end = Pipe.pair()
            self.pool.children[index] = Child(index, None, parent_end, Gate())
            self.ends[index] = child_end

    def received(self, index: int) -> list[str]:
        return [m["id"] for data in self.ends[index].messages() for m in codec.loads(data)]

    def close(self) -> None:
        for child in self.pool.children.values():
            child.pipe.close()
        for end in self.ends.values():
            end.close()


@pytest.fixture
def children():
    fake = FakeChildren(2)
    yield fake
    fake.close()


def exchange_for(protocol, pool, max_jobs=None):
    stats, prefetch = WorkerStats(), PrefetchPolicy(32)
    handoff = Handoff(protocol, "w1", ("default",), 3.0, pool, stats)
    outcomes, readiness = OutcomeBuffer(), Readiness()
    return Exchange(
        protocol, "w1", ("default",), max_jobs, pool, prefetch, outcomes, handoff, readiness, stats
    )


def test_a_round_trip_claims_what_the_children_have_room_for(engine, protocol, children):
    ids = [engine.enqueue("tests.noop").id for _ in range(20)]
    exchange = exchange_for(protocol, children.pool)
    assert exchange.wanted(stopping=False) == 2 * START  # nothing ran yet: START each
    exchange.run(stopping=False)
    got = children.received(0) + children.received(1)
    assert sorted(got) == sorted(ids[: 2 * START]) and exchange.stats.claimed == 2 * START
    assert len(children.pool.children[0].jobs) == len(children.pool.children[1].jobs) == START
    assert exchange.wanted(stopping=False) == 0  # no room left
    assert exchange.wanted(stopping=True) == 0


def test_outcomes_wait_for_company_then_go_in_one_round_trip(engine, protocol, children):
    for _ in range(3):
        engine.enqueue("tests.noop")
    exchange = exchange_for(protocol, children.pool)
    exchange.run(stopping=False)
    outcomes = exchange.outcomes
    held = [job for child in children.pool.children.values() for job in child.jobs]
    assert len(held) == 3
    first, second, third = held
    outcomes.add(first, {"id": first.job_id, "ok": True, "result": "null"})
    now = time.monotonic()
    assert not outcomes.due(now, in_flight=True, stopping=False)  # waits for company
    outcomes.add(
        second, {"id": second.job_id, "ok": False, "exc": "x.E", "tb": "tb", "retry": False}
    )
    assert outcomes.due(now + 2 * FLUSH_DELAY, in_flight=True, stopping=False)
    assert outcomes.due(now, in_flight=False, stopping=False)  # nothing left to wait for
    outcomes.add(third, {"id": third.job_id, "skipped": True})  # a release goes at once
    assert outcomes.due(now, in_flight=True, stopping=False)
    for child in children.pool.children.values():
        child.jobs.clear()
    exchange.run(stopping=False)
    assert not outcomes.pending
    assert (exchange.stats.succeeded, exchange.stats.failed) == (1, 1)
    assert engine.get(first.job_id).state is JobState.SUCCEEDED
    assert engine.get(second.job_id).state is JobState.FAILED
    assert engine.get(third.job_id).state is JobState.QUEUED  # given back, attempt not counted
    assert engine.get(third.job_id).attempts == 0
    assert exchange.readiness.maybe_ready  # a job went back: claim again


def test_a_stale_outcome_is_refused_and_counted_as_nothing(engine, protocol, children):
    engine.enqueue("tests.noop")
    exchange = exchange_for(protocol, children.pool)
    exchange.run(stopping=False)
    [job] = [job for child in children.pool.children.values() for job in child.jobs]
    engine.delete(job.job_id)  # its lease is gone: the outcome must not be written
    exchange.outcomes.add(job, {"id": job.job_id, "ok": True, "result": "1"})
    recorded = exchange.outcomes.recorded(*_round_trip(protocol, exchange.outcomes))
    assert (recorded.succeeded, recorded.failed) == (0, 0)


def _round_trip(protocol, outcomes):
    calls, read = outcomes.calls(protocol)
    replies = protocol.run_batch(calls, raise_errors=False)
    finishing = len(calls) - len(outcomes.releases) - len(outcomes.abandons)
    return read, replies[:finishing], replies[finishing:]


def test_a_dry_queue_makes_the_exchange_wait_to_be_woken(engine, protocol, children):
    exchange = exchange_for(protocol, children.pool)
    exchange.run(stopping=False)
    assert not exchange.readiness.maybe_ready and exchange.stats.claimed == 0
    assert exchange.wanted(stopping=False) == 0  # until a wake-up
    engine.enqueue("tests.noop", run_after=None)
    exchange.readiness.wake()
    exchange.run(stopping=False)
    assert exchange.stats.claimed == 1


def test_max_jobs_caps_what_is_claimed(engine, protocol, children):
    for _ in range(10):
        engine.enqueue("tests.noop")
    exchange = exchange_for(protocol, children.pool, max_jobs=3)
    exchange.run(stopping=False)
    assert exchange.stats.claimed == 3 and exchange.capacity(stopping=False) == 0


def test_a_child_holding_an_unannounced_job_counts_as_busy_until_it_expires():
    ours, theirs = Pipe.pair()
    child = Child(0, None, ours, Gate())
    assert child.held(now=10.0) == 0
    child.unannounced_until = 15.0
    assert child.held(now=12.0) == 1
    assert child.held(now=16.0) == 0 and child.unannounced_until is None
    ours.close()
    theirs.close()


def test_a_process_forked_after_the_listener_is_armed_closes_its_connection():
    """A child (or side process) forked while the parent waits in BLPOP must not keep that
    connection open: once the parent closed its own, the BLPOP would take a wake-up nobody
    reads."""
    from jobqueue.conf import get_engine
    from jobqueue.worker import Worker, WorkerOptions

    worker = Worker(get_engine(), WorkerOptions(("default",), 1, "fds-1"))
    try:
        before = worker._parent_fds()
        assert before == [worker.wake_r.fileno(), worker.wake_w.fileno()]
        [listener] = worker.listeners
        assert listener.arm()
        assert worker._parent_fds() == [*before, listener.fileno()]
    finally:
        worker.listeners[0].close()
        worker.wake_r.close()
        worker.wake_w.close()
