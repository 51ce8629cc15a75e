"""The admin's actions on jobs, queues and schedules. Every action: a confirmation page first,
the change only on POST (CSRF-checked by Django's middleware), the model's view permission and
the action's own, a LogEntry per object changed, and the change itself made by the engine in
Redis (the mirror then updates the rows).

A changelist action (the list's "Action" menu) renders the confirmation page at once, as
Django's own ``delete_selected`` does: the selected ids travel as hidden inputs of a POST, never
in a URL (a page of 200 ids would pass most servers' request-line limit). "Select all N"
(``select_across``) confirms "every job matching the list's filters" (``matching=1`` and the
list's query string), whatever their number. The same pages answer GET at the action URL, for
links (a job's page, "Retry all matching").

When something goes wrong (Redis unreachable, a filter that cannot be applied, a queue name the
engine refuses) the user is sent back to the list with an error message naming it; what was
done before the failure, and only that, is logged and reported.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from itertools import islice
from typing import Any

from django.contrib import messages
from django.contrib.admin.exceptions import DisallowedModelAdminLookup, DisallowedModelAdminToField
from django.contrib.admin.models import CHANGE, DELETION
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import FieldDoesNotExist, FieldError, PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import reverse

from ..conf import get_engine
from ..engine.errors import InvalidJob, InvalidTransition, JobNotFound, JobqueueError
from ..engine.job import PURGEABLE_STATES, validate_queue_name
from ..models import Job, Queue, Schedule
from .base import log_actions

SAMPLE = 20
BATCH = 500  # jobs per round trip to Redis

# What Django's changelist raises for a query string it cannot apply (its own list answers
# them with "?e=1"; an action refuses them with a message).
BAD_FILTER = (
    IncorrectLookupParameters,
    FieldError,
    ValidationError,
    DisallowedModelAdminLookup,
    DisallowedModelAdminToField,
)


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


def allowed(model_admin: Any, request: HttpRequest, may_act: bool) -> None:
    """PermissionDenied unless the user may both take the action and see the rows: an action
    page shows ids, counts and names, which only the view permission may show."""
    if not (may_act and model_admin.has_view_permission(request)):
        raise PermissionDenied


def back(request: HttpRequest, url: str, error: str) -> HttpResponse:
    messages.error(request, error)
    return HttpResponseRedirect(url)


# -- jobs ----------------------------------------------------------------------------------


def job_action(model_admin: Any, request: HttpRequest, name: str) -> Action:
    action = job_actions().get(name)
    if action is None:
        raise Http404(f"No job action {name!r}.")
    allowed(
        model_admin, request, getattr(model_admin, f"has_{action.permission}_permission")(request)
    )
    return action


def check_choices(params: QueryDict) -> None:
    """Django's list filters a field with choices by any value (``status=bogus`` lists no row);
    an action on such a filter is a mistake, refused with the values allowed."""
    for key, values in params.lists():
        try:
            field = Job._meta.get_field(key.removesuffix("__exact"))
        except FieldDoesNotExist:
            continue
        choices = [str(value) for value, _ in getattr(field, "flatchoices", None) or []]
        wrong = [v for v in values if v not in choices]
        if choices and wrong:
            raise IncorrectLookupParameters(
                f"{key}={wrong[0]!r} is not one of {', '.join(choices)}"
            )


def job_targets(model_admin: Any, request: HttpRequest, data: QueryDict) -> tuple[Any, bool]:
    """The rows an action is about: ``ids``, or (``matching``) every row the job list shows
    with the query string ``filters``, as the list itself computes it. Raises one of
    BAD_FILTER when ``filters`` cannot be applied."""
    if data.get("matching"):
        params = QueryDict(data.get("filters", ""))
        check_choices(params)
        filtered = copy.copy(request)
        filtered.GET = params
        changelist = model_admin.get_changelist_instance(filtered)
        return changelist.get_queryset(filtered), True
    return Job.objects.filter(pk__in=data.getlist("ids")), False


def job_list_url(data: QueryDict) -> str:
    """The job list, with the filters the action came from."""
    url = reverse("admin:jobqueue_job_changelist")
    query = QueryDict(data.get("filters", "")).urlencode()  # re-encoded: no raw CR/LF, '#'
    return f"{url}?{query}" if query else url


def confirm_jobs(model_admin: Any, request: HttpRequest, name: str, queryset: Any) -> HttpResponse:
    """What a changelist action returns: the confirmation page, for the selected rows or, with
    "Select all N", for every row matching the list's filters (the list's query string)."""
    data = QueryDict(mutable=True)
    data["filters"] = request.GET.urlencode()
    if request.POST.get("select_across") == "1":
        data["matching"] = "1"
    else:
        data.setlist("ids", [str(pk) for pk in queryset.values_list("pk", flat=True)])
    return job_confirmation(model_admin, request, name, data)


def job_confirmation(
    model_admin: Any, request: HttpRequest, name: str, data: QueryDict
) -> HttpResponse:
    action = job_action(model_admin, request, name)
    try:
        queryset, matching = job_targets(model_admin, request, data)
        count = queryset.count()
        sample = list(queryset.values_list("pk", flat=True)[:SAMPLE])
    except BAD_FILTER as exc:
        return bad_filter(request, data, exc)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{action.verb} {count} job{'s' if count != 1 else ''}?",
        "action": action,
        "act_url": reverse("admin:jobqueue_job_act", args=[name]),
        "count": count,
        "matching": matching,
        "sample": sample,
        "ids": [] if matching else data.getlist("ids"),
        "filters": data.get("filters", ""),
        "cancel_url": job_list_url(data),
        "opts": model_admin.opts,
    }
    return TemplateResponse(request, "jobqueue/confirm_action.html", context)


def bad_filter(request: HttpRequest, data: QueryDict, exc: Exception) -> HttpResponse:
    return back(
        request,
        reverse("admin:jobqueue_job_changelist"),
        f"The filter {data.get('filters', '')!r} cannot be applied ({exc}); nothing was changed.",
    )


def job_action_view(model_admin: Any, request: HttpRequest, name: str) -> HttpResponse:
    if request.method != "POST":
        return job_confirmation(model_admin, request, name, request.GET)
    action = job_action(model_admin, request, name)
    data = request.POST
    try:
        queryset, _ = job_targets(model_admin, request, data)
        ids = queryset.values_list("pk", flat=True).iterator(chunk_size=BATCH)
        first = list(islice(ids, BATCH))
    except BAD_FILTER as exc:
        return bad_filter(request, data, exc)
    done, skipped, failure = [], 0, None
    try:
        chunk = first
        while chunk:  # one round trip to Redis per chunk
            for job_id, error in get_engine().apply_many(action.operation, chunk).items():
                if error is None:
                    done.append(job_id)
                elif isinstance(error, InvalidTransition | JobNotFound | InvalidJob):
                    skipped += 1
                else:
                    raise error
            chunk = list(islice(ids, BATCH))
    except JobqueueError as exc:
        failure = exc
    for start in range(0, len(done), BATCH):
        log_actions(
            request,
            Job.objects.filter(pk__in=done[start : start + BATCH]),
            action.flag,
            f"{action.verb} (jobqueue)",
        )
    if failure is not None:
        return back(
            request,
            job_list_url(data),
            f"{action.verb} stopped after {len(done)} job(s): {failure}",
        )
    messages.success(
        request,
        f"{action.verb}: {len(done)} job(s) done, {skipped} skipped "
        "(not in a state that allows it, or gone).",
    )
    return HttpResponseRedirect(job_list_url(data))


# -- queues --------------------------------------------------------------------------------

QUEUE_PERMISSIONS = {"pause": "pause_queue", "resume": "pause_queue", "purge": "purge_queue"}


def queue_action_view(
    model_admin: Any, request: HttpRequest, name: str, action: str
) -> HttpResponse:
    """Pause, resume or purge the queue ``name`` (unquoted already)."""
    if action not in QUEUE_PERMISSIONS:
        raise Http404(f"No queue action {action!r}.")
    allowed(model_admin, request, request.user.has_perm(f"jobqueue.{QUEUE_PERMISSIONS[action]}"))
    data = request.POST if request.method == "POST" else request.GET
    state = data.get("state", "")
    if action == "purge" and state not in {s.value for s in PURGEABLE_STATES}:
        raise Http404(f"Cannot purge jobs in state {state!r}.")
    what = (
        f"purge every {state} job of queue {name!r}"
        if action == "purge"
        else f"{action} queue {name!r}"
    )
    dashboard = reverse("admin:jobqueue_queue_changelist")
    engine = get_engine()
    try:
        validate_queue_name(name)  # a name in Redis's set that no enqueue could have made
        if name not in engine.queues():
            raise Http404(f"No queue {name!r}.")
        if request.method != "POST":
            context = {
                **model_admin.admin_site.each_context(request),
                "title": f"{what[0].upper()}{what[1:]}?",
                "what": what,
                "state": state,
                "cancel_url": dashboard,
                "opts": model_admin.opts,
                "count": engine.counts(name).get(state) if action == "purge" else None,
            }
            return TemplateResponse(request, "jobqueue/confirm_queue_action.html", context)
        if action == "purge":
            removed = engine.purge(name, state)
            message = f"Purged {removed} {state} job(s) from queue {name!r}."
        else:
            changed = engine.pause(name) if action == "pause" else engine.resume(name)
            message = f"Queue {name!r} {'' if changed else 'was already '}{action}d."
    except JobqueueError as exc:
        # One script changes the queue, so a failure leaves it as it was; a purge runs in
        # batches, and one that fails midway has removed some jobs (the count shows it).
        return back(request, dashboard, f"Could not {what}: {exc}")
    log_actions(request, Queue.objects.filter(pk=name), CHANGE, message)
    messages.success(request, message)
    return HttpResponseRedirect(dashboard)


# -- schedules -----------------------------------------------------------------------------

SCHEDULE_VERBS = {"pause": "Pause", "resume": "Resume", "run": "Run now"}


def confirm_schedules(
    model_admin: Any, request: HttpRequest, action: str, queryset: Any
) -> HttpResponse:
    """What a changelist action returns: the confirmation page for the selected schedules."""
    data = QueryDict(mutable=True)
    data.setlist("ids", [str(pk) for pk in queryset.values_list("pk", flat=True)])
    return schedule_confirmation(model_admin, request, action, data)


def schedule_confirmation(
    model_admin: Any, request: HttpRequest, action: str, data: QueryDict
) -> HttpResponse:
    if action not in SCHEDULE_VERBS:
        raise Http404(f"No schedule action {action!r}.")
    allowed(model_admin, request, model_admin.has_run_permission(request))
    names = list(Schedule.objects.filter(pk__in=data.getlist("ids")).values_list("pk", flat=True))
    verb = SCHEDULE_VERBS[action]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{verb}: {len(names)} schedule(s)?",
        "verb": verb,
        "names": names,
        "act_url": reverse("admin:jobqueue_schedule_act", args=[action]),
        "cancel_url": reverse("admin:jobqueue_schedule_changelist"),
        "opts": model_admin.opts,
    }
    return TemplateResponse(request, "jobqueue/confirm_schedule_action.html", context)


def schedule_action_view(model_admin: Any, request: HttpRequest, action: str) -> HttpResponse:
    from ..mirror.snapshot import write_schedules
    from ..schedules import Scheduler, all_schedules

    if request.method != "POST":
        return schedule_confirmation(model_admin, request, action, request.GET)
    if action not in SCHEDULE_VERBS:
        raise Http404(f"No schedule action {action!r}.")
    allowed(model_admin, request, model_admin.has_run_permission(request))
    names = Schedule.objects.filter(pk__in=request.POST.getlist("ids")).values_list(
        "pk", flat=True
    )
    changelist = reverse("admin:jobqueue_schedule_changelist")
    verb = SCHEDULE_VERBS[action]
    engine = get_engine()
    declared = all_schedules()
    done: list[str] = []
    undeclared: list[str] = []
    failure = ""
    for name in names:
        try:
            if action == "run" and name not in declared:
                undeclared.append(name)  # a row left from a schedule no longer declared
                continue
            if action == "run":
                job = Scheduler(engine, declared).run(declared[name])
                done.append(name)  # it ran, even if recording its job (below) fails
                engine.schedules.set(name, job=job.id)
            else:
                engine.schedules.set(name, paused="1" if action == "pause" else None)
                done.append(name)
        except JobqueueError as exc:
            failure = f"{verb} stopped at schedule {name!r}: {exc}"
            break
    if done:
        log_actions(request, Schedule.objects.filter(pk__in=done), CHANGE, f"{verb} (jobqueue)")
        try:
            # The rows show the change at once, copied as the mirror copies them: with the
            # state's version, so the mirror's next copy (maybe read before the change) cannot
            # bring the old state back.
            in_list = {n: declared[n] for n in done if n in declared}
            write_schedules(in_list, engine.schedules.get(list(in_list)))
        except JobqueueError:
            pass  # Redis went away after the change: the mirror copies it when it is back
    if undeclared:
        messages.warning(request, f"Not declared any more, not run: {', '.join(undeclared)}.")
    if failure:
        done_text = f" Done: {', '.join(done)}." if done else ""
        return back(request, changelist, failure + done_text)
    messages.success(request, f"{verb}: {len(done)} schedule(s).")
    return HttpResponseRedirect(changelist)
