"""jobqueue's own Django signals.

``data_loss_detected`` is sent when this process notices that Redis lost a queue's data (a
restart without persistence, a flush): once per process per loss, by whichever call noticed it
(an enqueue, a worker's claim, an admin action), with ``sender`` the engine's exception class
and these arguments:

- ``queue``: the queue's name;
- ``noticed_at``: when this process noticed (an aware datetime, UTC);
- ``loss``: the :class:`jobqueue.exceptions.DataLossDetected` describing it (the epochs).

Receivers run in the thread that noticed, possibly inside a web request's ``.enqueue()``: keep
them short (page someone, count it). One that raises is logged and ignored
(``send_robust``); the enqueue that noticed the loss still succeeds.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

from .engine import runner
from .engine.errors import DataLossDetected

logger = logging.getLogger("jobqueue")

data_loss_detected = Signal()


def send_data_loss_detected(loss: DataLossDetected) -> None:
    """The engine's listener: ``data_loss_detected`` sent for ``loss``."""
    replies: list[tuple[Any, Any]] = data_loss_detected.send_robust(
        sender=DataLossDetected, queue=loss.queue, noticed_at=loss.noticed_at, loss=loss
    )
    for receiver, reply in replies:
        if isinstance(reply, Exception):
            logger.error(
                "A data_loss_detected receiver %r raised %s: %s",
                receiver,
                type(reply).__name__,
                reply,
            )


def connect_to_engine() -> None:
    """Have every engine of this process send ``data_loss_detected`` (once: the app's
    ``ready()`` calls this)."""
    if send_data_loss_detected not in runner.LOSS_LISTENERS:
        runner.LOSS_LISTENERS.append(send_data_loss_detected)
