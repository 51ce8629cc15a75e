"""Every jobqueue admin page in a real browser (see ``tests/browser``), with real and hostile
data: at 1400 and 800 px wide, light and dark, nothing overflows the window, no list column is
hidden at 1400 px, and nothing from job data runs as script. The screenshots (kept in
``test-screenshots/``) are for a person to look at."""

from __future__ import annotations

import json
import time

import pytest

from jobqueue.conf import get_engine
from tests import sample_tasks as t
from tests.browser import browser_or_skip, demo_site, launch, log_in, shot

pytestmark = pytest.mark.slow

XSS = '<img src=x onerror="window.jqXss=1"><script>window.jqXss=2</script>'
SCHEDULES = {
    "nightly-report": {"task": "tests.sample_tasks.add", "every": 3600, "args": [1, 2]},
    XSS: {"task": "tests.sample_tasks.log_order", "every": 7200, "args": [XSS]},
}


def settle(job_ids: list[str], ended=frozenset({"succeeded", "failed"})) -> None:
    """Wait until these jobs have ended."""
    engine = get_engine()
    deadline = time.monotonic() + 60
    while True:
        states = {job.state.value for job in engine.find(job_ids)}
        if states <= ended:
            return
        assert time.monotonic() < deadline, states
        time.sleep(0.2)


@pytest.fixture
def site(tmp_path, keyspace):
    chromium = browser_or_skip()
    # The worker leaves the "reports" queue alone: its jobs wait with no worker.
    args = ("default", "high", "low", "emails")
    env = {"JOBQUEUE_TEST_SCHEDULES": json.dumps(SCHEDULES)}
    with demo_site(tmp_path, keyspace, args, **env) as demo:
        yield demo, chromium, tmp_path


def fill(engine) -> dict[str, str]:
    """Jobs of every kind a person meets; returns the ids of those whose pages are visited."""
    done = [t.progress_steps.enqueue(3, 0.05).id for _ in range(3)]
    hostile_fail = t.boom.enqueue(XSS).id
    hostile_ok = t.log_order.enqueue(XSS).id
    flaky = t.fail_twice.enqueue("flaky").id
    retried = t.boom.enqueue("fails again after a manual retry").id
    big = t.log_order.enqueue("x" * 200_000).id
    for n in range(3):
        t.add.using(queue_name="reports").enqueue(n, n)
    settle([*done, hostile_fail, hostile_ok, flaky, retried, big])
    engine.retry(retried)
    time.sleep(0.3)
    settle([retried])
    canceled = t.sleep_for.enqueue(30).id
    t.sleep_for.enqueue(30)  # running while the pages are looked at
    deadline = time.monotonic() + 30
    while engine.get(canceled).state.value != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    engine.cancel(canceled, reason=f"stopped by hand: {XSS}")
    settle([canceled], ended={"canceled"})
    return {
        "failed": hostile_fail,
        "ok": hostile_ok,
        "retried": retried,
        "big": big,
        "canceled": canceled,
    }


def job_path(job_id: str) -> str:
    from django.contrib.admin.utils import quote

    return f"/admin/jobqueue/job/{quote(job_id)}/change/"


def layout_problems(page, width: int) -> list[str]:
    """Nothing overflows the window; at 1400 px, no list column is cut off."""
    problems = []
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    if overflow > 1:
        problems.append(f"the page is {overflow} px wider than the window")
    if width >= 1400:
        hidden = page.evaluate(
            """() => {
                const box = document.querySelector('#changelist .results');
                return box ? box.scrollWidth - box.clientWidth : 0;
            }"""
        )
        if hidden > 1:
            problems.append(f"{hidden} px of the list are scrolled out of view")
    if page.evaluate("window.jqXss") is not None:
        problems.append("job data ran as script")
    return problems


def test_every_page_reads_well_at_both_widths_in_light_and_dark(site):
    from playwright.sync_api import expect, sync_playwright

    demo, chromium, tmp_path = site
    base = demo.base
    ids = fill(get_engine())
    pages = {
        "jobs": "/admin/jobqueue/job/?_facets=1",
        "job-failed": job_path(ids["failed"]),
        "job-ok": job_path(ids["ok"]),
        "job-retried": job_path(ids["retried"]),
        "job-big": job_path(ids["big"]),
        "job-canceled": job_path(ids["canceled"]),
        "queues": "/admin/jobqueue/queue/",
        "workers": "/admin/jobqueue/worker/",
        "schedules": "/admin/jobqueue/schedule/",
    }
    problems = []
    with sync_playwright() as playwright:
        browser = launch(playwright, chromium)
        for scheme in ("light", "dark"):
            context = browser.new_context(color_scheme=scheme)
            page = context.new_page()
            log_in(page, base)
            for width in (1400, 800):
                page.set_viewport_size({"width": width, "height": 900})
                for name, path in pages.items():
                    page.goto(base + path)
                    if page.locator("#jq-live-config").count():
                        expect(page.locator("#jq-live")).to_have_text("Live", timeout=15_000)
                    problems += [
                        f"{name} at {width} px, {scheme}: {problem}"
                        for problem in layout_problems(page, width)
                    ]
                    shot(page, tmp_path, f"tour-{name}-{width}-{scheme}")
            context.close()
        browser.close()
    assert not problems, "\n".join(problems)
