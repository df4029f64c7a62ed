"""readers/live on captured trees (tests/fixtures/live/README.md): per-node figures of each
guest's cgroup against ``numa_maps`` of the same process — within max(1 %, 4 MiB) on the trees
captured from real kernels, exactly on the hand-built ones — and one line per broken guest."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from numaguard.errors import SourceError
from numaguard.model.live import GuestLive, LiveState
from numaguard.readers.live import LiveReader, parse_numa_maps, read_live
from numaguard.units import MiB
from tests.support.capture_live import capture

LIVE = Path(__file__).resolve().parent.parent / "fixtures" / "live"
REAL_V1 = LIVE / "v1-libvirtd-1node"
V1_4 = LIVE / "v1-4node"
V2_2 = LIVE / "v2-2node"


def maps_of(root: Path, g: GuestLive) -> tuple[dict[int, int], dict[int, int]]:
    path = root / "proc" / str(g.pid) / "numa_maps"
    return parse_numa_maps(path.read_text(), str(path))


def close(a: int, b: int) -> bool:
    return abs(a - b) <= max(0.01 * max(a, b), 4 * MiB)


# -- the tree captured from the real libvirtd + QEMU here (cgroup v1, one node) ---------------
def test_real_libvirtd_capture_matches_numa_maps() -> None:
    state = read_live(str(REAL_V1))
    assert [g.name for g in state.guests] == ["ngtest-live-a", "ngtest-live-b", "ngtest-live-c"]
    assert [n.id for n in state.nodes] == [0]
    node = state.nodes[0]
    assert 0 < node.mem_free < node.mem_total and node.anon_pages > 0
    for g in state.guests:
        assert g.error is None and g.source == "cgroup-v1"
        assert g.cgroup is not None and g.cgroup.startswith("/machine/qemu-")
        assert g.cgroup.endswith(f"-{g.name}.libvirt-qemu")
        normal, huge = maps_of(REAL_V1, g)
        assert huge == {} and g.hugepages_per_node == ()
        assert set(dict(g.per_node)) == set(normal) == {0}
        for n, b in g.per_node:
            assert close(b, normal[n]), (g.name, b, normal[n])


def test_real_capture_holds_guest_ram_plus_qemus_own() -> None:
    """live-a's kernel touched 40 MiB, live-b's 200 MiB, live-c is 128 MiB allocated at start
    (``allocation mode='immediate'``): each holds that plus QEMU's own few MiB, reported."""
    state = read_live(str(REAL_V1))
    touched = {"ngtest-live-a": 40, "ngtest-live-b": 200, "ngtest-live-c": 128}
    for g in state.guests:
        extra = g.resident - touched[g.name] * MiB
        assert 2 * MiB < extra < 24 * MiB, (g.name, extra / MiB)


def test_given_pids_skip_the_pid_files() -> None:
    pid = int((REAL_V1 / "run/libvirt/qemu/ngtest-live-b.pid").read_text())
    state = read_live(str(REAL_V1), [("b", pid)], run_dir="nowhere")
    assert state.guests[0].name == "b" and state.guests[0].pid == pid
    assert state.guests[0].per_node == read_live(str(REAL_V1)).guests[1].per_node


# -- cgroup v2 from the kernel oracle's VM (three nodes, tests/oracle): flat files -> a tree ----
@pytest.mark.parametrize("case", ["n3-bind-cpu2", "n3-cpuset-fill"])
def test_oracle_cgroup_v2_matches_numa_maps(case: str, tmp_path: Path) -> None:
    src = LIVE / case
    (tmp_path / "proc/300").mkdir(parents=True)
    shutil.copy(src / "numa_maps", tmp_path / "proc/300/numa_maps")
    (tmp_path / "proc/300/cgroup").write_text(f"0::/ng-{case}\n")
    cg = tmp_path / f"sys/fs/cgroup/ng-{case}"
    cg.mkdir(parents=True)
    shutil.copy(src / "memory.numa_stat", cg / "memory.numa_stat")
    g = read_live(str(tmp_path), [("hog", 300)]).guests[0]
    assert g.error is None and g.source == "cgroup-v2" and g.cgroup == f"/ng-{case}"
    normal, _ = maps_of(tmp_path, g)
    assert len([n for n, b in g.per_node if b > 100 * MiB]) == 2 + (case == "n3-bind-cpu2")
    for n, b in g.per_node:
        assert close(b, normal.get(n, 0)), (n, b, normal.get(n))


