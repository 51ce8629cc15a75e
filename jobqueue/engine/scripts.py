"""Loads the Lua scripts in ``scripts/`` (one per transition) and runs them by SHA.

Each script is ``_lib.lua`` followed by the script's own file; its header documents KEYS, ARGV
and the return value. Scripts run with EVALSHA; a server that does not know a script (it was
restarted, or SCRIPT FLUSH ran) answers NOSCRIPT, and the script is loaded and run again. In a
pipeline, only the calls that got NOSCRIPT are run again: a script that ran is never repeated.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

from .connection import is_cluster
from .direct import DirectCaller

SCRIPT_NAMES = (
    "init_queue",
    "enqueue",
    "enqueue_one",
    "claim",
    "renew",
    "progress",
    "complete",
    "fail",
    "release",
    "abandon",
    "reap",
    "cancel",
    "retry",
    "retry_all",
    "delete",
    "purge",
    "pause",
    "wait_prepare",
    "idle",
)


@cache
def source(name: str) -> str:
    """The full text sent to Redis for script ``name``."""
    folder = resources.files(__package__).joinpath("scripts")
    lib = folder.joinpath("_lib.lua").read_text()
    return lib + "\n" + folder.joinpath(f"{name}.lua").read_text()


@cache
def sha(name: str) -> str:
    return hashlib.sha1(source(name).encode()).hexdigest()  # noqa: S324 - Redis's script id


class Scripts:
    """Runs jobqueue's scripts on one client: ``scripts.run("claim", keys, args)``, or many
    in one round trip with ``scripts.run_many``. On a plain or Sentinel client they go
    through this thread's own connection (``direct.py``); on Cluster, through redis-py."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.direct = None if is_cluster(client) else DirectCaller(client)
        for name in SCRIPT_NAMES:
            source(name)  # fail at start, not mid-flight, if a file is missing

    def run(self, name: str, keys: list[Any], args: list[Any]) -> Any:
        command = ("EVALSHA", sha(name), len(keys), *keys, *args)
        try:
            if self.direct is not None:
                return self.direct.execute(*command)
            return self.client.execute_command(*command)
        except NoScriptError:
            self.client.script_load(source(name))
            if self.direct is not None:
                return self.direct.execute(*command)
            return self.client.execute_command(*command)

    def run_many(self, calls: list[tuple[str, list, list]]) -> list[Any]:
        """Run ``(name, keys, args)`` calls in one round trip (not on Cluster); replies in
        order, an error reply in its call's place. Calls that got NOSCRIPT run again."""
        assert self.direct is not None, "Cluster pipelines cannot run scripts"
        commands = [("EVALSHA", sha(name), len(keys), *keys, *args) for name, keys, args in calls]
        return self.retry_unknown(calls, self.direct.execute_many(commands))

    def retry_unknown(self, calls: list[tuple[str, list, list]], replies: list[Any]) -> list[Any]:
        """Run again, one by one, the pipelined calls that got NOSCRIPT."""
        out = list(replies)
        for index, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):
                name, keys, args = calls[index]
                out[index] = self.run(name, keys, args)
        return out
