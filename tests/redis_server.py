"""Private ``redis-server`` processes for tests and benchmarks: own port, own directory.

Used when a test must restart, reconfigure or flush Redis, which is never done to a server the
test suite did not start itself.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

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


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """A test CA and a certificate it signed for 127.0.0.1 and localhost (PEM files)."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA and a server certificate made with the ``openssl`` CLI (EC keys: fast to make)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca_key, csr, ext = directory / "ca.key", directory / "server.csr", directory / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
    ca = ["req", "-x509", *ec, "-keyout", ca_key, "-out", files.ca, "-subj", "/CN=jq test CA"]
    request = ["req", *ec, "-keyout", files.key, "-out", csr, "-subj", "/CN=127.0.0.1"]
    sign = ["x509", "-req", "-in", csr, "-CA", files.ca, "-CAkey", ca_key, "-CAcreateserial"]
    sign += ["-out", files.cert, "-days", "2", "-extfile", ext]
    for args in (ca, request, sign):
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=30)
    return files


class RedisServer:
    """A ``redis-server`` child process on a free loopback port.

    ``options`` are passed as ``--name value`` arguments (for example
    ``{"appendonly": "yes"}``); persistence is off unless asked for. ``password`` sets
    ``requirepass``; ``unix_socket`` also listens on that path (``unix_url``); ``tls`` serves
    TLS only, on the port (clients are not asked for certificates).
    """

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        password: str | None = None,
        unix_socket: str | Path | None = None,
        tls: TlsFiles | None = None,
        **options: str,
    ) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError(
                "redis-server is not on PATH; install Redis 7 (Debian: redis-server)."
            )
        self._own_dir = directory is None
        self.dir = Path(directory or tempfile.mkdtemp(prefix="jq-redis-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.options = {"save": "", "appendonly": "no", **options}
        self.password = password
        self.unix_socket = str(unix_socket) if unix_socket else None
        self.tls = tls
        if password:
            self.options["requirepass"] = password
        if self.unix_socket:
            self.options.update(unixsocket=self.unix_socket, unixsocketperm="700")
        if tls:
            self.options.update(
                {
                    "tls-cert-file": str(tls.cert),
                    "tls-key-file": str(tls.key),
                    "tls-ca-cert-file": str(tls.ca),
                    "tls-auth-clients": "no",
                }
            )
        self.port = free_port(55535 if "cluster-enabled" in self.options else 65535)
        self.process: subprocess.Popen | None = None
        self._clients: list[redis.Redis] = []

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return (
                f"rediss://{auth}127.0.0.1:{self.port}/0"
                f"?ssl_cert_reqs=required&ssl_ca_certs={self.tls.ca}"
            )
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        assert self.unix_socket, "started without a unix socket"
        return f"unix://{self.unix_socket}?db=0"

    def connection_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"host": "127.0.0.1", "port": self.port}
        if self.password:
            options["password"] = self.password
        if self.tls:
            options.update(ssl=True, ssl_ca_certs=str(self.tls.ca))
        return options

    def client(self) -> redis.Redis:
        """A client for this server; closed when the server stops."""
        client = redis.Redis(**self.connection_options())
        self._clients.append(client)
        return client

    def start(self, timeout: float = 10.0) -> RedisServer:
        ports = ["--port", "0", "--tls-port", str(self.port)] if self.tls else []
        args = ["redis-server", *(ports or ["--port", str(self.port)]), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")]
        for name, value in self.options.items():
            args += [f"--{name}", value]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with redis.Redis(**self.connection_options()) as client:
                    client.ping()
                return self
            except redis.ConnectionError as exc:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(
                        f"redis-server on port {self.port} did not start:\n{log}"
                    ) from exc
                time.sleep(0.02)

    def pause(self) -> None:
        """Stop the process (SIGSTOP): connections stay open, nothing is answered."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self.process is None:
            return
        if self.process.poll() is None:
            self.resume()  # a paused server would only take SIGTERM once resumed
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


__all__ = [
    "RedisServer",
    "TlsFiles",
    "delete_matching",
    "free_port",
    "make_tls_files",
    "reachable",
    "scan_keys",
]
