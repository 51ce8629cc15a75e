"""jobqueue's exceptions, all subclasses of :class:`JobqueueError`."""

from .engine.errors import (
    ConfigurationError,
    ConnectionFailed,
    CorruptJob,
    DataLossDetected,
    InvalidJob,
    InvalidTransition,
    JobNotFound,
    JobqueueError,
    LeaseLost,
    UnknownTask,
    WaitTimeout,
)

__all__ = [
    "ConfigurationError",
    "ConnectionFailed",
    "CorruptJob",
    "DataLossDetected",
    "InvalidJob",
    "InvalidTransition",
    "JobNotFound",
    "JobqueueError",
    "LeaseLost",
    "UnknownTask",
    "WaitTimeout",
]
