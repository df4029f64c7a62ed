"""The kernel's zonelist fallback order, checked against the boot log of every captured host."""

import pathlib
import re

import pytest

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
