"""Forking a worker's processes (its children, and side processes such as the mirror) safely.

The parent is single-threaded, so ``fork()`` is safe at any time. A forked process must not
receive a signal before it installs its handlers (the default action would kill it), must die
with its parent (so no job outlives the process renewing its lease), and must close what was
the parent's: its signal wake-up fd, its sockets, the other children's pipes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import signal
import sys
from typing import Any

PR_SET_PDEATHSIG = 1

# Signals a forked process must not receive before its handlers exist: the parent blocks them
# around fork(), the child unblocks them when ready.
CHILD_SIGNALS = {signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGALRM}


def start_blocked(process: Any) -> None:
    """Start a fork-context ``process`` with CHILD_SIGNALS blocked until it is ready.

    What the parent has loaded (Django, the task modules) is frozen first (``gc.freeze()``):
    the child's garbage collector never scans those objects again, so a full collection does
    not pause the job it runs, and does not write to the memory pages it shares with its
    parent."""
    gc.collect()  # garbage now would never be freed once frozen
    gc.freeze()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, CHILD_SIGNALS)
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def prepare_forked(parent_pid: int, inherited_fds: list[int]) -> None:
    """First steps of any process forked by a worker: die with the parent, and drop what was
    the parent's (``inherited_fds``)."""
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before we could ask to die with it
        os._exit(0)
    # The inherited wake-up fd would be written to on every signal; once closed, its number is
    # reused (a database file, a socket), so unset it first.
    signal.set_wakeup_fd(-1)
    for fd in inherited_fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _die_with_parent() -> None:
    """Linux's PR_SET_PDEATHSIG: the kernel kills this process when its parent dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # pragma: no cover - no libc: the pipe's end of stream still ends it
        pass
