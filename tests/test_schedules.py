"""Periodic schedules: cron parsing, ticks, and exactly one job per tick across workers."""

import itertools
import json
import signal
import time
from datetime import UTC, datetime

import pytest

from jobqueue.checks import check_schedules
from jobqueue.conf import get_engine
from jobqueue.cron import Cron, CronError
from jobqueue.schedules import Schedule, Scheduler, all_schedules, periodic
from tests import sample_tasks as t
from tests.conftest import wait_for


def at(text):
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("*/15 * * * *", "2026-01-01T10:07:30", "2026-01-01T10:15:00"),
        ("0 3 * * *", "2026-01-01T03:00:00", "2026-01-02T03:00:00"),
        ("30 9 * * mon-fri", "2026-11-27T10:00:00", "2026-11-30T09:30:00"),  # Fri -> Mon
        ("0 0 1 jan *", "2026-06-01T00:00:00", "2027-01-01T00:00:00"),
        ("0 12 13 * 5", "2026-11-24T00:00:00", "2026-11-27T12:00:00"),  # Friday OR the 13th
        ("@hourly", "2026-01-01T10:59:59", "2026-01-01T11:00:00"),
        ("5,10 */6 * * 7", "2026-11-28T23:00:00", "2026-11-29T00:05:00"),  # 7 is Sunday
        ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
    ],
)
def test_cron_next(expr, after, expected):
    assert Cron(expr).next_after(at(after)) == at(expected)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("* * * *", "must have 5 fields"),
        ("60 * * * *", "outside the minute range"),
        ("*/0 * * * *", "step '0'"),
        ("* * * foo *", "'foo' is not a valid month"),
        ("5-1 * * * *", "outside the minute range"),
        ("0 0 31 2 *", "never matches"),
    ],
)
def test_cron_errors_name_the_bad_part(expr, message):
    with pytest.raises(CronError, match=message):
        Cron(expr).next_after(at("2026-01-01T00:00:00"))


def test_interval_ticks_and_latest_missed_tick():
    s = Schedule(name="s", task="tests.sample_tasks.add", every=60)
    assert s.next_tick(at("2026-01-01T10:00:30")) == at("2026-01-01T10:01:00")
    # workers were down from 10:00 to 10:05: one run, for the latest missed tick
    assert s.latest_tick(at("2026-01-01T10:00:00"), at("2026-01-01T10:05:30")) == at(
        "2026-01-01T10:05:00"
    )
    assert s.latest_tick(at("2026-01-01T10:00:00"), at("2026-01-01T10:00:59")) is None
    c = Schedule(name="c", task="x", cron="*/10 * * * *")
    assert c.latest_tick(at("2026-01-01T10:00:00"), at("2026-01-01T10:45:00")) == at(
        "2026-01-01T10:40:00"
    )
    assert s.job_id(at("2026-01-01T10:05:00")) == s.job_id(at("2026-01-01T10:05:00"))
    assert s.job_id(at("2026-01-01T10:05:00")) != s.job_id(at("2026-01-01T10:06:00"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"task": "x"}, "exactly one of 'cron' and 'every'"),
        ({"task": "x", "cron": "* * * * *", "every": 5}, "exactly one of"),
        ({"task": "x", "cron": "bad"}, "must have 5 fields"),
        ({"task": "x", "every": -1}, "positive number of seconds"),
        ({"task": "x", "every": 5, "timezone": "Mars/Base"}, "timezone 'Mars/Base' is unknown"),
        ({"task": "x", "every": 5, "queue": "a b"}, "not a valid queue name"),
        ({"cron": "* * * * *"}, "must be a dict with a 'task' path"),
        ({"task": "x", "every": 5, "retries": 1}, "unknown keys"),
    ],
)
def test_e003_malformed_schedules(settings, spec, message):
    settings.JOBQUEUE = {**settings.JOBQUEUE, "SCHEDULES": {"s1": spec}}
    messages = check_schedules()
    assert [m.id for m in messages] == ["jobqueue.E003"]
    assert message in messages[0].msg


def test_schedules_from_settings_and_decorator(settings, monkeypatch):
    from jobqueue import schedules as module

    monkeypatch.setattr(module, "_declared", {})
    settings.JOBQUEUE = {
        **settings.JOBQUEUE,
        "SCHEDULES": {
            "from-settings": {"task": "tests.sample_tasks.add", "every": 30, "args": [1, 2]}
        },
    }
    periodic(cron="0 * * * *", name="decorated")(t.add)
    schedules = all_schedules()
    assert schedules["from-settings"].every == 30
    assert (
        schedules["decorated"].cron == "0 * * * *"
        and schedules["decorated"].task == t.add.module_path
    )
    assert check_schedules() == []


def test_scheduler_fires_once_per_tick_and_skips_paused(settings):
    engine = get_engine()
    schedule = Schedule(name="fast", task="tests.sample_tasks.add", every=1, args=[1, 1])
    a, b = Scheduler(engine, {"fast": schedule}), Scheduler(engine, {"fast": schedule})
    assert a.tick() == []  # first sight: starts counting from now
    time.sleep(1.1)
    fired_a, fired_b = a.tick(), b.tick()
    assert len(fired_a) == 1 and fired_b in ([], fired_a)  # the same tick, one job
    engine.schedules.set("fast", paused="1")
    time.sleep(1.1)
    assert a.tick() == []
    engine.schedules.set("fast", paused=None)
    time.sleep(1.1)
    assert len(a.tick()) == 1


@pytest.mark.slow
def test_a_schedule_with_three_workers_fires_once_per_tick(start_worker):
    schedules = json.dumps(
        {"tick": {"task": "tests.sample_tasks.log_order", "every": 1, "args": ["tick"]}}
    )
    workers = [start_worker("-c", "1", JOBQUEUE_TEST_SCHEDULES=schedules) for _ in range(3)]
    began = time.monotonic()
    engine = get_engine()
    # Counted from when all three run (a slow machine takes seconds to start them): each
    # would fire every tick if they did not agree.
    wait_for(
        lambda: all("worker_started" in worker.output() for worker in workers),
        timeout=60,
        message="the three workers never all started",
    )
    time.sleep(4.5)
    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait(15) == 0, worker.output()
    jobs = engine.reads.jobs("default", "succeeded", limit=100)
    ticks = sorted(job.enqueued_at for job in jobs)
    assert 4 <= len(ticks) <= time.monotonic() - began + 1, ticks
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ticks)]
    assert min(gaps) > 0.5, gaps  # never two jobs for one tick
    assert len(t.recorded("order")) == len(jobs)  # each ran once
    assert all(job.id.split(":")[1].startswith("s") for job in jobs)
