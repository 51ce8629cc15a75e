"""The text ``jobqueue inspect`` writes for a person, from the job's JSON form (so the two never
disagree): a table of facts, the arguments and result (short ones inline, long ones cut to the
admin's preview with their whole size), each error's traceback, the log records and the
timeline. Control characters from job data are made visible, never sent to the terminal."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..live.state import TIMES
from .output import NOTHING, PREVIEW, moment, plural, precise, pretty_json, printable


def indented(text: str, by: str = "    ") -> list[str]:
    return [by + line if line else "" for line in printable(text).splitlines() or [""]]


def progress_words(progress: dict[str, Any] | None) -> str:
    if not progress:
        return NOTHING
    done, total = progress.get("done"), progress.get("total")
    words = f"{done} of {total}"
    try:
        words += f" ({round(100 * float(done) / float(total))}%)"  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        pass
    message = progress.get("message")
    return f"{words} {message}" if message else words


INLINE = 80  # characters of JSON shown on its label's line; longer values are indented


def value_lines(label: str, facts: dict[str, Any]) -> list[str]:
    """A JSON value under its label: on the label's line when short, else indented below;
    a value cut to its preview says so."""
    if facts["truncated"]:
        note = f"(the first {PREVIEW:,} of {facts['json_chars']:,} characters)"
        return [f"{label}{note}", *indented(facts["preview"])]
    compact = json.dumps(facts["value"], ensure_ascii=False)
    if len(compact) <= INLINE and "\n" not in compact:
        return [printable(f"{label}{compact}")]
    return [label.rstrip(), *indented(pretty_json(facts["value"]))]


def workers_words(workers: list[str]) -> str:
    """The worker of each attempt, each named once: "web1 (attempts 1-3), web2"."""
    if not workers:
        return NOTHING
    counts: dict[str, int] = {}
    for name in workers:
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} ({c} attempts)" if c > 1 else n for n, c in counts.items())


def optional(value: Any, unit: str = "") -> str:
    if value is None or value == "":
        return NOTHING
    return f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"


def as_text(facts: dict[str, Any], now: datetime, log_lines: int) -> list[str]:
    """The job for a person, written from its JSON form (so the two never disagree)."""
    times = {name: parsed(value) for name, value in facts["times"].items()}
    took = facts["duration_seconds"]
    state = facts["state"]
    if facts["cancel_requested"] and state == "running":
        state += " (cancel requested: its worker is stopping it)"
    rows = [("task", facts["task"]), ("queue", facts["queue"]), ("state", state)]
    if facts["reason"]:
        rows.append(("reason", facts["reason"]))
    rows += [
        ("priority", str(facts["priority"])),
        ("attempts", attempts_words(facts)),
        ("enqueued", moment(times["enqueued_at"], now)),
        ("scheduled for", moment(times["run_at"], now)),
        ("started", moment(times["started_at"], now)),
        ("finished", moment(times["finished_at"], now)),
        ("took", NOTHING if took is None else f"{took:.3f} s"),
        ("workers", workers_words(facts["workers"])),
        ("progress", progress_words(facts["progress"])),
        ("timeout", optional(facts["timeout_seconds"], " s")),
        ("unique key", optional(facts["unique_key"])),
        ("version", str(facts["version"])),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"Job {facts['id']}"]
    lines += [printable(f"  {label.ljust(width)}  {value}") for label, value in rows]
    lines += ["", "Arguments"]
    lines += value_lines("  args    ", facts["args"])
    lines += value_lines("  kwargs  ", facts["kwargs"])
    lines.append("")
    if facts["result"] is None:
        finished = facts["state"] in ("succeeded", "failed", "canceled")
        lines.append("Result: none" if finished else "Result: none yet")
    else:
        lines += value_lines("Result: ", facts["result"])
        if facts["result"]["truncated"]:
            lines.append(f"    (the whole result: jobqueue.api.result({facts['id']!r}))")
    lines.append("")
    lines.append(f"Errors ({len(facts['errors'])} kept)" if facts["errors"] else "Errors: none")
    for error in facts["errors"]:
        at = parsed(error["at"])
        lines.append(
            printable(
                f"  attempt {error['attempt']}, {moment(at, now)}: {error['exception_class']}"
            )
        )
        lines += indented(error["traceback"].rstrip("\n"))
        if error["truncated"]:
            lines.append(f"    (the first {PREVIEW:,} of {error['traceback_chars']:,} characters)")
    for section in (
        log_section(facts.get("log"), log_lines),
        timeline_section(facts.get("timeline")),
    ):
        if section:
            lines += ["", *section]
    return lines


def attempts_words(facts: dict[str, Any]) -> str:
    """Attempts as max_attempts counts them (since the last manual retry), and all of them
    when the job was retried by hand: "1 of 4 · 5 in all", never "5 of 4"."""
    a = facts["attempts"]
    words = f"{a['this_run']} of {a['max']}"
    if a["before_retry"]:
        words += f" · {a['in_all']} in all (retried by hand after {a['before_retry']})"
    if a["stalls"]:
        words += f", {plural(a['stalls'], 'stall')}"
    return words


def log_section(log: dict[str, Any] | None, log_lines: int) -> list[str]:
    if log is None or not log_lines:  # none asked for (--log-lines 0)
        return []
    if not log["total"]:
        return ["Log: none kept"]
    shown_count = len(log["records"])
    title = f"Log ({plural(log['total'], 'record')} kept"
    if shown_count < log["total"]:
        title += f"; the last {shown_count} shown, --log-lines N for more"
    lines = [title + ")"]
    for record in log["records"]:
        at = parsed(record["at"])
        when = precise(at)[11:] if at else "?"
        first, *more = (record["message"] or "").splitlines() or [""]
        lines.append(printable(f"  {when} {record['level']:<8} {record['logger']}: {first}"))
        lines += indented("\n".join(more), "      ") if more else []
    return lines


def timeline_section(timeline: dict[str, Any] | None) -> list[str]:
    if timeline is None:
        return []
    events = timeline["events"]
    if not events:
        return ["Timeline: no longer in Redis's event stream (the admin's job page keeps it)"]
    title = "Timeline"
    if not timeline["complete"]:
        title += " (partial: some events are no longer in Redis's event stream)"
    lines = [title]
    for event in events:
        changes = " ".join(
            f"{name}={as_time(value) if name in TIMES else value}"
            for name, value in event["changes"].items()
        )
        when = precise(parsed(event["at"]))
        lines.append(
            printable(f"  v{event['version']:<3} {when}  {event['state']:<9} {changes}").rstrip()
        )
    return lines


def as_time(value: str) -> str:
    """A time of an event's changes for text, or the value as it came when not a time."""
    try:
        return precise(datetime.fromisoformat(value))
    except ValueError:
        return value


def parsed(value: str | None) -> datetime | None:
    """A time of the JSON form back as a datetime (the text is written from the JSON)."""
    return None if value is None else datetime.fromisoformat(value)
