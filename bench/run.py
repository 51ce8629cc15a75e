"""The benchmark runner: jobqueue and its Python peers, same workloads, same dedicated Redis.

    python -m bench                      # jobqueue, and the peers if bench/.venv-peers exists
    python -m bench --install-peers      # first create bench/.venv-peers with the peers (only)
    python -m bench --smoke              # tiny N, jobqueue only: checks the runner works (CI)
    python -m bench --systems jobqueue,huey --workloads drain,latency --n 5000 --repeat 5
    python -m bench --against bddf31d    # also jobqueue as of another commit, side by side

Starts its own ``redis-server`` on a free loopback port (never a shared one), runs every
workload for every system ``--repeat`` times, interleaved (each repetition visits the systems in
a rotated order), with a flushed Redis before each run, and prints a markdown table of medians
(min–max) and the ratios jobqueue is held to. Writes ``bench/results/latest.json`` and
``latest.md`` (``--out`` elsewhere). Nothing here asserts a timing: the numbers are reported,
not tested. ``--systems`` and ``--workloads`` take comma-separated names (the adapters in
``bench/adapters/``, and ``WORKLOADS`` below).

``--against REV`` (any git revision: ``bddf31d``, ``main~3``, a branch) checks REV out, detached,
into a temporary ``git worktree`` and adds the system ``jobqueue@<short REV>``: that tree's own
``bench/adapters/jobqueue.py`` and its jobqueue, run with the tree as working directory and
``PYTHONPATH`` and with this runner's Python, interleaved with the other systems in every
repetition, in the table and the JSON like any system, with a "jobqueue vs jobqueue@REV" line
per workload (medians, and the ratio of each repetition's pair). Each workload runs the two
back to back, each first in every other repetition. It goes with ``--systems`` (given without
``jobqueue``, only the old one runs), ``--workloads`` and ``--smoke``. The two mirrors write to
fresh SQLite files of their own (unless ``BENCH_DATABASE_URL`` is set: then both use that
database, which needs the same migrations). A workload its adapter does not know is skipped
and shown as "—"; a tree without ``bench/adapters/jobqueue.py``, or whose adapter does not
import, stops the runner before anything runs. The worktree is removed at the end, also after
an error, Ctrl-C or SIGTERM. The working tree runs as ``jobqueue``, uncommitted changes
included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from subprocess import PIPE
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


@dataclass(frozen=True)
class Target:
    """How one system's adapter is run: which Python, from which tree, which module."""

    python: str
    adapter: str
    root: Path = ROOT
    env: dict[str, str] = field(default_factory=dict)
    workloads: tuple[str, ...] = tuple(WORKLOADS)  # the ones its adapter knows


def target_for(system: str) -> Target:
    return Target(python_for(system), f"bench.adapters.{system}")


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[tuple[str, str, Path]]:
    """``rev`` checked out, detached, in a temporary git worktree: its commit, short id and the
    tree. The worktree (and whatever else is in its temporary directory) is removed on the way
    out, however the block ends."""
    try:
        commit = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except RuntimeError:
        raise RuntimeError(f"no commit {rev!r} in {ROOT}'s repository") from None
    short = git("rev-parse", "--short", commit)
    base = Path(tempfile.mkdtemp(prefix=f"jq-bench-{short}-"))
    tree = base / "tree"
    try:
        git("worktree", "add", "--detach", "--quiet", str(tree), commit)
        yield commit, short, tree
    finally:
        try:
            git("worktree", "remove", "--force", str(tree))
        except RuntimeError:  # never made, or already gone: forget whatever git recorded
            git("worktree", "prune")
        shutil.rmtree(base, ignore_errors=True)


PREFLIGHT = """import json, jobqueue, bench.common, bench.adapters.jobqueue
print(json.dumps({"jobqueue": jobqueue.__file__,
                  "version": getattr(jobqueue, "__version__", "?"),
                  "workloads": list(getattr(bench.common, "WORKLOADS", []))}))"""


