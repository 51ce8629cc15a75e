"""The event streams: the format the scripts write, and their one reader.

Every transition appends one entry to its queue's stream (``<prefix>:{<queue>}:events``),
inside the script that makes it (``emit`` in ``lua/_lib.lua``): the job's local id (``id``),
the queue (``q``), the new state (``s``), the job's version (``v``), the time in ms (``t``),
then the job-hash fields the transition changed, verbatim (``''`` for a field it removed; read
them with ``job.FIELDS``); a failure's event carries, instead of the whole ``errors``, the one
error appended (``error``; see ``lua/fail.lua`` for ``ekept`` and ``edrop``). A value longer
than 64 KiB (a big result, big arguments) is left out and named in a ``big`` field
(``"result"``, ``"args,kwargs"``): a reader that needs it reads the job's hash. Queue events
(pause, resume) have an empty ``id`` and version 0; a deleted job's event has state ``deleted``.

:class:`EventReader` reads them through a consumer group, so several readers share the work,
and entries a reader took and never acknowledged (it died) can be taken over by another.
:class:`EventTail` follows them without a group, from the moment it starts: what a live page
needs, which gets a fresh snapshot on (re)connecting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from .runner import ScriptRunner
from .transport.connection import REDIS_ERRORS

# On Redis Cluster a tail's blocking read that finds nothing waits this long instead (its
# streams lie in several slots, and XREAD BLOCK takes streams of one slot only).
CLUSTER_TAIL_PAUSE_MS = 100


@dataclass(slots=True)
class Event:
    entry_id: str
    queue: str
    local_id: str
    state: str
    version: int
    at_ms: int
    changes: dict[str, str]  # job-hash fields as the transition left them ('' removed)
    job_id: str = field(init=False)  # "<queue>:<local id>", made once

    def __post_init__(self) -> None:
        self.job_id = f"{self.queue}:{self.local_id}"


def parse_event(
    queue: str, entry_id: Any, fields: list | dict, decoded: bool = False
) -> Event | None:
    """An event from a stream entry: its fields as Redis sends them (a flat name, value
    list) or as a dict. ``decoded`` says every name and value is already a str (a reply read
    with an encoding), so they need no check. None for an entry that is not one of ours."""
    try:
        if isinstance(fields, dict):
            changes: dict = dict(fields)
        else:  # an odd last name (not ours) is dropped; the checks below refuse the entry
            pairs = iter(fields)
            changes = dict(zip(pairs, pairs, strict=False))
        if not decoded and not all(type(k) is str and type(v) is str for k, v in changes.items()):
            changes = {_text(k): _text(v) for k, v in changes.items()}  # as Redis sent them
        queue = changes.pop("q", None) or queue
        local_id, state = changes.pop("id"), changes.pop("s")
        version, at_ms = int(changes.pop("v")), int(changes.pop("t"))
        return Event(_text(entry_id), queue, local_id, state, version, at_ms, changes)
    except (KeyError, ValueError, AttributeError, TypeError):
        return None  # not one of ours: skipped (and acknowledged)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, str):
        return value
    raise TypeError(f"not a string: {value!r}")


@dataclass(slots=True)
class Delivery:
    """What one read brought: the events, and every entry read (to acknowledge, those that
    were not ours included)."""

    events: list[Event] = field(default_factory=list)
    entries: dict[str, list[Any]] = field(default_factory=dict)  # stream key -> entry ids
    lost: bool = False  # a stream or its group was gone (Redis lost data): start over


class EventReader:
    """Reads every queue's event stream as consumer ``consumer`` of group ``group``.

    :meth:`read` takes new entries (``pending=False``), or this consumer's own entries read
    and not acknowledged yet (``pending=True``: after a restart, or a take-over); the caller
    acknowledges what it applied with :meth:`ack`. :meth:`take_over` makes entries another
    consumer left unacknowledged for ``claim_idle_ms`` this consumer's own pending ones."""

    def __init__(
        self,
        runner: ScriptRunner,
        queues: Callable[[], list[str]],
        group: str,
        consumer: str,
        count: int = 2000,
        block_ms: int = 500,
        claim_idle_ms: int = 30_000,
    ) -> None:
        self.runner = runner
        self.client = runner.client
        self.queues = queues  # every queue's name (Reads.queues)
        self.group = group
        self.consumer = consumer
        self.count = count
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.grouped: set[str] = set()  # streams whose group is known to exist

    def streams(self) -> dict[str, str]:
        """Event stream key -> queue, for every queue; the group is created on first sight."""
        streams = {}
        for queue in self.queues():
            key = self.runner.keys.queue(queue).events
            if key not in self.grouped:
                try:
                    self.client.xgroup_create(key, self.group, id="0", mkstream=True)
                except redis.ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise self.runner.translate(exc, "xgroup_create", queue) from exc
                except REDIS_ERRORS as exc:
                    raise self.runner.translate(exc, "xgroup_create", queue) from exc
                self.grouped.add(key)
            streams[key] = queue
        return streams

    def read(self, streams: dict[str, str], pending: bool, block: bool) -> Delivery:
        """Up to ``count`` entries per stream; with ``block``, wait up to ``block_ms`` for
        new ones when there are none (never when reading ``pending`` ones)."""
        start = "0" if pending else ">"
        try:
            replies = self._xreadgroup(streams, start, block and not pending)
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream was lost (Redis data loss): start over
                self.grouped.clear()
                return Delivery(lost=True)
            raise self.runner.translate(exc, "xreadgroup") from exc
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "xreadgroup") from exc
        delivery = Delivery()
        decoded = not self.runner.cluster  # _xreadgroup decoded the reply
        for key, entries in replies:
            if not entries:
                continue
            key = _text(key)
            ids = delivery.entries.setdefault(key, [])
            for entry_id, fields in entries:
                ids.append(entry_id)
                if fields:  # a pending entry trimmed from the stream has no fields
                    event = parse_event(streams[key], entry_id, fields, decoded)
                    if event is not None:
                        delivery.events.append(event)
        return delivery

    def _xreadgroup(self, streams: dict[str, str], start: str, block: bool) -> list:
        if self.runner.cluster:  # one stream per call: they live in different slots
            out: list[Any] = []
            for key in streams:
                out += (
                    self.client.xreadgroup(self.group, self.consumer, {key: start}, self.count)
                    or []
                )
            return out
        # Sent on the engine's own connection, decoded as it is parsed: the reply comes as
        # Redis sends it, {stream: [[id, [name, value, ...]], ...]} (a list of pairs in RESP2),
        # without redis-py's conversion of every entry to a dict.
        command: list[Any] = ["XREADGROUP", "GROUP", self.group, self.consumer]
        command += ["COUNT", self.count]
        if block:
            command += ["BLOCK", self.block_ms]
        command += ["STREAMS", *streams, *([start] * len(streams))]
        direct = self.runner.scripts.direct
        assert direct is not None  # every client but Cluster's
        reply = direct.execute(*command, text=True) or []
        return list(reply.items()) if isinstance(reply, dict) else reply

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge every entry the delivery read."""
        try:
            for key, ids in delivery.entries.items():
                if ids:
                    self.client.xack(key, self.group, *ids)
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "xack") from exc

    def take_over(self, streams: dict[str, str]) -> list[str]:
        """Make the entries other consumers left unacknowledged for ``claim_idle_ms`` this
        consumer's own (read them next with ``pending=True``). Returns the streams it could
        not scan (Redis errors), which the caller may log."""
        failed = []
        for key in streams:
            cursor = "0-0"
            try:
                for _ in range(1000):  # the whole pending list, a batch at a time
                    # Without JUSTID: redis-py returns the scan cursor only then.
                    reply = self.client.xautoclaim(
                        key,
                        self.group,
                        self.consumer,
                        self.claim_idle_ms,
                        start_id=cursor,
                        count=self.count,
                    )
                    cursor = _text(reply[0])
                    if cursor == "0-0":
                        break
            except redis.RedisError:
                failed.append(key)
        return failed


class EventTail:
    """Follows every queue's event stream from now on, as ``XREAD`` does: no consumer group,
    nothing acknowledged, nothing taken from the mirror. The streams there when it starts are
    followed from their last entry, so no entry written afterwards is missed between two
    reads, and what was written before is not read (a live page gets a snapshot instead); a
    queue that appears later is followed from its first entry."""

    def __init__(
        self,
        runner: ScriptRunner,
        queues: Callable[[], list[str]],
        count: int = 5000,
        block_ms: int = 500,
    ) -> None:
        self.runner = runner
        self.client = runner.client
        self.queues = queues  # every queue's name (Reads.queues)
        self.count = count
        self.block_ms = block_ms
        self.last: dict[str, Any] = {}  # stream key -> id of the last entry seen
        self.names: dict[str, str] = {}  # stream key -> queue
        self.started = False

    def follow_new_queues(self) -> None:
        """Start following the queues that appeared since the last call (from their end)."""
        try:
            for queue in self.queues():
                key = self.runner.keys.queue(queue).events
                if key not in self.last:
                    newest = self.client.xrevrange(key, count=1) if not self.started else []
                    self.last[key] = newest[0][0] if newest else "0-0"
                    self.names[key] = queue
            self.started = True
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "xrevrange") from exc

    def created_since(
        self, since_ms: int, queues: list[str] | None = None, newest: int = 1000
    ) -> list[Event]:
        """The first events (version 1: the job was enqueued) written since ``since_ms`` on
        the Redis clock, newest first, among each queue's ``newest`` latest entries (every
        queue, or ``queues``). What a page rendered from the mirror's rows, which may lag,
        missed between its rendering and its subscription."""
        found: list[Event] = []
        try:
            for queue in self.queues() if queues is None else queues:
                key = self.runner.keys.queue(queue).events
                entries = self.client.xrevrange(key, "+", str(max(since_ms, 0)), count=newest)
                for entry_id, fields in entries:
                    event = parse_event(queue, entry_id, fields)
                    if event is not None and event.version == 1 and event.local_id:
                        found.append(event)
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "xrevrange") from exc
        found.sort(key=lambda event: event.at_ms, reverse=True)
        return found

    def read(self, block: bool = True) -> list[Event]:
        """The entries written since the last read, waiting up to ``block_ms`` for some."""
        if not self.last:
            return []
        try:
            if self.runner.cluster:  # one stream per call: they live in different slots
                replies: list[Any] = []
                for key, last in self.last.items():
                    replies += self.client.xread({key: last}, count=self.count) or []
                if block and not any(entries for _, entries in replies):
                    # No XREAD BLOCK across slots: look again after a short pause rather
                    # than at once (the live feed's thread would spin on a core).
                    time.sleep(min(self.block_ms, CLUSTER_TAIL_PAUSE_MS) / 1000)
            else:
                command: list[Any] = ["XREAD", "COUNT", self.count]
                if block:
                    command += ["BLOCK", self.block_ms]
                command += ["STREAMS", *self.last, *self.last.values()]
                direct = self.runner.scripts.direct
                assert direct is not None  # every client but Cluster's
                reply = direct.execute(*command, text=True) or []
                replies = list(reply.items()) if isinstance(reply, dict) else reply
        except REDIS_ERRORS as exc:
            raise self.runner.translate(exc, "xread") from exc
        events = []
        for key, entries in replies:
            key = _text(key)
            for entry_id, fields in entries:
                self.last[key] = entry_id
                event = parse_event(self.names[key], entry_id, fields, not self.runner.cluster)
                if event is not None:
                    events.append(event)
        return events
