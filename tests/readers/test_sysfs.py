"""SysfsReader on the real captured trees (tests/fixtures/sys) and on broken copies of them."""

from __future__ import annotations

import glob
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from captured import CAPTURES, FIXTURES, SYS

from numaguard.errors import ParseError, PermissionDenied, SourceError
from numaguard.model.topology import Host, HostHugepages, Node
from numaguard.readers.sysfs import SysfsReader
from numaguard.units import KiB, MiB

NODE = "sys/devices/system/node"


def test_every_capture_is_described() -> None:
    on_disk = {p.name for p in SYS.iterdir() if p.is_dir()}
    assert on_disk == set(CAPTURES)


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_capture(name: str) -> None:
    host = SysfsReader(SYS / name).read_host()
    assert _without_allocator_detail(host) == CAPTURES[name].sysfs_host()


def _without_allocator_detail(host: Host) -> Host:
    """The host with watermarks and reclaimable page cache cleared (tested separately)."""
    return replace(host, nodes=tuple(
        replace(n, watermark_min=None, watermark_low=None, watermark_high=None,
                reclaimable=None) for n in host.nodes))


def test_watermarks_are_zoneinfo_sums() -> None:
    # 2node/proc/zoneinfo, node 0: DMA min/low/high 190/237/284, DMA32 5537/6921/8305 pages
    node = SysfsReader(SYS / "2node").read_host().node(0)
    assert node.watermark_min == (190 + 5537) * 4096
    assert node.watermark_low == (237 + 6921) * 4096
    assert node.watermark_high == (284 + 8305) * 4096
    for name in CAPTURES:
        for n in SysfsReader(SYS / name).read_host().nodes:
            assert n.watermark_min is not None and n.watermark_low is not None
            assert n.watermark_min <= n.watermark_low <= n.watermark_high
            assert (n.watermark_min > 0) == (n.mem_total > 0)


def test_reclaimable_is_file_pages(tree: Path) -> None:
    # the captures ran from an initramfs (no page cache): give node 0 some, as a disk would
    meminfo = tree / NODE / "node0" / "meminfo"
    text = meminfo.read_text()
    assert "Node 0 Active(file):          0 kB" in text
    meminfo.write_text(text.replace("Node 0 Active(file):          0 kB",
                                    "Node 0 Active(file):     276540 kB")
                           .replace("Node 0 Inactive(file):        0 kB",
                                    "Node 0 Inactive(file):   650212 kB"))
    assert SysfsReader(tree).read_host().node(0).reclaimable == (276540 + 650212) * 1024
    assert SysfsReader(tree).read_host().node(1).reclaimable == 0


def test_zoneinfo_is_optional(tree: Path) -> None:
    (tree / "proc" / "zoneinfo").unlink()
    assert SysfsReader(tree).read_host().node(0).watermark_min is None


def test_memoryless_node() -> None:
    node = SysfsReader(SYS / "memoryless").read_host().node(2)
    assert node.cpus == {2}
    assert node.mem_total == 0 and node.mem_free == 0


def test_cpuless_node() -> None:
    host = SysfsReader(SYS / "cpuless").read_host()
    assert host.node(2).cpus == frozenset()
    assert host.node(2).mem_total == 255676 * KiB
    assert host.distance(0, 2) == 24


def test_offline_cpu_is_not_listed() -> None:
    host = SysfsReader(SYS / "offline-cpus").read_host()
    assert host.node(1).cpus == {2}
    assert host.node_of_cpu(3) is None


def test_hugepage_pools() -> None:
    host = SysfsReader(SYS / "hugepages").read_host()
    assert host.node(0).hugepage_pool(2 * MiB) == HostHugepages(2 * MiB, total=16, free=12)
    assert host.node(1).hugepage_pool(1024 * MiB) == HostHugepages(1024 * MiB, total=1, free=1)


def test_swap_in_use() -> None:
    host = SysfsReader(SYS / "swap").read_host()
    assert host.swap_total == 65532 * KiB
    assert host.swap_free is not None and host.swap_free < host.swap_total


def test_single_node_machine_has_numa_balancing_off() -> None:
    # The kernel enables automatic NUMA balancing only with more than one node.
    assert SysfsReader(SYS / "1node").read_host().numa_balancing is False


def test_sparse_node_ids_without_proc() -> None:
    """Hand-made tree: online nodes 0 and 2, no hugepages/ on node 2, no proc/."""
    host = SysfsReader(FIXTURES / "readers" / "sys-sparse").read_host()
    assert [n.id for n in host.nodes] == [0, 2]
    assert host.distances == ((10, 20), (20, 10))
    assert host.distance(2, 0) == 20
    assert host.node(0).hugepages == (HostHugepages(2 * MiB, total=4, free=3),)
    assert host.node(2).hugepages == ()
    assert host.node(2).cpus == frozenset(range(4, 8))
    assert (host.swap_total, host.swap_free, host.numa_balancing) == (None, None, None)


