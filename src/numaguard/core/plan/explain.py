"""Why a plan is what it is: independent bounds, a proof when not every guest fits, and per
guest why its node and why not the others.

Bounds beside the solver's own dual bound (they need no solver, so they check it):

* **perfect balance**: the worst node's fill is at least Σ memory / Σ capacity (kept guests
  included) — the fill every node would have if memory could be cut anywhere;
* **largest unit**: at least the fill its best node set would have with that unit alone;
* **k-node slots**: guests whose memory must spread over k distinct nodes with at least s bytes
  on each fit at most ``min over 0 ≤ r < k of ⌊(Σ fᵢ − Σ of the r largest fᵢ) / (k − r)⌋``
  times, fᵢ = ⌊free on node i / s⌋ (the classic bound for packing k-sets of distinct nodes: a
  node with more than its share of slots can serve each guest once at most; with k = 1 it is
  Σ fᵢ).

A proof of infeasibility reuses the audit's max-flow (core/flow.py): each unit may take its
memory anywhere its options reach; when even that split-anywhere relaxation does not fit, the
flow's minimal over-committed node sets are the nodes that are short, and by how much, whatever
the placement.  A k-node slot count below the guests that need it is a second proof; else the
solver's stage-0 optimum is (at most N of M guests can be placed, proven by HiGHS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from numaguard.core.flow import Overcommit, solve
from numaguard.core.plan.greedy import STAY, Decision, decision_loads
from numaguard.core.plan.problem import Item, Option, Problem, current_load
from numaguard.units import format_bytes


@dataclass(frozen=True, slots=True)
class KNodeBound:
    """Guests needing *k* distinct nodes with at least *share* bytes each: how many the problem
    has (*guests*) and how many fit at most (*slots*)."""

    k: int
    share: int
    guests: int
    slots: int

    @property
    def violated(self) -> bool:
        return self.guests > self.slots


@dataclass(frozen=True, slots=True)
class Bounds:
    #: Σ memory / Σ capacity
    balance: float
    #: the largest unit's best fill alone
    largest_unit: float
    k_nodes: tuple[KNodeBound, ...] = ()

    @property
    def peak(self) -> float:
        """A lower bound on the worst node's fill of any plan placing every guest."""
        return max(self.balance, self.largest_unit)


