"""Memory rules NG101-NG109 on small hosts built in code and guests built from real domain XML."""

import dataclasses
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numaguard.core.findings import Severity
from numaguard.core.rules import AuditOptions, audit
from numaguard.core.verdict import apply_fixes
from numaguard.domxml.document import DomainDocument
from numaguard.domxml.extract import extract_guest
from numaguard.model.policy import MemoryMode
from numaguard.model.topology import Host, Node
from numaguard.readers.sources import load_guests, load_host
from tests.support.synth import domain_xml

GiB = 1024**3
KiB_PER_GiB = 1024 * 1024
ARTICLE = pathlib.Path(__file__).resolve().parents[3] / "examples" / "article-host"


def make_host(*mem_gib, distances=None, swap_gib=None, cpus_per_node=4, free=None):
    """Nodes whose capacity is mem - 1 GiB (the default reserve below 20 GiB)."""
    nodes = tuple(Node(i, frozenset(range(i * cpus_per_node, (i + 1) * cpus_per_node)),
                       int(m * GiB), None if free is None else int(free[i] * GiB))
                  for i, m in enumerate(mem_gib))
    n = len(nodes)
    if distances is None:
        distances = tuple(tuple(10 if a == b else 21 for b in range(n)) for a in range(n))
    swap = None if swap_gib is None else int(swap_gib * GiB)
    return Host(nodes, distances, swap_total=swap, swap_free=swap)


def g(name, mem_gib, *, vcpus=2, cpuset=None, **kw):
    xml = domain_xml(name, int(mem_gib * KiB_PER_GiB), vcpus, cpuset=cpuset, **kw)
    return extract_guest(DomainDocument(xml.encode(), path=f"{name}.xml"))


def run(host, guests, rule=None, **opts):
    res = audit(host, guests, AuditOptions(**opts), only=None if rule is None else [rule])
    return list(res.findings)


def only(findings, rule):
    return [f for f in findings if f.rule == rule]


# --- NG101 ---------------------------------------------------------------------------------

def test_ng101_overlap_feasible_where_a_per_node_sum_would_cry_wolf():
    # capacities 12/12; vm2 may take its 4 GiB on either node.  Counting vm2 on node 0 in full
    # gives 14 > 12 there; the max-flow answer is that everything fits.
    host = make_host(13, 13)
    guests = [g("vm1", 10, mode="strict", nodeset="0"), g("vm2", 4, mode="strict", nodeset="0-1"),
              g("vm3", 6, mode="strict", nodeset="1")]
    assert run(host, guests, "NG101", min_headroom=1 * GiB) == []
    warn = run(host, guests, "NG101", min_headroom=3 * GiB)
    assert [(f.severity, f.nodes) for f in warn] == [(Severity.WARNING, (0,))]
    assert warn[0].evidence["headroom_bytes"] == 2 * GiB  # vm2 moves to node 1 entirely


def test_ng101_reports_the_smallest_overcommitted_set():
    # The union {0,1} has room (13+1 < 24) but node 0 alone does not.
    host = make_host(13, 13)
    guests = [g("big", 13, mode="strict", nodeset="0"), g("small", 1, mode="strict", nodeset="1")]
    [f] = run(host, guests, "NG101")
    assert f.severity is Severity.CRITICAL and f.nodes == (0,) and f.guests == ("big",)
    assert f.evidence["shortfall_bytes"] == 1 * GiB
    assert f.fix.mode == "preferred" and f.fix.commands[1] == \
        "virsh numatune big --mode preferred --nodeset 0 --config"


def test_ng101_overlapping_nodesets_overcommitted_together():
    host = make_host(13, 13)
    guests = [g("vm1", 10, mode="strict", nodeset="0"), g("vm2", 10, mode="strict", nodeset="0-1"),
              g("vm3", 10, mode="strict", nodeset="1")]
    [f] = run(host, guests, "NG101")
    assert f.severity is Severity.CRITICAL and f.nodes == (0, 1)
    assert f.guests == ("vm1", "vm2", "vm3") and f.evidence["shortfall_bytes"] == 6 * GiB


