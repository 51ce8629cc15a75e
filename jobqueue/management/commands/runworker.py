"""``manage.py runworker [QUEUE ...]``: run jobs from the named queues (all configured queues
when none are named; the order given is the order of precedence)."""

from __future__ import annotations

import logging
import os
import re
import socket
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobqueue.conf import get_engine, jobqueue_settings
from jobqueue.engine import JobqueueError
from jobqueue.engine.job import QUEUE_NAME_RE
from jobqueue.engine.transport.connection import redacted
from jobqueue.worker import Worker, WorkerOptions
from jobqueue.worker.sidecar import Sidecar

NAME_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,100}$")
LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}


def configured_queues() -> list[str]:
    """Every queue of every jobqueue backend in settings.TASKS, in order."""
    from django.conf import settings

    queues: list[str] = []
    for params in getattr(settings, "TASKS", {}).values():
        if params.get("BACKEND") == "jobqueue.backends.RedisBackend":
            for queue in params.get("QUEUES", ["default"]):
                if queue not in queues:
                    queues.append(queue)
    return queues


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a whole number.") from None
    if number < 1:
        raise CommandError(f"{value!r} must be 1 or more.")
    return number


EVICTING = ("allkeys-lru", "allkeys-lfu", "allkeys-random")


def startup_warnings(engine: Any, queues: tuple[str, ...]) -> list[str]:
    """Things an operator must know before trusting this Redis with jobs."""
    warnings = []
    try:  # INFO, not CONFIG GET: managed services and a least-privilege ACL user refuse CONFIG
        policy = str(engine.client.info("memory").get("maxmemory_policy", ""))
    except Exception:  # INFO refused too: nothing to warn about that we can see
        policy = ""
    if policy in EVICTING or policy.startswith("volatile"):
        harm = (
            "any job, queued or running"
            if policy in EVICTING
            else "finished jobs and their results before their TTL"
        )
        warnings.append(
            f"Redis maxmemory-policy is {policy!r}: under memory pressure Redis will evict "
            f"{harm}. Set maxmemory-policy to 'noeviction' for a job queue."
        )
    for queue in queues:
        info = engine.queue_info(queue)
        if info.data_lost_at is not None:
            warnings.append(
                f"Redis lost the data of queue {queue!r} (noticed at "
                f"{info.data_lost_at.isoformat()}): jobs enqueued before then are gone. Check "
                "Redis persistence (appendonly yes)."
            )
    return warnings


