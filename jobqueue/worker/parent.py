"""The worker: a single-threaded supervising parent and its child processes.

The parent claims jobs in batches (prefetch), sends them to its children over pipes, records
their outcomes in batches (one round trip for many acknowledgements), renews the leases of
every job its children hold, reaps expired leases of dead workers, stops jobs past their
timeout, and fences itself: a job whose lease it can no longer renew is killed before the lease
ends, so two attempts of one job never overlap. It never blocks on Redis except in a poll() it
can leave.

Its parts, each holding its own state: the :class:`Pool` of children, the
:class:`PrefetchPolicy` (how many jobs a child holds), the :class:`OutcomeBuffer`, the
:class:`Readiness` (when to claim), the :class:`Exchange` (the round trip), the
:class:`LeaseKeeper`, the :class:`Handoff` (idle children), the :class:`WakeListener` (one
per hash slot on Redis Cluster), the :class:`Heartbeat`, and side processes (:class:`Sidecar`,
the mirror).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..engine import Engine, codec
from .exchange import Exchange
from .handoff import Handoff, WorkerStats
from .heartbeat import Heartbeat
from .leases import LeaseKeeper
from .outcomes import OutcomeBuffer
from .pool import Child, Poller, Pool
from .prefetch import PrefetchPolicy
from .readiness import Readiness
from .sidecar import Sidecar
from .wake import WakeListener, wake_listeners

logger = logging.getLogger("jobqueue.worker")


@dataclass(frozen=True)
class WorkerOptions:
    queues: tuple[str, ...]
    concurrency: int
    name: str
    burst: bool = False
    max_jobs: int | None = None
    prefetch: int = 32  # most jobs held per child (the running one and those behind it)
    shutdown_timeout: float = 30.0
    idle_poll: float = 1.0  # claim at least this often when idle (promotes due jobs)
    burst_wait: float = 1.0  # in burst mode, also wait for jobs due this soon
    timeout_grace: float = 1.0  # hard kill this long after a job's soft timeout


class Worker:
    def __init__(
        self,
        engine: Engine,
        options: WorkerOptions,
        scheduler: Any = None,
        sidecars: Sequence[Sidecar] = (),
    ) -> None:
        self.engine = engine
        self.options = options
        self.scheduler = scheduler  # fires the periodic schedules (schedules.Scheduler)
        self.sidecars = list(sidecars)
        self.protocol = engine.worker_protocol()
        self.stats = WorkerStats()
        self.prefetch = PrefetchPolicy(options.prefetch)
        self.outcomes = OutcomeBuffer()
        self.readiness = Readiness()
        self.wake_r, self.wake_w = socket.socketpair()

        wake_keys = [engine.keys.queue(q).wake for q in options.queues]
        self.listeners = wake_listeners(engine.client, wake_keys, options.idle_poll)
        self.pool = Pool(options.concurrency, parent_fds=self._parent_fds)
        ttl = max(3 * options.idle_poll, 3.0)
        self.handoff = Handoff(
            self.protocol, options.name, options.queues, ttl, self.pool, self.stats
        )
        # A child blocks on its inboxes, one per queue, with one BLPOP: on Redis Cluster they
        # lie in several slots, so there no child registers idle and jobs are only claimed.
        self.handing_off = not engine.cluster
        if self.handing_off:
            self.pool.inboxes = self.handoff.inboxes
        self.exchange = Exchange(
            self.protocol,
            options.name,
            options.queues,
            options.max_jobs,
            self.pool,
            self.prefetch,
            self.outcomes,
            self.handoff,
            self.readiness,
            self.stats,
        )
        self.leases = LeaseKeeper(
            self.protocol,
            options.queues,
            self.pool,
            self.outcomes,
            self.readiness,
            self.prefetch,
            options.timeout_grace,
        )
        self.poller = Poller()
        self.heartbeat: Heartbeat | None = None
        self.signals = 0
        self.stopping_since: float | None = None
        self.exit_code = 0
        self.polled_at = time.monotonic()  # the last claim for want of a wake listener

    # -- lifecycle ------------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        self.heartbeat = Heartbeat(
            self.engine,
            self.options.name,
            self.options.queues,
            self.options.concurrency,
            self._status,
            self.scheduler,
        )
        for sidecar in self.sidecars:
            sidecar.start(self._parent_fds)
        self.pool.start()
        logger.info(
            "worker_started name=%s queues=%s concurrency=%d pid=%d",
            self.options.name,
            ",".join(self.options.queues),
            self.options.concurrency,
            os.getpid(),
        )
        try:
            while not self._finished():
                self.exchange.run(stopping=bool(self.signals))
                self._wait()
                self._rebalance()
                self.leases.tick(time.monotonic(), stopping=bool(self.signals))
                self.heartbeat.run()
                for sidecar in self.sidecars:
                    sidecar.watch()
        finally:
            self._shutdown()
            self.heartbeat.stopped()
        logger.info(
            "worker_stopped name=%s succeeded=%d failed=%d",
            self.options.name,
            self.stats.succeeded,
            self.stats.failed,
        )
        return self.exit_code

    def _parent_fds(self) -> list[int]:
        """What a process forked now must close: the signal wake-up socket pair, and the
        wake listener's connection (or its pending BLPOP could take a wake-up nobody reads
        once the parent closes its own)."""
        fds = [self.wake_r.fileno(), self.wake_w.fileno()]
        listening = (listener.socket_fd() for listener in self.listeners)
        return [*fds, *(fd for fd in listening if fd is not None)]

    def _status(self) -> dict[str, Any]:
        running = [c.jobs[0].job_id for c in self.pool.children.values() if c.jobs]
        state = "stopping" if self.signals else ("busy" if running else "idle")
        return {
            "state": state,
            "current_jobs": ",".join(running),
            "successful": self.stats.succeeded,
            "failed": self.stats.failed,
            "working_time": round(self.stats.working_time, 3),
        }

    def _install_signals(self) -> None:
        self.wake_w.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.leases.alarm.install()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals += 1
        if self.signals >= 2:  # second signal: stop at once; leases expire, jobs are reaped
            self.pool.signal_all(signal.SIGKILL)
            os._exit(1)
        logger.info(
            "worker_stopping name=%s signal=%d shutdown_timeout=%s",
            self.options.name,
            signum,
            self.options.shutdown_timeout,
        )

    def _finished(self) -> bool:
        busy = bool(self.pool.in_flight()) or self.outcomes.pending
        if self.signals:
            if self.stopping_since is None:
                self.stopping_since = time.monotonic()
                self.pool.signal_all(signal.SIGUSR2)  # start nothing new
            if not busy:
                return True
            if time.monotonic() - self.stopping_since > self.options.shutdown_timeout:
                self._release_everything()
                return True
            return False
        if busy:
            return False
        if self.options.max_jobs is not None and self.stats.claimed >= self.options.max_jobs:
            return True
        if self.options.burst and not self.readiness.maybe_ready:
            return not self._due_soon()
        return False

    def _due_soon(self) -> bool:
        """A scheduled job is due within ``burst_wait`` (a burst worker waits for it)."""
        return self.readiness.due_within(time.monotonic(), self.options.burst_wait)

    def _release_everything(self) -> None:
        """Shutdown timeout: kill the children, give their jobs back (attempt not counted)."""
        for child in list(self.pool.children.values()):
            self.outcomes.release(self.pool.kill(child))
        self.exchange.run(stopping=True, force=True)

    def _shutdown(self) -> None:
        for listener in self.listeners:
            listener.close()
        self.handoff.give_back()  # stopped while waiting: give back what was handed over
        self.pool.stop_all()
        self.leases.alarm.disarm()  # no child holds a lease now
        for sidecar in self.sidecars:  # a burst worker leaves the database up to date
            sidecar.stop(drain=self.options.burst and not self.signals)
        signal.set_wakeup_fd(-1)
        self.wake_r.close()
        self.wake_w.close()

    # -- waiting --------------------------------------------------------------------------

    def _idle(self) -> bool:
        """Nothing to claim, and room to run what comes."""
        return not self.readiness.maybe_ready and self.exchange.capacity(bool(self.signals)) > 0

    def _wait(self) -> None:
        stopping = bool(self.signals)
        flush_at = self.outcomes.flush_at()
        if flush_at is not None and not stopping:
            # Outcomes wait for company (FLUSH_DELAY): let the children's next messages
            # gather in their pipes meanwhile and read them all when the flush is due, so the
            # parent wakes once per flush instead of once per job.
            rest = flush_at - time.monotonic()
            if rest > 0 and not self.exchange.wanted(stopping):
                time.sleep(rest)
        readers: list[Any] = [self.wake_r]
        for child in self.pool.children.values():
            readers += [child.pipe, child.process.sentinel]
        idle = self._idle()
        now = time.monotonic()
        timeout = self.leases.due_in(now)
        if self.heartbeat is not None:
            timeout = min(timeout, self.heartbeat.due_in())
        timeout = min(timeout, self.pool.stuck_in(now))
        answered = (
            [listener for listener in self.listeners if listener.has_reply()] if idle else []
        )
        if idle and answered:
            # What the BLPOP popped (perhaps a job handed over under the registration just
            # dropped) is taken before registering again, or the worker would be registered
            # while it holds that job.
            for listener in answered:
                self._listener_reply(listener)
            idle = self._idle()
        if idle and self.handing_off:
            self.handoff.register(self.exchange.capacity(stopping))
        armed = idle and all([listener.arm() for listener in self.listeners])
        if armed:
            readers += self.listeners
        elif idle:  # a listener could not be armed (Redis down): claim every idle_poll
            timeout = min(timeout, self.options.idle_poll)
        next_due = self.readiness.next_due
        if next_due is not None:
            timeout = min(timeout, next_due - time.monotonic())
        if idle and self.options.burst and not self._due_soon():
            timeout = 0  # nothing ready nor due soon: a burst worker is done, don't wait
        if self.exchange.wanted(stopping):
            timeout = 0
        elif self.readiness.maybe_ready and now < self.readiness.not_before:  # backing off
            timeout = min(timeout, self.readiness.not_before - time.monotonic())
        if flush_at is not None:
            timeout = min(timeout, flush_at - time.monotonic())
        if self.outcomes.pending or stopping:
            timeout = min(timeout, 0.05)
        ready = self.poller.wait(readers, timeout)
        for item in ready:
            if item is self.wake_r:
                try:
                    self.wake_r.recv(4096)
                except BlockingIOError:
                    pass
            elif isinstance(item, WakeListener):
                self._listener_reply(item)
            else:
                self._child_ready(item)
        if idle and not armed and time.monotonic() - self.polled_at >= self.options.idle_poll:
            # No listener could be armed: claim again once a poll interval has passed (not
            # after every short wait, or a burst worker would never find itself done).
            self.polled_at = time.monotonic()
            self.readiness.wake()

    def _listener_reply(self, listener: WakeListener) -> None:
        """A BLPOP's reply, a wake-up or its timeout: claim again."""
        listener.read()
        self.readiness.wake()

    # -- the children -----------------------------------------------------------------------

    def _rebalance(self) -> None:
        """No job waits behind a job that runs long: the jobs behind it go to a free child,
        or back to Redis (attempt not counted) when no child here is free."""
        if not self.signals:
            back = self.pool.rebalance(time.monotonic(), self.prefetch.limit())
            if back:
                self.outcomes.release(back)

    def _child_ready(self, item: Any) -> None:
        for child in list(self.pool.children.values()):
            if item is child.pipe:
                self._read(child)
            elif item == child.process.sentinel and not child.process.is_alive():
                self._read(child)
                if self.leases.fenced_by_alarm(child):
                    self.leases.fenced(child, bool(self.signals))
                else:
                    self._child_died(child)

    def _read(self, child: Child) -> None:
        """Handle every message the child has written."""
        for data in child.pipe.messages():
            message = codec.loads(data)
            if "took" in message:
                self.handoff.took(child, message)
                continue
            job = child.finished(message["id"])
            if job is None:
                logger.error("unexpected_outcome child=%d job=%s", child.index, message.get("id"))
                continue
            if "dur" in message:
                ran = float(message["dur"])
                self.stats.working_time += ran
                self.prefetch.ran(ran)
            self.outcomes.add(job, message)

    def _child_died(self, child: Child) -> None:
        """A child died (killed, crashed, out of memory): its running job counts a stall at
        once (abandoned), the others go back."""
        code = child.process.exitcode
        if child.jobs and child.current_since is not None:  # it ran this long, then died
            self.prefetch.ran(time.monotonic() - child.current_since)
        jobs = self.pool.reaped(child)
        if jobs:
            logger.error(
                "child_died child=%d pid=%d exitcode=%s job=%s",
                child.index,
                child.pid,
                code,
                jobs[0].job_id,
            )
            self.outcomes.abandon(jobs[0], f"its worker process died (exit code {code})")
            self.outcomes.release(jobs[1:])
        if not self.signals:
            self.pool.spawn(child.index)