# -- capture_paths -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["2node", "hugepages", "swap", "memoryless"])
def test_capture_paths_are_enough(tmp_path: Path, name: str) -> None:
    """Copying only capture_paths() gives a tree that reads the same."""
    src = SYS / name
    for pattern in SysfsReader.capture_paths():
        for found in glob.glob(str(src / pattern)):
            rel = os.path.relpath(found, src)
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found, tmp_path / rel)
    assert SysfsReader(tmp_path).read_host() == SysfsReader(src).read_host()


def test_capture_paths_are_relative() -> None:
    assert all(not p.startswith("/") for p in SysfsReader.capture_paths())


# -- broken trees: a copy of the 2node capture with one defect ----------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(SYS / "2node", root)
    return root


def _read(root: Path) -> Host:
    return SysfsReader(root).read_host()


def test_optional_files_missing(tree: Path) -> None:
    (tree / "proc/meminfo").unlink()
    (tree / "proc/sys/kernel/numa_balancing").unlink()
    shutil.rmtree(tree / NODE / "node1/hugepages")
    (tree / NODE / "node0/distance").unlink()
    host = _read(tree)
    assert (host.swap_total, host.swap_free, host.numa_balancing) == (None, None, None)
    assert host.node(1).hugepages == ()
    assert host.distances is None
    assert host.node(1).mem_total == 513228 * KiB


def test_online_file_missing_falls_back_to_node_directories(tree: Path) -> None:
    (tree / NODE / "online").unlink()
    assert _without_allocator_detail(_read(tree)) == CAPTURES["2node"].sysfs_host()


