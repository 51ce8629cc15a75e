"""The demo page (/demo/): enqueue any example task with a click, then watch its jobs run in
the admin. Staff only; enqueueing needs POST, CSRF and the ``jobqueue.add_job`` permission."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_http_methods
from redis import RedisError

from jobqueue.exceptions import JobqueueError

from .examples import EXAMPLES, Example, enqueue_example
from .forms import EnqueueForm

ENQUEUE_PERMISSION = "jobqueue.add_job"
OPTIONS = ("count", "priority", "delay", "queue")  # kept from one click to the next
LINKED_JOBS = 5  # the first jobs of a batch linked one by one; the rest through the list


@staff_member_required
@require_http_methods(["GET", "POST"])
def demo_page(request: HttpRequest) -> HttpResponse:
    can_enqueue = request.user.has_perm(ENQUEUE_PERMISSION)
    if request.method == "POST":
        if not can_enqueue:
            raise PermissionDenied(f"Enqueueing needs the {ENQUEUE_PERMISSION} permission.")
        form = EnqueueForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                results = enqueue_example(
                    form.example,
                    data["count"],
                    priority=data["priority"],
                    delay=data["delay"],
                    queue=data["queue"] or None,
                )
            except (JobqueueError, RedisError, OSError) as exc:
                form.add_error(None, f"Nothing was enqueued: {exc}")
            else:
                messages.success(request, enqueued_message(form.example, data, results))
                # Back to the page (a reload enqueues nothing), the options kept for the next.
                kept = {name: data[name] for name in OPTIONS}
                return redirect(f"{reverse('demo')}?{urlencode(kept)}")
    else:
        form = EnqueueForm(initial={n: request.GET[n] for n in OPTIONS if n in request.GET})
    context = {
        **admin.site.each_context(request),
        "title": "Demo: enqueue example tasks",
        "form": form,
        "examples": EXAMPLES,
        "can_enqueue": can_enqueue,
        "permission": ENQUEUE_PERMISSION,
    }
    status = 400 if form.errors else 200
    return TemplateResponse(request, "demo/enqueue.html", context, status=status)


def job_url(job_id: str) -> str:
    return reverse("admin:jobqueue_job_change", args=[quote(job_id)])


def task_list_url(example: Example) -> str:
    query = urlencode({"task": example.task.module_path})
    return f"{reverse('admin:jobqueue_job_changelist')}?{query}"


def enqueued_message(example: Example, data: dict[str, Any], results: list[Any]) -> SafeString:
    """What was enqueued, with links to the jobs' pages and to the list of the task's jobs."""
    ids = list(dict.fromkeys(result.id for result in results))  # a unique task repeats one
    queue = results[0].task.queue_name if results else example.queue
    when = f"scheduled to start in {data['delay']} s" if data["delay"] else "ready now"
    links = format_html_join(
        ", ",
        '<a href="{}"><code>{}</code></a>',
        ((job_url(job_id), job_id.rsplit(":", 1)[-1][:8]) for job_id in ids[:LINKED_JOBS]),
    )
    more = f" and {len(ids) - LINKED_JOBS} more" if len(ids) > LINKED_JOBS else ""
    if len(ids) < len(results):
        more += (
            f" ({len(results)} asked for: while a unique task's job waits or runs, asking "
            "again gives that job)"
        )
    return format_html(
        "Enqueued {} job{} of <strong>{}</strong> on the queue {} (priority {}, {}): {}{}. "
        'Watch them run in <a href="{}">the list of {} jobs</a>.',
        len(ids),
        "" if len(ids) == 1 else "s",
        example.name,
        queue,
        data["priority"],
        when,
        links,
        more,
        task_list_url(example),
        example.name,
    )
