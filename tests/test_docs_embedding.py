"""docs/embedding.md, followed as written on a fresh ``startproject mysite``.

The test reads the commands and files from the doc itself, so the two cannot drift. What a
fenced block's info string means (the first word is the language GitHub highlights; the rest
is ignored when rendered):

- ```` ```sh ````: shell commands, run as one script with ``bash -e`` in the project's
  directory (where ``manage.py`` is).
- ```` ```sh background ````: one command that runs until it is stopped (a worker). It is
  started and left running while the test does what the doc says it is for, then stopped
  with SIGTERM, and must exit 0.
- ```` ```python title="PATH" ````: the whole file PATH (relative to the project's directory),
  created or replaced.
- ```` ```python title="PATH" append ````: text added at the end of PATH.

Any other block fails the test: every block of the doc is run, in the doc's order. The
substitutions, and the only ones:

- ``pip install`` lines are not run: the checkout is made importable instead (``PYTHONPATH``
  is the repository's root; daphne is in the test's venv, from requirements.txt), and
  ``python`` on ``PATH`` is the interpreter running the tests (so the doc runs on Django 5.2
  with the backport, and on Django 6).
- ``createsuperuser`` gets ``--noinput``, its answers in ``DJANGO_SUPERUSER_*``.
- The doc's settings read Redis's URL and the key prefix from ``JOBQUEUE_REDIS_URL`` and
  ``JOBQUEUE_PREFIX``: the test's Redis and a prefix of the test's own, whose keys are deleted
  (and checked gone) afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL, ROOT, KeySpace, kill_and_read, new_prefix, wait_for
from tests.redis_server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

DOC = Path(ROOT) / "docs" / "embedding.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)\n```$", re.M | re.S)
COMMAND_TIMEOUT = 120


@dataclass(frozen=True)
class Block:
    language: str
    title: str | None  # the file a python block is
    flags: frozenset[str]  # "append", "background"
    body: str


def doc_blocks(text: str) -> list[Block]:
    blocks = []
    for language, info, body in FENCE.findall(text):
        words = shlex.split(info)
        titles = [w.removeprefix("title=") for w in words if w.startswith("title=")]
        flags = frozenset(w for w in words if not w.startswith("title="))
        blocks.append(Block(language, titles[0] if titles else None, flags, body))
    return blocks


def understood(block: Block) -> bool:
    if block.language == "sh":
        return block.title is None and block.flags <= {"background"}
    if block.language == "python":
        return block.title is not None and block.flags <= {"append"}
    return False


@dataclass
class Ran:
    """What one shell block did."""

    script: str
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Site:
    """The project the doc built, and what its commands did."""

    directory: Path
    env: dict[str, str]
    ran: list[Ran] = field(default_factory=list)
    background: list[tuple[str, int, str]] = field(default_factory=list)  # command, rc, log
    waited_for: str = ""  # what the running worker did with a job enqueued after it started

    def run(self, script: str, check: bool = True) -> Ran:
        done = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        ran = Ran(script, done.returncode, done.stdout, done.stderr)
        if check:
            assert done.returncode == 0, f"{script}\nexited {done.returncode}:\n{done.stderr}"
        return ran

    def shell(self, code: str) -> str:
        """Python run by the project's ``manage.py shell`` (the test's own, not the doc's)."""
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


def substituted(script: str) -> str:
    """The doc's shell lines as the test runs them (see the module's docstring)."""
    lines = [line for line in script.splitlines() if not line.startswith("pip install ")]
    return "\n".join(
        f"{line} --noinput" if line.endswith("manage.py createsuperuser") else line
        for line in lines
    )


def project_env(tmp: Path, keyspace: KeySpace) -> dict[str, str]:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"  # a wrapper, not a symlink: a venv is found from its own path
    python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    python.chmod(0o755)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return {
        **inherited,  # without pytest-django's DJANGO_SETTINGS_MODULE: manage.py sets its own
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),  # instead of `pip install /path/to/jobqueue`
        "PYTHONWARNINGS": "error",
        "JOBQUEUE_REDIS_URL": keyspace.url,
        "JOBQUEUE_PREFIX": keyspace.prefix,
        "DJANGO_SUPERUSER_USERNAME": "admin",
        "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
        "DJANGO_SUPERUSER_PASSWORD": "not-a-real-password",
    }


