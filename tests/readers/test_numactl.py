"""parse_numactl on the real ``numactl -H`` captures and on hand-written samples."""

from __future__ import annotations

from pathlib import Path

import pytest
from captured import CAPTURES, FIXTURES, SYS

from numaguard.errors import ParseError
from numaguard.model.topology import Host
from numaguard.readers.numactl import parse_numactl
from numaguard.readers.sysfs import SysfsReader
from numaguard.units import MiB

SAMPLES = FIXTURES / "readers" / "numactl"


def _parse_file(path: Path) -> Host:
    return parse_numactl(path.read_text(encoding="utf-8"), path=str(path))


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_capture(name: str) -> None:
    host = _parse_file(SYS / name / "numactl-H.txt")
    assert host == CAPTURES[name].numactl_host()


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_agrees_with_sysfs(name: str) -> None:
    """Same machine, two sources: node ids, CPUs and distances equal; numactl's size is
    sysfs MemTotal rounded down to a MiB (fmt_mem: bytes >> 20)."""
    sysfs = SysfsReader(SYS / name).read_host()
    numactl = parse_numactl((SYS / name / "numactl-H.txt").read_text())
    assert [n.id for n in numactl.nodes] == [n.id for n in sysfs.nodes]
    assert [n.cpus for n in numactl.nodes] == [n.cpus for n in sysfs.nodes]
    assert numactl.distances == sysfs.distances
    for a, b in zip(sysfs.nodes, numactl.nodes, strict=True):
        assert 0 <= a.mem_total - b.mem_total < MiB
        assert b.mem_total == a.mem_total // MiB * MiB


def test_unknown_facts_are_none() -> None:
    host = parse_numactl((SYS / "swap" / "numactl-H.txt").read_text())
    assert (host.swap_total, host.swap_free, host.numa_balancing) == (None, None, None)
    assert all(n.hugepages == () for n in host.nodes)


def test_cpuless_and_memoryless_nodes() -> None:
    cpuless = parse_numactl((SYS / "cpuless" / "numactl-H.txt").read_text())
    assert cpuless.node(2).cpus == frozenset()
    memoryless = parse_numactl((SYS / "memoryless" / "numactl-H.txt").read_text())
    assert (memoryless.node(2).mem_total, memoryless.node(2).mem_free) == (0, 0)


def test_big_snc_machine_numactl_2_0_16() -> None:
    host = _parse_file(SAMPLES / "xeon-snc2-2.0.16.txt")
    assert [n.id for n in host.nodes] == [0, 1, 2, 3]
    assert host.node(0).cpus == frozenset(range(14)) | frozenset(range(56, 70))
    assert host.node(3).cpus == frozenset(range(42, 56)) | frozenset(range(98, 112))
    assert sum(len(n.cpus) for n in host.nodes) == 112
    assert host.node(1).mem_total == 129021 * MiB
    assert host.node(2).mem_free == 88240 * MiB
    assert host.distance(0, 1) == 11 and host.distance(1, 2) == 21


def test_cxl_node_numactl_2_0_19_wide_columns() -> None:
    # numactl 2.0.19 prints the distance table with "% 4d " columns (commit 81c9a37).
    host = _parse_file(SAMPLES / "cxl-2.0.19.txt")
    assert host.node(2).cpus == frozenset()
    assert host.node(2).mem_total == 131072 * MiB
    assert host.distances == ((10, 21, 14), (21, 10, 24), (14, 24, 10))


def test_cpu_compress_output() -> None:
    text = (
        "available: 2 nodes (0-1)\n"
        "node 0 cpus: 0-3, 8-11 (8)\n"
        "node 0 size: 1024 MB\n"
        "node 0 free: 512 MB\n"
        "node 1 cpus: 4-7, 12-15 (8)\n"
        "node 1 size: 1024 MB\n"
        "node 1 free: <not available>\n"
        "No distance information available.\n"
    )
    host = parse_numactl(text)
    assert host.node(1).cpus == frozenset({4, 5, 6, 7, 12, 13, 14, 15})
    assert host.node(1).mem_free is None
    assert host.distances is None


