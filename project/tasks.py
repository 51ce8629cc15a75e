"""Example tasks of the demo site. Any installed app's ``tasks`` module is found by the worker."""

import asyncio
import random
import time

try:
    from django.tasks import task  # Django 6
except ImportError:
    from django_tasks import task  # Django 5.2 with the django-tasks backport


@task
def add(a, b):
    return a + b


@task(queue_name="emails", max_attempts=3)
def send_welcome_email(address: str) -> str:
    time.sleep(0.2)  # pretend to talk to an SMTP server
    return f"sent to {address}"


@task(max_attempts=4)
def flaky(chance_of_failure: float = 0.5) -> str:
    if random.random() < chance_of_failure:
        raise ConnectionError("the remote service did not answer")
    return "lucky"


@task(queue_name="reports", takes_context=True, timeout=120)
def build_report(context, rows: int = 50) -> dict:
    for done in range(1, rows + 1):
        time.sleep(0.05)
        if done % 10 == 0:
            context.set_progress(done, rows, f"{done} of {rows} rows")
    return {"rows": rows, "attempt": context.attempt}


@task
async def fetch_status(url: str) -> str:
    await asyncio.sleep(0.1)
    return f"{url} is up"