def test_ng101_ignores_preferred_and_interleave():
    host = make_host(13, 13)
    guests = [g("p", 20, mode="preferred", nodeset="0"), g("i", 30, mode="interleave",
                                                           nodeset="0-1")]
    assert run(host, guests, "NG101") == []


def test_ng101_restrictive_counts_as_bound():
    [f] = run(make_host(13, 13), [g("r", 14, mode="restrictive", nodeset="0")], "NG101")
    assert f.severity is Severity.CRITICAL


def test_ng101_host_reserve_option():
    host = make_host(13)
    guests = [g("vm", 11, mode="strict", nodeset="0")]
    assert run(host, guests, "NG101", min_headroom=0) == []
    from numaguard.core.capacity import parse_reserve
    [f] = run(host, guests, "NG101", min_headroom=0, host_reserve=parse_reserve("3GiB"))
    assert f.severity is Severity.CRITICAL and f.evidence["capacity_bytes"] == 10 * GiB


# --- the article host ----------------------------------------------------------------------

def article():
    return load_host(str(ARTICLE)), load_guests(str(ARTICLE))


def test_article_host_findings():
    host, guests = article()
    findings = audit(host, guests).findings
    ng101 = only(findings, "NG101")
    assert [(f.severity, f.guests, f.nodes) for f in ng101] == [(Severity.WARNING, ("vm1",), (0,))]
    # node 0: MemTotal 16,122,340 KiB - 1 GiB reserve - 12 GiB for vm1
    assert ng101[0].evidence["headroom_bytes"] == 16_122_340 * 1024 - 13 * GiB
    assert ng101[0].evidence["mem_free_bytes"] == 15 * GiB
    [ng102] = only(findings, "NG102")
    assert ng102.guests == ("vm1",) and ng102.severity is Severity.CRITICAL  # follows NG108
    [ng108] = only(findings, "NG108")
    assert ng108.severity is Severity.CRITICAL and ng108.guests == ("vm1",)
    assert ng108.evidence["contending"] == ["bigmem-preferred", "web-interleave"]
    [ng109] = only(findings, "NG109")
    assert ng109.guests == ("bigmem-preferred",) and ng109.severity is Severity.INFO
    assert ng109.nodes[:2] == (0, 1)  # spills to node 1 first (fallback order 0 1 2 3)
    # the interleave guest's own binding is fine: only host-wide rules name it (NUMA
    # balancing, and the host's memory as a whole: 59 GiB of guests, 44.5 GiB free + 2 swap)
    assert {f.rule for f in findings if "web-interleave" in f.guests} <= {"NG401", "NG111"}


def test_vm1_preferred_clears_every_critical_memory_finding():
    host, guests = article()
    preferred = dataclasses.replace(guests[0].policy, mode=MemoryMode.PREFERRED,
                                    implicit_mode=False)
    fixed = [dataclasses.replace(x, policy=preferred) if x.name == "vm1" else x for x in guests]
    assert any(x.name == "vm1" for x in fixed)
    findings = audit(host, fixed).findings
    # what is left critical is the host as a whole: out of memory, whatever the bindings
    critical = [f for f in findings if f.severity is Severity.CRITICAL]
    assert {f.rule for f in critical} == {"NG110", "NG111"}, critical
    assert all(f.evidence["constraint"] == "global" for f in critical if f.rule == "NG110")
    assert not [f for f in findings if "vm1" in f.guests and f.rule in ("NG101", "NG102")]
    # NG111's fix (shrink the largest guest by the shortfall) leaves nothing critical
    [ng111] = only(findings, "NG111")
    assert ng111.fix.guest == "bigmem-preferred" and ng111.fix.memory < 35 * GiB
    shrunk = apply_fixes(fixed, [ng111.fix])
    assert not [f for f in audit(host, shrunk).findings if f.severity is Severity.CRITICAL]


# --- NG102 ---------------------------------------------------------------------------------

