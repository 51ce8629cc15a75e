import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from jobqueue.conf import OPTIONS, jobqueue_settings


def test_defaults_fill_missing_keys(settings):
    settings.JOBQUEUE = {}
    assert jobqueue_settings.PREFIX == "jq"
    assert jobqueue_settings.LEASE_SECONDS == OPTIONS["LEASE_SECONDS"].default
    assert set(jobqueue_settings.as_dict()) == set(OPTIONS)


def test_default_url_comes_from_environment(settings, monkeypatch):
    settings.JOBQUEUE = {}
    monkeypatch.setenv("JOBQUEUE_REDIS_URL", "redis://10.1.2.3:6390/4")
    jobqueue_settings.reset()
    assert jobqueue_settings.REDIS_URL == "redis://10.1.2.3:6390/4"
    monkeypatch.delenv("JOBQUEUE_REDIS_URL")
    jobqueue_settings.reset()
    assert jobqueue_settings.REDIS_URL == "redis://127.0.0.1:6379/0"


def test_reset_on_override_settings(settings):
    settings.JOBQUEUE = {"PREFIX": "before"}
    assert jobqueue_settings.PREFIX == "before"
    with override_settings(JOBQUEUE={"PREFIX": "inside"}):
        assert jobqueue_settings.PREFIX == "inside"
    assert jobqueue_settings.PREFIX == "before"


def test_settings_are_read_lazily(settings):
    settings.JOBQUEUE = {"PREFIX": "lazy"}
    assert jobqueue_settings._values is None
    assert jobqueue_settings.PREFIX == "lazy"
    assert jobqueue_settings._values is not None


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"PREFIX": "has space"}, "'has space'"),
        ({"LEASE_SECONDS": -1}, "LEASE_SECONDS"),
        ({"NOPE": 1}, "'NOPE'"),
        (["not", "a", "dict"], "must be a dict"),
    ],
)
def test_malformed_settings_raise_naming_the_value(settings, value, named):
    settings.JOBQUEUE = value
    with pytest.raises(ImproperlyConfigured, match=named):
        jobqueue_settings.PREFIX  # noqa: B018


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no setting 'MISSING'"):
        jobqueue_settings.MISSING  # noqa: B018


def test_every_setting_and_check_id_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "settings.md").read_text()
    assert [key for key in OPTIONS if f"`{key}`" not in doc] == []
    ids = [
        "jobqueue.E001",
        "jobqueue.E002",
        "jobqueue.E003",
        "jobqueue.E010",
        "jobqueue.E011",
        "jobqueue.E012",
        "jobqueue.W001",
    ]
    assert [i for i in ids if f"`{i}`" not in doc] == []
