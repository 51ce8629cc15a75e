"""The mirror as a process of its own beside a worker's children: ``runworker`` runs
:func:`serve` in a side process (``jobqueue/worker/sidecar.py``) unless told not to.

``flags.stop`` (SIGTERM): finish the batch in hand and return. ``flags.drain`` (SIGUSR2): apply
everything there is, then return (``runworker --burst`` leaves the database up to date).
Returns 1 when the mirror's last step failed (Redis or the database could not be used), so a
burst worker does not exit 0 with its database behind; the reason is logged in one line.
"""

from __future__ import annotations

from typing import Any


def serve(flags: Any) -> int:
    from django.db import DatabaseError

    from ..conf import get_engine
    from ..engine import JobqueueError
    from .consumer import Mirror, logger

    mirror = Mirror(get_engine())
    mirror.run(should_stop=lambda: flags.stop or flags.drain)
    if flags.drain and not flags.stop:
        try:
            mirror.drain()
        except (JobqueueError, DatabaseError) as exc:
            logger.error("mirror_drain_failed error=%s", exc)
            return 1
        return 0
    return 1 if mirror.failing else 0
