"""core/changes.py: typed changes, applied to the model — and the same changes made in the XML by
domxml give the same guest back (the core and the editor agree)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numaguard.core.changes import (
    PinEmulator,
    PinVcpus,
    SetMaxMemory,
    SetMemnode,
    SetMemoryPolicy,
    apply_change,
    apply_changes,
    apply_to_guests,
    guests_changed,
)
from numaguard.core.findings import Fix
from numaguard.domxml.document import DomainDocument
from numaguard.domxml.edit import NumatuneEdit, edit_numatune
from numaguard.domxml.extract import extract_guest
from numaguard.model.inventory import Inventory
from numaguard.model.policy import MemoryMode, Placement
from numaguard.model.topology import Host, Node
from tests.support.synth import domain_xml

GiB = 1024**3


def guest(name="web", kib=4 * 1024 * 1024, vcpus=4, **kw):
    return extract_guest(DomainDocument(domain_xml(name, kib, vcpus, **kw).encode(),
                                        path=f"{name}.xml"))


def two_cells(**kw):
    return guest(cells=[("0-1", 2 * 1024 * 1024), ("2-3", 2 * 1024 * 1024)], **kw)


def test_a_memory_policy_moves_the_cells_that_follow_it():
    g = two_cells(mode="strict", nodeset="0", memnodes=[(1, "preferred", "1")])
    after = apply_change(g, SetMemoryPolicy("web", MemoryMode.INTERLEAVE, frozenset({0, 1})))
    assert after.policy.mode is MemoryMode.INTERLEAVE and after.policy.nodeset == {0, 1}
    assert after.policy.placement is Placement.STATIC
    assert after.cells[0].policy == after.policy              # followed <memory>
    assert after.cells[1].policy == g.cells[1].policy         # its own memnode stays


def test_a_memnode_changes_one_cell_and_needs_it():
    g = two_cells(mode="strict", nodeset="0")
    after = apply_change(g, SetMemnode("web", 1, MemoryMode.PREFERRED, frozenset({1})))
    assert after.cells[1].policy.mode is MemoryMode.PREFERRED
    assert after.cells[0].policy == g.cells[0].policy and after.policy == g.policy
    with pytest.raises(ValueError, match="no guest NUMA cell 2"):
        apply_change(g, SetMemnode("web", 2, MemoryMode.STRICT, frozenset({0})))


def test_max_memory_clamps_the_current_memory_and_pins_replace_per_vcpu():
    g = guest()
    small = apply_change(g, SetMaxMemory("web", 2 * GiB))
    assert (small.memory, small.current_memory) == (2 * GiB, 2 * GiB)
    with pytest.raises(ValueError, match="sum of its guest NUMA cells"):
        apply_change(two_cells(), SetMaxMemory("web", GiB))
    pinned = apply_change(g, PinVcpus("web", frozenset({0, 1}), frozenset({4, 5})))
    assert pinned.vcpu_cpus(0) == {4, 5} and pinned.vcpu_cpus(3) is None
    again = apply_change(pinned, PinVcpus("web", frozenset({1}), frozenset({6})))
    assert again.vcpu_cpus(0) == {4, 5} and again.vcpu_cpus(1) == {6}
    with pytest.raises(ValueError, match="no vCPU 4"):
        apply_change(g, PinVcpus("web", frozenset({4}), frozenset({0})))
    assert apply_change(g, PinEmulator("web", frozenset({0}))).emulatorpin == {0}


def test_changes_are_values_and_name_their_guest():
    a = SetMemoryPolicy("web", MemoryMode.STRICT, frozenset({0}))
    assert a == SetMemoryPolicy("web", MemoryMode.STRICT, frozenset({0}))
    assert len({a, SetMemoryPolicy("web", MemoryMode.STRICT, frozenset({0}))}) == 1
    db = guest("db")
    assert apply_change(db, a) is db                       # another guest's change
    assert guests_changed([a, SetMaxMemory("db", GiB), a]) == ("web", "db")


def test_apply_changes_to_an_inventory_keeps_the_rest():
    host = Host((Node(0, frozenset({0, 1}), 16 * GiB), Node(1, frozenset({2, 3}), 16 * GiB)),
                ((10, 21), (21, 10)))
    inv = Inventory(host, (guest("web"), guest("db")), running=frozenset({"web"}))
    after = apply_changes(inv, [SetMemoryPolicy("db", MemoryMode.PREFERRED, frozenset({1}))])
    assert after.guest("db").policy.mode is MemoryMode.PREFERRED
    assert after.guest("web") == inv.guest("web")
    assert after.host is host and after.running == inv.running
    with pytest.raises(ValueError, match="no guest 'nope'"):
        apply_changes(inv, [SetMaxMemory("nope", GiB)])


def test_a_fix_is_its_changes():
    assert Fix("web", "bind", mode="strict", nodeset=frozenset({1})).changes == (
        SetMemoryPolicy("web", MemoryMode.STRICT, frozenset({1})),)
    assert Fix("web", "cell", mode="preferred", nodeset=frozenset({0}), cell=1).changes == (
        SetMemnode("web", 1, MemoryMode.PREFERRED, frozenset({0})),)
    assert Fix("web", "shrink", memory=GiB).changes == (SetMaxMemory("web", GiB),)
    assert Fix("web", "advice only").changes == ()


MODES = st.sampled_from(list(MemoryMode))
NODESETS = st.frozensets(st.integers(0, 7), min_size=1, max_size=4)
CHANGES = st.lists(st.one_of(
    st.builds(SetMemoryPolicy, st.just("web"), MODES, NODESETS),
    st.builds(SetMemnode, st.just("web"), st.integers(0, 1), MODES, NODESETS)),
    min_size=1, max_size=4)


def _policies(g):
    def key(p):
        return None if p is None else (p.mode, p.placement, p.nodeset)
    return key(g.policy), tuple(key(c.policy) for c in g.cells)


@settings(max_examples=150, deadline=None)
@given(CHANGES, st.sampled_from([None, ("strict", "0"), ("interleave", "0-1")]))
def test_the_editor_makes_what_the_core_predicts(changes, start):
    """For any <numatune> changes: editing the XML (domxml) and reading it back gives the
    policies the core's apply_change computes on the model."""
    kw = {"mode": start[0], "nodeset": start[1]} if start else {}
    xml = domain_xml("web", 4 * 1024 * 1024, 4,
                     cells=[("0-1", 2 * 1024 * 1024), ("2-3", 2 * 1024 * 1024)], **kw)
    doc = DomainDocument(xml.encode(), path="web.xml")
    before = extract_guest(doc)
    # restrictive must be on <memory> and every memnode, or none (libvirt >= 9.4)
    modes = {c.mode is MemoryMode.RESTRICTIVE for c in changes}
    if len(modes) > 1 or (True in modes and not any(
            isinstance(c, SetMemoryPolicy) for c in changes)):
        return
    edited = edit_numatune(doc, NumatuneEdit.from_changes(changes))
    read_back = extract_guest(DomainDocument(edited, path="web.xml"))
    (predicted,) = apply_to_guests([before], changes)
    assert _policies(read_back) == _policies(predicted)
    CHECKED.append(len(changes))


CHECKED: list[int] = []


def test_the_property_checked_many_cases():
    assert len(CHECKED) >= 50, CHECKED
