"""jobqueue's settings: one dict, ``settings.JOBQUEUE``, read lazily and reset on change.

This module is the only bridge from Django's settings into the engine. Nothing here is read at
import time; a malformed ``JOBQUEUE`` is reported by the system checks (``jobqueue.E001`` /
``jobqueue.E002``) and, if used anyway, raises ``ImproperlyConfigured`` naming the bad key.

Usage::

    from jobqueue.conf import jobqueue_settings
    jobqueue_settings.PREFIX
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def _default_redis_url() -> str:
    return os.environ.get("JOBQUEUE_REDIS_URL") or "redis://127.0.0.1:6379/0"


def _check_url(value: Any) -> str | None:
    from .engine.transport.connection import SCHEMES

    if not isinstance(value, str) or not value.startswith(SCHEMES):
        return f"must be a Redis URL starting with one of {', '.join(SCHEMES)}"
    return None


def _check_prefix(value: Any) -> str | None:
    if not isinstance(value, str) or not PREFIX_RE.match(value):
        return "must be 1 to 32 characters from A-Z, a-z, 0-9, '_', '.', '-'"
    return None


def _check_optional_str(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        return "must be a non-empty string or None"
    return None


def _positive_number(*, integer: bool = False, allow_zero: bool = False) -> Callable:
    def check(value: Any) -> str | None:
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            return "must be a whole number" if integer else "must be a number"
        if value != value:  # NaN
            return "must be a number, not NaN"
        if value < 0 or (value == 0 and not allow_zero):
            return "must be zero or more" if allow_zero else "must be greater than zero"
        return None

    return check


def _check_socket_timeout(value: Any) -> str | None:
    """Above the longest blocking command jobqueue sends (engine.wait()'s BLPOP slice): a
    shorter timeout would cut that command off as if Redis had died."""
    problem = _positive_number()(value)
    if problem:
        return problem
    from .engine.reads import BLOCK_SLICE

    if value <= BLOCK_SLICE:
        return (
            f"must be more than {BLOCK_SLICE:g} seconds, the longest jobqueue's blocking "
            "commands wait in Redis (a shorter timeout would cut them off as if Redis had died)"
        )
    return None


def _check_str_list(value: Any) -> str | None:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        return "must be a list of non-empty strings"
    return None


def _check_dict(value: Any) -> str | None:
    return None if isinstance(value, dict) else "must be a dict"


def _check_log_level(value: Any) -> str | None:
    levels = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    return None if value in levels else f"must be one of {', '.join(levels)}"


def _check_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be True or False"


@dataclass(frozen=True)
class Option:
    """One key of ``JOBQUEUE``: its default (a value or a callable) and its validator."""

    default: Any
    check: Callable[[Any], str | None]
    help: str

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default


OPTIONS: dict[str, Option] = {
    "REDIS_URL": Option(
        _default_redis_url,
        _check_url,
        "Where Redis is: redis://, rediss://, unix://, redis[s]+sentinel:// or "
        "redis[s]+cluster://.",
    ),
    "REDIS_SOCKET_TIMEOUT": Option(
        10.0,
        _check_socket_timeout,
        "Seconds a read or write on a Redis connection may take before it fails; more than "
        "the longest blocking command (5 s).",
    ),
    "REDIS_CONNECT_TIMEOUT": Option(
        5.0, _positive_number(), "Seconds opening a connection to Redis may take."
    ),
    "CACHE_ALIAS": Option(
        None,
        _check_optional_str,
        "Reuse the connection of this django-redis cache alias instead of REDIS_URL.",
    ),
    "PREFIX": Option("jq", _check_prefix, "Namespace of every key, so sites can share Redis."),
    "LEASE_SECONDS": Option(
        30, _positive_number(), "How long a worker's claim on a job lasts unless renewed."
    ),
    "RESULT_TTL": Option(
        86400, _positive_number(integer=True), "Seconds a finished job is kept in Redis."
    ),
    "FAILED_TTL": Option(
        7 * 86400,
        _positive_number(integer=True),
        "Seconds a failed or canceled job is kept in Redis.",
    ),
    "REGISTRY_LIMIT": Option(
        10000,
        _positive_number(integer=True),
        "Most entries kept in each finished/failed registry per queue.",
    ),
    "EVENTS_MAXLEN": Option(
        100000,
        _positive_number(integer=True),
        "Approximate cap of each queue's event stream.",
    ),
    "MAX_STALLS": Option(
        3,
        _positive_number(integer=True),
        "Lease expiries a job may cause before it is dead-lettered.",
    ),
    "RETRY_BACKOFF": Option(
        1.0,
        _positive_number(),
        "Seconds before the first retry; doubled for each later attempt, with jitter.",
    ),
    "RETRY_BACKOFF_MAX": Option(
        3600.0, _positive_number(), "Longest delay between two attempts, in seconds."
    ),
    "ARGUMENTS_BYTES": Option(
        16 * 1024 * 1024,
        _positive_number(integer=True),
        "Most bytes a job's arguments take, encoded as JSON; a bigger enqueue is refused.",
    ),
    "RESULT_BYTES": Option(
        16 * 1024 * 1024,
        _positive_number(integer=True),
        "Most bytes a job's return value takes, encoded as JSON; a bigger one fails the job "
        "with ResultTooLarge.",
    ),
    "ERRORS_KEPT": Option(
        20,
        _positive_number(integer=True),
        "Most errors a job keeps, one per failed attempt; the oldest are dropped first.",
    ),
    "ERRORS_KEPT_BYTES": Option(
        1024 * 1024,
        _positive_number(integer=True),
        "Most bytes (of JSON) a job's errors keep; the oldest are dropped first.",
    ),
    "TRACEBACK_BYTES": Option(
        64 * 1024,
        _positive_number(integer=True),
        "Most bytes of each failed attempt's traceback kept; longer ones lose their middle.",
    ),
    "LOG_LINE_BYTES": Option(
        4096,
        _positive_number(integer=True),
        "Most bytes of each log record's message kept with its job; longer ones lose their end.",
    ),
    "WORKER_DEAD_AFTER": Option(
        15.0,
        _positive_number(),
        "Seconds without a heartbeat after which a worker is shown as dead.",
    ),
    "TASK_MODULES": Option(
        (),
        _check_str_list,
        "Extra modules imported to find tasks, besides each installed app's tasks module.",
    ),
    "MIRROR": Option(True, _check_bool, "Run the Redis-to-database mirror inside runworker."),
    "MIRROR_RETENTION_DAYS": Option(
        30, _positive_number(), "Days the database keeps the rows of finished jobs."
    ),
    "SCHEDULES": Option(
        {},
        _check_dict,
        "Periodic schedules: name -> {'task', 'cron' or 'every', 'args', 'kwargs', ...}.",
    ),
    "JOB_LOG_LEVEL": Option(
        "INFO", _check_log_level, "Lowest level of the task's log records kept with the job."
    ),
    "LIVE_PATH": Option(
        "/jobqueue/live/",
        _check_optional_str,
        "Path where the site mounts jobqueue.routing's websocket (None: pages are not live).",
    ),
    "ENQUEUE_REPLICAS": Option(
        0,
        _positive_number(integer=True, allow_zero=True),
        "Replicas that must acknowledge each enqueue (Redis's WAIT) before it returns; 0: none.",
    ),
    "ENQUEUE_REPLICAS_TIMEOUT": Option(
        1.0,
        _positive_number(),
        "Seconds an enqueue waits for ENQUEUE_REPLICAS acknowledgements before NotReplicated.",
    ),
    "ENQUEUE_SPIN_MICROSECONDS": Option(
        0,
        _positive_number(integer=True, allow_zero=True),
        "Microseconds .enqueue() polls for Redis's reply before sleeping on it (0: never).",
    ),
}


def validate(user: Any) -> list[tuple[str, str, Any]]:
    """Return ``(kind, key, value)`` problems of a ``JOBQUEUE`` value; empty when valid.

    ``kind`` is ``"type"`` (not a dict), ``"unknown"`` (no such key) or ``"value"``.
    Each problem is returned with a full sentence by :func:`describe`.
    """
    if not isinstance(user, Mapping):
        return [("type", "JOBQUEUE", user)]
    problems: list[tuple[str, str, Any]] = []
    for key, value in user.items():
        option = OPTIONS.get(key)
        if option is None:
            problems.append(("unknown", key, value))
        elif option.check(value) is not None:
            problems.append(("value", key, value))
    return problems


def describe(kind: str, key: str, value: Any) -> str:
    if kind == "type":
        return f"settings.JOBQUEUE must be a dict, not {type(value).__name__} ({value!r})."
    if kind == "unknown":
        known = ", ".join(sorted(OPTIONS))
        return f"JOBQUEUE[{key!r}] is not a jobqueue setting; known settings are: {known}."
    problem = OPTIONS[key].check(value)
    return f"JOBQUEUE[{key!r}] = {value!r} is invalid: it {problem}."


class JobqueueSettings:
    """Attribute access to the merged ``JOBQUEUE`` settings, computed on first use."""

    def __init__(self) -> None:
        self._values: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._values is None:
            from django.conf import settings

            user = getattr(settings, "JOBQUEUE", {})
            problems = validate(user)
            if problems:
                raise ImproperlyConfigured(describe(*problems[0]))
            values = {key: option.default_value() for key, option in OPTIONS.items()}
            values.update(user)
            self._values = values
        return self._values

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._load()[name]
        except KeyError:
            raise AttributeError(f"jobqueue has no setting {name!r}.") from None

    def as_dict(self) -> dict[str, Any]:
        return dict(self._load())

    def reset(self) -> None:
        self._values = None


jobqueue_settings = JobqueueSettings()
_engine: Any = None
_engine_pid = 0


def engine_config() -> Any:
    """The engine's options, from ``settings.JOBQUEUE``."""
    from .engine import EngineConfig

    s = jobqueue_settings
    return EngineConfig(
        prefix=s.PREFIX,
        lease_seconds=float(s.LEASE_SECONDS),
        result_ttl=int(s.RESULT_TTL),
        failed_ttl=int(s.FAILED_TTL),
        registry_limit=int(s.REGISTRY_LIMIT),
        events_maxlen=int(s.EVENTS_MAXLEN),
        max_stalls=int(s.MAX_STALLS),
        backoff_base=float(s.RETRY_BACKOFF),
        backoff_max=float(s.RETRY_BACKOFF_MAX),
        worker_dead_after=float(s.WORKER_DEAD_AFTER),
        max_payload_bytes=int(s.ARGUMENTS_BYTES),
        max_result_bytes=int(s.RESULT_BYTES),
        errors_kept=int(s.ERRORS_KEPT),
        errors_kept_bytes=int(s.ERRORS_KEPT_BYTES),
        traceback_bytes=int(s.TRACEBACK_BYTES),
        log_line_bytes=int(s.LOG_LINE_BYTES),
        enqueue_spin_us=int(s.ENQUEUE_SPIN_MICROSECONDS),
        enqueue_replicas=int(s.ENQUEUE_REPLICAS),
        enqueue_replicas_timeout=float(s.ENQUEUE_REPLICAS_TIMEOUT),
    )


def redis_client() -> Any:
    """The process's Redis client: the django-redis cache alias's, or one for REDIS_URL."""
    from .engine.transport.connection import get_client

    alias = jobqueue_settings.CACHE_ALIAS
    if alias:
        try:
            from django_redis import get_redis_connection
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"JOBQUEUE['CACHE_ALIAS'] = {alias!r} needs django-redis; install it or use "
                "JOBQUEUE['REDIS_URL']."
            ) from exc
        return get_redis_connection(alias)
    return get_client(
        jobqueue_settings.REDIS_URL,
        socket_timeout=float(jobqueue_settings.REDIS_SOCKET_TIMEOUT),
        socket_connect_timeout=float(jobqueue_settings.REDIS_CONNECT_TIMEOUT),
    )


def get_engine() -> Any:
    """The process-wide :class:`jobqueue.engine.Engine` for the current settings."""
    global _engine, _engine_pid
    if _engine is None or _engine_pid != os.getpid():
        from .engine import Engine

        _engine = Engine(redis_client(), engine_config())
        _engine_pid = os.getpid()
    return _engine


@receiver(setting_changed)
def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    global _engine
    if setting == "JOBQUEUE":
        jobqueue_settings.reset()
        _engine = None
        from .engine.transport import connection

        connection.reset_pools()
