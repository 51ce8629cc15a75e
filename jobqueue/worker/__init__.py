"""The worker: ``manage.py runworker``'s supervising parent and its child processes."""

from .parent import Worker, WorkerOptions

__all__ = ["Worker", "WorkerOptions"]
