"""What the worker's parent does on a timer besides its jobs: its heartbeat in the worker
registry, forgetting workers that died long ago, and firing the periodic schedules."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from ..engine import Engine, JobqueueError

logger = logging.getLogger("jobqueue.worker")

HEARTBEAT_EVERY = 2.0
CHANGE_HEARTBEAT_EVERY = 0.2  # a change of state (idle/busy, current jobs) is shown this fast
FORGET_EVERY = 60.0
SCHEDULE_EVERY = 0.5


class Heartbeat:
    def __init__(
        self,
        engine: Engine,
        name: str,
        queues: tuple[str, ...],
        concurrency: int,
        status: Callable[[], dict[str, Any]],
        scheduler: Any = None,
    ) -> None:
        self.engine = engine
        self.name = name
        self.status = status
        self.scheduler = scheduler
        self.static = {
            "name": name,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "queues": ",".join(queues),
            "concurrency": concurrency,
            "birth": engine.now_ms(),
        }
        self.next_heartbeat = self.next_forget = self.next_schedule = 0.0
        self.last_change_heartbeat = 0.0
        self.shown: tuple[Any, Any] | None = None  # (state, current jobs) last written
        # When a change of state held back (CHANGE_HEARTBEAT_EVERY) is to be shown.
        self.change_due = float("inf")

    def due_in(self) -> float:
        """Seconds until the next duty."""
        soonest = min(self.next_heartbeat, self.next_forget, self.change_due)
        if self.scheduler is not None:
            soonest = min(soonest, self.next_schedule)
        return soonest - time.monotonic()

    def run(self) -> None:
        now = time.monotonic()
        try:
            status = self.status()
            shown = (status.get("state"), status.get("current_jobs"))
            changed = (
                shown != self.shown and now - self.last_change_heartbeat >= CHANGE_HEARTBEAT_EVERY
            )
            if now >= self.next_heartbeat or changed:
                self.next_heartbeat = now + HEARTBEAT_EVERY
                self.last_change_heartbeat = now
                self.change_due = float("inf")
                self.engine.workers.heartbeat(self.name, {**self.static, **status})
                self.shown = shown
            elif shown != self.shown:  # shown as soon as the pace allows, not at the next beat
                self.change_due = self.last_change_heartbeat + CHANGE_HEARTBEAT_EVERY
            if now >= self.next_forget:
                self.next_forget = now + FORGET_EVERY
                forgotten = self.engine.workers.forget_dead()
                if forgotten:
                    logger.info("dead_workers_forgotten count=%d", forgotten)
            if self.scheduler is not None and now >= self.next_schedule:
                self.next_schedule = now + SCHEDULE_EVERY
                self.scheduler.tick()
        except JobqueueError as exc:
            logger.warning("worker_duty_failed error=%s", exc)

    def stopped(self) -> None:
        try:
            self.engine.workers.gone(self.name)
        except JobqueueError as exc:
            logger.warning("worker_unregister_failed error=%s", exc)
