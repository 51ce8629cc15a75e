"""docs/operating.md, checked: its Redis settings and its ACL user, on a private redis-server.

The ACL test runs what a site does (enqueue, a worker with its mirror and scheduler, steering
jobs, the command line) as the doc's user, and then reads Redis's ACL log: the only refusals
in it are the ones the test provoked on purpose.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from jobqueue import api
from jobqueue.conf import get_engine
from tests import sample_tasks as t
from tests.conftest import wait_for
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "operating.md"

pytestmark = pytest.mark.slow


def section(title: str) -> str:
    return DOC.read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)\n```", text, re.S)


def test_the_redis_settings_are_taken_by_redis(tmp_path):
    (conf,) = blocks(section("Redis settings that keep jobs safe"), "conf")
    options = dict(line.split(None, 1) for line in conf.splitlines())
    assert options["maxmemory-policy"] == "noeviction" and options["appendonly"] == "yes"
    server = RedisServer(tmp_path / "redis", **options).start()
    try:
        client = server.client()
        for name, value in options.items():
            assert client.config_get(name) == {name: value}
    finally:
        server.close()


@pytest.fixture
def acl_site(tmp_path, settings):
    """A private Redis with the doc's user, and the doc's JOBQUEUE pointed at it."""
    server = RedisServer(tmp_path / "redis").start()
    text = section("A Redis user for the site")
    (command,) = blocks(text, "sh")
    argv = shlex.split(command)
    assert argv[0] == "redis-cli"
    subprocess.run(
        ["redis-cli", "-p", str(server.port), *argv[1:]], check=True, capture_output=True
    )
    (python,) = blocks(text, "python")
    namespace: dict = {}
    exec(python, namespace)
    doc_settings = namespace["JOBQUEUE"]
    url = doc_settings["REDIS_URL"].replace("127.0.0.1:6379", f"127.0.0.1:{server.port}")
    settings.JOBQUEUE = {**settings.JOBQUEUE, **doc_settings, "REDIS_URL": url}
    admin = server.client()
    admin.acl_log_reset()
    yield url, doc_settings["PREFIX"], admin
    server.close()


def refusals(admin: redis.Redis) -> list[tuple[str, str]]:
    entries = admin.acl_log()
    return sorted(
        (str(e["reason"]), str(e["object"])) for e in entries if e["username"] == "jobqueue"
    )


def site_env(url: str, prefix: str, database: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "JOBQUEUE_REDIS_URL": url,
        "JOBQUEUE_PREFIX": prefix,
        "JOBQUEUE_MIRROR": "1",
        "JOBQUEUE_TEST_SCHEDULES": '{"tick": {"task": "tests.sample_tasks.add", '
        '"every": 60, "args": [1, 2]}}',
        "DATABASE_URL": f"sqlite:///{database}",
        "PYTHONWARNINGS": "ignore",
    }


def run_manage(url: str, prefix: str, database: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=site_env(url, prefix, database),
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_the_acl_user_runs_a_site_and_nothing_else(acl_site, tmp_path):
    url, prefix, admin = acl_site
    database = tmp_path / "site.sqlite3"
    migrated = run_manage(url, prefix, database, "migrate", "-v", "0")
    assert migrated.returncode == 0, migrated.stderr
    engine = get_engine()
    assert engine.config.prefix == prefix
    # A site's everyday calls, as the user.
    done = t.add.enqueue(2, 3)
    flaky = t.fail_twice.enqueue("acl")
    doomed = t.boom.enqueue()
    later = t.add.using(run_after=datetime.now(UTC) + timedelta(hours=1)).enqueue(1, 1)
    assert api.pause("default")
    assert api.resume("default")
    assert api.cancel(later) == "canceled"
    worker = run_manage(url, prefix, database, "runworker", "--burst", "-c", "1")
    assert worker.returncode == 0, worker.stderr
    assert api.wait(done, timeout=10).return_value == 5
    flaky_result = api.result(flaky)
    assert flaky_result.status == "SUCCESSFUL", (flaky_result, worker.stderr)
    assert flaky_result.return_value == "ok after 3"
    assert api.result(doomed).status == "FAILED"
    api.retry(later)
    assert api.purge("default", "succeeded") >= 2
    api.delete(doomed)
    assert "maxmemory-policy" not in worker.stderr
    assert "Traceback" not in worker.stderr, worker.stderr
    # The mirror wrote the jobs it read with the user's rights into the database.
    mirrored = run_manage(
        url,
        prefix,
        database,
        "shell",
        "-c",
        "from jobqueue.models import Job; print(Job.objects.count())",
    )
    assert mirrored.returncode == 0 and int(mirrored.stdout.split()[-1]) >= 4, mirrored
    status = run_manage(url, prefix, database, "jobqueue", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert refusals(admin) == []
    # What the user must not do.
    user = redis.Redis.from_url(url)
    for command in (("SET", "other:key", "1"), ("FLUSHALL",), ("CONFIG", "GET", "*")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            user.execute_command(*command)
    user.close()
    assert refusals(admin) == [
        ("command", "config|get"),
        ("command", "flushall"),
        ("key", "other:key"),
    ]
    assert admin.exists("other:key") == 0


def test_the_worker_warns_about_eviction_as_the_acl_user(acl_site, tmp_path):
    url, prefix, admin = acl_site
    admin.config_set("maxmemory-policy", "allkeys-lru")
    database = tmp_path / "site.sqlite3"
    worker = run_manage(url, prefix, database, "runworker", "--burst", "--no-mirror")
    assert worker.returncode == 0, worker.stderr
    assert "maxmemory-policy is 'allkeys-lru'" in worker.stderr
    assert refusals(admin) == []


def test_the_health_check_as_the_acl_user(acl_site, tmp_path):
    url, prefix, admin = acl_site
    database = tmp_path / "site.sqlite3"
    text = section("Health checks")
    (command,) = blocks(text, "sh")
    (dockerfile,) = blocks(text, "dockerfile")
    check = dockerfile.split(" CMD ", 1)[1]  # what Docker runs, through /bin/sh -c
    env = site_env(url, prefix, database)

    def run(shell_line: str) -> subprocess.CompletedProcess:
        line = shell_line.replace("python ", f"{shlex.quote(sys.executable)} ", 1)
        return subprocess.run(
            ["sh", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )

    alone = run(command)
    assert alone.returncode == 1, alone
    assert "no live worker" in alone.stderr, alone.stderr
    assert run(check).returncode == 1
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "runworker", "--no-mirror", "-c", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        healthy = wait_for(lambda: run(command).returncode == 0, timeout=30, interval=0.3)
        assert healthy
        assert run(check).returncode == 0
    finally:
        worker.terminate()
        assert worker.wait(30) == 0
    unreachable = {**env, "JOBQUEUE_REDIS_URL": "redis://127.0.0.1:1/0"}
    down = subprocess.run(
        ["sh", "-c", check.replace("python ", f"{shlex.quote(sys.executable)} ", 1)],
        cwd=ROOT,
        env=unreachable,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 1, down  # 2 (could not check), mapped to 1 for Docker
    assert refusals(admin) == []
