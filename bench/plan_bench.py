"""`make bench-plan`: issue 14's planner benchmark — numaguard's plan against two baselines
(bench/plan_baselines.py: Nova's first fit over host-cell permutations, numad's magnitude /
distance² choice) on generated hosts of 2–16 nodes and 10–500 guests.

Every instance is generated from a **hidden feasible packing**: each node is filled to a target
share of its capacity (numaguard's capacity model: MemTotal less hugepage pools less the host
reserve) with memory pieces, and its 1 GiB hugepage pool likewise; some pairs of pieces on two
different nodes become 2-cell guests (guest NUMA cells), the others 1-cell or cell-less guests.
So a plan placing every guest is known to exist.  The guests are then given a *current*
definition that ignores the packing (some bound ``strict`` to a random node, some with vCPUs
pinned to a random node, the rest unbound) and are listed in random order: a re-plan.

Two families:

* **re-plan** (nodes × guests up to 16 × 500, ~75 % fill): the issue's target — within 30 s on
  2 cores every guest placed, the peak fill within 0.5 points of the perfect-balance bound
  (Σ memory / Σ capacity) and the remote-access cost proven optimal for that peak;
* **near-full grid** (90–98 % fill, 2–16 nodes, pinned and hugepage guests): every guest placed
  in ≥ 95 % of the instances (all are feasible by construction), and how many Nova's first fit
  leaves guests out of.

Metrics, the same code for the plan and both baselines, on the host as each leaves it (guests a
method could not place are left out, as a scheduler would not start them): placed share;
runtime; the solver's gap; the share of placed guests whose memory is on one node; the peak
fill (the fullest node's ordinary memory over its capacity) and its distance to the balance
bound; the remote-access cost Σ bytes × (distance − 10) between each memory unit's vCPU nodes
and memory nodes (core/plan/problem.py's model: memory over several nodes as equal shares),
in GiB × distance; strict over-commitments: the audit's critical NG101/NG108/NG301 findings
(core.rules.audit_inventory) on that host — bound memory a node set cannot hold, or cannot
hold once the unbound guests' first-choice memory is taken, and hugepages a pool cannot give.

``PLAN_BENCH_QUICK=1``: a small subset (the smoke test's sizes are passed in directly).
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench.plan_baselines import Placed, nova_first_fit, numad
from numaguard.core.capacity import capacities
from numaguard.core.changes import Change, apply_changes
from numaguard.core.findings import Severity
from numaguard.core.plan import Plan, plan
from numaguard.core.plan.problem import current_load
from numaguard.core.rules import AuditOptions, audit_inventory
from numaguard.model.guest import Guest
from numaguard.model.inventory import Inventory
from numaguard.units import GiB, MiB
from tests.unit.rules.builders import guest as make_guest
from tests.unit.rules.builders import host as make_host

THREADS = 16            # hardware threads per node
PIECE_GIB = (1, 2, 2, 4, 4, 8, 8, 16, 32)
QUANTUM = 256 * MiB     # piece sizes are multiples of this
REPLAN_LIMIT = 30.0     # the target: seconds on 2 cores
GRID_LIMIT = 10.0
#: the audit's strict over-commitment: bound memory over a node set's capacity (NG101), over
#: what is left once first-choice claims are taken (NG108), hugepages over a pool (NG301)
STRICT_RULES = ("NG101", "NG108", "NG301")


def quiet_highs() -> Any:
    """A ``highspy.Highs`` made with file descriptor 1 pointed at /dev/null: HiGHS prints its
    banner from C++ on the first one made, and this bench's output is a table."""
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        return highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def have_highs() -> bool:
    try:
        import highspy  # noqa: F401
    except ImportError:
        return False
    return True


# -- instances ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Instance:
    name: str
    family: str
    inventory: Inventory
    options: AuditOptions
    fill: float


