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


def _plain_matrix(lines: list[str], n: int) -> tuple[list[int], dict[int, list[int]], int]:
    """The columns, rows and end of numactl-style distance blocks starting after the title."""
    start = lines.index("Distances (from \\ to)")
    columns: list[int] = []
    rows: dict[int, list[int]] = {}
    i = start + 1
    while lines[i].startswith("node "):
        columns += [int(c) for c in lines[i].split()[1:]]
        for line in lines[i + 1:i + 1 + n]:
            head, _, values = line.partition(":")
            rows.setdefault(int(head), []).extend(int(v) for v in values.split())
        i += n + 1
        if lines[i] == "":
            i += 1
    return columns, rows, i


def test_big_hosts_get_numactl_rows_in_blocks_that_fit_the_width():
    n = BOXED_DISTANCES + 1
    host = _host(n)
    for width, blocks in ((80, 3), (400, 1)):  # 3 characters a column: 25 per block at 80
        lines = topology_text(host, width=width).splitlines()
        columns, rows, end = _plain_matrix(lines, n)
        assert columns == list(range(n)) and sorted(rows) == list(range(n))
        assert all(tuple(rows[i]) == host.distances[i] for i in range(n))
        assert sum(line.startswith("node ") for line in lines) == blocks
        assert lines[end].startswith("Swap:")
        assert max(len(line) for line in lines) <= width


def test_a_wide_boxed_matrix_stacks_and_every_line_fits():
    host = _host(16)
    out = topology_text(host, width=80)
    assert "Distances (part 1 of 2)" in out and "Distances (part 2 of 2)" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    wide = topology_text(host, width=200)
    assert "Distances (part" not in wide and "┃ from \\ to ┃" in wide
