"""``manage.py jobqueue_rebuild``: reconcile the database with Redis."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobqueue.conf import get_engine
from jobqueue.engine import JobqueueError
from jobqueue.mirror import Mirror, rebuild


class Command(BaseCommand):
    help = (
        "Copy every job Redis holds into the database, and mark unfinished jobs that Redis no "
        "longer holds as failed (lost). Use it after Redis lost data, or when installing "
        "jobqueue into a site that already has jobs."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        engine = get_engine()
        try:
            counts = rebuild(engine)
            Mirror(engine).snapshot()
        except JobqueueError as exc:
            raise CommandError(f"Rebuild failed: {exc}") from exc
        self.stdout.write(
            f"Copied {counts['copied']} jobs from Redis; marked {counts['lost']} lost."
        )
