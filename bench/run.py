"""`make bench`: issue 11's table — every metric, its target, the median, and its ratio to the
interpreter floor (`python -c pass`) and to `python -c "import lxml.etree"`, both measured in
the same run; then the scaling rows with their fitted exponents; then where the time goes (in
process) and issue 9's hostile sizes.

Whole-process figures run the installed `numaguard` script in a fresh process, as an admin
would, each run paired with one run of each floor command so a busy moment of this shared
machine touches both sides; a row's ratios use the floors of its own runs.  In-process
figures are divided by the floors' medians over the whole run.

Snapshots are written by tests/support/synth.py: 16 nodes x 1,000 guests (every policy, some
with guest NUMA cells; the golden test's snapshot), 10,000 guests on nodes ten times larger
(the same density: ``node_gib=2560``), and 64 and 256 nodes x 1,000 guests.
``BENCH_RUNS`` (default 7) sets the runs per figure; ``BENCH_QUICK=1`` skips the hostile table.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench import fleet_bench, live_bench, plan_bench, simulate_bench
from bench.timing import RUNS, median_seconds
from tests.support.synth import synth_snapshot

EXE = os.path.join(os.path.dirname(sys.executable), "numaguard")
PASS = [sys.executable, "-c", "pass"]
LXML = [sys.executable, "-c", "import lxml.etree"]


def once(argv: Sequence[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(list(argv), check=False, stdout=subprocess.DEVNULL)
    secs = time.perf_counter() - t0
    if done.returncode not in (0, 1):  # 1: findings or an OOM kill, as expected
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}")
    return secs


@dataclass
class Floors:
    """The two floors: medians over every run of this benchmark."""

    python: list[float]
    lxml: list[float]

    def sample(self) -> None:
        self.python.append(once(PASS))
        self.lxml.append(once(LXML))

    @property
    def py(self) -> float:
        return statistics.median(self.python)

    @property
    def lx(self) -> float:
        return statistics.median(self.lxml)


@dataclass
class Row:
    name: str
    target: str
    seconds: float
    ok: bool | None  # None: no target of its own (a figure another row's target refers to)
    #: the floors paired with this row's runs (whole process), else the run-wide ones
    floors: tuple[float, float] | None = None


#: the floors of the last :func:`process` call's runs: (python -c pass, import lxml.etree)
PAIRED: list[tuple[float, float]] = []


def process(floors: Floors, *args: str, runs: int = RUNS) -> float:
    """Median of *runs* whole-process runs of `numaguard ARGS`, each run paired with one run
    of each floor command (their medians for these runs are left in :data:`PAIRED`)."""
    times = []
    first = len(floors.python)
    for _ in range(runs):
        floors.sample()
        times.append(once([EXE, *args]))
    PAIRED[:] = [(statistics.median(floors.python[first:]),
                  statistics.median(floors.lxml[first:]))]
    return statistics.median(times)


def paired() -> tuple[float, float]:
    return PAIRED[0]


def exponent(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of log(seconds) over log(size): 1.0 is linear."""
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return (sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
            / sum((x - mx) ** 2 for x in xs))


def ms(secs: float) -> str:
    return f"{secs * 1000:,.1f} ms" if secs < 10 else f"{secs:,.1f} s"


