"""The live pages' websocket (``jobqueue/live/``, mounted by ``jobqueue.routing``): who may
connect, what a page is sent (a snapshot, then what changes, in version order), and how much
(bounded however many transitions Redis sees). Real Redis, the real consumer, channels'
WebsocketCommunicator; a real browser drives it in tests/test_live_browser.py."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission, User
from django.test import Client

from jobqueue.conf import get_engine
from jobqueue.engine import JobSpec
from jobqueue.engine.events import EventTail
from jobqueue.live import counts as counts_module
from jobqueue.live import feed as feed_module
from jobqueue.live import pages as pages_module
from jobqueue.routing import websocket_urlpatterns
from tests import sample_tasks as t

pytestmark = [pytest.mark.django_db(transaction=True)]

APP = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
PATH = "/jobqueue/live/"


def cookie_for(user: User | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"origin", b"http://testserver")]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


def make_user(name: str, *perms: str, staff: bool = True, active: bool = True) -> User:
    user = User.objects.create_user(name, f"{name}@example.com", "pw", is_staff=staff)
    user.is_active = active
    user.save()
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


async def connect(headers):
    communicator = WebsocketCommunicator(APP, PATH, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def subscribed(headers, request: dict):
    """A socket connected with ``headers`` (accepted) that sent ``{"subscribe": request}``."""
    communicator, connected, _ = await connect(headers)
    assert connected
    await communicator.send_json_to({"subscribe": request})
    return communicator


async def receive(communicator, kind: str, timeout: float = 5.0) -> dict:
    """The next message of ``kind`` (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {kind!r} message within {timeout} s"
        message = await communicator.receive_json_from(timeout=left)
        if message.get("type") == kind:
            return message


@pytest.mark.parametrize(
    "who",
    ["anonymous", "inactive", "not staff", "staff without view_job", "foreign origin"],
)
def test_nobody_but_staff_who_may_view_jobs_gets_a_frame(who):
    user = None
    if who == "inactive":
        user = make_user("sleeper", "view_job", active=False)
    elif who == "not staff":
        user = make_user("plain", "view_job", staff=False)
    elif who in ("staff without view_job", "foreign origin"):
        user = make_user("nobody") if who != "foreign origin" else make_user("viewer", "view_job")
    headers = cookie_for(user)
    if who == "foreign origin":
        headers = [(b"origin", b"http://evil.example"), *headers[1:]]

    async def scenario():
        communicator, connected, code = await connect(headers)
        assert not connected
        assert code in (4403, 1000, None)  # refused before accepting: nothing sent
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_a_job_list_gets_a_snapshot_then_its_rows_changes_in_version_order():
    viewer = make_user("viewer", "view_job")
    headers = cookie_for(viewer)
    first, second = t.add.enqueue(1, 2), t.add.enqueue(3, 4)
    protocol = get_engine().worker_protocol()

    async def scenario():
        communicator = await subscribed(headers, {"page": "jobs", "ids": [first.id, second.id]})
        snapshot = await receive(communicator, "snapshot")
        assert {job["id"]: job["status"] for job in snapshot["jobs"]} == {
            first.id: "queued",
            second.id: "queued",
        }
        claimed = await sync_to_async(protocol.claim)("default", "w1", count=1)
        [job] = claimed.jobs
        await sync_to_async(protocol.complete)(job.job_id, job.token, 3)
        seen: dict[str, list[int]] = {}
        deadline = time.monotonic() + 5
        while seen.get(job.job_id, [0])[-1] < 3 and time.monotonic() < deadline:
            message = await receive(communicator, "jobs")
            for row in message["jobs"]:
                seen.setdefault(row["id"], []).append(row["v"])
                if row["v"] == 3:
                    assert row["status"] == "succeeded"
        assert seen[job.job_id][-1] == 3 and seen[job.job_id] == sorted(seen[job.job_id])
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_new_jobs_matching_the_filters_come_to_a_list_that_inserts_them():
    viewer = make_user("viewer", "view_job")
    headers = cookie_for(viewer)

    async def scenario():
        communicator = await subscribed(
            headers,
            {
                "page": "jobs",
                "ids": [],
                "filters": {"queue": "low"},
                "insert": True,
            },
        )
        await receive(communicator, "snapshot")
        await sync_to_async(t.add.enqueue)(1, 1)  # another queue: not for this page
        wanted = await sync_to_async(t.add.using(queue_name="low").enqueue)(2, 2)
        message = await receive(communicator, "jobs")
        assert [row["id"] for row in message["new"]] == [wanted.id]
        assert message["new"][0]["task"] == "tests.sample_tasks.add"
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_a_burst_of_transitions_becomes_a_bounded_number_of_messages():
    viewer = make_user("viewer", "view_job")
    headers = cookie_for(viewer)
    engine = get_engine()
    ids = [job.id for job in engine.enqueue_many([JobSpec("tests.sample_tasks.add")] * 50)]

    async def scenario():
        communicator = await subscribed(headers, {"page": "jobs", "ids": ids[:20], "insert": True})
        await receive(communicator, "snapshot")
        started = time.monotonic()
        await sync_to_async(
            lambda: engine.enqueue_many([JobSpec("tests.sample_tasks.add")] * 10_000)
        )()
        protocol = engine.worker_protocol()
        claimed = await sync_to_async(protocol.claim)("default", "w", count=50)
        burst = time.monotonic() - started
        messages, rows, counts = 0, 0, 0
        while not await communicator.receive_nothing(timeout=1.0):  # until a quiet second
            message = await communicator.receive_json_from()
            if message["type"] == "counts":  # the list's count and sidebar
                counts += 1
                continue
            messages += 1
            rows += len(message["jobs"]) + len(message["new"])
            assert len(message["new"]) <= 50 and len(message["jobs"]) <= 500
        elapsed = time.monotonic() - started
        assert len(claimed.jobs) == 50
        # One message per flush at most, whatever the 10,050 transitions.
        assert messages <= elapsed / feed_module.FLUSH_EVERY + 2, (messages, elapsed, burst)
        assert rows <= messages * 550
        assert counts <= elapsed / counts_module.COUNTS_EVERY + 2
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_a_job_page_sees_its_logs_and_its_end():
    viewer = make_user("viewer", "view_job")
    headers = cookie_for(viewer)
    result = t.add.enqueue(20, 22)
    engine = get_engine()
    protocol = engine.worker_protocol()

    async def scenario():
        communicator = await subscribed(headers, {"page": "job", "id": result.id})
        first = await receive(communicator, "job")
        assert first["job"]["status"] == "queued" and first["logs"] == []
        [job] = (await sync_to_async(protocol.claim)("default", "w1")).jobs
        await sync_to_async(engine.logs.append)(job.job_id, [{"msg": "halfway", "level": "INFO"}])
        message = await receive(communicator, "job")
        while not message["logs"]:
            message = await receive(communicator, "job")
        assert message["logs"][0]["msg"] == "halfway"
        await sync_to_async(protocol.complete)(job.job_id, job.token, 42)
        message = await receive(communicator, "job")
        while message["job"] is None or "result" not in message["job"]:
            message = await receive(communicator, "job")
        assert message["job"]["status"] == "succeeded" and message["job"]["result"] == "42"
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_a_process_s_first_page_misses_nothing_written_after_its_snapshot(monkeypatch):
    """The first page of a process starts the follower; its snapshot waits until the
    follower has its place at the streams' end, so a job enqueued just after it arrives
    (the follower's first look at the streams is slowed down to widen the window)."""
    viewer = make_user("viewer", "view_job")
    headers = cookie_for(viewer)
    t.add.enqueue(0, 0)  # the queue's stream exists before the follower starts
    first_look = EventTail.follow_new_queues

    def slow_first_look(tail: EventTail) -> None:
        if not tail.started:
            time.sleep(0.5)
        first_look(tail)

    monkeypatch.setattr(EventTail, "follow_new_queues", slow_first_look)

    async def scenario() -> list[str]:
        communicator = await subscribed(headers, {"page": "jobs", "ids": [], "insert": True})
        await receive(communicator, "snapshot")
        job = await sync_to_async(t.add.enqueue)(1, 1)
        message = await receive(communicator, "jobs")
        await communicator.disconnect()
        return [job.id, *(row["id"] for row in message["new"])]

    for _ in range(3):  # each time in a new event loop: a new feed, a new follower
        wanted, *new = async_to_sync(scenario)()
        assert new == [wanted]


def test_a_list_gets_the_jobs_created_since_it_was_rendered_that_it_lacks():
    """The list's rows come from the mirror, which may lag: jobs created (and even finished)
    between its rendering and its subscription come with the snapshot, filtered as the page
    is; older jobs and the rows it shows do not."""
    viewer = make_user("viewer", "view_job")
    headers = cookie_for(viewer)
    engine = get_engine()
    old = t.add.using(queue_name="low").enqueue(0, 0)
    time.sleep(0.05)
    rendered = engine.now_ms()
    shown = t.add.using(queue_name="low").enqueue(1, 1)
    other_queue = t.add.enqueue(2, 2)
    missed = [t.add.using(queue_name="low").enqueue(3, n) for n in range(3)]
    engine.cancel(missed[0].id)  # changed since: sent as it is now

    async def scenario(since: int, ids: list[str]) -> list[dict]:
        subscribe = {"page": "jobs", "ids": ids, "filters": {"queue": "low"}, "insert": True}
        communicator = await subscribed(headers, {**subscribe, "since": since})
        await receive(communicator, "snapshot")
        message = await receive(communicator, "jobs")
        await communicator.disconnect()
        return message["new"]

    margin = pages_module.RENDER_MARGIN_MS
    new = async_to_sync(scenario)(rendered + margin, [shown.id])
    assert [row["id"] for row in new] == [job.id for job in reversed(missed)]  # newest first
    assert {row["status"] for row in new} == {"canceled", "queued"}
    assert new[0]["task"] == "tests.sample_tasks.add" and new[0]["enqueued_at"] > rendered
    assert old.id not in {row["id"] for row in new} and other_queue.id not in str(new)


@pytest.mark.parametrize(
    ("subscribe", "error"),
    [
        ({"page": "nope"}, "page must be"),
        ({"page": "jobs", "ids": ["no colon"]}, "not a jobqueue job id"),
        ({"page": "jobs", "ids": ["default:x"] * 501}, "at most 500"),
        ({"page": "jobs", "filters": {"args": "x"}}, "filters may hold"),
        ({"page": "job", "id": 5}, "not a jobqueue job id"),
        ({"page": "jobs", "since": "yesterday"}, "since must be"),
        ("jobs", "subscribe must be an object"),
    ],
)
def test_a_wrong_subscription_gets_an_error_not_a_crash(subscribe, error):
    viewer = make_user("viewer", "view_job")
    headers = cookie_for(viewer)

    async def scenario():
        communicator = await subscribed(headers, subscribe)
        message = await receive(communicator, "error")
        assert error in message["error"]
        await communicator.send_json_to({"retry": "default:x"})  # asks for a change: refused
        assert "subscribe" in (await receive(communicator, "error"))["error"]
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_the_workers_and_queues_pages_need_their_own_permission():
    viewer = make_user("viewer", "view_job")
    headers = cookie_for(viewer)

    async def scenario():
        communicator, connected, _ = await connect(headers)
        assert connected
        for page in ("workers", "queues", "schedules"):
            await communicator.send_json_to({"subscribe": {"page": page}})
            assert "may not" in (await receive(communicator, "error"))["error"]
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_the_schedules_page_follows_each_schedule():
    from jobqueue.models import Schedule

    viewer = make_user("viewer", "view_job", "view_schedule")
    headers = cookie_for(viewer)
    Schedule.objects.create(name="<b>nightly</b>", task="tests.sample_tasks.add", every=60)

    async def scenario():
        communicator = await subscribed(headers, {"page": "schedules"})
        first = await receive(communicator, "schedules")
        assert first["schedules"] == [
            {
                "name": "<b>nightly</b>",
                "state": "active",
                "next": "—",
                "last": "never",
                "last_job": "",
            }
        ]
        await database_sync_to_async(
            lambda: Schedule.objects.filter(pk="<b>nightly</b>").update(paused=True)
        )()
        second = await receive(communicator, "schedules", timeout=5)
        assert second["schedules"][0]["state"] == "paused"
        await communicator.disconnect()

    async_to_sync(scenario)()


@pytest.mark.slow
def test_a_socket_open_longer_than_every_redis_timeout_still_gets_updates():
    """The feed reads Redis with blocking reads of half a second on a socket whose timeout is
    10 s, and no channel layer is involved (channels_redis#422 drops sockets when one is): a
    page open for longer than all of those still hears of a change."""
    viewer = make_user("viewer", "view_job")
    headers = cookie_for(viewer)
    result = t.add.enqueue(1, 1)
    protocol = get_engine().worker_protocol()

    async def scenario():
        communicator = await subscribed(headers, {"page": "job", "id": result.id})
        await receive(communicator, "job")
        await asyncio.sleep(12)
        await sync_to_async(protocol.claim)("default", "w1")
        message = await receive(communicator, "job")
        assert message["job"]["status"] == "running"
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_a_job_list_gets_its_count_and_filter_sidebar_as_jobs_change():
    from jobqueue.mirror import Mirror

    viewer = make_user("viewer", "view_job")
    headers = cookie_for(viewer)
    first, _ = t.add.enqueue(1, 2), t.add.enqueue(3, 4)
    mirror = Mirror(get_engine(), consumer="test")
    mirror.drain()
    protocol = get_engine().worker_protocol()

    async def scenario():
        communicator = await subscribed(
            headers,
            {
                "page": "jobs",
                "ids": [first.id],
                "filters": {"status": "queued"},
                "query": "status__exact=queued&_facets=1",
            },
        )
        await receive(communicator, "snapshot")
        claimed = await sync_to_async(protocol.claim)("default", "w1", count=1)
        [job] = claimed.jobs
        await sync_to_async(protocol.complete)(job.job_id, job.token, 3)
        await sync_to_async(mirror.drain)()
        counts = await receive(communicator, "counts", timeout=8)
        while counts["count"] != 1:  # a count may have run before the mirror wrote
            counts = await receive(communicator, "counts", timeout=8)
        assert counts["count_text"] == "1 job"
        sidebar = counts["filters"]
        assert "Succeeded (1)" in sidebar and "Queued (1)" in sidebar and "Hide counts" in sidebar
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_a_job_list_asking_counts_for_a_bad_query_gets_none_and_keeps_its_rows():
    viewer = make_user("viewer", "view_job")
    headers = cookie_for(viewer)
    job = t.add.enqueue(1, 2)

    async def scenario():
        communicator = await subscribed(
            headers, {"page": "jobs", "ids": [job.id], "query": "nosuchfield=1"}
        )
        await receive(communicator, "snapshot")
        protocol = get_engine().worker_protocol()
        claimed = await sync_to_async(protocol.claim)("default", "w1", count=1)
        message = await receive(communicator, "jobs")
        assert message["jobs"][0]["status"] == "running" and claimed.jobs
        deadline = time.monotonic() + 3  # counts would come within 2.5 s
        while time.monotonic() < deadline:
            if not await communicator.receive_nothing(timeout=0.3):
                assert (await communicator.receive_json_from())["type"] != "counts"
        await communicator.send_json_to({"subscribe": {"page": "jobs", "query": "x" * 2001}})
        error = await receive(communicator, "error")
        assert "query must be a string of at most 2000 characters" in error["error"]
        await communicator.disconnect()

    async_to_sync(scenario)()
