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
    ``mymaster`` (a quorum of a majority of them; down after ``down_after_ms`` without a
    reply: 2 s, since on a loaded machine 1 s made the sentinels fail over live masters).
    With replicas, :meth:`fail_over` kills the master and waits until the sentinels name
    another one."""

    def __init__(
        self, directory: Path, replicas: int = 0, sentinels: int = 1, down_after_ms: int = 2000
    ) -> None:
        self.down_after_ms = down_after_ms  # no reply for this long: the master is down
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
        """The master most sentinels name."""
        named = [port for port in self.named_masters() if port is not None]
        if not named:
            raise RuntimeError("no sentinel answered")
        return max(set(named), key=named.count)

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
                f"sentinel down-after-milliseconds mymaster {self.down_after_ms}\n"
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
                        log = self.dir / str(self.ports.index(port)) / "log"
                        said = log.read_text()[-2000:] if log.exists() else "(no log)"
                        raise RuntimeError(f"redis sentinel did not start:\n{said}") from None
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

    def fail_over(self, timeout: float = 45) -> float:
        """Kill the master (SIGKILL) and wait until a majority of the sentinels name the same
        other one; the killed server then comes back as a replica of it. Returns the seconds
        until the first sentinel named the new master.

        Bringing the old master back before the sentinels know of the failover would split
        the brain: a sentinel still holding the old configuration sees "its" master report
        itself a replica and turns it back into a master (Redis's sentinel does so), and the
        writes the other master takes meanwhile are lost when one of the two is demoted.
        Waiting for all of them was not possible: under load, one sometimes held another view
        for longer than 30 s."""
        old = self.master
        old.kill()
        killed = time.monotonic()
        took = None
        while True:
            named = self.named_masters()
            if took is None and set(named) - {old.port, None}:
                took = time.monotonic() - killed
            new = [port for port in named if port not in (old.port, None)]
            agreed = max(set(new), key=new.count) if new else None
            if agreed is not None and new.count(agreed) > len(named) // 2:
                break
            if time.monotonic() - killed > timeout:
                raise RuntimeError(f"the sentinels did not agree on a new master: {named}")
            time.sleep(0.05)
        assert took is not None
        old.options["replicaof"] = f"127.0.0.1 {agreed}"
        old.start()
        return took

    def switches(self) -> int:
        """How many times the first sentinel switched to a new master (each kill makes one;
        more means the sentinels also failed over a master that was alive)."""
        log = self.dir / "0" / "log"
        return log.read_text().count("+switch-master") if log.exists() else 0

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=10)
        for server in self.servers:
            server.close()


class RedisCluster:
    """A Redis Cluster of three primaries on free loopback ports, each with ``replicas``
    replicas. With replicas, a node is failing after 1 s without a reply
    (``cluster-node-timeout``), and :meth:`kill_primary` kills the primary of a slot and waits
    until one of its replicas holds the slot."""

    def __init__(self, directory: Path, replicas: int = 0) -> None:
        options = {"cluster-enabled": "yes"}
        if replicas:
            options.update({"cluster-node-timeout": "1000", "repl-diskless-sync-delay": "0"})
        self.replicas = replicas
        self.nodes = [
            RedisServer(directory / f"node{i}", **options) for i in range(3 * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def live(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.process is not None]

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        subprocess.run(
            ["redis-cli", "--cluster", "create"]
            + [f"127.0.0.1:{n.port}" for n in self.nodes]
            + ["--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_until_ok(20)
        return self

    def wait_until_ok(self, timeout: float) -> None:
        """Until every live node says the cluster is ok and every replica is in sync."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = True
            for node in self.live():
                try:
                    with redis.Redis(port=node.port, socket_timeout=2) as client:
                        ok &= client.cluster("info").get("cluster_state") == "ok"
                        info = client.info("replication")
                        ok &= info["role"] == "master" or info["master_link_status"] == "up"
                except redis.RedisError:
                    ok = False
            if ok:
                return
            time.sleep(0.1)
        raise RuntimeError("the redis cluster did not become ready")

    def primary_of(self, slot: int) -> RedisServer:
        """The node that serves ``slot`` now, as the live nodes see it."""
        for node in self.live():
            try:
                with redis.Redis(port=node.port, socket_timeout=2) as client:
                    for first, last, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                        if first <= slot <= last:
                            port = int(primary[1])
                            return next(n for n in self.nodes if n.port == port)
            except redis.RedisError:
                continue
        raise RuntimeError(f"no live node knows who serves slot {slot}")

    def kill_primary(self, slot: int, timeout: float = 30) -> float:
        """SIGKILL the primary of ``slot``; wait until a replica serves it and the cluster is
        ok again. Returns the seconds that took."""
        old = self.primary_of(slot)
        old.kill()
        killed = time.monotonic()
        while self.primary_of(slot) is old:
            if time.monotonic() - killed > timeout:
                raise RuntimeError(f"no replica took over slot {slot}")
            time.sleep(0.05)
        self.wait_until_ok(timeout)
        return time.monotonic() - killed

    def close(self) -> None:
        for node in self.nodes:
            node.close()