def main() -> None:
    floors = Floors([], [])
    rows: list[Row] = []
    notes: list[str] = []
    scaling: list[tuple[str, list[tuple[int, float]], str, bool]] = []
    with tempfile.TemporaryDirectory() as tmp:
        snaps = {}
        for name, kwargs in (("16x1k", {"nodes": 16, "guests": 1000}),
                             ("16x10k", {"nodes": 16, "guests": 10_000, "node_gib": 2560}),
                             ("64x1k", {"nodes": 64, "guests": 1000}),
                             ("256x1k", {"nodes": 256, "guests": 1000})):
            snaps[name] = os.path.join(tmp, name)
            synth_snapshot(snaps[name], **kwargs)
        snap = snaps["16x1k"]
        toml = simulate_bench.scenario_toml(os.path.join(tmp, "steps10k.toml"), steps=10_000)

        # -- engine (in process): only simulate() is timed, not building the steps -------------
        from numaguard.core.simulate import simulate

        host = simulate_bench.engine_host()
        engine = {}
        for count in (1_000, 10_000, 100_000):
            steps = simulate_bench.engine_steps(count)
            engine[count] = median_seconds(lambda steps=steps: simulate(host, steps),
                                           runs=RUNS if count <= 10_000 else 3)
        rows.append(Row("simulate engine: 10,000 steps, 16 nodes, TiB guests", "<= 50 ms",
                        engine[10_000], engine[10_000] <= 0.050))
        rows.append(Row("simulate engine: 100,000 steps", "<= 10x the 10,000-step figure",
                        engine[100_000], engine[100_000] <= 10 * engine[10_000]))
        tasks = {}
        for live in (400, 4_000):
            lhost, lsteps = simulate_bench.live_tasks_steps(live)
            tasks[live] = median_seconds(lambda lhost=lhost, lsteps=lsteps:
                                         simulate(lhost, lsteps))
        rows.append(Row("simulate engine: 400 live tasks", "", tasks[400], None))
        rows.append(Row("simulate engine: 4,000 live tasks", "<= 2x the 400-task figure",
                        tasks[4_000], tasks[4_000] <= 2 * tasks[400]))
        scaling.append(("simulate engine, steps 1k/10k/100k", sorted(engine.items()),
                        "100k <= 10x 10k", engine[100_000] <= 10 * engine[10_000]))

        # -- whole process --------------------------------------------------------------------
        sim = process(floors, "simulate", toml, "--format", "json")
        rows.append(Row("numaguard simulate, 10,000-step TOML, json", "<= 0.3 s", sim,
                        sim <= 0.3, paired()))
        for fmt in ("json", "text"):
            extra = ["--format", "json"] if fmt == "json" else []
            secs = process(floors, "audit", snap, "--fail-on", "never", *extra)
            rows.append(Row(f"numaguard audit 16 x 1,000 ({fmt}), with NG110", "<= 0.2 s",
                            secs, secs <= 0.2, paired()))
        audit, audit_floors = {}, {}
        for name in ("16x1k", "16x10k", "64x1k", "256x1k"):
            audit[name] = process(floors, "audit", snaps[name], "--format", "json",
                                  "--fail-on", "never", runs=max(3, RUNS // 2)
                                  if name == "16x10k" else RUNS)
            audit_floors[name] = paired()
        rows.append(Row("numaguard audit 16 x 10,000 (json, same density)",
                        "<= 11x the 1,000-guest figure", audit["16x10k"],
                        audit["16x10k"] <= 11 * audit["16x1k"], audit_floors["16x10k"]))
        rows.append(Row("numaguard audit 256 nodes x 1,000 (json)", "<= 0.5 s",
                        audit["256x1k"], audit["256x1k"] <= 0.5, audit_floors["256x1k"]))
        scaling.append(("audit json, guests 1k/10k (16 nodes)",
                        [(1_000, audit["16x1k"]), (10_000, audit["16x10k"])],
                        "10k <= 11x 1k", audit["16x10k"] <= 11 * audit["16x1k"]))
        scaling.append(("audit json, nodes 16/64/256 (1,000 guests)",
                        [(16, audit["16x1k"]), (64, audit["64x1k"]), (256, audit["256x1k"])],
                        "256 nodes <= 0.5 s", audit["256x1k"] <= 0.5))
        secs = process(floors, "guests", snap)
        rows.append(Row("numaguard guests 16 x 1,000 (text)", "<= 0.2 s", secs, secs <= 0.2,
                        paired()))
        secs = process(floors, "topology", snap, "--format", "json", runs=3 * RUNS)
        rows.append(Row("numaguard topology (json)", "<= 1.5x import lxml.etree", secs,
                        secs <= 1.5 * paired()[1], paired()))
        # fleet audit (issue 12): 200 snapshots, hosts/s, the per-host deadline's effect
        for name, target, secs, ok, py in fleet_bench.rows(tmp):
            rows.append(Row(name, target, secs, ok, None if py is None else (py, floors.lx)))
        # the exporter's scrape at 500 guests x 16 nodes (issue 13), in process, p95
        measured = live_bench.measure()
        for name, secs, series in measured.scrape:
            cgroup = "cgroup" in name
            rows.append(Row(f"{name} ({series:,} series; target <= 10,000)",
                            "p95 <= 50 ms" if cgroup else "", secs,
                            (secs <= 0.050 and series <= 10_000) if cgroup else None))
        if measured.numastat is not None:   # beside them: numastat -p on the numa_maps tree
            name, side, note = measured.numastat
            if side is None:
                notes.append(f"{name}: {note}")
            else:
                rows.append(Row(f"{name}, whole process (per-node MiB checked)", "", side,
                                None))

        # the planner (issue 14), in process: the bounded rows; `make bench-plan` is the full
        # benchmark against Nova's first fit and numad
        for name, target, secs, ok in plan_bench.rows():
            rows.append(Row(name, target, secs, ok))

        split = where_the_time_goes(snap)
        hostile = [] if os.environ.get("BENCH_QUICK") == "1" else hostile_rows(tmp, floors)

    print_table(rows, scaling, floors)
    for note in notes:
        print(note)
    print_rows("where the time goes, 16 x 1,000, in process (GC paused)", split)
    if hostile:
        print_rows("hostile sizes (issue 9), whole process", hostile, floors.py)


def print_rows(title: str, rows: list[tuple[str, float]], floor: float | None = None) -> None:
    """A titled block of (name, seconds) rows, with their ratio to *floor* when given."""
    width = max(len(n) for n, _ in rows)
    print()
    print(f"{title:<{width}}  median" + ("      x python" if floor else ""))
    print("-" * (width + (24 if floor else 12)))
    for name, secs in rows:
        print(f"{name:<{width}}  {ms(secs):>10}" + (f"  {secs / floor:8.1f}" if floor else ""))


def print_table(rows: list[Row], scaling, floors: Floors) -> None:
    py, lx = floors.py, floors.lx
    name_w = max(len(r.name) for r in rows)
    target_w = max(len(r.target) for r in rows)
    head = (f"{'metric':<{name_w}}  {'target':<{target_w}}  {'median':>10}  {'x python':>8}  "
            f"{'x lxml':>7}  met")
    print(head)
    print("-" * len(head))
    for r in rows:
        met = {None: "", True: "yes", False: "NO"}[r.ok]
        rpy, rlx = r.floors or (py, lx)
        print(f"{r.name:<{name_w}}  {r.target:<{target_w}}  {ms(r.seconds):>10}  "
              f"{r.seconds / rpy:8.1f}  {r.seconds / rlx:7.2f}  {met}")
    print(f"{'python -c pass':<{name_w}}  {'(floor)':<{target_w}}  {ms(py):>10}  "
          f"{1:8.1f}  {py / lx:7.2f}")
    lxml_floor = 'python -c "import lxml.etree"'
    print(f"{lxml_floor:<{name_w}}  {'(floor)':<{target_w}}  "
          f"{ms(lx):>10}  {lx / py:8.1f}  {1:7.2f}")
    print()
    name_w = max(len(s[0]) for s in scaling)
    head = f"{'scaling':<{name_w}}  {'medians':<34}  exponent  target"
    print(head)
    print("-" * (len(head) + 22))
    for name, points, target, ok in scaling:
        medians = " / ".join(ms(s).replace(" ms", "") for _, s in points) + " ms"
        print(f"{name:<{name_w}}  {medians:<34}  {exponent(points):8.2f}  {target} "
              f"({'yes' if ok else 'NO'})")


def where_the_time_goes(snap: str) -> list[tuple[str, float]]:
    """The audit's parts in process, with the cyclic GC paused as the CLI runs them
    (``cli._no_cyclic_gc``); this benchmark's own heap (snapshots, results) would otherwise
    make every collection slower than in a real run."""
    import gc

    gc.collect()
    gc.disable()
    try:
        return _parts(snap)
    finally:
        gc.enable()


def _parts(snap: str) -> list[tuple[str, float]]:
    from numaguard.core.rules import AuditOptions, Context, audit
    from numaguard.readers.sources import load_guests, load_host, read_paths
    from numaguard.report.audit import audit_json, audit_text
    from numaguard.report.text import guests_text

    loaded = read_paths([snap])
    result = audit(loaded.host, loaded.guests)
    guests = loaded.guests

    def predict():
        return Context(loaded.host, loaded.guests, AuditOptions()).prediction

    prediction = predict()
    kills = sum(len(r.result.oom_events) for r in prediction.runs)
    return [
        ("read + extract 1,000 domain XMLs", median_seconds(lambda: load_guests(snap))),
        ("read the 16-node sysfs tree", median_seconds(lambda: load_host(snap))),
        ("audit input (host + guests + kernel facts)",
         median_seconds(lambda: read_paths([snap]))),
        (f"NG110's {len(prediction.runs)} start orders ({kills:,} OOM kills)",
         median_seconds(predict)),
        (f"every rule, NG110 included ({len(result.findings):,} findings)",
         median_seconds(lambda: audit(loaded.host, loaded.guests))),
        ("render audit JSON", median_seconds(lambda: audit_json(result))),
        ("render audit text", median_seconds(lambda: audit_text(result))),
        ("render guests text", median_seconds(lambda: guests_text(guests))),
    ]


def hostile_rows(tmp: str, floors: Floors) -> list[tuple[str, float]]:
    """Issue 9's legal-but-large inputs, whole process.  Before issue 9: 1 EiB bind with 1 EiB
    swap ran past 60 s (64 PiB: 12.6 s); a 1,024-node host took 178 s to audit and 161 s to
    simulate; 5,000 guest cells took 38 s in fix.  The same inputs are checked for
    correctness in tests/hostile/test_scale.py."""
    from pathlib import Path

    from numaguard.domxml.document import DomainDocument
    from numaguard.domxml.edit import MemnodeEdit, NumatuneEdit, edit_numatune
    from numaguard.limits import MAX_GUEST_CELLS
    from tests.hostile.test_scale import (
        big_snapshot,
        eib_bind_scenario,
        many_cells_domain,
        memnode_moves,
        wide_interleave_scenario,
    )

    root = Path(tmp) / "hostile"
    root.mkdir()
    snap = big_snapshot(root / "n1024", guests=2000)
    eib = eib_bind_scenario(root / "eib.toml")
    wide = wide_interleave_scenario(root / "wide.toml")
    domain = root / "wide.xml"
    domain.write_text(many_cells_domain(MAX_GUEST_CELLS))
    memnodes = [a for c, n in memnode_moves(MAX_GUEST_CELLS)
                for a in ("--memnode", f"{c}:preferred:{n}")]
    cases = [
        ("simulate: 1 EiB bind step, 1 EiB swap", ["simulate", eib]),
        ("simulate: 1 EiB interleave over 1,024 nodes", ["simulate", wide, "--format", "json"]),
        ("audit: 1,024 nodes, 2,000 guests (JSON)", ["audit", snap, "--format", "json",
                                                     "--fail-on", "never"]),
        ("audit: 1,024 nodes, 2,000 guests (text)", ["audit", snap, "--fail-on", "never"]),
        ("simulate: 1,024 nodes, 2,000 guests (JSON)", ["simulate", snap, "--format", "json"]),
        (f"fix: {MAX_GUEST_CELLS} cells on the 1,024-node host", ["fix", domain, "--host", snap,
                                                                *memnodes]),
    ]
    rows = [(name, process(floors, *map(str, args), runs=3)) for name, args in cases]
    cells = 5000
    doc = DomainDocument(many_cells_domain(cells, vcpus=64).encode(), path="wide.xml")
    edit = NumatuneEdit(memnodes=tuple(MemnodeEdit(c, "preferred", frozenset({n}))
                                       for c, n in memnode_moves(cells)))
    rows.append((f"  in-process: edit {cells:,} memnodes",
                 median_seconds(lambda: edit_numatune(doc, edit), runs=3)))
    return rows


if __name__ == "__main__":
    main()