class Command(BaseCommand):
    help = (
        "Run jobqueue jobs. Queues are taken in the order given (all configured queues when "
        "none are named). SIGTERM/SIGINT: finish running jobs (up to --shutdown-timeout), give "
        "the rest back, exit; a second signal exits at once."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("queues", nargs="*", metavar="QUEUE")
        parser.add_argument(
            "--concurrency",
            "-c",
            default=None,
            help="Child processes running jobs (default: number of CPUs).",
        )
        parser.add_argument(
            "--burst",
            action="store_true",
            help="Run every ready job, then exit 0 when nothing is ready.",
        )
        parser.add_argument("--max-jobs", default=None, help="Exit after running N jobs.")
        parser.add_argument(
            "--name", default=None, help="Worker name (default: <hostname>.<pid>)."
        )
        parser.add_argument(
            "--prefetch",
            default="32",
            help="Most jobs each child holds: the running one and those waiting behind it. "
            "A child holds about 40 ms of work by the recent jobs' run times, so long jobs "
            "have none waiting behind them (default 32; 1: never more than the running one).",
        )
        parser.add_argument(
            "--shutdown-timeout",
            default="30",
            help="Seconds to let running jobs finish on SIGTERM (default 30).",
        )
        parser.add_argument(
            "--no-schedules",
            action="store_true",
            help="Do not fire periodic schedules from this worker.",
        )
        parser.add_argument(
            "--no-mirror",
            action="store_true",
            help="Do not run the Redis-to-database mirror in this worker.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        worker_options = self.worker_options(options)
        level = LEVELS.get(options["verbosity"], logging.DEBUG)
        logger = logging.getLogger("jobqueue")
        logger.setLevel(level)
        if not logger.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
            )
            logger.addHandler(handler)
        from jobqueue.discovery import autodiscover_for_command

        autodiscover_for_command()  # a broken tasks module: say which, do not start
        mirror = jobqueue_settings.MIRROR and not options["no_mirror"]
        if mirror:
            from jobqueue.mirror.maintenance import database_problem

            problem = database_problem()
            if problem:
                raise CommandError(f"{problem} (Or run the worker with --no-mirror.)")
        engine = get_engine()
        try:
            engine.client.ping()
            engine.runner.scripts.load_all()  # no NOSCRIPT in the worker's first round trips
            for queue in worker_options.queues:
                engine.runner.epoch(queue)  # registers the queue (and its epoch) if new
        except Exception as exc:
            raise CommandError(
                f"Redis at {redacted(str(jobqueue_settings.REDIS_URL))!r} cannot be used: "
                f"{str(exc).rstrip('.')}. Start Redis or fix JOBQUEUE['REDIS_URL']."
            ) from exc
        for warning in startup_warnings(engine, worker_options.queues):
            logging.getLogger("jobqueue.worker").warning(warning)
            self.stderr.write(f"WARNING: {warning}")
        scheduler = None
        if not options["no_schedules"]:
            from jobqueue.schedules import Scheduler, all_schedules

            schedules = all_schedules()
            scheduler = Scheduler(engine, schedules) if schedules else None
        sidecars = []
        if mirror:
            from jobqueue.mirror.process import serve

            sidecars.append(Sidecar("mirror", serve))
        try:
            code = Worker(engine, worker_options, scheduler, sidecars).run()
        except JobqueueError as exc:
            raise CommandError(str(exc)) from exc
        if code:
            raise SystemExit(code)
        if worker_options.burst and any(sidecar.failed for sidecar in sidecars):
            raise CommandError(
                "The mirror could not bring the database up to date (its error is logged "
                "above); the jobs themselves ran."
            )

    def worker_options(self, options: dict) -> WorkerOptions:
        known = configured_queues()
        queues = options["queues"] or known
        if not queues:
            raise CommandError(
                "No queue to work on: name queues on the command line, or configure a "
                "jobqueue.backends.RedisBackend in settings.TASKS."
            )
        for queue in queues:
            if not QUEUE_NAME_RE.match(queue):
                raise CommandError(
                    f"Queue name {queue!r} is invalid: use 1 to 64 characters from A-Z, a-z, "
                    "0-9, '_', '.', '-'."
                )
            if known and queue not in known:
                raise CommandError(
                    f"Queue {queue!r} is not configured; configured queues: {', '.join(known)}."
                )
        if len(set(queues)) != len(queues):
            raise CommandError(f"A queue is named twice in {' '.join(queues)!r}.")
        concurrency = (
            positive_int(options["concurrency"])
            if options["concurrency"]
            else (os.cpu_count() or 1)
        )
        max_jobs = positive_int(options["max_jobs"]) if options["max_jobs"] else None
        prefetch = positive_int(options["prefetch"])
        try:
            shutdown = float(options["shutdown_timeout"])
        except ValueError:
            raise CommandError(
                f"--shutdown-timeout {options['shutdown_timeout']!r} is not a number of seconds."
            ) from None
        if not shutdown >= 0:
            raise CommandError(f"--shutdown-timeout {shutdown} must be zero or more.")
        name = options["name"] or f"{socket.gethostname()}.{os.getpid()}"
        if not NAME_RE.match(name):
            raise CommandError(
                f"--name {name!r} is invalid: use 1 to 100 characters from A-Z, a-z, 0-9, "
                "'_', '.', ':', '@', '-' (no spaces)."
            )
        return WorkerOptions(
            tuple(queues),
            concurrency,
            name,
            burst=options["burst"],
            max_jobs=max_jobs,
            prefetch=prefetch,
            shutdown_timeout=shutdown,
        )