def test_ng102_info_when_safe_and_warning_when_tight():
    host = make_host(32)
    [f] = run(host, [g("vm", 4, nodeset="0")], "NG102")  # no mode: implicit strict
    assert f.severity is Severity.INFO and f.fix.mode == "preferred"
    findings = run(host, [g("vm", 28, nodeset="0")])
    assert only(findings, "NG102")[0].severity is Severity.WARNING
    assert run(host, [g("vm", 4, mode="strict", nodeset="0")], "NG102") == []


def test_ng102_memnode_without_mode_names_the_cell():
    xml = domain_xml("cells", 8 * KiB_PER_GiB, 4, cells=[("0-1", 4 * KiB_PER_GiB),
                                                        ("2-3", 4 * KiB_PER_GiB)])
    xml = xml.replace("<vcpu placement='static'>4</vcpu>",
                      "<vcpu placement='static'>4</vcpu>\n  <numatune>\n"
                      "    <memnode cellid='1' nodeset='1'/>\n  </numatune>")
    guest = extract_guest(DomainDocument(xml.encode()))
    [f] = run(make_host(16, 16), [guest], "NG102")
    assert f.fix.cell == 1 and f.fix.commands == ("numaguard fix cells --memnode 1:preferred:1",)


# --- NG103 ---------------------------------------------------------------------------------

def test_ng103_guest_bigger_than_its_nodes():
    host = make_host(16, 16)
    [f] = run(host, [g("huge", 20, mode="strict", nodeset="0")], "NG103")
    assert f.severity is Severity.CRITICAL and f.evidence["shortfall_bytes"] == 4 * GiB
    assert run(host, [g("huge", 20, mode="strict", nodeset="0-1")], "NG103") == []
    assert run(host, [g("huge", 20, mode="preferred", nodeset="0")], "NG103") == []


# --- NG104 ---------------------------------------------------------------------------------

def test_ng104_fill_order_follows_the_vcpus_node_and_the_fallback_order():
    host = make_host(8, 8, 8)  # equal distances: node 2's fallback order is 2 0 1
    [f] = run(host, [g("seq", 10, cpuset="8-11", mode="strict", nodeset="0-2")], "NG104")
    assert f.nodes == (2, 0, 1) and f.severity is Severity.WARNING  # 10 GiB > node 2's 7 GiB
    assert f.fix.mode == "interleave"
    [small] = run(host, [g("seq", 2, cpuset="0-3", mode="preferred", nodeset="1-2")], "NG104")
    assert small.nodes == (1, 2) and small.severity is Severity.INFO
    assert run(host, [g("il", 10, mode="interleave", nodeset="0-2")], "NG104") == []


# --- NG105 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel,severity", [
    ("5.10.0-28-amd64", Severity.WARNING), (None, Severity.INFO), ("6.1.0-56-amd64", None)])
def test_ng105_preferred_many_needs_5_15(kernel, severity):
    found = run(make_host(16, 16), [g("pm", 4, mode="preferred", nodeset="0-1")], "NG105",
                kernel_release=kernel)
    assert [f.severity for f in found] == ([severity] if severity else [])


# --- NG106 ---------------------------------------------------------------------------------

def test_ng106_swap_against_shortfall():
    guests = [g("big", 15, mode="strict", nodeset="0")]  # 2 GiB short of 13 GiB capacity
    assert only(run(make_host(14, swap_gib=1), guests), "NG106")[0].severity is Severity.CRITICAL
    assert only(run(make_host(14, swap_gib=4), guests), "NG106") == []
    assert only(run(make_host(14), guests), "NG106")[0].severity is Severity.INFO  # unknown
    no_swap = only(run(make_host(64, swap_gib=0), [g("ok", 4, mode="strict", nodeset="0")]),
                   "NG106")
    assert [f.severity for f in no_swap] == [Severity.WARNING]
    assert run(make_host(64, swap_gib=0), [g("p", 4, mode="preferred", nodeset="0")],
               "NG106") == []


# --- NG107 ---------------------------------------------------------------------------------

def test_ng107_nodeset_beyond_the_host():
    [f] = run(make_host(16, 16), [g("moved", 4, mode="preferred", nodeset="1-3")], "NG107")
    assert f.severity is Severity.CRITICAL and f.nodes == (2, 3)
    assert f.fix.nodeset == frozenset({1}) and f.fix.mode == "preferred"


