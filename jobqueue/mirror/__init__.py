"""The mirror: the Django models' copy of what Redis holds, kept from the engine's events.

``consumer`` runs the loop, ``batch`` works out what events do to the rows (pure), ``rows``
turns Redis's values into columns, ``sql`` reads and writes the rows, ``snapshot`` copies
queues, workers and schedules, ``maintenance`` rebuilds and prunes, ``process`` runs it beside
a worker.
"""

from .consumer import GROUP, Mirror
from .maintenance import prune, rebuild

__all__ = ["GROUP", "Mirror", "prune", "rebuild"]
