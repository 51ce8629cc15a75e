import pytest
from django.core import checks

from jobqueue.checks import check_app_order, check_settings


def ids(messages):
    return [m.id for m in messages]


def test_good_configuration_is_silent(settings):
    settings.JOBQUEUE = {"REDIS_URL": "redis://127.0.0.1:6379/0", "PREFIX": "site1"}
    assert check_settings() == []
    assert check_app_order() == []


@pytest.mark.django_db  # Django 6.1's model checks ask the database what it supports
def test_full_run_of_the_check_framework_is_clean():
    assert [m for m in checks.run_checks() if m.id.startswith("jobqueue.")] == []


@pytest.mark.parametrize("value", [["a list"], "a string", 42])
def test_e001_not_a_dict(settings, value):
    settings.JOBQUEUE = value
    messages = check_settings()
    assert ids(messages) == ["jobqueue.E001"]
    assert "must be a dict" in messages[0].msg


def test_e001_unknown_key(settings):
    settings.JOBQUEUE = {"REDIS_URL": "redis://localhost:6379/0", "PERFIX": "x"}
    messages = check_settings()
    assert ids(messages) == ["jobqueue.E001"]
    assert "'PERFIX'" in messages[0].msg
    assert messages[0].level == checks.ERROR


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("REDIS_URL", "http://localhost:6379"),
        ("REDIS_URL", 6379),
        ("PREFIX", ""),
        ("PREFIX", "a{b}"),
        ("PREFIX", "x" * 33),
        ("LEASE_SECONDS", 0),
        ("LEASE_SECONDS", "30"),
        ("RESULT_TTL", 1.5),
        ("MAX_STALLS", True),
        ("TASK_MODULES", "myapp.tasks"),
        ("MIRROR", "yes"),
        ("CACHE_ALIAS", ""),
        ("ENQUEUE_SPIN_MICROSECONDS", -1),
        ("ENQUEUE_SPIN_MICROSECONDS", 0.5),
    ],
)
def test_e002_bad_value_names_key_and_value(settings, key, value):
    settings.JOBQUEUE = {key: value}
    messages = check_settings()
    assert ids(messages) == ["jobqueue.E002"]
    assert repr(key) in messages[0].msg and repr(value) in messages[0].msg
    assert messages[0].hint


def test_w001_channels_before_jobqueue(settings):
    apps = [a for a in settings.INSTALLED_APPS if a not in ("jobqueue", "channels")]
    settings.INSTALLED_APPS = [*apps, "channels", "jobqueue"]
    messages = check_app_order()
    assert ids(messages) == ["jobqueue.W001"]
    assert messages[0].level == checks.WARNING
    assert "Move 'jobqueue' above 'channels'" in messages[0].hint


def test_w001_silent_when_order_is_right_or_channels_absent(settings):
    apps = [a for a in settings.INSTALLED_APPS if a not in ("jobqueue", "channels")]
    settings.INSTALLED_APPS = [*apps, "jobqueue.apps.JobqueueConfig", "channels"]
    assert check_app_order() == []
    settings.INSTALLED_APPS = [*apps, "jobqueue"]
    assert check_app_order() == []


# -- the backend's checks, run by `manage.py check` on every stack --------------------------------

BAD_BACKEND_SETTINGS = """
from tests.settings import *  # noqa: F403
INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "django_tasks"] + {extra!r}
TASKS = {{
    "default": {{
        "BACKEND": "jobqueue.backends.RedisBackend",
        "QUEUES": ["default", "bad queue"],
        "OPTIONS": {{"retries": 2}},
    }}
}}
"""


def framework_apps() -> list[list[str]]:
    """Without the task framework's app, and (Django 5.2) with the backport's app, which
    registers a check of every backend too."""
    try:
        import django_tasks  # noqa: F401
    except ImportError:
        return [[]]
    return [[], ["django_tasks"]]


@pytest.mark.parametrize("extra", framework_apps())
def test_manage_py_check_reports_backend_errors_once_whatever_is_installed(tmp_path, extra):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    (tmp_path / "bad_backend_settings.py").write_text(BAD_BACKEND_SETTINGS.format(extra=extra))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bad_backend_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), ROOT]),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("(jobqueue.E011)") == 1, result.stderr
    assert "TASKS['default']['OPTIONS']['retries'] is not an option" in result.stderr
    assert result.stderr.count("(jobqueue.E012)") == 1, result.stderr
    assert "invalid queue name 'bad queue'" in result.stderr
