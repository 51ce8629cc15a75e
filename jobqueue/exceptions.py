"""jobqueue's exceptions, all subclasses of :class:`JobqueueError`."""

from .engine.errors import (
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

__all__ = [
    "ConfigurationError",
    "ConnectionFailed",
    "CorruptJob",
    "DataLossDetected",
    "InvalidJob",
    "InvalidTransition",
    "JobCanceled",
    "JobNotFound",
    "JobStalled",
    "JobTimeout",
    "JobqueueError",
    "LeaseLost",
    "UnknownTask",
    "WaitTimeout",
]
