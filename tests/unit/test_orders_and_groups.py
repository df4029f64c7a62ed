"""core/orders.py (the start orders NG110 plays) and core/verdict.py (one cause, one finding)."""

from __future__ import annotations

import pytest

from numaguard.core.findings import Finding, Fix, Severity
from numaguard.core.orders import named_order, start_orders
from numaguard.core.verdict import apply_fix, fix_key, groups
from numaguard.domxml.document import DomainDocument
from numaguard.domxml.extract import extract_guest
from numaguard.model.policy import MemoryMode
from tests.support.synth import domain_xml

GiB_KiB = 1024 * 1024


def g(name, gib, **kw):
    xml = domain_xml(name, gib * GiB_KiB, 2, **kw)
    return extract_guest(DomainDocument(xml.encode(), path=f"{name}.xml"))


GUESTS = [g("a", 4), g("b", 8, mode="strict", nodeset="0"), g("c", 8), g("d", 2,
                                                                         nodeset="1")]


def test_named_orders():
    orders = {o.name: o.guests for o in start_orders(GUESTS, random_orders=0)}
    assert orders["bound-last"] == ("c", "a", "b", "d")      # unbound, then bound; largest first
    assert orders["largest-first"] == ("b", "c", "a", "d")   # ties by name
    assert orders["smallest-first"] == ("d", "a", "b", "c")
    assert orders["name"] == ("a", "b", "c", "d")


def test_recorded_order_first_unknown_names_ignored_missing_ones_follow():
    [first, *_] = start_orders(GUESTS, recorded=["d", "zz", "b"], random_orders=0)
    assert (first.name, first.guests) == ("recorded", ("d", "b", "a", "c"))


def test_equal_orders_are_played_once_as_aliases():
    orders = start_orders([g("only", 1)], random_orders=3)
    assert len(orders) == 1 and orders[0].name == "bound-last"
    assert orders[0].label == "bound-last = largest-first = smallest-first = name = random-1 " \
                              "= random-2 = random-3"


def test_random_orders_are_reproducible_and_named_order_finds_them():
    a = [o.guests for o in start_orders(GUESTS, random_orders=4)]
    assert a == [o.guests for o in start_orders(GUESTS, random_orders=4)]
    third = named_order(GUESTS, "random-3").guests
    assert sorted(third) == ["a", "b", "c", "d"]
    # played under its name, or as the alias of an earlier order that came out the same
    assert any(o.guests == third and "random-3" in (o.name, *o.aliases)
               for o in start_orders(GUESTS, random_orders=3))
    with pytest.raises(ValueError, match="unknown start order 'recorded'"):
        named_order(GUESTS, "recorded")      # no recorded order to play


def _f(rule, sev, guests, fix):
    return Finding(rule, sev, "m", guests=guests, fix=fix)


def test_one_change_one_group_and_the_swap_finding_follows_its_binding():
    relax = Fix("vm1", "set preferred", "preferred", frozenset({0}), None, ("x",))
    same = Fix("vm1", "another description", "preferred", frozenset({0}), None, ("y",))
    swap = Fix("vm1", "more swap", commands=("fallocate …",))
    other = Fix("vm2", "set interleave", "interleave", frozenset({0, 1}))
    found = groups([_f("NG102", Severity.CRITICAL, ("vm1",), relax),
                    _f("NG108", Severity.CRITICAL, ("vm1",), same),
                    _f("NG106", Severity.CRITICAL, ("vm1",), swap),
                    _f("NG104", Severity.INFO, ("vm2",), other),
                    _f("NG401", Severity.WARNING, ("vm1", "vm2"), None)])
    assert [(gr.guest, gr.rules) for gr in found] == [
        ("vm1", ("NG102", "NG106", "NG108")), (None, ("NG401",)), ("vm2", ("NG104",))]
    assert fix_key(relax) == fix_key(same) != fix_key(swap)


def test_apply_fix_changes_the_model_as_the_edit_would():
    b = GUESTS[1]
    relaxed = apply_fix(b, Fix("b", "d", "preferred", frozenset({0, 1})))
    assert relaxed.policy.mode is MemoryMode.PREFERRED and not relaxed.policy.implicit_mode
    assert relaxed.policy.nodeset == {0, 1}
    smaller = apply_fix(b, Fix("b", "d", memory=3 * 1024**3))
    assert smaller.memory == smaller.current_memory == 3 * 1024**3
    assert apply_fix(b, Fix("a", "d", "preferred", frozenset({0}))) is b   # another guest's
    cells = g("c2", 8, cells=[("0", 4 * GiB_KiB), ("1", 4 * GiB_KiB)], mode="strict",
              nodeset="0-1", memnodes=[(0, "strict", "0"), (1, "strict", "1")])
    one = apply_fix(cells, Fix("c2", "d", "preferred", frozenset({1}), 1))
    assert [c.policy.mode for c in one.cells] == [MemoryMode.STRICT, MemoryMode.PREFERRED]
