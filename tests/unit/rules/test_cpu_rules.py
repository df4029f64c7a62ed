"""CPU rules NG201-NG205 on hosts and guests built in code (tests/unit/rules/builders.py)."""

from numaguard.core.findings import Severity
from numaguard.core.rules import AuditOptions, audit
from tests.unit.rules.builders import GiB, guest, host


def run(h, guests, rule, **opts):
    return list(audit(h, guests, AuditOptions(**opts), only=[rule]).findings)


def two_nodes(**kw):
    """Nodes 0 (CPUs 0-3) and 1 (CPUs 4-7), 16 GiB each: capacity 15 GiB per node."""
    return host([(4, 16), (4, 16)], **kw)


# --- NG201 cpu-memory-split ---------------------------------------------------------------------

def test_ng201_vcpus_pinned_only_outside_the_memory_nodes():
    g = guest("vm", 4, 2, cpuset="4-7", mode="strict", nodeset="0")
    [f] = run(two_nodes(), [g], "NG201")
    assert f.severity is Severity.WARNING
    assert (f.guests, f.nodes) == (("vm",), (0, 1))
    assert f.evidence == {"vcpus": [0, 1], "remote_only_vcpus": 2, "vcpu_nodes": [1],
                          "memory_nodes": [0], "memory_bytes": 4 * GiB}
    assert "are pinned only to node 1" in f.message and "4.0 GiB" in f.message
    assert "every memory access" in f.message
    assert f.fix.commands == ("virsh vcpupin vm 0 0-3 --config", "virsh vcpupin vm 1 0-3 --config")
    assert f.fix.mode is None


def test_ng201_vcpupin_overrides_cpuset_and_only_the_strays_are_named():
    g = guest("vm", 4, 3, cpuset="0-3", pins={2: "5"}, mode="preferred", nodeset="0")
    [f] = run(two_nodes(), [g], "NG201")
    assert f.evidence["vcpus"] == [2] and f.evidence["remote_only_vcpus"] == 1
    assert f.fix.commands == ("virsh vcpupin vm 2 0-3 --config",)


def test_ng201_cpuset_straddling_nodes_is_partly_remote():
    g = guest("vm", 4, 2, cpuset="0-7", mode="strict", nodeset="0")
    [f] = run(two_nodes(), [g], "NG201")
    assert f.evidence["remote_only_vcpus"] == 0 and f.evidence["vcpu_nodes"] == [0, 1]
    assert "may also run on node 1" in f.message


def test_ng201_per_cell_uses_the_cells_vcpus():
    # cell 0 (vCPUs 0-1, memory node 0): vCPU 1 pinned to node 1 -> partly out: NG201.
    # cell 1 (vCPUs 2-3, memory node 1): pinned to node 1 -> fine.
    g = guest("c", 0, 4, cells=[("0-1", 4, "strict", "0"), ("2-3", 4, "strict", "1")],
              pins={0: "0", 1: "4", 2: "5", 3: "6"})
    [f] = run(two_nodes(), [g], "NG201")
    assert f.evidence == {"vcpus": [1], "remote_only_vcpus": 1, "vcpu_nodes": [1],
                          "memory_nodes": [0], "memory_bytes": 4 * GiB, "cell": 0}
    assert f.message.startswith("c cell 0: vCPU 1 is pinned only to node 1")
    assert f.fix.commands == ("virsh vcpupin c 1 0-3 --config",)


def test_ng201_memory_only_node_pins_to_the_nearest_cpus():
    # node 2 is a CPU-less (CXL-like) node, nearer to node 0 than to node 1.
    h = host([(4, 16), (4, 16), ([], 64)],
             distances=[[10, 21, 14], [21, 10, 24], [14, 24, 10]])
    g = guest("cxl", 8, 2, cpuset="4-7", mode="strict", nodeset="2")
    [f] = run(h, [g], "NG201")
    assert f.nodes == (1, 2)
    assert f.fix.commands == ("virsh vcpupin cxl 0 0-3 --config",
                              "virsh vcpupin cxl 1 0-3 --config")
    assert "(node 0, nearest to node 2, where its memory is)" in f.fix.description


