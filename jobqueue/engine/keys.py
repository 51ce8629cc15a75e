"""Every Redis key jobqueue uses is named here, and only here.

All keys of one queue share the Redis Cluster hash tag ``{<queue>}`` so that every script touches
one slot: ``<prefix>:{<queue>}:<kind>[:<job>]``. The few keys that span queues (the set of queue
names, the worker registry) are never touched by a script. docs/redis-keys.md documents each one;
a test checks that every pattern below appears there.
"""

from __future__ import annotations

from functools import lru_cache

# Per queue: kind -> (Redis type, meaning). The docs test reads this table.
QUEUE_KEYS: dict[str, tuple[str, str]] = {
    "meta": ("hash", "queue metadata: epoch, sequence and fence counters, paused flag"),
    "ready": ("zset", "queued jobs; score = (100 - priority) * 2**44 + sequence"),
    "scheduled": ("zset", "deferred jobs and retries waiting for backoff; score = run-at ms"),
    "leases": ("zset", "running jobs; score = lease deadline in ms on the Redis clock"),
    "succeeded": ("zset", "registry of succeeded jobs; score = finish time ms"),
    "failed": ("zset", "registry of failed (dead) jobs; score = finish time ms"),
    "canceled": ("zset", "registry of canceled jobs; score = cancel time ms"),
    "uniques": ("hash", "unique key -> id of the live job holding it"),
    "events": ("stream", "one entry per transition, read by the mirror"),
    "wake": ("list", "wake-up tokens for blocked workers (a hint, capped)"),
    "idle": ("zset", "workers waiting idle for this queue; score = registration end ms"),
}
# Per job (the job's local id is the last part).
JOB_KEYS: dict[str, tuple[str, str]] = {
    "job": ("hash", "the job: task, arguments, state, version, attempts, result, errors"),
    "done": ("list", "end-of-job notification for wait(); exists briefly"),
    "log": ("list", "log records written by the task while it ran (capped)"),
}
# Shared by all queues of one prefix; never touched by a script (they are not job transitions).
GLOBAL_KEYS: dict[str, tuple[str, str]] = {
    "queues": ("set", "names of every queue that has been used"),
    "workers": ("zset", "worker registry: name -> last heartbeat ms"),
    "worker": ("hash", "one worker: host, pid, queues, state, current jobs, counters"),
    "schedules": ("hash", "periodic schedules' state: <name>:last, <name>:paused, <name>:job"),
}

# Short names in Redis to keep each job small; spelled out in docs/redis-keys.md.
JOB_KEY_KIND = {"job": "j", "done": "done", "log": "log"}

# The set that holds a queue's jobs in each state (a job state's value -> its kind above).
STATE_SETS = {
    "scheduled": "scheduled",
    "queued": "ready",
    "running": "leases",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
}


class QueueKeys:
    """The keys of one queue, computed once."""

    meta: str
    ready: str
    scheduled: str
    leases: str
    succeeded: str
    failed: str
    canceled: str
    uniques: str
    events: str
    wake: str
    idle: str

    def __init__(self, queue: str, base: str) -> None:
        self.queue = queue
        self.base = base  # "<prefix>:{<queue>}:"
        for kind in QUEUE_KEYS:
            setattr(self, kind, base + kind)
        # Prefixes handed to the scripts that derive keys from ids they pop themselves.
        self.job_prefix = base + "j:"
        self.done_prefix = base + "done:"
        self.log_prefix = base + "log:"
        self.inbox_prefix = base + "inbox:"

    def __repr__(self) -> str:
        return f"QueueKeys({self.queue!r}, {self.base!r})"

    def job(self, local_id: str) -> str:
        return self.job_prefix + local_id

    def done(self, local_id: str) -> str:
        return self.done_prefix + local_id

    def log(self, local_id: str) -> str:
        return self.log_prefix + local_id

    def of_state(self, state: str) -> str:
        """The set holding the queue's jobs in ``state`` (a job state's value)."""
        return str(getattr(self, STATE_SETS[state]))

    def inbox(self, member: str) -> str:
        """The inbox of an idle set's member: a worker's child, ``<worker name>#<index>``."""
        return self.inbox_prefix + member

    def claim_request(self, request: str) -> str:
        """What one claim call leased (local ids and tokens), kept while its leases last, so
        that the same call sent again (its reply was lost) gets the same jobs."""
        return self.base + "claim:" + request


class KeySpace:
    """Key names under one prefix (``JOBQUEUE["PREFIX"]``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.queue = lru_cache(maxsize=1024)(self._queue)

    def _queue(self, name: str) -> QueueKeys:
        return QueueKeys(name, f"{self.prefix}:{{{name}}}:")

    @property
    def queues(self) -> str:
        return f"{self.prefix}:queues"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def worker(self, name: str) -> str:
        return f"{self.prefix}:worker:{name}"

    @property
    def schedules(self) -> str:
        return f"{self.prefix}:schedules"

    @property
    def replicated(self) -> str:
        """A counter an enqueue that waits for replicas increments first (replication.py)."""
        return f"{self.prefix}:replicated"

    def patterns(self) -> dict[str, str]:
        """Every key pattern, for the documentation and its test."""
        q = self.queue("<queue>")
        out = {kind: getattr(q, kind) for kind in QUEUE_KEYS}
        out.update(job=q.job("<id>"), done=q.done("<id>"), log=q.log("<id>"))
        out.update(inbox=q.inbox("<member>"), claim=q.claim_request("<request>"))
        out.update(
            queues=self.queues,
            workers=self.workers,
            worker=self.worker("<name>"),
            schedules=self.schedules,
            replicated=self.replicated,
        )
        return out
