"""bench/plan_bench.py and bench/plan_baselines.py still run against today's API, on tiny
sizes (no timings checked: speed is measured in bench/, never asserted): the rows come out,
the generated instances are feasible, and the baselines place what their sources say."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import plan_bench  # noqa: E402
from bench.plan_baselines import nova_first_fit, numad, numad_advice  # noqa: E402
from numaguard.core.capacity import capacities, memory_units  # noqa: E402
from numaguard.model.inventory import Inventory  # noqa: E402
from numaguard.model.policy import MemoryMode  # noqa: E402
from tests.unit.rules.builders import guest, host  # noqa: E402

SOLVER = plan_bench.quiet_highs if plan_bench.have_highs() else None


def _used(h, guests, placed):
    """Per-node ordinary bytes, per (node, size) pages, per-node vCPUs of a baseline's
    one-node-per-unit placement."""
    mem, pages, vcpus = {}, {}, {}
    by = {p.guest: p for p in placed}
    for g in guests:
        p = by[g.name]
        if not p.placed:
            continue
        for u, (_, ns) in zip([u for u in memory_units(g) if u.size], p.cells, strict=True):
            assert len(ns) == 1
            n = ns[0]
            if u.hugepage_size is None:
                mem[n] = mem.get(n, 0) + u.size
            else:
                key = (n, u.hugepage_size)
                pages[key] = pages.get(key, 0) + -(-u.size // u.hugepage_size)
            vcpus[n] = vcpus.get(n, 0) + (len(u.vcpus) if g.cells else g.vcpus)
    return mem, pages, vcpus


@pytest.mark.parametrize(("nodes", "guests", "fill"), [(2, 8, 0.9), (4, 16, 0.97)])
def test_rows_come_out_and_nova_respects_every_capacity(nodes, guests, fill):
    inst = plan_bench.generate(nodes, guests, fill, 5, family="near-full", two_cell=0.3,
                               hugepages=0.15, pinned=0.3, bound=0.3)
    inv = inst.inventory
    assert any(len(g.cells) == 2 for g in inv.guests)
    assert any(g.hugepages for g in inv.guests)
    results = plan_bench.run_all([inst], lambda i: 5.0, SOLVER)
    assert [r.method for r in results] == ["numaguard plan", "Nova first fit", "numad"]
    assert all(r.guests == len(inv.guests) and 0 < r.placed <= r.guests for r in results)
    plan_row = results[0]
    assert plan_row.strict_over == 0 and plan_row.peak >= plan_row.balance - 1e-9
    if SOLVER is not None:   # feasible by construction: the exact planner places every guest
        assert plan_row.complete and plan_row.remote_optimal is True
    text = plan_bench.table(results)
    assert len(text.splitlines()) == 2 + 3 and "Nova first fit" in text
    assert plan_bench.summary(results)[0].startswith("near-full grid target")

    h, opts = inv.host, inst.options
    placed = nova_first_fit(h, inv.guests, cpu_overcommit_ratio=opts.cpu_overcommit_ratio)
    mem, pages, vcpus = _used(h, inv.guests, placed)
    cap = capacities(h)
    pools = {(n.id, p.size): p.total for n in h.nodes for p in n.hugepages}
    assert all(b <= cap[n] for n, b in mem.items())
    assert all(p <= pools[k] for k, p in pages.items())
    assert all(v <= len(h.node(n).cpus) * opts.cpu_overcommit_ratio for n, v in vcpus.items())
    assert results[1].strict_over == 0
    for p in placed:   # 2-cell guests on two distinct host cells (a permutation), bound strict
        if p.placed:
            assert len(p.nodes) == len(p.cells)
            assert p.changes[0].mode is MemoryMode.STRICT


def test_nova_takes_the_first_permutation_and_refuses_what_does_not_fit():
    h = host([(4, 16), (4, 16), (4, 16)])
    cap = capacities(h)[0]
    a = guest("a", 0, 2, cells=[("0", 2), ("1", 2)])
    b = guest("b", 0, 1, memory_bytes=cap)            # fills a whole node
    c = guest("c", 0, 1, memory_bytes=cap)
    d = guest("d", 0, 1, memory_bytes=cap - 1)       # nowhere left: node 0 and 1 hold a's cells
    out = {p.guest: p for p in nova_first_fit(h, [a, b, c, d])}
    assert out["a"].cells == ((0, (0,)), (1, (1,)))  # (0, 1): the first permutation
    assert out["b"].nodes == {2}
    assert not out["c"].placed and not out["d"].placed


def test_numad_picks_by_magnitude_and_spans_the_nearest_nodes():
    dist = [[10, 16, 32], [16, 10, 32], [32, 32, 10]]
    h = host([(4, 64), (4, 64), (4, 64)], distances=dist)
    free_cpu = {0: 400, 1: 400, 2: 400}
    # a small request: the node with the most free memory, weighed with its near neighbours
    assert numad_advice(h, 1024, 100, {0: 10_000, 1: 10_000, 2: 60_000}, free_cpu) == (2,)
    # larger than one node (64 GiB MemTotal): two nodes, the nearest pair
    assert numad_advice(h, 100_000, 100, {0: 60_000, 1: 60_000, 2: 60_000}, free_cpu) == (0, 1)


def test_numad_does_not_see_hugepages_taken_and_the_audit_counts_it():
    h = host([(4, 32, None, {"1G": 4}), (4, 32, None, {"1G": 4})])
    big = guest("big", 20, 1)                        # node 0 (a tie: the first node)
    hps = [guest(f"hp{i}", 4, 1, hugepage_size="1G") for i in range(2)]
    guests = [big, *hps]
    placed = numad(h, guests)
    # node 1 has the more free memory, and taking its pool leaves MemFree as it was
    assert [p.nodes for p in placed] == [{0}, {1}, {1}]
    inst = plan_bench.Instance("hp", "re-plan", Inventory(h, tuple(guests)),
                               plan_bench.AuditOptions(), 0.5)
    m = plan_bench.measure(inst, {p.guest: p.changes for p in placed})
    assert m["strict_over"] >= 1                     # 8 pages from a pool of 4 (NG301)
    nova = nova_first_fit(h, guests)                 # checks the pool's free pages
    assert [p.nodes for p in nova] == [{0}, {0}, {1}]
    assert plan_bench.measure(inst, {p.guest: p.changes for p in nova})["strict_over"] == 0