# -- hand-built trees: exact -------------------------------------------------------------------
def test_v2_two_nodes_exact() -> None:
    state = read_live(str(V2_2))
    web, db, huge, gone = (state.guest(n) for n in ("web", "db", "huge", "gone"))
    assert [(n.id, n.hugepages_total, n.hugepages_free) for n in state.nodes] == \
        [(0, 512 * 2 * MiB, 256 * 2 * MiB), (1, 1024 * MiB, 1024 * MiB)]
    assert state.nodes[1].mem_free == 5000 * MiB and state.nodes[0].file_pages == 1000 * MiB
    for g in (web, db, huge):
        assert g is not None and g.error is None, g
        normal, hp = maps_of(V2_2, g)
        assert dict(g.per_node) == normal
        assert dict(g.hugepages_per_node) == hp
    assert web is not None and web.cgroup == r"/machine.slice/machine-qemu\x2d1\x2dweb.scope"
    assert dict(web.per_node) == {0: 712 * MiB + 9 * 4096, 1: 300 * MiB + 3 * 4096}
    assert web.source == "cgroup-v2" and web.locality(frozenset({0})) == pytest.approx(
        (712 * MiB + 9 * 4096) / web.resident)
    assert db is not None and db.on(1) == 410 * MiB + 3 * 4096       # memfd RAM is shmem
    assert huge is not None and huge.source == "hugetlb"
    assert huge.hugepages_per_node == ((0, 512 * MiB), (1, 512 * MiB))
    assert gone is not None and gone.pid == 1004 and gone.per_node == ()
    assert gone.error is not None and "proc/1004/cgroup" in gone.error and "\n" not in gone.error


def test_v1_four_nodes_exact() -> None:
    state = read_live(str(V1_4))
    assert [n.id for n in state.nodes] == [0, 1, 2, 3]
    by = {g.name: g for g in state.guests}
    assert sorted(by) == ["broken", "hugemaps", "locked", "nocg", "pinned", "spread", "stale"]
    for name in ("spread", "pinned", "locked", "hugemaps", "nocg"):
        g = by[name]
        assert g.error is None, g
        normal, hp = maps_of(V1_4, g)
        assert dict(g.per_node) == normal, name
        assert dict(g.hugepages_per_node) == hp, name
    assert {n for n, b in by["spread"].per_node if b >= 512 * MiB} == {0, 1, 2, 3}
    assert by["pinned"].on(0) == 12 * 4096 and by["pinned"].on(2) == 306 * MiB
    assert by["locked"].on(1) == 260 * MiB                  # unevictable (mlocked) counted
    assert by["hugemaps"].source == "numa_maps"
    assert by["hugemaps"].hugepages_per_node == ((2, 2 * 1024 * MiB), (3, 1024 * MiB))
    assert by["nocg"].source == "numa_maps" and by["nocg"].on(1) == 64 * MiB
    assert by["spread"].source == by["pinned"].source == "cgroup-v1"
    broken = by["broken"].error
    assert broken is not None and "qemu-6-broken.libvirt-qemu/memory.numa_stat:2" in broken
    assert "anon" in broken and "N0=ten" in broken
    stale = by["stale"].error
    assert stale is not None and "proc/2007/cgroup" in stale and "2007" in stale


# -- errors --------------------------------------------------------------------------------------
def test_root_that_is_not_a_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a directory"):
        read_live(str(tmp_path / "missing"))
    (tmp_path / "f").write_text("")
    with pytest.raises(SourceError):
        read_live(str(tmp_path / "f"))


def test_empty_root_gives_notes_not_errors(tmp_path: Path) -> None:
    state = read_live(str(tmp_path))
    assert state == LiveState(nodes=(), guests=(), notes=state.notes)
    assert len(state.notes) == 2 and all(str(tmp_path) in n for n in state.notes)


