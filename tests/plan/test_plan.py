"""The planner (core/plan): optimum by brute force on small instances, proofs of infeasibility,
the closed-form k-node bound, the greedy-only path, and planned hosts that audit clean."""

from __future__ import annotations

import builtins
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numaguard.core.capacity import capacities
from numaguard.core.changes import PinVcpus, SetMemnode, SetMemoryPolicy
from numaguard.core.findings import Severity
from numaguard.core.plan import Restart, k_slots, plan
from numaguard.core.plan.milp import load_highs
from numaguard.core.rules import AuditOptions, audit
from numaguard.model.inventory import Inventory
from numaguard.model.policy import MemoryMode
from tests.unit.rules.builders import GiB, guest, host

HIGHS = load_highs()
needs_highs = pytest.mark.skipif(HIGHS is None, reason="numaguard[plan] (highspy) not installed")


def _fill(h, placement_of, guests):
    """Peak fill and remote cost of a brute-force assignment guest -> node (single nodes)."""
    cap = capacities(h)
    used = dict.fromkeys(cap, 0)
    for g in guests:
        used[placement_of[g.name]] += g.memory
    if any(used[n] > cap[n] for n in cap):
        return None
    return max(used[n] / cap[n] for n in cap if cap[n] > 0)


def brute_peak(h, guests):
    nodes = [n.id for n in h.nodes]
    best = None
    for combo in itertools.product(nodes, repeat=len(guests)):
        peak = _fill(h, {g.name: n for g, n in zip(guests, combo, strict=True)}, guests)
        if peak is not None and (best is None or peak < best):
            best = peak
    return best


SMALL = [
    ([16, 16], [5, 4, 3, 3, 2]),
    ([16, 12, 8], [6, 5, 4, 4, 2, 1]),
    ([24, 10], [8, 7, 3, 2]),
    ([12, 12, 12], [9, 3, 3, 3, 2, 2]),
]


@needs_highs
@pytest.mark.parametrize(("nodes", "sizes"), SMALL)
def test_peak_matches_brute_force(nodes, sizes):
    h = host([(4, m) for m in nodes])
    guests = [guest(f"g{i}", s, 1) for i, s in enumerate(sizes)]
    p = plan(h, guests, running=frozenset())
    assert p.complete and p.optimal is True
    assert p.objective.peak == pytest.approx(brute_peak(h, guests), abs=1e-6)
    assert p.objective.peak >= p.bounds.peak - 1e-9
    assert p.objective.remote == 0       # every guest on one node, its vCPUs there too
    for pl in p.placements:
        assert len(pl.nodes) == 1
        assert pl.cpuset == h.node(next(iter(pl.nodes))).cpus


@needs_highs
def test_remote_cost_matches_brute_force_for_a_guest_spanning_nodes():
    # a 20 GiB guest fits on no node alone: it spans the 2 nearest; 0-1 are 12 apart, 0-2 30
    dist = [[10, 12, 30], [12, 10, 30], [30, 30, 10]]
    h = host([(4, 16), (4, 16), (4, 16)], distances=dist)
    big = guest("big", 20, 4)
    small = guest("small", 2, 1)
    p = plan(h, [big, small], running=frozenset())
    pl = p.placement("big")
    assert pl.nodes == frozenset({0, 1}) and pl.mode is MemoryMode.INTERLEAVE
    # brute force over the 2-node balls: memory evenly over both, vCPUs over both
    costs = {}
    for pair in ((0, 1), (0, 2), (1, 2)):
        spread = sum(h.distance(a, b) - 10 for a in pair for b in pair)
        costs[pair] = big.memory * spread // 4
    assert p.objective.remote == min(costs.values())
    assert p.optimal is True