def follow_the_doc(site: Site, blocks: list[Block]) -> None:
    for block in blocks:
        if block.language == "python":
            path = site.directory / block.title
            if "append" in block.flags:
                with path.open("a") as f:
                    f.write(f"\n\n{block.body}\n")
            else:
                path.write_text(f"{block.body}\n")
        elif "background" in block.flags:
            run_until_stopped(site, block.body)
        elif script := substituted(block.body):  # empty when the block was `pip install`
            site.ran.append(site.run(script))


def run_until_stopped(site: Site, command: str) -> None:
    """Start the command, have it run a job enqueued while it runs (what the doc promises:
    every job enqueued from now on runs at once), then stop it as the doc says (SIGTERM)."""
    assert "\n" not in command, command
    log = (site.directory / "background.log").open("w+")
    process = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],  # exec: the signal goes to the command itself
        cwd=site.directory,
        env=site.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        site.waited_for = site.shell(
            "from jobqueue import api; from shop.tasks import add; "
            "r = api.wait(add.enqueue(20, 22), timeout=60); print(r.status, r.return_value)"
        ).strip()
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=60)
    finally:
        output = kill_and_read([process], log)
    site.background.append((command, returncode, output))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("embedding")
    keyspace = KeySpace(REDIS_URL, new_prefix())
    try:
        site = Site(tmp / "mysite", project_env(tmp, keyspace))
        subprocess.run(
            [sys.executable, "-m", "django", "startproject", "mysite"],
            cwd=tmp,
            env=site.env,
            check=True,
            timeout=COMMAND_TIMEOUT,
        )
        follow_the_doc(site, doc_blocks(DOC.read_text()))
        yield site
    finally:
        keyspace.cleanup()
        left = keyspace.keys()
        keyspace.close()
    assert not left, f"keys left behind under {keyspace.prefix}: {left[:5]}"


def test_every_block_of_the_doc_says_what_the_test_does_with_it():
    blocks = doc_blocks(DOC.read_text())
    assert DOC.read_text().count("```") == 2 * len(blocks)  # no block the pattern missed
    assert [b for b in blocks if not understood(b)] == []
    shell = "\n".join(b.body for b in blocks if b.language == "sh")
    for step in ("pip install", "startapp shop", "migrate", "createsuperuser", "runworker"):
        assert step in shell


def test_the_first_job_runs_and_reads_back_as_the_doc_says(site):
    first_job = next(ran for ran in site.ran if "runworker --burst" in ran.script)
    assert first_job.stdout.splitlines()[-1] == "SUCCESSFUL 5"
    assert "prints `SUCCESSFUL 5`" in DOC.read_text()
    jobs = json.loads(
        site.shell(
            "import json; from jobqueue.models import Job; "
            "print(json.dumps(list(Job.objects.values('task', 'status', 'result'))))"
        )
    )
    assert {"task": "shop.tasks.add", "status": "succeeded", "result": 5} in jobs  # the admin's


def test_the_worker_that_runs_until_stopped_takes_new_jobs_and_stops_on_sigterm(site):
    [(command, returncode, output)] = site.background
    assert command == "python manage.py runworker"
    assert site.waited_for == "SUCCESSFUL 42"
    assert returncode == 0, output


VIEWER_CHECKS = """
import json

from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group, User
from django.test import Client
from django.test.utils import setup_test_environment
from django.urls import reverse

from jobqueue.models import Job

setup_test_environment()  # the test client's host, 'testserver', is allowed
viewer = User.objects.create_user("viewer", password="unused", is_staff=True)
viewer.groups.add(Group.objects.get(name="Job queue viewers"))
viewer = User.objects.get(pk=viewer.pk)
job = Job.objects.get(task="shop.tasks.add", status="succeeded", result=5)

as_viewer, as_admin = Client(), Client()
as_viewer.force_login(viewer)
as_admin.force_login(User.objects.get(username="admin"))
retry = reverse("admin:jobqueue_job_act", args=["retry"])
job_list = as_viewer.get(reverse("admin:jobqueue_job_changelist"))
print(json.dumps({
    "perms": sorted(p for p in viewer.get_all_permissions() if p.startswith("jobqueue.")),
    "list": job_list.status_code,
    "listed": job.id in job_list.content.decode(),
    "page": as_viewer.get(reverse("admin:jobqueue_job_change", args=[quote(job.id)])).status_code,
    "queues": as_viewer.get(reverse("admin:jobqueue_queue_changelist")).status_code,
    "workers": as_viewer.get(reverse("admin:jobqueue_worker_changelist")).status_code,
    "schedules": as_viewer.get(reverse("admin:jobqueue_schedule_changelist")).status_code,
    "retry_page": as_viewer.get(retry, {"ids": job.id}).status_code,
    "retry_post": as_viewer.post(retry, {"ids": [job.id]}).status_code,
    "cancel_post": as_viewer.post(
        reverse("admin:jobqueue_job_act", args=["cancel"]), {"ids": [job.id]}
    ).status_code,
    "pause_post": as_viewer.post(
        reverse("admin:jobqueue_queue_act", args=["default", "pause"])
    ).status_code,
    "admin_retry_page": as_admin.get(retry, {"ids": job.id}).status_code,
}))
"""


