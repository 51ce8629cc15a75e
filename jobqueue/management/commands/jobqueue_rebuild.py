"""``manage.py jobqueue_rebuild``: ``manage.py jobqueue rebuild`` under its earlier name."""

from jobqueue.cli import command_for
from jobqueue.cli.maintenance import REBUILD

Command = command_for(REBUILD)