def test_not_a_sysfs_tree(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        _read(tmp_path)
    assert err.value.path == str(tmp_path / NODE)
    assert "not a NUMA sysfs tree" in str(err.value)


def test_node_listed_online_but_missing(tree: Path) -> None:
    shutil.rmtree(tree / NODE / "node1")
    with pytest.raises(SourceError) as err:
        _read(tree)
    assert err.value.path == str(tree / NODE / "node1")


def test_missing_meminfo(tree: Path) -> None:
    (tree / NODE / "node1/meminfo").unlink()
    with pytest.raises(SourceError) as err:
        _read(tree)
    assert not isinstance(err.value, PermissionDenied)
    assert err.value.path == str(tree / NODE / "node1/meminfo")


def test_missing_cpulist(tree: Path) -> None:
    (tree / NODE / "node0/cpulist").unlink()
    with pytest.raises(SourceError) as err:
        _read(tree)
    assert err.value.path == str(tree / NODE / "node0/cpulist")


def _replace_line(path: Path, lineno: int, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[lineno - 1] = new
    path.write_text("".join(lines))


def test_malformed_meminfo_line(tree: Path) -> None:
    meminfo = tree / NODE / "node1/meminfo"
    _replace_line(meminfo, 2, "Node 1 MemFree:          48x164 kB\n")
    with pytest.raises(ParseError) as err:
        _read(tree)
    assert (err.value.path, err.value.line, err.value.field) == (str(meminfo), 2, "MemFree")
    assert str(err.value).startswith(f"{meminfo}:2: MemFree: malformed line")


def test_meminfo_of_another_node(tree: Path) -> None:
    meminfo = tree / NODE / "node1/meminfo"
    meminfo.write_text(meminfo.read_text().replace("Node 1 ", "Node 0 "))
    with pytest.raises(ParseError) as err:
        _read(tree)
    assert (err.value.path, err.value.line) == (str(meminfo), 1)


def test_meminfo_without_memtotal(tree: Path) -> None:
    meminfo = tree / NODE / "node0/meminfo"
    lines = meminfo.read_text().splitlines(keepends=True)
    meminfo.write_text("".join(line for line in lines if "MemTotal" not in line))
    with pytest.raises(ParseError) as err:
        _read(tree)
    assert (err.value.path, err.value.field) == (str(meminfo), "MemTotal")


def test_distance_row_of_wrong_length(tree: Path) -> None:
    distance = tree / NODE / "node1/distance"
    distance.write_text("21 10 21\n")
    with pytest.raises(ParseError) as err:
        _read(tree)
    assert (err.value.path, err.value.line, err.value.field) == (str(distance), 1, "distance")
    assert "3 distances for 2 online nodes" in str(err.value)


def test_distance_not_numbers(tree: Path) -> None:
    (tree / NODE / "node0/distance").write_text("10 twenty-one\n")
    with pytest.raises(ParseError, match="distance"):
        _read(tree)


@pytest.mark.parametrize("row", ["21  10\n", "21\t10", " 21 10 \n", "021 010\n", "21 10"])
def test_distance_rows_in_other_spellings_read_as_the_kernels(tree: Path, row: str) -> None:
    """The kernel's "21 10\\n" takes a fast path; other spacing and leading zeros the general
    one, with the same result."""
    expected = _read(tree).distances
    (tree / NODE / "node1/distance").write_text(row)
    assert _read(tree).distances == expected == ((10, 21), (21, 10))


@pytest.mark.parametrize("row, why", [("21 256\n", "256 is out of range (at most 255)"),
                                      ("21 1000\n", "1000 is out of range (at most 255)"),
                                      ("21\n", "1 distances for 2 online nodes")])
def test_distance_rows_beyond_the_fast_path_are_checked(tree: Path, row: str, why: str) -> None:
    distance = tree / NODE / "node1/distance"
    distance.write_text(row)
    with pytest.raises(ParseError) as err:
        _read(tree)
    assert (err.value.path, err.value.line, err.value.field) == (str(distance), 1, "distance")
    assert why in str(err.value)


def test_meminfo_numbers_of_any_length_and_node_spelling(tree: Path) -> None:
    """Leading zeros in the node number, and values too long for the fast path, are read by
    the general one: checked against the limit, not wrapped or refused."""
    meminfo = tree / NODE / "node1/meminfo"
    text = meminfo.read_text()
    meminfo.write_text(text.replace("Node 1 MemTotal:         513228 kB",
                                    "Node 01 MemTotal: 0000000000000000513228 kB"))
    assert _read(tree).node(1).mem_total == 513228 * KiB
    meminfo.write_text(text.replace("513228 kB", "9007199254740992 kB"))
    with pytest.raises(ParseError, match="out of range") as err:
        _read(tree)
    assert (err.value.path, err.value.field) == (str(meminfo), "MemTotal")


def test_malformed_cpulist(tree: Path) -> None:
    cpulist = tree / NODE / "node1/cpulist"
    cpulist.write_text("2-x\n")
    with pytest.raises(ParseError) as err:
        _read(tree)
    assert (err.value.path, err.value.line, err.value.field) == (str(cpulist), 1, "cpulist")


def test_malformed_nr_hugepages(tree: Path) -> None:
    nr = tree / NODE / "node0/hugepages/hugepages-2048kB/nr_hugepages"
    nr.write_text("-1\n")
    with pytest.raises(ParseError) as err:
        _read(tree)
    assert (err.value.path, err.value.field) == (str(nr), "nr_hugepages")


def test_malformed_swap_line(tree: Path) -> None:
    meminfo = tree / "proc/meminfo"
    meminfo.write_text(meminfo.read_text().replace("SwapTotal:             0 kB",
                                                   "SwapTotal:             0 MB"))
    with pytest.raises(ParseError) as err:
        _read(tree)
    assert (err.value.path, err.value.line, err.value.field) == (str(meminfo), 15, "SwapTotal")


@pytest.mark.parametrize(("text", "expected"), [("0\n", False), ("1\n", True), ("2\n", True),
                                                ("3\n", True)])
def test_numa_balancing_modes(tree: Path, text: str, expected: bool) -> None:
    # 1 = normal, 2 = memory tiering, 3 = both (a bit mask since Linux 5.18)
    (tree / "proc/sys/kernel/numa_balancing").write_text(text)
    assert _read(tree).numa_balancing is expected


def test_numa_balancing_garbage(tree: Path) -> None:
    path = tree / "proc/sys/kernel/numa_balancing"
    path.write_text("on\n")
    with pytest.raises(ParseError) as err:
        _read(tree)
    assert (err.value.path, err.value.field) == (str(path), "numa_balancing")


def test_unreadable_meminfo(tree: Path) -> None:
    """PermissionError from open() becomes PermissionDenied naming the file.

    As root, mode bits do not stop a read, but /proc/sys honours them even for root: a
    write-only sysctl (mode 0200) refuses reading with EACCES.  The node's meminfo becomes a
    symlink to one.  As another user, chmod 000 does it.
    """
    meminfo = tree / NODE / "node1/meminfo"
    if os.geteuid() == 0:
        target = Path("/proc/sys/vm/compact_memory")
        try:
            target.read_bytes()
        except PermissionError:
            pass
        except OSError as exc:
            pytest.skip(f"{target} is not usable here: {exc}")
        else:
            pytest.skip(f"root can read {target} here; no way to provoke EACCES as root")
        meminfo.unlink()
        meminfo.symlink_to(target)
    else:
        meminfo.chmod(0)
    with pytest.raises(PermissionDenied) as err:
        _read(tree)
    assert err.value.path == str(meminfo)
    assert str(err.value) == f"{meminfo}: permission denied"


def test_live_machine_reads_or_fails_cleanly() -> None:
    """The default root is this machine; whatever it is, the outcome is a Host or our error."""
    try:
        host = SysfsReader().read_host()
    except SourceError:
        return
    assert isinstance(host, Host) and all(isinstance(n, Node) for n in host.nodes)
