"""``manage.py jobqueue <subcommand>``: the operator's command line, against a real Redis (the
test's own prefix), real worker processes where a worker matters, and a private redis-server
for a data loss. Each subcommand's happy path, its refusals of bad input (with nothing
written to Redis), its JSON parsed, and its exit codes through a real process."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from jobqueue import api
from jobqueue.conf import get_engine
from jobqueue.engine.errors import JobNotFound
from tests import sample_tasks as t
from tests.conftest import wait_for

ADD, BOOM = "tests.sample_tasks.add", "tests.sample_tasks.boom"
CONFIGURED = ["default", "high", "low", "emails", "reports"]
EPOCH_MS = re.compile(r"\b1\d{12}\b")  # a raw epoch in milliseconds: never shown to people


def jq(*args: str) -> str:
    """``manage.py jobqueue ARGS`` in this process; its stdout."""
    out, err = StringIO(), StringIO()
    call_command("jobqueue", *args, stdout=out, stderr=err)
    return out.getvalue()


def jq_both(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("jobqueue", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def jq_json(*args: str):
    return json.loads(jq(*args, "--json"))


def refused(*args: str, match: str) -> CommandError:
    with pytest.raises(CommandError, match=match) as caught:
        jq(*args)
    return caught.value


def totals() -> dict[str, dict[str, int]]:
    """Every configured queue's counts, from Redis."""
    return {queue: api.counts(queue) for queue in CONFIGURED}


def nothing_in_redis() -> None:
    assert all(not any(counts.values()) for counts in totals().values())


def fail_next(queue: str = "default", worker: str = "w1", retry: bool = False) -> str:
    """Claim the next job of ``queue`` and record a failed attempt (no retry unless asked)."""
    protocol = get_engine().worker_protocol()
    [claimed] = protocol.claim(queue, worker).jobs
    protocol.fail(
        claimed.job_id,
        claimed.token,
        "builtins.ValueError",
        'Traceback (most recent call last):\nValueError: "bad"',
        attempt=claimed.job.attempts,
        retry=retry,
        delay=0,
    )
    return claimed.job_id


def succeed_next(queue: str = "default", result=None) -> str:
    protocol = get_engine().worker_protocol()
    [claimed] = protocol.claim(queue, "w1").jobs
    protocol.complete(claimed.job_id, claimed.token, result)
    return claimed.job_id


# -- status ------------------------------------------------------------------------------------


def test_status_of_an_empty_site_reads_well():
    text = jq("status")
    assert "Workers: none. No worker is alive" in text
    assert "Schedules: none declared" in text
    for queue in CONFIGURED:
        assert re.search(rf"^  {queue}\s+active\s+0\s+0\s+0\s+0\s+0\s+0\s+—\s+0$", text, re.M)
    data = jq_json("status")
    assert [q["name"] for q in data["queues"]] == CONFIGURED
    assert data["workers"] == [] and data["schedules"] == []
    assert data["redis"]["prefix"] == get_engine().config.prefix
    assert datetime.fromisoformat(data["now"]).tzinfo is not None


def test_status_counts_every_state_and_finds_the_job_waiting_longest():
    first = t.add.enqueue(1, 1).id  # priority 0: runs after the urgent one, waits longest
    time.sleep(0.01)
    t.add.using(priority=10).enqueue(2, 2)
    t.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(3, 3)
    t.add.using(queue_name="emails").enqueue(4, 4)
    t.boom.using(queue_name="low").enqueue()
    fail_next("low")
    api.pause("emails")

    data = jq_json("status")
    queues = {q["name"]: q for q in data["queues"]}
    assert queues["default"]["counts"] == {
        "scheduled": 1,
        "queued": 2,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "canceled": 0,
    }
    assert queues["default"]["oldest_waiting"]["job"] == first
    assert 0 <= queues["default"]["oldest_waiting"]["age_seconds"] < 30
    assert queues["low"]["counts"]["failed"] == 1 and queues["low"]["oldest_waiting"] is None
    assert queues["emails"]["paused"] and not queues["default"]["paused"]

    text = jq("status")
    assert not EPOCH_MS.search(text)
    header = next(line for line in text.splitlines() if line.startswith("  queue "))
    row = next(line for line in text.splitlines() if line.startswith("  default "))
    # Columns line up: the oldest job's age starts under its heading, in words.
    column = header.index("oldest waiting")
    assert re.match(r"\d+ seconds?|just now", row[column:])
    assert re.search(r"^  emails\s+paused\s", text, re.M)
    assert "2 jobs wait in 'default' and no live worker takes from it." in text


