"""The live admin in a real browser (see ``tests/browser``): a job enqueued from this process
appears in the open job list, turns running, then succeeded, and its page's progress bar and
log lines move, all without a reload. Screenshots of each page are kept in
``test-screenshots/``."""

from __future__ import annotations

import pytest

from tests import sample_tasks as t
from tests.browser import browser_or_skip, demo_site, launch, log_in, shot

pytestmark = pytest.mark.slow


@pytest.fixture
def site(tmp_path, keyspace):
    chromium = browser_or_skip()
    with demo_site(tmp_path, keyspace) as demo:
        yield demo, chromium, tmp_path


def test_the_admin_follows_a_job_live_in_a_real_browser(site):
    from playwright.sync_api import expect, sync_playwright

    demo, chromium, tmp_path = site
    base = demo.base
    with sync_playwright() as playwright:
        browser = launch(playwright, chromium)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        log_in(page, base, "/admin/jobqueue/job/")
        expect(page.locator("#jq-live")).to_have_text("Live", timeout=15_000)
        shot(page, tmp_path, "1-job-list-empty")

        result = t.progress_steps.enqueue(5, 0.6)  # from this process, not the browser
        row = page.locator(f'#result_list code[data-job="{result.id}"]').locator("xpath=../../..")
        expect(row).to_have_count(1, timeout=15_000)  # appeared without a reload
        expect(row.locator(".field-status_badge")).to_have_text("running", timeout=15_000)
        shot(page, tmp_path, "2-job-list-running")
        expect(row.locator(".field-status_badge")).to_have_text("succeeded", timeout=30_000)
        expect(row.locator(".field-progress_display")).to_contain_text("100%")
        shot(page, tmp_path, "3-job-list-succeeded")

        second = t.progress_steps.enqueue(6, 0.7)
        job_url = page.locator(f'code[data-job="{second.id}"]').locator("xpath=..")
        expect(job_url).to_have_count(1, timeout=15_000)
        job_url.click()
        page.wait_for_selector("#jq-status")
        expect(page.locator("#jq-live")).to_have_text("Live", timeout=15_000)
        expect(page.locator("#jq-status")).to_have_text("running", timeout=15_000)
        expect(page.locator("#jq-progress")).to_contain_text("of 6", timeout=15_000)
        first_progress = page.locator("#jq-progress").inner_text()
        expect(page.locator("#jq-progress")).not_to_have_text(first_progress, timeout=10_000)
        expect(page.locator("#jq-logs")).to_contain_text("step 2 of 6", timeout=15_000)
        shot(page, tmp_path, "4-job-page-running")
        expect(page.locator("#jq-status")).to_have_text("succeeded", timeout=30_000)
        expect(page.locator("#jq-result pre")).to_have_text("6", timeout=15_000)
        expect(page.locator("#jq-timeline tbody tr")).to_have_count(3, timeout=15_000)
        shot(page, tmp_path, "5-job-page-succeeded")

        page.goto(f"{base}/admin/jobqueue/queue/")
        expect(page.locator("#jq-live")).to_have_text("Live", timeout=15_000)
        shot(page, tmp_path, "6-queues")
        page.goto(f"{base}/admin/jobqueue/worker/")
        expect(page.locator("#jq-live")).to_have_text("Live", timeout=15_000)
        expect(page.locator(".field-liveness").first).to_contain_text("alive", timeout=15_000)
        shot(page, tmp_path, "7-workers")
        browser.close()


HIDE = """hidden => {
    Object.defineProperty(document, "hidden", {configurable: true, get: () => hidden});
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_a_page_says_when_it_is_not_live_catches_up_and_rests_while_hidden(site):
    """The server goes away: the page says so, and back, it shows the jobs it missed. A hidden
    tab closes its socket and catches up when shown again."""
    from playwright.sync_api import expect, sync_playwright

    demo, chromium, tmp_path = site
    with sync_playwright() as playwright:
        browser = launch(playwright, chromium)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        log_in(page, demo.base, "/admin/jobqueue/job/")
        indicator = page.locator("#jq-live")
        expect(indicator).to_have_text("Live", timeout=15_000)

        demo.stop_server()
        expect(indicator).to_have_text("Reconnecting…", timeout=10_000)
        shot(page, tmp_path, "8-reconnecting")
        # While the page has no server, a job comes, and the mirror is down too (as far
        # behind as a mirror gets): the page, back, shows it all the same, from Redis.
        demo.stop_worker()
        missed = t.add.enqueue(1, 2)
        demo.start_server()
        expect(indicator).to_have_text("Live", timeout=40_000)
        row = page.locator(f'#result_list code[data-job="{missed.id}"]').locator("xpath=../../..")
        expect(row.locator(".field-status_badge")).to_have_text("queued", timeout=15_000)
        demo.start_worker()
        expect(row.locator(".field-status_badge")).to_have_text("succeeded", timeout=30_000)

        page.evaluate(HIDE, True)
        expect(indicator).to_have_text("Paused", timeout=15_000)
        while_hidden = t.add.enqueue(3, 4)
        hidden_row = page.locator(f'#result_list code[data-job="{while_hidden.id}"]')
        page.wait_for_timeout(2_000)
        expect(hidden_row).to_have_count(0)  # a hidden tab takes nothing
        page.evaluate(HIDE, False)
        expect(indicator).to_have_text("Live", timeout=15_000)
        expect(hidden_row).to_have_count(1, timeout=15_000)
        browser.close()
