"""What each live page is shown: a snapshot when it subscribes, then, at each flush of the
feed, one message with what changed for it (nothing when nothing did).

- ``jobs``: the job list. The rows on the page (by id); with ``insert``, new jobs that match
  its filters, newest first, at most a page of them per message.
- ``job``: one job's page: its state, the transitions as they happen, its log lines, and its
  result or errors when it ends.
- ``queues``: the queues dashboard, rendered again (counts, charts, oldest, workers) once a
  second while it changes.
- ``workers``: each worker's state, heartbeat, current jobs and counters, once a second.
- ``schedules``: each schedule's state, next and last run, last job, once a second (from the
  mirror's rows, as the list shows them).

Everything a page asks for is checked (a wrong value gets an error message, never an
exception), and nothing it sends changes anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from ..engine.errors import InvalidJob, JobqueueError
from ..engine.job import FINISHED_STATES, JobState, split_job_id
from .counts import MAX_QUERY, ListCounts
from .feed import FLUSH_EVERY, Changes, Feed
from .state import job_state

MAX_IDS = 500  # rows a job list follows at most
NEW_PER_MESSAGE = 50  # new jobs a job list is sent per message at most
# How far before its rendering a job list looks for jobs it may lack (ms): the mirror's lag
# behind Redis, and the web server's clock against Redis's.
RENDER_MARGIN_MS = 10_000
RESULT_PREVIEW = 10_000  # characters of a result or traceback a job page is sent
SLOW_EVERY = 1.0  # seconds between two renderings of the dashboard or the workers

Send = Callable[[dict[str, Any]], Awaitable[None]]


class Refused(ValueError):
    """A subscription that names something wrong: the message says what."""


def _text(value: Any, name: str, limit: int = 200) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise Refused(f"{name} must be a string of at most {limit} characters.")
    return value


class Page:
    permission = "jobqueue.view_job"

    def __init__(self, engine: Any, send: Send, feed: Feed) -> None:
        self.engine = engine
        self.send = send
        self.feed = feed

    async def snapshot(self) -> None:
        raise NotImplementedError

    async def flush(self, changes: Changes) -> None:
        raise NotImplementedError

    def follows(self) -> list[str]:
        """The jobs whose events the page needs merged."""
        return []

    def inserts(self) -> bool:
        """Whether the page takes new jobs."""
        return False

    def close(self) -> None:
        """The page is gone: stop what it started."""


class JobList(Page):
    def __init__(
        self, engine: Any, send: Send, feed: Feed, user: Any, request: dict[str, Any]
    ) -> None:
        super().__init__(engine, send, feed)
        ids = request.get("ids", [])
        if not isinstance(ids, list) or len(ids) > MAX_IDS:
            raise Refused(f"ids must be a list of at most {MAX_IDS} job ids.")
        for job_id in ids:
            try:
                split_job_id(job_id)
            except InvalidJob as exc:
                raise Refused(str(exc)) from None
        self.ids: dict[str, None] = dict.fromkeys(ids)
        filters = request.get("filters") or {}
        if not isinstance(filters, dict) or set(filters) - {"status", "queue", "task"}:
            raise Refused("filters may hold status, queue and task only.")
        self.filters = {k: _text(v, k) for k, v in filters.items() if v}
        self.insert = bool(request.get("insert"))
        # When the page's rows were rendered (ms): the jobs created since, which the mirror may
        # not have written yet, are sent with the snapshot.
        self.since = request.get("since")
        if self.since is not None and (not isinstance(self.since, int) or self.since < 0):
            raise Refused("since must be the time the page was rendered, in ms since the epoch.")
        # The list's query string: its sidebar and count are rendered for it.
        self.counts = ListCounts(user, _text(request.get("query", ""), "query", MAX_QUERY), send)

    def follows(self) -> list[str]:
        return list(self.ids)

    def inserts(self) -> bool:
        return self.insert

    def close(self) -> None:
        self.counts.stop()

    async def snapshot(self) -> None:
        jobs = await sync_to_async(self.engine.find, thread_sensitive=False)(list(self.ids))
        await self.send({"type": "snapshot", "jobs": [job_state(job) for job in jobs]})
        self.counts.changed()  # they may have changed while the page was away
        if self.insert and self.since is not None:
            new = await sync_to_async(self._created_since, thread_sensitive=False)(self.since)
            if new:
                for row in new:
                    self.ids[row["id"]] = None
                self.feed.follow(row["id"] for row in new)
                await self.send({"type": "jobs", "jobs": [], "new": new})

    def _created_since(self, since_ms: int) -> list[dict[str, Any]]:
        """The jobs created since the page was rendered (less RENDER_MARGIN) that it does not
        show and that match its filters, newest first: the page's rows come from the mirror,
        which may not have written them, and their events came before the subscription."""
        queues = [self.filters["queue"]] if "queue" in self.filters else None
        events = self.engine.event_tail().created_since(since_ms - RENDER_MARGIN_MS, queues)
        ids = list(dict.fromkeys(e.job_id for e in events if e.job_id not in self.ids))
        ids = ids[:NEW_PER_MESSAGE]
        return [
            job_state(job)
            for job in self.engine.find(ids)
            if self.shows(job.state.value, job.queue, job.task)
        ]

    def shows(self, status: str, queue: str, task: str | None) -> bool:
        """Whether a job with these status, queue and task passes the page's filters."""
        shown = {"status": status, "queue": queue, "task": task}
        return all(shown[name] == value for name, value in self.filters.items())

    async def flush(self, changes: Changes) -> None:
        if changes.lost:
            await self.send({"type": "resync"})
            return
        if changes.seen:
            self.counts.changed()
        self.counts.due()
        if not changes:
            return
        rows = [changes.deltas[i].as_message() for i in self.ids if i in changes.deltas]
        new = []
        if self.insert:
            for job_id in reversed(changes.deltas):
                delta = changes.deltas[job_id]
                if (
                    delta.first_v == 1
                    and job_id not in self.ids
                    and self.shows(delta.status, delta.queue, delta.changes.get("task"))
                ):
                    new.append({**delta.as_message(), "queue": delta.queue})
                    if len(new) >= NEW_PER_MESSAGE:
                        break
            for row in reversed(new):
                self.ids[row["id"]] = None
            self.feed.follow(row["id"] for row in new)
            dropped = []
            while len(self.ids) > MAX_IDS:
                dropped.append(next(iter(self.ids)))
                del self.ids[dropped[-1]]
            self.feed.unfollow(dropped)
        if rows or new:
            await self.send({"type": "jobs", "jobs": rows, "new": new})


