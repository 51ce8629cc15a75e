"""What every subcommand shares: its declaration (:class:`Subcommand`), where it writes
(:class:`Output`), and the one sentence for a Redis that cannot be reached."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..conf import jobqueue_settings
from ..engine.transport.connection import redacted


class Output:
    """Where a subcommand writes: text or JSON on stdout, problems on stderr (the command's
    own streams, so ``call_command(..., stdout=...)`` captures them)."""

    def __init__(self, stdout: Any, stderr: Any) -> None:
        self.stdout = stdout
        self.stderr = stderr

    def line(self, text: str = "") -> None:
        self.stdout.write(text)

    def lines(self, texts: list[str]) -> None:
        for text in texts:
            self.stdout.write(text)

    def problem(self, text: str) -> None:
        self.stderr.write(text)

    def json(self, value: Any) -> None:
        self.stdout.write(json.dumps(value, indent=2, ensure_ascii=False))


@dataclass(frozen=True)
class Subcommand:
    """One ``manage.py jobqueue <name>``: its help (one line in the list of subcommands), its
    description (its own ``--help``), its arguments and what it does. ``handle`` raises
    CommandError for bad input or a failure, after writing what it did."""

    name: str
    help: str
    description: str
    arguments: Callable[[argparse.ArgumentParser], None]
    handle: Callable[[dict[str, Any], Output], None]
    epilog: str = ""


def redis_location() -> str:
    """The Redis this site uses, as a sentence names it (its URL without the password)."""
    alias = jobqueue_settings.CACHE_ALIAS
    if alias:
        return f"the Redis of cache {alias!r}"
    return f"Redis at {redacted(str(jobqueue_settings.REDIS_URL))}"


def redis_json() -> dict[str, Any]:
    """The Redis this site uses, for JSON: its URL without the password, or the cache alias."""
    alias = jobqueue_settings.CACHE_ALIAS
    return {
        "url": None if alias else redacted(str(jobqueue_settings.REDIS_URL)),
        "cache_alias": alias or None,
        "prefix": jobqueue_settings.PREFIX,
    }


def unreachable(exc: BaseException) -> str:
    """One line for a Redis that cannot be reached: where, why, and what to check."""
    reason = str(exc.__cause__ or exc).strip().rstrip(".")
    what = (
        f"JOBQUEUE['CACHE_ALIAS'] ({jobqueue_settings.CACHE_ALIAS!r})"
        if jobqueue_settings.CACHE_ALIAS
        else "JOBQUEUE['REDIS_URL']"
    )
    return (
        f"{redis_location()} cannot be reached ({reason}). Check that Redis is running and "
        f"that {what} points at it."
    )


def json_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--json", action="store_true", help=f"Write {what} as JSON (stable keys, ISO 8601 times)."
    )
