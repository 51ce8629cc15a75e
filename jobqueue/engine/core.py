"""``Engine``: the object a site holds to enqueue, read and steer jobs in Redis.

It holds the engine's parts, each owning its own state: the :class:`ScriptRunner` (client,
key names, scripts, epochs), the :class:`Producer`, :class:`Reads`, :class:`Operations`, and
the bookkeeping beside the jobs (``workers``, ``logs``, ``schedules``). Its methods are the
user operations, each one line handing the call to the part that owns it. A worker asks it
for a :class:`WorkerProtocol`, the mirror for an :class:`EventReader`: neither is part of
the user operations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .bookkeeping import JobLogs, ScheduleStates, WorkerRegistry
from .config import EngineConfig
from .errors import ConfigurationError, DataLossDetected, JobqueueError
from .events import EventReader, EventTail
from .job import Job, JobState
from .keys import KeySpace
from .operations import Operations
from .producer import JobSpec, Producer
from .protocol import WorkerProtocol
from .reads import QueueInfo, Reads
from .registry import TaskRegistry, default_registry
from .runner import ScriptRunner
from .transport.connection import get_client


class Engine:
    """Enqueue, read and steer jobs. Each state change is one Lua script in ``lua/``.

    >>> engine = Engine.from_url("redis://127.0.0.1:6379/0", EngineConfig(prefix="demo"))
    """

    def __init__(
        self,
        client: Any,
        config: EngineConfig | None = None,
        registry: TaskRegistry | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.registry = registry if registry is not None else default_registry
        self.keys = KeySpace(self.config.prefix)
        self.runner = ScriptRunner(client, self.keys)
        if self.config.enqueue_replicas and self.runner.cluster:
            raise ConfigurationError(
                f"ENQUEUE_REPLICAS = {self.config.enqueue_replicas} is not supported on Redis "
                "Cluster (WAIT would have to follow each queue's slot to its primary); set it "
                "to 0, or use one Redis or Sentinel."
            )
        self.reads = Reads(self.runner, self.config)
        self.producer = Producer(self.runner, self.config, self.registry, self.reads)
        self.operations = Operations(self.runner, self.config)
        self.workers = WorkerRegistry(self.runner, self.config)
        self.logs = JobLogs(self.runner, self.config)
        self.schedules = ScheduleStates(self.runner, self.config)

    @classmethod
    def from_url(cls, url: str, *args: Any, **kwargs: Any) -> Engine:
        """An engine on the process's client for ``url``; the other arguments are the
        constructor's (``config``, ``registry``)."""
        return cls(get_client(url), *args, **kwargs)

    @property
    def client(self) -> Any:
        return self.runner.client

    @property
    def cluster(self) -> bool:
        return self.runner.cluster

    @property
    def data_loss(self) -> list[DataLossDetected]:
        """Every loss of a queue's data this engine noticed (see ``ScriptRunner``)."""
        return self.runner.data_loss

    # -- enqueue (Producer) ----------------------------------------------------------------

    def enqueue(
        self,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """Enqueue one job and return it; ``options`` are :class:`JobSpec`'s fields.

        A job with ``unique_key`` held by a live job, or with an ``idempotency_id`` or
        ``job_id`` that already exists, is not created again: the existing job is returned."""
        return self.producer.enqueue_many([JobSpec(task, args, kwargs or {}, **options)])[0]

    def enqueue_many(
        self, specs: Iterable[JobSpec], draft: Callable[[Job], None] | None = None
    ) -> list[Job]:
        """Enqueue many jobs in one round trip, all validated first; the jobs in order."""
        return self.producer.enqueue_many(specs, draft)

    def validate(self, spec: JobSpec) -> None:
        """Raise InvalidJob (or UnknownTask) if ``spec`` could not be enqueued."""
        self.producer.validate(spec)

    # -- read (Reads) ------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """The job with this id. Raises JobNotFound, or CorruptJob for malformed data."""
        return self.reads.get(job_id)

    def head(self, job_id: str) -> tuple[Job, int]:
        """The job without its result, and the result's size in bytes (0: none)."""
        return self.reads.head(job_id)

    def find(self, job_ids: Sequence[str]) -> list[Job]:
        """The jobs that exist among ``job_ids``, in one round trip."""
        return self.reads.find(job_ids)

    def wait(self, job_id: str, timeout: float = 30.0) -> Job:
        """Block until the job ends and return it; WaitTimeout after ``timeout`` seconds."""
        return self.reads.wait(job_id, timeout)

    def queues(self) -> list[str]:
        """Every queue name ever used under this prefix."""
        return self.reads.queues()

    def counts(self, queue: str) -> dict[JobState, int]:
        """How many jobs of ``queue`` are in each state."""
        return self.reads.counts(queue)

    def queue_info(self, queue: str) -> QueueInfo:
        """A queue's counts, paused flag and epoch, from Redis."""
        return self.reads.queue_info(queue)

    def now_ms(self) -> int:
        """Now, on the Redis clock."""
        return self.runner.now_ms()

    # -- steer (Operations) ------------------------------------------------------------------

    def retry(self, job_id: str) -> None:
        """Put a failed or canceled job back in its queue."""
        self.operations.retry(job_id)

    def cancel(self, job_id: str, reason: str = "canceled") -> str:
        """Cancel a job: ``"canceled"``, or ``"requested"`` for a running one."""
        return self.operations.cancel(job_id, reason)

    def delete(self, job_id: str) -> None:
        """Delete a job in any state, with its log."""
        self.operations.delete(job_id)

    def apply_many(
        self, operation: str, job_ids: Iterable[str]
    ) -> dict[str, JobqueueError | None]:
        """``"retry"``, ``"cancel"`` or ``"delete"`` on many jobs, each id's error in place."""
        return self.operations.apply_many(operation, job_ids)

    def retry_all(self, queue: str, state: JobState | str = JobState.FAILED) -> int:
        """Retry every failed (or canceled) job of ``queue``; returns how many."""
        return self.operations.retry_all(queue, state)

    def purge(self, queue: str, state: JobState | str) -> int:
        """Delete every job of ``queue`` in ``state`` (not running); returns how many."""
        return self.operations.purge(queue, state)

    def pause(self, queue: str) -> bool:
        """Stop claims from ``queue``; True if it was running."""
        return self.operations.pause(queue)

    def resume(self, queue: str) -> bool:
        """Let workers claim from ``queue`` again; True if it was paused."""
        return self.operations.resume(queue)

    # -- for the worker and the mirror -------------------------------------------------------

    def worker_protocol(self) -> WorkerProtocol:
        """What a worker says to Redis about the jobs it runs (claim, renew, complete...)."""
        return WorkerProtocol(self.runner, self.config)

    def event_reader(self, group: str, consumer: str, **options: Any) -> EventReader:
        """The event streams' reader, as ``consumer`` of consumer group ``group``."""
        return EventReader(self.runner, self.reads.queues, group, consumer, **options)

    def event_tail(self, **options: Any) -> EventTail:
        """A follower of the event streams from now on, without a group (live pages)."""
        return EventTail(self.runner, self.reads.queues, **options)
