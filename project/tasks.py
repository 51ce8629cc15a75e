"""Example tasks of the demo site, one of each kind a person meets (the demo page at /demo/
enqueues any of them). Any installed app's ``tasks`` module is found by the worker.

Each runs for seconds at most, so the demo feels alive. What a task logs with ``logging`` while
it runs (INFO and above) is kept with its job and shown on the job's admin page.
"""

import asyncio
import logging
import random
import time
from datetime import UTC, datetime

try:
    from django.tasks import task  # Django 6
except ImportError:
    from django_tasks import task  # Django 5.2 with the django-tasks backport


@task
def add(a, b):
    return a + b


logger = logging.getLogger(__name__)  # what a task logs while it runs is kept with its job


@task(queue_name="emails", max_attempts=3)
def send_welcome_email(address: str) -> str:
    time.sleep(0.2)  # pretend to talk to an SMTP server
    logger.info("Welcome email sent to %s", address)
    return f"sent to {address}"


@task(max_attempts=4)
def flaky(chance_of_failure: float = 0.5) -> str:
    """Fails at random; each failure is retried (up to 4 attempts in all) after a backoff."""
    if random.random() < chance_of_failure:
        raise ConnectionError("the remote service did not answer (this task fails at random)")
    return "lucky"


@task(queue_name="reports", takes_context=True, timeout=120)
def build_report(context, rows: int = 50) -> dict:
    """Slow, with progress and log lines: 0.05 s a row."""
    logger.info("Building a report of %d rows (attempt %d)", rows, context.attempt)
    for done in range(1, rows + 1):
        time.sleep(0.05)
        if done % 10 == 0 or done == rows:
            context.set_progress(done, rows, "rows written")
        if done % 25 == 0:
            logger.info("%d rows written", done)
    logger.info("Report ready: %d rows", rows)
    return {"rows": rows, "attempt": context.attempt}


@task
def always_fails(invoice: int = 42) -> None:
    """Fails every time, with a clear exception: a failed job, its traceback, Retry."""
    logger.warning("Looking for the customer of invoice %d", invoice)
    raise LookupError(f"invoice {invoice} has no customer (this task always fails)")


@task(takes_context=True, timeout=3)
def runs_too_long(context, seconds: int = 30) -> str:
    """Has a 3 s timeout and wants ``seconds``: stopped at 3 s, it fails with JobTimeout."""
    for second in range(1, seconds + 1):
        time.sleep(1)
        context.set_progress(second, seconds, f"{second} s of {seconds}")
    return "finished in time (it never does with its 3 s timeout)"


@task(takes_context=True, unique_key=lambda page="home": f"refresh:{page}")
def refresh_cache(context, page: str = "home") -> str:
    """Unique per page: while one waits or runs, enqueueing it again returns that job."""
    for step in range(1, 6):
        time.sleep(1)
        context.set_progress(step, 5, f"rendering {page}")
    return f"{page} refreshed"


@task
async def fetch_status(url: str) -> str:
    await asyncio.sleep(0.1)
    return f"{url} is up"


@task
def heartbeat() -> str:
    """Run every minute by the demo's schedule (settings.JOBQUEUE["SCHEDULES"])."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    logger.info("Still alive at %s", now)
    return now
