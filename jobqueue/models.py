"""The Django-side copy of what Redis holds: jobs (with their transitions), queues, workers,
schedules, and per-minute queue statistics.

Only the mirror (``jobqueue.mirror``) writes these rows; the admin reads them and changes jobs
through the engine, whose events come back here. Finished jobs stay here after Redis forgot them
(``JOBQUEUE["MIRROR_RETENTION_DAYS"]``): durable history.
"""

from __future__ import annotations

from django.db import models

from .engine.job import FINISHED_STATES, JobState

# A row's status is its job's state: the engine's JobState is the one definition.
STATUS_CHOICES = [(state.value, state.value.capitalize()) for state in JobState]


def unique(name: str, *fields: str) -> models.UniqueConstraint:
    return models.UniqueConstraint(fields=list(fields), name=name)


class Job(models.Model):
    id = models.CharField(max_length=140, primary_key=True)
    queue = models.CharField(max_length=64)
    task = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=STATUS_CHOICES)
    version = models.PositiveBigIntegerField(default=0)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    arguments_text = models.TextField(blank=True, default="", help_text="For search.")
    priority = models.SmallIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    attempts_before_retry = models.PositiveIntegerField(
        default=0, help_text="Attempts made before the last manual retry."
    )
    stalls = models.PositiveIntegerField(default=0)
    timeout = models.FloatField(null=True, blank=True)
    unique_key = models.CharField(max_length=200, blank=True, default="")
    enqueued_at = models.DateTimeField(null=True, blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    # When the current attempt could first run (its enqueue, its run_at once a delay or a
    # backoff ran out, a release, a manual retry): the mirror measures the wait before start
    # from it. Unknown (null) for rows copied whole from Redis while queued.
    ready_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_attempted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=100, blank=True, default="")
    worker_ids = models.JSONField(default=list, blank=True)
    result = models.JSONField(null=True, blank=True)
    error_class = models.CharField(max_length=300, blank=True, default="")
    error_traceback = models.TextField(blank=True, default="")
    errors = models.JSONField(default=list, blank=True)
    progress = models.JSONField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    reason = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-enqueued_at"]
        indexes = [
            models.Index(fields=["-enqueued_at"], name="jq_job_enqueued"),
            models.Index(fields=["status", "-enqueued_at"], name="jq_job_status_enqueued"),
            models.Index(fields=["queue", "-enqueued_at"], name="jq_job_queue_enqueued"),
            models.Index(fields=["task", "-enqueued_at"], name="jq_job_task_enqueued"),
        ]
        permissions = [
            ("retry_job", "Can retry jobs"),
            ("cancel_job", "Can cancel jobs"),
        ]

    def __str__(self) -> str:
        return f"{self.task} ({self.id})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATES

    @property
    def attempts_this_run(self) -> int:
        """Attempts since the last manual retry: what max_attempts limits."""
        return max(self.attempts - self.attempts_before_retry, 0)

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class JobTransition(models.Model):
    """One state change of a job: its timeline, kept as long as the job's row."""

    # No index of its own: the unique (job, version) constraint's index serves lookups by job.
    job = models.ForeignKey(
        Job,
        on_delete=models.CASCADE,
        related_name="transitions",
        db_constraint=False,
        db_index=False,
    )
    version = models.PositiveBigIntegerField()
    status = models.CharField(max_length=16)
    at = models.DateTimeField()
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["job_id", "version"]  # not "job": that would join (and hide) rows
        constraints = [unique("jq_transition_unique", "job", "version")]

    def __str__(self) -> str:
        return f"{self.job_id} v{self.version} {self.status}"


class Queue(models.Model):
    name = models.CharField(max_length=64, primary_key=True)
    paused = models.BooleanField(default=False)
    scheduled = models.PositiveIntegerField(default=0)
    queued = models.PositiveIntegerField(default=0)
    running = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    canceled = models.PositiveIntegerField(default=0)
    last_activity = models.DateTimeField(null=True, blank=True)
    data_lost_at = models.DateTimeField(null=True, blank=True)
    # Stream entries of this queue the mirror could not apply (acknowledged, their jobs copied
    # whole from Redis instead), and the last of them: "<entry id> (job <id>): <error>".
    poison_entries = models.PositiveIntegerField(default=0)
    last_poison = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("pause_queue", "Can pause and resume queues"),
            ("purge_queue", "Can purge queues"),
        ]

    def __str__(self) -> str:
        return self.name


class QueueStat(models.Model):
    """Per queue and minute: jobs finished, failed, and their waiting and running times."""

    queue = models.CharField(max_length=64)
    minute = models.DateTimeField()
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    wait_ms = models.PositiveBigIntegerField(default=0)  # sum of start - Job.ready_at
    run_ms = models.PositiveBigIntegerField(default=0)  # sum of finish - start
    started = models.PositiveIntegerField(default=0)  # starts whose ready time was known

    class Meta:
        constraints = [unique("jq_queuestat_unique", "queue", "minute")]

    def __str__(self) -> str:
        return f"{self.queue} {self.minute:%H:%M}"


class Worker(models.Model):
    name = models.CharField(max_length=100, primary_key=True)
    hostname = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(default=0)
    queues = models.JSONField(default=list, blank=True)
    concurrency = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=16, default="idle")
    alive = models.BooleanField(default=True)
    current_jobs = models.JSONField(default=list, blank=True)
    successful = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)
    working_time = models.FloatField(default=0)
    birth = models.DateTimeField(null=True, blank=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-alive", "name"]

    def __str__(self) -> str:
        return self.name


class Schedule(models.Model):
    name = models.CharField(max_length=200, primary_key=True)
    task = models.CharField(max_length=200)
    cron = models.CharField(max_length=100, blank=True, default="")
    every = models.FloatField(null=True, blank=True)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    queue = models.CharField(max_length=64, default="default")
    paused = models.BooleanField(default=False)
    last_tick = models.DateTimeField(null=True, blank=True)
    last_job = models.CharField(max_length=140, blank=True, default="")
    next_run = models.DateTimeField(null=True, blank=True)
    # The version of the state in Redis these columns were copied from (``<name>:v``): the
    # mirror and the admin write paused/last_tick/last_job only over an older version.
    state_version = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["name"]
        permissions = [("run_schedule", "Can run schedules now, pause and resume them")]

    def __str__(self) -> str:
        return self.name
