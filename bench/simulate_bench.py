"""The simulator's benchmarks (issue 11): the engine, ``numaguard simulate`` of a TOML scenario,
and NG110's prediction.  Each ``*_rows`` function returns ``(label, seconds)`` medians; the
lead's bench/run.py prints them.  Run alone for a quick table::

    PYTHONPATH=src .venv/bin/python bench/simulate_bench.py

Workloads:

* :func:`engine_steps` — the workload of bench/run.py's ``simulate_rows`` (10,000 random steps,
  400 task names, every policy, 16 nodes of 64 TiB, 8 TiB of swap), for any number of steps;
  only :func:`~numaguard.core.simulate.simulate` is timed, not building the steps.
* :func:`live_tasks_steps` — the same number of steps and of OOM kills with 400 or 4,000 live
  tasks: the live tasks fill the host in a fixed number of steps (4,000: one each, or ten each
  for 400), then a churn task asks for a node's worth of memory bound to one node and is killed,
  freed and started again; every kill considers every live task.
* :func:`scenario_toml` — a 10,000-step scenario file for the whole-process figure.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.timing import RUNS, median_seconds

TiB = 1024**4
GiB = 1024**3


def _distances(n: int) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(10 if a == b else (21 if abs(a - b) < 4 else 31) for b in range(n))
                 for a in range(n))


def engine_host(unit: int = TiB, n: int = 16):
    """bench/run.py's host: *n* nodes of 64 units, watermarks of unit/256 and unit/200."""
    from numaguard.core.fallback import fallback_orders
    from numaguard.core.simulate import SimHost, SimNode
    from numaguard.model.topology import Host, Node

    model = Host(tuple(Node(i, frozenset({i}), 64 * unit) for i in range(n)), _distances(n))
    return SimHost(tuple(SimNode(i, 64 * unit, unit // 256, unit // 200, total=64 * unit)
                         for i in range(n)), fallback_orders(model), 8 * unit)


def engine_steps(count: int = 10_000, unit: int = TiB, n: int = 16) -> list:
    """bench/run.py's ``simulate_rows`` steps (seed 4), *count* of them."""
    from numaguard.core.simulate import Policy, Step

    rng = random.Random(4)
    steps = []
    for _ in range(count):
        name = f"g{rng.randrange(400)}"
        if rng.random() < 0.2:
            steps.append(Step(name, None, action="free"))
            continue
        policy = rng.choice(list(Policy))
        first = rng.randrange(n)
        nodes = None if policy is Policy.DEFAULT else frozenset(
            {first, (first + 1) % n, (first + 2) % n})
        steps.append(Step(name, rng.randrange(1, 8) * unit // 4, policy=policy,
                          nodes=nodes, cpu_node=first))
    return steps


def live_tasks_steps(live: int, *, fill_steps: int = 4_000, kills: int = 2_000,
                     n: int = 16) -> tuple[object, list]:
    """A host filled by *live* tasks in *fill_steps* steps, then *kills* OOM kills.

    The live tasks (default policy, spread over the nodes' CPUs) take 3/4 of every node in
    *fill_steps* equal allocations, whatever *live* is.  Then a churn task bound to one node
    (task policy, so the live tasks stay candidates) asks for a whole node: the node fills,
    there is no swap, and the OOM killer (constraint memory-policy) weighs every live task
    against the churn task, the largest, which dies; a ``free`` step starts it again.  The
    steps, the bytes and the kills are the same for 400 and 4,000 live tasks."""
    from numaguard.core.simulate import Policy, SimHost, SimNode, Step

    node = 64 * GiB
    host = SimHost(tuple(SimNode(i, node, 64 * 1024**2, 80 * 1024**2, total=node)
                         for i in range(n)),
                   {i: tuple(sorted(range(n), key=lambda j: (abs(i - j), j))) for i in range(n)}, 0)
    assert fill_steps % live == 0 and fill_steps % n == 0
    piece = node * 3 // 4 // (fill_steps // n)
    steps = [Step(f"live{k % live}", piece, cpu_node=k % n) for k in range(fill_steps)]
    for k in range(kills):
        steps.append(Step("churn", node, policy=Policy.BIND, nodes=frozenset({k % n}),
                          cpu_node=k % n))
        steps.append(Step("churn", None, action="free"))
    return host, steps


def engine_rows() -> list[tuple[str, float]]:
    """The engine: 10k and 100k steps of bench/run.py's workload (TiB and GiB guests), and the
    live-task pair."""
    from numaguard.core.simulate import simulate

    rows = []
    host = engine_host()
    for count in (10_000, 100_000):
        steps = engine_steps(count)
        rows.append((f"  in-process: simulate {count:,} steps, 16 nodes, TiB guests",
                     median_seconds(lambda steps=steps: simulate(host, steps),
                                    runs=RUNS if count <= 10_000 else 3)))
    ghost, gsteps = engine_host(GiB), engine_steps(10_000, GiB)
    rows.append(("  in-process: the same 10,000 with GiB guests (bytes must not matter)",
                 median_seconds(lambda: simulate(ghost, gsteps))))
    for live in (400, 4_000):
        lhost, lsteps = live_tasks_steps(live)
        kills = len(simulate(lhost, lsteps).oom_events)
        label = f"  in-process: {len(lsteps):,} steps, {kills:,} OOM kills, {live:,} live tasks"
        rows.append((label, median_seconds(lambda h=lhost, s=lsteps: simulate(h, s))))
    return rows


def scenario_toml(path: str, steps: int = 10_000, n: int = 16) -> str:
    """A TOML scenario of bench/run.py's engine workload (GiB sizes, so the text stays short):
    16 nodes, *steps* steps; returns *path*."""
    from numaguard.core.simulate import Policy

    rng = random.Random(4)
    lines = ['name = "bench-10k"', "[host]", 'swap = "512GiB"']
    lines.append("distances = [" + ", ".join(
        "[" + ", ".join(map(str, row)) + "]" for row in _distances(n)) + "]")
    for i in range(n):
        lines += ["[[host.nodes]]", f"id = {i}", f'cpus = "{2 * i}-{2 * i + 1}"',
                  'mem_total = "64GiB"']
    for _ in range(steps):
        name = f"g{rng.randrange(400)}"
        lines += ["[[step]]", f'name = "{name}"']
        if rng.random() < 0.2:
            lines.append('action = "free"')
            continue
        policy = rng.choice(list(Policy))
        first = rng.randrange(n)
        lines += [f'size = "{rng.randrange(1, 8) * 256}MiB"', f'policy = "{policy.value}"',
                  f"cpu_node = {first}"]
        if policy is Policy.PREFERRED:  # one node (preferred-many takes several)
            lines.append(f'nodes = "{first}"')
        elif policy is not Policy.DEFAULT:
            lines.append(f'nodes = "{first},{(first + 1) % n},{(first + 2) % n}"')
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def cli_rows(exe: str | None = None) -> list[tuple[str, float]]:
    """``numaguard simulate SCENARIO --format json`` of a 10,000-step scenario, whole process
    (a fresh ``numaguard`` each run), beside ``python -c pass``."""
    exe = exe or os.path.join(os.path.dirname(sys.executable), "numaguard")
    with tempfile.TemporaryDirectory() as tmp:
        path = scenario_toml(os.path.join(tmp, "bench-10k.toml"))

        def call() -> None:
            done = subprocess.run([exe, "simulate", path, "--format", "json"],
                                  check=False, stdout=subprocess.DEVNULL)
            assert done.returncode in (0, 1), done.returncode  # 1: the run kills (it does)
        secs = median_seconds(call)
    floor = median_seconds(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
    return [("numaguard simulate 10,000-step TOML scenario (json), whole process", secs),
            ("python -c pass (same run)", floor)]


def prediction_rows(snapshot: str | None = None) -> list[tuple[str, float]]:
    """NG110's prediction for a 16 x 1,000 snapshot: ``Context(...).prediction`` in process
    (the host and guests loaded once, outside the timing)."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from numaguard.core.rules import AuditOptions, Context
    from numaguard.readers.sources import read_paths
    from tests.support.synth import synth_snapshot

    with tempfile.TemporaryDirectory() as tmp:
        if snapshot is None:
            snapshot = os.path.join(tmp, "n16")
            synth_snapshot(snapshot, nodes=16, guests=1000)
        loaded = read_paths([snapshot])

    def predict():
        return Context(loaded.host, loaded.guests, AuditOptions()).prediction
    prediction = predict()
    kills = sum(len(r.result.oom_events) for r in prediction.runs)
    label = (f"  in-process: NG110's {len(prediction.runs)} start orders, 16 x 1,000 "
             f"({kills:,} OOM kills)")
    return [(label, median_seconds(predict))]


def main() -> None:
    which = sys.argv[1:] or ["engine", "prediction", "cli"]
    rows: list[tuple[str, float]] = []
    for name in which:
        rows += {"engine": engine_rows, "prediction": prediction_rows, "cli": cli_rows}[name]()
    width = max(len(r[0]) for r in rows)
    for label, secs in rows:
        print(f"{label:<{width}}  {secs * 1000:8.1f} ms", flush=True)


if __name__ == "__main__":
    main()
