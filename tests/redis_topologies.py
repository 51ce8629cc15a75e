"""Redis topologies for tests: Sentinel (a master, replicas, sentinels) and Cluster, built
from private ``redis-server`` processes (``redis_server.py``) on free loopback ports."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from tests.redis_server import RedisServer, free_port


class RedisSentinel:
    """A master with ``replicas`` replicas, watched by ``sentinels`` sentinels as
    ``mymaster`` (a quorum of a majority of them). With replicas, :meth:`fail_over` kills the
    master and waits until the sentinels name another one."""

    def __init__(self, directory: Path, replicas: int = 0, sentinels: int = 1) -> None:
        # A replica's first sync starts at once, not after diskless sync's 5 s wait for others.
        self.servers = [
            RedisServer(directory / f"redis{i}", **{"repl-diskless-sync-delay": "0"})
            for i in range(1 + replicas)
        ]
        self.dir = directory / "sentinel"
        self.ports = [free_port() for _ in range(sentinels)]
        self.processes: list[subprocess.Popen] = []

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def master(self) -> RedisServer:
        """The server the sentinels name master now."""
        port = self.master_port()
        return next(server for server in self.servers if server.port == port)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return f"redis+sentinel://{hosts}/mymaster/0"

    def master_port(self) -> int:
        for port in self.named_masters():
            if port is not None:
                return port
        raise RuntimeError("no sentinel answered")

    def named_masters(self) -> list[int | None]:
        """The master's port as each sentinel names it (None: that sentinel did not answer)."""
        ports: list[int | None] = []
        for port in self.ports:
            try:
                with redis.Redis(port=port, socket_timeout=2) as client:
                    address = client.sentinel_get_master_addr_by_name("mymaster")
                ports.append(int(address[1]) if address else None)
            except redis.RedisError:
                ports.append(None)
        return ports

    def start(self) -> RedisSentinel:
        first = self.servers[0].start()
        for server in self.servers[1:]:
            server.options["replicaof"] = f"127.0.0.1 {first.port}"
            server.start()
        quorum = len(self.ports) // 2 + 1
        for index, port in enumerate(self.ports):
            directory = self.dir / str(index)
            directory.mkdir(parents=True, exist_ok=True)
            conf = directory / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor mymaster 127.0.0.1 {first.port} {quorum}\n"
                "sentinel down-after-milliseconds mymaster 1000\n"
                "sentinel failover-timeout mymaster 3000\n"
            )
            self.processes.append(
                subprocess.Popen(
                    ["redis-server", str(conf), "--sentinel", "--logfile", str(directory / "log")],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + 10
        for port in self.ports:
            while True:
                try:
                    with redis.Redis(port=port) as client:
                        if client.sentinel_master("mymaster"):
                            break
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("redis sentinel did not start") from None
                    time.sleep(0.05)
        if len(self.servers) > 1:
            self.wait_for_replicas(len(self.servers) - 1)
        return self

    def wait_for_replicas(self, count: int, timeout: float = 20) -> None:
        """Until the master has ``count`` replicas in sync, and the sentinels know them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with self.master.client() as client:
                    info = client.info("replication")
                online = [
                    value
                    for key, value in info.items()
                    if key.startswith("slave") and value.get("state") == "online"
                ]
                with redis.Redis(port=self.port) as client:
                    known = client.sentinel_slaves("mymaster")
                if len(online) >= count and len(known) >= count:
                    return
            except (redis.RedisError, RuntimeError, StopIteration):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the master did not get {count} replicas in sync")

    def fail_over(self, timeout: float = 30) -> float:
        """Kill the master (SIGKILL) and wait until every sentinel names the same other one;
        the killed server then comes back as a replica of it. Returns the seconds until the
        first sentinel named the new master.

        Bringing the old master back before every sentinel knows of the failover would split
        the brain: a sentinel still holding the old configuration sees "its" master report
        itself a replica and turns it back into a master (Redis's sentinel does so), and the
        writes the other master takes meanwhile are lost when one of the two is demoted."""
        old = self.master
        old.kill()
        killed = time.monotonic()
        took = None
        while True:
            named = set(self.named_masters())
            if took is None and named - {old.port, None}:
                took = time.monotonic() - killed
            if len(named) == 1 and named != {old.port} and named != {None}:
                break
            if time.monotonic() - killed > timeout:
                raise RuntimeError(f"the sentinels did not agree on a new master: {named}")
            time.sleep(0.05)
        assert took is not None
        old.options["replicaof"] = f"127.0.0.1 {self.master_port()}"
        old.start()
        return took

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=10)
        for server in self.servers:
            server.close()


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
