"""The worker parent's upkeep of the jobs it holds: renewing leases (and seeing cancel
requests), reaping the expired leases of dead workers, stopping jobs past their timeout, and
fencing itself when a lease can no longer be renewed."""

from __future__ import annotations

import logging
import signal
import time
from typing import TYPE_CHECKING, Any

from .engine import Engine, JobqueueError
from .engine.lease import Failure
from .worker_pool import Child, InFlight, Pool

logger = logging.getLogger("jobqueue.worker")


class Upkeep:
    """Mixed into :class:`jobqueue.worker.Worker`, which provides these attributes."""

    engine: Engine
    pool: Pool
    options: Any
    lease: float
    renew_every: float
    reap_every: float
    fence_margin: float
    next_fence: float  # when to look for leases about to end unrenewed again
    next_renew: float
    next_reap: float
    signals: int
    maybe_ready: bool
    failures: list[Failure]
    releases: list[InFlight]

    if TYPE_CHECKING:

        def _ran(self, seconds: float) -> None: ...  # from Exchange

    def _in_flight(self) -> list[InFlight]:
        return self.pool.in_flight()

    # -- housekeeping ---------------------------------------------------------------------

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self.next_renew:
            self.next_renew = now + self.renew_every
            self._renew()
        if now >= self.next_reap:
            self.next_reap = now + self.reap_every
            self._reap()
        self._enforce_timeouts()
        if now >= self.next_fence:  # every loop would scan every job held, per job done
            self.next_fence = now + self.fence_margin / 4
            self._self_fence()

    def _renew(self) -> None:
        by_queue: dict[str, list[InFlight]] = {}
        for job in self._in_flight():
            by_queue.setdefault(job.claimed.queue, []).append(job)
        for queue, jobs in by_queue.items():
            started = time.monotonic()
            try:
                renewal = self.engine.renew(
                    queue, [(j.claimed.local_id, j.claimed.token) for j in jobs], lease=self.lease
                )
            except JobqueueError as exc:
                logger.warning("renew_failed queue=%s jobs=%d error=%s", queue, len(jobs), exc)
                continue
            for job in jobs:
                local_id = job.claimed.local_id
                if renewal.renewed.get(local_id):
                    job.local_deadline = started + (renewal.deadline_ms - renewal.now_ms) / 1000
                    if local_id in renewal.cancel_requested:
                        self._cancel(job)
                else:
                    self._lease_lost(job)

    def _holder(self, job: InFlight) -> Child | None:
        for child in self.pool.children.values():
            if job in child.jobs:
                return child
        return None

    def _cancel(self, job: InFlight) -> None:
        child = self._holder(job)
        if child is not None and child.jobs and child.jobs[0] is job:
            logger.info("job_cancel_requested job=%s child=%d", job.job_id, child.index)
            child.signal(signal.SIGUSR1)

    def _lease_lost(self, job: InFlight) -> None:
        """Someone else owns the job now (reaped, deleted): stop our attempt at once."""
        child = self._holder(job)
        logger.warning("lease_lost job=%s", job.job_id)
        if child is None:
            return
        jobs = self.pool.kill(child)
        self.releases.extend(j for j in jobs if j is not job)
        self.pool.spawn(child.index)

    def _reap(self) -> None:
        for queue in self.options.queues:
            try:
                requeued, ended = self.engine.reap(queue)
            except JobqueueError as exc:
                logger.warning("reap_failed queue=%s error=%s", queue, exc)
                return
            if requeued or ended:
                logger.warning(
                    "reaped queue=%s requeued=%d dead=%d", queue, len(requeued), len(ended)
                )
                self.maybe_ready = True

    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for child in list(self.pool.children.values()):
            if not child.jobs or child.current_since is None:
                continue
            job = child.jobs[0]
            if (
                job.timeout is None
                or now - child.current_since < job.timeout + self.options.timeout_grace
            ):
                continue
            logger.error(
                "job_timeout job=%s timeout=%s child=%d killed",
                job.job_id,
                job.timeout,
                child.index,
            )
            self._ran(now - child.current_since)  # it counts for the prefetch like any other
            jobs = self.pool.kill(child)
            attempt = job.claimed.attempts
            self.failures.append(
                Failure(
                    job.job_id,
                    job.claimed.token,
                    "jobqueue.exceptions.JobTimeout",
                    f"The job ran longer than its timeout of {job.timeout} "
                    "seconds; its process was killed.",
                    attempt=attempt,
                )
            )
            self.releases.extend(jobs[1:])
            if not self.signals:
                self.pool.spawn(child.index)

    def _self_fence(self) -> None:
        """Kill any child holding a job whose lease may end before we can renew it."""
        now = time.monotonic()
        for child in list(self.pool.children.values()):
            if any(j.local_deadline - self.fence_margin <= now for j in child.jobs):
                jobs = self.pool.kill(child)
                logger.critical(
                    "self_fenced child=%d jobs=%s: the leases could not be renewed",
                    child.index,
                    ",".join(j.job_id for j in jobs),
                )
                # Not released: Redis may be unreachable; the leases expire and are reaped.
                if not self.signals:
                    self.pool.spawn(child.index)