class JobDetail(Page):
    def __init__(self, engine: Any, send: Send, feed: Feed, request: dict[str, Any]) -> None:
        super().__init__(engine, send, feed)
        try:
            split_job_id(request.get("id"))
        except InvalidJob as exc:
            raise Refused(str(exc)) from None
        self.job_id: str = request["id"]
        self.logs = request.get("logs", 0)
        if not isinstance(self.logs, int) or self.logs < 0:
            raise Refused("logs must be the number of log records the page shows.")
        self.running = True  # read its logs while it may write some

    def follows(self) -> list[str]:
        return [self.job_id]

    async def snapshot(self) -> None:
        await self.send(await sync_to_async(self._whole, thread_sensitive=False)())

    def _whole(self) -> dict[str, Any]:
        """The job as Redis holds it, its result (up to RESULT_PREVIEW characters; a bigger
        one only by its size: not read to be cut) or errors, and the log records new to the
        page (its timeline comes from the mirror's rows when the page was rendered)."""
        try:
            job, result_size = self.engine.head(self.job_id)
            if 0 < result_size <= RESULT_PREVIEW:
                job = self.engine.get(self.job_id)
        except JobqueueError:
            return {"type": "job", "job": None}
        self.running = job.state not in FINISHED_STATES
        state = job_state(job)
        if job.result_json is not None:
            state["result"] = job.result_json
        if result_size:
            state["result_size"] = result_size
        state["errors"] = [
            {"c": e.exception_class, "tb": e.traceback[-RESULT_PREVIEW:], "n": e.attempt}
            for e in job.errors
        ]
        # Transitions the page may lack: its rows come from the mirror, which may lag.
        state["timeline"] = self.feed.timeline(self.job_id)
        return {"type": "job", "job": state, "logs": self._new_logs()}

    def _new_logs(self) -> list[dict[str, Any]]:
        records = self.engine.logs.read(self.job_id, start=self.logs)
        self.logs += len(records)
        return records

    async def flush(self, changes: Changes) -> None:
        delta = changes.deltas.get(self.job_id)
        if delta is not None and delta.finished:
            await self.snapshot()  # the whole job: its result, its errors, its last logs
            await self.send({"type": "job", "job": delta.as_message(timeline=True), "logs": []})
            return
        logs = []
        if self.running:
            logs = await sync_to_async(self._new_logs, thread_sensitive=False)()
        if delta is not None or logs:
            job = delta.as_message(timeline=True) if delta is not None else None
            await self.send({"type": "job", "job": job, "logs": logs})


