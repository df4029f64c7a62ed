"""core/scenario.py: each guest's QEMU as its own memory besides the guest RAM (issue 15; the
figures are the chain's, tests/oracle/QEMU.md)."""

from dataclasses import replace

from numaguard.core.scenario import (
    QEMU_OWN,
    QEMU_OWN_BEFORE_PREALLOC,
    guest_parts,
    guest_step_map,
    preallocated,
)
from numaguard.core.simulate import Policy
from tests.unit.rules.test_memory_rules import g, make_host

GiB = 1024**3
IMMEDIATE = "<memoryBacking><allocation mode='immediate'/></memoryBacking>"


def test_a_lazily_touched_guest_has_all_of_qemus_own_memory_first():
    host = make_host(16, 16)
    guest = g("web", 4, mode="strict", nodeset="1")
    parts = guest_parts(host, [guest])["web"]
    assert not preallocated(guest)
    assert [(s.size, s.policy, s.nodes, s.cpu_node, s.cpuset_mems, s.policy_scope)
            for s in parts.before] == [(QEMU_OWN, Policy.DEFAULT, None, 1, frozenset({1}),
                                        "task")]
    assert parts.after == ()
    assert [lb for _, lb in guest_step_map(host, [guest])["web"]] == ["web QEMU's own", "web"]


def test_a_preallocated_guest_has_4_mib_before_and_the_rest_after():
    host = make_host(16, 16)
    guest = replace(g("db", 4, mode="preferred", nodeset="0"), immediate=True)
    parts = guest_parts(host, [guest])["db"]
    assert preallocated(guest)
    assert [s.size for s in parts.before] == [QEMU_OWN_BEFORE_PREALLOC]
    assert [s.size for s in parts.after] == [QEMU_OWN - QEMU_OWN_BEFORE_PREALLOC]
    # preferred: no cgroup wall, QEMU's own memory is simply local to the emulator
    assert {s.cpuset_mems for s in parts.before + parts.after} == {None}
    assert guest_parts(host, [guest], own=0)["db"].before == ()


def test_immediate_allocation_is_read_from_the_domain_xml():
    from numaguard.domxml.document import DomainDocument
    from numaguard.domxml.extract import extract_guest
    from tests.support.synth import domain_xml

    xml = domain_xml("imm", 1024 * 1024, 1).replace("<vcpu", IMMEDIATE + "<vcpu", 1)
    assert extract_guest(DomainDocument(xml.encode(), path="imm.xml")).immediate
    assert not g("lazy", 1).immediate


def test_qemus_own_memory_follows_the_emulatorpin():
    """The emulator pinned to node 1's CPUs while the vCPUs run on node 0: QEMU's own memory
    comes from node 1 (no cgroup wall without strict or restrictive)."""
    host = make_host(16, 16)
    guest = replace(g("pinned", 4, cpuset="0-3"), emulatorpin=frozenset({4, 5}))
    parts = guest_parts(host, [guest])["pinned"]
    assert [s.cpu_node for s in parts.before] == [1]
    assert [s.cpu_node for s, _ in parts.ram] == [0]


def _pinned(name, mem_gib, pins, **kw):
    """A guest whose vCPU i is pinned to host CPUs pins[i] (make_host: 4 CPUs per node)."""
    from numaguard.model.guest import VcpuPin

    guest = g(name, mem_gib, vcpus=len(pins), **kw)
    return replace(guest, pins=tuple(VcpuPin(i, frozenset(c)) for i, c in enumerate(pins)))


def ram(host, guest):
    return [(s.size, s.cpu_node, lb) for s, lb in guest_parts(host, [guest])[guest.name].ram]


def test_a_lazily_touched_guest_is_touched_where_its_vcpus_are_pinned():
    """vCPUs pinned to nodes 1, 1 and 0 under a bind over 0-1: two thirds of the RAM first
    touched from node 1, one third from node 0 (the chain's chain-pinned-split measured the
    halves of a two-vCPU guest on the two nodes)."""
    host = make_host(16, 16)
    guest = _pinned("split", 3, [{4}, {5, 6}, {0}], mode="strict", nodeset="0-1")
    assert ram(host, guest) == [(GiB, 0, "split (vCPUs on node 0)"),
                                (2 * GiB, 1, "split (vCPUs on node 1)")]
    # no <numatune>: local allocation, the same split
    assert [n for _, n, _ in ram(host, _pinned("local", 3, [{4}, {5}, {0}]))] == [0, 1]


def test_no_split_where_the_touching_cpu_does_not_decide():
    host = make_host(16, 16)
    pins = [{4}, {0}]
    # preferred and interleave ignore the CPU; a one-node bind has one node
    for kw in ({"mode": "preferred", "nodeset": "0"}, {"mode": "interleave", "nodeset": "0-1"},
               {"mode": "strict", "nodeset": "1"}):
        assert len(ram(host, _pinned("one", 2, pins, **kw))) == 1, kw
    # preallocated: QEMU's prealloc threads touch it, not the vCPUs: one thread per vCPU in
    # the nodeset's CPUs, a share per node by its CPUs (chain-immediate-split), whatever the
    # vCPU pins
    eager = replace(_pinned("eager", 2, pins, mode="strict", nodeset="0-1"), immediate=True)
    assert ram(host, eager) == [(GiB, 0, "eager (prealloc on node 0)"),
                                (GiB, 1, "eager (prealloc on node 1)")]
    one = replace(g("one-thread", 2, vcpus=1, mode="strict", nodeset="0-1"), immediate=True)
    assert len(ram(host, one)) == 1           # one prealloc thread: one node, not known which
    # a vCPU that may run on two nodes: where it touches is unknown
    assert len(ram(host, _pinned("wide", 2, [{0, 4}, {1}], mode="strict", nodeset="0-1"))) == 1
