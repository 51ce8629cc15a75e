"""The ``context`` a ``takes_context`` task receives when jobqueue runs it."""

from __future__ import annotations

import dataclasses

from . import compat
from .conf import get_engine


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobContext(compat.TaskContext):  # type: ignore[misc]
    """Django's TaskContext plus the job's id, its fence token (to fence side effects against
    a reclaimed attempt) and :meth:`set_progress`."""

    job_id: str
    token: str

    def set_progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Record progress, shown live in the admin. Raises LeaseLost if the job was reclaimed."""
        get_engine().worker_protocol().progress(self.job_id, self.token, done, total, message)
