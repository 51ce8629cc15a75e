"""The engine's options, one frozen value. ``jobqueue.conf`` builds it from ``settings.JOBQUEUE``;
the engine itself never reads Django's settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineConfig:
    prefix: str = "jq"  # namespace of every key
    lease_seconds: float = 30.0  # how long a claim lasts unless renewed
    result_ttl: int = 86400  # seconds a succeeded job stays in Redis
    failed_ttl: int = 7 * 86400  # seconds a failed or canceled job stays in Redis
    registry_limit: int = 10000  # most ids kept in each finished-state registry of a queue
    events_maxlen: int = 100000  # approximate cap of each queue's event stream
    max_stalls: int = 3  # lease expiries a job may cause before it is dead-lettered
    wake_cap: int = 100  # most wake-up tokens kept in a queue's wake list
    promote_batch: int = 100  # most due scheduled jobs a claim promotes
    backoff_base: float = 1.0  # first retry delay, doubled for each later attempt
    backoff_max: float = 3600.0  # longest retry delay
    max_payload_bytes: int = 16 * 1024 * 1024  # a job's encoded arguments, at most
    max_result_bytes: int = 16 * 1024 * 1024  # a job's encoded return value, at most
    errors_kept: int = 20  # most errors a job keeps (the oldest dropped first)
    errors_kept_bytes: int = 1024 * 1024  # most bytes of JSON a job's errors keep
    traceback_bytes: int = 64 * 1024  # most bytes of each failed attempt's traceback
    log_line_bytes: int = 4096  # most bytes of each log record's message kept with its job
    worker_dead_after: float = 15.0  # seconds without heartbeat before a worker is dead
    worker_forget_after: float = 3600.0  # seconds before a dead worker is removed
    # Microseconds a single enqueue polls for Redis's reply before sleeping on it (0: never).
    enqueue_spin_us: int = 0
    # Replicas that must acknowledge an enqueue (WAIT) before it returns (0: none), and how
    # long it waits for them, in seconds (replication.py, ``await_replicas``).
    enqueue_replicas: int = 0
    enqueue_replicas_timeout: float = 1.0

    @property
    def lease_ms(self) -> int:
        return int(self.lease_seconds * 1000)

    @property
    def failed_ttl_ms(self) -> int:
        return self.failed_ttl * 1000
