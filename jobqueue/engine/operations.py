"""Operations people run from the admin: retry, cancel, delete, purge, pause and resume.

Each is one script (one transition); bulk forms run in bounded batches so a queue of millions
never blocks Redis for long.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .base import EngineBase, decode
from .errors import InvalidJob, InvalidTransition, JobNotFound, JobqueueError
from .job import PURGEABLE_STATES, RETRYABLE_STATES, JobState, split_job_id, validate_queue_name
from .lease import Call

BATCH = 500


class OperationsMixin(EngineBase):
    def _state_set(self, queue: str, state: JobState | str) -> str:
        qk = self.qkeys(queue)
        try:
            state = JobState(state)
        except ValueError:
            raise InvalidJob(
                f"{state!r} is not a job state; use one of {', '.join(s.value for s in JobState)}."
            ) from None
        return {
            JobState.QUEUED: qk.ready,
            JobState.SCHEDULED: qk.scheduled,
            JobState.RUNNING: qk.leases,
            JobState.SUCCEEDED: qk.succeeded,
            JobState.FAILED: qk.failed,
            JobState.CANCELED: qk.canceled,
        }[state]

    def retry(self, job_id: str) -> None:
        """Put a failed or canceled job back in the queue."""
        self._retried(job_id, self.run(*self._retry_call(job_id)))

    def _retry_call(self, job_id: str) -> Call:
        queue, local_id = split_job_id(job_id)
        qk = self.qkeys(queue)
        keys = [qk.meta, qk.ready, qk.failed, qk.canceled, qk.events, qk.uniques, qk.wake]
        return (
            "retry",
            queue,
            [*keys, qk.job(local_id)],
            [queue, self.config.events_maxlen, local_id],
        )

    def _retried(self, job_id: str, reply: Any) -> None:
        outcome, state = reply
        if decode(outcome) != "retried":
            self._refuse(job_id, decode(state), "retried", "failed or canceled")

    def retry_all(self, queue: str, state: JobState | str = JobState.FAILED) -> int:
        """Retry every job of ``queue`` in ``state`` (failed or canceled); returns how many."""
        validate_queue_name(queue)
        registry = self._state_set(queue, state)  # validates the state
        state = JobState(state)
        if state not in RETRYABLE_STATES:
            raise InvalidJob(f"Only failed or canceled jobs can be retried, not {state.value!r}.")
        qk = self.qkeys(queue)
        total = 0
        while True:
            taken = int(
                self.run(
                    "retry_all",
                    queue,
                    [qk.meta, qk.ready, registry, qk.events, qk.uniques, qk.wake],
                    [queue, self.config.events_maxlen, qk.job_prefix, BATCH, str(state)],
                )
            )
            if not taken:
                return total
            total += taken

    def cancel(self, job_id: str, reason: str = "canceled") -> str:
        """Cancel a job: ``"canceled"`` at once when scheduled or queued, ``"requested"`` when
        running (the worker stops it). Raises InvalidTransition for a finished job."""
        return self._canceled(job_id, self.run(*self._cancel_call(job_id, reason)))

    def _cancel_call(self, job_id: str, reason: str = "canceled") -> Call:
        queue, local_id = split_job_id(job_id)
        qk = self.qkeys(queue)
        keys = [qk.meta, qk.ready, qk.scheduled, qk.canceled, qk.events, qk.uniques]
        args = [queue, self.config.events_maxlen, local_id, self.config.failed_ttl * 1000]
        args += [self.config.registry_limit, reason[:1000]]
        return ("cancel", queue, [*keys, qk.job(local_id), qk.done(local_id)], args)

    def _canceled(self, job_id: str, reply: Any) -> str:
        outcome, state = decode(reply[0]), reply[1]
        if outcome == "refused":
            self._refuse(job_id, decode(state), "canceled", "scheduled, queued or running")
        return outcome

    def delete(self, job_id: str) -> None:
        """Delete a job in any state, with its log. Raises JobNotFound if there is none."""
        self._deleted(job_id, self.run(*self._delete_call(job_id)))

    def _delete_call(self, job_id: str) -> Call:
        queue, local_id = split_job_id(job_id)
        qk = self.qkeys(queue)
        keys = [qk.meta, qk.ready, qk.scheduled, qk.leases, qk.succeeded, qk.failed, qk.canceled]
        keys += [qk.events, qk.uniques, qk.job(local_id), qk.done(local_id), qk.log(local_id)]
        return ("delete", queue, keys, [queue, self.config.events_maxlen, local_id])

    def _deleted(self, job_id: str, reply: Any) -> None:
        if not int(reply):
            raise JobNotFound(f"No job {job_id!r}: it never existed, expired, or was deleted.")

    def apply_many(
        self, operation: str, job_ids: Iterable[str]
    ) -> dict[str, JobqueueError | None]:
        """Run ``operation`` ("retry", "cancel" or "delete") on many jobs, BATCH per round
        trip. Returns, per id, None when done or the error it would have raised alone
        (InvalidTransition, JobNotFound, InvalidJob...); a connection failure raises."""
        make, read = {
            "retry": (self._retry_call, self._retried),
            "cancel": (self._cancel_call, self._canceled),
            "delete": (self._delete_call, self._deleted),
        }[operation]
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
            replies = self.run_batch(calls, raise_errors=False) if calls else []
            for job_id, reply in zip(ids, replies, strict=True):
                try:
                    if isinstance(reply, JobqueueError):
                        raise reply
                    read(job_id, reply)
                    results[job_id] = None
                except JobqueueError as exc:
                    results[job_id] = exc
        return results

    def purge(self, queue: str, state: JobState | str, batch: int = BATCH) -> int:
        """Delete every job of ``queue`` in ``state`` (not running), ``batch`` per script
        call; returns how many ids were removed."""
        validate_queue_name(queue)
        zset = self._state_set(queue, state)
        state = JobState(state)
        if state not in PURGEABLE_STATES:
            raise InvalidJob(
                "Running jobs cannot be purged; cancel them, or delete them one by one."
            )
        qk = self.qkeys(queue)
        total = 0
        while True:
            taken = int(
                self.run(
                    "purge",
                    queue,
                    [qk.meta, zset, qk.events, qk.uniques],
                    [
                        queue,
                        self.config.events_maxlen,
                        qk.job_prefix,
                        qk.done_prefix,
                        qk.log_prefix,
                        batch,
                        str(state),
                    ],
                )
            )
            if not taken:
                return total
            total += taken

    def pause(self, queue: str) -> bool:
        """Stop claims from ``queue`` (enqueue still works). True if it was running."""
        return self._set_paused(queue, True)

    def resume(self, queue: str) -> bool:
        """Let workers claim from ``queue`` again. True if it was paused."""
        return self._set_paused(queue, False)

    def _set_paused(self, queue: str, paused: bool) -> bool:
        validate_queue_name(queue)
        qk = self.qkeys(queue)
        changed = self.run(
            "pause",
            queue,
            [qk.meta, qk.events, qk.wake],
            [queue, self.config.events_maxlen, "1" if paused else "0"],
        )
        return bool(int(changed))

    def _refuse(self, job_id: str, state: str, verb: str, allowed: str) -> None:
        if not state:
            raise JobNotFound(f"No job {job_id!r}: it never existed, expired, or was deleted.")
        raise InvalidTransition(f"Job {job_id!r} is {state}; only {allowed} jobs can be {verb}.")
