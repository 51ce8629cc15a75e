"""The README's first example works exactly as written."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"```(\w+)\n(.*?)\n```", text, re.S)


def test_the_task_in_the_readme_is_the_demo_sites():
    code = next(body for lang, body in blocks(section("Using jobqueue")) if "@task" in body)
    assert code in (ROOT / "project" / "tasks.py").read_text()


def test_the_readme_example_runs_as_written(run_worker):
    namespace: dict = {}
    steps = blocks(section("Using jobqueue"))
    ran_worker = False
    for lang, body in steps:
        if lang == "python" and "TASKS = {" in body:
            continue  # the setting: the test settings already have it
        if lang == "python" and "@task" in body:
            continue  # the task module: checked above, imported by the next block
        if lang == "python":
            exec(compile(body, "README.md", "exec"), namespace)
        elif lang == "sh":
            assert body == "python manage.py runworker --burst"
            result = run_worker("--burst")
            assert result.returncode == 0, result.stderr
            ran_worker = True
    assert ran_worker
    assert namespace["result"].return_value == 5


def test_the_readme_schedules_are_valid(settings):
    from jobqueue.checks import check_schedules

    text = (ROOT / "README.md").read_text().split("### Periodic schedules", 1)[1]
    code = next(body for lang, body in blocks(text) if lang == "python" and "SCHEDULES" in body)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    settings.JOBQUEUE = {**settings.JOBQUEUE, **namespace["JOBQUEUE"]}
    assert check_schedules() == []


def test_the_python_api_example_runs_as_written(start_worker):
    text = (ROOT / "README.md").read_text().split("### The Python API", 1)[1]
    [code] = [body for lang, body in blocks(text.split("\n### ", 1)[0]) if lang == "python"]
    start_worker("-c", "1")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["api"].counts("default")["succeeded"] == 3  # the last one deleted


def test_the_readme_asgi_routing_mounts_the_live_pages():
    from channels.routing import ProtocolTypeRouter

    text = (ROOT / "README.md").read_text().split("### Live admin pages", 1)[1]
    [code] = [body for lang, body in blocks(text.split("\n## ", 1)[0]) if lang == "python"]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    application = namespace["application"]
    assert isinstance(application, ProtocolTypeRouter)
    assert set(application.application_mapping) == {"http", "websocket"}
    demo = (ROOT / "project" / "asgi.py").read_text()
    assert code.replace("mysite.settings", "project.settings") in demo  # the demo mounts it so