def test_the_read_only_group_views_the_jobs_and_cannot_act(site):
    seen = json.loads(site.shell(VIEWER_CHECKS))
    assert seen["perms"] == [
        "jobqueue.view_job",
        "jobqueue.view_queue",
        "jobqueue.view_schedule",
        "jobqueue.view_worker",
    ]
    assert seen["list"] == 200 and seen["listed"]
    assert seen["page"] == seen["queues"] == seen["workers"] == seen["schedules"] == 200
    assert seen["retry_page"] == seen["retry_post"] == 403
    assert seen["cancel_post"] == seen["pause_post"] == 403
    assert seen["admin_retry_page"] == 200  # the refusal is the group's, not the page's


def test_a_typo_in_the_backend_options_stops_check_naming_it(site):
    settings_py = site.directory / "mysite" / "settings.py"
    written = settings_py.read_text()
    assert written.count('"max_attempts": 3') == 1
    settings_py.write_text(written.replace('"max_attempts": 3', '"max_attempt": 3'))
    try:
        check = site.run("python manage.py check", check=False)
    finally:
        settings_py.write_text(written)
    assert check.returncode != 0
    assert "jobqueue.E011" in check.stderr
    assert "'max_attempt'" in check.stderr
    assert site.run("python manage.py check").returncode == 0  # as the doc wrote it


def test_the_asgi_file_is_the_readmes_and_serves_websockets(site):
    [asgi] = [b for b in doc_blocks(DOC.read_text()) if b.title == "mysite/asgi.py"]
    readme = (Path(ROOT) / "README.md").read_text().split("### Live admin pages", 1)[1]
    assert asgi.body in readme  # one routing, said the same in both places
    kinds = site.shell(
        "from mysite.asgi import application; print(sorted(application.application_mapping))"
    )
    assert kinds.strip() == "['http', 'websocket']"


STAFF_SESSION = """
from django.contrib.auth.models import Group, User
from django.test import Client

watcher, _ = User.objects.get_or_create(username="watcher", defaults={"is_staff": True})
watcher.groups.add(Group.objects.get(name="Job queue viewers"))
client = Client()
client.force_login(watcher)
print(client.cookies["sessionid"].value)
"""


def next_message(socket, kind: str, timeout: float = 30.0) -> dict:
    """The next message of ``kind`` a live page receives (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {kind!r} message within {timeout} s"
        message = json.loads(socket.recv(timeout=left))
        if message.get("type") == kind:
            return message


def test_runserver_serves_the_live_pages_over_the_docs_asgi_routing(site):
    """What step 5 promises: with daphne first, `runserver` serves ASGI, and a job's page in
    the admin follows the job as a worker runs it, for the read-only group's staff user."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    port = free_port()
    log = (site.directory / "runserver.log").open("w+")
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=site.directory,
        env=site.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/admin/login/"), timeout=60)
        session = site.shell(STAFF_SESSION).strip()
        job_id = site.shell("from shop.tasks import add; print(add.enqueue(4, 5).id)").strip()
        url, origin = f"ws://127.0.0.1:{port}/jobqueue/live/", f"http://127.0.0.1:{port}"
        with connect(
            url, origin=origin, additional_headers={"Cookie": f"sessionid={session}"}
        ) as socket:
            socket.send(json.dumps({"subscribe": {"page": "job", "id": job_id}}))
            assert next_message(socket, "job")["job"]["status"] == "queued"
            site.run("python manage.py runworker --burst")
            seen = next_message(socket, "job")
            while seen["job"] is None or seen["job"]["status"] != "succeeded":
                seen = next_message(socket, "job")
            assert seen["job"]["result"] == "9"
        with pytest.raises(InvalidStatus):  # no session: refused before any data
            connect(url, origin=origin).close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.seek(0)
        output = log.read()
        log.close()
    assert "ASGI/Daphne" in output, output


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
