"""The queues dashboard: its charts show their scale, a queue whose jobs wait with no worker to
take them stands out, the oldest waiting job reads as an age in words, and the live page's
rendering (``render_rows``) shows all of it. Real Redis, the real test database; the slow test
looks at the page in Debian's Chromium at 1400 and 800 px, light and dark."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobqueue.admin.queues import duration, render_rows, sparkline
from jobqueue.conf import get_engine
from jobqueue.mirror import Mirror
from jobqueue.models import Job, QueueStat
from tests import sample_tasks as t
from tests.browser import SHOTS, browser_or_skip, demo_site, launch, log_in

DASHBOARD = "admin:jobqueue_queue_changelist"


@pytest.fixture
def admin_user(db):
    return User.objects.create_superuser("boss", "boss@example.com", "pw")


@pytest.fixture
def boss(admin_user):
    """A client logged in as a superuser."""
    c = Client()
    c.force_login(admin_user)
    return c


def mirror():
    m = Mirror(get_engine(), consumer="test")
    m.drain()
    m.snapshot()


def visible_text(page: str) -> str:
    """What a person reads: no tooltips (``<title>``, title attributes), no tags."""
    page = re.sub(r"<title>.*?</title>", " ", page, flags=re.S)
    page = re.sub(r"<[^>]+>", " ", page)
    return re.sub(r"[ \t\r\n]+", " ", html.unescape(page))  # keeps no-break spaces


def row(page: str, queue: str) -> str:
    """The ``<tr>`` of ``queue`` on the dashboard."""
    found = re.search(
        rf'<tr class="([^"]*)" data-queue="{re.escape(queue)}">(.*?)</tr>', page, re.S
    )
    assert found, f"no row for {queue}"
    return found.group(0)


def live_worker(name: str, *queues: str, state: str = "idle") -> None:
    """A worker's heartbeat, as a running worker writes it."""
    get_engine().workers.heartbeat(
        name, {"name": name, "queues": ",".join(queues), "state": state}
    )


# -- the charts -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_charts_show_their_peak_with_its_unit_and_their_time_span(boss):
    t.add.enqueue(1, 1)
    mirror()
    now = timezone.now().replace(second=0, microsecond=0)
    QueueStat.objects.create(queue="default", minute=now - timedelta(minutes=5), succeeded=42)
    # One retry that waited 180,805 ms for a worker, one that waited nothing.
    QueueStat.objects.create(
        queue="default", minute=now - timedelta(minutes=2), succeeded=7, started=2, wait_ms=361_610
    )

    text = visible_text(row(boss.get(reverse(DASHBOARD)).content.decode(), "default"))
    assert "peak 42 jobs/min" in text and "peak 3.0 min" in text
    assert text.count("60 min ago") == 2 and text.count("now") >= 2


def test_a_chart_leaves_minutes_without_a_value_blank_and_says_when_it_is_empty():
    drawn = sparkline([None, 5.0, 10.0, None, None, 2.0], "Wait", duration)
    assert re.search(r'd="M[^"]*L[^"]*M[^"]*"', drawn)  # two runs, a gap between
    assert "peak 10 ms" in visible_text(drawn) and "this min 2 ms" in visible_text(drawn)
    empty = visible_text(sparkline([None] * 60, "Wait", duration))
    assert "none in the last hour" in empty and "peak" not in empty
    # Jobs handed straight to an idle worker wait 0 ms: that is a wait, not nothing.
    assert "peak 0 ms" in visible_text(sparkline([None, 0.0, None], "Wait", duration))
    idle = visible_text(sparkline([0.0] * 60, "Finished", duration, zero_is_nothing=True))
    assert "none in the last hour" in idle


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0 ms"), (999, "999 ms"), (4_250, "4.2 s"), (42_000, "42 s"), (180_805, "3.0 min")],
)
def test_waits_read_in_the_unit_that_suits_them(ms, text):
    assert duration(ms) == text
    assert duration(3 * 3_600_000) == "3.0 h"


# -- a queue nobody serves ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_queue_with_jobs_waiting_and_no_live_worker_stands_out(boss, keyspace):
    for queue in ("low", "low", "high", "emails", "reports"):
        t.add.using(queue_name=queue).enqueue(1, 1)
    get_engine().pause("reports")
    live_worker("w-high", "high", "default")
    live_worker("w-stopping", "emails", state="stopping")  # takes nothing new
    live_worker("w-dead", "emails")
    get_engine().client.zadd(f"{keyspace.prefix}:workers", {"w-dead": 0})  # heartbeat long ago
    t.add.enqueue(1, 1)
    mirror()
    get_engine().worker_protocol().claim("default", "w")  # default: running, none waiting
    page = boss.get(reverse(DASHBOARD)).content.decode()

    for queue, waiting in (("low", 2), ("emails", 1)):
        unserved = row(page, queue)
        assert "jq-unserved" in unserved.split(">")[0]
        assert "no worker" in visible_text(unserved)
        assert f"none: {waiting} waiting" in visible_text(unserved)
    assert "w-high" in visible_text(row(page, "high"))
    for queue in ("high", "default", "reports"):
        assert "jq-unserved" not in row(page, queue) and "no worker" not in row(page, queue)
    paused = visible_text(row(page, "reports"))
    assert "paused" in paused and "none (paused)" in paused

    # The live page renders the same rows.
    live = render_rows(User.objects.get(username="boss"))
    assert "no worker" in visible_text(row(live, "low"))
    assert "jq-unserved" not in row(live, "reports")