def private_database(path: Path) -> dict[str, str]:
    """The mirror's database: a fresh SQLite file, unless BENCH_DATABASE_URL names one."""
    return (
        {} if os.environ.get("BENCH_DATABASE_URL") else {"BENCH_DATABASE_URL": f"sqlite:///{path}"}
    )


def against_target(rev: str, short: str, tree: Path) -> Target:
    """The system ``jobqueue@<short>``: the tree's own adapter and jobqueue, this Python.
    Raises SystemExit with the reason when that tree cannot be benchmarked."""
    if not (tree / "bench" / "adapters" / "jobqueue.py").exists():
        raise SystemExit(f"--against {rev}: {short} has no bench/adapters/jobqueue.py")
    env = {"PYTHONPATH": str(tree)}
    env.update(private_database(tree.parent / f"mirror-{short}.sqlite3"))
    done = subprocess.run(
        [sys.executable, "-c", PREFLIGHT],
        cwd=tree,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"--against {rev}: {short}'s adapter does not import:\n{done.stderr}")
    found = json.loads(done.stdout.splitlines()[-1])
    if not Path(found["jobqueue"]).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"--against {rev}: jobqueue came from {found['jobqueue']}, not {tree}")
    return Target(
        sys.executable,
        "bench.adapters.jobqueue",
        tree,
        {**env, "BENCH_JOBQUEUE_VERSION": found["version"]},
        tuple(found["workloads"] or WORKLOADS),
    )


