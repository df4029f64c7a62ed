"""The Context's indexes and memos (issue 11) answer exactly what the plain scans they replace
answered: the same items, in the same order, however the findings and units come."""

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from numaguard.core.findings import Finding, Severity
from numaguard.core.rules import AuditOptions, Context
from numaguard.core.rules.common import first_named, names_text, numatune_fix
from numaguard.model.guest import VcpuPin
from tests.unit.rules.builders import guest, host

RULES = ("NG101", "NG103", "NG108", "NG110")
NAMES = ("a", "b", "c", "d")

findings_st = st.lists(st.tuples(st.sampled_from(RULES),
                                 st.lists(st.sampled_from(NAMES), max_size=3)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(findings_st, min_size=1, max_size=4),
       asks=st.lists(st.tuples(st.sampled_from(NAMES),
                               st.lists(st.sampled_from(RULES), min_size=1, max_size=3)),
                     min_size=1, max_size=4))
def test_findings_for_is_the_plain_scan(batches, asks):
    """Findings arrive in batches (rules run one after another); after each batch every
    question gets what a scan of all findings so far gives, a finding once per time it names
    the guest, in the order found."""
    ctx = Context(host([(2, 8)]), (), AuditOptions())
    for batch in batches:
        ctx.findings.extend(Finding(r, Severity.INFO, f"{r} {i}", guests=tuple(gs))
                            for i, (r, gs) in enumerate(batch))
        for name, rule_ids in asks:
            scan = [f for f in ctx.findings for g in f.guests
                    if g == name and f.rule in rule_ids]
            assert ctx.findings_for(name, *rule_ids) == scan


nodesets = st.frozensets(st.integers(0, 5), min_size=1, max_size=3)


@settings(max_examples=200, deadline=None)
@given(bindings=st.lists(st.tuples(nodesets, st.integers(1, 4)), max_size=12),
       asked=st.frozensets(st.integers(0, 5), min_size=1))
def test_bound_units_by_nodeset_is_the_plain_scan(bindings, asked):
    h = host([(2, 64)] * 6)
    guests = [guest(f"g{i}", gib, 1, mode="strict", nodeset=sorted(ns))
              for i, (ns, gib) in enumerate(bindings)]
    ctx = Context(h, guests, AuditOptions())
    units = ctx.bound_units
    assert ctx.units_inside(asked) == [u for u in units if u.static_nodeset <= asked]
    assert ctx.units_meeting(asked) == [u for u in units if u.static_nodeset & asked]


def test_a_numatune_fix_is_made_once_per_unit_and_change():
    ctx = Context(host([(2, 8), (2, 8)]), [guest("vm", 4, 1, mode="strict", nodeset="0")],
                  AuditOptions())
    (unit,) = ctx.units
    first = numatune_fix(ctx, unit, "preferred", frozenset({0}), "why")
    assert numatune_fix(ctx, unit, "preferred", frozenset({0}), "why") is first
    other = numatune_fix(ctx, unit, "interleave", frozenset({0, 1}), "why")
    assert other is not first and other.mode == "interleave" and first.mode == "preferred"


@given(st.lists(st.text(min_size=1, max_size=3), max_size=25), st.integers(0, 12))
def test_first_named_says_only_what_it_shows(items, limit):
    said: list[str] = []

    def say(x: str) -> str:
        said.append(x)
        return x.upper()

    assert first_named(items, say, limit) == names_text([x.upper() for x in items], limit)
    assert said == items[:limit]


def test_vcpu_cpus_takes_the_first_pin_of_a_vcpu():
    g = guest("vm", 1, 2, cpuset="0-3", pins={0: "1"})
    doubled = dataclasses.replace(g, pins=(*g.pins, VcpuPin(0, frozenset({2}))))
    assert doubled.vcpu_cpus(0) == frozenset({1})   # as the search in pin order found it
    assert doubled.vcpu_cpus(1) == frozenset(range(4))   # no pin: the <vcpu cpuset>


def test_nodes_of_cpus_asked_twice_answers_the_same():
    h = host([(2, 8), (2, 8), (2, 8)])
    for cpus in (frozenset({0}), frozenset({1, 2}), frozenset({5, 99}), frozenset()):
        first = h.nodes_of_cpus(cpus)
        assert h.nodes_of_cpus(cpus) == first == frozenset(
            n.id for n in h.nodes if n.cpus & cpus)