def test_status_shows_live_and_dead_workers(settings):
    settings.JOBQUEUE = {**settings.JOBQUEUE, "WORKER_DEAD_AFTER": 0.5}
    engine = get_engine()
    fields = {"hostname": "box", "concurrency": 4, "birth": engine.now_ms(), "queues": ["low"]}
    engine.workers.heartbeat("gone-worker", {**fields, "pid": 11, "state": "idle"})
    time.sleep(0.6)
    busy = {"pid": 12, "state": "busy", "current_jobs": ["default:abc", "default:def"]}
    engine.workers.heartbeat("busy-worker", {**fields, **busy, "queues": ["default", "low"]})

    data = jq_json("status")
    workers = {w["name"]: w for w in data["workers"]}
    assert workers["busy-worker"]["alive"] and workers["busy-worker"]["state"] == "busy"
    assert workers["busy-worker"]["current_jobs"] == ["default:abc", "default:def"]
    assert workers["gone-worker"]["alive"] is False and workers["gone-worker"]["state"] == "dead"
    assert workers["gone-worker"]["heartbeat_age_seconds"] >= 0.5
    queues = {q["name"]: q["live_workers"] for q in data["queues"]}
    assert queues["default"] == 1 and queues["low"] == 1 and queues["high"] == 0

    text = jq("status")
    assert "Workers: 1 alive, 1 dead" in text
    assert re.search(r"busy-worker\s+box/12\s+alive\s+busy\s+2/4\s+just now", text)
    assert re.search(
        r"gone-worker\s+box/11\s+dead\s+dead\s+0/4\s+(just now|\d+ seconds? ago)", text
    )
    assert "busy-worker runs default:abc, default:def" in text


def test_status_shows_each_schedules_next_and_last_run(settings):
    settings.JOBQUEUE = {
        **settings.JOBQUEUE,
        "SCHEDULES": {
            "ping": {"task": ADD, "every": 60, "args": [1, 1]},
            "nightly": {"task": ADD, "cron": "0 3 * * *", "args": [2, 2]},
        },
    }
    engine = get_engine()
    last = engine.enqueue(ADD, [1, 1])
    engine.schedules.set("ping", last=engine.now_ms(), job=last.id)
    engine.schedules.set("nightly", paused="1")

    data = jq_json("status")
    schedules = {s["name"]: s for s in data["schedules"]}
    ping, nightly = schedules["ping"], schedules["nightly"]
    now = datetime.fromisoformat(data["now"])
    assert now < datetime.fromisoformat(ping["next_run"]) <= now + timedelta(seconds=60)
    assert ping["last_job"] == last.id and ping["every_seconds"] == 60
    assert datetime.fromisoformat(ping["last_run"]) == last.enqueued_at
    assert nightly["paused"] and nightly["next_run"] is None and nightly["cron"] == "0 3 * * *"

    text = jq("status")
    assert re.search(
        # "now" when the next tick is under a second away (a run at hh:mm:59)
        r"ping\s+tests\.sample_tasks\.add\s+every minute\s+active\s+(in \d+ seconds?|now) "
        r"\(\d{4}-\d\d-\d\dT\d\d:\d\d:00Z\)\s+(just now|\d+ seconds? ago), " + last.id,
        text,
    )
    assert re.search(r"nightly\s+tests\.sample_tasks\.add\s+cron 0 3 \* \* \*\s+paused", text)


# -- enqueue and tasks ------------------------------------------------------------------------