@needs_highs
def test_strict_guest_stays_strict_on_one_node_and_preferred_otherwise():
    h = host([(4, 16), (4, 16)])
    db = guest("db", 8, 2, mode="strict", nodeset="0-1")      # strict over 2 nodes: fills 0 first
    web = guest("web", 6, 2)
    p = plan(h, [db, web], running=frozenset({"db", "web"}))
    d, w = p.placement("db"), p.placement("web")
    assert d.mode is MemoryMode.STRICT and len(d.nodeset) == 1
    assert w.mode is MemoryMode.PREFERRED and len(w.nodeset) == 1
    assert d.restart is Restart.COLD and d.moved
    assert any(isinstance(c, PinVcpus) for c in d.changes)
    assert p.cold_restarts == 2


@needs_highs
def test_guest_cells_each_get_their_node():
    h = host([(4, 16), (4, 16)])
    two = guest("two", 0, 4, cells=[("0-1", 10), ("2-3", 10)])
    p = plan(h, [two], running=frozenset())
    pl = p.placement("two")
    assert {c for c, _, _ in pl.memnodes} == {0, 1}
    assert {ns for _, _, ns in pl.memnodes} == {frozenset({0}), frozenset({1})}
    memnodes = [c for c in pl.changes if isinstance(c, SetMemnode)]
    assert len(memnodes) == 2
    pins = {c.vcpus: c.cpus for c in pl.changes if isinstance(c, PinVcpus)}
    cell_node = {c: next(iter(ns)) for c, _, ns in pl.memnodes}
    assert pins[frozenset({0, 1})] == h.node(cell_node[0]).cpus
    assert pins[frozenset({2, 3})] == h.node(cell_node[1]).cpus


def test_infeasible_instance_names_the_short_nodes():
    h = host([(4, 16), (4, 16)])
    kept = guest("kept", 14, 1, mode="strict", nodeset="0")
    others = [guest("a", 10, 1), guest("b", 10, 1)]   # 14+20 > 28.8 of capacity
    p = plan(h, [kept, *others], keep=["kept"], solver=None)
    assert not p.complete
    assert p.shortfalls and p.shortfalls[0].nodes == frozenset({0, 1})
    short = p.shortfalls[0].shortfall
    cap = capacities(h)
    assert short == 14 * GiB + 20 * GiB - cap[0] - cap[1]
    # the cut is the whole host: said as the host's line
    assert p.proof[0].startswith("the host: ") and "short whatever the placement" in p.proof[0]
    assert not any(line.startswith("nodes 0,1:") for line in p.proof)


@needs_highs
def test_packing_infeasibility_is_proven_by_the_solver():
    # 3 guests of 9 GiB on 2 nodes of ~14.2 GiB: the flow (split anywhere) fits 27 <= 28.4,
    # but only one guest fits per node
    h = host([(4, 15.2), (4, 15.2)])
    gs = [guest(f"g{i}", 9, 1) for i in range(3)]
    p = plan(h, gs, running=frozenset())
    assert len(p.unplaced) == 1
    assert not p.shortfalls
    assert any("2 of the 3" in line or "room for at most 2" in line for line in p.proof)


def test_k_slots_closed_form_against_brute_force():
    for free in ([3, 1, 1], [2, 2, 2], [5, 0, 1, 1], [1, 1, 1, 1], [4, 4, 1]):
        for k in (1, 2, 3):
            # brute force: repeatedly take k distinct nodes with slots left (the largest first
            # is optimal for k-set packing)
            left = list(free)
            count = 0
            while True:
                order = sorted(range(len(left)), key=lambda i: -left[i])[:k]
                if len(order) < k or left[order[-1]] == 0:
                    break
                for i in order:
                    left[i] -= 1
                count += 1
            assert k_slots(free, k) == count, (free, k)


def test_why_not_names_the_binding_constraint():
    h = host([(4, 16), (4, 16)])
    db = guest("db", 13, 1, mode="strict", nodeset="1")
    vm = guest("vm", 10, 1)
    p = plan(h, [db, vm], keep=["db"], solver=None)
    reasons = dict(p.placement("vm").why_not)
    assert "node 1" in reasons[1] and "short after db" in reasons[1]


