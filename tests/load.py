"""A producer thread for the failover tests: it enqueues while Redis fails over under it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from jobqueue.engine import Engine
from jobqueue.engine.errors import ConnectionFailed, NotReplicated
from tests.conftest import wait_for


class Producer(threading.Thread):
    """Enqueues ``tests.sample_tasks.add`` with ids of its own (default:p000000, ...); a
    failed enqueue is tried again with the same id until it returns. Keeps the ids that
    returned and the longest time between two that did."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.acknowledged: list[str] = []
        self.refused: dict[str, int] = {}
        self.longest_gap = 0.0
        self.done = threading.Event()
        self.crashed: BaseException | None = None

    def run(self) -> None:
        try:
            self.produce()
        except BaseException as exc:  # shown by the test, not as a warning about a thread
            self.crashed = exc

    def produce(self) -> None:
        number, last = 0, time.monotonic()
        while not self.done.is_set():
            try:
                job = self.engine.enqueue(
                    "tests.sample_tasks.add", [number, 1], job_id=f"default:p{number:06d}"
                )
            except (ConnectionFailed, NotReplicated) as exc:
                name = type(exc).__name__
                self.refused[name] = self.refused.get(name, 0) + 1
                time.sleep(0.05)
                continue
            now = time.monotonic()
            self.longest_gap = max(self.longest_gap, now - last)
            last = now
            self.acknowledged.append(job.id)
            number += 1
            time.sleep(0.005)

    def wait_for_more(
        self, jobs: int = 50, timeout: float = 30, context: Callable[[], str] = str
    ) -> None:
        """Until ``jobs`` more enqueues than now returned; fails naming what was refused
        (and what ``context()`` says then, such as a worker's output) if they do not within
        ``timeout``."""
        count = len(self.acknowledged)

        def more() -> bool:
            assert self.crashed is None, self.crashed
            return len(self.acknowledged) > count + jobs

        try:
            wait_for(more, timeout=timeout)
        except AssertionError:
            raise AssertionError(f"no progress: refused {self.refused}\n{context()}") from None