def test_enqueue_prints_the_new_jobs_id_and_keeps_the_tasks_options():
    job_id = jq("enqueue", "tests.sample_tasks.fail_twice", "--kwargs", '{"label": "x"}').strip()
    job = get_engine().get(job_id)
    assert (job.task, job.kwargs, job.queue, job.max_attempts) == (
        "tests.sample_tasks.fail_twice",
        {"label": "x"},
        "default",
        3,
    )
    other = jq("enqueue", ADD, "--args", "[2, 3]", "--queue", "high", "--priority", "-7")
    job = get_engine().get(other.strip())
    assert (job.args, job.queue, job.priority, job.state) == ([2, 3], "high", -7, "queued")
    # A unique key held by a waiting job: the same job, as from the site's code.
    first = jq("enqueue", "tests.sample_tasks.unique_report", "--args", "[9]").strip()
    assert jq("enqueue", "tests.sample_tasks.unique_report", "--args", "[9]").strip() == first


def test_enqueue_with_a_delay_schedules_the_job_and_json_describes_it():
    before = timezone.now()
    data = jq_json("enqueue", ADD, "--args", "[1, 2]", "--delay", "600", "--queue", "low")
    assert data["state"] == "scheduled" and data["queue"] == "low"
    assert data["args"] == {"json_chars": 6, "truncated": False, "value": [1, 2], "preview": None}
    run_at = datetime.fromisoformat(data["times"]["run_at"])
    assert before + timedelta(seconds=599) < run_at < before + timedelta(seconds=610)
    assert api.counts("low")["scheduled"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["os.system", "--args", '["ls"]'],
            "Task 'os.system' is not a registered task.*jobqueue tasks",
        ),
        ([ADD, "--args", "[1,"], r"--args '\[1,' is not valid JSON"),
        ([ADD, "--args", '{"a": 1}'], "--args must be a JSON array of arguments, not dict"),
        (
            [ADD, "--kwargs", "[1]"],
            "--kwargs must be a JSON object of keyword arguments, not list",
        ),
        ([ADD, "--args", "[1, 2]", "--priority", "101"], "--priority 101 is out of range"),
        (
            [ADD, "--args", "[1, 2]", "--priority", "high"],
            "--priority 'high' is not a whole number",
        ),
        ([ADD, "--args", "[1, 2]", "--delay", "-1"], "--delay -1 must be 0 or more"),
        ([ADD, "--args", "[1, 2]", "--delay", "nan"], "--delay nan must be 0 or more"),
        ([ADD, "--args", "[1, 2]", "--queue", "nope"], "Queue 'nope' is not a queue of backend"),
        ([ADD, "--args", "[1]"], "cannot take these arguments: missing a required argument: 'b'"),
        ([ADD, "--args", "[NaN, 1]"], "was not enqueued: .*nan"),
    ],
)
def test_enqueue_refuses_bad_input_and_writes_nothing(args, message):
    refused("enqueue", *args, match=message)
    nothing_in_redis()


def test_tasks_lists_the_names_enqueue_accepts():
    data = jq_json("tasks")
    tasks = {task["name"]: task for task in data}
    assert tasks[ADD]["queue"] == "default"
    assert tasks["tests.sample_tasks.fail_twice"]["options"] == {"max_attempts": 3}
    assert "os.system" not in tasks
    assert re.search(
        r"^tests\.sample_tasks\.fail_twice  \(queue default, max_attempts=3\)$", jq("tasks"), re.M
    )


# -- retry, cancel, delete -------------------------------------------------------------------


def test_retry_by_ids_reports_each_and_fails_after_doing_the_others():
    failed = t.boom.enqueue().id
    fail_next()
    done = t.add.enqueue(1, 1).id
    succeed_next()
    gone = "default:000000000000000000000000"
    with pytest.raises(CommandError, match=r"Retried 1 of 3 jobs\. 2 could not be retried"):
        out, err = StringIO(), StringIO()
        call_command("jobqueue", "retry", failed, done, gone, stdout=out, stderr=err)
    assert out.getvalue().splitlines() == [f"{failed}: retried"]
    assert f"{done}: not retried: Job '{done}' is succeeded" in err.getvalue()
    assert f"{gone}: not retried: No job '{gone}'" in err.getvalue()
    assert get_engine().get(failed).state == "queued"


