"""``numastat -p`` (numactl), run on a generated tree inside a private mount namespace
(bench/numastat_tree.py), agrees with read_live's numa_maps path per node: to numastat's two
decimals of MiB, plus the shared libraries' page cache it counts and numaguard leaves out.
Cheap (~0.2 s: a 4-node, 3-guest tree, three numastat runs); skipped with the reason when
numastat or ``unshare --mount`` is not available (not root, numactl not installed)."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import numastat_tree  # noqa: E402
from bench.live_bench import live_tree, node_count, page_cache  # noqa: E402
from numaguard.readers.live import read_live  # noqa: E402
from tests.support.synth import synth_snapshot  # noqa: E402


@pytest.fixture(scope="module")
def numastat_here():
    why = numastat_tree.unavailable()
    if why is not None:
        pytest.skip(f"numastat -p on a tree: {why}")


@pytest.fixture
def tree(tmp_path, numastat_here):
    snap = tmp_path / "snap"
    synth_snapshot(str(snap), nodes=4, guests=3)
    live_tree(str(snap), cgroup=False)
    host = str(snap / "host")
    state = read_live(host)
    assert [g.source for g in state.guests] == ["numa_maps"] * 3, state
    numastat_tree.prepare(host, [g.pid for g in state.guests])
    return snap, state


def test_numastat_equals_the_numa_maps_path_plus_the_libraries_page_cache(tree):
    snap, state = tree
    pids = [g.pid for g in state.guests]
    _, text = numastat_tree.run(str(snap / "host"), pids)
    got = numastat_tree.parse(text)
    assert sorted(got) == pids and all(len(per) == 4 for per in got.values()), text
    mine = {g.pid: dict(g.per_node) for g in state.guests}
    with pytest.raises(numastat_tree.NumastatMismatch, match="numastat 812.3"):
        numastat_tree.check(got, mine)   # numastat also counts the libraries' mapped pages
    for g in state.guests:
        for node, cache in page_cache(g.pid - 10_000, node_count(str(snap))).items():
            mine[g.pid][node] = mine[g.pid].get(node, 0) + cache
    numastat_tree.check(got, mine)


def test_one_pid_anonymous_only_equals_the_numa_maps_path_exactly(tree):
    """One PID: numastat's Huge/Heap/Stack/Private table and its Total row; mappings without
    files (heap, stack, guest RAM, a policy with a space) are counted alike by both."""
    snap, state = tree
    pid = state.guests[1].pid
    maps = snap / "host" / "proc" / str(pid) / "numa_maps"
    maps.write_text(
        "55d0c0000000 prefer (many):0 heap anon=300 dirty=300 N0=200 N1=100 "
        "kernelpagesize_kB=4\n"
        "7f0000000000 bind:1,3 anon=262147 dirty=262147 active=0 N1=262144 N3=3 "
        "kernelpagesize_kB=4\n"
        "7f4000000000 default\n"
        "7ffd00000000 default stack anon=33 dirty=33 N2=33 kernelpagesize_kB=4\n")
    guest = read_live(str(snap / "host"), [(state.guests[1].name, pid)]).guests[0]
    assert guest.per_node == ((0, 200 * 4096), (1, (100 + 262144) * 4096), (2, 33 * 4096),
                              (3, 3 * 4096))
    _, text = numastat_tree.run(str(snap / "host"), [pid])
    assert f"for PID {pid} (qemu-system-x86)" in text, text
    got = numastat_tree.parse(text)
    assert set(got) == {pid}
    numastat_tree.check(got, {pid: dict(guest.per_node)})
    with pytest.raises(numastat_tree.NumastatMismatch, match="node 3"):
        numastat_tree.check(got, {pid: {**dict(guest.per_node), 3: 4 * 4096}})


def test_a_pid_without_numa_maps_is_an_error_line(tree):
    snap, state = tree
    os.remove(snap / "host" / "proc" / str(state.guests[0].pid) / "numa_maps")
    with pytest.raises(numastat_tree.NumastatError, match="numa_maps"):
        numastat_tree.run(str(snap / "host"), [state.guests[0].pid])
