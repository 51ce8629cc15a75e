"""The README's promises about the demo site and CI, checked as written: ``manage.py demo``
(its Redis, its seeded example jobs, its worker, Ctrl-C), and the demo page (/demo/) that
enqueues the example tasks."""

from __future__ import annotations

import html
import http.cookiejar
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import redis
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from jobqueue import api
from jobqueue.conf import get_engine
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
DEMO = "/demo/"


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:sh|bash|console)\n(.*?)\n```", quick_start, re.S)


def test_readme_quick_start_has_exactly_two_commands_and_ci_calls_the_test_one():
    commands = readme_commands()
    assert len(commands) == 2, commands
    assert all("\n" not in c for c in commands)
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 90) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the demo exited early"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout}s")


# -- the demo as a process ---------------------------------------------------------------------


def children_by_parent() -> dict[int, list[int]]:
    table: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            table.setdefault(ppid, []).append(int(entry))
    return table


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, their children...), from /proc."""
    table, found, todo = children_by_parent(), set(), [pid]
    while todo:
        for child in table.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """The process exists and is not a zombie (a dead process its parent has not reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class DemoProcess:
    """``manage.py demo`` on a free port with its own SQLite database; its output in a file."""

    def __init__(self, tmp_path: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "demo.log"
        self.log = open(self.log_path, "w+b")
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
            "PYTHONWARNINGS": "ignore",
            **env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "demo", "--port", str(self.port), *args],
            cwd=ROOT,
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output()}"
            assert self.process.poll() is None, f"the demo exited:\n{self.output()}"
            time.sleep(0.2)
        return self.output()

    def wait_for_admin(self) -> bytes:
        return wait_for_http(f"{self.base}/admin/login/", self.process)

    def interrupt(self, signum: int = signal.SIGINT) -> dict[int, str]:
        """Send ``signum`` (Ctrl-C) to the demo alone, wait for it to exit 0; returns the
        processes it had started, with their command lines (the test checks they are gone)."""
        started = {pid: command_line(pid) for pid in descendants(self.process.pid)}
        self.process.send_signal(signum)
        assert self.process.wait(timeout=60) == 0, self.output()
        return started

    def close(self) -> None:
        if self.process.poll() is None:
            for pid in descendants(self.process.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def start_demo(tmp_path):
    started: list[DemoProcess] = []

    def start(*args: str, **env: str) -> DemoProcess:
        demo = DemoProcess(tmp_path, *args, **env)
        started.append(demo)
        return demo

    yield start
    for demo in started:
        demo.close()


def assert_all_gone(started: dict[int, str], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while left := [line for pid, line in started.items() if running(pid)]:
        assert time.monotonic() < deadline, left
        time.sleep(0.1)


def finished_jobs() -> dict[str, list]:
    """The jobs that ended, by task name (from Redis)."""
    engine = get_engine()
    jobs: dict[str, list] = {}
    for queue in ("default", "emails", "reports"):
        for state in ("succeeded", "failed"):
            for job in engine.reads.jobs(queue, state, limit=200):
                jobs.setdefault(job.task.rsplit(".", 1)[-1], []).append(job)
    return jobs


def wait_for_seeded_jobs_to_run(timeout: float = 90) -> dict[str, list]:
    wanted = {"add", "build_report", "always_fails", "runs_too_long", "refresh_cache"}
    deadline = time.monotonic() + timeout
    while not wanted <= set(jobs := finished_jobs()):
        assert time.monotonic() < deadline, f"finished so far: {sorted(jobs)}"
        time.sleep(0.5)
    return jobs


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_demo_seeds_example_jobs_that_run_and_ctrl_c_leaves_no_process(
    start_demo, redis_url, keyspace
):
    demo = start_demo(JOBQUEUE_REDIS_URL=redis_url, JOBQUEUE_PREFIX=keyspace.prefix)
    body = demo.wait_for_admin()
    assert b"jobqueue demo" in body
    assert b"csrfmiddlewaretoken" in body
    output = demo.wait_for_output("Started a worker")
    seeded = re.search(r"First start on this Redis: enqueued (\d+) example jobs", output)
    assert seeded, output
    assert int(seeded.group(1)) >= 20
    assert f"{demo.base}/demo/" in output  # the demo page is announced
    assert keyspace.client.exists(f"{keyspace.prefix}:demo:seeded")

    jobs = wait_for_seeded_jobs_to_run()
    [failed] = jobs["always_fails"]
    assert failed.state.value == "failed"
    assert failed.errors[-1].exception_class == "builtins.LookupError"
    [timed_out] = jobs["runs_too_long"]
    assert timed_out.errors[-1].exception_class.endswith("JobTimeout")
    assert all(job.state.value == "succeeded" for job in jobs["build_report"])
    assert any(job.progress["total"] == 100 for job in jobs["build_report"])
    assert len(jobs["refresh_cache"]) == 1  # three asked for, one unique job
    later = re.search(r"\((\d+) of them scheduled to start within a minute\)", output)
    assert later and int(later.group(1)) > 0, output  # some start a little later

    from project.tasks import add

    result = add.enqueue(20, 22)  # the demo's worker runs it
    assert get_engine().wait(result.id, timeout=60).result == 42

    started = demo.interrupt(signal.SIGINT)
    workers = [line for line in started.values() if "jobqueue_worker" in line]
    assert len(workers) == 6  # the worker, its 4 children and its mirror
    assert_all_gone(started)
    output = demo.output()
    assert "login admin/admin" in output
    assert "Stopping the worker" in output
    assert "worker_stopped" in output  # a graceful stop, not a kill
    assert "Traceback" not in output


def http_session() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, page[:2000]
    return match.group(1)


def post(session, url: str, fields: dict[str, str]) -> tuple[int, str, str]:
    """POST ``fields`` (redirects followed); the final status, URL and page."""
    data = urllib.parse.urlencode(fields).encode()
    try:
        with session.open(url, data=data, timeout=30) as response:
            return response.status, response.geturl(), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, url, error.read().decode()


def text_of(page: str) -> str:
    """A page's text: tags removed, entities read."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def total_jobs() -> int:
    return sum(sum(api.counts(q).values()) for q in ("default", "emails", "reports"))


def jobs_of_add() -> int:
    """How many jobs of project.tasks.add Redis holds (the schedules of a running demo add
    others at any time). Read from the job hashes, not state by state: the demo's worker moves
    jobs between states meanwhile, and one read in two states was counted twice."""
    engine = get_engine()
    prefix = engine.keys.queue("default").job("")
    ids = [
        "default:" + key.decode()[len(prefix) :]
        for key in engine.client.scan_iter(match=prefix + "*", count=1000)
    ]
    return sum(job.task == "project.tasks.add" for job in engine.find(ids))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_demo_page_enqueues_over_http_and_refuses_bad_input_and_strangers(
    start_demo, redis_url, keyspace
):
    demo = start_demo(JOBQUEUE_REDIS_URL=redis_url, JOBQUEUE_PREFIX=keyspace.prefix)
    demo.wait_for_admin()
    demo.wait_for_output("First start on this Redis")
    page_url = demo.base + DEMO

    stranger = http_session()
    with stranger.open(page_url, timeout=30) as response:  # sent to the login page
        assert "/admin/login/" in response.geturl()
        token = csrf_token(response.read().decode())
    before = jobs_of_add()
    status, url, _ = post(stranger, page_url, {"csrfmiddlewaretoken": token, "task": "add"})
    assert "/admin/login/" in url
    assert jobs_of_add() == before

    session = http_session()
    with session.open(f"{demo.base}/admin/login/?next={DEMO}", timeout=30) as response:
        login_page = response.read().decode()
    status, url, page = post(
        session,
        f"{demo.base}/admin/login/?next={DEMO}",
        {
            "csrfmiddlewaretoken": csrf_token(login_page),
            "username": "admin",
            "password": "admin",
            "next": DEMO,
        },
    )
    assert (status, url) == (200, page_url), page[:2000]
    assert 'id="demo-link"' in page  # the header links to the page
    for name in ("add", "build_report", "flaky", "always_fails", "runs_too_long"):
        assert f'value="{name}"' in page
    fields = {"count": "3", "priority": "7", "delay": "0", "queue": "", "task": "add"}
    before = jobs_of_add()
    status, url, page = post(
        session, page_url, {"csrfmiddlewaretoken": csrf_token(page), **fields}
    )
    assert status == 200, page[:2000]
    assert "count=3" in url and "priority=7" in url  # the options kept for the next click
    message = html.unescape(page.split('class="messagelist"', 1)[1].split("</ul>", 1)[0])
    assert "Enqueued 3 jobs of add on the queue default (priority 7, ready now)" in text_of(
        message
    )
    local_ids = re.findall(r"/admin/jobqueue/job/default_3A([0-9a-f]+)/change/", message)
    assert len(local_ids) == 3
    for local_id in local_ids:
        job = get_engine().get(f"default:{local_id}")
        assert (job.task, job.priority) == ("project.tasks.add", 7)
    assert jobs_of_add() == before + 3

    before = jobs_of_add()
    bad = {**fields, "count": "0", "csrfmiddlewaretoken": csrf_token(page)}
    status, _, page = post(session, page_url, bad)
    assert status == 400
    assert "Ensure this value is greater than or equal to 1." in page
    assert "Nothing was enqueued" in page
    status, _, page = post(session, page_url, {**bad, "count": "1"})  # corrected: enqueued
    assert status == 200
    assert jobs_of_add() == before + 1
    status, _, _ = post(session, page_url, {**fields, "csrfmiddlewaretoken": "forged"})
    assert status == 403
    assert jobs_of_add() == before + 1


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_missing_redis_without_redis_server_is_one_line_not_a_traceback(start_demo, tmp_path):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    path = os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "redis-server").exists()
    )
    demo = start_demo(JOBQUEUE_REDIS_URL=dead, PATH=path)
    demo.wait_for_admin()  # the admin starts anyway
    output = demo.wait_for_output("Started a worker")
    lines = [line for line in output.splitlines() if "Redis is not reachable" in line]
    assert len(lines) == 1, output
    assert lines[0].startswith(f"Redis is not reachable at {dead} (")
    assert "Connection refused" in lines[0]
    assert lines[0].endswith(
        "): start Redis (redis-server), or set JOBQUEUE_REDIS_URL to a Redis that answers. The "
        "admin starts anyway; the worker tries again until Redis answers."
    )
    assert "private" not in output
    demo.wait_for_output("The demo's worker stopped")
    started = demo.interrupt(signal.SIGTERM)
    assert_all_gone(started)
    assert "Traceback" not in demo.output()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_missing_redis_with_redis_server_on_path_gets_a_private_one(start_demo, keyspace):
    assert shutil.which("redis-server"), "the test needs redis-server on PATH"
    dead = f"redis://127.0.0.1:{free_port()}/0"
    demo = start_demo(JOBQUEUE_REDIS_URL=dead, JOBQUEUE_PREFIX=keyspace.prefix)
    demo.wait_for_admin()
    output = demo.wait_for_output("Started a worker")
    said = re.search(
        rf"Redis is not reachable at {re.escape(dead)} \(.*\), so the demo started its own: a "
        r"private redis-server at (redis://127\.0\.0\.1:(\d+)/0), stopped with the demo",
        output,
    )
    assert said, output
    assert "First start on this Redis: enqueued" in output  # seeded, on the private Redis
    private = redis.Redis.from_url(said.group(1))
    try:
        assert private.exists(f"{keyspace.prefix}:demo:seeded")
        deadline = time.monotonic() + 60  # the worker runs there: it registers itself
        while not private.keys(f"{keyspace.prefix}:worker:*"):
            assert time.monotonic() < deadline, demo.output()
            time.sleep(0.3)
        started = demo.interrupt(signal.SIGINT)
    finally:
        private.close()
    servers = [line for line in started.values() if "redis-server" in line]
    assert len(servers) == 1, started
    assert_all_gone(started)
    assert "Stopped the demo's private Redis." in demo.output()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(said.group(1), socket_connect_timeout=1).ping()


@pytest.mark.slow
def test_the_demo_says_its_worker_stopped_and_starts_it_again_once_redis_is_there(
    start_demo, tmp_path
):
    """Redis is not there when the demo starts (and it may not start its own): the admin
    still answers, the demo says that its worker stopped and starts it again with backoff;
    once Redis is up, jobs run."""
    server = RedisServer(tmp_path / "redis")  # its port chosen, nothing listening yet
    demo = start_demo("--no-private-redis", JOBQUEUE_REDIS_URL=server.url)
    demo.wait_for_admin()
    demo.wait_for_output("Starting it again in 2 s")
    with server:  # Redis comes
        client = server.client()
        deadline = time.monotonic() + 60
        while not any(key.startswith(b"jq:worker:") for key in client.keys("jq:*")):
            assert time.monotonic() < deadline, demo.output()
            time.sleep(0.3)  # a worker registered itself: it runs
        demo.wait_for_output("First start on this Redis: enqueued")  # seeded once it came
        started = demo.interrupt(signal.SIGTERM)
    assert_all_gone(started)
    output = demo.output()
    assert "The demo's worker stopped (exit code 1" in output
    assert "Started a worker again" in output
    assert "Traceback" not in output


def test_demo_command_rejects_a_bad_port():
    result = subprocess.run(
        [sys.executable, "manage.py", "demo", "--port", "70000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": "sqlite:///:memory:"},
        timeout=60,
    )
    assert result.returncode == 1
    assert "--port 70000 is not a TCP port" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_command_refuses_a_port_in_use_before_starting_anything(tmp_path, keyspace):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "manage.py", "demo", "--port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
                "JOBQUEUE_PREFIX": keyspace.prefix,
            },
            timeout=60,
        )
    assert result.returncode == 1
    assert f"Cannot serve on 127.0.0.1:{port} (Address already in use)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not keyspace.keys()  # nothing started, nothing seeded


# -- seeding, in this process ------------------------------------------------------------------


def test_the_first_start_seeds_every_kind_of_job_once_per_redis():
    from project.seed import seed_first_start

    seeded = seed_first_start()
    assert seeded is not None
    assert seeded.queues == ["default", "emails", "reports"]
    assert 0 < seeded.scheduled < seeded.jobs
    engine = get_engine()
    ids = [
        job_id
        for queue in seeded.queues
        for state in ("queued", "scheduled")
        for job_id in engine.reads.job_ids(queue, state, limit=500)
    ]
    assert len(ids) == seeded.jobs
    jobs = engine.find(ids)
    tasks = {job.task.rsplit(".", 1)[-1] for job in jobs}
    assert {"add", "build_report", "flaky", "always_fails", "runs_too_long"} <= tasks
    assert {"refresh_cache", "send_welcome_email", "fetch_status"} <= tasks
    assert len({job.priority for job in jobs}) >= 3
    assert seed_first_start() is None  # a second start: nothing more
    assert total_jobs() == seeded.jobs


# -- the demo page, in this process ------------------------------------------------------------


def staff(name: str, *permissions: str, superuser: bool = False) -> User:
    from django.contrib.auth.models import Permission

    if superuser:
        return User.objects.create_superuser(name, f"{name}@example.com", "pw")
    user = User.objects.create_user(name, f"{name}@example.com", "pw", is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return User.objects.get(pk=user.pk)


def logged_in(user: User, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def enqueue_fields(**fields: str) -> dict[str, str]:
    return {"task": "add", "count": "1", "priority": "0", "delay": "0", "queue": "", **fields}


@pytest.mark.database
@pytest.mark.django_db
def test_the_demo_page_lists_every_example_and_is_linked_from_the_admin_header(settings):
    from project import settings as demo_settings
    from project.examples import EXAMPLES

    schedules = demo_settings.JOBQUEUE["SCHEDULES"]  # the test settings have none
    settings.JOBQUEUE = {**settings.JOBQUEUE, "SCHEDULES": schedules}
    client = logged_in(staff("root", superuser=True))
    page = client.get(DEMO).content.decode()
    for example in EXAMPLES:
        assert f'value="{example.name}"' in page
        assert html.escape(example.shows) in page
    assert "periodic: every 60 s" in page
    assert "periodic: cron */2 * * * *" in page
    assert "timeout 3 s" in page
    for name in ("count", "priority", "delay", "queue"):
        assert f'name="{name}"' in page
    for queue in ("default", "emails", "reports"):
        assert f'<option value="{queue}">' in page
    index = client.get(reverse("admin:index")).content.decode()
    assert f'<a href="{DEMO}" id="demo-link">' in index


@pytest.mark.database
@pytest.mark.django_db
def test_the_demo_page_is_for_staff_and_enqueueing_needs_the_permission():
    assert Client().get(DEMO).url.startswith("/admin/login/?next=/demo/")
    assert Client().post(DEMO, enqueue_fields()).url.startswith("/admin/login/")
    outsider = User.objects.create_user("outsider", "o@example.com", "pw")
    assert logged_in(outsider).get(DEMO).status_code == 302
    looker = logged_in(staff("looker"))
    page = looker.get(DEMO)
    assert page.status_code == 200
    assert "needs the <code>jobqueue.add_job</code> permission" in page.content.decode()
    assert looker.post(DEMO, enqueue_fields()).status_code == 403
    assert logged_in(staff("maker", "add_job")).post(DEMO, enqueue_fields()).status_code == 302
    assert total_jobs() == 1


@pytest.mark.database
@pytest.mark.django_db
def test_the_demo_page_enqueues_with_the_chosen_options_and_links_the_jobs():
    client = logged_in(staff("root", superuser=True), csrf=True)
    token = client.get(DEMO).cookies["csrftoken"].value
    fields = enqueue_fields(
        task="send_welcome_email", count="12", priority="-5", delay="60", queue="reports"
    )
    assert client.post(DEMO, fields).status_code == 403  # no CSRF token
    assert total_jobs() == 0
    response = client.post(DEMO, {**fields, "csrfmiddlewaretoken": token}, follow=True)
    page = response.content.decode()
    assert response.redirect_chain[-1][0].startswith("/demo/?count=12&priority=-5&delay=60")
    assert 'value="12"' in page and 'value="-5"' in page  # kept for the next click
    ids = get_engine().reads.job_ids("reports", "scheduled", limit=50)
    assert len(ids) == 12
    jobs = get_engine().find(ids)
    assert {(job.task, job.priority, job.state.value) for job in jobs} == {
        ("project.tasks.send_welcome_email", -5, "scheduled")
    }
    assert sorted(job.args[0] for job in jobs)[:2] == ["user10@example.com", "user11@example.com"]
    text = text_of(page)
    assert (
        "Enqueued 12 jobs of send_welcome_email on the queue reports (priority -5, scheduled "
        "to start in 60 s)"
    ) in text
    assert "and 7 more" in text
    links = re.findall(r'href="(/admin/jobqueue/job/[^"]+/change/)"', page)
    assert len(links) == 5
    assert all(
        link in {reverse("admin:jobqueue_job_change", args=[quote(i)]) for i in ids}
        for link in links
    )
    assert "/admin/jobqueue/job/?task=project.tasks.send_welcome_email" in html.unescape(page)
    assert client.get(links[0]).status_code == 200  # the job's page, before the mirror ran


@pytest.mark.database
@pytest.mark.django_db
def test_a_unique_task_asked_ten_times_is_one_job():
    client = logged_in(staff("root", superuser=True))
    response = client.post(DEMO, enqueue_fields(task="refresh_cache", count="10"), follow=True)
    text = text_of(response.content.decode())
    assert "Enqueued 1 job of refresh_cache on the queue default" in text
    assert "10 asked for: while a unique task's job waits or runs" in text
    assert total_jobs() == 1


@pytest.mark.database
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"count": "0"}, "Ensure this value is greater than or equal to 1."),
        ({"count": "1001"}, "Ensure this value is less than or equal to 1000."),
        ({"count": "many"}, "Enter a whole number."),
        ({"priority": "101"}, "Ensure this value is less than or equal to 100."),
        ({"priority": "-101"}, "Ensure this value is greater than or equal to -100."),
        ({"delay": "-1"}, "Ensure this value is greater than or equal to 0."),
        ({"queue": "nope"}, "Select a valid choice. nope is not one of the available choices."),
        ({"task": "os.system"}, "Select a valid choice. os.system is not one of the available"),
        ({"task": ""}, "Choose a task: click the Enqueue button of its row."),
    ],
)
def test_bad_input_is_shown_on_the_page_and_enqueues_nothing(fields, error):
    client = logged_in(staff("root", superuser=True))
    response = client.post(DEMO, enqueue_fields(**fields))
    assert response.status_code == 400
    page = html.unescape(response.content.decode())
    assert error in page
    assert "errornote" in page
    assert total_jobs() == 0


@pytest.mark.database
@pytest.mark.django_db
def test_redis_unreachable_is_an_error_on_the_page(settings):
    settings.JOBQUEUE = {**settings.JOBQUEUE, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    client = logged_in(staff("root", superuser=True))
    response = client.post(DEMO, enqueue_fields(count="3"))
    assert response.status_code == 400
    assert "Nothing was enqueued: " in response.content.decode()


# -- the demo page in a browser ----------------------------------------------------------------

SHOTS = Path("/tmp/shots")


def layout_problems(page) -> list[str]:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    return [f"the page is {overflow} px wider than the window"] if overflow > 1 else []


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_demo_page_in_a_browser_enqueues_and_shows_the_job_running(
    start_demo, redis_url, keyspace
):
    """Fill the form, click a task's Enqueue, follow the link to the job's page and see it run
    live; screenshots at 1400 and 800 px, light and dark, in /tmp/shots/demo-*.png."""
    from playwright.sync_api import expect, sync_playwright

    from tests.browser import browser_or_skip, launch

    chromium = browser_or_skip()
    demo = start_demo(JOBQUEUE_REDIS_URL=redis_url, JOBQUEUE_PREFIX=keyspace.prefix)
    demo.wait_for_admin()
    demo.wait_for_output("Started a worker")
    SHOTS.mkdir(exist_ok=True)
    problems = []
    with sync_playwright() as playwright:
        browser = launch(playwright, chromium)
        for scheme in ("light", "dark"):
            context = browser.new_context(color_scheme=scheme)
            page = context.new_page()
            page.goto(f"{demo.base}/admin/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", "admin")
            page.click("input[type=submit]")
            page.click("#demo-link")  # the header's link
            page.wait_for_url(f"**{DEMO}")
            for width in (1400, 800):
                page.set_viewport_size({"width": width, "height": 900})
                problems += [f"{width} px {scheme}: {p}" for p in layout_problems(page)]
                page.screenshot(
                    path=str(SHOTS / f"demo-page-{width}-{scheme}.png"), full_page=True
                )
            if scheme == "dark":
                context.close()
                continue
            page.set_viewport_size({"width": 1400, "height": 900})
            page.fill("#id_count", "2")
            page.fill("#id_priority", "5")
            page.press("#id_count", "Enter")  # Enter alone enqueues nothing: no task chosen
            page.wait_for_timeout(500)
            expect(page.locator(".messagelist, .errornote")).to_have_count(0)
            page.click("#demo-build_report button")
            message = page.locator(".messagelist .success")
            expect(message).to_contain_text("Enqueued 2 jobs of build_report on the queue reports")
            expect(page.locator("#id_count")).to_have_value("2")  # kept for the next click
            page.screenshot(path=str(SHOTS / "demo-enqueued.png"), full_page=True)
            message.locator("a code").first.click()
            expect(page.locator("#jq-live")).to_have_text("Live", timeout=15_000)
            expect(page.locator("#jq-status")).to_have_text("succeeded", timeout=60_000)
            expect(page.locator("#jq-progress")).to_contain_text("100 / 100")
            expect(page.locator("#jq-logs")).to_contain_text("Report ready: 100 rows")
            page.screenshot(path=str(SHOTS / "demo-job.png"), full_page=True)
            page.goto(demo.base + DEMO)
            page.fill("#id_count", "5000")
            page.click("#demo-add button")
            expect(page.locator(".errornote")).to_contain_text("Nothing was enqueued")
            expect(page.locator(".errorlist")).to_contain_text("less than or equal to 1000")
            page.screenshot(path=str(SHOTS / "demo-error.png"), full_page=True)
            context.close()
        browser.close()
    assert not problems, problems
    assert api.counts("reports")["succeeded"] >= 2


def test_the_missing_redis_line_never_shows_its_password(settings):
    from io import StringIO

    from project.management.commands.demo import Command

    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    settings.JOBQUEUE = {**settings.JOBQUEUE, "REDIS_URL": url}
    out = StringIO()
    command = Command(stdout=out)
    assert command.redis_problem() is not None
    assert command.replace_missing_redis("Connection refused", allow=False) is None
    said = out.getvalue()
    assert said.startswith("Redis is not reachable at redis://user:***@127.0.0.1:")
    assert "s3cret" not in said


def test_a_private_redis_that_does_not_start_is_said_in_the_same_line(
    settings, tmp_path, monkeypatch
):
    from io import StringIO

    from project.management.commands.demo import Command

    fake = tmp_path / "bin" / "redis-server"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'FATAL CONFIG FILE ERROR: this redis-server is broken'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    settings.JOBQUEUE = {**settings.JOBQUEUE, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    out = StringIO()
    assert Command(stdout=out).replace_missing_redis("Connection refused", allow=True) is None
    [line] = out.getvalue().splitlines()
    assert (
        "(Connection refused; a private redis-server did not start either: FATAL CONFIG FILE "
        f"ERROR: this redis-server is broken ({fake})): start Redis (redis-server), or set "
        "JOBQUEUE_REDIS_URL"
    ) in line
    assert not any(temporary.iterdir())  # its directory removed
