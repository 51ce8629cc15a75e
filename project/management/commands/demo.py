"""``manage.py demo``: migrate, create the demo admin user, start a worker and the web server.

The README's first command ends with this. Not for production: see the README's
"Running in production" section.
"""

from __future__ import annotations

import subprocess
import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError

DEMO_USER = "admin"
DEMO_PASSWORD = "admin"  # noqa: S105 - the demo's documented login


class Command(BaseCommand):
    help = "Run the demo: migrations, an admin/admin superuser, a worker and the web server."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1", help="Address to serve on.")
        parser.add_argument("--port", type=int, default=8000, help="Port to serve on.")
        parser.add_argument(
            "--no-worker", action="store_true", help="Do not start a worker beside the server."
        )

    def handle(self, *args, addr: str, port: int, no_worker: bool, **options):
        if not 0 < port < 65536:
            raise CommandError(f"--port {port} is not a TCP port; use 1-65535.")
        call_command("migrate", interactive=False, verbosity=0)
        user_model = get_user_model()
        if not user_model.objects.filter(username=DEMO_USER).exists():
            user_model.objects.create_superuser(DEMO_USER, "admin@example.com", DEMO_PASSWORD)
            self.stdout.write(
                f"Created the demo superuser {DEMO_USER!r} (password {DEMO_PASSWORD!r})."
            )
        worker = None
        if not no_worker and "jobqueue_worker" in get_commands():
            manage = str(settings.BASE_DIR / "manage.py")
            worker = subprocess.Popen([sys.executable, manage, "jobqueue_worker", "-v", "1"])
            self.stdout.write(f"Started a worker (pid {worker.pid}).")
        self.stdout.write(
            f"Admin: http://{addr}:{port}/admin/  (login {DEMO_USER}/{DEMO_PASSWORD})"
        )
        try:
            call_command("runserver", f"{addr}:{port}", use_reloader=False)
        finally:
            if worker is not None:
                worker.terminate()
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    worker.kill()
