"""The live pages under load: many open job lists while a worker drains at full speed.

    python -m bench.live_fanout                  # 100 pages, 20,000 jobs, 3 interleaved rounds
    python -m bench.live_fanout --pages 100 --n 20000 --rounds 3

Starts its own redis-server and a SQLite database, then, in each round, two drains of ``--n``
queued no-op jobs by ``runworker --concurrency 2`` (its mirror on), in turn:

- without live pages (no ASGI server);
- with the demo's ASGI application served by daphne and ``--pages`` websockets, each a staff
  user's job list following 50 of the queued jobs (page k follows every ``n / 50``-th job from
  the k-th on), as an open browser tab would.

It prints the drain's jobs/s with and without the pages, and for the pages: the time from a
transition in Redis (a job's start or end, on the Redis clock) to its arrival at a page, p50 /
p99 over every job row received, and the messages each page received per second. Nothing is
asserted: the numbers are printed (docs/performance.md keeps them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import COUNTER, percentile  # noqa: E402
from tests.redis_server import RedisServer, free_port  # noqa: E402


def django_env(redis_url: str, database: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "JOBQUEUE_REDIS_URL": redis_url,
        "BENCH_DATABASE_URL": f"sqlite:///{database}",
        "PYTHONPATH": str(ROOT),
    }


def setup_django(env: dict[str, str]) -> None:
    os.environ.update({k: env[k] for k in ("DJANGO_SETTINGS_MODULE", "JOBQUEUE_REDIS_URL")})
    os.environ["BENCH_DATABASE_URL"] = env["BENCH_DATABASE_URL"]
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def session_cookie() -> str:
    """A staff user's session (the pages' login), in the database the server reads."""
    from django.contrib.auth.models import User
    from django.test import Client

    user, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": True})
    user.is_staff, user.is_superuser = True, True
    user.save()
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def reset(client: Any) -> None:
    """Before a drain: the job counter at zero, the mirror's tables empty (as the benchmark's
    drain has them). Redis is not flushed: this process's engine would see its queues lost."""
    from jobqueue.models import Job, JobTransition

    client.delete(COUNTER)
    JobTransition.objects.all().delete()
    Job.objects.all().delete()


def enqueue(n: int) -> list[str]:
    import bench.jobs  # noqa: F401 - registers the benchmark's tasks
    from jobqueue.conf import get_engine
    from jobqueue.engine import JobSpec

    engine, ids = get_engine(), []
    for start in range(0, n, 10_000):
        jobs = engine.enqueue_many([JobSpec("bench.jobs.noop")] * min(10_000, n - start))
        ids += [job.id for job in jobs]
    return ids


