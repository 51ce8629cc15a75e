"""Connections to Redis: one client (and so one connection pool) per URL per process.

Supported URLs (``user:password@`` is an ACL user and its password, ``:password@`` the default
user's; user and password are percent-encoded):

- ``redis://[[user]:password@]host:port/db``, ``rediss://`` (TLS), ``unix:///path?db=0``: as
  redis-py reads them;
- ``redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db]``: the master
  of ``service_name`` as the sentinels report it, re-resolved on failover. The user and password
  are the master's; the sentinels' own are the query's ``sentinel_username`` and
  ``sentinel_password``;
- ``redis+cluster://[[user]:password@]host:port[,host:port...]``: a Redis Cluster (every
  jobqueue script touches one hash slot, so the same code runs there), the user and password
  those of every node;
- ``rediss+sentinel://`` and ``rediss+cluster://``: the same over TLS, to every node and (for
  Sentinel) to the sentinels too, unless the query says ``sentinel_ssl=no``.

The query of the Sentinel and Cluster URLs takes the options redis-py's ``rediss://`` takes, with
the same spelling and parsing (``ssl_ca_certs=/path/ca.pem``, ``ssl_cert_reqs=none``,
``ssl_certfile=``, ``ssl_keyfile=``, ``ssl_check_hostname=no``, ``socket_timeout=``, ...), for
every node. A value in the query wins over the keyword arguments of :func:`create_client`.

Timeouts: ``socket_timeout`` bounds every read and write (so it must stay above the longest
blocking command jobqueue sends: ``jobqueue.engine.reads.BLOCK_SLICE``);
``socket_connect_timeout`` bounds opening a connection, its TLS handshake included.
jobqueue's settings pass ``JOBQUEUE["REDIS_SOCKET_TIMEOUT"]`` and
``JOBQUEUE["REDIS_CONNECT_TIMEOUT"]`` (``jobqueue/conf.py``); other callers get the defaults below.

Pools are cached per process: after ``fork()`` a child builds its own, so a worker's child
processes never share sockets with their parent.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import URL_QUERY_ARGUMENT_PARSERS, parse_url, to_bool
from redis.exceptions import (
    ClusterDownError,
    RedisClusterException,
    RedisClusterUnreachableError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.sentinel import Sentinel

from ..errors import ConfigurationError

_lock = threading.Lock()
_clients: dict[tuple[str, tuple], Any] = {}
_pid = os.getpid()

# Defaults: a dead or unreachable Redis is reported within about this long (a read that times
# out is tried once more on a fresh connection: twice this, at worst).
SOCKET_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
# The sentinels answer one quick command (where is the master?): they get a short timeout.
SENTINEL_TIMEOUT = 2.0

# What the query of a Sentinel or Cluster URL may set for every node: redis-py's URL options
# (parsed as it parses them), and its connections' options given as text.
QUERY_OPTIONS = (set(URL_QUERY_ARGUMENT_PARSERS) - {"db", "timeout"}) | {
    "client_name",
    "ssl_ca_certs",
    "ssl_ca_data",
    "ssl_ca_path",
    "ssl_cert_reqs",
    "ssl_certfile",
    "ssl_ciphers",
    "ssl_keyfile",
    "ssl_password",
}

# What a Redis call can raise: redis-py's cluster client raises some errors that are not
# RedisErrors (no node reachable, a slot no node serves), so every call catches both.
REDIS_ERRORS = (redis.RedisError, RedisClusterException)
# Redis cannot serve now, and may in a moment: the connection, or a cluster without a node for
# the slot (failing over, or gone). jobqueue raises ConnectionFailed for these.
UNAVAILABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
    RedisClusterUnreachableError,
)

SCHEMES = (
    "redis://",
    "rediss://",
    "unix://",
    "redis+sentinel://",
    "rediss+sentinel://",
    "redis+cluster://",
    "rediss+cluster://",
)


def redacted(url: str) -> str:
    """``url`` without its passwords (the one before ``@``, and any ``...password=`` of its
    query, such as Sentinel's), fit for an error message, a terminal or a log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<a malformed URL>"
    netloc = parts.netloc
    if "@" in netloc:
        auth, _, hosts = netloc.rpartition("@")
        user = auth.split(":", 1)[0]
        netloc = f"{user}:***@{hosts}" if ":" in auth else f"***@{hosts}"
    query = "&".join(
        f"{name}=***" if "password" in name.lower() else f"{name}={value}" if sep else name
        for name, sep, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _split_auth(netloc: str) -> tuple[dict[str, str], str]:
    """``{"username": ..., "password": ...}`` (those given) from ``user:password@hosts``."""
    auth: dict[str, str] = {}
    if "@" not in netloc:
        return auth, netloc
    credentials, netloc = netloc.rsplit("@", 1)
    user, colon, password = credentials.partition(":")
    if not colon:  # "password@host", as this module has always read it
        user, password = "", user
    if unquote(user):
        auth["username"] = unquote(user)
    if unquote(password):
        auth["password"] = unquote(password)
    return auth, netloc


def _split_hosts(netloc: str, url: str) -> list[tuple[str, int]]:
    hosts = []
    for part in netloc.split(","):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigurationError(
                f"Redis URL {redacted(url)!r} has a malformed host {part!r}; write host:port, "
                "separated by commas."
            )
        hosts.append((host.strip("[]"), int(port)))
    return hosts


def _query_options(query: str, url: str) -> dict[str, Any]:
    """The query's options, typed as redis-py types those of a ``rediss://`` URL. An option
    redis-py's connections do not take (a typo) is refused here, not at the first command."""
    if not query:
        return {}
    names = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
    unknown = sorted(names - QUERY_OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"Redis URL {redacted(url)!r} has an unknown option {unknown[0]!r}; the options "
            f"are {', '.join(sorted(QUERY_OPTIONS))}."
        )
    return parse_url("redis://localhost/?" + query)


def _sentinel_client(url: str, tls: bool, options: dict[str, Any]) -> redis.Redis:
    parts = urlsplit(url)
    auth, netloc = _split_auth(parts.netloc)
    hosts = _split_hosts(netloc, url)
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ConfigurationError(
            f"Sentinel URL {redacted(url)!r} does not name the service: write "
            "redis+sentinel://host:port/service_name/db."
        )
    db = int(path[1]) if len(path) > 1 and path[1].isdigit() else 0
    own: dict[str, str | None] = {
        "sentinel_username": None,
        "sentinel_password": None,
        "sentinel_ssl": None,
    }
    rest = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in own:
            own[name] = value
        else:
            rest.append((name, value))
    node = {**options, **_query_options(urlencode(rest), url), **auth}
    if tls:
        node["ssl"] = True
    sentinel_tls = tls and to_bool(own["sentinel_ssl"]) is not False
    sentinel_kwargs: dict[str, Any] = {
        "username": own["sentinel_username"] or None,
        "password": own["sentinel_password"] or None,
        "socket_timeout": min(SENTINEL_TIMEOUT, node.get("socket_timeout") or SENTINEL_TIMEOUT),
        "socket_connect_timeout": node.get("socket_connect_timeout"),
    }
    if sentinel_tls:
        sentinel_kwargs.update({k: v for k, v in node.items() if k.startswith("ssl")})
    sentinel = Sentinel(hosts, sentinel_kwargs=sentinel_kwargs)
    return sentinel.master_for(path[0], db=db, **node)


def _cluster_client(url: str, tls: bool, options: dict[str, Any]) -> RedisCluster:
    parts = urlsplit(url)
    auth, netloc = _split_auth(parts.netloc)
    nodes = [ClusterNode(host, port) for host, port in _split_hosts(netloc, url)]
    node = {**options, **_query_options(parts.query, url), **auth}
    if tls:
        node["ssl"] = True
    return RedisCluster(startup_nodes=nodes, **node)


def create_client(url: str, **options: Any) -> Any:
    """Build a new client for ``url`` (not cached). ``options`` are redis-py's connection
    options (``socket_timeout`` defaults to ``SOCKET_TIMEOUT``, ``socket_connect_timeout``
    to ``CONNECT_TIMEOUT`` or the socket timeout if that is shorter). Raises
    ConfigurationError if ``url`` is malformed."""
    if not isinstance(url, str):
        raise ConfigurationError(f"Redis URL must be a string, not {url!r}.")
    options.setdefault("socket_timeout", SOCKET_TIMEOUT)
    # Opening (with its TLS handshake) never waits longer than a read would.
    options.setdefault(
        "socket_connect_timeout",
        min(CONNECT_TIMEOUT, options["socket_timeout"] or CONNECT_TIMEOUT),
    )
    scheme = url.partition("://")[0].lower()
    try:
        if scheme in ("redis+sentinel", "rediss+sentinel"):
            return _sentinel_client(url, scheme.startswith("rediss"), options)
        if scheme in ("redis+cluster", "rediss+cluster"):
            return _cluster_client(url, scheme.startswith("rediss"), options)
        if scheme in ("redis", "rediss", "unix"):
            return redis.Redis.from_url(url, **options)
    except ConfigurationError:
        raise  # already says what is wrong
    except ValueError as exc:
        raise ConfigurationError(f"Redis URL {redacted(url)!r} is malformed: {exc}") from exc
    raise ConfigurationError(
        f"Redis URL {redacted(url)!r} has an unknown scheme; use one of {', '.join(SCHEMES)}."
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
