"""One follower of the event streams per ASGI process, shared by every live page it serves.

A thread follows the streams (``EventTail``, no consumer group: nothing is taken from the
mirror) and merges what each event changed into one :class:`Delta` per job, for the jobs some
page follows (and, while a job list takes new jobs, for new jobs); the other events are only
kept, as they came, for the job pages opened later. Every
``FLUSH_EVERY`` seconds the event loop takes what gathered and gives each subscribed page what
concerns it; a page then sends at most one message. However many transitions a second Redis
sees, a page gets at most ``1 / FLUSH_EVERY`` messages a second, each bounded by what the page
shows.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..engine.errors import JobqueueError
from ..engine.events import Event
from .state import Delta, shown

if TYPE_CHECKING:
    from .pages import Page

logger = logging.getLogger("jobqueue.live")
FLUSH_EVERY = 0.25  # seconds between two messages of one page, at most
FOLLOW_NEW_QUEUES_EVERY = 2.0
PENDING_CAP = 20_000  # jobs whose changes wait for a flush; beyond it the oldest are dropped
HISTORY = 20_000  # transitions kept for the job pages opened after them
IDLE_STOP = 5.0  # seconds without a page before the follower stops


class Changes:
    """What changed since the last flush: the jobs (by id), newest last."""

    def __init__(self, deltas: OrderedDict[str, Delta], lost: int, seen: int = 0) -> None:
        self.deltas = deltas
        self.lost = lost  # jobs dropped past PENDING_CAP: pages reload their snapshot
        self.seen = seen  # events of any job (counts of jobs may have changed)

    def __bool__(self) -> bool:
        return bool(self.deltas) or bool(self.lost)


class Feed:
    def __init__(self, engine: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.engine = engine
        self.loop = loop
        self.pages: set[Page] = set()
        self.lock = threading.Lock()
        self.pending: OrderedDict[str, Delta] = OrderedDict()
        self.lost = 0
        self.seen = 0
        # The latest events, for a job page whose rows the mirror has not written yet.
        self.history: deque[Event] = deque(maxlen=HISTORY)
        self.followed: dict[str, int] = {}  # job id -> how many pages follow it
        self.inserting = 0  # pages that take new jobs
        self.generation = 0  # the follower thread of this generation runs; others end
        self.following = False
        # Set once the follower knows where each stream ends: the events written after that
        # reach the pages, so a page's snapshot is read after it (``ready``).
        self.positioned = threading.Event()
        self.flusher: asyncio.Task | None = None
        self.idle_since: float | None = None

    # -- pages --------------------------------------------------------------------------

    def subscribe(self, page: Page) -> None:
        self.pages.add(page)
        self.follow(page.follows())
        self.inserting += page.inserts()
        self.idle_since = None
        if not self.following:
            self.following = True
            self.generation += 1
            self.positioned = threading.Event()
            thread = threading.Thread(
                target=self._follow,
                args=(self.generation, self.positioned),
                name="jobqueue-live",
                daemon=True,
            )
            thread.start()
        if self.flusher is None or self.flusher.done():
            self.flusher = self.loop.create_task(self._flush_loop())

    def unsubscribe(self, page: Page) -> None:
        if page not in self.pages:
            return
        self.pages.discard(page)
        self.unfollow(page.follows())
        self.inserting -= page.inserts()
        if not self.pages:
            self.idle_since = time.monotonic()

    async def ready(self, timeout: float = 5.0) -> None:
        """Wait until the follower has taken its place at the end of the streams (at once
        but for the first page of a process): a snapshot read before that could miss what
        was written between it and the follower's start."""
        if not self.positioned.is_set():
            await asyncio.to_thread(self.positioned.wait, timeout)

    def follow(self, job_ids: Iterable[str]) -> None:
        """A page shows these jobs: merge their events."""
        with self.lock:
            for job_id in job_ids:
                self.followed[job_id] = self.followed.get(job_id, 0) + 1

    def unfollow(self, job_ids: Iterable[str]) -> None:
        with self.lock:
            for job_id in job_ids:
                left = self.followed.get(job_id, 0) - 1
                if left > 0:
                    self.followed[job_id] = left
                else:
                    self.followed.pop(job_id, None)

    # -- the follower thread --------------------------------------------------------------

    def stop(self) -> None:
        """Stop following (the thread ends after its current read)."""
        self.following = False
        self.generation += 1

    def _follow(self, generation: int, positioned: threading.Event) -> None:
        tail = self.engine.event_tail()
        next_look = 0.0
        while self.generation == generation:
            try:
                if time.monotonic() >= next_look:
                    next_look = time.monotonic() + FOLLOW_NEW_QUEUES_EVERY
                    tail.follow_new_queues()
                    positioned.set()
                events = tail.read() if tail.last else []
                if not tail.last:
                    time.sleep(0.2)
            except JobqueueError as exc:
                positioned.set()  # Redis is away: the snapshot says so, not a wait
                logger.warning("live_feed_failed error=%s", exc)
                time.sleep(1.0)
                continue
            if not events:
                continue
            with self.lock:
                pending, followed, inserting = self.pending, self.followed, self.inserting
                self.seen += len(events)
                for event in events:
                    if not event.local_id:
                        continue  # a queue's own event (pause, resume): the dashboard polls
                    self.history.append(event)
                    job_id = event.job_id
                    delta = pending.get(job_id)
                    if delta is None:
                        if job_id not in followed and not (inserting and event.version == 1):
                            continue
                        delta = pending[job_id] = Delta(job_id, event.queue)
                    delta.merge(event)
                while len(self.pending) > PENDING_CAP:
                    self.pending.popitem(last=False)
                    self.lost += 1

    def timeline(self, job_id: str) -> list[dict[str, Any]]:
        """The transitions of ``job_id`` this feed saw (among the latest HISTORY events of all
        jobs), progress ticks aside."""
        with self.lock:
            events = [event for event in self.history if event.job_id == job_id]
        return [
            {"v": e.version, "status": e.state, "at": e.at_ms, "changes": shown(e.changes)}
            for e in events
            if e.version and set(e.changes) != {"progress"}
        ]

    def take(self) -> Changes:
        with self.lock:
            changes = Changes(self.pending, self.lost, self.seen)
            self.pending, self.lost, self.seen = OrderedDict(), 0, 0
        return changes

    # -- the event loop's side ------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            if not self.pages and self.idle_since is not None:
                if time.monotonic() - self.idle_since > IDLE_STOP:
                    self.stop()
                    self.take()
                    return
            changes = self.take()
            for page in list(self.pages):
                try:
                    await page.flush(changes)
                except Exception:  # one page's failure must not stop the others'
                    logger.exception("live_page_failed page=%s", type(page).__name__)


_feeds: dict[int, Feed] = {}  # id of the event loop -> its feed


def feed_for(engine: Any) -> Feed:
    """The feed of the running event loop (one per ASGI process), for ``engine``."""
    loop = asyncio.get_running_loop()
    feed = _feeds.get(id(loop))
    if feed is None or feed.loop is not loop or feed.engine is not engine:
        if feed is not None:
            feed.stop()
        feed = _feeds[id(loop)] = Feed(engine, loop)
    return feed