def k_slots(free: Sequence[int], k: int) -> int:
    """``min over 0 ≤ r < k of ⌊(Σ free − Σ of the r largest) / (k − r)⌋``: how many k-sets of
    distinct nodes *free* (slots per node) can serve."""
    if k <= 0:
        raise ValueError("k must be positive")
    ranked = sorted((max(0, f) for f in free), reverse=True)
    total = sum(ranked)
    best = total // k
    top = 0
    for r in range(1, k):
        top += ranked[r - 1] if r - 1 < len(ranked) else 0
        best = min(best, (total - top) // (k - r))
    return best


def _free(problem: Problem) -> dict[int, int]:
    return {n: c - problem.fixed.mem.get(n, 0) for n, c in problem.capacity.items()}


def bounds(problem: Problem) -> Bounds:
    cap = sum(c for c in problem.capacity.values() if c > 0)
    items = problem.items
    demand = sum(problem.fixed.mem.values()) + sum(
        i.unit.size for i in items if i.unit.hugepage_size is None)
    balance = demand / cap if cap else 0.0
    largest = 0.0
    for i in items:
        if i.unit.hugepage_size is not None or not i.options:
            continue
        largest = max(largest, min(_alone(problem, o) for o in i.options))
    free = _free(problem)
    kinds: dict[tuple[int, int], int] = {}
    for i in items:
        if i.unit.hugepage_size is not None or not i.options:
            continue
        k = len(i.options[0].nodes)
        share = -(-i.unit.size // k)
        kinds[k, share] = kinds.get((k, share), 0)
    for k, share in kinds:
        kinds[k, share] = sum(1 for i in items if i.unit.hugepage_size is None and i.options
                              and len(i.options[0].nodes) == k
                              and -(-i.unit.size // k) >= share)
    k_nodes = tuple(
        KNodeBound(k, share, count, k_slots([f // share for f in free.values()], k))
        for (k, share), count in sorted(kinds.items()))
    return Bounds(balance, largest, k_nodes)


def _alone(problem: Problem, option: Option) -> float:
    fills = [(problem.fixed.mem.get(n, 0) + b) / problem.capacity[n]
             for n, b in option.load.mem.items() if problem.capacity.get(n, 0) > 0]
    return max(fills, default=0.0)


def shortfalls(problem: Problem) -> tuple[Overcommit, ...]:
    """The node sets short of ordinary memory whatever the placement (the split-anywhere
    relaxation, by max-flow), then those short of hugepages (in pages, one size at a time)."""
    demand: dict[frozenset[int], int] = {}
    pages: dict[int, dict[frozenset[int], int]] = {}
    for c in problem.choices:
        for item in c.items:
            reach = frozenset(n for o in item.options for n in o.nodes)
            if c.stay is not None:
                reach |= frozenset(c.stay.mem) | frozenset(n for n, _ in c.stay.pages)
            if not reach:
                reach = frozenset(problem.capacity)
            page = item.unit.hugepage_size
            if page is None:
                demand[reach] = demand.get(reach, 0) + item.unit.size
            else:
                by = pages.setdefault(page, {})
                by[reach] = by.get(reach, 0) + -(-item.unit.size // page)
    out = list(solve(demand, {n: max(0, f) for n, f in _free(problem).items()}).overcommits)
    for page, by in sorted(pages.items()):
        pools = {n: max(0, problem.pools.get((n, page), 0) - problem.fixed.pages.get((n, page), 0))
                 for n in problem.capacity}
        out.extend(solve(by, pools).overcommits)
    return tuple(out)


def proof(problem: Problem, decisions: Sequence[Decision], bnds: Bounds,
          short: Sequence[Overcommit], proven_max: int | None) -> tuple[str, ...]:
    """Why the guests left unplaced could not be placed: the node sets short of memory, the
    units no node set can hold, the k-node slots, or the solver's proven maximum."""
    lines: list[str] = []
    cap = sum(c for c in problem.capacity.values() if c > 0)
    demand = sum(problem.fixed.mem.values()) + sum(
        i.unit.size for i in problem.items if i.unit.hugepage_size is None)
    if demand > cap:   # the whole host: no placement at all can help
        lines.append(f"the host: the guests need {format_bytes(demand)} of ordinary memory but "
                     f"its nodes can give {format_bytes(cap)} after the hugepage pools, the "
                     "host reserve and what the host itself uses now: "
                     f"{format_bytes(demand - cap)} short whatever the placement")
    for oc in short:
        if oc.nodes == frozenset(problem.capacity) and lines:
            continue   # the same cut as the host's line
        where = _nodes(oc.nodes)
        lines.append(f"{where}: the guests the plan may put only on {where} (one node when "
                     f"one holds it, else the fewest nearest) need {format_bytes(oc.demand)} "
                     f"(or pages) but {where} can give {format_bytes(oc.capacity)} after the "
                     f"kept guests, the host reserve and what the host uses: "
                     f"{format_bytes(oc.shortfall)} short")
    for i in problem.items:
        if not i.options:
            lines.append(f"{i.unit.label}: {format_bytes(i.unit.size)} fits no set of nodes "
                         "the plan may give it, even with no other guest (capacity after the "
                         "host reserve and what the host uses"
                         + (", in its hugepage pools" if i.unit.hugepage_size else "") + ")")
    for kb in bnds.k_nodes:
        if kb.violated:
            lines.append(f"{kb.guests} units need {kb.k} distinct node"
                         f"{'s' if kb.k > 1 else ''} with {format_bytes(kb.share)} free on "
                         f"each, but the nodes have room for at most {kb.slots}")
    placed = sum(1 for d in decisions if d is not None)
    if proven_max is not None and not lines:
        lines.append(f"at most {proven_max} of the {len(problem.choices)} guests can be "
                     "placed together (proven optimal by HiGHS)")
    elif not lines:
        lines.append(f"{placed} of the {len(problem.choices)} guests were placed; no proof "
                     "that more cannot be (no solver, or its time limit)")
    return tuple(lines)


def _nodes(nodes: frozenset[int] | tuple[int, ...]) -> str:
    ids = sorted(nodes)
    return f"node {ids[0]}" if len(ids) == 1 else "nodes " + ",".join(map(str, ids))


def _who(users: Mapping[int, list[tuple[str, int, bool]]], node: int, but: str) -> str:
    there = sorted((u for u in users.get(node, []) if u[0] != but), key=lambda u: -u[1])
    if not there:
        return ""
    named = [f"{g}'s hugepages" if pages else g for g, _, pages in there[:2]]
    more = f" and {len(there) - 2} more" if len(there) > 2 else ""
    return " after " + ", ".join(named) + more


def reasons(problem: Problem, decisions: Sequence[Decision], peak: float
            ) -> dict[str, tuple[str, tuple[tuple[int, str], ...]]]:
    """Per placed guest: why its nodes, and for every other node why not (the binding
    constraint: memory, hugepages or vCPU slots short, and after whom; else the objective)."""
    mem: dict[int, int] = dict(problem.fixed.mem)
    pages: dict[tuple[int, int], int] = dict(problem.fixed.pages)
    vcpus: dict[int, float] = dict(problem.fixed.vcpus)
    users: dict[int, list[tuple[str, int, bool]]] = {}
    for g in problem.kept:   # named as they are, not added again (already in the fixed load)
        kept = current_load(problem.host, g, lenient=True)
        assert kept is not None
        for n, b in kept.mem.items():
            users.setdefault(n, []).append((g.name, b, False))
        for (n, s), p in kept.pages.items():
            users.setdefault(n, []).append((g.name, p * s, True))
    for c, d in zip(problem.choices, decisions, strict=True):
        for load in decision_loads(c, d):
            for n, b in load.mem.items():
                mem[n] = mem.get(n, 0) + b
                users.setdefault(n, []).append((c.name, b, False))
            for (n, s), p in load.pages.items():
                pages[n, s] = pages.get((n, s), 0) + p
                users.setdefault(n, []).append((c.name, p * s, True))
            for n, v in load.vcpus.items():
                vcpus[n] = vcpus.get(n, 0) + v
    out: dict[str, tuple[str, tuple[tuple[int, str], ...]]] = {}
    for c, d in zip(problem.choices, decisions, strict=True):
        if d is None:
            continue
        own = decision_loads(c, d)
        mine_mem: dict[int, int] = {}
        mine_pages: dict[tuple[int, int], int] = {}
        mine_vcpus: dict[int, float] = {}
        for load in own:
            for n, b in load.mem.items():
                mine_mem[n] = mine_mem.get(n, 0) + b
            for k, p in load.pages.items():
                mine_pages[k] = mine_pages.get(k, 0) + p
            for n, v in load.vcpus.items():
                mine_vcpus[n] = mine_vcpus.get(n, 0) + v
        chosen = sorted({n for load in own for n in (*load.mem, *(k[0] for k in load.pages))})
        if d == STAY:
            why = f"stays on {_nodes(tuple(chosen))} as it is: no change is needed"
        else:
            fills = [(mem.get(n, 0)) / problem.capacity[n] for n in chosen
                     if problem.capacity.get(n, 0) > 0]
            why = (f"on {_nodes(tuple(chosen))}" +
                   (f", filling it to {max(fills):.0%} (the plan's worst node: {peak:.0%})"
                    if fills else ""))
        nots: list[tuple[int, str]] = []
        single = [i for i in c.items if i.options and len(i.options[0].nodes) == 1]
        biggest: Item | None = max(single, key=lambda i: i.unit.size, default=None)
        if biggest is not None:
            at = {o.nodes[0]: o for o in biggest.options}
            for n in problem.capacity:
                if n in chosen:
                    continue
                opt = at.get(n)
                if opt is None:
                    nots.append((n, f"node {n} cannot hold {biggest.unit.label} even empty"))
                    continue
                nots.append((n, _why_not(problem, n, opt, c.name, mem, pages, vcpus,
                                         mine_mem, mine_pages, mine_vcpus, users, peak)))
        out[c.name] = (why, tuple(nots))
    return out


def _why_not(problem: Problem, n: int, opt: Option, guest: str, mem: Mapping[int, int],
             pages: Mapping[tuple[int, int], int], vcpus: Mapping[int, float],
             mine_mem: Mapping[int, int], mine_pages: Mapping[tuple[int, int], int],
             mine_vcpus: Mapping[int, float],
             users: Mapping[int, list[tuple[str, int, bool]]], peak: float) -> str:
    after = _who(users, n, guest)
    for k, p in opt.load.pages.items():
        have = problem.pools.get(k, 0) - pages.get(k, 0) + mine_pages.get(k, 0)
        if p > have:
            return (f"node {n}: {p - have} hugepages of {format_bytes(k[1])} short"
                    f"{after}")
    for m, b in opt.load.mem.items():
        room = problem.capacity.get(m, 0) - mem.get(m, 0) + mine_mem.get(m, 0)
        if b > room:
            return f"node {n}: {format_bytes(b - room)} short{after}"
    for m, v in opt.load.vcpus.items():
        room_v = problem.cpu_limit.get(m, 0) - vcpus.get(m, 0) + mine_vcpus.get(m, 0)
        if v > room_v + 1e-9:
            return f"node {n}: {v - room_v:g} vCPU slots short{after}"
    if n in opt.load.mem and problem.capacity.get(n, 0) > 0:
        fill = (mem.get(n, 0) - mine_mem.get(n, 0) + opt.load.mem[n]) / problem.capacity[n]
        if fill > peak + 1e-9:
            return f"node {n}: fits, but would fill to {fill:.0%} (worst node now {peak:.0%})"
        return f"node {n}: fits too ({fill:.0%}); the chosen node is as good or better " \
               "on remote access and moves"
    return f"node {n}: fits too; the chosen node is as good or better on remote access and moves"