# -- the oldest waiting job -----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_oldest_waiting_job_reads_as_an_age_in_words_with_a_link(boss):
    first = t.add.using(queue_name="low").enqueue(1, 1)
    t.add.using(queue_name="low").enqueue(2, 2)
    retried = t.add.using(queue_name="high").enqueue(3, 3)
    mirror()
    now = timezone.now()
    Job.objects.filter(id=first.id).update(
        enqueued_at=now - timedelta(minutes=3, seconds=5), ready_at=now - timedelta(minutes=3)
    )
    # Enqueued days ago, retried by hand two minutes ago: it has waited two minutes.
    Job.objects.filter(id=retried.id).update(
        enqueued_at=now - timedelta(days=3), ready_at=now - timedelta(minutes=2)
    )
    page = boss.get(reverse(DASHBOARD)).content.decode()

    low = row(page, "low")
    link = reverse("admin:jobqueue_job_change", args=[quote(first.id)])
    found = re.search(rf'<a href="{re.escape(link)}"[^>]*><span data-since="(\d+)">([^<]*)<', low)
    assert found and found.group(2) == "3\xa0minutes"
    assert abs(int(found.group(1)) / 1000 - (now - timedelta(minutes=3)).timestamp()) < 1
    assert not re.search(r"\b\d{10,}\b", visible_text(low))  # no epoch in what a person reads
    assert "2\xa0minutes" in visible_text(row(page, "high"))
    assert "day" not in visible_text(row(page, "high"))


# -- poison entries -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_stream_entries_the_mirror_could_not_apply_are_counted_on_the_queues_row(boss):
    job = t.add.enqueue(1, 1)
    t.add.using(queue_name="low").enqueue(1, 1)
    engine = get_engine()
    key = engine.keys.queue("default").events
    bad = engine.client.xadd(
        key,
        {
            "id": job.id.split(":", 1)[1],
            "q": "default",
            "s": "running",
            "v": "2",
            "t": str(engine.now_ms()),
            "att": "two",
        },
    ).decode()
    mirror()
    page = boss.get(reverse(DASHBOARD)).content.decode()
    assert "1 poison entry" in visible_text(row(page, "default"))
    assert bad in row(page, "default")  # the tooltip names the entry
    assert "poison" not in row(page, "low")
    assert "1 poison entry" in visible_text(
        row(render_rows(User.objects.get(username="boss")), "default")
    )


# -- in a browser ---------------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path, keyspace):
    """The demo's admin over ASGI, a worker taking only 'default' (with its mirror), one
    superuser; jobs wait in 'low', and in a queue with the longest name there may be."""
    chromium = browser_or_skip()
    for queue in ("low", "low", "default", "x" * 64):
        get_engine().enqueue("tests.sample_tasks.add", [1, 2], queue=queue)
    with demo_site(tmp_path, keyspace, ("default",)) as demo:
        yield demo.base, chromium


@pytest.mark.slow
def test_the_dashboard_fits_800_pixels_and_shows_the_warning_light_and_dark(site):
    from playwright.sync_api import expect, sync_playwright

    base, chromium = site
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright, chromium)
        for width in (1400, 800):
            for scheme in ("light", "dark"):
                page = browser.new_page(
                    viewport={"width": width, "height": 900}, color_scheme=scheme
                )
                log_in(page, base, "/admin/jobqueue/queue/")
                expect(page.locator("#jq-live")).to_have_text("Live", timeout=15_000)
                low = page.locator('tr[data-queue="low"]')
                expect(low.locator(".jq-unserved-badge")).to_be_visible()
                expect(low.locator(".jq-unserved-badge")).to_have_text("⚠ no worker")
                default = page.locator('tr[data-queue="default"]')
                expect(default.locator(".jq-worker")).to_be_visible(timeout=15_000)
                expect(default.locator(".jq-unserved-badge")).to_have_count(0)
                long_row = page.locator(f'tr[data-queue="{"x" * 64}"] th')
                expect(long_row).to_be_visible(timeout=15_000)  # once the mirror has it
                assert page.evaluate(
                    "document.documentElement.scrollWidth <= window.innerWidth"
                ), f"the page is wider than {width} px"
                long_name = long_row.bounding_box()
                assert long_name and long_name["x"] + long_name["width"] <= width
                page.screenshot(path=str(SHOTS / f"queues-{width}-{scheme}.png"), full_page=True)
                page.close()
        browser.close()
