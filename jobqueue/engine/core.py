"""``Engine``: the one object through which everything reads and changes jobs in Redis."""

from __future__ import annotations

from typing import Any

from .base import EngineConfig
from .connection import get_client
from .handoff import HandoffMixin
from .lease import LeaseMixin
from .operations import OperationsMixin
from .producer import ProducerMixin
from .reads import ReadsMixin
from .registry import TaskRegistry
from .workers import BookkeepingMixin


class Engine(
    ProducerMixin, LeaseMixin, HandoffMixin, OperationsMixin, ReadsMixin, BookkeepingMixin
):
    """Enqueue (:mod:`.producer`), lease and run (:mod:`.lease`), operate (:mod:`.operations`)
    and read (:mod:`.reads`) jobs; keep workers, logs and schedules (:mod:`.workers`). Each
    state change is one Lua script in ``scripts/``.

    >>> engine = Engine.from_url("redis://127.0.0.1:6379/0", EngineConfig(prefix="demo"))
    """

    @classmethod
    def from_url(
        cls,
        url: str,
        config: EngineConfig | None = None,
        registry: TaskRegistry | None = None,
        **client_options: Any,
    ) -> Engine:
        return cls(get_client(url, **client_options), config, registry)
