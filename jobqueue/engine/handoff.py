"""Handing a new job straight to a worker's idle child: no claim round trip on pickup.

A worker registers each child that has nothing to run in each of its queues' ``idle`` sets
(``idle.lua``, mode ``on``; member ``<worker name>#<child index>``), and that child blocks on
its own inboxes. An enqueue that finds a registered child leases the job to its worker right
away (``enqueue_one.lua``, with the lease ``claim.lua`` grants: ``grant_lease`` in
``_lib.lua``) and pushes the claim into the child's inbox. When the worker drops a
registration (mode ``off``: the child got other work, the worker claims or stops), whatever
that inbox still holds is handed over, so a job leased at that moment is never left behind. A
registration lapses after its ttl: a job leased to a worker that died while idle is reaped
when its lease ends, like any job of a dead worker.

This is the engine's side; the worker's (registering, taking what is handed over) is
``jobqueue/worker/handoff.py``.
"""

from __future__ import annotations

from typing import Any

from . import codec
from .claims import Claimed
from .errors import CorruptJob
from .job import make_job_id
from .runner import Call, ScriptRunner


class Handoff:
    def __init__(self, runner: ScriptRunner) -> None:
        self.keys = runner.keys

    def idle_call(
        self, queue: str, member: str, waiting: bool, ttl: float = 3.0, renew: bool = False
    ) -> Call:
        """Register ``member`` (``<worker name>#<child index>``) as waiting idle for ``queue``
        for ``ttl`` seconds, or (with ``waiting=False``) unregister it; ``renew`` only extends
        a registration still there. Its reply, read with :meth:`read_inbox` and
        :meth:`was_registered`, holds the jobs already leased to it."""
        qk = self.keys.queue(queue)
        mode = ("renew" if renew else "on") if waiting else "off"
        return (
            "idle",
            queue,
            [qk.meta, qk.idle],
            [member, qk.inbox_prefix, mode, int(ttl * 1000)],
        )

    def read_inbox(self, queue: str, reply: Any) -> tuple[int, list[Claimed]]:
        """``(now_ms, claims)`` from an ``idle`` script's reply."""
        return int(reply[0]), [self.read_entry(queue, entry)[0] for entry in reply[2:]]

    @staticmethod
    def was_registered(reply: Any) -> bool:
        """Whether the member was registered when an ``idle`` call came: a registration the
        caller made and that is gone was taken by an enqueue (or lapsed)."""
        return bool(int(reply[1]))

    @staticmethod
    def read_entry(queue: str, entry: Any) -> tuple[Claimed, int]:
        """One inbox entry (pushed by enqueue_one.lua): the claim, its fields left as text for
        the process that runs it, and the Redis time its lease began."""
        try:
            local_id, token, deadline, started, flat = codec.loads(entry)
            fields = {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
            deadline, started = int(deadline), int(started)
        except (ValueError, TypeError, IndexError) as exc:
            raise CorruptJob(f"An inbox entry of queue {queue!r} is not a claim: {exc}") from exc
        job_id = make_job_id(queue, str(local_id))
        claim = Claimed(job_id, queue, str(local_id), str(token), deadline, None, None, fields)
        return claim, started