def cpu_seconds(pid: int) -> float:
    """The CPU time a process used so far (user + system, from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def drain(n: int, env: dict[str, str], client: Any) -> float:
    """Start a worker on ``n`` queued jobs; jobs/s from the first job done to the last."""
    worker = start([sys.executable, "manage.py", "runworker", "--concurrency", "2"], env)
    try:
        first = last = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            count = int(client.get(COUNTER) or 0)
            now = time.monotonic()
            if count and first is None:
                first = (count, now)
            if count >= n:
                last = (count, now)
                break
            time.sleep(0.01)
        assert first is not None and last is not None, "the drain did not finish"
        return (last[0] - first[0]) / (last[1] - first[1])
    finally:
        stop(worker)


class Pages:
    """``count`` open job lists, each a websocket following ``ids[k]``."""

    def __init__(self, url: str, cookie: str, ids: list[list[str]], server_pid: int) -> None:
        self.url, self.cookie, self.ids = url, cookie, ids
        self.server_pid = server_pid
        self.cpu_at_start = (0.0, 0.0)  # the server's and this process's, when the drain starts
        self.seconds = 0.0
        self.latencies: list[float] = []
        self.messages = [0] * len(ids)
        self.ready = 0
        self.stop = asyncio.Event()

    async def page(self, k: int) -> None:
        import websockets

        headers = {"Cookie": f"sessionid={self.cookie}", "Origin": "http://127.0.0.1"}
        async with websockets.connect(self.url, additional_headers=headers) as socket:
            await socket.send(json.dumps({"subscribe": {"page": "jobs", "ids": self.ids[k]}}))
            json.loads(await socket.recv())  # the snapshot
            self.ready += 1
            while not self.stop.is_set():
                try:
                    raw = await asyncio.wait_for(socket.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                now_ms = time.time() * 1000
                self.messages[k] += 1
                for row in json.loads(raw).get("jobs", []):
                    at = row.get("finished_at") or row.get("started_at")
                    if at:
                        self.latencies.append(now_ms - at)


async def drain_with_pages(n: int, env: dict[str, str], client: Any, pages: Pages) -> float:
    tasks = [asyncio.create_task(pages.page(k)) for k in range(len(pages.ids))]
    while pages.ready < len(tasks):
        if any(t.done() for t in tasks):
            for t in tasks:
                if t.done() and t.exception():
                    raise t.exception()  # type: ignore[misc]
        await asyncio.sleep(0.1)
    started = time.monotonic()
    # CPU from here: the drain, not the pages connecting and taking their snapshots.
    pages.cpu_at_start = (cpu_seconds(pages.server_pid), time.process_time())
    rate = await asyncio.to_thread(drain, n, env, client)
    await asyncio.sleep(1.5)  # the last transitions reach the pages
    pages.stop.set()
    pages.seconds = time.monotonic() - started
    await asyncio.gather(*tasks)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    import redis

    folder = Path(tempfile.mkdtemp(prefix="jq-fanout-"))
    with RedisServer(folder / "redis") as server:
        env = django_env(server.url, folder / "mirror.sqlite3")
        setup_django(env)
        cookie = session_cookie()
        client = redis.Redis.from_url(server.url)
        without, with_pages, latencies, per_second = [], [], [], []
        for round_ in range(options.rounds):
            for live in (round_ % 2 == 0, round_ % 2 == 1):  # each first in every other round
                reset(client)
                ids = enqueue(options.n)
                if not live:
                    rate = drain(options.n, env, client)
                    without.append(rate)
                    print(
                        f"round {round_ + 1}: drain without pages {rate:,.0f} jobs/s", flush=True
                    )
                    continue
                port = free_port()
                daphne = start(
                    [
                        sys.executable,
                        "-m",
                        "daphne",
                        "-b",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "project.asgi:application",
                    ],
                    env,
                )
                try:
                    time.sleep(3)  # the server starts
                    stride = max(1, options.n // 50)
                    follow = [ids[k % stride :: stride][:50] for k in range(options.pages)]
                    url = f"ws://127.0.0.1:{port}/jobqueue/live/"
                    pages = Pages(url, cookie, follow, daphne.pid)
                    rate = asyncio.run(drain_with_pages(options.n, env, client, pages))
                    server_cpu = cpu_seconds(daphne.pid) - pages.cpu_at_start[0]
                    own_cpu = time.process_time() - pages.cpu_at_start[1]
                finally:
                    stop(daphne)
                with_pages.append(rate)
                latencies += pages.latencies
                seconds = pages.seconds
                per_second.append(statistics.median(m / seconds for m in pages.messages))
                print(
                    f"round {round_ + 1}: drain with {options.pages} pages {rate:,.0f} jobs/s; "
                    f"transition to page p50 {percentile(pages.latencies, 50):.0f} ms, "
                    f"p99 {percentile(pages.latencies, 99):.0f} ms; "
                    f"{per_second[-1]:.1f} messages/s per page; CPU from the drain's start: "
                    f"the ASGI server {server_cpu:.2f} s, "
                    f"the {options.pages} pages (this process) {own_cpu:.2f} s",
                    flush=True,
                )
        print()
        print(f"| {options.pages} pages, {options.n:,} jobs, {options.rounds} rounds | value |")
        print("|---|---|")
        print(f"| drain without pages (jobs/s, median) | {statistics.median(without):,.0f} |")
        opened = statistics.median(with_pages)
        print(f"| drain with the pages open (jobs/s, median) | {opened:,.0f} |")
        ratio = opened / statistics.median(without)
        print(f"| with / without | {ratio:.3f} |")
        print(
            f"| transition in Redis to a page, p50 / p99 (ms) | "
            f"{percentile(latencies, 50):.0f} / {percentile(latencies, 99):.0f} |"
        )
        print(f"| messages per page per second (median) | {statistics.median(per_second):.1f} |")


if __name__ == "__main__":
    main()
