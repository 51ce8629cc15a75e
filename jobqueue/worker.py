"""The worker: a single-threaded supervising parent and its child processes.

The parent claims jobs in batches (prefetch), sends them to its children over pipes, records
their outcomes in batches (one round trip for many acks), renews the leases of every job its
children hold, reaps expired leases of dead workers, stops jobs past their timeout, and fences
itself: a job whose lease it can no longer renew is killed before the lease ends, so two
attempts of one job never overlap. It never blocks on Redis except in a select() it can leave.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any

from .engine import ConnectionFailed, Engine, codec
from .engine.lease import Failure, Success
from .mirror_process import MirrorProcess
from .worker_duties import Duties
from .worker_exchange import FLUSH_DELAY, Exchange
from .worker_pool import Child, InFlight, Poller, Pool
from .worker_upkeep import Upkeep
from .worker_wake import IdleRegistration, WakeListener

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
    schedules: bool = True  # run the periodic-schedule ticker
    mirror: bool = False  # run a mirror process beside the children


class Worker(Exchange, Upkeep):
    def __init__(self, engine: Engine, options: WorkerOptions) -> None:
        self.engine = engine
        self.options = options
        lease = engine.config.lease_seconds
        self.lease = lease
        self.renew_every = lease / 3
        self.reap_every = min(lease / 2, 5.0)
        self.fence_margin = min(2.0, lease / 4)
        self.idle = IdleRegistration(
            engine, options.name, options.queues, ttl=max(3 * options.idle_poll, 3.0)
        )
        wake_keys = [engine.qkeys(q).wake for q in options.queues]
        self.listener = WakeListener(engine.client, wake_keys, options.idle_poll)
        self.wake_r, self.wake_w = socket.socketpair()
        parent_fds = [self.wake_r.fileno(), self.wake_w.fileno()]
        inboxes = self.idle.inboxes if self.listener.supported else None
        self.pool = Pool(options.concurrency, parent_fds=parent_fds, inboxes=inboxes)
        self.poller = Poller()
        self.mirror = MirrorProcess(parent_fds) if options.mirror else None
        self.successes: list[Success] = []
        self.failures: list[Failure] = []
        self.releases: list[InFlight] = []
        self.abandons: list[tuple[InFlight, str]] = []
        self.claimed_total = self.succeeded = self.failed = 0
        self.maybe_ready = True
        self.next_claim = 0.0  # not before (backoff after a Redis error)
        self.next_due: float | None = None  # monotonic time the next scheduled job is due
        self.next_renew = self.next_reap = self.next_fence = 0.0
        self.signals = 0
        self.stopping_since: float | None = None
        self.pending_since: float | None = None  # when the oldest unrecorded outcome came
        self.exit_code = 0
        self.working_time = 0.0
        self.duties: Duties | None = None
        self.awaiting: dict[int, float] = {}
        self.run_time: float | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        self.duties = Duties(
            self.engine,
            self.options.name,
            self.options.queues,
            self.options.concurrency,
            self._status,
            self._scheduler(),
        )
        if self.mirror is not None:
            self.mirror.start()
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
                self._exchange()
                self._wait()
                self._housekeeping()
                self.duties.run()
                if self.mirror is not None:
                    self.mirror.watch()
        finally:
            self._shutdown()
            self.duties.stopped()
        logger.info(
            "worker_stopped name=%s succeeded=%d failed=%d",
            self.options.name,
            self.succeeded,
            self.failed,
        )
        return self.exit_code

    def _scheduler(self) -> Any:
        if not self.options.schedules:
            return None
        from .schedules import Scheduler, all_schedules

        schedules = all_schedules()
        return Scheduler(self.engine, schedules) if schedules else None

    def _status(self) -> dict[str, Any]:
        running = [c.jobs[0].job_id for c in self.pool.children.values() if c.jobs]
        state = "stopping" if self.signals else ("busy" if running else "idle")
        return {
            "state": state,
            "current_jobs": ",".join(running),
            "successful": self.succeeded,
            "failed": self.failed,
            "working_time": round(self.working_time, 3),
        }

    def _install_signals(self) -> None:
        self.wake_w.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals += 1
        if self.signals >= 2:  # second signal: stop at once; leases expire, jobs are reaped
            for child in list(self.pool.children.values()):
                child.signal(signal.SIGKILL)
            os._exit(1)
        logger.info(
            "worker_stopping name=%s signal=%d shutdown_timeout=%s",
            self.options.name,
            signum,
            self.options.shutdown_timeout,
        )

    def _pending(self) -> bool:
        return bool(self.successes or self.failures or self.releases or self.abandons)

    def _finished(self) -> bool:
        busy = bool(self._in_flight()) or self._pending()
        if self.signals:
            if self.stopping_since is None:
                self.stopping_since = time.monotonic()
                for child in self.pool.children.values():
                    child.signal(signal.SIGUSR2)  # start nothing new
            if not busy:
                return True
            if time.monotonic() - self.stopping_since > self.options.shutdown_timeout:
                self._release_everything()
                return True
            return False
        if busy:
            return False
        if self.options.max_jobs is not None and self.claimed_total >= self.options.max_jobs:
            return True
        if self.options.burst and not self.maybe_ready:
            return not self._due_soon()
        return False

    def _due_soon(self) -> bool:
        """A scheduled job is due within ``burst_wait`` (a burst worker waits for it)."""
        return (
            self.next_due is not None
            and self.next_due - time.monotonic() < self.options.burst_wait
        )

    def _release_everything(self) -> None:
        """Shutdown timeout: kill the children, give their jobs back (attempt not counted)."""
        for child in list(self.pool.children.values()):
            self.releases.extend(self.pool.kill(child))
        self._exchange(force=True)

    def _shutdown(self) -> None:
        self.listener.close()
        if self.idle.registered:  # stopped while waiting: give back what was handed over
            try:
                pairs, calls = self.idle.unregister_calls()
                replies = self.engine.run_batch(calls, raise_errors=False)
                handed, _ = self.idle.read(pairs, replies)
                calls = [self.engine.release_call(c.job_id, c.token) for c, _ in handed]
                if calls:
                    self.engine.run_batch(calls, raise_errors=False)
            except ConnectionFailed:
                pass  # the registrations lapse; leases of jobs handed over expire and are reaped
        self.pool.stop_all()
        if self.mirror is not None:  # a burst worker leaves the database up to date
            self.mirror.stop(drain=self.options.burst and not self.signals)
        signal.set_wakeup_fd(-1)
        self.wake_r.close()
        self.wake_w.close()

    # -- waiting and outcomes -------------------------------------------------------------

    def _wait(self) -> None:
        if self.pending_since is not None and not self.signals:
            # Outcomes wait for company (FLUSH_DELAY): let the children's next messages
            # gather in their pipes meanwhile and read them all when the flush is due, so the
            # parent wakes once per flush instead of once per job.
            rest = self.pending_since + FLUSH_DELAY - time.monotonic()
            if rest > 0 and not self._claim_wanted():
                time.sleep(rest)
        readers: list[Any] = [self.wake_r]
        for child in self.pool.children.values():
            readers += [child.conn, child.process.sentinel]
        idle = not self.maybe_ready and self._capacity() > 0
        timeout = min(self.next_renew, self.next_reap) - time.monotonic()
        if self.duties is not None:
            timeout = min(timeout, self.duties.due_in())
        if idle and self.listener.supported and self.listener.has_reply():
            # What the BLPOP popped (perhaps a job handed over under the registration just
            # dropped) is taken before registering again, or the worker would be registered
            # while it holds that job.
            self._listener_reply()
            idle = not self.maybe_ready and self._capacity() > 0
        if idle and self.listener.supported:
            self._register_idle()
        if idle and self.listener.arm():
            readers.append(self.listener)
        elif idle:
            timeout = min(timeout, self.listener.poll_interval)
        if self.next_due is not None:
            timeout = min(timeout, self.next_due - time.monotonic())
        if idle and self.options.burst and not self._due_soon():
            timeout = 0  # nothing ready nor due soon: a burst worker is done, don't wait
        if self._claim_wanted():
            timeout = 0
        elif self.maybe_ready and time.monotonic() < self.next_claim:  # backing off
            timeout = min(timeout, self.next_claim - time.monotonic())
        if self.pending_since is not None:
            timeout = min(timeout, self.pending_since + FLUSH_DELAY - time.monotonic())
        if self._pending() or self.signals:
            timeout = min(timeout, 0.05)
        ready = self.poller.wait(readers, timeout)
        for item in ready:
            if item is self.wake_r:
                try:
                    self.wake_r.recv(4096)
                except BlockingIOError:
                    pass
            elif item is self.listener:
                self._listener_reply()
            else:
                self._child_ready(item)
        if idle and not self.listener.supported and not ready:
            self.maybe_ready = True

    def _listener_reply(self) -> None:
        """The BLPOP's reply, a wake-up or its timeout: claim again."""
        self.listener.read()
        self.maybe_ready = True

    def _child_ready(self, item: Any) -> None:
        for child in list(self.pool.children.values()):
            if item is child.conn:
                self._drain(child)
            elif item == child.process.sentinel and not child.process.is_alive():
                self._drain(child)
                self._child_died(child)

    def _drain(self, child: Child) -> None:
        """Handle every message the child has written."""
        for message in child.messages():
            self._outcome(child, message)

    def _outcome(self, child: Child, data: bytes) -> None:
        message = codec.loads(data)
        if "took" in message:
            self._took(child, message)
            return
        job = child.finished(message["id"])
        if job is None:
            logger.error("unexpected_outcome child=%d job=%s", child.index, message.get("id"))
            return
        claimed = job.claimed
        if "dur" in message:
            ran = float(message["dur"])
            self.working_time += ran
            self._ran(ran)
        if message.get("skipped"):
            self.releases.append(job)
        elif message["ok"]:
            self.successes.append(Success(claimed.job_id, claimed.token, message["result"]))
        else:
            attempt = claimed.attempts
            self.failures.append(
                Failure(
                    claimed.job_id,
                    claimed.token,
                    message["exc"],
                    message["tb"],
                    attempt=attempt,
                    retry=message["retry"],
                )
            )

    def _child_died(self, child: Child) -> None:
        self.awaiting.pop(child.index, None)
        code = child.process.exitcode
        if child.jobs and child.current_since is not None:  # it ran this long, then died
            self._ran(time.monotonic() - child.current_since)
        jobs = self.pool.reaped(child)
        if jobs:
            why = f"its worker process died (exit code {code})"
            logger.error(
                "child_died child=%d pid=%d exitcode=%s job=%s",
                child.index,
                child.pid,
                code,
                jobs[0].job_id,
            )
            self.abandons.append((jobs[0], why))
            self.releases.extend(jobs[1:])
        if not self.signals:
            self.pool.spawn(child.index)
