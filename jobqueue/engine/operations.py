"""Operations people run from the admin or their own code: retry, cancel, delete, purge, pause
and resume.

Each is one script (one transition); bulk forms run in bounded batches so a queue of millions
never blocks Redis for long.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .codec import text
from .config import EngineConfig
from .errors import InvalidJob, InvalidTransition, JobNotFound, JobqueueError
from .job import (
    PURGEABLE_STATES,
    RETRYABLE_STATES,
    JobState,
    parse_state,
    split_job_id,
    validate_queue_name,
)
from .runner import Call, Part, ScriptRunner

BATCH = 500
NOT_RETRYABLE = "Only failed or canceled jobs can be retried, not {!r}."
NOT_PURGEABLE = "Running jobs cannot be purged; cancel them, or delete them one by one."


class Operations(Part):
    def __init__(self, runner: ScriptRunner, config: EngineConfig) -> None:
        super().__init__(runner, config)
        # operation -> (the call for one job id, how its reply reads: raises or returns)
        self._one: dict[str, tuple[Callable[..., Call], Callable[[str, Any], Any]]] = {
            "retry": (self._retry_call, self._retried),
            "cancel": (self._cancel_call, self._canceled),
            "delete": (self._delete_call, self._deleted),
        }

    def retry(self, job_id: str) -> None:
        """Put a failed or canceled job back in the queue."""
        self._apply("retry", job_id)

    def cancel(self, job_id: str, reason: str = "canceled") -> str:
        """Cancel a job: ``"canceled"`` at once when scheduled or queued, ``"requested"`` when
        running (the worker stops it). Raises InvalidTransition for a finished job."""
        return str(self._apply("cancel", job_id, reason))

    def delete(self, job_id: str) -> None:
        """Delete a job in any state, with its log. Raises JobNotFound if there is none."""
        self._apply("delete", job_id)

    def _apply(self, operation: str, job_id: str, *options: Any) -> Any:
        make, read = self._one[operation]
        return read(job_id, self.runner.run(*make(job_id, *options)))

    def apply_many(
        self, operation: str, job_ids: Iterable[str]
    ) -> dict[str, JobqueueError | None]:
        """Run ``operation`` ("retry", "cancel" or "delete") on many jobs, BATCH per round
        trip. Returns, per id, None when done or the error it would have raised alone
        (InvalidTransition, JobNotFound, InvalidJob...); a connection failure raises."""
        make, read = self._one[operation]
        pending = list(dict.fromkeys(job_ids))
        results: dict[str, JobqueueError | None] = dict.fromkeys(pending)  # in the order given
        for start in range(0, len(pending), BATCH):
            ids, calls = [], []
            for job_id in pending[start : start + BATCH]:
                try:
                    calls.append(make(job_id))
                    ids.append(job_id)
                except JobqueueError as exc:  # not a job id
                    results[job_id] = exc
            replies = self.runner.run_batch(calls, raise_errors=False) if calls else []
            for job_id, reply in zip(ids, replies, strict=True):
                try:
                    if isinstance(reply, JobqueueError):
                        raise reply
                    read(job_id, reply)
                except JobqueueError as exc:
                    results[job_id] = exc
        return results

    # -- one job: each call, and how its reply reads -----------------------------------------

    def _retry_call(self, job_id: str) -> Call:
        queue, local_id = split_job_id(job_id)
        qk = self.keys.queue(queue)
        keys = [qk.meta, qk.ready, qk.failed, qk.canceled, qk.events, qk.uniques, qk.wake]
        return (
            "retry",
            queue,
            [*keys, qk.job(local_id)],
            [queue, self.config.events_maxlen, local_id, self.config.wake_cap],
        )

    def _retried(self, job_id: str, reply: Any) -> None:
        outcome, state = reply
        if text(outcome) != "retried":
            _refuse(job_id, text(state), "retried", "failed or canceled")

    def _cancel_call(self, job_id: str, reason: str = "canceled") -> Call:
        queue, local_id = split_job_id(job_id)
        qk = self.keys.queue(queue)
        keys = [qk.meta, qk.ready, qk.scheduled, qk.canceled, qk.events, qk.uniques]
        args = [queue, self.config.events_maxlen, local_id, self.config.failed_ttl_ms]
        args += [self.config.registry_limit, reason[:1000]]
        return ("cancel", queue, [*keys, qk.job(local_id), qk.done(local_id)], args)

    def _canceled(self, job_id: str, reply: Any) -> str:
        outcome, state = text(reply[0]), reply[1]
        if outcome == "refused":
            _refuse(job_id, text(state), "canceled", "scheduled, queued or running")
        return outcome

    def _delete_call(self, job_id: str) -> Call:
        queue, local_id = split_job_id(job_id)
        qk = self.keys.queue(queue)
        keys = [qk.meta, qk.ready, qk.scheduled, qk.leases, qk.succeeded, qk.failed, qk.canceled]
        keys += [qk.events, qk.uniques, qk.job(local_id), qk.done(local_id), qk.log(local_id)]
        return ("delete", queue, keys, [queue, self.config.events_maxlen, local_id])

    def _deleted(self, job_id: str, reply: Any) -> None:
        if not int(reply):
            raise JobNotFound(f"No job {job_id!r}: it never existed, expired, or was deleted.")

    # -- whole queues ---------------------------------------------------------------------

    def retry_all(self, queue: str, state: JobState | str = JobState.FAILED) -> int:
        """Retry every job of ``queue`` in ``state`` (failed or canceled); returns how many."""
        wanted = self._state(queue, state, RETRYABLE_STATES, NOT_RETRYABLE)
        qk = self.keys.queue(queue)
        keys = [qk.meta, qk.ready, qk.of_state(wanted), qk.events, qk.uniques, qk.wake]
        args = [queue, self.config.events_maxlen, qk.job_prefix, BATCH, wanted]
        return self._in_batches("retry_all", queue, keys, [*args, self.config.wake_cap])

    def purge(self, queue: str, state: JobState | str, batch: int = BATCH) -> int:
        """Delete every job of ``queue`` in ``state`` (not running), ``batch`` per script
        call; returns how many ids were removed."""
        wanted = self._state(queue, state, PURGEABLE_STATES, NOT_PURGEABLE)
        qk = self.keys.queue(queue)
        keys = [qk.meta, qk.of_state(wanted), qk.events, qk.uniques]
        args = [queue, self.config.events_maxlen, qk.job_prefix, qk.done_prefix, qk.log_prefix]
        return self._in_batches("purge", queue, keys, [*args, batch, wanted])

    def _state(self, queue: str, state: JobState | str, allowed: frozenset, refusal: str) -> str:
        """``state``'s value once checked: InvalidJob with ``refusal`` (formatted with the
        state) when it is not one of ``allowed``."""
        validate_queue_name(queue)
        wanted = parse_state(state)
        if wanted not in allowed:
            raise InvalidJob(refusal.format(wanted.value))
        return wanted.value

    def _in_batches(self, name: str, queue: str, keys: list[str], args: list[Any]) -> int:
        """Run a batch script until it takes nothing more; the total it took."""
        total = 0
        while taken := int(self.runner.run(name, queue, keys, args)):
            total += taken
        return total

    def pause(self, queue: str) -> bool:
        """Stop claims from ``queue`` (enqueue still works). True if it was running."""
        return self._set_paused(queue, True)

    def resume(self, queue: str) -> bool:
        """Let workers claim from ``queue`` again. True if it was paused."""
        return self._set_paused(queue, False)

    def _set_paused(self, queue: str, paused: bool) -> bool:
        validate_queue_name(queue)
        qk = self.keys.queue(queue)
        changed = self.runner.run(
            "pause",
            queue,
            [qk.meta, qk.events, qk.wake],
            [queue, self.config.events_maxlen, "1" if paused else "0", self.config.wake_cap],
        )
        return bool(int(changed))


def _refuse(job_id: str, state: str, verb: str, allowed: str) -> None:
    if not state:
        raise JobNotFound(f"No job {job_id!r}: it never existed, expired, or was deleted.")
    raise InvalidTransition(f"Job {job_id!r} is {state}; only {allowed} jobs can be {verb}.")