def test_ng201_negative_cases():
    h = two_nodes()
    assert run(h, [guest("local", 4, 2, cpuset="0-3", mode="strict", nodeset="0")], "NG201") == []
    assert run(h, [guest("unpinned", 4, 2, mode="strict", nodeset="0")], "NG201") == []
    assert run(h, [guest("nopolicy", 4, 2, cpuset="4-7")], "NG201") == []
    assert run(h, [guest("numad", 4, 2, cpuset="4-7", placement="auto",
                         vcpu_placement="auto")], "NG201") == []
    # interleave over both nodes with vCPUs anywhere in them: all local to the set.
    assert run(h, [guest("il", 4, 2, cpuset="0-7", mode="interleave", nodeset="0-1")],
               "NG201") == []
    # a cell entirely on the wrong node is NG205's, not NG201's.
    crossed = guest("x", 0, 2, cells=[("0", 2, "strict", "0"), ("1", 2, "strict", "1")],
                    pins={0: "4", 1: "0"})
    assert run(h, [crossed], "NG201") == []
    # a nodeset naming a node the host lacks is NG107's.
    assert run(h, [guest("ghost", 4, 2, cpuset="4-7", mode="strict", nodeset="5")],
               "NG201") == []


# --- NG202 unpinned-bound-memory ----------------------------------------------------------------

def test_ng202_strict_memory_with_unpinned_vcpus():
    g = guest("vm", 4, 2, mode="strict", nodeset="1")
    [f] = run(two_nodes(), [g], "NG202")
    assert f.severity is Severity.WARNING and f.guests == ("vm",) and f.nodes == (1,)
    assert f.evidence == {"vcpus": [0, 1], "unpinned_vcpus": 2, "memory_nodes": [1],
                          "memory_bytes": 4 * GiB, "host_cpus": 8}
    assert "may run on any of the host's 8 CPUs" in f.message
    assert f.fix.commands == ("virsh vcpupin vm 0 4-7 --config",
                              "virsh vcpupin vm 1 4-7 --config",
                              "virsh emulatorpin vm 4-7 --config")


def test_ng202_severity_follows_the_mode():
    h = host([(4, 16), (4, 16), (4, 16)])
    for mode, sev in (("strict", Severity.WARNING), ("restrictive", Severity.WARNING),
                      ("preferred", Severity.WARNING), ("interleave", Severity.INFO)):
        [f] = run(h, [guest("vm", 4, 2, mode=mode, nodeset="0-1")], "NG202")
        assert f.severity is sev, mode
        assert f.fix.commands[0] == "virsh vcpupin vm 0 0-7 --config"
        assert f.evidence["host_cpus"] == 12


def test_ng202_only_the_unpinned_vcpus_and_no_emulatorpin_when_set():
    g = guest("vm", 4, 3, pins={0: "0-3", 2: "1"}, emulatorpin="0", mode="strict", nodeset="0")
    [f] = run(two_nodes(), [g], "NG202")
    assert f.evidence["vcpus"] == [1] and f.evidence["unpinned_vcpus"] == 1
    assert f.fix.commands == ("virsh vcpupin vm 1 0-3 --config",)
    assert "vCPU 1 is not pinned" in f.message


def test_ng202_per_cell_and_emulator_pinned_to_all_memory_nodes():
    g = guest("c", 0, 4, cells=[("0-1", 4, "strict", "0"), ("2-3", 4, "strict", "1")])
    fs = run(two_nodes(), [g], "NG202")
    assert [(f.evidence["cell"], f.evidence["vcpus"]) for f in fs] == [(0, [0, 1]), (1, [2, 3])]
    assert fs[1].fix.commands == ("virsh vcpupin c 2 4-7 --config",
                                  "virsh vcpupin c 3 4-7 --config",
                                  "virsh emulatorpin c 0-7 --config")


