"""The registry of known tasks: the only callables a worker will ever run.

A job names its task by a string. The worker looks the name up here and nowhere else: a name
that is not registered (``os.system``, ``builtins.eval``, any dotted path) is refused, and
nothing is imported to resolve it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .errors import InvalidJob, UnknownTask

MAX_TASK_NAME = 200


class TaskRegistry:
    def __init__(self) -> None:
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()

    def register(self, name: str, target: Any) -> None:
        """Register ``target`` (a callable, or a Django Task) under ``name``."""
        if not isinstance(name, str) or not name or len(name) > MAX_TASK_NAME:
            raise InvalidJob(
                f"Task name {name!r} must be a non-empty string of at most 200 characters."
            )
        with self._lock:
            self._tasks[name] = target

    def unregister(self, name: str) -> None:
        with self._lock:
            self._tasks.pop(name, None)

    def get(self, name: str) -> Any:
        try:
            return self._tasks[name]
        except (KeyError, TypeError):
            raise UnknownTask(
                f"Task {name!r} is not a registered task; only registered tasks run. Define it "
                "with @task in an installed app's tasks module (or a module listed in "
                "JOBQUEUE['TASK_MODULES'])."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def task(self, name: str | None = None) -> Callable[[Callable], Callable]:
        """Decorator registering a plain function (for using the engine without Django)."""

        def decorate(func: Callable) -> Callable:
            self.register(name or f"{func.__module__}.{func.__qualname__}", func)
            return func

        return decorate


default_registry = TaskRegistry()
