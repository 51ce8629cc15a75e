"""Enqueues that wait for replicas: the ``ENQUEUE_REPLICAS`` option.

Redis replicates asynchronously: a primary that dies right after acknowledging an enqueue may
take the job with it, and the replica Sentinel promotes never had it. With
``ENQUEUE_REPLICAS = n`` each enqueue returns only once ``n`` replicas hold its jobs (Redis's
``WAIT``), and raises :class:`NotReplicated` otherwise. Sentinel promotes the replica that
holds the most of the primary's writes, so with ``n >= 1`` an acknowledged job survives the
failover of its primary. Not on Redis Cluster (the engine refuses the option there).
"""

from __future__ import annotations

import redis

from .config import EngineConfig
from .errors import NotReplicated
from .runner import ScriptRunner


def await_replicas(runner: ScriptRunner, config: EngineConfig, job_ids: list[str]) -> None:
    """Wait until ``ENQUEUE_REPLICAS`` replicas hold what this thread's connection just
    wrote (``WAIT``), or raise :class:`NotReplicated`.

    It runs on the connection that ran the enqueue script (``DirectCaller.execute_here``):
    WAIT counts the replicas that reached that connection's last write. Had the
    connection been replaced since (a failover between the script and WAIT), a new one
    would count replicas of a new primary that may never have had the jobs; so a lost
    connection here raises instead. The ``INCR`` before it makes the wait cover the jobs
    of a repeated enqueue too, which found its jobs there and wrote nothing itself."""
    wanted = config.enqueue_replicas
    timeout_ms = max(1, round(config.enqueue_replicas_timeout * 1000))  # 0: forever
    direct = runner.scripts.direct
    assert direct is not None, "Engine refuses enqueue_replicas on Redis Cluster"
    try:
        replies = direct.execute_here(
            [("INCR", runner.keys.replicated), ("WAIT", wanted, timeout_ms)]
        )
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        acknowledged, why = 0, f"the connection was lost before the replicas answered ({exc})"
    else:
        error = next((reply for reply in replies if isinstance(reply, Exception)), None)
        if error is not None:
            acknowledged, why = 0, f"Redis refused WAIT: {error}"
        else:
            acknowledged = int(replies[1])
            if acknowledged >= wanted:
                return
            why = (
                f"only {acknowledged} of the {wanted} replicas asked for (ENQUEUE_REPLICAS) "
                f"acknowledged within {timeout_ms} ms (ENQUEUE_REPLICAS_TIMEOUT)"
            )
    more = len(job_ids) - 3
    shown = ", ".join(job_ids[:3]) + (f" and {more} more" if more > 0 else "")
    raise NotReplicated(
        f"The primary holds job {shown}, but {why}: a failover now could lose it. "
        "Enqueue it again with the same job_id or idempotency key to wait again (nothing "
        "is created twice), or check the replicas (INFO replication).",
        job_ids,
        acknowledged,
        wanted,
    )
