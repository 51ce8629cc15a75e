"""Where a worker's child takes its next job from: jobs handed to its own inboxes by an enqueue
(announced to the parent before they run) and the jobs its parent sends over the pipe."""

import logging
import threading
import time

import pytest

from jobqueue.conf import get_engine
from jobqueue.engine import JobState, codec
from jobqueue.engine.handoff import Handoff
from jobqueue.worker.child import JobSource
from jobqueue.worker.pipe import Pipe
from tests import sample_tasks as t

MEMBER = "w.1#0"  # child 0 of worker "w.1"


@pytest.fixture
def source():
    engine = get_engine()
    parent, child = Pipe.pair()
    inboxes = {engine.keys.queue("default").inbox(MEMBER): "default"}
    source = JobSource(child, inboxes, wait=0.2)
    yield source, parent
    source.listener.close()
    engine.runner.run(
        *engine.worker_protocol().handoff.idle_call("default", MEMBER, False)
    )  # drops the inbox too
    parent.close()
    child.close()


def register():
    engine = get_engine()
    engine.runner.run(*engine.worker_protocol().handoff.idle_call("default", MEMBER, True, 3.0))


def piped(*ids):
    return [{"id": f"default:{i}", "token": "1", "fields": {}} for i in ids]


def wait_for_reply(listener):
    deadline = time.monotonic() + 5
    while not listener.has_reply():
        assert time.monotonic() < deadline, "the BLPOP never answered"
        time.sleep(0.01)


def test_a_handed_job_is_taken_from_the_inbox_and_announced_before_its_outcome(source):
    source, parent = source
    register()
    result = t.add.enqueue(2, 3)  # leased to the idle child in the enqueue's own script
    message = source.next()
    assert message["id"] == result.id and message["fields"]["args"] == "[2,3]"
    assert parent.messages() == []  # not announced yet: that waits until the task is called
    source.announce()
    source.announce()  # once only
    [announced] = parent.messages()
    took = codec.loads(announced)
    claim, since_ms = Handoff.read_entry(took["took"], took["entry"])
    assert claim.job_id == result.id and claim.token == message["token"]
    assert claim.deadline_ms - since_ms == 30_000 and took["at"] <= time.monotonic()
    job = get_engine().get(result.id)
    assert job.state is JobState.RUNNING and list(job.worker_ids) == ["w.1"]


def test_a_handed_job_runs_before_the_jobs_waiting_in_the_pipe(source):
    source, parent = source
    parent.send(codec.encode(piped("p1", "p2")))
    assert source.next()["id"] == "default:p1"  # read from the pipe; p2 waits
    register()
    source.listener.arm()  # as when the child last waited idle
    result = t.add.enqueue(1, 1)
    wait_for_reply(source.listener)
    assert source.next()["id"] == result.id  # the parent puts it first too
    assert source.next()["id"] == "default:p2"


def test_an_unreadable_inbox_entry_is_logged_and_skipped(source, caplog):
    source, parent = source
    inbox = next(iter(source.inboxes))
    get_engine().client.rpush(inbox, "not a claim")
    source.listener.arm()
    wait_for_reply(source.listener)
    parent.send(codec.encode(piped("p1")))
    with caplog.at_level(logging.ERROR, logger="jobqueue.worker"):
        assert source.next()["id"] == "default:p1"
    assert "inbox_unreadable" in caplog.text
    assert source.owed is None  # nothing to announce


def test_the_pipe_closing_ends_the_source(source):
    source, parent = source
    parent.close()
    assert source.next() is None


def test_a_child_idle_longer_than_its_inbox_wait_still_takes_what_comes(source):
    # Its BLPOP times out (every 0.2 s here) and is sent again; the pipe is watched all along.
    source, parent = source
    got = []
    reader = threading.Thread(target=lambda: got.extend([source.next(), source.next()]))
    reader.start()
    time.sleep(0.7)
    parent.send(codec.encode(piped("p1")))
    time.sleep(0.5)
    register()
    result = t.add.enqueue(1, 2)
    reader.join(timeout=10)
    assert not reader.is_alive(), "the child stopped waiting for its pipe and its inbox"
    assert [m["id"] for m in got] == ["default:p1", result.id]
