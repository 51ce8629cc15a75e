"""A worker's child process: receives jobs from its parent over a pipe, runs them one at a time,
and sends each outcome back. It never talks to Redis about a job's state: the parent claims,
renews, acknowledges and, when needed, kills.

Signals: SIGINT and SIGTERM are ignored (the parent decides when children stop); SIGUSR2 means
"start no more jobs" (jobs already sent are answered ``skipped``); SIGUSR1 cancels the running
job; SIGALRM is the running job's soft timeout. On Linux the child is killed with its parent
(PR_SET_PDEATHSIG), so a job can never outlive the worker that renews its lease.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

from .engine import Job, codec
from .engine.errors import CorruptJob

logger = logging.getLogger("jobqueue.worker")
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # pragma: no cover - no libc: the pipe's EOF still ends the child
        pass


class _Stop:
    requested = False


def _on_stop(signum: int, frame: Any) -> None:
    _Stop.requested = True


def decode_job(message: dict) -> tuple[str, str, Job | None, CorruptJob | None]:
    job_id, token = message["id"], message["token"]
    queue, _, local_id = job_id.partition(":")
    if message.get("error"):
        return job_id, token, None, CorruptJob(message["error"])
    try:
        return job_id, token, Job.from_fields(queue, local_id, message["fields"]), None
    except CorruptJob as exc:
        return job_id, token, None, exc


# Signals a forked process must not receive before its handlers exist (their default action
# would kill it): the parent blocks them around fork(), the child unblocks them when ready.
CHILD_SIGNALS = {signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGALRM}


def start_blocked(process: Any) -> None:
    """Start a fork-context ``process`` with CHILD_SIGNALS blocked until it is ready."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, CHILD_SIGNALS)
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def prepare_forked(parent_pid: int, inherited_fds: list[int]) -> None:
    """First steps of any process forked by a worker: die with the parent, and drop what was
    the parent's (its signal wake-up fd, its sockets, other children's pipes)."""
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


def child_main(conn: Connection, parent_pid: int, inherited_fds: list[int]) -> None:
    """Entry point of a forked child."""
    prepare_forked(parent_pid, inherited_fds)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, _on_stop)
    from .execution import execute, install_handlers

    install_handlers()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, CHILD_SIGNALS)
    while True:
        try:
            messages = codec.loads(conn.recv_bytes())
        except (EOFError, OSError):
            break
        for message in messages:  # one message may carry several jobs, run in order
            job_id, token, job, error = decode_job(message)
            if _Stop.requested:
                outcome: dict = {"id": job_id, "skipped": True}
            else:
                outcome = execute(job_id, token, job, error)
            try:
                conn.send_bytes(codec.encode(outcome))
            except (BrokenPipeError, OSError):
                os._exit(0)
    os._exit(0)
