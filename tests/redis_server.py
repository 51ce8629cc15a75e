"""Private ``redis-server`` processes for tests and benchmarks: own port, own directory.

Used when a test must restart, reconfigure or flush Redis, which is never done to a server the
test suite did not start itself.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def free_port(highest: int = 65535) -> int:
    """A free loopback port, at most ``highest`` (cluster nodes need port + 10000 free too)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port <= highest:
            return port
    raise RuntimeError(f"no free loopback port at or below {highest}")


class RedisServer:
    """A ``redis-server`` child process on a free loopback port.

    ``options`` are passed as ``--name value`` arguments (for example
    ``{"appendonly": "yes"}``); persistence is off unless asked for.
    """

    def __init__(self, directory: str | Path | None = None, **options: str) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError(
                "redis-server is not on PATH; install Redis 7 (Debian: redis-server)."
            )
        self._own_dir = directory is None
        self.dir = Path(directory or tempfile.mkdtemp(prefix="jq-redis-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.options = {"save": "", "appendonly": "no", **options}
        self.port = free_port(55535 if "cluster-enabled" in self.options else 65535)
        self.process: subprocess.Popen | None = None
        self._clients: list[redis.Redis] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A client for this server; closed when the server stops."""
        client = redis.Redis(host="127.0.0.1", port=self.port)
        self._clients.append(client)
        return client

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")]
        for name, value in self.options.items():
            args += [f"--{name}", value]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with redis.Redis(host="127.0.0.1", port=self.port) as client:
                    client.ping()
                return self
            except redis.ConnectionError as exc:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(
                        f"redis-server on port {self.port} did not start:\n{log}"
                    ) from exc
                time.sleep(0.02)

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Stop at once, as a crash would (no final save)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def reachable(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def scan_keys(client: redis.Redis, pattern: str) -> list[bytes]:
    return list(client.scan_iter(match=pattern, count=1000))


def delete_matching(client: redis.Redis, pattern: str) -> int:
    """Delete the keys matching ``pattern`` (never FLUSHDB: the server may be shared)."""
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    return deleted


__all__ = ["RedisServer", "delete_matching", "free_port", "reachable", "scan_keys"]


class RedisSentinel:
    """A master plus one sentinel monitoring it as ``mymaster``."""

    def __init__(self, directory: Path) -> None:
        self.master = RedisServer(directory / "master")
        self.dir = directory / "sentinel"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/mymaster/0"

    def start(self) -> RedisSentinel:
        self.master.start()
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor mymaster 127.0.0.1 {self.master.port} 1\n"
        )
        self.process = subprocess.Popen(
            ["redis-server", str(conf), "--sentinel", "--logfile", str(self.dir / "log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with redis.Redis(port=self.port) as client:
                    if client.sentinel_master("mymaster"):
                        return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis sentinel did not start")

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.master.close()


class RedisCluster:
    """A three-master Redis Cluster on free loopback ports."""

    def __init__(self, directory: Path) -> None:
        self.nodes = [
            RedisServer(directory / f"node{i}", **{"cluster-enabled": "yes"}) for i in range(3)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        subprocess.run(
            ["redis-cli", "--cluster", "create"]
            + [f"127.0.0.1:{n.port}" for n in self.nodes]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            infos = []
            for node in self.nodes:
                with redis.Redis(port=node.port) as client:
                    infos.append(client.cluster("info"))
            if all(i.get("cluster_state") == "ok" for i in infos):
                return self
            time.sleep(0.1)
        raise RuntimeError("the redis cluster did not become ready")

    def close(self) -> None:
        for node in self.nodes:
            node.close()
