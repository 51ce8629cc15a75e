"""docs/troubleshooting.md, checked: each situation is built on a private Redis (prefix ``jq``,
as the doc's examples) and the doc's commands are run as written; only ``redis-cli`` gets the
private server's port and ``python`` is this interpreter."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobqueue.conf import get_engine
from jobqueue.engine import JobSpec, JobState
from tests import sample_tasks  # noqa: F401 - registers the task the jobs name
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "troubleshooting.md"
JOB = "default:4f1c2a9e7b3d5f60a1b2c3d4"
LOCAL = JOB.split(":")[1]

pytestmark = pytest.mark.slow


def commands(title: str) -> list[str]:
    text = DOC.read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)\n```", text, re.S)
    return block.splitlines()


@pytest.fixture
def site(tmp_path, settings):
    """A private Redis with the doc's prefix; ``run(line)`` runs one of the doc's lines."""
    server = RedisServer(tmp_path / "redis").start()
    url = f"redis://127.0.0.1:{server.port}/0"
    settings.JOBQUEUE = {**settings.JOBQUEUE, "REDIS_URL": url, "PREFIX": "jq"}
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "JOBQUEUE_REDIS_URL": url,
        "JOBQUEUE_PREFIX": "jq",
        "JOBQUEUE_MIRROR": "1",  # as a site runs its workers: the mirror on
        "DATABASE_URL": f"sqlite:///{tmp_path / 'site.sqlite3'}",
        "PYTHONWARNINGS": "ignore",
    }

    def run(line: str) -> subprocess.CompletedProcess:
        argv = shlex.split(line)
        if argv[0] == "redis-cli":
            argv[1:1] = ["-p", str(server.port)]
            argv = [a.replace("127.0.0.1:6379", f"127.0.0.1:{server.port}") for a in argv]
        else:
            assert argv[:2] == ["python", "manage.py"], line
            argv[0] = sys.executable
        return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    yield run
    server.close()


def enqueue(**options) -> None:
    get_engine().enqueue_many([JobSpec("tests.sample_tasks.add", [1, 2], job_id=JOB, **options)])


def test_queued(site):
    enqueue()
    status_line, paused_line, rank_line = commands('My job stays "queued"')
    alone = site(status_line)
    assert alone.returncode == 0, alone.stderr
    assert "1 job waits in 'default' and no live worker takes from it" in alone.stdout
    assert site(paused_line).stdout.strip() == ""
    get_engine().pause("default")
    status, paused, rank = (site(line) for line in (status_line, paused_line, rank_line))
    assert "paused" in status.stdout
    assert paused.stdout.strip() == "1"
    assert rank.stdout.strip() == "0"
    resumed = site("python manage.py jobqueue resume default")
    assert resumed.returncode == 0, resumed.stderr
    assert site(paused_line).stdout.strip() == ""


def test_running(site):
    enqueue()
    protocol = get_engine().worker_protocol()
    batch = protocol.claim("default", "gone-worker", count=1, lease=60)
    assert [c.job_id for c in batch.jobs] == [JOB]
    inspect, lease, clock = (site(line) for line in commands('My job stays "running"'))
    assert inspect.returncode == 0, inspect.stderr
    assert "running" in inspect.stdout and "gone-worker" in inspect.stdout
    seconds, micros = clock.stdout.split()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    assert now_ms < float(lease.stdout) <= now_ms + 60_000  # a lease that ends in the future
    canceled = site(f"python manage.py jobqueue cancel {JOB}")
    assert canceled.returncode == 0, canceled.stderr
    assert get_engine().get(JOB).cancel_requested


def test_scheduled(site):
    enqueue(run_after=datetime.now(UTC) + timedelta(hours=1))
    score, inspect = (site(line) for line in commands('My job stays "scheduled"'))
    run_at = datetime.fromtimestamp(float(score.stdout) / 1000, UTC)
    assert timedelta(minutes=59) < run_at - datetime.now(UTC) <= timedelta(hours=1)
    assert "scheduled for" in inspect.stdout and "in 59 minutes" in inspect.stdout
    text = DOC.read_text()
    for step in ("cancel", "retry"):  # "to run it now, cancel it and retry it"
        line = f"python manage.py jobqueue {step} {JOB}"
        assert line in text.replace("python\nmanage.py", "python manage.py")
        assert site(line).returncode == 0
    assert get_engine().get(JOB).state is JobState.QUEUED


def test_old_data_in_the_admin(site):
    enqueue()
    groups_line, mirror_line = commands("The admin shows old data")
    assert site(groups_line).stdout.strip() == ""  # no mirror ever ran: no group
    assert site("python manage.py migrate -v 0").returncode == 0
    mirror = site(mirror_line)
    assert mirror.returncode == 0, mirror.stderr
    groups = site(groups_line).stdout.split()
    assert "jq-mirror" in groups
    assert groups[groups.index("lag") + 1] == "0"
    assert groups[groups.index("pending") + 1] == "0"


def test_the_worker_exits_at_once(site):
    check, ping, migrations = (site(line) for line in commands("The worker exits at once"))
    assert check.returncode == 0, check.stderr
    assert ping.stdout.strip() == "PONG"
    assert migrations.returncode != 0  # a fresh database: migrations not applied
    worker = site("python manage.py runworker")
    assert worker.returncode != 0
    assert "python manage.py migrate" in worker.stderr
    assert site("python manage.py migrate -v 0").returncode == 0
    assert site(commands("The worker exits at once")[2]).returncode == 0