def test_max_moves_and_keep():
    h = host([(4, 16), (4, 16)])
    a = guest("a", 6, 1, mode="preferred", nodeset="0")
    b = guest("b", 6, 1, mode="preferred", nodeset="0")
    c = guest("c", 2, 1, mode="preferred", nodeset="0")
    for solver in (None, "auto"):
        p = plan(h, [a, b, c], max_moves=1, running=frozenset(), solver=solver)
        assert p.objective.moved <= 1
        assert sum(pl.moved for pl in p.placements) <= 1
        kept = plan(h, [a, b, c], keep=["a", "b"], running=frozenset(), solver=solver)
        assert kept.kept == ("a", "b") and [pl.guest for pl in kept.placements] == ["c"]


@needs_highs
def test_new_guest_is_placed_where_it_fits():
    h = host([(4, 16), (4, 16)])
    old = guest("old", 12, 1, mode="strict", nodeset="0")
    new = guest("new", 12, 1)
    p = plan(h, [old], new=[new], keep=["old"])
    pl = p.placement("new")
    assert pl.new and pl.nodes == frozenset({1}) and not pl.moved


def test_greedy_only_when_highspy_cannot_be_imported(monkeypatch):
    real = builtins.__import__

    def no_highspy(name, *args, **kwargs):
        if name == "highspy":
            raise ImportError("no highspy here")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_highspy)
    assert load_highs() is None
    h = host([(4, 16), (4, 16)])
    gs = [guest("a", 8, 2, mode="strict", nodeset="0"), guest("b", 8, 2, mode="strict",
                                                              nodeset="0")]
    p = plan(h, gs)
    assert p.optimal is None and p.gap is None and not p.stages
    assert "no optimality" in p.solver
    assert p.complete
    inv = Inventory(h, tuple(gs))
    after = p.apply(inv)
    assert not [f for f in audit(after.host, after.guests).findings
                if f.severity is Severity.CRITICAL]


# -- every planned host audits clean ---------------------------------------------------------

@st.composite
def instances(draw):
    n = draw(st.integers(2, 3))
    mems = [draw(st.integers(8, 32)) for _ in range(n)]
    h = host([(4, m) for m in mems], swap=0)
    cap = sum(capacities(h).values()) / GiB
    count = draw(st.integers(1, 6))
    guests = []
    budget = cap * 0.95
    for i in range(count):
        size = draw(st.integers(1, max(1, min(12, int(budget)))))
        if size > budget:
            break
        budget -= size
        kind = draw(st.sampled_from(["none", "strict", "preferred", "interleave", "cells",
                                     "restrictive"]))
        node = draw(st.integers(0, n - 1))
        if kind == "cells" and size >= 2:
            guests.append(guest(f"g{i}", 0, 2, cells=[("0", size / 2), ("1", size / 2)],
                                mode="strict", nodeset=str(node)))
        elif kind in ("strict", "preferred", "restrictive"):
            guests.append(guest(f"g{i}", size, 2, mode=kind, nodeset=str(node)))
        elif kind == "interleave":
            guests.append(guest(f"g{i}", size, 2, mode=kind, nodeset=f"0-{n - 1}"))
        else:
            guests.append(guest(f"g{i}", size, 2))
    running = frozenset(g.name for g in guests if draw(st.booleans()))
    return h, tuple(guests), running


@needs_highs
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(), st.sampled_from(["auto", None]))
def test_planned_host_audits_without_critical_findings(inst, solver):
    h, guests, running = inst
    options = AuditOptions(cpu_overcommit_ratio=4.0)
    p = plan(h, guests, running=running, options=options, solver=solver, time_limit=5)
    inv = Inventory(h, guests, running=running)
    after = p.apply(inv)
    result = audit(after.host, after.guests, options)
    if not p.complete:
        assert p.proof
        return
    critical = [f for f in result.findings if f.severity is Severity.CRITICAL]
    assert not critical, [f.message for f in critical]
    assert result.prediction is not None and not result.prediction.kills
    for pl in p.placements:
        assert pl.placed
        for c in pl.changes:
            if isinstance(c, SetMemoryPolicy | SetMemnode) and c.mode.binds:
                assert len(c.nodeset) == 1 or isinstance(c, SetMemoryPolicy)
