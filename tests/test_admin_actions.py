"""The admin's actions on jobs, queues and schedules, against a real Redis and database: Redis
unreachable, malformed filters, queue names hostile to URLs, every row matching a filter,
permissions without the view permission, and the schedules list right after a change."""

import html
import socket

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.contrib.messages import ERROR
from django.urls import reverse

from jobqueue import api
from jobqueue.conf import get_engine
from jobqueue.engine import JobState
from jobqueue.models import Job, Schedule
from tests import sample_tasks as t
from tests.test_admin import client_for, fail, mirror, user

pytestmark = [pytest.mark.database, pytest.mark.django_db]

JOBS = "admin:jobqueue_job_changelist"
QUEUES = "admin:jobqueue_queue_changelist"
SCHEDULES = "admin:jobqueue_schedule_changelist"


def job_act(action):
    return reverse("admin:jobqueue_job_act", args=[action])


def queue_act(name, action):
    return reverse("admin:jobqueue_queue_act", args=[quote(name), action])


def schedule_act(action):
    return reverse("admin:jobqueue_schedule_act", args=[action])


def sent_back(c, method, url, data=None):
    """Make the request, which must redirect; follow it (so its messages are shown, and so
    not carried into the next request) and return where it led and the messages shown."""
    response = getattr(c, method)(url, data or {}, follow=True)
    assert response.status_code == 200, response.status_code
    ((where, status),) = response.redirect_chain
    assert status == 302
    return where, [(m.level, m.message) for m in response.context["messages"]]