def test_ng202_negative_cases():
    h = two_nodes()
    assert run(h, [guest("pinned", 4, 2, cpuset="0-3", mode="strict", nodeset="0")],
               "NG202") == []
    assert run(h, [guest("free", 4, 2)], "NG202") == []
    # memory on every node that has CPUs: nowhere to pin the vCPUs closer
    assert run(h, [guest("all", 4, 2, mode="interleave", nodeset="0-1")], "NG202") == []
    assert run(h, [guest("numad", 4, 2, placement="auto")], "NG202") == []
    assert run(h, [guest("numad-vcpu", 4, 2, mode="strict", nodeset="0",
                         vcpu_placement="auto")], "NG202") == []


# --- NG203 needless-span ------------------------------------------------------------------------

def test_ng203_guest_spread_that_fits_one_node():
    g = guest("vm", 8, 4, mode="strict", nodeset="0-1")
    [f] = run(two_nodes(), [g], "NG203")
    assert f.severity is Severity.INFO and f.guests == ("vm",) and f.nodes == (0, 1)
    assert f.evidence == {"memory_bytes": 8 * GiB, "vcpus": 4, "memory_nodes": [0, 1],
                          "suggested_node": 0, "node_capacity_bytes": 15 * GiB,
                          "node_room_bytes": 15 * GiB, "node_cpus": 4}
    assert "fit on node 0 alone" in f.message
    assert f.fix.mode == "strict" and f.fix.nodeset == frozenset({0})
    assert f.fix.commands == ("numaguard fix vm --mode strict --nodeset 0",
                              "virsh numatune vm --mode strict --nodeset 0 --config",
                              "virsh vcpupin vm 0 0-3 --config", "virsh vcpupin vm 1 0-3 --config",
                              "virsh vcpupin vm 2 0-3 --config", "virsh vcpupin vm 3 0-3 --config")


def test_ng203_suggests_the_node_with_most_room_left_and_keeps_the_mode():
    other = guest("other", 10, 2, cpuset="0-3", mode="strict", nodeset="0")
    g = guest("vm", 8, 2, cpuset="0-7", mode="preferred", nodeset="0-1")
    [f] = run(two_nodes(), [other, g], "NG203")
    assert f.evidence["suggested_node"] == 1 and f.evidence["node_room_bytes"] == 15 * GiB
    assert f.fix.commands[1] == "virsh numatune vm --mode preferred --nodeset 1 --config"
    assert f.fix.commands[2:] == ("virsh vcpupin vm 0 4-7 --config",
                                  "virsh vcpupin vm 1 4-7 --config")


def test_ng203_hugepage_guest_judged_by_the_pool():
    h = host([(4, 16, None, {"2M": 4096}), (4, 16, None, {"2M": 0})])
    g = guest("db", 8, 2, cpuset="0-3", mode="strict", nodeset="0-1", hugepage_size="2M")
    [f] = run(h, [g], "NG203")
    assert f.evidence["suggested_node"] == 0
    assert f.evidence["node_capacity_bytes"] == 8 * GiB
    assert "hugepage pool holds 8.0 GiB" in f.message
    assert f.fix.commands[2:] == ()  # vCPUs already on node 0


def test_ng203_negative_cases():
    h = two_nodes()
    assert run(h, [guest("big", 20, 2, mode="strict", nodeset="0-1")], "NG203") == []
    assert run(h, [guest("wide", 8, 6, mode="strict", nodeset="0-1")], "NG203") == []
    assert run(h, [guest("il", 8, 2, mode="interleave", nodeset="0-1")], "NG203") == []
    assert run(h, [guest("one", 8, 2, mode="strict", nodeset="0")], "NG203") == []
    assert run(h, [guest("c", 0, 2, cells=[("0", 4), ("1", 4)], mode="strict",
                         nodeset="0-1")], "NG203") == []


