"""``manage.py jobqueue_mirror``: ``manage.py jobqueue mirror`` under its earlier name."""

from jobqueue.cli import command_for
from jobqueue.cli.maintenance import MIRROR

Command = command_for(MIRROR)