def superuser():
    return User.objects.create_superuser("root", "r@example.com", "pw")


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def take_redis_away(settings):
    """Call it to point jobqueue at a port where no Redis listens (the settings change resets
    the engine); it returns the address the error messages must name. The test's ``engine``
    fixture still reaches the real Redis."""

    def away():
        port = closed_port()
        settings.JOBQUEUE = {**settings.JOBQUEUE, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        return f"127.0.0.1:{port}"

    return away


def with_schedule(settings):
    settings.JOBQUEUE = {
        **settings.JOBQUEUE,
        "SCHEDULES": {"hourly": {"task": "tests.sample_tasks.add", "every": 3600, "args": [1, 2]}},
    }


# -- 1. Redis unreachable: an error message and back, never a 500, nothing logged ------------


def assert_refused(sent, where, address, what):
    url, shown = sent
    assert url == reverse(where), url
    ((level, message),) = shown  # the error alone: nothing said to be done
    assert level == ERROR
    assert what in message and address in message and "could not be reached" in message


def test_job_actions_with_redis_down_say_so(take_redis_away, engine):
    failed = t.boom.enqueue().id
    fail(failed)
    queued = t.add.enqueue(1, 1).id
    mirror()
    c = client_for(superuser())
    address = take_redis_away()
    for action, job_id, verb in [
        ("retry", failed, "Retry"),
        ("cancel", queued, "Cancel"),
        ("delete", queued, "Delete"),
    ]:
        assert c.get(job_act(action), {"ids": job_id}).status_code == 200  # the database only
        done = sent_back(c, "post", job_act(action), {"ids": [job_id]})
        assert_refused(done, JOBS, address, verb)
        matching = {"matching": "1", "filters": "queue=default"}
        url, shown = sent_back(c, "post", job_act(action), matching)
        assert url == reverse(JOBS) + "?queue=default" and [s[0] for s in shown] == [ERROR]
    assert not LogEntry.objects.exists()
    assert engine.get(failed).state is JobState.FAILED
    assert engine.get(queued).state is JobState.QUEUED


def test_queue_actions_with_redis_down_say_so(take_redis_away, engine):
    t.add.enqueue(1, 1)
    mirror()
    c = client_for(superuser())
    address = take_redis_away()
    assert c.get(reverse(QUEUES)).status_code == 200  # the dashboard shows the mirror's rows
    for action, data in [("pause", {}), ("resume", {}), ("purge", {"state": "queued"})]:
        url = queue_act("default", action)
        assert_refused(sent_back(c, "get", url, data), QUEUES, address, "default")
        assert_refused(sent_back(c, "post", url, data), QUEUES, address, "default")
    assert not LogEntry.objects.exists()
    assert engine.counts("default")[JobState.QUEUED] == 1
    assert not engine.queue_info("default").paused


def test_schedule_actions_with_redis_down_say_so(settings, take_redis_away, engine):
    with_schedule(settings)
    mirror()
    c = client_for(superuser())
    address = take_redis_away()
    for action in ("pause", "resume", "run"):
        assert c.get(schedule_act(action), {"ids": "hourly"}).status_code == 200
        done = sent_back(c, "post", schedule_act(action), {"ids": ["hourly"]})
        assert_refused(done, SCHEDULES, address, "hourly")
    assert not LogEntry.objects.exists()
    assert engine.schedules.get(["hourly"])["hourly"] == {}
    assert Schedule.objects.get().paused is False


# -- 2. a malformed filter: an error message and back to the job list -------------------------

BAD_FILTERS = [
    "enqueued_at__gte=not-a-date",
    "status=bogus",
    "nosuchfield=1",
    "transitions__status=queued",  # a relation the list does not filter by
    "status__exact=queued&status__exact=nope",
]


@pytest.mark.parametrize("filters", BAD_FILTERS)
def test_a_bad_filter_is_an_error_message_not_a_500(filters):
    t.add.enqueue(1, 1)
    mirror()
    c = client_for(superuser())
    data = {"matching": "1", "filters": filters}
    for method in ("get", "post"):
        url, shown = sent_back(c, method, job_act("cancel"), data)
        assert url == reverse(JOBS)
        ((level, message),) = shown
        assert level == ERROR and "filter" in message and "nothing was changed" in message
    assert not LogEntry.objects.exists()
    assert get_engine().counts("default")[JobState.QUEUED] == 1


# -- 3. queue names hostile to URLs -----------------------------------------------------------

ODD_NAMES = ["a_b.c-d", "_3A_2F", "-", "x" * 64]
HOSTILE_NAMES = ["a/b", "what?x=1#frag", "100%", "with space", "ünïcödé", "a/../b", "<b>x</b>"]


def test_queue_names_with_url_characters_round_trip():
    for name in ODD_NAMES:  # not among the test backend's QUEUES: through the engine
        get_engine().enqueue(t.add.module_path, (1, 1), queue=name)
    mirror()
    c = client_for(superuser())
    page = c.get(reverse(QUEUES)).content.decode()
    for name in ODD_NAMES:
        for action in ("pause", "purge"):
            assert html.escape(queue_act(name, action)) in page, (name, action)
        assert c.get(queue_act(name, "pause")).status_code == 200
        assert c.post(queue_act(name, "pause")).status_code == 302
        assert get_engine().queue_info(name).paused
        assert c.post(queue_act(name, "resume")).status_code == 302
        assert not get_engine().queue_info(name).paused
        purge = c.get(queue_act(name, "purge"), {"state": "queued"})
        assert purge.status_code == 200 and purge.context["count"] == 1
        c.post(queue_act(name, "purge"), {"state": "queued"})
        assert get_engine().counts(name)[JobState.QUEUED] == 0
        assert LogEntry.objects.filter(object_id=name).count() == 3


def test_queue_names_the_engine_refuses_render_and_are_refused_politely():
    """Names no enqueue can create (the engine allows A-Z a-z 0-9 _ . -), found in Redis's
    set of queues anyway (another program, an older version): the dashboard still renders,
    and the actions say what is wrong instead of failing."""
    t.add.enqueue(1, 1)
    mirror()
    engine = get_engine()
    engine.client.sadd(engine.keys.queues, *HOSTILE_NAMES)
    c = client_for(superuser())
    response = c.get(reverse(QUEUES))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    for name in HOSTILE_NAMES:
        assert html.escape(queue_act(name, "pause")) in page, name
        for method, action, data in [
            ("get", "pause", {}),
            ("post", "pause", {}),
            ("get", "purge", {"state": "queued"}),
        ]:
            url, shown = sent_back(c, method, queue_act(name, action), data)
            assert url == reverse(QUEUES)
            ((level, message),) = shown  # the name arrived whole, and is refused as such
            assert level == ERROR and f"Queue name {name!r} is invalid" in message, message
    shown = c.post(queue_act("<b>x</b>", "pause"), follow=True).content.decode()
    assert "<b>x</b>" not in shown and "Queue name &#x27;&lt;b&gt;x&lt;/b&gt;&#x27;" in shown
    assert not LogEntry.objects.exists()


# -- 4. every row matching the filter, and the confirmation of a selection --------------------


def changelist_action(c, action, query, **data):
    """POST the job list's action form, as the browser does (CSRF token included)."""
    token = str(c.get(reverse(JOBS) + query).context["csrf_token"])
    form = {"action": action, "index": "0", "csrfmiddlewaretoken": token, **data}
    return c.post(reverse(JOBS) + query, form)


def test_select_all_across_pages_confirms_everything_matching():
    low = api.enqueue_many(t.add.using(queue_name="low"), [(i, i) for i in range(3000)])
    high = t.add.using(queue_name="high").enqueue(0, 0)
    mirror()
    assert Job.objects.filter(queue="low").count() == 3000
    c = client_for(user("bulk", "view_job", "cancel_job"), csrf=True)
    page = [r.id for r in low[:50]]
    confirm = changelist_action(
        c, "cancel_selected", "?queue=low", select_across="1", _selected_action=page
    )
    assert confirm.status_code == 200, confirm.status_code
    assert confirm.context["count"] == 3000 and confirm.context["matching"]
    body = confirm.content.decode()
    assert 'name="matching" value="1"' in body and 'value="queue=low"' in body
    assert body.count('name="ids"') == 0  # not one input per job
    assert get_engine().counts("low")[JobState.QUEUED] == 3000  # nothing changed yet
    token = str(confirm.context["csrf_token"])
    done = c.post(
        job_act("cancel"),
        {"matching": "1", "filters": "queue=low", "csrfmiddlewaretoken": token},
    )
    assert done.status_code == 302 and done["Location"] == reverse(JOBS) + "?queue=low"
    assert get_engine().counts("low")[JobState.CANCELED] == 3000
    assert get_engine().get(high.id).state is JobState.QUEUED
    assert LogEntry.objects.count() == 3000


def test_a_selection_is_confirmed_on_a_page_then_done_on_post():
    jobs = [t.add.enqueue(i, i) for i in range(3)]
    mirror()
    c = client_for(user("ops", "view_job", "cancel_job"), csrf=True)
    chosen = [jobs[0].id, jobs[1].id]
    confirm = changelist_action(c, "cancel_selected", "?status=queued", _selected_action=chosen)
    assert confirm.status_code == 200 and confirm.context["count"] == 2
    body = confirm.content.decode()
    assert f'action="{job_act("cancel")}"' in body
    assert body.count('name="ids"') == 2 and "Yes, cancel 2 jobs" in body
    assert all(get_engine().get(j.id).state is JobState.QUEUED for j in jobs)
    assert c.post(job_act("cancel"), {"ids": chosen}).status_code == 403  # CSRF
    token = str(confirm.context["csrf_token"])
    done = c.post(
        job_act("cancel"),
        {"ids": chosen, "filters": "status=queued", "csrfmiddlewaretoken": token},
    )
    assert done.status_code == 302 and done["Location"] == reverse(JOBS) + "?status=queued"
    assert [get_engine().get(j.id).state for j in jobs] == [
        JobState.CANCELED,
        JobState.CANCELED,
        JobState.QUEUED,
    ]
    assert set(LogEntry.objects.values_list("object_id", flat=True)) == set(chosen)


def test_schedules_selection_is_confirmed_on_a_page(settings):
    with_schedule(settings)
    mirror()
    c = client_for(user("sched", "view_schedule", "run_schedule"))
    confirm = c.post(
        reverse(SCHEDULES),
        {"action": "pause_schedules", "index": "0", "_selected_action": "hourly"},
    )
    assert confirm.status_code == 200 and "hourly" in confirm.content.decode()
    assert f'action="{schedule_act("pause")}"' in confirm.content.decode()
    assert "paused" not in get_engine().schedules.get(["hourly"])["hourly"]


# -- 5. an action permission without the view permission shows nothing -----------------------


def test_action_permission_without_view_permission_is_refused(settings):
    with_schedule(settings)
    job_id = t.boom.enqueue().id
    fail(job_id)
    mirror()
    jobs = client_for(user("blind-jobs", "retry_job", "cancel_job", "delete_job"))
    for action in ("retry", "cancel", "delete"):
        assert jobs.get(job_act(action), {"ids": job_id}).status_code == 403
        assert jobs.get(job_act(action), {"matching": "1", "filters": ""}).status_code == 403
        assert jobs.post(job_act(action), {"ids": [job_id]}).status_code == 403
    assert get_engine().get(job_id).state is JobState.FAILED
    queues = client_for(user("blind-queues", "pause_queue", "purge_queue"))
    for action, data in [("pause", {}), ("resume", {}), ("purge", {"state": "failed"})]:
        assert queues.get(queue_act("default", action), data).status_code == 403
        assert queues.post(queue_act("default", action), data).status_code == 403
    assert not get_engine().queue_info("default").paused
    schedules = client_for(user("blind-schedules", "run_schedule"))
    for action in ("pause", "resume", "run"):
        assert schedules.get(schedule_act(action), {"ids": "hourly"}).status_code == 403
        assert schedules.post(schedule_act(action), {"ids": ["hourly"]}).status_code == 403
    assert get_engine().schedules.get(["hourly"])["hourly"] == {}
    assert not LogEntry.objects.exists()


# -- 6. the schedules list right after a change ------------------------------------------------


def test_a_schedule_copy_read_before_a_change_never_overwrites_it(settings, engine):
    from jobqueue.mirror.snapshot import write_schedules
    from jobqueue.schedules import all_schedules

    with_schedule(settings)
    mirror()
    stale = engine.schedules.get(["hourly"])  # a mirror reads, then is slow to write
    engine.schedules.set("hourly", paused="1")
    fresh = engine.schedules.get(["hourly"])
    assert int(fresh["hourly"]["v"]) > int(stale["hourly"].get("v", 0))
    write_schedules(all_schedules(), fresh)
    write_schedules(all_schedules(), stale)
    row = Schedule.objects.get()
    assert row.paused and row.state_version == int(fresh["hourly"]["v"])
    write_schedules(all_schedules(), fresh)  # the same version again: the same row
    assert Schedule.objects.get().paused
    engine.schedules.set("hourly", paused=None)
    mirror()
    assert not Schedule.objects.get().paused


def test_schedules_list_shows_the_change_at_once_and_the_mirror_keeps_it(settings):
    from jobqueue.mirror.snapshot import write_schedules
    from jobqueue.schedules import all_schedules

    with_schedule(settings)
    mirror()
    c = client_for(user("sched", "view_schedule", "run_schedule"))
    before = get_engine().schedules.get(["hourly"])  # what a mirror about to write has read
    page = c.post(schedule_act("pause"), {"ids": ["hourly"]}, follow=True)
    assert 'jq-badge jq-paused">paused' in page.content.decode()
    assert Schedule.objects.get().paused
    write_schedules(all_schedules(), before)  # that mirror writes late: ignored
    assert Schedule.objects.get().paused
    mirror()
    assert Schedule.objects.get().paused
    page = c.post(schedule_act("resume"), {"ids": ["hourly"]}, follow=True)
    assert 'jq-badge jq-active">active' in page.content.decode()
    assert not Schedule.objects.get().paused


def test_last_run_says_never_until_the_schedule_runs(settings):
    from jobqueue.schedules import Scheduler, all_schedules

    with_schedule(settings)
    assert Scheduler(get_engine(), all_schedules()).tick() == []  # first sight: no run
    mirror()
    c = client_for(user("sched", "view_schedule", "run_schedule"))
    changelist = c.get(reverse(SCHEDULES))
    (row,) = changelist.context["cl"].result_list
    assert changelist.context["cl"].model_admin.last(row) == "never"
    c.post(schedule_act("run"), {"ids": ["hourly"]})
    mirror()
    changelist = c.get(reverse(SCHEDULES))
    (row,) = changelist.context["cl"].result_list
    last = changelist.context["cl"].model_admin.last(row)
    assert last != "never" and last.endswith("ago"), last


def test_a_schedule_interval_reads_in_words():
    from jobqueue.admin.schedules import every_words

    assert [every_words(s) for s in (7200, 3600, 90, 60, 1, 0.5, 86400 * 2)] == [
        "every 2 hours",
        "every hour",
        "every 90 seconds",
        "every minute",
        "every second",
        "every 0.5 seconds",
        "every 2 days",
    ]
