"""A real browser on the demo's admin, for the browser tests: Debian's Chromium driven by
Playwright, against ``manage.py runserver`` (daphne: HTTP and the live pages' websocket) and a
real ``runworker`` with its mirror. Screenshots are kept in ``test-screenshots/``."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, worker_env
from tests.redis_server import free_port

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(ROOT) / "test-screenshots"
USER, PASSWORD = "live", "live-pw"


def browser_or_skip() -> str:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if os.environ.get("JOBQUEUE_REQUIRE_BROWSER"):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (CI does).")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True
    )


class DemoSite:
    """The demo's admin served over ASGI, a worker (``worker_args``) with its mirror, and a
    superuser USER. ``base`` is its URL; ``stop_server`` and ``start_server`` take the ASGI
    server down and up again (same port, same database); ``stop_worker`` and ``start_worker``
    the worker and its mirror."""

    def __init__(self, tmp_path: Path, keyspace: Any, worker_args: tuple[str, ...], **env: str):
        self.tmp_path = tmp_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = worker_env(
            keyspace,
            DATABASE_URL=f"sqlite:///{tmp_path / 'live.sqlite3'}",
            JOBQUEUE_MIRROR="1",
            DJANGO_SUPERUSER_PASSWORD=PASSWORD,
            PYTHONWARNINGS="ignore",
            **env,
        )
        manage(self.env, "migrate", "--noinput")
        manage(self.env, "createsuperuser", "--noinput", "--username", USER, "--email", "l@x.org")
        self.log = open(tmp_path / "server.log", "w")
        self.server: subprocess.Popen | None = None
        self.worker_args = worker_args
        self.worker: subprocess.Popen | None = None
        self.start_worker()
        self.start_server()

    def start_worker(self) -> None:
        self.worker = self.spawn("runworker", "-c", "2", *self.worker_args)

    def stop_worker(self) -> None:
        if self.worker is not None:
            stop(self.worker)
            self.worker = None

    def spawn(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def start_server(self) -> None:
        self.server = self.spawn("runserver", f"127.0.0.1:{self.port}", "--noreload")
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.base}/admin/login/", timeout=2).read()
                return
            except OSError:
                alive = self.server.poll() is None and time.monotonic() < deadline
                assert alive, (self.tmp_path / "server.log").read_text()
                time.sleep(0.3)

    def stop_server(self) -> None:
        if self.server is not None:
            stop(self.server)
            self.server = None

    def close(self) -> None:
        self.stop_worker()
        self.stop_server()
        self.log.close()


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def demo_site(
    tmp_path: Path, keyspace: Any, worker_args: tuple[str, ...] = (), **env: str
) -> Iterator[DemoSite]:
    site = DemoSite(tmp_path, keyspace, worker_args, **env)
    try:
        yield site
    finally:
        site.close()


def launch(playwright: Any, chromium: str) -> Any:
    return playwright.chromium.launch(
        executable_path=chromium,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


def log_in(page: Any, base: str, next_path: str = "/admin/") -> None:
    page.goto(f"{base}/admin/login/?next={next_path}")
    page.fill("#id_username", USER)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_path}")


def shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(path, SHOTS / path.name)
