"""How fast is the admin's job list on a big mirror table?

    python bench/admin_list.py --rows 1000000                       # SQLite (a temp file)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/jqbench python bench/admin_list.py

Fills the jobqueue_job table with ``--rows`` synthetic rows (statuses, queues and tasks spread
like a busy site's, a month of enqueue times), then times admin pages through Django's test
client: the first page, filtered pages, a date drill-down and an id search. Prints the median
and the slowest of ``--repeat`` requests per page, in milliseconds. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STATUSES = ["succeeded"] * 90 + ["failed"] * 5 + ["queued"] * 3 + ["running", "canceled"]
QUEUES = ["default", "emails", "reports", "billing", "low"]
TASKS = [f"shop.tasks.task_{i}" for i in range(10)]


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def fill(rows: int, seed: int = 7) -> None:
    from django.db import connection, transaction

    from jobqueue.models import Job

    if Job.objects.count() >= rows:
        return
    Job.objects.all().delete()
    rng = random.Random(seed)
    now = datetime.now(UTC)
    columns = [
        "id",
        "queue",
        "task",
        "status",
        "version",
        "args",
        "kwargs",
        "arguments_text",
        "priority",
        "attempts",
        "max_attempts",
        "stalls",
        "unique_key",
        "enqueued_at",
        "started_at",
        "finished_at",
        "worker",
        "worker_ids",
        "errors",
        "error_class",
        "error_traceback",
        "cancel_requested",
        "reason",
        "updated_at",
        "result",
    ]
    sql = (
        f"INSERT INTO jobqueue_job ({', '.join(columns)}) VALUES "
        f"({', '.join(['%s'] * len(columns))})"
    )
    with connection.cursor() as cursor:
        for start in range(0, rows, 20000):
            batch = []
            for i in range(start, min(start + 20000, rows)):
                status = rng.choice(STATUSES)
                enqueued = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
                started = enqueued + timedelta(milliseconds=rng.uniform(1, 500))
                finished = started + timedelta(milliseconds=rng.uniform(1, 2000))
                args = [i, f"user-{rng.randrange(100000)}@example.com"]
                done = status in ("succeeded", "failed", "canceled")
                batch.append(
                    [
                        f"{rng.choice(QUEUES)}:{i:024x}",
                        rng.choice(QUEUES),
                        rng.choice(TASKS),
                        status,
                        3,
                        json.dumps(args),
                        "{}",
                        json.dumps([args, {}]),
                        0,
                        1,
                        1,
                        0,
                        "",
                        enqueued,
                        started if status != "queued" else None,
                        finished if done else None,
                        "host.1",
                        json.dumps(["host.1"]),
                        "[]",
                        "",
                        "",
                        False,
                        "",
                        now,
                        json.dumps(i) if status == "succeeded" else None,
                    ]
                )
            with transaction.atomic():
                cursor.executemany(sql, batch)
            print(f"  filled {min(start + 20000, rows):,} rows", file=sys.stderr)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE jobqueue_job")
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def measure(repeat: int) -> list[tuple[str, float, float]]:
    from django.contrib.auth.models import User
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    user, _ = User.objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    year = datetime.now(UTC).year
    pages = {
        "first page": "/admin/jobqueue/job/",
        "status=failed": "/admin/jobqueue/job/?status=failed",
        "queue+status": "/admin/jobqueue/job/?queue=emails&status=queued",
        "task filter": "/admin/jobqueue/job/?task=shop.tasks.task_3",
        "date drill-down": f"/admin/jobqueue/job/?enqueued_at__year={year}",
        "id search": "/admin/jobqueue/job/?q=emails:00000000000000000001",
        "page 100": "/admin/jobqueue/job/?p=100",
    }
    results = []
    for name, url in pages.items():
        timings = []
        for _ in range(repeat + 1):
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        timings = timings[1:]  # the first request warms caches
        results.append((name, statistics.median(timings), max(timings)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL") or (
        f"sqlite:///{Path(tempfile.gettempdir()) / 'jobqueue-bench-admin.sqlite3'}"
    )
    setup_django(url)
    from django.db import connection

    fill(args.rows)
    print(
        f"admin job list, {args.rows:,} rows, {connection.vendor}, median / max of {args.repeat}"
    )
    print("| page | median ms | max ms |\n|---|---|---|")
    for name, median, worst in measure(args.repeat):
        print(f"| {name} | {median:.0f} | {worst:.0f} |")


if __name__ == "__main__":
    main()
