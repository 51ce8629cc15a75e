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
