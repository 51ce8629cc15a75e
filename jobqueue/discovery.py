"""Finding the tasks: each installed app's ``tasks`` module, plus ``JOBQUEUE["TASK_MODULES"]``.

Importing those modules creates their ``@task`` objects, which register themselves in the engine's
registry. Only these trusted modules are ever imported; a name found in job data never is.
"""

from __future__ import annotations

import logging
import threading
from importlib import import_module

from django.apps import apps
from django.utils.module_loading import module_has_submodule

from .conf import jobqueue_settings

logger = logging.getLogger("jobqueue.discovery")
_lock = threading.Lock()
_done = False


def task_modules() -> list[str]:
    names = [
        f"{config.name}.tasks"
        for config in apps.get_app_configs()
        if module_has_submodule(config.module, "tasks")
    ]
    return names + [m for m in jobqueue_settings.TASK_MODULES if m not in names]


def autodiscover(force: bool = False) -> list[str]:
    """Import every tasks module once; returns the modules imported. Import errors propagate:
    a broken tasks module must stop a worker from starting, not hide its tasks."""
    global _done
    with _lock:
        if _done and not force:
            return []
        modules = task_modules()
        for name in modules:
            import_module(name)
        _done = True
    logger.debug("autodiscovered modules=%s", ",".join(modules))
    return modules


def autodiscover_for_command() -> None:
    """:func:`autodiscover` for a management command: a tasks module that cannot be imported
    is a ``CommandError`` naming the error (the command must not go on without its tasks)."""
    from django.core.management.base import CommandError

    try:
        autodiscover()
    except Exception as exc:
        raise CommandError(
            f"A tasks module could not be imported: {type(exc).__name__}: {exc}"
        ) from exc
