"""The mirror as a process of its own, started and watched by ``runworker``.

SIGTERM: finish the batch in hand and exit. SIGUSR2: apply everything there is, then exit
(``runworker --burst`` uses it so the database is up to date when the worker exits).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from typing import Any

from .worker_child import CHILD_SIGNALS, prepare_forked, start_blocked

logger = logging.getLogger("jobqueue.mirror")


class _Flags:
    stop = False
    drain = False


def _on_term(signum: int, frame: Any) -> None:
    _Flags.stop = True


def _on_drain(signum: int, frame: Any) -> None:
    _Flags.drain = True


def mirror_main(parent_pid: int, inherited_fds: list[int]) -> None:
    prepare_forked(parent_pid, inherited_fds)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGUSR2, _on_drain)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, CHILD_SIGNALS)  # one sent already arrives now
    from .conf import get_engine
    from .mirror import Mirror

    mirror = Mirror(get_engine())
    mirror.run(should_stop=lambda: _Flags.stop or _Flags.drain)
    if _Flags.drain and not _Flags.stop:
        mirror.drain()
    os._exit(0)


class MirrorProcess:
    """A supervised mirror process: restarted if it dies, at most once every few seconds."""

    RESTART_AFTER = 5.0

    def __init__(self, inherited_fds: list[int]) -> None:
        self.context = multiprocessing.get_context("fork")
        self.inherited_fds = inherited_fds
        self.process: Any = None
        self.next_start = 0.0

    def start(self) -> None:
        from django.db import connections

        connections.close_all()
        self.process = self.context.Process(
            target=mirror_main,
            args=(os.getpid(), self.inherited_fds),
            name="jobqueue-mirror",
            daemon=True,
        )
        start_blocked(self.process)  # stopped at once, it still drains
        self.next_start = time.monotonic() + self.RESTART_AFTER

    def watch(self) -> None:
        if self.process is not None and not self.process.is_alive():
            if time.monotonic() >= self.next_start:
                logger.error("mirror_died exitcode=%s: restarting", self.process.exitcode)
                self.start()

    def stop(self, drain: bool, timeout: float = 30.0) -> None:
        if self.process is None or not self.process.is_alive():
            return
        os.kill(self.process.pid, signal.SIGUSR2 if drain else signal.SIGTERM)
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
