"""The topology text: a boxed distance table for ordinary hosts, numactl-style rows for big
ones (a 1,024 x 1,024 rich table takes seconds to lay out)."""

from numaguard.model.topology import Host, Node
from numaguard.report.text import BOXED_DISTANCES, topology_text


def _host(n: int) -> Host:
    return Host(nodes=tuple(Node(id=i, cpus=frozenset({i}), mem_total=2**30) for i in range(n)),
                distances=tuple(tuple(10 if i == j else 20 + (i + j) % 3 for j in range(n))
                                for i in range(n)))


def test_small_hosts_get_the_boxed_table():
    out = topology_text(_host(4))
    assert "┃ from \\ to ┃" in out and "Distances (from \\ to)" not in out


def test_big_hosts_get_one_unwrapped_line_per_node():
    n = BOXED_DISTANCES + 1
    host = _host(n)
    lines = topology_text(host).splitlines()
    start = lines.index("Distances (from \\ to)")
    assert lines[start + 1].split() == ["node", *(str(i) for i in range(n))]
    rows = lines[start + 2:start + 2 + n]
    for i, line in enumerate(rows):
        head, _, values = line.partition(":")
        assert int(head) == i
        assert tuple(int(v) for v in values.split()) == host.distances[i]
    assert lines[start + 2 + n].startswith("Swap:")
