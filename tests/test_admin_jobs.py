"""The job list and a job's page with heavy or unusual jobs: what they read from the database
and Redis, what they send, and attempts after a manual retry."""

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from jobqueue.conf import get_engine
from tests import sample_tasks as t
from tests.test_admin import client_for, fail, job_url, mirror

pytestmark = [pytest.mark.database, pytest.mark.django_db]

BIG = 40 * 1024 * 1024


@pytest.fixture
def root():
    return client_for(User.objects.create_superuser("root", "r@example.com", "pw"))


def finish_with(job_id, result):
    protocol = get_engine().worker_protocol()
    claimed = protocol.claim(job_id.split(":")[0], "w").jobs[0]
    assert claimed.job_id == job_id
    protocol.complete(job_id, claimed.token, result)


def test_a_40_mib_result_makes_a_small_page_with_a_preview_and_its_size(root):
    job = t.add.enqueue(1, 2)
    finish_with(job.id, "x" * BIG)
    mirror()
    response = root.get(job_url(job.id))
    html = response.content.decode()
    assert response.status_code == 200 and len(html) < 100_000
    assert f"The first 10,000 of {BIG + 2:,} characters." in html
    # The list never reads payload columns it does not show.
    with CaptureQueriesContext(connection) as queries:
        listing = root.get(reverse("admin:jobqueue_job_changelist"))
    assert listing.status_code == 200 and len(listing.content) < 100_000
    selects = [q["sql"] for q in queries if 'FROM "jobqueue_job"' in q["sql"]]
    assert selects and not any(
        f'"jobqueue_job"."{column}"' in sql
        for sql in selects
        for column in ("args", "kwargs", "result", "errors", "error_traceback")
    )


def test_a_small_result_is_shown_whole_and_indented(root):
    job = t.add.enqueue(1, 2)
    finish_with(job.id, {"total": 3, "items": ["<b>a</b>"]})
    mirror()
    html = root.get(job_url(job.id)).content.decode()
    assert (
        "&quot;total&quot;: 3" in html
        and "\n  &quot;items&quot;: [" in html
        and "&lt;b&gt;a&lt;/b&gt;" in html
    )
    assert "The first 10,000" not in html


def test_attempts_after_a_manual_retry_count_from_the_retry(root):
    job = t.add.enqueue(1, 2)
    fail(job.id)
    get_engine().retry(job.id)
    fail(job.id)
    mirror()
    detail = root.get(job_url(job.id)).content.decode()
    assert '<span id="jq-attempts">1 of 1<span class="jq-quiet"' in detail
    assert "· 2 in all" in detail and "retried by hand after 1 attempts" in detail
    listing = root.get(reverse("admin:jobqueue_job_changelist")).content.decode()
    assert "1/1<span" in listing and "5 of 4" not in listing
