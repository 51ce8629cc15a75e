"""The engine: Redis key layout, Lua scripts (one per state transition), job value objects and
connections. It imports only ``redis`` and the standard library (plus orjson when installed),
never Django, so it can be tested and benchmarked alone.

>>> from jobqueue.engine import Engine, EngineConfig, TaskRegistry
>>> registry = TaskRegistry()
>>> registry.register("app.add", lambda a, b: a + b)
>>> engine = Engine.from_url("redis://127.0.0.1:6379/0", EngineConfig(prefix="doc"), registry)
"""

from .base import EngineConfig
from .core import Engine
from .errors import (
    ConfigurationError,
    ConnectionFailed,
    CorruptJob,
    DataLossDetected,
    InvalidJob,
    InvalidTransition,
    JobCanceled,
    JobNotFound,
    JobqueueError,
    JobStalled,
    JobTimeout,
    LeaseLost,
    UnknownTask,
    WaitTimeout,
)
from .job import (
    ACTIVE_STATES,
    FINISHED_STATES,
    Job,
    JobError,
    JobState,
    make_job_id,
    split_job_id,
)
from .lease import ClaimBatch, Claimed, Renewal
from .producer import JobSpec, PlainEnqueue
from .reads import QueueInfo
from .registry import TaskRegistry, default_registry
from .workers import WorkerInfo

__all__ = [
    "ACTIVE_STATES",
    "FINISHED_STATES",
    "ClaimBatch",
    "Claimed",
    "ConfigurationError",
    "ConnectionFailed",
    "CorruptJob",
    "DataLossDetected",
    "Engine",
    "EngineConfig",
    "InvalidJob",
    "InvalidTransition",
    "Job",
    "JobCanceled",
    "JobError",
    "JobNotFound",
    "JobSpec",
    "JobStalled",
    "JobState",
    "JobTimeout",
    "JobqueueError",
    "LeaseLost",
    "PlainEnqueue",
    "QueueInfo",
    "Renewal",
    "TaskRegistry",
    "UnknownTask",
    "WaitTimeout",
    "WorkerInfo",
    "default_registry",
    "make_job_id",
    "split_job_id",
]
