"""``jobqueue enqueue`` and ``tasks``: a job of a registered task enqueued from the shell, and
the names of the tasks there are. Only tasks a worker would run are accepted (the worker's own
registry), through Django's task API so the task's options apply; every input is checked
before the job is written."""

from __future__ import annotations

import argparse
import inspect
from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError

from ..engine.errors import InvalidJob
from ..engine.job import MAX_PRIORITY, MIN_PRIORITY
from . import inputs
from .base import Output, Subcommand, json_flag

# -- tasks -------------------------------------------------------------------------------------


def registered_tasks() -> dict[str, Any]:
    """Every task a worker runs, by name: the registry the worker looks tasks up in, filled by
    importing each installed app's tasks module and JOBQUEUE['TASK_MODULES']."""
    from ..discovery import autodiscover_for_command
    from ..engine import default_registry

    autodiscover_for_command()
    return {name: default_registry.get(name) for name in default_registry.names()}


def task_facts(name: str, target: Any) -> dict[str, Any]:
    from ..compat import Task

    if not isinstance(target, Task):
        return {"name": name, "queue": None, "priority": None, "options": {}}
    options = {
        option: getattr(target, option)
        for option in ("max_attempts", "timeout", "result_ttl", "enqueue_on_commit")
        if getattr(target, option, None) is not None
    }
    if getattr(target, "unique_key", None) is not None:
        options["unique_key"] = True
    if target.takes_context:
        options["takes_context"] = True
    return {
        "name": name,
        "queue": target.queue_name,
        "priority": target.priority,
        "options": options,
    }


def tasks_handle(options: dict[str, Any], out: Output) -> None:
    facts = [task_facts(name, target) for name, target in registered_tasks().items()]
    if options["json"]:
        out.json(facts)
        return
    if not facts:
        out.line(
            "No task is registered: define tasks with @task in an installed app's tasks module "
            "or in a module listed in JOBQUEUE['TASK_MODULES']."
        )
        return
    for fact in facts:
        details = [f"queue {fact['queue']}"] if fact["queue"] else []
        if fact["priority"]:
            details.append(f"priority {fact['priority']}")
        details += [f"{k}={v}" for k, v in fact["options"].items()]
        out.line(f"{fact['name']}  ({', '.join(details)})" if details else fact["name"])


# -- enqueue -----------------------------------------------------------------------------------


def unknown_task(name: str, names: list[str]) -> CommandError:
    listed = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return CommandError(
        f"Task {name!r} is not a registered task, and only registered tasks run. Give a task's "
        f"import path as 'manage.py jobqueue tasks' lists them"
        + (f" ({listed})." if names else "; none is registered.")
    )


