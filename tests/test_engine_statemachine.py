"""A Hypothesis state machine drives the real scripts against a plain Python model.

After every step it checks: each job is in exactly one state (one state set, matching its
hash); running <=> leased; fence tokens strictly increase; stale calls change nothing; no job
disappears except by purge.

Hypothesis needs every run of the same draws to take the same path. The engine breaks ties
between jobs with equal scores by their ids (two jobs put back at the front of their priority,
two retries due in the same millisecond), and its own ids are random; so the machine names its
jobs itself, in creation order, and every tie is broken the same way each time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from jobqueue.engine import Engine, EngineConfig, JobState, TaskRegistry
from jobqueue.engine.errors import InvalidTransition, LeaseLost
from tests.conftest import REDIS_URL, KeySpace, new_prefix

QUEUE = "sm"
MAX_STALLS = 2


@dataclass
class Model:
    state: JobState
    priority: int
    max_attempts: int
    unique: str | None
    deferred: bool = False  # scheduled far in the future (not a retry)
    attempts: int = 0
    att0: int = 0
    stalls: int = 0
    token: str | None = None
    short_lease: bool = False
    cancel: bool = False
    stale_tokens: list[str] = field(default_factory=list)


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.space = KeySpace(REDIS_URL, new_prefix())
        registry = TaskRegistry()
        registry.register("sm.task", lambda: None)
        config = EngineConfig(prefix=self.space.prefix, max_stalls=MAX_STALLS)
        self.client = redis.Redis.from_url(REDIS_URL)
        self.engine = Engine(self.client, config, registry)
        self.protocol = self.engine.worker_protocol()
        self.jobs: dict[str, Model] = {}
        self.holders: dict[str, str] = {}  # unique key -> id of the job holding it
        self.last_fence = 0
        self.created = 0  # the next job's number: its id, so ties sort in creation order

    def teardown(self) -> None:
        self.space.cleanup()
        self.space.close()
        self.client.close()

    # -- helpers --------------------------------------------------------------------------

    def in_state(self, *states: JobState) -> list[str]:
        return [j for j, m in self.jobs.items() if m.state in states]  # creation order

    def raw(self, job_id: str) -> dict:
        return self.client.hgetall(self.engine.keys.queue(QUEUE).job(job_id.split(":")[1]))

    def end(self, job_id: str, state: JobState) -> None:
        m = self.jobs[job_id]
        m.state, m.token, m.short_lease, m.cancel = state, None, False, False
        if m.unique and self.holders.get(m.unique) == job_id:
            del self.holders[m.unique]

    # -- rules ----------------------------------------------------------------------------

    @rule(
        priority=st.integers(-2, 2),
        max_attempts=st.integers(1, 3),
        unique=st.none() | st.sampled_from(["u1", "u2"]),
        deferred=st.booleans(),
    )
    def enqueue(self, priority, max_attempts, unique, deferred):
        run_after = datetime.now(UTC) + timedelta(hours=1) if deferred else None
        holder = self.holders.get(unique) if unique else None
        self.created += 1
        job = self.engine.enqueue(
            "sm.task",
            queue=QUEUE,
            priority=priority,
            max_attempts=max_attempts,
            unique_key=unique,
            run_after=run_after,
            job_id=f"{QUEUE}:{self.created:06d}",
        )
        if holder:
            assert job.id == holder
            return
        assert job.id not in self.jobs
        state = JobState.SCHEDULED if deferred else JobState.QUEUED
        self.jobs[job.id] = Model(state, priority, max_attempts, unique, deferred=deferred)
        if unique:
            self.holders[unique] = job.id

    @rule(count=st.integers(1, 4), short=st.booleans())
    def claim(self, count, short):
        for m in self.jobs.values():  # retries with delay 0 are due: the claim promotes them
            if m.state is JobState.SCHEDULED and not m.deferred:
                m.state = JobState.QUEUED
        ready = self.in_state(JobState.QUEUED)
        batch = self.protocol.claim(QUEUE, "w", count=count, lease=0.001 if short else 60)
        assert len(batch.jobs) == min(count, len(ready))
        claimed_prios = []
        for c in batch.jobs:
            m = self.jobs[c.job_id]
            assert m.state is JobState.QUEUED
            token = int(c.token)
            assert token > self.last_fence  # the fence grows on every claim
            self.last_fence = token
            m.state, m.token, m.short_lease = JobState.RUNNING, c.token, short
            m.attempts += 1
            assert c.job.attempts == m.attempts
            claimed_prios.append(m.priority)
        left = [self.jobs[j].priority for j in self.in_state(JobState.QUEUED)]
        if claimed_prios and left:
            assert min(claimed_prios) >= max(left)

    def _running(self):
        return self.in_state(JobState.RUNNING)

    @precondition(lambda self: self._running())
    @rule(data=st.data(), stale=st.booleans())
    def renew(self, data, stale):
        job_id = data.draw(st.sampled_from(self._running()))
        m = self.jobs[job_id]
        token = "0" if stale else m.token
        before = self.raw(job_id)
        renewal = self.protocol.renew(QUEUE, [(job_id.split(":")[1], token)], lease=60)
        if stale:
            assert renewal.renewed == {job_id.split(":")[1]: False}
            assert self.raw(job_id) == before
        elif m.short_lease and not renewal.renewed[job_id.split(":")[1]]:
            pass  # pragma: no cover - a 1 ms lease may have been reaped meanwhile (never here)
        else:
            assert renewal.renewed[job_id.split(":")[1]]
            m.short_lease = False

    @precondition(lambda self: self._running())
    @rule(data=st.data(), stale=st.booleans())
    def complete(self, data, stale):
        job_id = data.draw(st.sampled_from(self._running()))
        m = self.jobs[job_id]
        if stale:
            before = self.raw(job_id)
            with pytest.raises(LeaseLost):
                self.protocol.complete(job_id, str(self.last_fence + 1000), "stale")
            assert self.raw(job_id) == before
            return
        self.protocol.complete(job_id, m.token, "ok")
        self.end(job_id, JobState.SUCCEEDED)

    @precondition(lambda self: self._running())
    @rule(data=st.data(), stale=st.booleans())
    def fail(self, data, stale):
        job_id = data.draw(st.sampled_from(self._running()))
        m = self.jobs[job_id]
        if stale:
            before = self.raw(job_id)
            with pytest.raises(LeaseLost):
                self.protocol.fail(job_id, "0", "x.E", "tb", delay=0)
            assert self.raw(job_id) == before
            return
        state = self.protocol.fail(job_id, m.token, "x.E", "tb", delay=0)
        if m.cancel:
            expected = JobState.CANCELED
        elif m.attempts - m.att0 - m.stalls < m.max_attempts:
            expected = JobState.SCHEDULED
        else:
            expected = JobState.FAILED
        assert state is expected
        m.stale_tokens.append(m.token)
        if expected is JobState.SCHEDULED:
            m.state, m.token, m.short_lease, m.deferred = expected, None, False, False
        else:
            self.end(job_id, expected)

    @precondition(lambda self: self._running())
    @rule(data=st.data())
    def release(self, data):
        job_id = data.draw(st.sampled_from(self._running()))
        m = self.jobs[job_id]
        state = self.protocol.release(job_id, m.token)
        m.stale_tokens.append(m.token)
        if m.cancel:
            assert state is JobState.CANCELED
            self.end(job_id, JobState.CANCELED)
        else:
            assert state is JobState.QUEUED
            m.state, m.token, m.short_lease = JobState.QUEUED, None, False
            m.attempts -= 1

    @rule()
    def reap(self):
        expiring = [j for j in self._running() if self.jobs[j].short_lease]
        if expiring:
            time.sleep(0.003)
        requeued, ended = self.protocol.reap(QUEUE)
        assert sorted(requeued + ended) == sorted(expiring)
        for job_id in expiring:
            m = self.jobs[job_id]
            m.stale_tokens.append(m.token)
            m.stalls += 1
            if m.cancel:
                self.end(job_id, JobState.CANCELED)
            elif m.stalls >= MAX_STALLS:
                self.end(job_id, JobState.FAILED)
            else:
                m.state, m.token, m.short_lease = JobState.QUEUED, None, False
            assert (job_id in requeued) == (m.state is JobState.QUEUED)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def cancel(self, data):
        job_id = data.draw(st.sampled_from(list(self.jobs)))
        m = self.jobs[job_id]
        if m.state in (JobState.QUEUED, JobState.SCHEDULED):
            assert self.engine.cancel(job_id) == "canceled"
            self.end(job_id, JobState.CANCELED)
        elif m.state is JobState.RUNNING:
            assert self.engine.cancel(job_id) == "requested"
            m.cancel = True
        else:
            before = self.raw(job_id)
            with pytest.raises(InvalidTransition):
                self.engine.cancel(job_id)
            assert self.raw(job_id) == before

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def retry(self, data):
        job_id = data.draw(st.sampled_from(list(self.jobs)))
        m = self.jobs[job_id]
        if m.state in (JobState.FAILED, JobState.CANCELED):
            self.engine.retry(job_id)
            m.state, m.att0, m.stalls, m.deferred = JobState.QUEUED, m.attempts, 0, False
            if m.unique and m.unique not in self.holders:
                self.holders[m.unique] = job_id
        else:
            with pytest.raises(InvalidTransition):
                self.engine.retry(job_id)

    @rule(
        state=st.sampled_from(
            [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED, JobState.QUEUED]
        )
    )
    def purge(self, state):
        if state is JobState.QUEUED:  # queued includes due retries only after promotion
            return
        gone = self.in_state(state)
        assert self.engine.purge(QUEUE, state) == len(gone)
        for job_id in gone:
            del self.jobs[job_id]
        self.holders = {u: j for u, j in self.holders.items() if j in self.jobs}

    @precondition(lambda self: any(m.stale_tokens for m in self.jobs.values()))
    @rule(data=st.data())
    def stale_worker_comes_back(self, data):
        job_id = data.draw(st.sampled_from([j for j, m in self.jobs.items() if m.stale_tokens]))
        m = self.jobs[job_id]
        token = m.stale_tokens[-1]
        before = self.raw(job_id)
        with pytest.raises(LeaseLost):
            self.protocol.complete(job_id, token, "late")
        with pytest.raises(LeaseLost):
            self.protocol.progress(job_id, token, 1, 1)
        with pytest.raises(LeaseLost):
            self.protocol.release(job_id, token)
        assert self.raw(job_id) == before

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def every_job_in_exactly_one_state(self):
        qk = self.engine.keys.queue(QUEUE)
        sets = {
            JobState.SCHEDULED: qk.scheduled,
            JobState.QUEUED: qk.ready,
            JobState.RUNNING: qk.leases,
            JobState.SUCCEEDED: qk.succeeded,
            JobState.FAILED: qk.failed,
            JobState.CANCELED: qk.canceled,
        }
        pipe = self.client.pipeline()
        for key in sets.values():
            pipe.zrange(key, 0, -1)
        members = {
            state: {m.decode() for m in ids}
            for state, ids in zip(sets, pipe.execute(), strict=True)
        }
        all_ids = set().union(*members.values())
        model_ids = {j.split(":")[1] for j in self.jobs}
        assert all_ids == model_ids  # nothing vanished, nothing extra
        for job_id, m in self.jobs.items():
            local = job_id.split(":")[1]
            holders = [s for s, ids in members.items() if local in ids]
            expected = m.state
            assert holders == [expected], (job_id, holders, m)
            raw = self.raw(job_id)
            assert raw[b"state"].decode() == expected.value
            running = expected is JobState.RUNNING
            assert (b"token" in raw and b"lease" in raw) == running
            if running:
                assert raw[b"token"].decode() == m.token


EngineMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineStateMachine = EngineMachine.TestCase
