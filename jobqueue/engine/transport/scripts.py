"""Loads the Lua scripts in ``scripts/`` (one per transition) and runs them by SHA.

Each script is the helpers of ``_lib.lua`` it uses followed by the script's own file; its
header documents KEYS, ARGV and the return value. Scripts run with EVALSHA; a server that does
not know a script (it was restarted, or SCRIPT FLUSH ran) answers NOSCRIPT, and the script is
loaded and run again. In a pipeline, only the calls that got NOSCRIPT are run again: a script
that ran is never repeated.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

from .caller import DirectCaller
from .connection import is_cluster

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


DEFINITION = re.compile(r"^local (?:function )?(\w+)", re.MULTILINE)
COMMENT = re.compile(r"--[^\n]*")


@cache
def source(name: str) -> str:
    """The full text sent to Redis for script ``name``: the helpers of ``_lib.lua`` it uses
    (directly or through another helper), in their order there, then the script itself.
    Helpers a script does not use are left out: each call would define them again."""
    folder = resources.files("jobqueue.engine").joinpath("lua")
    body = folder.joinpath(f"{name}.lua").read_text()
    helpers = []  # (name, text): each definition of _lib.lua with the comment above it
    for block in folder.joinpath("_lib.lua").read_text().split("\n\n"):
        found = DEFINITION.search(block)
        if found:
            helpers.append((found.group(1), block))
    used: set[str] = set()
    scanned = COMMENT.sub("", body)
    while True:
        more = {
            helper
            for helper, _ in helpers
            if helper not in used and re.search(rf"\b{helper}\b", scanned)
        }
        if not more:
            break
        used |= more
        scanned = COMMENT.sub("", "".join(text for helper, text in helpers if helper in more))
    return "\n\n".join(text for helper, text in helpers if helper in used) + "\n" + body


@cache
def sha(name: str) -> str:
    return hashlib.sha1(source(name).encode()).hexdigest()  # noqa: S324 - Redis's script id


class Scripts:
    """Runs jobqueue's scripts on one client: ``scripts.run("claim", keys, args)``, or many
    in one round trip with ``scripts.run_many``. On a plain or Sentinel client they go
    through this thread's own connection (``caller.py``); on Cluster, through redis-py."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.direct = None if is_cluster(client) else DirectCaller(client)
        for name in SCRIPT_NAMES:
            source(name)  # fail at start, not mid-flight, if a file is missing

    def load_all(self) -> None:
        """Load every script into Redis (on Cluster, into every primary) now, so that the
        first round trips of a process that pipelines scripts meet no NOSCRIPT: a pipelined
        call that gets it runs again after the calls sent behind it (``retry_unknown``), and
        those then did not see its effects. (Redis forgets its scripts when it restarts: the
        next NOSCRIPT loads them again.)"""
        for name in SCRIPT_NAMES:
            self.client.script_load(source(name))

    def run(
        self,
        name: str,
        keys: list[Any],
        args: list[Any],
        spin: float = 0,
        on_sent: Callable[[], None] | None = None,
    ) -> Any:
        """Run one script; ``spin``: seconds to poll for the reply before sleeping on it,
        ``on_sent``: work to do while Redis runs it (``DirectCaller.execute``)."""
        command = ("EVALSHA", sha(name), len(keys), *keys, *args)
        try:
            if self.direct is not None:
                return self.direct.execute(*command, spin=spin, on_sent=on_sent)
            return self.client.execute_command(*command)
        except NoScriptError:
            self.client.script_load(source(name))
            if self.direct is not None:
                return self.direct.execute(*command)
            return self.client.execute_command(*command)

    def run_many(
        self,
        calls: list[tuple[str, list, list]],
        on_reply: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        """Run ``(name, keys, args)`` calls in one round trip (not on Cluster); replies in
        order, an error reply in its call's place. Calls that got NOSCRIPT run again.
        ``on_reply``: see ``DirectCaller.execute_many`` (not called for the calls run again)."""
        assert self.direct is not None, "Cluster pipelines cannot run scripts"
        commands = [("EVALSHA", sha(name), len(keys), *keys, *args) for name, keys, args in calls]
        return self.retry_unknown(calls, self.direct.execute_many(commands, on_reply=on_reply))

    def retry_unknown(self, calls: list[tuple[str, list, list]], replies: list[Any]) -> list[Any]:
        """Run again, one by one, the pipelined calls that got NOSCRIPT."""
        out = list(replies)
        for index, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):
                name, keys, args = calls[index]
                out[index] = self.run(name, keys, args)
        return out
