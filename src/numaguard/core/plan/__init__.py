"""``numaguard plan``'s core: place guests on NUMA nodes — memory nodes and mode, vCPU pins —
with a proof of how good the plan is, the reasons, and the changes that make it (pure).

:func:`plan` takes an :class:`~numaguard.model.inventory.Inventory` (or a host and guests) and
returns a :class:`Plan`: per guest a :class:`GuestPlacement` (nodes, cpuset, mode, nodeset,
memnodes, whether it moved and what restart that takes, its changes as
:mod:`numaguard.core.changes` values, why there and why not elsewhere), the objective values
with the solver's gap, independent bounds, and a proof when not every guest fits.

Decisions (see :mod:`.problem`): each memory unit (guest NUMA cell, or the guest) on one node
when one can hold it, else on the fewest nearest nodes by SLIT distance; vCPUs pinned to the CPUs
of those nodes (whole nodes, so SMT siblings stay together: the kernel numbers a core's threads
on one node); the mode is the binding the guest asked for (``strict``/``restrictive``) when its
unit is on one node — the plan keeps every node within its capacity, so the binding is backed by
the audit's capacity model (NG101, NG108) — else ``preferred`` (one node) or ``interleave``
(several: the only multi-node mode the kernel spreads evenly).  Guests without a binding get
``preferred``/``interleave``: the article's safe modes.

Objective, lexicographic (:mod:`.milp`): every guest placed; the worst node's fill; the
remote-access cost; the weighted moves.  HiGHS solves it exactly when ``numaguard[plan]`` is
installed; else the greedy heuristic (:mod:`.greedy`) serves alone and the plan claims no
optimality (``optimal is None``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from numaguard.core.changes import (
    Change,
    PinEmulator,
    PinVcpus,
    SetMemnode,
    SetMemoryPolicy,
    apply_change,
    apply_changes,
)
from numaguard.core.flow import Overcommit
from numaguard.core.plan.explain import (
    Bounds,
    KNodeBound,
    bounds,
    k_slots,
    proof,
    reasons,
    shortfalls,
)
from numaguard.core.plan.greedy import STAY, Decision, Objective, evaluate, feasible, greedy
from numaguard.core.plan.milp import STAGES, StageResult, load_highs, solve
from numaguard.core.plan.problem import Choice, Problem, Restart, binds, build
from numaguard.core.rules import AuditOptions
from numaguard.model.guest import Guest
from numaguard.model.inventory import Inventory
from numaguard.model.policy import MemoryMode
from numaguard.model.topology import Host

__all__ = ["STAGES", "Bounds", "GuestPlacement", "KNodeBound", "Objective", "Plan", "Restart",
           "StageResult", "k_slots", "plan"]

AUTO = "auto"


@dataclass(frozen=True, slots=True)
class GuestPlacement:
    """Where one guest goes.  ``nodes``: its memory nodes; ``cpuset``: the host CPUs its vCPUs
    are pinned to; ``mode``/``nodeset``: its ``<numatune><memory>``; ``memnodes``: per guest
    NUMA cell (cell, mode, nodeset); ``moved``: its definition changes; ``restart``: what that
    takes; ``changes``: the changes (empty when it stays as it is or is not placed)."""

    guest: str
    placed: bool
    nodes: frozenset[int]
    cpuset: frozenset[int]
    mode: MemoryMode | None
    nodeset: frozenset[int]
    memnodes: tuple[tuple[int, MemoryMode, frozenset[int]], ...]
    moved: bool
    restart: Restart
    changes: tuple[Change, ...]
    new: bool = False
    why: str = ""
    #: (node, why not there), for the other nodes
    why_not: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    placements: tuple[GuestPlacement, ...]
    objective: Objective
    #: each lexicographic stage HiGHS solved (empty: greedy only)
    stages: tuple[StageResult, ...]
    #: every stage proven optimal (True), not all (False), or no solver ran (None)
    optimal: bool | None
    #: the first objective stage's relative MIP gap (``None``: no solver ran)
    gap: float | None
    bounds: Bounds
    solver: str
    #: the node sets short of memory or hugepages whatever the placement (max-flow cuts)
    shortfalls: tuple[Overcommit, ...] = ()
    #: why the unplaced guests are unplaced (empty when every guest is placed)
    proof: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def complete(self) -> bool:
        return all(p.placed for p in self.placements)

    @property
    def unplaced(self) -> tuple[str, ...]:
        return tuple(p.guest for p in self.placements if not p.placed)

    @property
    def changes(self) -> tuple[Change, ...]:
        return tuple(c for p in self.placements for c in p.changes)

    @property
    def cold_restarts(self) -> int:
        return sum(1 for p in self.placements if p.moved and p.restart is Restart.COLD)

    def placement(self, guest: str) -> GuestPlacement:
        for p in self.placements:
            if p.guest == guest:
                return p
        raise KeyError(guest)

    def apply(self, inventory: Inventory, new: Iterable[Guest] = ()) -> Inventory:
        """*inventory* (with the *new* guests added) as it is after the plan's changes."""
        added = inventory.with_guests((*inventory.guests, *new))
        return apply_changes(added, self.changes)