def _copy(src: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "tree"
    shutil.copytree(src, dest)
    return dest


def test_fifo_or_directory_in_place_of_a_file_is_that_guests_error(tmp_path: Path) -> None:
    """As root a mode of 000 does not stop a read; a FIFO (never opened) or a directory does."""
    root = _copy(V1_4, tmp_path)
    stat = root / "sys/fs/cgroup/memory/machine/qemu-1-spread.libvirt-qemu/memory.numa_stat"
    stat.unlink()
    os.mkfifo(stat)
    maps = root / "proc/2002/cgroup"
    maps.unlink()
    maps.mkdir()
    by = {g.name: g for g in read_live(str(root)).guests}
    assert by["spread"].error is not None and "FIFO" in by["spread"].error
    assert "memory.numa_stat" in by["spread"].error
    assert by["pinned"].error is not None and "proc/2002/cgroup" in by["pinned"].error
    assert "directory" in by["pinned"].error
    assert by["locked"].error is None and by["locked"].on(1) == 260 * MiB


@pytest.mark.parametrize(("rel", "text", "words"), [
    ("run/libvirt/qemu/spread.pid", "12x\n", ("spread.pid", "pid")),
    ("run/libvirt/qemu/spread.pid", "0\n", ("spread.pid", "pid")),
    ("proc/2001/cgroup", "garbage\n", ("proc/2001/cgroup:1", "cgroup")),
    ("proc/2001/cgroup", "1:name=systemd:/\n", ("proc/2001/cgroup", "memory")),
    ("proc/2001/numa_maps", "", ()),
    ("sys/fs/cgroup/memory/machine/qemu-1-spread.libvirt-qemu/memory.numa_stat",
     "total=1 N0=1\n", ("memory.numa_stat", "anon")),
    ("sys/fs/cgroup/memory/machine/qemu-1-spread.libvirt-qemu/memory.numa_stat",
     "anon=1 N99999=1\n", ("memory.numa_stat:1", "anon")),
    ("sys/fs/cgroup/memory/machine/qemu-1-spread.libvirt-qemu/memory.numa_stat",
     b"anon=1 N0=\xff\n", ("memory.numa_stat", "UTF-8")),
])
def test_malformed_files_name_file_and_field(tmp_path: Path, rel: str, text: str | bytes,
                                             words: tuple[str, ...]) -> None:
    root = _copy(V1_4, tmp_path)
    (root / rel).write_bytes(text if isinstance(text, bytes) else text.encode())
    by = {g.name: g for g in read_live(str(root)).guests}
    spread = by["spread"]
    if not words:   # numa_maps is not read on the cgroup path
        assert spread.error is None
    else:
        assert spread.error is not None and "\n" not in spread.error
        for w in words:
            assert w in spread.error, spread.error
    assert by["pinned"].error is None and by["pinned"].on(2) == 306 * MiB


def test_malformed_numa_maps_on_the_fallback(tmp_path: Path) -> None:
    root = _copy(V1_4, tmp_path)
    (root / "proc/2005/numa_maps").write_text("7f00 default anon=1 N0=1 dirty=1\n")
    g = read_live(str(root), [("nocg", None)]).guests[0]
    assert g.error is not None and "proc/2005/numa_maps:1" in g.error
    assert "kernelpagesize_kB" in g.error


def test_malformed_meminfo_is_a_note_and_the_other_nodes_stay(tmp_path: Path) -> None:
    root = _copy(V1_4, tmp_path)
    (root / "sys/devices/system/node/node2/meminfo").write_text("Node 2 MemTotal: lots\n")
    state = read_live(str(root))
    assert [n.id for n in state.nodes] == [0, 1, 3]
    assert any("node2/meminfo:1" in n and "MemTotal" in n for n in state.notes)


def test_numa_maps_policy_with_a_space_and_file_names() -> None:
    text = ("7f00 prefer (many):0-1 anon=3 dirty=3 N0=2 N1=1 kernelpagesize_kB=4\n"
            "7f01 default file=/a b N0=9 kernelpagesize_kB=4 anon=4 mapped=8 N0=6 N1=2 "
            "kernelpagesize_kB=4\n"
            "7f02 default file=/memfd:ram (deleted) dirty=5 N1=5 kernelpagesize_kB=4\n"
            "7f03 bind:1 file=/dev/hugepages/x huge dirty=1 N1=1 kernelpagesize_kB=2048\n"
            "7f04 default stack\n")
    normal, huge = parse_numa_maps(text, "numa_maps")
    # line 2: a file mapping: only its 4 anon pages, split 6:2 -> 3 and 1
    assert normal == {0: (2 + 3) * 4096, 1: (1 + 1 + 5) * 4096}
    assert huge == {1: 2 * MiB}


# -- the capture helper --------------------------------------------------------------------------
def test_capture_copies_exactly_what_is_read(tmp_path: Path) -> None:
    dest = tmp_path / "copy"
    first = capture(str(V1_4), str(dest), with_numa_maps=False)
    again = read_live(str(dest))
    assert repr(again).replace(str(dest), "ROOT") == repr(first).replace(str(V1_4), "ROOT")
    reader = LiveReader(str(V1_4))
    reader.read()
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert copied == sorted({r for r in reader.visited if (V1_4 / r).is_file()})