def run_one(
    system: str, target: Target, workload: str, redis_url: str, n: int, timeout: float
) -> dict | None:
    command = [
        target.python,
        "-m",
        target.adapter,
        "--workload",
        workload,
        "--redis",
        redis_url,
        "--n",
        str(n),
    ]
    env = {**os.environ, "PYTHONPATH": str(target.root), "BENCH_REDIS_URL": redis_url}
    env.update(target.env)
    with subprocess.Popen(
        command, cwd=target.root, env=env, stdout=PIPE, stderr=PIPE, text=True
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            interrupt(process)
            print(f"  {system} {workload}: timed out", file=sys.stderr)
            return None
        except BaseException:  # Ctrl-C, SIGTERM: the adapter stops its workers first
            interrupt(process)
            raise
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        print(f"  {system} {workload}: failed\n{stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def interrupt(process: subprocess.Popen) -> None:
    """Stop an adapter as Ctrl-C does (it then stops the workers it started), else kill it."""
    for wait in (1, 20):
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait)
            return
        process.send_signal(signal.SIGINT)
    process.kill()


def versions(systems: list[str], targets: dict[str, Target]) -> dict[str, str]:
    import django
    import redis

    import jobqueue

    found = {
        "python": platform.python_version(),
        "django": django.get_version(),
        "redis-py": redis.__version__,
        "jobqueue": jobqueue.__version__,
    }
    for system in systems:
        if "BENCH_JOBQUEUE_VERSION" in targets[system].env:
            found[system] = targets[system].env["BENCH_JOBQUEUE_VERSION"]
    if any(s in PEERS or s == BASELINE for s in systems):
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
            if workload == "drain" and system.startswith("jobqueue"):
                for key in ("mirror_lag_p99", "mirror_lag_p99_second_half"):
                    row[key] = summary([r.get(f"{key}_ms") for r in runs])
        table[system] = row
    return table


def ratios(table: dict[str, dict[str, Any]]) -> list[str]:
    peers = {s: r for s, r in table.items() if not s.startswith("jobqueue") and s != BASELINE}
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
    if lag := jq.get("mirror_lag_p99"):
        half = jq.get("mirror_lag_p99_second_half")
        split = (
            f"over the whole drain, {half['median']:.0f} ms over its second half, once the "
            "mirror has applied the jobs enqueued before it started "
            if half
            else ""
        )
        lines.append(
            f"- mirror lag p99 at full drain speed: {lag['median']:.0f} ms {split}"
            "(target ≤ 1000 ms)"
        )
    return lines


# (workload, what the ratio compares, the result's field, unit, higher is better)
VERSUS = [
    ("enqueue", "enqueue", "value", "/s", True),
    ("bulk", "bulk enqueue", "value", "/s", True),
    ("drain", "drain", "value", "/s", True),
    ("drain", "mirror lag p99 at full drain", "mirror_lag_p99_ms", " ms", False),
    (
        "drain",
        "mirror lag p99, drain's second half",
        "mirror_lag_p99_second_half_ms",
        " ms",
        False,
    ),
    ("latency", "pickup latency p50", "value", " ms", False),
    ("latency", "pickup latency p99", "p99", " ms", False),
    ("memory", "Redis bytes per queued job", "value", " B", False),
    ("rss", "idle worker RSS", "value", " MB", False),
]


def versus(results: dict[str, dict[str, list[dict]]], other: str) -> list[str]:
    """jobqueue against ``other`` (jobqueue at another commit), workload by workload: the ratio
    of the medians, and the range of the ratios of the pairs run in the same repetition."""
    lines = []
    for workload, label, key, unit, higher in VERSUS:
        ours, theirs = (
            {r["rep"]: r[key] for r in results.get(s, {}).get(workload, []) if r.get(key)}
            for s in ("jobqueue", other)
        )
        if not ours or not theirs:
            continue
        a, b = statistics.median(ours.values()), statistics.median(theirs.values())
        pairs = sorted(ours[rep] / theirs[rep] for rep in ours.keys() & theirs.keys())
        spread = (
            f"{pairs[0]:.2f}–{pairs[-1]:.2f}× in the {len(pairs)} interleaved pairs; "
            if len(pairs) > 1
            else ""
        )
        digits = 2 if unit in (" ms", " MB") else 0
        lines.append(
            f"- jobqueue vs {other}, {label}: {a:,.{digits}f}{unit} vs {b:,.{digits}f}{unit} = "
            f"**{a / b:.2f}×** ({spread}{'higher' if higher else 'lower'} is better)"
        )
    return lines


def markdown(
    table: dict[str, dict[str, Any]],
    meta: dict[str, Any],
    results: dict[str, dict[str, list[dict]]],
) -> str:
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
        f"Medians of {meta['repeat']} runs (min–max), {meta['n']:,} jobs "
        f"({min(meta['n'], meta['probes']):,} latency probes), {meta['machine']}, "
        f"Redis {meta['redis']}, {meta['date']}; jobqueue at {meta['commit']}.",
        "",
        head,
        *rows,
        "",
        *ratios(table),
    ]
    if meta.get("against"):
        against = meta["against"]
        lines += [
            "",
            f"{against['system']}: `{against['rev']}` = {against['commit']}, its own adapter "
            "and jobqueue, from a temporary git worktree.",
            "",
            *versus(results, against["system"]),
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="jobqueue's benchmark runner.")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--probes",
        type=int,
        default=1000,
        help="latency probes per run (its p99 is the 10th slowest of 1,000; of 300, the 3rd)",
    )
    parser.add_argument("--systems", default="", help="comma-separated (default: all there)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    parser.add_argument("--install-peers", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny N, jobqueue only (CI)")
    parser.add_argument(
        "--against",
        metavar="REV",
        help="also run jobqueue as of this git revision (its own tree), as jobqueue@REV",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    if args.install_peers:
        install_peers()
        return
    if args.smoke:
        args.n, args.repeat, args.systems = 200, 1, args.systems or "jobqueue"
    systems = (
        args.systems.split(",")
        if args.systems
        else ["jobqueue"]
        + ([*PEERS, BASELINE] if (PEERS_VENV / "bin" / "python").exists() else [])
    )
    workloads = args.workloads.split(",")
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    targets = {system: target_for(system) for system in systems}
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    with contextlib.ExitStack() as cleanup:
        against = None
        if args.against:
            try:
                commit, short, tree = cleanup.enter_context(checkout(args.against))
            except RuntimeError as exc:
                parser.error(str(exc))
            name = f"jobqueue@{short}"
            targets[name] = against_target(args.against, short, tree)
            if "jobqueue" in targets:  # a fresh mirror database too, as the old tree's
                fresh = private_database(tree.parent / "mirror-jobqueue.sqlite3")
                targets["jobqueue"] = replace(targets["jobqueue"], env=fresh)
            at = systems.index("jobqueue") + 1 if "jobqueue" in systems else len(systems)
            systems.insert(at, name)
            against = {"system": name, "rev": args.against, "commit": commit}
            skipped = [w for w in workloads if w not in targets[name].workloads]
            if skipped:
                print(f"{name}'s adapter has no workload {', '.join(skipped)}", file=sys.stderr)
        results, redis_version = run_all(
            systems,
            targets,
            workloads,
            args.n,
            args.repeat,
            against and against["system"],
            probes=args.probes,
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = collect(results)
    meta = {
        "n": args.n,
        "repeat": args.repeat,
        "probes": args.probes,
        "machine": machine(),
        "redis": redis_version,
        "date": time.strftime("%Y-%m-%d"),
        "commit": this_commit(),
        "against": against,
        "versions": versions(systems, targets),
    }
    text = markdown(table, meta, results)
    (out / "latest.md").write_text(text)
    (out / "latest.json").write_text(
        json.dumps({"meta": meta, "results": results, "table": table}, indent=2)
    )
    print(text)
    failed = [
        f"{s} {w}"
        for s, by in results.items()
        for w, runs in by.items()
        if not runs and w in targets[s].workloads
    ]
    if failed:
        print(f"No result for: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


def this_commit() -> str:
    try:
        return git("describe", "--always", "--dirty")
    except (RuntimeError, OSError):  # not a git checkout
        return "an unknown commit"


def run_all(
    systems: list[str],
    targets: dict[str, Target],
    workloads: list[str],
    n: int,
    repeat: int,
    against: str | None = None,
    probes: int = 1000,
) -> tuple[dict[str, dict[str, list[dict]]], str]:
    """Every workload for every system, ``repeat`` times, interleaved, on a private Redis:
    the adapters' results by system and workload (each with its repetition, ``rep``), and
    Redis's version."""
    results: dict[str, dict[str, list[dict]]] = {s: {w: [] for w in workloads} for s in systems}
    width = max(len(s) for s in systems)
    with RedisServer() as server:
        client = server.client()
        redis_version = client.info("server")["redis_version"]
        for rep in range(repeat):
            order = visiting_order(systems, rep, against)
            for workload in workloads:
                for system in order:
                    if workload not in targets[system].workloads:
                        continue
                    client.flushall()
                    size = min(n, probes) if workload == "latency" else n
                    started = time.monotonic()
                    result = run_one(
                        system, targets[system], workload, server.url, size, timeout=900
                    )
                    took = time.monotonic() - started
                    print(
                        f"[{rep + 1}/{repeat}] {system:{width}} {workload:8} "
                        f"{json.dumps(result)} ({took:.1f}s)",
                        file=sys.stderr,
                    )
                    if result is not None:
                        results[system][workload].append(
                            {**result, "system": system, "rep": rep + 1}
                        )
    return results, redis_version


def visiting_order(systems: list[str], rep: int, against: str | None) -> list[str]:
    """The systems rotated by one more place each repetition; ``against`` (jobqueue at another
    commit) right after ``jobqueue`` in even repetitions, right before it in odd ones."""
    rest = [s for s in systems if s != against or "jobqueue" not in systems]
    order = rest[rep % len(rest) :] + rest[: rep % len(rest)]
    if len(rest) < len(systems):
        order.insert(order.index("jobqueue") + (rep % 2 == 0), against)
    return order


def stop_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM ends the runner as Ctrl-C does: the adapter, Redis and any worktree cleaned up."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