def _changes_for(problem: Problem, choice: Choice, d: tuple[int, ...]) -> tuple[
        list[Change], MemoryMode, frozenset[int], list[tuple[int, MemoryMode, frozenset[int]]],
        frozenset[int], frozenset[int]]:
    host = problem.host
    g = choice.guest
    family = binds(g)
    opts = [item.options[o] for item, o in zip(choice.items, d, strict=True)]
    if family is MemoryMode.RESTRICTIVE and any(len(o.nodes) > 1 for o in opts):
        family = None   # restrictive is on <memory> and every memnode, or on none (libvirt)

    def mode_of(k: int) -> MemoryMode:
        if family is not None and k == 1:
            return family
        return MemoryMode.PREFERRED if k == 1 else MemoryMode.INTERLEAVE

    union = frozenset(n for o in opts for n in o.nodes)
    cpus_of = {o.nodes: frozenset(c for n in o.cpu_nodes for c in host.node(n).cpus)
               for o in opts}
    all_cpus = frozenset().union(*cpus_of.values()) if cpus_of else frozenset()
    changes: list[Change] = []
    memnodes: list[tuple[int, MemoryMode, frozenset[int]]] = []
    if g.cells:
        top = family if family is not None else mode_of(len(union))
        if family is MemoryMode.STRICT and any(len(o.nodes) > 1 for o in opts):
            top = MemoryMode.STRICT
        changes.append(SetMemoryPolicy(g.name, top, union))
        for item, o in zip(choice.items, opts, strict=True):
            assert item.unit.cell is not None
            m = mode_of(len(o.nodes))
            memnodes.append((item.unit.cell, m, frozenset(o.nodes)))
            changes.append(SetMemnode(g.name, item.unit.cell, m, frozenset(o.nodes)))
        mode = top
    else:
        mode = mode_of(len(union))
        changes.append(SetMemoryPolicy(g.name, mode, union))
    covered: set[int] = set()
    for item, o in zip(choice.items, opts, strict=True):
        vcpus = frozenset(v for v in item.unit.vcpus if v < g.vcpus)
        if vcpus and cpus_of[o.nodes]:
            changes.append(PinVcpus(g.name, vcpus, cpus_of[o.nodes]))
            covered |= vcpus
    rest = frozenset(range(g.vcpus)) - covered
    if rest and all_cpus:
        changes.append(PinVcpus(g.name, rest, all_cpus))
    if all_cpus:
        changes.append(PinEmulator(g.name, all_cpus))
    return changes, mode, union, memnodes, all_cpus, union


def _effective(guest: Guest, changes: list[Change]) -> tuple[Change, ...]:
    """The changes that change something, in order."""
    out = []
    cur = guest
    for c in changes:
        nxt = apply_change(cur, c)
        if nxt != cur:
            out.append(c)
        cur = nxt
    return tuple(out)


def _restart(choice: Choice, running: bool | None, changes: tuple[Change, ...]) -> Restart:
    if not changes or running is False or choice.new:
        return Restart.NONE
    memory = [c for c in changes if isinstance(c, (SetMemoryPolicy, SetMemnode))]
    if not memory:
        return Restart.LIVE   # vcpupin / emulatorpin --live
    g = choice.guest
    now = g.policy.mode if g.policy is not None else None
    if now is MemoryMode.RESTRICTIVE and all(c.mode is MemoryMode.RESTRICTIVE for c in memory):
        return Restart.LIVE   # a restrictive nodeset changes live
    return Restart.COLD


def _current(choice: Choice) -> tuple[MemoryMode | None, frozenset[int], frozenset[int],
                                      tuple[tuple[int, MemoryMode, frozenset[int]], ...]]:
    g = choice.guest
    mode = g.policy.mode if g.policy is not None else None
    nodeset = (g.policy.nodeset if g.policy is not None else None) or frozenset()
    cpus: set[int] = set()
    for v in range(g.vcpus):
        cpus |= g.vcpu_cpus(v) or frozenset()
    memnodes = tuple((c.id, c.policy.mode, c.policy.nodeset) for c in g.cells
                     if c.memnode and c.policy is not None and c.policy.nodeset is not None)
    return mode, nodeset, frozenset(cpus), memnodes