# --- NG204 node-cpu-overcommit ------------------------------------------------------------------

def test_ng204_more_vcpus_pinned_to_a_node_than_it_has_cpus():
    g1 = guest("g1", 4, 4, cpuset="0-3", mode="strict", nodeset="0")
    g2 = guest("g2", 2, 2, cpuset="0-3", mode="strict", nodeset="0")
    [f] = run(two_nodes(), [g1, g2], "NG204")
    assert f.severity is Severity.WARNING and f.guests == ("g1", "g2") and f.nodes == (0,)
    assert f.evidence == {"node": 0, "pinned_vcpus": 6, "node_cpus": 4, "ratio": 1.0,
                          "limit_vcpus": 4, "excess_vcpus": 2,
                          "guest_vcpus": {"g1": 4, "g2": 2}}
    assert "6 vCPUs of 2 guests are pinned to its 4 CPUs" in f.message
    # the smallest guest covering the excess moves, with the memory it binds to node 0
    assert f.fix.guest == "g2"
    assert f.fix.commands == ("virsh vcpupin g2 0 4-7 --config", "virsh vcpupin g2 1 4-7 --config",
                              "numaguard fix g2 --mode strict --nodeset 1",
                              "virsh numatune g2 --mode strict --nodeset 1 --config")


def test_ng204_ratio_current_vcpus_and_straddling_pins():
    h = two_nodes()
    guests = [guest("g1", 4, 4, cpuset="0-3"), guest("g2", 2, 2, cpuset="0-3")]
    assert run(h, guests, "NG204", cpu_overcommit_ratio=1.5) == []
    # 8 vCPUs defined, 4 online: only the online ones compete
    assert run(h, [guest("g", 4, 8, cpuset="0-3", current_vcpus=4)], "NG204") == []
    # vCPUs free to run on both nodes are not counted against either
    assert run(h, [guest("g", 4, 8, cpuset="0-7")], "NG204") == []
    assert run(h, [guest("g", 4, 8)], "NG204") == []


def test_ng204_no_room_anywhere_lowers_the_vcpu_count():
    guests = [guest("g1", 4, 4, cpuset="0-3"), guest("g2", 2, 2, cpuset="0-3"),
              guest("g3", 4, 4, cpuset="4-7")]
    [f] = run(two_nodes(), guests, "NG204")
    assert f.nodes == (0,) and f.evidence["excess_vcpus"] == 2
    assert f.fix.guest == "g1" and f.fix.commands == ("virsh setvcpus g1 2 --config",)
    assert "boot g1 with 2 vCPUs instead of 4, or" in f.fix.description


def test_ng204_lowers_the_vcpu_count_of_a_guest_with_the_most_vcpus_qemu_takes():
    # 4,096 vCPUs (q35's maximum) on node 0's 4 CPUs, node 1 full: keep 4 online; the
    # search for that count must not cost vCPUs squared
    guests = [guest("g1", 4, 4096, cpuset="0-3"), guest("g3", 4, 4, cpuset="4-7")]
    [f] = run(two_nodes(), guests, "NG204")
    assert f.evidence["pinned_vcpus"] == 4096 and f.evidence["excess_vcpus"] == 4092
    assert f.fix.commands == ("virsh setvcpus g1 4 --config",)
    assert "boot g1 with 4 vCPUs instead of 4096, or" in f.fix.description


