"""Loads the Lua scripts in ``scripts/`` (one per transition) and runs them by SHA.

Each script is ``_lib.lua`` followed by the script's own file; its header documents KEYS, ARGV
and the return value. redis-py's ``Script`` runs it with EVALSHA and loads it on NOSCRIPT.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

SCRIPT_NAMES = (
    "init_queue",
    "enqueue",
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
)


@cache
def source(name: str) -> str:
    """The full text sent to Redis for script ``name``."""
    folder = resources.files(__package__).joinpath("scripts")
    lib = folder.joinpath("_lib.lua").read_text()
    return lib + "\n" + folder.joinpath(f"{name}.lua").read_text()


class Scripts:
    """The registered scripts of one client: ``scripts.claim(keys=[...], args=[...])``."""

    def __init__(self, client: Any) -> None:
        for name in SCRIPT_NAMES:
            setattr(self, name, client.register_script(source(name)))

    def __getattr__(self, name: str) -> Any:  # for type checkers; set in __init__
        raise AttributeError(f"No jobqueue script named {name!r}.")