def plan(source: Inventory | Host, guests: Iterable[Guest] | None = None, *,
         keep: Iterable[str] = (), max_moves: int | None = None, new: Iterable[Guest] = (),
         objective: str | Sequence[str] = STAGES, time_limit: float = 30.0,
         options: AuditOptions | None = None, running: frozenset[str] | None = None,
         solver: Callable[[], Any] | str | None = AUTO, free_now: bool = True,
         clock: Callable[[], float] | None = None) -> Plan:
    """Place the guests of *source* (an inventory, or a host with *guests*) and the *new* ones.

    *keep*: guests that stay as they are; *max_moves*: at most this many existing guests
    change; *objective*: the stage order (``peak``, ``remote``, ``moves``; one name puts that
    stage first and keeps the others in the default order); *time_limit*: seconds for the
    solver in all; *options*: the audit's host reserve and CPU over-commit ratio; *running*:
    the running guests (an inventory's own by default; ``None``: unknown, taken as running);
    *solver*: a ``highspy.Highs`` factory, ``"auto"`` (highspy when installed) or ``None``
    (greedy only); *free_now*: cap each node's room by what it can give now (MemFree: see
    :func:`~numaguard.core.plan.problem.usable`) — pass ``False`` when the host's MemFree
    already excludes running guests' memory that the source cannot give back (a remote URI);
    *clock* (seconds, e.g. ``time.monotonic``): *time_limit* is then the whole call's —
    building the problem, the greedy seed and the explanations after the solver (a reserve of
    2 %, at most 0.5 s) included — not HiGHS's run time alone.
    """
    started = clock() if clock is not None else 0.0
    if isinstance(source, Inventory):
        host = source.host
        guest_list = tuple(source.guests if guests is None else guests)
        if running is None:
            running = source.running
    else:
        host = source
        guest_list = tuple(guests or ())
    opts = options or AuditOptions()
    stages = _stages(objective)
    new = tuple(new)
    problem = build(host, guest_list, keep=keep, new=new, running=running,
                    reserve=opts.host_reserve, cpu_overcommit_ratio=opts.cpu_overcommit_ratio,
                    max_moves=max_moves, free_now=free_now)
    factory = load_highs() if solver == AUTO else solver
    seed = greedy(problem)
    decisions = seed
    stage_results: tuple[StageResult, ...] = ()
    notes: list[str] = []
    if callable(factory):
        all_placed = all(d is not None for d in seed)
        budget = time_limit
        if clock is not None:   # what building and seeding took, and room for what follows
            budget = max(0.05, time_limit - (clock() - started) - min(0.5, 0.02 * time_limit))
        found, stage_results = solve(problem, seed, factory=factory, objective=stages,
                                     time_limit=budget, place_all=all_placed, clock=clock)
        if feasible(problem, found):
            decisions = found
        else:
            notes.append("the solver's plan broke a capacity by its tolerance; the greedy plan "
                         "is kept")
            stage_results = tuple(StageResult(s.name, s.value, s.bound, s.gap, False,
                                              s.seconds, s.status) for s in stage_results)
    obj = evaluate(problem, decisions)
    bnds = bounds(problem)
    short = shortfalls(problem)
    proven_max = None
    for s in stage_results:
        if s.name == "placed" and s.optimal:
            proven_max = round(s.value)
    complete = all(d is not None for d in decisions)
    why = reasons(problem, decisions, obj.peak)
    placements = [_placement(problem, c, d, running, why.get(c.name))
                  for c, d in zip(problem.choices, decisions, strict=True)]
    optimal = None if not stage_results else all(s.optimal for s in stage_results)
    first = next((s for s in stage_results if s.name != "placed"), None)
    return Plan(
        placements=tuple(placements), objective=obj, stages=stage_results, optimal=optimal,
        gap=first.gap if first is not None else None, bounds=bnds,
        solver="highs" if stage_results else "greedy (no optimality claimed)",
        shortfalls=short,
        proof=() if complete else proof(problem, decisions, bnds, short, proven_max),
        kept=tuple(g.name for g in problem.kept), notes=tuple(notes))


def _stages(objective: str | Sequence[str]) -> tuple[str, ...]:
    wanted = (objective,) if isinstance(objective, str) else tuple(objective)
    for name in wanted:
        if name not in STAGES:
            raise ValueError(f"unknown objective {name!r} ({', '.join(STAGES)})")
    return tuple(dict.fromkeys((*wanted, *STAGES)))


def _placement(problem: Problem, c: Choice, d: Decision, running: frozenset[str] | None,
               why: tuple[str, tuple[tuple[int, str], ...]] | None) -> GuestPlacement:
    is_running = None if running is None else c.name in running
    text, nots = why or ("", ())
    if d is None or d == STAY:
        mode, nodeset, cpus, memnodes = _current(c)
        nodes = frozenset(n for load in ([c.stay] if d == STAY and c.stay else [])
                          for n in (*load.mem, *(k[0] for k in load.pages)))
        return GuestPlacement(c.name, d is not None, nodes, cpus, mode, nodeset, memnodes,
                              False, Restart.NONE, (), c.new, text or
                              "not placed: see the plan's proof", nots)
    assert isinstance(d, tuple)
    changes, mode, nodeset, cells, cpus, nodes = _changes_for(problem, c, d)
    effective = _effective(c.guest, changes)
    return GuestPlacement(c.name, True, nodes, cpus, mode, nodeset, tuple(cells),
                          bool(effective) and not c.new, _restart(c, is_running, effective),
                          effective, c.new, text, nots)
