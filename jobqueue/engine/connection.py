"""Connections to Redis: one client (and so one connection pool) per URL per process.

Supported URLs:

- ``redis://[user:password@]host:port/db`` and ``rediss://`` (TLS), ``unix:///path?db=0``;
- ``redis+sentinel://[password@]host:port[,host:port...]/service_name[/db]``: the master of
  ``service_name`` as the sentinels report it, re-resolved on failover;
- ``redis+cluster://host:port[,host:port...]``: a Redis Cluster (every jobqueue script touches
  one hash slot, so the same code runs there).

Pools are cached per process: after ``fork()`` a child builds its own, so a worker's child
processes never share sockets with their parent.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from .errors import ConfigurationError

_lock = threading.Lock()
_clients: dict[tuple[str, tuple], Any] = {}
_pid = os.getpid()

# Socket timeout above the longest blocking call the engine makes (BLPOP waits at most 2 s).
SOCKET_TIMEOUT = 10.0


def _split_hosts(netloc: str, url: str) -> tuple[str | None, list[tuple[str, int]]]:
    password = None
    if "@" in netloc:
        auth, netloc = netloc.rsplit("@", 1)
        password = unquote(auth.split(":", 1)[-1]) or None
    hosts = []
    for part in netloc.split(","):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigurationError(
                f"Redis URL {url!r} has a malformed host {part!r}; write host:port, "
                "separated by commas."
            )
        hosts.append((host.strip("[]"), int(port)))
    return password, hosts


def _sentinel_client(url: str, options: dict[str, Any]) -> redis.Redis:
    parts = urlsplit(url)
    password, hosts = _split_hosts(parts.netloc, url)
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ConfigurationError(
            f"Sentinel URL {url!r} does not name the service: write "
            "redis+sentinel://host:port/service_name/db."
        )
    db = int(path[1]) if len(path) > 1 and path[1].isdigit() else 0
    query = parse_qs(parts.query)
    sentinel_password = query.get("sentinel_password", [None])[0]
    sentinel = Sentinel(
        hosts,
        sentinel_kwargs={"password": sentinel_password, "socket_timeout": 2.0},
        socket_timeout=SOCKET_TIMEOUT,
        **options,
    )
    return sentinel.master_for(path[0], db=db, password=password)


def _cluster_client(url: str, options: dict[str, Any]) -> RedisCluster:
    parts = urlsplit(url)
    password, hosts = _split_hosts(parts.netloc, url)
    nodes = [ClusterNode(host, port) for host, port in hosts]
    return RedisCluster(
        startup_nodes=nodes, password=password, socket_timeout=SOCKET_TIMEOUT, **options
    )


def create_client(url: str, **options: Any) -> Any:
    """Build a new client for ``url`` (not cached). Raises ConfigurationError if malformed."""
    if not isinstance(url, str):
        raise ConfigurationError(f"Redis URL must be a string, not {url!r}.")
    try:
        if url.startswith("redis+sentinel://"):
            return _sentinel_client(url, options)
        if url.startswith("redis+cluster://"):
            return _cluster_client(url, options)
        if url.startswith(("redis://", "rediss://", "unix://")):
            options.setdefault("socket_timeout", SOCKET_TIMEOUT)
            return redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise ConfigurationError(f"Redis URL {url!r} is malformed: {exc}") from exc
    raise ConfigurationError(
        f"Redis URL {url!r} has an unknown scheme; use redis://, rediss://, unix://, "
        "redis+sentinel:// or redis+cluster://."
    )


def get_client(url: str, **options: Any) -> Any:
    """The process-wide client for ``url``: one pool per URL per process."""
    global _pid
    key = (url, tuple(sorted(options.items())))
    with _lock:
        if os.getpid() != _pid:  # forked: the parent's sockets are not ours
            _clients.clear()
            _pid = os.getpid()
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = create_client(url, **options)
        return client


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def reset_pools() -> None:
    """Forget cached clients (settings changed). Open sockets close as they are collected."""
    with _lock:
        for client in _clients.values():
            try:
                client.close()
            except Exception:  # noqa: S110 - closing a dead pool must not raise
                pass
        _clients.clear()