def test_cancel_and_delete_by_ids():
    waiting = t.add.enqueue(1, 1).id
    other = t.add.enqueue(2, 2).id
    assert jq("cancel", waiting).splitlines() == [f"{waiting}: canceled", "Canceled 1 of 1 job."]
    assert get_engine().get(waiting).state == "canceled"
    assert jq("delete", waiting, other).splitlines()[-1] == "Deleted 2 of 2 jobs."
    for job_id in (waiting, other):
        with pytest.raises(JobNotFound):
            get_engine().get(job_id)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["retry", "default:ok", "not-an-id"], "'not-an-id' is not a job id"),
        (
            ["cancel", "default:ok", "--queue", "default"],
            "Give job ids or --queue with --status, not both",
        ),
        (["delete"], "Name the jobs to delete: give their ids, or --queue"),
        (["retry", "--queue", "default"], r"\(--status is missing\)"),
        (["cancel", "--queue", "default", "--status", "lost"], "'lost' is not a job state"),
        (
            ["cancel", "--queue", "default", "--status", "failed"],
            "only scheduled, queued, running jobs can be canceled",
        ),
        (
            ["retry", "--queue", "default", "--status", "queued"],
            "only failed, canceled jobs can be retried",
        ),
        (["delete", "--queue", "nope", "--status", "failed"], "Queue 'nope' is not known"),
    ],
)
def test_steering_refuses_bad_input_and_changes_nothing(args, message):
    job_id = t.add.enqueue(1, 1).id
    refused(*[job_id if a == "default:ok" else a for a in args], match=message)
    assert get_engine().get(job_id).state == "queued"


def test_steering_a_whole_queue_by_state():
    for n in range(3):
        t.boom.enqueue(str(n))
        fail_next()
    assert jq("retry", "--queue", "default", "--status", "failed") == (
        "Retried 3 failed jobs of queue 'default'.\n"
    )
    assert api.counts("default")["queued"] == 3
    running = get_engine().worker_protocol().claim("default", "w1").jobs[0].job_id
    assert jq("cancel", "--queue", "default", "--status", "queued") == (
        "Canceled 2 queued jobs of queue 'default'.\n"
    )
    assert jq("cancel", "--queue", "default", "--status", "running") == (
        "Asked 1 running job of queue 'default' to stop (their workers cancel them).\n"
    )
    assert get_engine().get(running).cancel_requested
    assert jq("delete", "--queue", "default", "--status", "running") == (
        "Deleted 1 running job of queue 'default'.\n"
    )
    assert jq("delete", "--queue", "default", "--status", "canceled") == (
        "Deleted 2 canceled jobs of queue 'default'.\n"
    )
    nothing_in_redis()


# -- purge, pause, resume --------------------------------------------------------------------


def test_purge_pause_and_resume_say_what_changed():
    for n in range(2):
        t.add.enqueue(n, n)
        succeed_next(result=n)
    assert jq("purge", "default", "--status", "succeeded") == (
        "Deleted 2 succeeded jobs of queue 'default'.\n"
    )
    assert api.counts("default")["succeeded"] == 0
    assert "paused: workers take no job from it" in jq("pause", "emails")
    assert get_engine().queue_info("emails").paused
    assert jq("pause", "emails") == "Queue 'emails' was already paused; nothing changed.\n"
    assert jq("resume", "emails") == "Queue 'emails' resumed: workers take its jobs again.\n"
    assert jq("resume", "emails") == "Queue 'emails' was not paused; nothing changed.\n"
    assert not get_engine().queue_info("emails").paused


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["purge", "default", "--status", "running"], "only .* jobs can be purged"),
        (["purge", "default", "--status", "done"], "'done' is not a job state"),
        (["purge", "nope", "--status", "failed"], "Queue 'nope' is not known"),
        (["pause", "no/such"], "Queue name 'no/such' is invalid"),
        (["resume", "nope"], "Queue 'nope' is not known"),
    ],
)
def test_queue_subcommands_refuse_bad_input(args, message):
    t.add.enqueue(1, 1)
    refused(*args, match=message)
    assert api.counts("default")["queued"] == 1
    assert not get_engine().queue_info("default").paused


