"""``manage.py jobqueue_prune``: delete old rows of finished jobs from the database."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobqueue.conf import jobqueue_settings
from jobqueue.mirror import prune


class Command(BaseCommand):
    help = "Delete the rows of jobs that finished more than --days days ago (and their timelines)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--days",
            default=None,
            help="Age in days (default: JOBQUEUE['MIRROR_RETENTION_DAYS']).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if days is None:
            days = jobqueue_settings.MIRROR_RETENTION_DAYS
        try:
            days = float(days)
        except ValueError:
            raise CommandError(f"--days {days!r} is not a number.") from None
        if not days >= 0:  # also refuses nan
            raise CommandError(f"--days {days} must be zero or more.")
        deleted = prune(days)
        self.stdout.write(f"Deleted {deleted} rows of jobs finished over {days:g} days ago.")
