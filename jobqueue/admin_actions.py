"""The admin's actions and the job page. Every action: a confirmation page on GET, the change on
POST (CSRF-checked by Django's middleware), its own permission, a LogEntry per object, and the
change itself made by the engine in Redis (the mirror then updates the rows).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from itertools import islice
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import reverse

from .conf import get_engine
from .engine import InvalidJob, InvalidTransition, JobNotFound, JobqueueError
from .engine.job import PURGEABLE_STATES
from .models import Job, JobStatus, JobTransition, Queue, Schedule

SAMPLE = 20
BATCH = 500  # jobs per round trip to Redis


@dataclass(frozen=True)
class Action:
    verb: str  # shown on the confirmation page
    permission: str  # the ModelAdmin's has_<permission>_permission
    flag: int  # LogEntry action flag
    operation: str  # what the engine does with each id (Engine.apply_many)


def job_actions() -> dict[str, Action]:
    return {
        "retry": Action("Retry", "retry", CHANGE, "retry"),
        "cancel": Action("Cancel", "cancel", CHANGE, "cancel"),
        "delete": Action("Delete", "purge", DELETION, "delete"),
    }


def redirect_to_confirm(
    request: HttpRequest, action: str, queryset: Any, model: str = "job"
) -> HttpResponse:
    ids = list(queryset.values_list("pk", flat=True))
    url = reverse(f"admin:jobqueue_{model}_act", args=[action])
    return HttpResponseRedirect(f"{url}?{urlencode({'ids': ids}, doseq=True)}")


def _log(request: HttpRequest, queryset: Any, flag: int, message: str) -> None:
    LogEntry.objects.log_actions(request.user.pk or 0, queryset, flag, message)


def _targets(model_admin: Any, request: HttpRequest, data: QueryDict) -> tuple[Any, bool]:
    """The rows an action is about: ``ids``, or everything matching ``filters``."""
    if data.get("matching"):
        filtered = copy.copy(request)
        filtered.GET = QueryDict(data.get("filters", ""))
        changelist = model_admin.get_changelist_instance(filtered)
        return changelist.get_queryset(filtered), True
    return Job.objects.filter(pk__in=data.getlist("ids")), False


def job_action_view(model_admin: Any, request: HttpRequest, action_name: str) -> HttpResponse:
    action = job_actions().get(action_name)
    if action is None:
        raise Http404(f"No job action {action_name!r}.")
    if not getattr(model_admin, f"has_{action.permission}_permission")(request):
        raise PermissionDenied
    data = request.POST if request.method == "POST" else request.GET
    queryset, matching = _targets(model_admin, request, data)
    changelist = reverse("admin:jobqueue_job_changelist")
    if data.get("filters"):
        changelist += "?" + data["filters"]
    if request.method != "POST":
        count = queryset.count()
        context = {
            **model_admin.admin_site.each_context(request),
            "title": f"{action.verb} {count} job{'s' if count != 1 else ''}?",
            "action": action,
            "count": count,
            "matching": matching,
            "sample": list(queryset.values_list("pk", flat=True)[:SAMPLE]),
            "ids": data.getlist("ids"),
            "filters": data.get("filters", ""),
            "cancel_url": changelist,
            "opts": Job._meta,
        }
        return TemplateResponse(request, "jobqueue/confirm_action.html", context)
    done, skipped = [], 0
    ids = queryset.values_list("pk", flat=True).iterator(chunk_size=BATCH)
    try:
        while chunk := list(islice(ids, BATCH)):  # one round trip to Redis per chunk
            for job_id, error in get_engine().apply_many(action.operation, chunk).items():
                if error is None:
                    done.append(job_id)
                elif isinstance(error, InvalidTransition | JobNotFound | InvalidJob):
                    skipped += 1
                else:
                    raise error
    except JobqueueError as exc:
        messages.error(request, f"{action.verb} stopped: {exc}")
    for start in range(0, len(done), 500):
        _log(
            request,
            Job.objects.filter(pk__in=done[start : start + 500]),
            action.flag,
            f"{action.verb} (jobqueue)",
        )
    messages.success(
        request,
        f"{action.verb}: {len(done)} job(s) done, {skipped} skipped "
        "(not in a state that allows it, or gone).",
    )
    return HttpResponseRedirect(changelist)


def job_detail_view(model_admin: Any, request: HttpRequest, object_id: str) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    object_id = unquote(object_id)  # the admin quotes primary keys in URLs (':' -> '_3A')
    engine = get_engine()
    live, live_error = None, ""
    try:
        live = engine.get(object_id)
    except (JobNotFound, InvalidJob):
        live_error = "Redis no longer holds this job (finished jobs expire; the row stays)."
    except JobqueueError as exc:
        live_error = f"Redis could not be read: {exc}"
    job = Job.objects.filter(pk=object_id).first()
    if job is None:
        if live is None:
            raise Http404(f"No job {object_id!r}.")
        from .mirror_apply import row_from_job

        job = row_from_job(live)  # not mirrored yet: show what Redis holds
    try:
        logs = engine.logs(object_id)
    except (JobqueueError, InvalidJob):
        logs = []
    status = live.state.value if live is not None else job.status
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Job {job.id}",
        "job": job,
        "status": status,
        "live": live,
        "live_error": live_error,
        "logs": logs,
        "opts": Job._meta,
        "args_json": pretty(job.args),
        "kwargs_json": pretty(job.kwargs),
        "result_json": pretty(job.result) if job.result is not None else "",
        "errors": [e for e in (job.errors or []) if isinstance(e, dict)],
        "transitions": JobTransition.objects.filter(job_id=job.id).order_by("version"),
        "can_retry": status in (JobStatus.FAILED, JobStatus.CANCELED)
        and model_admin.has_retry_permission(request),
        "can_cancel": status in (JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.RUNNING)
        and model_admin.has_cancel_permission(request),
        "can_delete": model_admin.has_purge_permission(request),
        "act_url": reverse("admin:jobqueue_job_act", args=["__action__"]),
    }
    return TemplateResponse(request, "jobqueue/job_detail.html", context)


def queue_action_view(
    model_admin: Any, request: HttpRequest, name: str, action: str
) -> HttpResponse:
    engine = get_engine()
    permissions = {"pause": "pause_queue", "resume": "pause_queue", "purge": "purge_queue"}
    if action not in permissions:
        raise Http404(f"No queue action {action!r}.")
    if not request.user.has_perm(f"jobqueue.{permissions[action]}"):
        raise PermissionDenied
    if name not in engine.queues():
        raise Http404(f"No queue {name!r}.")
    data = request.POST if request.method == "POST" else request.GET
    state = data.get("state", "")
    if action == "purge" and state not in {s.value for s in PURGEABLE_STATES}:
        raise Http404(f"Cannot purge jobs in state {state!r}.")
    dashboard = reverse("admin:jobqueue_queue_changelist")
    if request.method != "POST":
        what = (
            f"purge every {state} job of queue {name!r}"
            if action == "purge"
            else (f"{action} queue {name!r}")
        )
        context = {
            **model_admin.admin_site.each_context(request),
            "title": f"{what[0].upper()}{what[1:]}?",
            "what": what,
            "state": state,
            "cancel_url": dashboard,
            "opts": Queue._meta,
            "count": engine.counts(name).get(state) if action == "purge" else None,
        }
        return TemplateResponse(request, "jobqueue/confirm_queue_action.html", context)
    if action == "purge":
        removed = engine.purge(name, state)
        message = f"Purged {removed} {state} job(s) from queue {name!r}."
    else:
        changed = engine.pause(name) if action == "pause" else engine.resume(name)
        already = "" if changed else "was already "
        message = f"Queue {name!r} {already}{action}d."
    _log(request, Queue.objects.filter(pk=name), CHANGE, message)
    messages.success(request, message)
    return HttpResponseRedirect(dashboard)


def schedule_action_view(model_admin: Any, request: HttpRequest, action: str) -> HttpResponse:
    from .schedules import Scheduler, all_schedules

    if action not in ("pause", "resume", "run"):
        raise Http404(f"No schedule action {action!r}.")
    if not model_admin.has_run_permission(request):
        raise PermissionDenied
    data = request.POST if request.method == "POST" else request.GET
    names = data.getlist("ids")
    queryset = Schedule.objects.filter(pk__in=names)
    changelist = reverse("admin:jobqueue_schedule_changelist")
    verb = {"pause": "Pause", "resume": "Resume", "run": "Run now"}[action]
    if request.method != "POST":
        context = {
            **model_admin.admin_site.each_context(request),
            "title": f"{verb}: {queryset.count()} schedule(s)?",
            "verb": verb,
            "names": list(queryset.values_list("pk", flat=True)),
            "cancel_url": changelist,
            "opts": Schedule._meta,
        }
        return TemplateResponse(request, "jobqueue/confirm_schedule_action.html", context)
    engine = get_engine()
    declared = all_schedules()
    for name in queryset.values_list("pk", flat=True):
        if action == "run" and name in declared:
            job = Scheduler(engine, declared).run(declared[name])
            engine.set_schedule_state(name, job=job.id)
        elif action in ("pause", "resume"):
            engine.set_schedule_state(name, paused="1" if action == "pause" else None)
    _log(request, queryset, CHANGE, f"{verb} (jobqueue)")
    messages.success(request, f"{verb}: {queryset.count()} schedule(s).")
    return HttpResponseRedirect(changelist)


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