def test_a_queue_only_redis_knows_is_known():
    get_engine().enqueue(ADD, [1, 2], queue="adhoc")
    assert jq("pause", "adhoc").startswith("Queue 'adhoc' paused")
    data = jq_json("status")
    adhoc = next(q for q in data["queues"] if q["name"] == "adhoc")
    assert adhoc["configured"] is False and adhoc["paused"] is True
    assert re.search(r"^  adhoc\s+paused, not configured\s", jq("status"), re.M)
    api.purge("adhoc", "queued")


# -- inspect ---------------------------------------------------------------------------------


def test_inspect_shows_the_job_whole():
    engine = get_engine()
    job_id = engine.enqueue(BOOM, ["\x1b[31mred"], {"n": 1}, max_attempts=1).id
    fail_next()
    engine.retry(job_id)  # by hand: a fresh budget, the first attempt still counted in all
    protocol = engine.worker_protocol()
    [claimed] = protocol.claim("default", "w2").jobs
    protocol.progress(job_id, claimed.token, 3, 4, "rows")
    engine.logs.append(
        job_id, [{"t": time.time(), "level": "INFO", "logger": "app", "msg": "one\x07"}]
    )
    protocol.fail(
        job_id, claimed.token, "builtins.KeyError", "Traceback\nKeyError: 'k'", attempt=2
    )

    data = jq_json("inspect", job_id)
    assert (data["id"], data["task"], data["state"], data["queue"]) == (
        job_id,
        BOOM,
        "failed",
        "default",
    )
    assert data["attempts"] == {
        "this_run": 1,
        "max": 1,
        "in_all": 2,
        "before_retry": 1,
        "stalls": 0,
    }
    assert data["workers"] == ["w1", "w2"]
    assert data["progress"] == {"done": 3, "total": 4, "message": "rows"}
    assert data["args"]["value"] == ["\x1b[31mred"] and data["kwargs"]["value"] == {"n": 1}
    assert [(e["attempt"], e["exception_class"]) for e in data["errors"]] == [
        (1, "builtins.ValueError"),
        (2, "builtins.KeyError"),
    ]
    assert data["errors"][1]["traceback"] == "Traceback\nKeyError: 'k'"
    assert data["log"]["total"] == 1 and data["log"]["records"][0]["message"] == "one\x07"
    timeline = data["timeline"]
    assert timeline["complete"]
    states = [e["state"] for e in timeline["events"]]
    assert states == [
        "queued",
        "running",
        "failed",
        "queued",
        "running",
        "failed",
    ]  # no progress row
    for moment in (data["times"]["enqueued_at"], timeline["events"][0]["at"]):
        assert datetime.fromisoformat(moment).tzinfo is not None

    text = jq("inspect", job_id)
    assert re.search(r"^  attempts\s+1 of 1 · 2 in all \(retried by hand after 1\)$", text, re.M)
    assert re.search(r"^  enqueued\s+(just now|\d+ seconds? ago) \(\d{4}-.*Z\)$", text, re.M)
    assert re.search(r"^  progress\s+3 of 4 \(75%\) rows$", text, re.M)
    assert re.search(r"^  workers\s+w1, w2$", text, re.M)
    assert "Errors (2 kept)" in text and "    KeyError: 'k'" in text
    assert "app: one\\x07" in text  # control characters are shown, not sent to the terminal
    assert "\\x1b[31mred" in text.replace("\\u001b", "\\x1b") and "\x1b" not in text
    assert re.search(r"^  v2 +\S+Z  running +att=1 worker=w1", text, re.M)
    assert not EPOCH_MS.search(text)


