"""A ``redis-server`` of the demo's own, for a machine where the configured Redis does not
answer: a free loopback port, a temporary directory, nothing persisted, stopped with the demo.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

NO_RETRY = Retry(NoBackoff(), 0)  # while it starts, each refused PING is a poll, not an error


def redis_server_path() -> str | None:
    return shutil.which("redis-server")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """``start()`` runs redis-server in a process group of its own (so a Ctrl-C in the
    terminal reaches the demo only, which stops its worker first and then this server);
    ``stop()`` ends it and removes its directory. A port taken between the choice and the
    start is tried again with another."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.dir = Path(tempfile.mkdtemp(prefix="jobqueue-demo-redis-"))
        self.log = self.dir / "redis.log"
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> PrivateRedis:
        for _ in range(3):
            self.port = free_port()
            if self._start_on_port(timeout):
                return self
        log = (
            self.log.read_text(errors="replace").strip().splitlines() if self.log.exists() else []
        )
        self.stop()
        raise RuntimeError(f"{log[-1] if log else 'it wrote nothing'} ({self.executable})")

    def _start_on_port(self, timeout: float) -> bool:
        args = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.dir), "--save", "", "--appendonly", "no"]
        with open(self.log, "ab") as log:  # its log, and what it says before it has one
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, process_group=0
            )
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                with redis.Redis(
                    port=self.port, socket_connect_timeout=1, retry=NO_RETRY
                ) as client:
                    client.ping()
                return True
            except redis.RedisError:
                time.sleep(0.02)
        self._end_process()
        return False

    def stop(self) -> None:
        self._end_process()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _end_process(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
