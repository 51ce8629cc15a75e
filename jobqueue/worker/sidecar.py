"""A process a worker runs beside its children, such as the mirror: forked from the parent,
watched (restarted if it dies, at most once every RESTART_AFTER seconds), stopped with it.

The process runs ``target(flags)`` and exits with what it returns (None: 0), where
``flags.stop`` becomes true on SIGTERM (finish the work in hand and return) and ``flags.drain``
on SIGUSR2 (do everything there is, then return: ``runworker --burst`` uses it so the database
is up to date when the worker exits).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from .forking import CHILD_SIGNALS, prepare_forked, start_blocked

logger = logging.getLogger("jobqueue.worker")


class Flags:
    """What a side process was asked, set by its signal handlers."""

    stop = False
    drain = False


Target = Callable[[type[Flags]], int | None]


def _main(name: str, target: Target, parent_pid: int, fds: list[int]) -> None:
    prepare_forked(parent_pid, fds)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: setattr(Flags, "stop", True))
    signal.signal(signal.SIGUSR2, lambda signum, frame: setattr(Flags, "drain", True))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, CHILD_SIGNALS)  # one sent already arrives now
    try:
        code = target(Flags)
    except Exception:
        logger.exception("sidecar_failed name=%s", name)
        os._exit(1)
    os._exit(code or 0)


class Sidecar:
    RESTART_AFTER = 5.0

    def __init__(self, name: str, target: Target) -> None:
        self.name = name
        self.target = target
        self.context = multiprocessing.get_context("fork")
        self.process: Any = None
        self.next_start = 0.0

    def start(self, inherited_fds: Callable[[], list[int]]) -> None:
        """Fork the process; ``inherited_fds()`` are the parent's descriptors, which it
        closes."""
        from django.db import connections

        connections.close_all()  # the parent keeps no database connection across a fork
        self.inherited_fds = inherited_fds
        self.process = self.context.Process(
            target=_main,
            args=(self.name, self.target, os.getpid(), inherited_fds()),
            name=f"jobqueue-{self.name}",
            daemon=True,
        )
        start_blocked(self.process)  # stopped at once, it still drains
        self.next_start = time.monotonic() + self.RESTART_AFTER

    def watch(self) -> None:
        """Restart the process if it died (not more often than RESTART_AFTER)."""
        if self.process is not None and not self.process.is_alive():
            if time.monotonic() >= self.next_start:
                logger.error(
                    "sidecar_died name=%s exitcode=%s: restarting",
                    self.name,
                    self.process.exitcode,
                )
                self.start(self.inherited_fds)

    @property
    def failed(self) -> bool:
        """It ended with an error (exited non-zero, or was killed)."""
        return self.process is not None and self.process.exitcode not in (None, 0)

    def stop(self, drain: bool, timeout: float = 30.0) -> None:
        """Ask it to stop (or, with ``drain``, to finish everything first) and wait."""
        if self.process is None or not self.process.is_alive():
            return
        os.kill(self.process.pid, signal.SIGUSR2 if drain else signal.SIGTERM)
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