def test_inspect_cuts_long_values_and_says_their_size():
    job_id = t.add.enqueue("x" * 30_000, 1).id
    succeed_next(result=["y" * 50_000])
    data = jq_json("inspect", job_id)
    assert data["args"]["truncated"] and data["args"]["value"] is None
    assert data["args"]["json_chars"] == 30_007 and len(data["args"]["preview"]) == 10_000
    assert data["result"]["truncated"] and data["result"]["json_chars"] == 50_004
    text = jq("inspect", job_id)
    assert "  args    (the first 10,000 of 30,007 characters)" in text
    assert "Result: (the first 10,000 of 50,004 characters)" in text
    assert len(text) < 25_000


def test_inspect_a_result_that_fits_and_a_job_still_waiting():
    done = t.add.enqueue(2, 3).id
    succeed_next(result=5)
    assert "Result: 5" in jq("inspect", done)
    assert jq_json("inspect", done)["result"]["value"] == 5
    waiting = t.add.enqueue(1, 1).id
    get_engine().logs.append(waiting, [{"t": time.time(), "level": "INFO", "msg": "m"}] * 3)
    text = jq("inspect", waiting, "--log-lines", "0")
    assert "Result: none yet" in text and "Log" not in text
    assert jq_json("inspect", waiting, "--log-lines", "0")["log"] == {"total": 3, "records": []}
    assert "Log (3 records kept; the last 2 shown" in jq("inspect", waiting, "--log-lines", "2")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["default-no-colon"], "'default-no-colon' is not a job id"),
        (["default:000000000000000000000000"], "No job 'default:0+'.*RESULT_TTL"),
        (["default:abc", "--log-lines", "-1"], "--log-lines -1 must be 0 or more"),
    ],
)
def test_inspect_refuses_a_bad_or_gone_job(args, message):
    refused("inspect", *args, match=message)


# -- health ----------------------------------------------------------------------------------


