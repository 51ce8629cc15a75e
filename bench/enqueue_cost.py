"""Where one enqueue's time goes: wall time, the calling process's CPU time, and the time Redis
spent on the command, per call, for jobqueue's paths next to a bare ``LPUSH``.

    python bench/enqueue_cost.py                      # starts its own redis-server
    python bench/enqueue_cost.py --redis redis://127.0.0.1:6379/15 --n 20000

Wall time is roughly client CPU + Redis time + the scheduler's wake-ups on both sides; on a
loopback connection the client's CPU includes the kernel's TCP work. The last line is
``.enqueue()`` polling for its reply for up to 200 µs (``ENQUEUE_SPIN_MICROSECONDS``, 0 by
default) instead of sleeping on it: its client CPU then includes the wait. Redis time comes from
``INFO commandstats`` (the top-level command only; the counters are reset). It writes under
the ``jqbench`` prefix and deletes what it wrote. Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(name: str, client, command: str, call: Callable[[], object], n: int) -> None:
    for _ in range(100):  # warm-up: connections, script loading, caches
        call()
    client.config_resetstat()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        call()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    stats = client.info("commandstats").get(f"cmdstat_{command}", {"usec": 0})
    print(
        f"{name:34s} wall {wall / n * 1e6:7.1f} µs   client CPU {cpu / n * 1e6:7.1f} µs"
        f"   Redis {stats['usec'] / n:6.1f} µs   ({n / wall:,.0f}/s)"
    )


def run(redis_url: str, n: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    os.environ["JOBQUEUE_REDIS_URL"] = redis_url
    import django

    django.setup()
    from bench.jobs import noop
    from jobqueue.conf import get_engine

    engine = get_engine()
    client = engine.client
    payload = b"x" * 100
    bare = "jqbench:cost:lpush"
    measure("bare LPUSH through redis-py", client, "lpush", lambda: client.lpush(bare, payload), n)
    measure(
        "Engine.enqueue (enqueue_one.lua)",
        client,
        "evalsha",
        lambda: engine.enqueue("bench.jobs.noop"),
        n,
    )
    measure("Django's .enqueue() on jobqueue", client, "evalsha", noop.enqueue, n)
    producer = engine.producer
    default = producer.config
    producer.config = dataclasses.replace(default, enqueue_spin_us=200)
    try:  # the same polling for the reply (ENQUEUE_SPIN_MICROSECONDS = 200)
        measure("Django's .enqueue(), polling 200 µs", client, "evalsha", noop.enqueue, n)
    finally:
        producer.config = default
    for key in client.scan_iter(match="jqbench*", count=1000):  # what this run wrote
        client.unlink(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", help="a Redis URL (default: start a private redis-server)")
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    if args.redis:
        run(args.redis, args.n)
        return
    from tests.redis_server import RedisServer

    with RedisServer() as server:
        run(server.url, args.n)


if __name__ == "__main__":
    main()
