"""``manage.py jobqueue_prune``: ``manage.py jobqueue prune`` under its earlier name."""

from jobqueue.cli import command_for
from jobqueue.cli.maintenance import PRUNE

Command = command_for(PRUNE)