def slit(n: int) -> list[list[int]]:
    """Sockets of 4 nodes: 10 local, 16 within a socket, 32 across (2 nodes: 10/21)."""
    if n <= 2:
        return [[10 if a == b else 21 for b in range(n)] for a in range(n)]
    return [[10 if a == b else 16 if a // 4 == b // 4 else 32 for b in range(n)]
            for a in range(n)]


def _pieces(rng: random.Random, target: int, largest: int, quantum: int) -> list[int]:
    out = []
    left = target
    while left >= quantum:
        size = min(rng.choice(PIECE_GIB) * GiB, largest, left)
        size -= size % quantum
        if size <= 0:
            break
        out.append(size)
        left -= size
    return out


def generate(nodes: int, guests: int, fill: float, seed: int, *, family: str = "re-plan",
             two_cell: float = 0.25, hugepages: float = 0.1, pinned: float = 0.2,
             bound: float = 0.3) -> Instance:
    """A host of *nodes* nodes holding about *guests* guests at *fill* of its capacity, from a
    hidden packing (see the module docstring)."""
    rng = random.Random(seed)
    mean = sum(PIECE_GIB) / len(PIECE_GIB) * GiB
    per_node = max(1.0, guests / nodes * (1 + two_cell))   # pieces per node (a pair is 2)
    usable = per_node * mean / fill
    pool_gib = int(usable * hugepages / GiB)
    total_gib = int(usable * (1 - hugepages) / GiB / 0.95) + 2 + pool_gib
    spec = [(THREADS, total_gib, None, {"1G": pool_gib} if pool_gib else None)
            for _ in range(nodes)]
    h = make_host(spec, distances=slit(nodes))
    cap = capacities(h)
    largest = max(GiB, min(cap.values()) // 3)
    pieces: list[tuple[int, int, bool]] = []        # (node, bytes, hugepage)
    for n in range(nodes):
        pieces += [(n, s, False) for s in _pieces(rng, int(cap[n] * fill), largest, QUANTUM)]
        if pool_gib:
            pieces += [(n, s, True) for s in _pieces(rng, int(pool_gib * GiB * fill),
                                                     pool_gib * GiB, GiB)]
    rng.shuffle(pieces)
    units: list[list[tuple[int, int, bool]]] = []
    pending: dict[bool, tuple[int, int, bool] | None] = {False: None, True: None}
    for p in pieces:
        other = pending[p[2]]
        if nodes > 1 and rng.random() < two_cell and other is None:
            pending[p[2]] = p
        elif other is not None and other[0] != p[0]:
            units.append([other, p])
            pending[p[2]] = None
        else:
            units.append([p])
    units += [[p] for p in pending.values() if p is not None]
    rng.shuffle(units)
    built: list[Guest] = []
    vcpus_on = [0] * nodes
    for i, parts in enumerate(units):
        built.append(_guest(rng, f"g{i:03d}", parts, h, vcpus_on, pinned, bound))
    ratio = max(4.0, max(vcpus_on) / THREADS)
    inv = Inventory(h, tuple(built), origin=f"generated {nodes} nodes",
                    running=frozenset(g.name for g in built))
    name = f"{nodes:>2} nodes x {len(built):>3} guests, {fill:.0%}"
    return Instance(name, family, inv, AuditOptions(cpu_overcommit_ratio=ratio), fill)


def _guest(rng: random.Random, name: str, parts: list[tuple[int, int, bool]], h: Any,
           vcpus_on: list[int], pinned: float, bound: float) -> Guest:
    nodes = len(h.nodes)
    cell_vcpus = [rng.choice((1, 2, 2, 4)) for _ in parts]
    for (n, _, _), v in zip(parts, cell_vcpus, strict=True):
        vcpus_on[n] += v
    vcpus = sum(cell_vcpus)
    page = "1G" if parts[0][2] else None
    now = rng.randrange(nodes)          # the current definition ignores the hidden packing
    kind = rng.random()
    kw: dict[str, Any] = {}
    if kind < bound:
        kw = {"mode": "strict", "nodeset": now}
    elif kind < bound + pinned:
        kw = {"cpuset": h.node(now).cpus}
    if len(parts) == 1 and rng.random() < 0.5:
        return make_guest(name, 0, vcpus, memory_bytes=parts[0][1], hugepage_size=page, **kw)
    cells, first = [], 0
    for (_, size, _), v in zip(parts, cell_vcpus, strict=True):
        cells.append((range(first, first + v), size / GiB))
        first += v
    return make_guest(name, 0, vcpus, cells=cells, hugepage_size=page, **kw)


def replan_instances(sizes: Sequence[tuple[int, int]], seed: int = 1) -> list[Instance]:
    return [generate(n, g, 0.75, seed + i) for i, (n, g) in enumerate(sizes)]


def grid_instances(nodes: Sequence[int], fills: Sequence[float], seeds: int,
                   guests_per_node: int = 12) -> list[Instance]:
    out = []
    for n in nodes:
        for f in fills:
            for s in range(seeds):
                out.append(generate(n, n * guests_per_node, f, 1000 * n + round(f * 100) * 10 + s,
                                    family="near-full", two_cell=0.3, hugepages=0.15,
                                    pinned=0.3, bound=0.3))
    return out


# -- metrics ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    instance: str
    family: str
    method: str
    guests: int
    placed: int
    seconds: float
    gap: float | None
    single: float           # share of placed guests on one node
    peak: float
    balance: float
    remote: float           # GiB x (distance - 10)
    strict_over: int        # critical NG101/NG108/NG301 findings
    remote_optimal: bool | None = None
    peak_optimal: bool | None = None

    @property
    def complete(self) -> bool:
        return self.placed == self.guests


def measure(inst: Instance, placed: dict[str, tuple[Change, ...] | None]) -> dict[str, Any]:
    """The host as a method leaves it (*placed*: guest → its changes, ``None``: not placed):
    placed count, single-node share, peak fill, remote cost and strict over-commitments."""
    inv = inst.inventory
    kept = tuple(g for g in inv.guests if placed.get(g.name) is not None)
    changes = [c for g in kept for c in (placed[g.name] or ())]
    after = apply_changes(inv.with_guests(kept), changes)
    host = after.host
    cap = capacities(host, inst.options.host_reserve)
    mem = dict.fromkeys(cap, 0)
    remote = 0
    single = 0
    for g in after.guests:
        load = current_load(host, g, lenient=True)
        assert load is not None
        for n, b in load.mem.items():
            mem[n] = mem.get(n, 0) + b
        remote += load.remote
        on = {n for n, b in load.mem.items() if b} | {n for (n, _), p in load.pages.items() if p}
        single += len(on) == 1
    peak = max((mem[n] / c for n, c in cap.items() if c > 0), default=0.0)
    found = audit_inventory(after, inst.options, only=STRICT_RULES).findings
    strict = sum(1 for f in found if f.rule in STRICT_RULES and f.severity is Severity.CRITICAL)
    return {"placed": len(kept), "single": single / max(1, len(kept)), "peak": peak,
            "remote": remote / GiB, "strict_over": strict}


def balance_of(inst: Instance) -> float:
    cap = capacities(inst.inventory.host, inst.options.host_reserve)
    from numaguard.core.capacity import memory_units

    demand = sum(u.size for g in inst.inventory.guests for u in memory_units(g)
                 if u.hugepage_size is None)
    return demand / sum(cap.values())


def run_plan(inst: Instance, time_limit: float,
             solver: Callable[[], Any] | None) -> tuple[Result, Plan]:
    t0 = time.perf_counter()
    p = plan(inst.inventory, time_limit=time_limit, options=inst.options, solver=solver,
             clock=time.monotonic)
    secs = time.perf_counter() - t0
    placed = {pl.guest: (pl.changes if pl.placed else None) for pl in p.placements}
    m = measure(inst, placed)
    stages = {s.name: s for s in p.stages}
    return Result(inst.name, inst.family, "numaguard plan", len(inst.inventory.guests),
                  m["placed"], secs, p.gap, m["single"], m["peak"], p.bounds.balance,
                  m["remote"], m["strict_over"],
                  stages["remote"].optimal if "remote" in stages else None,
                  stages["peak"].optimal if "peak" in stages else None), p


def run_baseline(inst: Instance, method: str) -> Result:
    fn = {"Nova first fit": nova_first_fit, "numad": numad}[method]
    inv = inst.inventory
    t0 = time.perf_counter()
    out: tuple[Placed, ...] = fn(inv.host, inv.guests,
                                 cpu_overcommit_ratio=inst.options.cpu_overcommit_ratio)
    secs = time.perf_counter() - t0
    m = measure(inst, {p.guest: (p.changes if p.placed else None) for p in out})
    return Result(inst.name, inst.family, method, len(inv.guests), m["placed"], secs, None,
                  m["single"], m["peak"], balance_of(inst), m["remote"], m["strict_over"])


METHODS = ("Nova first fit", "numad")


def run_all(instances: Sequence[Instance], limit: Callable[[Instance], float],
            solver: Callable[[], Any] | None) -> list[Result]:
    out = []
    for inst in instances:
        out.append(run_plan(inst, limit(inst), solver)[0])
        out += [run_baseline(inst, m) for m in METHODS]
    return out


# -- targets and the table ----------------------------------------------------------------------

def replan_ok(r: Result) -> bool:
    """Issue 14's re-plan target for one plan row: within 30 s, every guest placed (each
    instance is feasible by construction), the peak within 0.5 points of the balance bound
    (or proven optimal when the bound itself is out of reach: a few large guests per node),
    and the remote-access cost proven optimal for that peak."""
    near = r.peak - r.balance <= 0.005 + 1e-12
    return (r.seconds <= REPLAN_LIMIT and r.complete and (near or r.peak_optimal is True)
            and r.remote_optimal is True)


def grid_summary(results: Sequence[Result]) -> dict[str, tuple[int, int]]:
    """Per method: (instances with every guest placed, instances)."""
    out = {}
    for method in ("numaguard plan", *METHODS):
        rows = [r for r in results if r.family == "near-full" and r.method == method]
        out[method] = (sum(r.complete for r in rows), len(rows))
    return out


def _pct(x: float) -> str:
    return f"{x * 100:5.1f}"


def table(results: Sequence[Result], *, targets: bool = True) -> str:
    head = (f"{'instance':<30} {'method':<15} {'placed':>9} {'time':>8} {'gap':>7} "
            f"{'1-node%':>7} {'peak%':>6} {'bal%':>6} {'+pts':>5} {'remote':>9} "
            f"{'strict':>6}  target")
    lines = [head, "-" * len(head)]
    for r in results:
        gap = "" if r.gap is None else f"{r.gap:.1e}" if r.gap else "0"
        tgt = ""
        if targets and r.method == "numaguard plan" and r.family == "re-plan":
            tgt = "PASS" if replan_ok(r) else "FAIL"
            if r.remote_optimal is not True:
                tgt += " (remote not proven)"
        lines.append(
            f"{r.instance:<30} {r.method:<15} {r.placed:>4}/{r.guests:<4} "
            f"{r.seconds:>7.2f}s {gap:>7} {_pct(r.single):>7} {_pct(r.peak):>6} "
            f"{_pct(r.balance):>6} {(r.peak - r.balance) * 100:>5.2f} {r.remote:>9.1f} "
            f"{r.strict_over:>6}  {tgt}")
    return "\n".join(lines)


def summary(results: Sequence[Result]) -> list[str]:
    lines = []
    replan = [r for r in results if r.family == "re-plan" and r.method == "numaguard plan"]
    if replan:
        ok = sum(replan_ok(r) for r in replan)
        lines.append(f"re-plan target (<= 30 s, all placed, peak <= balance + 0.5 pt or proven "
                     f"optimal, remote proven optimal): {ok}/{len(replan)} instances "
                     f"{'PASS' if ok == len(replan) else 'FAIL'}")
    grid = grid_summary(results)
    if grid["numaguard plan"][1]:
        placed, total = grid["numaguard plan"]
        share = placed / total
        lines.append(f"near-full grid target (every guest placed in >= 95 % of the {total} "
                     f"feasible instances): {placed}/{total} = {share:.0%} "
                     f"{'PASS' if share >= 0.95 else 'FAIL'}")
        for m in METHODS:
            p, t = grid[m]
            lines.append(f"  {m}: every guest placed in {p}/{t}; leaves guests out of {t - p}")
        over = {m: sum(r.strict_over for r in results
                       if r.family == "near-full" and r.method == m)
                for m in ("numaguard plan", *METHODS)}
        lines.append("  strict over-commitments on the grid (critical NG101/NG108/NG301): "
                     + ", ".join(f"{m} {v}" for m, v in over.items()))
    return lines


def rows() -> list[tuple[str, str, float, bool | None]]:
    """bench/run.py's bounded rows (name, target, seconds, met): one 16-node x 200-guest
    re-plan and one near-full grid instance (16 nodes, 98 %) beside Nova's first fit."""
    solver = quiet_highs if have_highs() else None
    out: list[tuple[str, str, float, bool | None]] = []
    r, _ = run_plan(generate(16, 200, 0.75, 7), REPLAN_LIMIT, solver)
    over = (r.peak - r.balance) * 100
    out.append((f"plan: re-plan 16 nodes x {r.guests} guests (peak +{over:.2f} pt over "
                f"balance, remote {'optimal' if r.remote_optimal else 'not proven'})",
                "<= 30 s, all placed, <= +0.5 pt", r.seconds, replan_ok(r)))
    grid = generate(16, 192, 0.98, 16_980, family="near-full", two_cell=0.3, hugepages=0.15,
                    pinned=0.3, bound=0.3)
    r, _ = run_plan(grid, GRID_LIMIT, solver)
    nova = run_baseline(grid, "Nova first fit")
    out.append((f"plan: near-full 16 nodes x {r.guests} guests at 98 % "
                f"({r.placed}/{r.guests} placed; Nova first fit {nova.placed}/{nova.guests})",
                "all placed", r.seconds, r.complete))
    return out


REPLAN_SIZES = [(2, 10), (2, 50), (4, 50), (4, 200), (8, 200), (8, 500), (16, 200), (16, 500)]
GRID_NODES = (2, 4, 8, 16)
GRID_FILLS = (0.90, 0.94, 0.98)


def main() -> None:
    quick = os.environ.get("PLAN_BENCH_QUICK") == "1"
    solver = quiet_highs if have_highs() else None
    if solver is None:
        print("highspy (numaguard[plan]) is not installed: the plan rows are the greedy "
              "heuristic's, no optimality claimed")
    sizes = REPLAN_SIZES[:3] if quick else REPLAN_SIZES
    seeds = 1 if quick else 5
    nodes = GRID_NODES[:2] if quick else GRID_NODES
    t0 = time.perf_counter()
    results = run_all(replan_instances(sizes), lambda i: REPLAN_LIMIT, solver)
    results += run_all(grid_instances(nodes, GRID_FILLS, seeds), lambda i: GRID_LIMIT, solver)
    print(table(results))
    print()
    for line in summary(results):
        print(line)
    print(f"\n(whole run {time.perf_counter() - t0:.0f} s; remote in GiB x (distance - 10); "
          f"+pts: peak - balance bound, in points; strict: critical NG101/NG108/NG301 findings)")


if __name__ == "__main__":
    main()
