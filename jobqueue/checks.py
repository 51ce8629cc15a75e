"""System checks. Ids are stable; the docs list them in docs/settings.md.

- ``jobqueue.E001``: ``JOBQUEUE`` is not a dict, or has a key jobqueue does not know.
- ``jobqueue.E002``: a ``JOBQUEUE`` key has a malformed value.
- ``jobqueue.E003``: a periodic schedule in ``JOBQUEUE["SCHEDULES"]`` is malformed.
- ``jobqueue.W001``: ``jobqueue`` is listed after ``channels`` in ``INSTALLED_APPS``, so
  ``manage.py runworker`` runs channels' command instead of jobqueue's.
- ``jobqueue.E010``: a ``RedisBackend`` in ``TASKS`` while ``jobqueue`` is not installed
  (reported by the task framework's own check, ``RedisBackend.check``: this module is not
  loaded then).
- ``jobqueue.E011``, ``jobqueue.E012``: a ``RedisBackend``'s ``OPTIONS`` or ``QUEUES`` are
  wrong (``check_backends``).

The app config (``apps.py``) imports this module, which registers them, so they run on every
stack, whatever else is installed.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from . import conf


@checks.register(checks.Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    for kind, key, value in conf.validate(getattr(settings, "JOBQUEUE", {})):
        if kind == "value":
            option = conf.OPTIONS[key]
            messages.append(
                checks.Error(
                    conf.describe(kind, key, value),
                    hint=f"{key}: {option.help}",
                    id="jobqueue.E002",
                )
            )
        else:
            messages.append(
                checks.Error(
                    conf.describe(kind, key, value),
                    hint="Fix or remove it; docs/settings.md lists every setting.",
                    id="jobqueue.E001",
                )
            )
    return messages


@checks.register(checks.Tags.compatibility)
def check_app_order(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    apps = [
        "channels" if name == "channels.apps.ChannelsConfig" else name
        for name in settings.INSTALLED_APPS
    ]
    names = [a.removesuffix(".apps.JobqueueConfig") for a in apps]
    if "channels" in names and "jobqueue" in names:
        if names.index("channels") < names.index("jobqueue"):
            return [
                checks.Warning(
                    "'channels' is listed before 'jobqueue' in INSTALLED_APPS, so "
                    "'manage.py runworker' runs channels' worker, not jobqueue's.",
                    hint="Move 'jobqueue' above 'channels' in INSTALLED_APPS, or run "
                    "'manage.py jobqueue_worker' instead.",
                    id="jobqueue.W001",
                )
            ]
    return []


@checks.register(checks.Tags.compatibility)
def check_schedules(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if conf.validate(getattr(settings, "JOBQUEUE", {})):
        return []  # reported by check_settings
    from .schedules import validate_all

    return [
        checks.Error(
            problem, hint="See docs/settings.md, 'Periodic schedules'.", id="jobqueue.E003"
        )
        for problem in validate_all()
    ]


@checks.register(checks.Tags.compatibility)
def check_backends(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E011 and E012 for every jobqueue backend in ``TASKS``. The task framework's own check
    of every backend does not run on Django 5.2 unless the backport's app is installed, nor on
    Django 6.x unless ``django.tasks`` was imported before the checks ran; so jobqueue runs its
    own, and ``RedisBackend.check`` leaves these to it (each is reported once)."""
    from .backends import RedisBackend
    from .compat import task_backends

    messages: list[checks.CheckMessage] = []
    tasks = getattr(settings, "TASKS", {})
    for alias, params in tasks.items() if isinstance(tasks, dict) else ():
        try:
            backend_class = import_string(params["BACKEND"])
        except (ImportError, KeyError, TypeError):
            continue  # not a backend at all: the task framework's concern
        if isinstance(backend_class, type) and issubclass(backend_class, RedisBackend):
            backend = task_backends[alias]
            assert isinstance(backend, RedisBackend)
            messages += backend.configuration_errors()
    return messages
