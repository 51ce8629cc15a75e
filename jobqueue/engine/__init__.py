"""The engine: Redis key layout, Lua scripts (one per state transition), job value objects and
connections. It imports only ``redis`` and the standard library (plus orjson and hiredis when
installed), never Django, so it can be tested and benchmarked alone.

>>> from jobqueue.engine import Engine, EngineConfig, TaskRegistry
>>> registry = TaskRegistry()
>>> registry.register("app.add", lambda a, b: a + b)
>>> engine = Engine.from_url("redis://127.0.0.1:6379/0", EngineConfig(prefix="doc"), registry)

Errors live in :mod:`jobqueue.engine.errors` (public as :mod:`jobqueue.exceptions`); what a
worker and the mirror use (:mod:`.protocol`, :mod:`.claims`, :mod:`.events`) is imported from
those modules.
"""

from .bookkeeping import WorkerInfo
from .config import EngineConfig
from .core import Engine
from .errors import JobqueueError
from .job import ACTIVE_STATES, FINISHED_STATES, Job, JobError, JobState
from .producer import JobSpec
from .reads import QueueInfo
from .registry import TaskRegistry, default_registry

__all__ = [
    "ACTIVE_STATES",
    "FINISHED_STATES",
    "Engine",
    "EngineConfig",
    "Job",
    "JobError",
    "JobSpec",
    "JobState",
    "JobqueueError",
    "QueueInfo",
    "TaskRegistry",
    "WorkerInfo",
    "default_registry",
]
