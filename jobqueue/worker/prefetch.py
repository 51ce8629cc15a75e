"""How many jobs each child may hold: the running one and those waiting behind it in its pipe.

About ``WINDOW`` seconds of work by a running average of the jobs' run times, at least 1, at
most ``--prefetch``. Short jobs then travel in batches large enough that a child never runs
dry while its parent waits to flush, and a long job has no job waiting behind it in a pipe
that another worker could run. A job no run time predicted to be long (the first ones, or
one long job among short ones) holds those behind it at most TAKE_BACK_AFTER seconds.
"""

from __future__ import annotations

WINDOW = 0.04  # seconds of work a child holds, judged by the recent jobs' run times
START = 8  # jobs a child may hold before any run time is known (at most --prefetch)
# Seconds a job may run before the jobs waiting behind it in its child's pipe are taken back
# (pool.py): a long job among short ones holds none of them for longer.
TAKE_BACK_AFTER = 0.1
WEIGHT = 0.2  # weight of each finished job in the running average of run times


class PrefetchPolicy:
    def __init__(self, prefetch: int) -> None:
        self.prefetch = prefetch
        self.run_time: float | None = None  # running average of the jobs' run times, seconds

    def ran(self, seconds: float) -> None:
        """A job ran this long (a job killed at its timeout, or whose process died, counts
        with the time it ran): update the running average that sets the limit."""
        if self.run_time is None:
            self.run_time = seconds
        else:
            self.run_time += WEIGHT * (seconds - self.run_time)

    def limit(self) -> int:
        """Jobs each child may hold now."""
        if self.run_time is None:
            return min(self.prefetch, START)
        return max(1, min(self.prefetch, int(WINDOW / max(self.run_time, 1e-6))))
