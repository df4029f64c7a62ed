"""The kernel's zonelist fallback order, checked against the boot log of every captured host."""

import pathlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numaguard.core.fallback import fallback_orders
from numaguard.model.topology import Host, Node
from numaguard.readers.sysfs import SysfsReader

SYS = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "sys"
CAPTURES = sorted(p for p in SYS.iterdir() if (p / "fallback.txt").is_file())


def boot_log_orders(path: pathlib.Path) -> dict[int, tuple[int, ...]]:
    text = (path / "fallback.txt").read_text()
    return {int(m.group(1)): tuple(int(x) for x in m.group(2).split())
            for m in re.finditer(r"Fallback order for Node (\d+): ([\d ]+)", text)}


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_matches_the_kernels_boot_log(capture):
    want = boot_log_orders(capture)
    assert want, "capture has no Fallback order lines"
    assert fallback_orders(SysfsReader(str(capture)).read_host()) == want


def test_there_are_tie_breaking_cases_among_the_captures():
    # 8node: node 1 goes 1 0 3 2 … (not 1 0 2 3): node_load spreads ties round-robin.
    assert boot_log_orders(SYS / "8node")[1][:4] == (1, 0, 3, 2)
    assert len(CAPTURES) >= 8


def test_equal_distances_three_nodes():
    nodes = tuple(Node(i, frozenset({i}), 1 << 30) for i in range(3))
    host = Host(nodes, tuple(tuple(10 if a == b else 21 for b in range(3)) for a in range(3)))
    assert fallback_orders(host) == {0: (0, 1, 2), 1: (1, 2, 0), 2: (2, 0, 1)}


def test_memoryless_node_is_first_only_in_its_own_list():
    nodes = (Node(0, frozenset({0}), 1 << 30), Node(1, frozenset({1}), 1 << 30),
             Node(2, frozenset({2}), 0))
    host = Host(nodes, ((10, 21, 21), (21, 10, 21), (21, 21, 10)))
    orders = fallback_orders(host)
    assert orders[2][0] == 2 and 2 not in orders[0] and 2 not in orders[1]


# -- the sort-once order against a line-by-line port of the kernel's loop ---------------------

def kernel_loop_orders(host: Host) -> dict[int, tuple[int, ...]]:
    """``build_zonelists``/``find_next_best_node`` (mm/page_alloc.c, Linux 6.1) as written:
    one scan of every memory node per position, O(N³).  The reference for fallback_orders."""
    from numaguard.core.fallback import MAX_NUMNODES, PENALTY_FOR_NODE_WITH_CPUS, node_distance

    node_load = {n.id: 0 for n in host.nodes}
    with_memory = [n for n in host.nodes if n.mem_total > 0]
    orders: dict[int, tuple[int, ...]] = {}
    for local in host.nodes:
        used: set[int] = set()
        order: list[int] = []
        prev = local.id
        while True:
            if local.id not in used:
                best = local.id
            else:
                best, best_val = -1, None
                for cand in with_memory:
                    n = cand.id
                    if n in used:
                        continue
                    val = node_distance(host, local.id, n) + (1 if n < local.id else 0)
                    if cand.cpus:
                        val += PENALTY_FOR_NODE_WITH_CPUS
                    val = val * MAX_NUMNODES + node_load[n]
                    if best_val is None or val < best_val:
                        best_val, best = val, n
                if best < 0:
                    break
            used.add(best)
            if node_distance(host, local.id, best) != node_distance(host, local.id, prev):
                node_load[best] += 1
            order.append(best)
            prev = best
        orders[local.id] = tuple(order)
    return orders


@st.composite
def random_hosts(draw):
    size = draw(st.integers(1, 12))
    ids = sorted(draw(st.sets(st.integers(0, 40), min_size=size, max_size=size)))
    # few distinct values, so ties (and node_load tie-breaking) are common; asymmetric too
    dist = draw(st.sampled_from([(12, 21), (11, 20, 32), (16, 22, 28, 255), (20,)]))
    rows = tuple(tuple(10 if a == b else draw(st.sampled_from(dist)) for b in range(size))
                 for a in range(size))
    nodes = tuple(Node(i, frozenset({i}) if draw(st.booleans()) else frozenset(),
                       draw(st.sampled_from([0, 1 << 30, 1 << 34]))) for i in ids)
    return Host(nodes, rows if draw(st.integers(0, 5)) else None)


@settings(max_examples=400, deadline=None)
@given(random_hosts())
def test_sort_once_equals_the_kernels_loop(host):
    assert fallback_orders(host) == kernel_loop_orders(host)


def test_sort_once_equals_the_kernels_loop_on_a_large_ring():
    # 64 nodes, distances by ring hops (many equal groups), every 5th node memoryless,
    # every 7th CPU-less
    n = 64
    nodes = tuple(Node(i, frozenset() if i % 7 == 3 else frozenset({i}),
                       0 if i % 5 == 1 else 1 << 30) for i in range(n))
    rows = tuple(tuple(10 if a == b else 20 + 4 * min((a - b) % n, (b - a) % n) // 8
                       for b in range(n)) for a in range(n))
    host = Host(nodes, rows)
    assert fallback_orders(host) == kernel_loop_orders(host)
