"""The demo's example tasks as the demo page and the first start's seeding see them: what each
one shows, the arguments of its n-th job, and one way to enqueue a batch of them."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone

from jobqueue import api
from jobqueue.schedules import all_schedules

from . import tasks


@dataclass(frozen=True)
class Example:
    name: str  # the task's function name, also the demo page's form value
    task: Any
    shows: str  # one sentence: what a person sees when it runs
    arguments: Callable[[int], tuple[tuple, dict]]  # the n-th job's (args, kwargs), n from 1

    @property
    def queue(self) -> str:
        return str(self.task.queue_name)

    @property
    def traits(self) -> list[str]:
        """The task's options worth knowing, in words: ``["4 attempts", "timeout 3 s"]``."""
        task = self.task
        traits = []
        if (task.max_attempts or 1) > 1:
            traits.append(f"{task.max_attempts} attempts")
        if task.timeout:
            traits.append(f"timeout {task.timeout:g} s")
        if task.unique_key:
            traits.append("unique")
        if inspect.iscoroutinefunction(task.func):
            traits.append("async")
        for schedule in all_schedules().values():
            if schedule.task == task.module_path:
                when = f"cron {schedule.cron}" if schedule.cron else f"every {schedule.every:g} s"
                traits.append(f"periodic: {when}")
        return traits


EXAMPLES = [
    Example(
        "add",
        tasks.add,
        "Fast: adds two numbers and returns their sum, in about a millisecond.",
        lambda n: ((n, n * 10), {}),
    ),
    Example(
        "send_welcome_email",
        tasks.send_welcome_email,
        "Its own queue, emails: takes 0.2 s and writes a log line, kept on the job's page.",
        lambda n: ((f"user{n}@example.com",), {}),
    ),
    Example(
        "build_report",
        tasks.build_report,
        "Slow, on the reports queue: 5 seconds with a progress bar that moves and log lines.",
        lambda n: ((), {"rows": 100}),
    ),
    Example(
        "flaky",
        tasks.flaky,
        "Fails at random and is retried, up to 4 attempts, after a growing backoff: each "
        "failed attempt keeps its traceback.",
        lambda n: ((0.6,), {}),
    ),
    Example(
        "always_fails",
        tasks.always_fails,
        "Fails every time with a clear exception: a failed job, its traceback, and its Retry "
        "button.",
        lambda n: ((), {"invoice": 40 + n}),
    ),
    Example(
        "runs_too_long",
        tasks.runs_too_long,
        "Wants 30 seconds but has a 3 s timeout: the worker stops it and it fails with "
        "JobTimeout.",
        lambda n: ((), {}),
    ),
    Example(
        "refresh_cache",
        tasks.refresh_cache,
        "Unique: while one waits or runs, enqueueing it again returns that same job. Ask for "
        "ten, get one.",
        lambda n: (("home",), {}),
    ),
    Example(
        "fetch_status",
        tasks.fetch_status,
        "An async def task: the worker awaits it.",
        lambda n: ((f"https://example.com/{n}",), {}),
    ),
    Example(
        "heartbeat",
        tasks.heartbeat,
        "Periodic: its schedule enqueues it every minute (and build_report every 2 minutes, "
        "on a cron expression).",
        lambda n: ((), {}),
    ),
]
BY_NAME = {example.name: example for example in EXAMPLES}


def enqueue_example(
    example: Example,
    count: int = 1,
    *,
    priority: int | None = None,
    delay: float = 0,
    queue: str | None = None,
) -> list[Any]:
    """Enqueue ``count`` jobs of ``example`` (its own queue unless ``queue`` is given, ready
    after ``delay`` seconds) and return their TaskResults, in one round trip to Redis. A
    unique task gives the same job for each: its results may repeat an id."""
    options: dict[str, Any] = {}
    if priority is not None:
        options["priority"] = priority
    if queue:
        options["queue_name"] = queue
    if delay > 0:
        options["run_after"] = timezone.now() + timedelta(seconds=delay)
    task = example.task.using(**options) if options else example.task
    calls = [example.arguments(n) for n in range(1, count + 1)]
    if count == 1:
        args, kwargs = calls[0]
        return [task.enqueue(*args, **kwargs)]
    return api.enqueue_many(
        task, args=[args for args, _ in calls], kwargs=[kwargs for _, kwargs in calls]
    )
