"""The benchmark runner: jobqueue and its Python peers, same workloads, same dedicated Redis.

    python -m bench                      # jobqueue, and the peers if bench/.venv-peers exists
    python -m bench --install-peers      # first create bench/.venv-peers with the peers
    python -m bench --smoke              # tiny N, jobqueue only: checks the runner works (CI)

Starts its own ``redis-server`` on a free loopback port (never a shared one), runs every
workload for every system ``--repeat`` times, interleaved (each repetition visits the systems in
a rotated order), with a flushed Redis before each run, and prints a markdown table of medians
(min–max) and the ratios jobqueue is held to. Writes ``bench/results/latest.json`` and
``latest.md``. Nothing here asserts a timing: the numbers are reported, not tested.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = ROOT / "bench" / ".venv-peers"
PEERS = ["huey", "dramatiq", "saq", "celery", "rq", "arq"]
BASELINE = "bare"
WORKLOADS = ["enqueue", "bulk", "drain", "latency", "memory", "rss"]

sys.path.insert(0, str(ROOT))
from tests.redis_server import RedisServer  # noqa: E402


def install_peers() -> None:
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-r", str(ROOT / "bench" / "requirements-peers.txt")], check=True)
    subprocess.run([*pip, "--no-deps", "arq>=0.26", "click", "watchfiles"], check=True)


def python_for(system: str) -> str:
    return sys.executable if system == "jobqueue" else str(PEERS_VENV / "bin" / "python")


def run_one(system: str, workload: str, redis_url: str, n: int, timeout: float) -> dict | None:
    command = [
        python_for(system),
        "-m",
        f"bench.adapters.{system}",
        "--workload",
        workload,
        "--redis",
        redis_url,
        "--n",
        str(n),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_REDIS_URL": redis_url}
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        print(f"  {system} {workload}: timed out", file=sys.stderr)
        return None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        print(f"  {system} {workload}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def versions(systems: list[str]) -> dict[str, str]:
    import django
    import redis

    import jobqueue

    found = {
        "python": platform.python_version(),
        "django": django.get_version(),
        "redis-py": redis.__version__,
        "jobqueue": jobqueue.__version__,
    }
    if any(s != "jobqueue" for s in systems):
        listing = subprocess.run(
            [python_for("huey"), "-m", "pip", "list", "--format", "json"],
            capture_output=True,
            text=True,
        ).stdout
        for item in json.loads(listing or "[]"):
            if item["name"].lower() in {*PEERS, "kombu", "redis", "celery"}:
                found[f"peer {item['name']}"] = item["version"]
    return found


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def summary(values: list[float]) -> dict[str, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt(stat: dict[str, float] | None, digits: int = 0) -> str:
    if stat is None:
        return "—"
    if stat["min"] == stat["max"]:
        return f"{stat['median']:,.{digits}f}"
    return f"{stat['median']:,.{digits}f} ({stat['min']:,.{digits}f}–{stat['max']:,.{digits}f})"


def collect(results: dict[str, dict[str, list[dict]]]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for system, by_workload in results.items():
        row: dict[str, Any] = {}
        for workload, runs in by_workload.items():
            row[workload] = summary([r["value"] for r in runs if r.get("value") is not None])
            if workload == "latency":
                row["latency_p99"] = summary([r["p99"] for r in runs if "p99" in r])
            if workload == "drain" and system == "jobqueue":
                row["mirror_lag_p99"] = summary(
                    [
                        r["mirror_lag_p99_ms"]
                        for r in runs
                        if r.get("mirror_lag_p99_ms") is not None
                    ]
                )
        table[system] = row
    return table


def ratios(table: dict[str, dict[str, Any]]) -> list[str]:
    peers = {s: r for s, r in table.items() if s not in ("jobqueue", BASELINE)}
    jq = table.get("jobqueue", {})
    lines = []

    def best(key: str, high: bool = True) -> tuple[str, float] | None:
        found = [(s, r[key]["median"]) for s, r in peers.items() if r.get(key)]
        if not found:
            return None
        return max(found, key=lambda x: x[1]) if high else min(found, key=lambda x: x[1])

    for key, label, target, high in [
        ("drain", "drain", 1.5, True),
        ("enqueue", "enqueue", 1.0, True),
        ("bulk", "bulk enqueue", 5.0, True),
    ]:
        peer = best(key, high)
        if peer and jq.get(key):
            ratio = jq[key]["median"] / peer[1]
            lines.append(
                f"- {label}: jobqueue {jq[key]['median']:,.0f}/s vs fastest peer "
                f"{peer[0]} {peer[1]:,.0f}/s = **{ratio:.2f}×** (target ≥ {target}×)"
            )
    peer = best("latency_p99", high=False)
    if peer and jq.get("latency_p99"):
        lines.append(
            f"- pickup latency p99: jobqueue {jq['latency_p99']['median']:.2f} ms vs best "
            f"peer {peer[0]} {peer[1]:.2f} ms (target ≤)"
        )
    memories = [r["memory"]["median"] for r in peers.values() if r.get("memory")]
    if memories and jq.get("memory"):
        lines.append(
            f"- Redis bytes per queued job: jobqueue {jq['memory']['median']:.0f} vs "
            f"peers' median {statistics.median(memories):.0f} (target ≤)"
        )
    if jq.get("mirror_lag_p99"):
        lines.append(
            f"- mirror lag p99 at full drain speed: {jq['mirror_lag_p99']['median']:.0f} ms "
            "(target ≤ 1000 ms)"
        )
    return lines


def markdown(table: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    head = (
        "| system | enqueue, one call per job (jobs/s) | bulk enqueue (jobs/s) | drain, 2 worker "
        "processes (jobs/s) | pickup latency p50 / p99 (ms) | Redis bytes per queued job | "
        "idle worker RSS (MB) |\n|---|---|---|---|---|---|---|"
    )
    rows = []
    for system, r in table.items():
        latency = f"{fmt(r.get('latency'), 2)} / {fmt(r.get('latency_p99'), 2)}"
        rows.append(
            f"| {system} | {fmt(r.get('enqueue'))} | {fmt(r.get('bulk'))} | "
            f"{fmt(r.get('drain'))} | {latency} | {fmt(r.get('memory'))} | "
            f"{fmt(r.get('rss'), 1)} |"
        )
    lines = [
        f"Medians of {meta['repeat']} runs (min–max), {meta['n']:,} jobs, "
        f"{meta['machine']}, Redis {meta['redis']}, {meta['date']}.",
        "",
        head,
        *rows,
        "",
        *ratios(table),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="jobqueue's benchmark runner.")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--systems", default="")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--install-peers", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny N, jobqueue only (CI)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    if args.install_peers:
        install_peers()
    if args.smoke:
        args.n, args.repeat, args.systems = 200, 1, args.systems or "jobqueue"
    systems = (
        args.systems.split(",")
        if args.systems
        else ["jobqueue"]
        + ([*PEERS, BASELINE] if (PEERS_VENV / "bin" / "python").exists() else [])
    )
    workloads = args.workloads.split(",")
    results: dict[str, dict[str, list[dict]]] = {s: {w: [] for w in workloads} for s in systems}
    with RedisServer() as server:
        client = server.client()
        redis_version = client.info("server")["redis_version"]
        for rep in range(args.repeat):
            order = systems[rep % len(systems) :] + systems[: rep % len(systems)]
            for workload in workloads:
                for system in order:
                    client.flushall()
                    n = min(args.n, 300) if workload == "latency" else args.n
                    started = time.monotonic()
                    result = run_one(system, workload, server.url, n, timeout=900)
                    took = time.monotonic() - started
                    print(
                        f"[{rep + 1}/{args.repeat}] {system:9} {workload:8} "
                        f"{json.dumps(result)} ({took:.1f}s)",
                        file=sys.stderr,
                    )
                    if result is not None:
                        results[system][workload].append(result)
    table = collect(results)
    meta = {
        "n": args.n,
        "repeat": args.repeat,
        "machine": machine(),
        "redis": redis_version,
        "date": time.strftime("%Y-%m-%d"),
        "versions": versions(systems),
    }
    text = markdown(table, meta)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.md").write_text(text)
    (out / "latest.json").write_text(
        json.dumps({"meta": meta, "results": results, "table": table}, indent=2)
    )
    print(text)
    failed = [f"{s} {w}" for s, by in results.items() for w, runs in by.items() if not runs]
    if failed:
        print(f"No result for: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
