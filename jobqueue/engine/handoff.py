"""Handing a new job straight to a worker waiting idle: no claim round trip on pickup.

A worker about to block waiting for jobs registers in each of its queues' ``idle`` sets
(``idle.lua``, mode ``on``) and blocks on its inboxes as well as on the wake lists. An enqueue
that finds a registered worker leases the job to it right away (``enqueue_one.lua``) and pushes
the claim into the worker's inbox. When the worker wakes for any reason it unregisters (mode
``off``), which also hands over whatever its inboxes hold, so a job leased at that moment is
never left behind. A registration lapses after its ttl: a job leased to a worker that died
while idle is reaped when its lease ends, like any job of a dead worker.
"""

from __future__ import annotations

from typing import Any

from . import codec
from .base import EngineBase, decode
from .errors import CorruptJob
from .job import make_job_id
from .lease import Claimed

Call = tuple[str, str, list[str], list[Any]]


class HandoffMixin(EngineBase):
    def idle_call(self, queue: str, worker: str, waiting: bool, ttl: float = 3.0) -> Call:
        """Register ``worker`` as waiting idle for ``queue`` for ``ttl`` seconds, or (with
        ``waiting=False``) unregister it. Its reply, read with :meth:`read_inbox`, holds the
        jobs already leased to it."""
        qk = self.qkeys(queue)
        args = [worker, qk.inbox_prefix, "on" if waiting else "off", int(ttl * 1000)]
        return ("idle", queue, [qk.meta, qk.idle], args)

    def read_inbox(self, queue: str, reply: Any) -> tuple[int, list[Claimed]]:
        """``(now_ms, claims)`` from an ``idle`` script's reply."""
        return int(reply[0]), [self.read_handoff(queue, entry) for entry in reply[1:]]

    def read_handoff(self, queue: str, entry: Any) -> Claimed:
        """One inbox entry (pushed by enqueue_one.lua) as a claim, its fields left as text for
        the process that runs it."""
        try:
            local_id, token, deadline, _, flat = codec.loads(entry)
            fields = {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
            deadline = int(deadline)
        except (ValueError, TypeError, IndexError) as exc:
            raise CorruptJob(f"An inbox entry of queue {queue!r} is not a claim: {exc}") from exc
        job_id = make_job_id(queue, str(local_id))
        return Claimed(job_id, queue, str(local_id), str(token), deadline, None, None, fields)

    def handoff_started_ms(self, entry: Any) -> int:
        """The Redis time at which an inbox entry's lease began."""
        try:
            return int(codec.loads(entry)[3])
        except (ValueError, TypeError, IndexError) as exc:
            raise CorruptJob(f"An inbox entry is not a claim: {exc}") from exc


def inbox_queue(key: Any, prefix: str) -> str | None:
    """The queue of an inbox key (``<prefix>:{<queue>}:inbox:<worker>``), else None."""
    text = decode(key)
    if not text.startswith(prefix + ":{") or "}:inbox:" not in text:
        return None
    return text[len(prefix) + 2 : text.index("}:inbox:")]