def check_call(name: str, task: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Refuse arguments the task's function cannot take, before the job exists (a worker
    would only fail it with a TypeError)."""
    try:
        signature = inspect.signature(task.func)
    except (TypeError, ValueError):  # a callable without a signature: let the worker judge
        return
    parameters = list(signature.parameters.values())
    if task.takes_context and parameters:
        parameters = parameters[1:]
    shown = signature.replace(parameters=parameters)
    try:
        shown.bind(*args, **kwargs)
    except TypeError as exc:
        raise CommandError(
            f"Task {name!r} cannot take these arguments: {exc}. Its signature is {name}{shown}."
        ) from None


def enqueue_handle(options: dict[str, Any], out: Output) -> None:
    from ..compat import InvalidTask, Task
    from ..conf import get_engine

    name = options["task"]
    tasks = registered_tasks()
    if name not in tasks:
        raise unknown_task(name, sorted(tasks))
    target = tasks[name]
    args = inputs.json_value("--args", options["json_args"], list, "a JSON array of arguments")
    kwargs = inputs.json_value(
        "--kwargs", options["json_kwargs"], dict, "a JSON object of keyword arguments"
    )
    priority = None
    if options["priority"] is not None:
        priority = inputs.number("--priority", options["priority"], minimum=-1e18, integer=True)
        if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            raise CommandError(
                f"--priority {priority} is out of range: use a whole number from {MIN_PRIORITY} "
                f"to {MAX_PRIORITY} (higher runs first)."
            )
    delay = None
    if options["delay"] is not None:
        delay = inputs.number("--delay", options["delay"], minimum=0)
    engine = get_engine()
    queue = options["queue"]
    try:
        if isinstance(target, Task):
            job_id = enqueue_task(name, target, args, kwargs, queue, priority, delay)
        else:  # a callable registered on the engine's registry directly
            from django.utils import timezone

            spec: dict[str, Any] = {"priority": priority or 0}
            spec["queue"] = inputs.known_queue(queue, engine) if queue else "default"
            if delay:
                spec["run_after"] = timezone.now() + timedelta(seconds=delay)
            job_id = engine.enqueue(name, args, kwargs, **spec).id
    except (InvalidJob, InvalidTask) as exc:
        raise CommandError(f"Task {name!r} was not enqueued: {exc}") from None
    if options["json"]:
        from .detail import job_json

        out.json(job_json(engine, engine.get(job_id), log_lines=None, timeline=False))
    else:
        out.line(job_id)


def enqueue_task(
    name: str,
    task: Any,
    args: list[Any],
    kwargs: dict[str, Any],
    queue: str | None,
    priority: int | None,
    delay: float | None,
) -> str:
    """Enqueue through Django's task API, so the task's own options apply (max_attempts,
    timeout, unique_key...) and ``task_enqueued`` is sent, as from the site's code."""
    from django.utils import timezone

    from ..backends import RedisBackend

    backend = task.get_backend()
    if queue is not None:
        queues = backend.queue_order if isinstance(backend, RedisBackend) else [task.queue_name]
        if queue not in queues:
            raise CommandError(
                f"Queue {queue!r} is not a queue of backend {task.backend!r}, which runs task "
                f"{name!r}: use one of {', '.join(queues)}."
            )
    check_call(name, task, args, kwargs)
    changes: dict[str, Any] = {}
    if queue is not None:
        changes["queue_name"] = queue
    if priority is not None:
        changes["priority"] = priority
    if delay:
        changes["run_after"] = timezone.now() + timedelta(seconds=delay)
    if changes:
        task = task.using(**changes)
    return str(task.enqueue(*args, **kwargs).id)


def enqueue_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "task", metavar="TASK", help="The task's import path, e.g. project.tasks.add."
    )
    # Not dest "args": Django's run_from_argv takes options["args"] as positional arguments.
    parser.add_argument(
        "--args",
        dest="json_args",
        default=None,
        help="Positional arguments, a JSON array: '[1, \"a\"]'.",
    )
    parser.add_argument(
        "--kwargs",
        dest="json_kwargs",
        default=None,
        help="Keyword arguments, a JSON object: '{\"a\": 1}'.",
    )
    parser.add_argument("--queue", default=None, help="The queue (default: the task's).")
    parser.add_argument(
        "--priority", default=None, help="-100 to 100, higher runs first (default: the task's)."
    )
    parser.add_argument(
        "--delay", default=None, help="Seconds to wait before the job may run (default: 0)."
    )
    json_flag(parser, "the new job")


def tasks_arguments(parser: argparse.ArgumentParser) -> None:
    json_flag(parser, "the tasks")


ENQUEUE = Subcommand(
    name="enqueue",
    help="Enqueue a job of a registered task; prints its id.",
    description=(
        "Enqueue one job of a registered task (its options apply: max_attempts, timeout, "
        "unique_key...) and print its id. Only tasks a worker would run are accepted: "
        "'manage.py jobqueue tasks' lists them."
    ),
    arguments=enqueue_arguments,
    handle=enqueue_handle,
)
TASKS = Subcommand(
    name="tasks",
    help="The registered tasks: the names 'enqueue' accepts.",
    description=(
        "List the tasks a worker runs (each installed app's tasks module and "
        "JOBQUEUE['TASK_MODULES']), with their queue and options."
    ),
    arguments=tasks_arguments,
    handle=tasks_handle,
)
SUBCOMMANDS = [ENQUEUE, TASKS]
