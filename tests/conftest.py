"""The test harness: a real Redis, never a fake.

- The Redis at ``$REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) is used when it answers;
  otherwise a throwaway ``redis-server`` is started on a free loopback port for the session.
- Every test gets its own key prefix (``JOBQUEUE["PREFIX"]``); after the test, the keys under
  that prefix, and only those, are deleted, and the harness checks that none are left.
  Nothing here ever runs FLUSHALL/FLUSHDB on a server it did not start.
- ``private_redis`` starts a private ``redis-server`` (own port, own directory) for tests
  that restart, reconfigure or flush Redis.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.redis_server import RedisServer, delete_matching, reachable, scan_keys

RUN_ID = uuid.uuid4().hex[:6]
_counter = itertools.count()
_session_server: RedisServer | None = None


def _session_redis_url() -> str:
    global _session_server
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if reachable(url):
        return url
    _session_server = RedisServer().start()
    return _session_server.url


REDIS_URL = _session_redis_url()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _session_server is not None:
        _session_server.close()


class KeySpace:
    """One test's slice of Redis: every key it creates starts with ``prefix:``."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.client = redis.Redis.from_url(url)

    @property
    def pattern(self) -> str:
        return f"{self.prefix}:*"

    def keys(self) -> list[bytes]:
        return scan_keys(self.client, self.pattern)

    def cleanup(self) -> int:
        return delete_matching(self.client, self.pattern)

    def close(self) -> None:
        self.client.close()


def new_prefix() -> str:
    return f"jqt-{RUN_ID}-{next(_counter)}"


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture(autouse=True)
def keyspace(settings) -> Iterator[KeySpace]:
    """Isolates the test: a fresh ``JOBQUEUE["PREFIX"]`` on the session's Redis."""
    space = KeySpace(REDIS_URL, new_prefix())
    settings.JOBQUEUE = {
        **getattr(settings, "JOBQUEUE", {}),
        "REDIS_URL": REDIS_URL,
        "PREFIX": space.prefix,
    }
    yield space
    space.cleanup()
    left = space.keys()
    space.close()
    assert not left, f"keys left behind under {space.prefix}: {left[:5]}"


@pytest.fixture
def private_redis(tmp_path) -> Iterator[RedisServer]:
    """A private redis-server (own port, own dir); the test may restart or flush it."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.close()


# -- the engine, on the test's own prefix ------------------------------------------------------


def add(a, b):
    return a + b


def noop():
    return None


@pytest.fixture
def registry():
    from jobqueue.engine import TaskRegistry

    reg = TaskRegistry()
    reg.register("tests.add", add)
    reg.register("tests.noop", noop)
    return reg


@pytest.fixture
def engine_config(keyspace):
    from jobqueue.engine import EngineConfig

    return EngineConfig(prefix=keyspace.prefix, lease_seconds=30)


@pytest.fixture
def engine(engine_config, registry):
    from jobqueue.engine import Engine

    client = redis.Redis.from_url(REDIS_URL)
    yield Engine(client, engine_config, registry)
    client.close()


@pytest.fixture
def protocol(engine):
    """What a worker says to Redis, on the test's engine."""
    return engine.worker_protocol()


# -- worker processes ----------------------------------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker_env(keyspace: KeySpace, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "JOBQUEUE_REDIS_URL": keyspace.url,
        "JOBQUEUE_PREFIX": keyspace.prefix,
        "PYTHONWARNINGS": "error",
        **extra,
    }


@pytest.fixture
def run_worker(keyspace):
    """Run ``manage.py runworker ARGS`` to completion (use --burst) and return the result."""
    import subprocess
    import sys

    def run(*args: str, timeout: float = 60, command: str = "runworker", **env: str):
        return subprocess.run(
            [sys.executable, "manage.py", command, *args],
            cwd=ROOT,
            env=worker_env(keyspace, **env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


class WorkerProcess:
    """A `runworker` process in its own session (so a test can signal its whole group)."""

    def __init__(self, args: tuple[str, ...], env: dict[str, str], log_dir: str) -> None:
        import subprocess
        import sys
        import tempfile

        self.log = tempfile.NamedTemporaryFile(
            "w+", dir=log_dir, prefix="worker-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runworker", *args],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal_group(self, signum: int) -> None:
        import contextlib

        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def signal(self, signum: int) -> None:
        import contextlib

        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def stop(self) -> None:
        import signal as signals
        import subprocess

        if self.process.poll() is None:
            self.signal_group(signals.SIGKILL)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
        self.log.close()


def kill_and_read(processes: list[subprocess.Popen], log: Any) -> str:
    """SIGKILL the processes still running (their sessions: each was started with
    ``start_new_session``), then return and close their log."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    log.seek(0)
    output = log.read()
    log.close()
    return str(output)


@pytest.fixture
def start_worker(keyspace, tmp_path):
    """Start `runworker ARGS` in the background; every one is killed after the test."""
    started: list[WorkerProcess] = []

    def start(*args: str, **env: str) -> WorkerProcess:
        worker = WorkerProcess(args, worker_env(keyspace, **env), str(tmp_path))
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = ""):
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message or f"condition not met within {timeout}s")