def test_sparse_node_list() -> None:
    text = (
        "available: 2 nodes (0,2)\n"
        "node 0 cpus: 0 1\nnode 0 size: 100 MB\nnode 0 free: 50 MB\n"
        "node 2 cpus: 2 3\nnode 2 size: 100 MB\nnode 2 free: 50 MB\n"
        "node distances:\nnode     0    2 \n   0:   10   20 \n   2:   20   10 \n"
    )
    host = parse_numactl(text)
    assert [n.id for n in host.nodes] == [0, 2]
    assert host.distance(2, 0) == 20


def test_libnuma_warning_lines_are_skipped() -> None:
    text = (SYS / "2node" / "numactl-H.txt").read_text()
    text = "libnuma: Warning: Cannot parse sysfs meminfo (1)\n" + text
    assert parse_numactl(text) == CAPTURES["2node"].numactl_host()


# -- errors: each names the line -----------------------------------------------------------------


def _error(text: str) -> ParseError:
    with pytest.raises(ParseError) as err:
        parse_numactl(text, path="numactl-H.txt")
    assert err.value.path == "numactl-H.txt"
    return err.value


def test_no_numa() -> None:
    err = _error("No NUMA available on this system\n")
    assert err.line == 1
    assert "no NUMA" in str(err)


def test_empty() -> None:
    assert "empty" in str(_error("\n\n"))


def test_garbage_first_line() -> None:
    err = _error("<html><body>502 Bad Gateway</body></html>\n")
    assert (err.line, err.field) == (1, "available")


def test_garbage_in_the_middle() -> None:
    lines = (SYS / "2node" / "numactl-H.txt").read_text().splitlines(keepends=True)
    lines.insert(4, "Segmentation fault (core dumped)\n")
    err = _error("".join(lines))
    assert err.line == 5
    assert "Segmentation fault" in str(err)
    assert str(err).startswith("numactl-H.txt:5: ")


def test_size_in_wrong_unit() -> None:
    text = (SYS / "2node" / "numactl-H.txt").read_text().replace("501 MB", "501 GB")
    err = _error(text)
    assert (err.line, err.field) == (6, "size")


def test_size_not_available() -> None:
    text = (SYS / "2node" / "numactl-H.txt").read_text().replace("501 MB", "<not available>")
    assert _error(text).line == 6


def test_bad_cpu_list() -> None:
    text = (SYS / "2node" / "numactl-H.txt").read_text().replace("cpus: 2 3", "cpus: 2 x")
    err = _error(text)
    assert (err.line, err.field) == (5, "cpus")


def test_short_distance_row() -> None:
    text = (SYS / "2node" / "numactl-H.txt").read_text().replace("  1:  21  10", "  1:  21")
    err = _error(text)
    assert (err.line, err.field) == (11, "distances")


def test_truncated_distance_table() -> None:
    lines = (SYS / "4node" / "numactl-H.txt").read_text().splitlines(keepends=True)
    err = _error("".join(lines[:-2]))
    assert "no distance row for node 2" in str(err)


def test_distance_header_does_not_match_nodes() -> None:
    text = (SYS / "2node" / "numactl-H.txt").read_text().replace("node   0   1", "node   0   2")
    assert _error(text).line == 9


def test_node_count_does_not_match_list() -> None:
    text = (SYS / "2node" / "numactl-H.txt").read_text().replace("2 nodes (0-1)", "3 nodes (0-1)")
    assert _error(text).line == 1


def test_node_lines_do_not_match_available() -> None:
    text = (SYS / "2node" / "numactl-H.txt").read_text().replace("(0-1)", "(0,2)")
    assert "'available' lists [0, 2]" in str(_error(text))


def test_missing_size_line() -> None:
    lines = (SYS / "2node" / "numactl-H.txt").read_text().splitlines(keepends=True)
    del lines[5]  # node 1 size
    err = _error("".join(lines))
    assert (err.line, err.field) == (5, "size")
