"""``manage.py demo``: migrate, create the demo admin user, make sure there is a Redis (a private
``redis-server`` when the configured one does not answer), seed example jobs on first start,
start a worker and the web server (the admin and the demo page, /demo/).

The README's first command ends with this. Not for production: see the README's
"Running in production" section. Ctrl-C (or SIGTERM) stops the server, then the worker (its
running jobs get a few seconds), then the private Redis, and leaves no process behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError
from django.core.signals import setting_changed
from redis import RedisError

from jobqueue.conf import jobqueue_settings, redis_client
from jobqueue.engine.transport.connection import redacted
from jobqueue.exceptions import JobqueueError
from project.private_redis import PrivateRedis, redis_server_path
from project.seed import seed_first_start

DEMO_USER = "admin"
DEMO_PASSWORD = "admin"  # noqa: S105 - the demo's documented login
BACKOFF_MAX = 30.0  # seconds between two starts of a worker that keeps stopping
WORKER_SHUTDOWN = 5  # seconds the worker's running jobs get when the demo stops
REDIS_ERRORS = (RedisError, JobqueueError, OSError)


class DemoWorker:
    """The demo's worker, in a process (group) of its own, watched by a thread: when it stops
    (Redis unreachable, say: it printed why), the demo says so and starts it again, waiting 1,
    2, 4 ... up to BACKOFF_MAX seconds between starts. ``stop()`` ends it with the demo;
    ``kill()`` ends it and its children at once.

    Its own process group keeps a Ctrl-C in the terminal from reaching it directly: the demo
    stops it with one SIGTERM (a graceful shutdown) while Redis is still there for it."""

    def __init__(self, command: list[str], say: Any, env: dict[str, str] | None = None) -> None:
        self.command = command
        self.say = say
        self.env = env
        self.process: subprocess.Popen | None = None
        self.stopping = threading.Event()
        self.lock = threading.Lock()  # no new process once stop() has begun
        self.thread = threading.Thread(target=self._watch, name="demo-worker", daemon=True)

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(self.command, env=self.env, process_group=0)

    def start(self) -> None:
        with self.lock:
            self.process = self._spawn()
        self.say(f"Started a worker (pid {self.process.pid}).")
        self.thread.start()

    def _watch(self) -> None:
        wait = 1.0
        while self.process is not None:
            started = time.monotonic()
            code = self.process.wait()
            if self.stopping.is_set():
                return
            if time.monotonic() - started > 60:
                wait = 1.0  # it ran a while: a new trouble, not the same one
            self.say(
                f"The demo's worker stopped (exit code {code}; its reason is above). "
                f"Starting it again in {wait:.0f} s."
            )
            if self.stopping.wait(wait):
                return
            wait = min(wait * 2, BACKOFF_MAX)
            with self.lock:
                if self.stopping.is_set():
                    return
                self.process = self._spawn()
            self.say(f"Started a worker again (pid {self.process.pid}).")

    def stop(self) -> None:
        with self.lock:
            self.stopping.set()
            process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=WORKER_SHUTDOWN + 10)
            except subprocess.TimeoutExpired:
                self.kill()
            process.wait()
        self.thread.join(timeout=5)

    def kill(self) -> None:
        """SIGKILL to the worker's process group: the worker and its children."""
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def port_problem(addr: str, port: int) -> str | None:
    """Why the server could not listen on ``addr:port`` (taken, say), checked before the demo
    starts anything; None when it could."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            addr.strip("[]"), port, type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
            probe.bind(address)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def interrupt(signum: int, frame: Any) -> None:
    """SIGTERM, until the server installs its own handler, is handled as Ctrl-C: the demo
    stops what it started."""
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Run the demo: migrations, an admin/admin superuser, a Redis if none answers, example "
        "jobs on first start, a worker and the web server."
    )

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1", help="Address to serve on.")
        parser.add_argument("--port", type=int, default=8000, help="Port to serve on.")
        parser.add_argument(
            "--no-worker", action="store_true", help="Do not start a worker beside the server."
        )
        parser.add_argument(
            "--no-private-redis",
            action="store_true",
            help="When the configured Redis does not answer, do not start a private "
            "redis-server: wait for that Redis (the worker tries again with backoff).",
        )

    def handle(
        self,
        *args,
        addr: str,
        port: int,
        no_worker: bool,
        no_private_redis: bool,
        **options,
    ):
        if not 0 < port < 65536:
            raise CommandError(f"--port {port} is not a TCP port; use 1-65535.")
        taken = port_problem(addr, port)
        if taken:
            raise CommandError(
                f"Cannot serve on {addr}:{port} ({taken}); choose another with --port (or --addr)."
            )
        base = f"http://{addr}:{port}"
        previous_sigterm = signal.signal(signal.SIGTERM, interrupt)
        private: PrivateRedis | None = None
        worker: DemoWorker | None = None
        seeder = threading.Event()  # set: a seeding thread waiting for Redis must give up
        try:
            problem = self.redis_problem()
            if problem is not None:
                private = self.replace_missing_redis(problem, allow=not no_private_redis)
            call_command("migrate", interactive=False, verbosity=0)
            self.create_demo_user()
            if problem is None or private is not None:
                self.seed(base)
            else:
                threading.Thread(
                    target=self.seed_when_redis_answers, args=(base, seeder), daemon=True
                ).start()
            if not no_worker and "jobqueue_worker" in get_commands():
                worker = self.start_worker(private)
            self.stdout.write(
                f"Admin: {base}/admin/  (login {DEMO_USER}/{DEMO_PASSWORD})  "
                f"Demo page, to enqueue example tasks: {base}/demo/"
            )
            call_command("runserver", f"{addr}:{port}", use_reloader=False)
        except KeyboardInterrupt:
            pass
        finally:
            seeder.set()
            self.shut_down(worker, private)
            signal.signal(signal.SIGTERM, previous_sigterm)

    # -- Redis ----------------------------------------------------------------------------

    def redis_problem(self) -> str | None:
        """Why the configured Redis does not answer a PING; None when it does."""
        try:
            redis_client().ping()
        except REDIS_ERRORS as exc:
            return str(exc).rstrip(".") or type(exc).__name__
        return None

    def replace_missing_redis(self, problem: str, allow: bool) -> PrivateRedis | None:
        """The configured Redis does not answer (``problem`` says why): a private Redis when
        redis-server is on PATH (and ``allow``), else None after saying what to do."""
        url = redacted(jobqueue_settings.REDIS_URL)
        executable = redis_server_path()
        if allow and executable:
            private = PrivateRedis(executable)
            try:
                private.start()
            except RuntimeError as exc:  # it says why (from its log)
                problem = f"{problem}; a private redis-server did not start either: {exc}"
            except BaseException:
                private.stop()  # Ctrl-C while it started
                raise
            else:
                self.use_redis(private.url)
                self.stdout.write(
                    f"Redis is not reachable at {url} ({problem}), so the demo started its "
                    f"own: a private redis-server at {private.url}, stopped with the demo (its "
                    "data is not kept)."
                )
                return private
        self.stdout.write(
            f"Redis is not reachable at {url} ({problem}): start Redis (redis-server), or set "
            "JOBQUEUE_REDIS_URL to a Redis that answers. The admin starts anyway; the worker "
            "tries again until Redis answers."
        )
        return None

    def use_redis(self, url: str) -> None:
        """Point this process at ``url``: settings.JOBQUEUE changed, announced the way
        override_settings does, so jobqueue.conf drops its settings, engine and pools."""
        settings.JOBQUEUE = {**getattr(settings, "JOBQUEUE", {}), "REDIS_URL": url}
        setting_changed.send(
            sender=type(self), setting="JOBQUEUE", value=settings.JOBQUEUE, enter=True
        )

    # -- what runs ------------------------------------------------------------------------

    def create_demo_user(self) -> None:
        user_model = get_user_model()
        if not user_model.objects.filter(username=DEMO_USER).exists():
            user_model.objects.create_superuser(DEMO_USER, "admin@example.com", DEMO_PASSWORD)
            self.stdout.write(
                f"Created the demo superuser {DEMO_USER!r} (password {DEMO_PASSWORD!r})."
            )

    def seed(self, base: str) -> bool:
        """Seed example jobs on a new Redis and say so in one line; False when Redis could
        not be used (nothing is said: the caller tries again, or the worker says why)."""
        try:
            seeded = seed_first_start()
        except REDIS_ERRORS:
            return False
        if seeded is not None:
            self.stdout.write(
                f"First start on this Redis: enqueued {seeded.jobs} example jobs on the "
                f"queues {', '.join(seeded.queues)} ({seeded.scheduled} of them scheduled to "
                f"start within a minute); watch them run at {base}/admin/jobqueue/job/"
            )
        return True

    def seed_when_redis_answers(self, base: str, give_up: threading.Event) -> None:
        while not self.seed(base):
            if give_up.wait(2):
                return

    def start_worker(self, private: PrivateRedis | None) -> DemoWorker:
        manage = str(settings.BASE_DIR / "manage.py")
        command = [sys.executable, manage, "jobqueue_worker", "-v", "1", "--concurrency", "4"]
        command += ["--shutdown-timeout", str(WORKER_SHUTDOWN)]
        env = None
        if private is not None:  # the worker's settings read JOBQUEUE_REDIS_URL
            env = {**os.environ, "JOBQUEUE_REDIS_URL": private.url}
        worker = DemoWorker(command, self.stdout.write, env)
        worker.start()
        return worker

    def shut_down(self, worker: DemoWorker | None, private: PrivateRedis | None) -> None:
        """Stop the worker (a second Ctrl-C kills it at once), then the private Redis."""

        def hurry(signum: int, frame: Any) -> None:
            if worker is not None:
                worker.kill()

        signal.signal(signal.SIGINT, hurry)
        signal.signal(signal.SIGTERM, hurry)
        try:
            if worker is not None and worker.process is not None:
                self.stdout.write(
                    f"Stopping the worker (its running jobs get up to {WORKER_SHUTDOWN} s; "
                    "Ctrl-C again stops it now)."
                )
                worker.stop()
            if private is not None:
                private.stop()
                self.stdout.write("Stopped the demo's private Redis.")
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
