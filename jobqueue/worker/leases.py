"""The worker parent's care of the leases it holds: renewing them (and seeing cancel
requests), reaping the expired leases of dead workers, stopping jobs past their timeout, and
fencing itself when a lease can no longer be renewed: a job whose lease may end before it can
be renewed (Redis unreachable) has its child killed first, so two attempts of one job never
overlap."""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass

from ..engine.errors import JobqueueError
from ..engine.protocol import WorkerProtocol
from .fence_alarm import FenceAlarm
from .outcomes import OutcomeBuffer
from .pool import Child, InFlight, Pool
from .prefetch import PrefetchPolicy
from .readiness import Readiness

logger = logging.getLogger("jobqueue.worker")


@dataclass(eq=False)
class LeaseKeeper:
    protocol: WorkerProtocol
    queues: tuple[str, ...]
    pool: Pool
    outcomes: OutcomeBuffer
    readiness: Readiness
    prefetch: PrefetchPolicy
    timeout_grace: float  # hard kill this long after a job's soft timeout
    next_renew: float = 0.0  # when to renew the leases (monotonic)
    next_reap: float = 0.0  # when to reap expired leases
    next_fence: float = 0.0  # when to look for leases about to end unrenewed

    def __post_init__(self) -> None:
        lease = self.lease = self.protocol.config.lease_seconds
        self.renew_every = lease / 3
        self.reap_every = min(lease / 2, 5.0)
        self.fence_margin = min(2.0, lease / 4)
        # Fences while the loop is held up in a Redis call (fence_alarm.py).
        self.alarm = FenceAlarm(self.pool, self.fence_margin)

    def due_in(self, now: float) -> float:
        """Seconds until the next renewal or reaping."""
        return min(self.next_renew, self.next_reap) - now

    def tick(self, now: float, stopping: bool) -> None:
        """Whatever is due: renew, reap, enforce timeouts, fence (a stopping worker does not
        replace the children it kills)."""
        self.handle_alarm(stopping)
        if now >= self.next_renew:
            self.next_renew = now + self.renew_every
            self.renew(stopping)
        if now >= self.next_reap:
            self.next_reap = now + self.reap_every
            self.reap()
        self.enforce_timeouts(stopping)
        if now >= self.next_fence:  # every loop would scan every job held, once per job done
            self.next_fence = now + self.fence_margin / 4
            self.fence(stopping)
            self.alarm.arm()

    def renew(self, stopping: bool = False) -> None:
        by_queue: dict[str, list[InFlight]] = {}
        for job in self.pool.in_flight():
            by_queue.setdefault(job.claimed.queue, []).append(job)
        for queue, jobs in by_queue.items():
            started = time.monotonic()
            try:
                renewal = self.protocol.renew(
                    queue, [(j.claimed.local_id, j.claimed.token) for j in jobs], lease=self.lease
                )
            except JobqueueError as exc:
                logger.warning("renew_failed queue=%s jobs=%d error=%s", queue, len(jobs), exc)
                continue
            finally:
                self.handle_alarm(stopping)  # the call may have waited long on Redis
            for job in jobs:
                if self.pool.holder(job) is None:  # fenced meanwhile
                    continue
                local_id = job.claimed.local_id
                if renewal.renewed.get(local_id):
                    job.local_deadline = started + (renewal.deadline_ms - renewal.now_ms) / 1000
                    if local_id in renewal.cancel_requested:
                        self._cancel(job)
                else:
                    self._lease_lost(job)

    def _cancel(self, job: InFlight) -> None:
        child = self.pool.holder(job)
        if child is not None and child.jobs and child.jobs[0] is job:
            logger.info("job_cancel_requested job=%s child=%d", job.job_id, child.index)
            child.signal(signal.SIGUSR1)

    def _lease_lost(self, job: InFlight) -> None:
        """Someone else owns the job now (reaped, deleted): stop our attempt at once."""
        child = self.pool.holder(job)
        logger.warning("lease_lost job=%s", job.job_id)
        if child is None:
            return
        jobs = self.pool.kill(child)
        self.outcomes.release([j for j in jobs if j is not job])
        self.pool.spawn(child.index)

    def reap(self) -> None:
        """Requeue the jobs of workers whose leases expired (any live worker does this)."""
        for queue in self.queues:
            try:
                requeued, ended = self.protocol.reap(queue)
            except JobqueueError as exc:
                logger.warning("reap_failed queue=%s error=%s", queue, exc)
                return
            if requeued or ended:
                logger.warning(
                    "reaped queue=%s requeued=%d dead=%d", queue, len(requeued), len(ended)
                )
                self.readiness.wake()

    def enforce_timeouts(self, stopping: bool) -> None:
        """Kill the child of a job past its timeout (plus the grace its own alarm had): the
        job fails with JobTimeout, the jobs behind it go back."""
        now = time.monotonic()
        for child in list(self.pool.children.values()):
            if not child.jobs or child.current_since is None:
                continue
            job = child.jobs[0]
            if job.timeout is None or now - child.current_since < job.timeout + self.timeout_grace:
                continue
            logger.error(
                "job_timeout job=%s timeout=%s child=%d killed",
                job.job_id,
                job.timeout,
                child.index,
            )
            self.prefetch.ran(now - child.current_since)  # it counts like any other job
            jobs = self.pool.kill(child)
            self.outcomes.fail(
                job,
                "jobqueue.exceptions.JobTimeout",
                f"The job ran longer than its timeout of {job.timeout} seconds; its process "
                "was killed.",
            )
            self.outcomes.release(jobs[1:])
            if not stopping:
                self.pool.spawn(child.index)

    def fence(self, stopping: bool) -> None:
        """Kill any child holding a job whose lease may end before it can be renewed."""
        now = time.monotonic()
        for child in list(self.pool.children.values()):
            if any(j.local_deadline - self.fence_margin <= now for j in child.jobs):
                self.fenced(child, stopping)

    def handle_alarm(self, stopping: bool) -> None:
        """Handle the children the alarm killed as fenced."""
        if self.alarm.killed:
            for child in list(self.pool.children.values()):
                if self.fenced_by_alarm(child):
                    self.fenced(child, stopping)

    def fenced_by_alarm(self, child: Child) -> bool:
        """Whether the alarm killed this child (it is to be handled by :meth:`fenced`)."""
        return child.pid in self.alarm.killed

    def fenced(self, child: Child, stopping: bool) -> None:
        """Kill the child (the alarm may have already) and forget its jobs, unreleased."""
        jobs = self.pool.kill(child)
        self.alarm.killed.discard(child.pid)
        logger.critical(
            "self_fenced child=%d jobs=%s: the leases could not be renewed",
            child.index,
            ",".join(j.job_id for j in jobs),
        )
        # Not released: Redis may be unreachable; the leases expire and are reaped.
        if not stopping:
            self.pool.spawn(child.index)