def health(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("jobqueue", "health", *args, stdout=out, stderr=err)
    except SystemExit as exit:
        return int(exit.code), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_health_without_a_worker_names_each_queue_left_alone():
    code, out, err = health()
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == len(CONFIGURED)
    assert lines[0].startswith("unhealthy: no live worker takes jobs from queue 'default'")
    code, out, _ = health("--queue", "emails", "--json")
    data = json.loads(out)
    assert code == 1 and data["healthy"] is False and data["exit_code"] == 1
    assert data["queues"] == [{"name": "emails", "live_workers": 0, "data_lost_at": None}]
    assert len(data["problems"]) == 1


def test_health_with_a_live_worker_is_healthy(start_worker):
    start_worker("-c", "1", "default", "emails")
    wait_for(lambda: health("--queue", "default", "--queue", "emails")[0] == 0, timeout=30)
    code, out, _ = health("--queue", "default", "--queue", "emails")
    assert out.startswith("healthy: Redis at redis://") and "default (1 live worker)" in out
    code, _, err = health()  # every configured queue: high, low and reports have none
    assert code == 1 and "queue 'high'" in err and "queue 'default'" not in err


def test_health_refuses_an_unknown_queue_with_exit_code_2():
    with pytest.raises(CommandError, match="Queue 'nope' is not known") as caught:
        health("--queue", "nope")
    assert caught.value.returncode == 2
    with pytest.raises(CommandError, match="--data-loss-window -5 must be 0 or more"):
        health("--data-loss-window", "-5")


def test_health_reports_a_data_loss(settings, private_redis, start_worker):
    settings.JOBQUEUE = {**settings.JOBQUEUE, "REDIS_URL": private_redis.url}
    start_worker("-c", "1", "default", JOBQUEUE_REDIS_URL=private_redis.url)
    wait_for(lambda: health("--queue", "default")[0] == 0, timeout=30)
    jq("enqueue", ADD, "--args", "[1, 1]")  # this process now knows the queue's epoch
    private_redis.client().flushall()
    get_engine().enqueue(ADD, [2, 2])  # noticed, and recorded in Redis; the job is written

    last: list = []

    def the_loss_reported():
        # The loss, whatever else is said meanwhile: the flush also emptied the workers'
        # registry, and the worker is back in it at its next heartbeat.
        code, out, _ = health("--queue", "default", "--json")
        problems = json.loads(out)["problems"]
        last[:] = [code, problems]
        return code == 1 and any("lost the data" in p for p in problems)

    try:
        wait_for(the_loss_reported, timeout=30)
    except AssertionError:
        raise AssertionError(f"health kept saying {last}") from None
    code, _, err = health("--queue", "default")
    assert code == 1
    assert re.search(
        r"(?m)^unhealthy: Redis lost the data of queue 'default' (just now|\d+ seconds? ago) "
        r"\(\S+Z\): .*'manage.py jobqueue rebuild'",
        err,
    ), err
    _, out, _ = health("--queue", "default", "--data-loss-window", "0", "--json")
    assert not any("lost the data" in p for p in json.loads(out)["problems"]), out
    assert "data lost" in jq("status")


def test_an_unreachable_redis_is_one_line_naming_it(settings):
    settings.JOBQUEUE = {**settings.JOBQUEUE, "REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"}
    for args in (
        ["status"],
        ["inspect", "default:abc"],
        ["pause", "default"],
        ["enqueue", ADD, "--args", "[1, 2]"],
    ):
        error = refused(
            *args, match=r"Redis at redis://:\*\*\*@127\.0\.0\.1:1/0 cannot be reached"
        )
        assert "hunter2" not in str(error) and "\n" not in str(error)
    with pytest.raises(CommandError, match="cannot be reached") as caught:
        health()
    assert caught.value.returncode == 2


def test_a_malformed_setting_is_one_line(settings):
    settings.JOBQUEUE = {**settings.JOBQUEUE, "LEASE_SECONDS": -1}
    refused("status", match=r"JOBQUEUE\['LEASE_SECONDS'\] = -1 is invalid")
    with pytest.raises(CommandError, match="LEASE_SECONDS") as caught:
        health()
    assert caught.value.returncode == 2


# -- the database's side, folded in ----------------------------------------------------------


@pytest.mark.database
@pytest.mark.django_db
def test_mirror_rebuild_and_prune_are_subcommands_and_keep_their_old_names():
    from jobqueue.models import Job

    job_id = t.add.enqueue(1, 2).id
    assert jq("mirror", "--once") == "Applied 1 events.\n"
    assert Job.objects.get(id=job_id).status == "queued"
    assert jq("rebuild") == "Copied 1 jobs from Redis; marked 0 lost.\n"
    assert jq("prune", "--days", "5") == "Deleted 0 rows of jobs finished over 5 days ago.\n"
    out = StringIO()
    call_command("jobqueue_rebuild", stdout=out)
    assert out.getvalue() == "Copied 1 jobs from Redis; marked 0 lost.\n"
    refused("mirror", "--batch", "0", match="--batch 0 must be 1 or more")
    refused("prune", "--days", "soon", match="--days 'soon' is not a number")


# -- through a real process ------------------------------------------------------------------


def test_exit_codes_and_stderr_of_the_real_command(run_worker, keyspace):
    result = run_worker("health", "--queue", "default", command="jobqueue")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("unhealthy: no live worker takes jobs from queue 'default'")

    result = run_worker("enqueue", "os.system", "--args", '["ls"]', command="jobqueue")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("CommandError: Task 'os.system' is not a registered task")

    result = run_worker("enqueue", ADD, "--args", "[20, 22]", command="jobqueue")
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert get_engine().get(job_id).args == [20, 22]

    result = run_worker("status", "--json", "--settings", "tests.settings", command="jobqueue")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["queues"][0]["counts"]["queued"] == 1

    result = run_worker("health", command="jobqueue", JOBQUEUE_REDIS_URL="redis://127.0.0.1:1/0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "Redis at redis://127.0.0.1:1/0 cannot be reached" in result.stderr