# --- NG108 ---------------------------------------------------------------------------------

def test_ng108_preferred_neighbour_squeezes_a_strict_guest():
    host = make_host(17, 17)  # capacity 16 each
    strict = g("db", 10, mode="strict", nodeset="0")
    [f] = run(host, [strict, g("batch", 12, mode="preferred", nodeset="0")], "NG108")
    assert f.guests == ("db",) and f.evidence["contending"] == ["batch"]
    assert f.evidence["shortfall_bytes"] == 6 * GiB
    # the same neighbour on the other node is harmless; a small one too
    assert run(host, [strict, g("batch", 12, mode="preferred", nodeset="1")], "NG108") == []
    assert run(host, [strict, g("batch", 4, mode="preferred", nodeset="0")], "NG108") == []


def test_ng108_unpinned_guest_without_policy_is_not_a_claim():
    host = make_host(17, 17)
    strict = g("db", 10, mode="strict", nodeset="0")
    assert run(host, [strict, g("free", 12)], "NG108") == []
    [f] = run(host, [strict, g("local", 12, cpuset="0-3")], "NG108")  # runs on node 0
    assert f.evidence["contending"] == ["local"]


# --- NG109 ---------------------------------------------------------------------------------

def test_ng109_preferred_spill_names_the_next_nodes():
    host = make_host(9, 9, 9)  # capacity 8 each; node 0's fallback order is 0 1 2
    [f] = run(host, [g("p", 20, mode="preferred", nodeset="0")], "NG109")
    assert f.severity is Severity.INFO and f.nodes == (0, 1, 2)
    assert f.evidence["placement_bytes"] == {"0": 8 * GiB, "1": 8 * GiB, "2": 4 * GiB}
    assert run(host, [g("p", 6, mode="preferred", nodeset="0")], "NG109") == []


# --- properties ------------------------------------------------------------------------------

bound_guest = st.tuples(st.integers(1, 12), st.sampled_from(["0", "1", "2", "0-1", "1-2", "0-2"]))


def ng101_worst(host, specs):
    guests = [g(f"vm{i}", mem, mode="strict", nodeset=ns) for i, (mem, ns) in enumerate(specs)]
    found = run(host, guests, "NG101")
    return max((f.severity for f in found), default=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(bound_guest, min_size=1, max_size=5), st.lists(st.integers(4, 16), min_size=3,
                                                              max_size=3),
       st.integers(0, 2), st.integers(1, 8))
def test_adding_capacity_never_creates_an_ng101_finding(specs, mems, node, extra):
    before = ng101_worst(make_host(*mems), specs)
    more = list(mems)
    more[node] += extra
    assert ng101_worst(make_host(*more), specs) <= before


@settings(max_examples=60, deadline=None)
@given(st.lists(bound_guest, min_size=1, max_size=5), st.lists(st.integers(4, 16), min_size=3,
                                                              max_size=3), bound_guest)
def test_adding_a_strict_guest_never_removes_one(specs, mems, new):
    host = make_host(*mems)
    assert ng101_worst(host, [*specs, new]) >= ng101_worst(host, specs)


def test_an_audit_of_rules_that_cannot_apply_runs_nothing():
    """``Rule.applies``: an audit of only NG102 on guests with no implicit strict binding
    finds nothing and runs none of the rules NG102 reads (NG101's simulation included); with
    one, those rules run as before (the verdict's re-audits rely on both)."""
    host = make_host(8, 8)
    explicit = [g("a", 12, mode="strict", nodeset="0"), g("b", 4, mode="strict", nodeset="0")]
    skipped = audit(host, explicit, only=["NG102"])
    assert skipped.findings == () and skipped.prediction is None
    implicit = [g("a", 12, nodeset="0"), g("b", 4, mode="strict", nodeset="0")]
    ran = audit(host, implicit, only=["NG102"])
    (f,) = ran.findings
    assert f.rule == "NG102" and f.severity is Severity.CRITICAL   # NG101/NG103 ran for it
    assert ran.prediction is not None
