"""The queues dashboard: per queue, live counts from Redis, throughput and latency over the
last hour (drawn here as inline SVG, no script or CDN), the oldest waiting job, the workers
consuming it, and the pause / resume / purge controls."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from .conf import get_engine
from .engine import JobqueueError, JobState
from .engine.job import PURGEABLE_STATES
from .models import Job, JobStatus, Queue, QueueStat, Worker

MINUTES = 60
WIDTH, HEIGHT = 180, 36


def sparkline(values: list[float], label: str, unit: str) -> str:
    """An SVG line of ``values`` (one per minute, oldest first), with its peak in the title."""
    peak = max(values) if values else 0
    step = WIDTH / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{HEIGHT - 2 - (v / peak * (HEIGHT - 4) if peak else 0):.1f}"
        for i, v in enumerate(values)
    )
    return format_html(
        '<svg class="jq-spark" width="{}" height="{}" viewBox="0 0 {} {}" role="img">'
        '<title>{}: peak {} {}</title><polyline points="{}"/></svg>',
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        label,
        f"{peak:.1f}",
        unit,
        points,
    )


def minute_series(queue: str) -> tuple[list[float], list[float]]:
    """Jobs finished per minute and mean wait (ms) per minute, for the last hour."""
    now = timezone.now().replace(second=0, microsecond=0)
    start = now - timedelta(minutes=MINUTES - 1)
    rows = {s.minute: s for s in QueueStat.objects.filter(queue=queue, minute__gte=start)}
    throughput, latency = [], []
    for i in range(MINUTES):
        stat = rows.get(start + timedelta(minutes=i))
        throughput.append(float(stat.succeeded + stat.failed) if stat else 0.0)
        latency.append(stat.wait_ms / stat.started if stat and stat.started else 0.0)
    return throughput, latency


def queue_rows() -> tuple[list[dict[str, Any]], str]:
    engine = get_engine()
    error = ""
    try:
        names = sorted(set(engine.queues()) | set(Queue.objects.values_list("name", flat=True)))
    except JobqueueError as exc:
        names, error = list(Queue.objects.values_list("name", flat=True)), str(exc)
    workers = list(Worker.objects.filter(alive=True))
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
        oldest = (
            Job.objects.filter(queue=name, status=JobStatus.QUEUED)
            .order_by("enqueued_at")
            .only("id", "enqueued_at")
            .first()
        )
        throughput, latency = minute_series(name)
        consuming = [w for w in workers if name in w.queues]
        rows.append(
            {
                "name": name,
                "paused": paused,
                "data_lost_at": lost,
                "counts": [(s.value, counts.get(s, 0), s in PURGEABLE_STATES) for s in JobState],
                "oldest": oldest,
                "workers": consuming,
                "throughput": sparkline(throughput, "jobs finished per minute", "jobs/min"),
                "throughput_last": throughput[-1] if throughput else 0,
                "latency": sparkline(latency, "mean wait before start", "ms"),
                "latency_last": latency[-1] if latency else 0,
            }
        )
    return rows, error


def dashboard_view(model_admin: Any, request: HttpRequest) -> HttpResponse:
    rows, error = queue_rows()
    user = request.user
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Queues",
        "rows": rows,
        "redis_error": error,
        "opts": Queue._meta,
        "can_pause": user.has_perm("jobqueue.pause_queue"),
        "can_purge": user.has_perm("jobqueue.purge_queue"),
        "purgeable": [s.value for s in JobState if s in PURGEABLE_STATES],
        "legend": format_html_join(
            " ", '<span class="jq-badge jq-{}">{}</span>', ((s.value, s.value) for s in JobState)
        ),
    }
    return TemplateResponse(request, "jobqueue/admin/queues.html", context)
