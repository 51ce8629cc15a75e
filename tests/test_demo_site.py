"""The README's promises about the demo site and CI, checked as written."""

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent


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


@pytest.mark.slow
def test_demo_command_serves_the_admin(tmp_path, redis_url, keyspace):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "JOBQUEUE_REDIS_URL": redis_url,
        "JOBQUEUE_PREFIX": keyspace.prefix,
        "PYTHONWARNINGS": "ignore",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        body = wait_for_http(f"http://127.0.0.1:{port}/admin/login/", process)
        assert b"jobqueue demo" in body
        assert b"csrfmiddlewaretoken" in body
        from jobqueue.conf import get_engine
        from project.tasks import add

        result = add.enqueue(20, 22)  # the demo's worker runs it
        assert get_engine().wait(result.id, timeout=60).result == 42
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode(errors="replace")
    assert "login admin/admin" in output
    assert "Started a worker" in output


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