def test_ng204_skips_a_target_without_memory_for_the_guest():
    # node 1 has 3 free vCPU slots but not the 14 GiB g2 binds to node 0: of its 15 GiB
    # capacity, "pinned" binds 10 GiB there.
    h = two_nodes()
    guests = [guest("g1", 1, 3, cpuset="0-3"), guest("g2", 14, 2, cpuset="0-3",
                                                       mode="strict", nodeset="0"),
              guest("pinned", 10, 1, cpuset="4", mode="strict", nodeset="1")]
    [f] = run(h, guests, "NG204")
    assert f.evidence["excess_vcpus"] == 1
    assert f.fix.guest == "g1"  # g2 (smaller) cannot move; g1 (no bound memory) can
    assert f.fix.commands == ("virsh vcpupin g1 0 4-7 --config", "virsh vcpupin g1 1 4-7 --config",
                              "virsh vcpupin g1 2 4-7 --config")


# --- NG205 guest-cell-mismatch ------------------------------------------------------------------

def test_ng205_crossed_cells():
    g = guest("c", 0, 4, cells=[("0-1", 4, "strict", "1"), ("2-3", 4, "strict", "0")],
              pins={0: "0-1", 1: "0-1", 2: "4", 3: "5"})
    fs = run(two_nodes(), [g], "NG205")
    assert [f.severity for f in fs] == [Severity.WARNING, Severity.WARNING]
    assert fs[0].evidence == {"cell": 0, "vcpus": [0, 1], "vcpu_nodes": [0], "memory_nodes": [1],
                              "memory_bytes": 4 * GiB, "cells_on_vcpu_nodes": [1]}
    assert fs[0].nodes == (0, 1) and fs[0].guests == ("c",)
    assert "where cell 1 keeps memory" in fs[0].message
    assert fs[0].fix.commands == ("virsh vcpupin c 0 4-7 --config",
                                  "virsh vcpupin c 1 4-7 --config")
    assert fs[1].fix.commands == ("virsh vcpupin c 2 0-3 --config",
                                  "virsh vcpupin c 3 0-3 --config")


def test_ng205_memnode_over_memory_policy():
    # <memory nodeset='0'/> for the guest, <memnode cellid='1' nodeset='1'/> for cell 1
    g = guest("c", 0, 2, cells=[("0", 2), ("1", 2, "strict", "1")], mode="strict", nodeset="0",
              pins={0: "0", 1: "0"})
    [f] = run(two_nodes(), [g], "NG205")
    assert f.evidence["cell"] == 1 and f.evidence["memory_nodes"] == [1]
    assert f.evidence["cells_on_vcpu_nodes"] == [0]  # cell 1's vCPU sits with cell 0's memory
    assert "where cell 0 keeps memory" in f.message


def test_ng205_negative_cases():
    h = two_nodes()
    aligned = guest("c", 0, 4, cells=[("0-1", 4, "strict", "0"), ("2-3", 4, "strict", "1")],
                    pins={0: "0", 1: "1", 2: "4", 3: "5"})
    assert run(h, [aligned], "NG205") == []
    # partly outside: NG201's finding, not NG205's
    partly = guest("c", 0, 2, cells=[("0-1", 4, "strict", "0")], pins={0: "0", 1: "4"})
    assert run(h, [partly], "NG205") == []
    assert run(h, [guest("c", 0, 2, cells=[("0-1", 4, "strict", "1")])], "NG205") == []
    assert run(h, [guest("flat", 4, 2, cpuset="4-7", mode="strict", nodeset="0")],
               "NG205") == []


def test_ng204_fallback_says_when_one_guest_is_not_enough():
    # node 0: g1 4 + g2 2 + c 2 = 8 pinned for 4 CPUs; node 1 is full (c 2 + d 2).
    guests = [guest("g1", 2, 4, cpuset="0-3"), guest("g2", 2, 2, cpuset="0-3"),
              guest("c", 2, 2, cpuset="0"), guest("d", 2, 4, cpuset="4-7")]
    [f] = run(two_nodes(), guests, "NG204")
    assert f.evidence["excess_vcpus"] == 4
    assert f.fix.commands == ("virsh setvcpus g1 1 --config",)
    assert "boot g1 with 1 vCPU instead of 4 (that leaves 1 too many" in f.fix.description
