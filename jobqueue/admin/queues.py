"""The queues dashboard: per queue, live counts from Redis, throughput and wait before start
over the last hour (drawn here as inline SVG with their scale, no script or CDN), the oldest
waiting job, the workers consuming it (a queue with jobs waiting and none is flagged), and the
pause / resume / purge controls (``actions.queue_action_view``).

Everything a row shows is computed by :func:`queue_rows` and drawn by ``queue_rows.html``:
the live page (``live.pages.Queues``) renders the same rows again through :func:`render_rows`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from ..conf import get_engine
from ..engine import JobqueueError, JobState
from ..engine.job import PURGEABLE_STATES
from ..models import Job, Queue, QueueStat, Worker
from . import actions
from .base import MirrorAdmin, live_config, words_since

MINUTES = 60
WIDTH, HEIGHT = 180, 40  # a chart's drawing box; the page stretches it to its cell's width
WORKERS_SHOWN = 3  # worker names listed in a row; the others are counted


def per_minute(value: float) -> str:
    return f"{value:,.0f} jobs/min"


def duration(ms: float) -> str:
    """A wait in milliseconds, in the unit a person reads it best in."""
    if ms < 1000:
        return f"{ms:,.0f} ms"
    if ms < 10_000:
        return f"{ms / 1000:.1f} s"
    if ms < 60_000:
        return f"{ms / 1000:.0f} s"
    if ms < 3_600_000:
        return f"{ms / 60_000:.1f} min"
    return f"{ms / 3_600_000:,.1f} h"


def _path(values: Sequence[float | None], peak: float) -> str:
    """SVG path data: one subpath per run of minutes with a value (a minute without one, such
    as a minute in which nothing started, is a gap, not a zero)."""
    step = WIDTH / max(len(values) - 1, 1)
    parts, drawing = [], False
    for i, value in enumerate(values):
        if value is None:
            drawing = False
            continue
        y = HEIGHT - 2 - (value / peak * (HEIGHT - 4) if peak else 0)
        parts.append(f"{'L' if drawing else 'M'}{i * step:.1f},{y:.1f}")
        if not drawing:
            parts.append("h0")  # a lone minute still shows, as a dot (round line caps)
        drawing = True
    return " ".join(parts)


def sparkline(
    values: Sequence[float | None],
    label: str,
    text: Callable[[float], str],
    zero_is_nothing: bool = False,
) -> str:
    """A chart of ``values`` (one per minute, oldest first; None: nothing to measure that
    minute) with its scale in words: the peak (the chart's top line), the current minute's
    value so far, and the time span. ``text`` writes a value with its unit. With nothing to
    show (no value; or, ``zero_is_nothing``, for a count, only zeros) it says so instead."""
    known = [v for v in values if v is not None]
    peak = max(known, default=0.0)
    shown = bool(peak or (known and not zero_is_nothing))
    latest = values[-1] if values and shown else None
    if shown:
        summary = f"{label}, last {MINUTES} minutes: peak {text(peak)}"
        if latest is not None:
            summary += f", this minute so far {text(latest)}"
    else:
        summary = f"{label}: none in the last {MINUTES} minutes"
    top = format_html('<line class="jq-chart-top" x1="0" y1="2" x2="{}" y2="2"/>', WIDTH)
    svg = format_html(
        '<svg viewBox="0 0 {w} {h}" preserveAspectRatio="none" role="img" aria-label="{s}">'
        '<title>{s}</title>{top}<line class="jq-chart-base" x1="0" y1="{y}" x2="{w}" y2="{y}"/>'
        '<path d="{d}"/></svg>',
        w=WIDTH,
        h=HEIGHT,
        s=summary,
        top=top if peak else "",
        y=HEIGHT - 2,
        d=_path(values, peak) if shown else "",
    )
    return format_html(
        '<figure class="jq-chart"><div class="jq-chart-scale"><span>{}</span><span>{}</span></div>'
        '{}<div class="jq-chart-span"><span>{} min ago</span><span>now</span></div></figure>',
        f"peak {text(peak)}" if shown else "none in the last hour",
        f"this min {text(latest)}" if latest is not None else "",
        svg,
        MINUTES,
    )


def minute_series(queue: str) -> tuple[list[float], list[float | None]]:
    """Jobs finished per minute, and the mean wait before start (ms) per minute (None for a
    minute in which nothing started), for the last hour, the current minute last."""
    now = timezone.now().replace(second=0, microsecond=0)
    start = now - timedelta(minutes=MINUTES - 1)
    rows = {s.minute: s for s in QueueStat.objects.filter(queue=queue, minute__gte=start)}
    throughput: list[float] = []
    wait: list[float | None] = []
    for i in range(MINUTES):
        stat = rows.get(start + timedelta(minutes=i))
        throughput.append(float(stat.succeeded + stat.failed) if stat else 0.0)
        wait.append(stat.wait_ms / stat.started if stat and stat.started else None)
    return throughput, wait


def live_workers(engine: Any) -> tuple[list[Any], str]:
    """The workers that can take jobs now: alive (heartbeat recent) and not stopping. Read from
    Redis, where heartbeats land (the mirror's copy would say nothing once the last worker,
    and so its mirror, stopped); the mirror's rows when Redis cannot be read."""
    try:
        workers = engine.workers.all()
    except JobqueueError as exc:
        return list(Worker.objects.filter(alive=True).exclude(state="stopping")), str(exc)
    return [w for w in workers if w.alive and w.state != "stopping"], ""


def oldest_waiting(queue: str) -> Job | None:
    """The queued job enqueued first: ``enqueued_at`` is indexed, ``ready_at`` is not (sorting
    every queued row by it, once a second for each open page, would not scale). Its age is
    counted from when its attempt became ready: a job retried by hand was enqueued long before."""
    return (
        Job.objects.filter(queue=queue, status=JobState.QUEUED)
        .order_by("enqueued_at")
        .only("id", "enqueued_at", "ready_at")
        .first()
    )


def queue_rows() -> tuple[list[dict[str, Any]], str]:
    engine = get_engine()
    error = ""
    try:
        names = sorted(set(engine.queues()) | set(Queue.objects.values_list("name", flat=True)))
    except JobqueueError as exc:
        names, error = list(Queue.objects.values_list("name", flat=True)), str(exc)
    workers, workers_error = live_workers(engine)
    error = error or workers_error
    poison = {  # entries the mirror could not apply, as it counted them
        q.name: q
        for q in Queue.objects.filter(poison_entries__gt=0).only("poison_entries", "last_poison")
    }
    rows = []
    for name in names:
        try:
            info = engine.queue_info(name)
            counts, paused, lost = info.counts, info.paused, info.data_lost_at
        except JobqueueError as exc:
            error = str(exc)
            mirror = Queue.objects.filter(name=name).first()
            counts = {s: getattr(mirror, s.value, 0) if mirror else 0 for s in JobState}
            paused, lost = bool(mirror and mirror.paused), None
        oldest = oldest_waiting(name)
        throughput, wait = minute_series(name)
        consuming = [w.name for w in workers if name in w.queues]
        queued = counts.get(JobState.QUEUED, 0)
        rows.append(
            {
                "name": name,
                "paused": paused,
                "data_lost_at": lost,
                "poison": poison.get(name),
                "counts": [(s.value, counts.get(s, 0), s in PURGEABLE_STATES) for s in JobState],
                "queued": queued,
                # Jobs wait and nothing will take them; a paused queue says paused instead.
                "unserved": bool(queued and not consuming and not paused),
                "oldest": oldest,
                "oldest_age": words_since(oldest.ready_at or oldest.enqueued_at) if oldest else "",
                "workers": consuming[:WORKERS_SHOWN],
                "more_workers": max(len(consuming) - WORKERS_SHOWN, 0),
                "throughput": sparkline(
                    throughput, "Jobs finished per minute", per_minute, zero_is_nothing=True
                ),
                "wait": sparkline(wait, "Mean wait before start", duration),
            }
        )
    return rows, error


def rows_context(user: Any) -> dict[str, Any]:
    """What the dashboard's rows show this user (the live page renders them again)."""
    rows, error = queue_rows()
    return {
        "rows": rows,
        "redis_error": error,
        "can_pause": user.has_perm("jobqueue.pause_queue"),
        "can_purge": user.has_perm("jobqueue.purge_queue"),
    }


def render_rows(user: Any) -> str:
    """The dashboard's rows as HTML, rendered now (for the live page)."""
    return render_to_string("jobqueue/admin/queue_rows.html", rows_context(user))


def dashboard_view(model_admin: Any, request: HttpRequest) -> HttpResponse:
    context = {
        **model_admin.admin_site.each_context(request),
        **rows_context(request.user),
        "title": "Queues",
        "opts": model_admin.opts,
        "live_config": live_config("queues"),
        "legend": format_html_join(
            " ", '<span class="jq-badge jq-{}">{}</span>', ((s.value, s.value) for s in JobState)
        ),
    }
    return TemplateResponse(request, "jobqueue/admin/queues.html", context)


@admin.register(Queue)
class QueueAdmin(MirrorAdmin):
    """The queues dashboard instead of a change list; its actions at ``<queue>/<action>/``."""

    change_list_template = "jobqueue/admin/queues.html"
    # The name is quoted as the admin quotes primary keys (admin.utils.quote; in templates
    # the admin_urlquote filter): '/' -> '_2F', '?' -> '_3F', '#' -> '_23', '%' -> '_25',
    # '_' -> '_5F', and reverse() percent-encodes spaces and non-ASCII. The segment never
    # holds a '/', so the route is two plain segments and the URL never needs a %2F (WSGI
    # decodes it before routing; proxies refuse or rewrite it). A <path:name> route would
    # put the name's '/' in the path as it is, where segments like '..' in 'a/../b' are
    # collapsed by browsers and proxies before Django sees them. Known limit, shared with
    # the admin's own object URLs: quote leaves '.', so the names '.' and '..' (which the
    # engine accepts) are dot segments a browser collapses.
    act_route = "<str:name>/<str:action>/"

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return dashboard_view(self, request)

    def act_view(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        name = unquote(kwargs["name"])
        return actions.queue_action_view(self, request, name, kwargs["action"])