class Slow(Page):
    """A page rendered again from scratch every SLOW_EVERY seconds, sent when it changed."""

    def __init__(self, engine: Any, send: Send, feed: Feed) -> None:
        super().__init__(engine, send, feed)
        self.every = max(1, round(SLOW_EVERY / FLUSH_EVERY))
        self.flushes = 0
        self.last: Any = None

    async def render(self) -> dict[str, Any]:
        raise NotImplementedError

    async def snapshot(self) -> None:
        self.last = await self.render()
        await self.send(self.last)

    async def flush(self, changes: Changes) -> None:
        self.flushes += 1
        if self.flushes % self.every:
            return
        message = await self.render()
        if message != self.last:
            self.last = message
            await self.send(message)


class Workers(Slow):
    permission = "jobqueue.view_worker"

    async def render(self) -> dict[str, Any]:
        workers = await sync_to_async(self.engine.workers.all, thread_sensitive=False)()
        return {
            "type": "workers",
            "workers": [
                {
                    "name": w.name,
                    "alive": w.alive,
                    "state": w.state,
                    "heartbeat": int(w.last_heartbeat.timestamp() * 1000)
                    if w.last_heartbeat
                    else None,
                    "current_jobs": list(w.current_jobs),
                    "successful": w.successful,
                    "failed": w.failed,
                    "working_time": w.working_time,
                }
                for w in workers
            ],
        }


class Schedules(Slow):
    permission = "jobqueue.view_schedule"

    async def render(self) -> dict[str, Any]:
        return {"type": "schedules", "schedules": await self._rows()}

    @database_sync_to_async
    def _rows(self) -> list[dict[str, str]]:
        from ..admin.schedules import live_rows

        return live_rows()


class Queues(Slow):
    permission = "jobqueue.view_queue"

    def __init__(self, engine: Any, send: Send, feed: Feed, user: Any) -> None:
        super().__init__(engine, send, feed)
        self.user = user

    async def render(self) -> dict[str, Any]:
        return {"type": "html", "target": "jq-queues", "html": await self._html()}

    @database_sync_to_async
    def _html(self) -> str:
        from ..admin.queues import render_rows

        return render_rows(self.user)


def page_for(engine: Any, send: Send, feed: Feed, user: Any, request: Any) -> Page:
    """The page a subscription asks for; Refused when it is malformed."""
    if not isinstance(request, dict):
        raise Refused("subscribe must be an object naming a page.")
    kind = request.get("page")
    if kind == "jobs":
        return JobList(engine, send, feed, user, request)
    if kind == "job":
        return JobDetail(engine, send, feed, request)
    if kind == "queues":
        return Queues(engine, send, feed, user)
    if kind == "workers":
        return Workers(engine, send, feed)
    if kind == "schedules":
        return Schedules(engine, send, feed)
    raise Refused(f"page must be jobs, job, queues, workers or schedules, not {kind!r}.")


__all__ = ["JobState", "Page", "Refused", "page_for"]
