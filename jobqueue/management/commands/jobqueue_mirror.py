"""``manage.py jobqueue_mirror``: run the Redis-to-database mirror on its own."""

from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobqueue.conf import get_engine
from jobqueue.engine import JobqueueError
from jobqueue.mirror import Mirror


class Command(BaseCommand):
    help = (
        "Copy jobs, queues, workers and schedules from Redis into the database, continuously "
        "(or once with --once). Several can run: they share the work."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--once", action="store_true", help="Apply every event there is now, then exit."
        )
        parser.add_argument("--batch", default="2000", help="Events per batch (default 2000).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            batch = int(options["batch"])
        except ValueError:
            raise CommandError(f"--batch {options['batch']!r} is not a whole number.") from None
        if batch < 1:
            raise CommandError(f"--batch {batch} must be 1 or more.")
        mirror = Mirror(get_engine(), batch=batch)
        try:
            if options["once"]:
                applied = mirror.drain()
                mirror.snapshot()
                self.stdout.write(f"Applied {applied} events.")
                return
            stop = {"now": False}
            signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
            signal.signal(signal.SIGINT, lambda *a: stop.update(now=True))
            mirror.run(should_stop=lambda: stop["now"])
        except JobqueueError as exc:
            raise CommandError(f"The mirror cannot run: {exc}") from exc
