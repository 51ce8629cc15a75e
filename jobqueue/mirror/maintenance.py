"""Keeping the database's copy whole and small: ``rebuild`` reconciles it with Redis (after
Redis lost data, or when installing jobqueue into a site that already has jobs), ``prune``
deletes the rows of jobs finished long ago; ``database_problem`` says, before a mirror starts,
why it could not write."""

from __future__ import annotations

from datetime import timedelta

from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from ..engine import Engine, JobState
from ..engine.job import ACTIVE_STATES, FINISHED_STATES
from ..models import Job, JobTransition, QueueStat
from .batch import TOMBSTONE
from .rows import row_values
from .sql import upsert_rows


def database_problem() -> str | None:
    """Why the mirror could not write to this database, in one sentence (None: it can): the
    database cannot be reached, or jobqueue's migrations (its tables and columns) are not all
    applied."""
    try:
        executor = MigrationExecutor(connection)
        targets = [key for key in executor.loader.graph.leaf_nodes() if key[0] == "jobqueue"]
        plan = executor.migration_plan(targets)
    except DatabaseError as exc:
        return f"The database cannot be used by the mirror: {exc}."
    missing = [m.name for m, _ in plan if m.app_label == "jobqueue"]
    if missing:
        return (
            f"The database lacks jobqueue's tables (migrations not applied: "
            f"{', '.join(missing)}): run 'python manage.py migrate'."
        )
    return None


def rebuild(engine: Engine, page: int = 1000) -> dict[str, int]:
    """Reconcile the rows with Redis: copy every job Redis holds; a row of an unfinished job
    that Redis no longer holds is marked failed (lost). Finished rows are kept: history."""
    copied, seen = 0, set()
    for queue in engine.queues():
        for state in JobState:
            offset = 0
            while ids := engine.reads.job_ids(queue, state, offset, page):
                rows = [row_values(job) for job in engine.find(ids)]
                with transaction.atomic():
                    upsert_rows(rows)
                copied += len(rows)
                seen.update(ids)
                offset += page
    active = [s.value for s in ACTIVE_STATES]
    unseen = [
        job_id
        for job_id in Job.objects.filter(status__in=active).values_list("id", flat=True)
        if job_id not in seen
    ]
    lost = 0
    for start in range(0, len(unseen), page):
        chunk = unseen[start : start + page]
        # A job that changed state between two pages above was not seen, yet it is there.
        moved = [row_values(job) for job in engine.find(chunk)]
        with transaction.atomic():
            upsert_rows(moved)
            gone = set(chunk) - {row["id"] for row in moved}
            lost += Job.objects.filter(id__in=gone, status__in=active).update(
                status=JobState.FAILED.value,
                reason="lost: Redis no longer holds this job",
                finished_at=timezone.now(),
            )
        copied += len(moved)
    return {"copied": copied, "lost": lost}


def prune(days: float, batch: int = 5000) -> int:
    """Delete rows of jobs that finished more than ``days`` ago (and their transitions)."""
    try:
        cutoff = timezone.now() - timedelta(days=days)
    except OverflowError:  # further back than dates go (days=inf): nothing is that old
        cutoff = None
    finished = [s.value for s in FINISHED_STATES]
    deleted = 0
    while cutoff is not None:
        ids = list(
            # A job that finished before the cutoff was enqueued before it too: the range on
            # enqueued_at walks an index, and there is none on finished_at to keep up.
            Job.objects.filter(
                enqueued_at__lt=cutoff, status__in=finished, finished_at__lt=cutoff
            ).values_list("id", flat=True)[:batch]
        )
        if not ids:
            break
        with transaction.atomic():
            JobTransition.objects.filter(job_id__in=ids).delete()
            deleted += Job.objects.filter(id__in=ids).delete()[1].get("jobqueue.Job", 0)
    if cutoff is not None:  # tombstones of deleted jobs, as old
        JobTransition.objects.filter(version=TOMBSTONE, at__lt=cutoff).delete()
    QueueStat.objects.filter(minute__lt=timezone.now() - timedelta(days=2)).delete()
    return deleted
