"""The admin with Django's test client: access, permissions, CSRF, escaping, actions through
the engine, and the pages (jobs, job detail, queues dashboard, workers, schedules)."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from jobqueue.conf import get_engine
from jobqueue.engine import JobState
from jobqueue.mirror import Mirror
from jobqueue.models import Job
from tests import sample_tasks as t

pytestmark = [pytest.mark.database, pytest.mark.django_db]

HOSTILE = ['<script>alert("x")</script>', '"><img src=x onerror=alert(1)>']


def mirror():
    m = Mirror(get_engine(), consumer="test")
    m.drain()
    m.snapshot()


def user(name, *perms, staff=True):
    u = User.objects.create_user(name, f"{name}@example.com", "pw", is_staff=staff)
    for codename in perms:
        u.user_permissions.add(Permission.objects.get(codename=codename))
    return User.objects.get(pk=u.pk)  # fresh permission cache


def client_for(u, csrf=False):
    c = Client(enforce_csrf_checks=csrf)
    c.force_login(u)
    return c


def job_url(job_id, action="change"):
    return reverse(f"admin:jobqueue_job_{action}", args=[quote(job_id)])


def act_url(action, *ids):
    url = reverse("admin:jobqueue_job_act", args=[action])
    return url + "?" + "&".join(f"ids={i}" for i in ids) if ids else url


def fail(job_id):
    engine = get_engine()
    claimed = engine.worker_protocol().claim(job_id.split(":")[0], "w").jobs[0]
    assert claimed.job_id == job_id
    engine.worker_protocol().fail(
        job_id, claimed.token, "builtins.RuntimeError", "Traceback: boom", retry=False
    )


PAGES = [
    lambda: reverse("admin:jobqueue_job_changelist"),
    lambda: reverse("admin:jobqueue_queue_changelist"),
    lambda: reverse("admin:jobqueue_worker_changelist"),
    lambda: reverse("admin:jobqueue_schedule_changelist"),
    lambda: act_url("retry", "default:x"),
    lambda: reverse("admin:jobqueue_queue_act", args=["default", "pause"]),
]


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_and_non_staff_are_sent_to_login(page):
    url = page()
    assert Client().get(url)["Location"].startswith("/admin/login/")
    non_staff = client_for(user("plain", staff=False))
    assert non_staff.get(url)["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("page", PAGES)
def test_staff_without_permission_is_refused(page):
    t.add.enqueue(1, 1)
    assert client_for(user("nobody")).get(page()).status_code == 403


def test_view_permission_gives_a_read_only_ui():
    job = t.add.enqueue(1, 2)
    fail_id = t.boom.using(queue_name="low").enqueue().id
    fail(fail_id)
    mirror()
    c = client_for(user("viewer", "view_job", "view_queue", "view_worker", "view_schedule"))
    listing = c.get(reverse("admin:jobqueue_job_changelist")).content.decode()
    assert job.id[:16] in listing
    assert "Retry all matching" not in listing and 'name="action"' not in listing
    detail = c.get(job_url(fail_id)).content.decode()
    assert "Traceback: boom" in detail and "act/retry" not in detail
    assert c.get(act_url("retry", fail_id)).status_code == 403
    assert c.post(act_url("retry"), {"ids": [fail_id]}).status_code == 403
    assert c.post(job_url(fail_id), {}).status_code == 405
    assert get_engine().get(fail_id).state is JobState.FAILED
    dashboard = c.get(reverse("admin:jobqueue_queue_changelist")).content.decode()
    assert "default" in dashboard and "Pause</a>" not in dashboard


def test_retry_asks_first_acts_on_post_and_is_logged(run_worker):
    job = t.fail_first_time.enqueue("a1")
    assert run_worker("--burst").returncode == 0
    mirror()
    assert Job.objects.get(pk=job.id).status == "failed"
    c = client_for(user("operator", "view_job", "retry_job"))
    confirm = c.get(act_url("retry", job.id))
    assert confirm.status_code == 200 and b"Yes, retry 1 job" in confirm.content
    assert get_engine().get(job.id).state is JobState.FAILED  # GET changed nothing
    done = c.post(act_url("retry"), {"ids": [job.id]})
    assert done.status_code == 302
    assert get_engine().get(job.id).state is JobState.QUEUED
    assert LogEntry.objects.filter(object_id=job.id, change_message="Retry (jobqueue)").exists()
    assert run_worker("--burst").returncode == 0
    mirror()
    row = Job.objects.get(pk=job.id)
    assert row.status == "succeeded" and row.result == "a1 ok" and row.attempts == 2


def test_csrf_is_enforced():
    job_id = t.boom.enqueue().id
    fail(job_id)
    mirror()
    c = client_for(user("csrf", "view_job", "retry_job"), csrf=True)
    assert c.post(act_url("retry"), {"ids": [job_id]}).status_code == 403
    assert get_engine().get(job_id).state is JobState.FAILED
    token = c.get(act_url("retry", job_id)).context["csrf_token"]
    assert (
        c.post(act_url("retry"), {"ids": [job_id], "csrfmiddlewaretoken": str(token)}).status_code
        == 302
    )
    assert get_engine().get(job_id).state is JobState.QUEUED


def test_hostile_job_data_is_escaped_everywhere():
    job = t.add.enqueue(HOSTILE[0], HOSTILE[1])
    fail(job.id)
    mirror()
    c = client_for(User.objects.create_superuser("root", "r@example.com", "pw"))
    pages = [
        reverse("admin:jobqueue_job_changelist") + "?q=alert",
        job_url(job.id),
        act_url("retry", job.id),
    ]
    for url in pages:
        html = c.get(url).content.decode()
        for payload in HOSTILE:
            assert payload not in html, url
    detail = c.get(job_url(job.id)).content.decode()
    assert (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in detail or "&lt;script&gt;" in detail
    )


def test_search_by_id_task_and_argument_text():
    a = t.add.enqueue(1000001, 5)
    b = t.log_order.enqueue("needle-in-args")
    mirror()
    c = client_for(User.objects.create_superuser("root", "r@example.com", "pw"))
    url = reverse("admin:jobqueue_job_changelist")

    def found(term):
        return {j.id for j in c.get(url, {"q": term}).context["cl"].result_list}

    assert found(a.id) == {a.id}
    assert found(a.id[:12]) >= {a.id}
    assert found("needle-in") == {b.id}
    assert found("log_order") == {b.id}
    assert found("1000001") == {a.id}


def test_filters_and_no_query_per_row():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    c = client_for(User.objects.create_superuser("root", "r@example.com", "pw"))
    url = reverse("admin:jobqueue_job_changelist")

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert c.get(url).status_code == 200
        return len(ctx.captured_queries)

    for i in range(4):
        t.add.using(queue_name="low" if i % 2 else "high").enqueue(i, i)
    mirror()
    few = queries()
    for i in range(4, 60):
        t.add.using(queue_name="low" if i % 2 else "high").enqueue(i, i)
    mirror()
    assert queries() == few  # the same queries for 4 rows as for 50: none per row
    response = c.get(url, {"queue": "low", "status": "queued"})
    rows = response.context["cl"].result_list
    assert len(rows) == 30 and {j.queue for j in rows} == {"low"}


def test_date_hierarchy_drills_down_by_year_month_day():
    from datetime import timedelta

    from django.utils import timezone

    t.add.enqueue(1, 1)
    mirror()
    old = Job.objects.get()
    Job.objects.filter(pk=old.pk).update(enqueued_at=timezone.now() - timedelta(days=400))
    t.add.enqueue(2, 2)
    mirror()
    c = client_for(User.objects.create_superuser("root", "r@example.com", "pw"))
    url = reverse("admin:jobqueue_job_changelist")
    now, then = timezone.localtime(), timezone.localtime(timezone.now() - timedelta(days=400))
    html = c.get(url).content.decode()
    assert f"enqueued_at__year={then.year}" in html and f"enqueued_at__year={now.year}" in html
    html = c.get(url, {"enqueued_at__year": now.year}).content.decode()
    assert f"enqueued_at__month={now.month}" in html
    html = c.get(url, {"enqueued_at__year": now.year, "enqueued_at__month": now.month}).content
    assert f"enqueued_at__day={now.day}".encode() in html


def test_all_matching_retry_uses_the_current_filter():
    failed = [t.boom.enqueue().id for _ in range(3)]
    for job_id in failed:
        fail(job_id)
    queued = t.add.enqueue(1, 1)
    mirror()
    c = client_for(user("bulk", "view_job", "retry_job"))
    url = reverse("admin:jobqueue_job_act", args=["retry"])
    confirm = c.get(url, {"matching": "1", "filters": "status=failed"})
    assert confirm.context["count"] == 3
    c.post(url, {"matching": "1", "filters": "status=failed"})
    assert {get_engine().get(j).state for j in failed} == {JobState.QUEUED}
    assert get_engine().get(queued.id).version == 1  # untouched


def test_cancel_and_delete_go_through_redis_then_the_mirror():
    keep, cancel, delete = (t.add.enqueue(i, i) for i in range(3))
    mirror()
    c = client_for(user("ops", "view_job", "cancel_job", "delete_job"))
    c.post(act_url("cancel"), {"ids": [cancel.id]})
    c.post(act_url("delete"), {"ids": [delete.id]})
    assert get_engine().get(cancel.id).state is JobState.CANCELED
    assert LogEntry.objects.filter(object_id=delete.id).exists()
    mirror()
    assert Job.objects.get(pk=cancel.id).status == "canceled"
    assert not Job.objects.filter(pk=delete.id).exists()
    assert Job.objects.get(pk=keep.id).status == "queued"


def test_queue_dashboard_pause_resume_and_purge():
    for i in range(4):
        t.add.using(queue_name="low").enqueue(i, i)
    t.add.using(queue_name="high").enqueue(9, 9)
    mirror()
    c = client_for(user("queues", "view_queue", "pause_queue", "purge_queue", "view_job"))
    dashboard = c.get(reverse("admin:jobqueue_queue_changelist"))
    html = dashboard.content.decode()
    assert dashboard.status_code == 200 and "<svg" in html and "no worker" in html
    low = next(r for r in dashboard.context["rows"] if r["name"] == "low")
    assert ("queued", 4, True) in low["counts"]
    pause = reverse("admin:jobqueue_queue_act", args=["low", "pause"])
    assert c.get(pause).status_code == 200 and not get_engine().queue_info("low").paused
    c.post(pause)
    assert get_engine().queue_info("low").paused
    c.post(reverse("admin:jobqueue_queue_act", args=["low", "resume"]))
    assert not get_engine().queue_info("low").paused
    purge = reverse("admin:jobqueue_queue_act", args=["low", "purge"])
    assert c.get(purge, {"state": "running"}).status_code == 404
    c.post(purge, {"state": "queued"})
    assert get_engine().counts("low")[JobState.QUEUED] == 0
    assert get_engine().counts("high")[JobState.QUEUED] == 1
    mirror()
    assert not Job.objects.filter(queue="low").exists()
    assert LogEntry.objects.filter(object_id="low").count() == 3


def test_queue_actions_need_their_permission():
    t.add.enqueue(1, 1)
    mirror()
    c = client_for(user("looker", "view_queue"))
    assert (
        c.post(reverse("admin:jobqueue_queue_act", args=["default", "pause"])).status_code == 403
    )
    assert (
        c.post(
            reverse("admin:jobqueue_queue_act", args=["default", "purge"]), {"state": "queued"}
        ).status_code
        == 403
    )
    assert not get_engine().queue_info("default").paused


def test_workers_page_marks_dead_workers():
    from dataclasses import replace

    from jobqueue.engine import Engine

    engine = get_engine()
    engine.workers.heartbeat("alive-1", {"state": "idle", "queues": ["default"], "pid": 1})
    stale = Engine(engine.client, replace(engine.config, worker_dead_after=0.001))
    mirror_dead = Mirror(stale, consumer="t2")
    import time

    time.sleep(0.01)
    mirror_dead.snapshot()
    c = client_for(User.objects.create_superuser("root", "r@example.com", "pw"))
    html = c.get(reverse("admin:jobqueue_worker_changelist")).content.decode()
    assert "alive-1" in html and "jq-dead" in html


def test_schedules_page_pause_resume_and_run_now(settings):
    settings.JOBQUEUE = {
        **settings.JOBQUEUE,
        "SCHEDULES": {
            "every-minute": {"task": "tests.sample_tasks.add", "every": 60, "args": [2, 3]}
        },
    }
    mirror()
    c = client_for(user("sched", "view_schedule", "run_schedule"))
    html = c.get(reverse("admin:jobqueue_schedule_changelist")).content.decode()
    assert "every-minute" in html and "every minute" in html and "in " in html
    act = reverse("admin:jobqueue_schedule_act", args=["pause"])
    assert c.get(act, {"ids": "every-minute"}).status_code == 200
    c.post(act, {"ids": ["every-minute"]})
    assert get_engine().schedules.get(["every-minute"])["every-minute"]["paused"] == "1"
    c.post(reverse("admin:jobqueue_schedule_act", args=["resume"]), {"ids": ["every-minute"]})
    assert "paused" not in get_engine().schedules.get(["every-minute"])["every-minute"]
    c.post(reverse("admin:jobqueue_schedule_act", args=["run"]), {"ids": ["every-minute"]})
    job_id = get_engine().schedules.get(["every-minute"])["every-minute"]["job"]
    assert get_engine().get(job_id).args == [2, 3]


def test_job_detail_shows_timeline_errors_logs_and_progress(run_worker):
    job = t.with_context.enqueue(steps=2)
    chatty = t.chatty.enqueue(2)
    assert run_worker("--burst").returncode == 0
    mirror()
    c = client_for(User.objects.create_superuser("root", "r@example.com", "pw"))
    html = c.get(job_url(job.id)).content.decode()
    for expected in ("succeeded", "Timeline", "running", "2 / 2 step 2"):
        assert expected in html
    logs = c.get(job_url(chatty.id)).content.decode()
    assert "line 1 of 2" in logs and "careful &lt;b&gt;bold&lt;/b&gt;" in logs


def test_detail_of_a_job_not_mirrored_yet_reads_redis():
    job = t.add.enqueue(4, 4)
    c = client_for(User.objects.create_superuser("root", "r@example.com", "pw"))
    html = c.get(job_url(job.id)).content.decode()
    assert "queued" in html and "No transition mirrored yet" in html
    missing = c.get(job_url("default:nosuchjob"), follow=True)
    assert missing.redirect_chain == [(reverse("admin:jobqueue_job_changelist"), 302)]
    assert "No job with id “default:nosuchjob”" in missing.content.decode()
