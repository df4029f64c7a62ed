"""Audit renderers on hand-made results: evidence formatting, JSON values, Markdown escaping,
colour only on request, and speed at the scale of a big hypervisor."""

import dataclasses
import json
import os

import pytest

from numaguard.core.capacity import Reserve
from numaguard.core.findings import Finding, Fix, Severity
from numaguard.core.rules import AuditOptions, AuditResult, NodeSummary, audit
from numaguard.model.policy import MemoryMode
from numaguard.model.topology import Host, Node
from numaguard.readers.sources import read_paths
from numaguard.report import audit as report
from tests.support.synth import synth_snapshot

GiB = 1024**3


def small_result(findings=(), **options):
    host = Host((Node(0, frozenset({0, 1}), 16 * GiB, 10 * GiB),
                 Node(1, frozenset({2, 3}), 16 * GiB, None)), swap_total=None,
                numa_balancing=None)
    nodes = (NodeSummary(0, 15 * GiB, 12 * GiB, 3 * GiB), NodeSummary(1, 15 * GiB, 0, -GiB))
    return AuditResult(host, (), AuditOptions(**options), nodes, tuple(findings))


def test_bar():
    assert report.bar(0, 10) == ("[░░░░░░░░░░]", "0%")
    assert report.bar(6, 10) == ("[██████░░░░]", "60%")
    assert report.bar(1, 1000) == ("[█░░░░░░░░░]", "0%")  # something bound shows
    assert report.bar(10, 10) == ("[██████████]", "100%")
    assert report.bar(0, 0) == ("[░░░░░░░░░░]", "n/a")


def test_node_status():
    assert report.node_status(NodeSummary(0, 10, 5, -1), 4) == "over"
    assert report.node_status(NodeSummary(0, 10, 8, 2), 4) == "low"
    assert report.node_status(NodeSummary(0, 10, 0, 10), 40) == "ok"  # nothing bound there
    assert report.node_status(NodeSummary(0, 10, 2, 8), 4) == "ok"


@pytest.mark.parametrize("reserve,text", [
    (Reserve(), "max(1 GiB, 5% of MemTotal)"),
    (Reserve(fixed=2 * GiB), "2.0 GiB"),
    (Reserve(share=0.025, floor=0), "2.5% of MemTotal"),
])
def test_reserve_text(reserve, text):
    assert report.reserve_text(reserve) == text


def test_evidence_items():
    ev = {"demand_bytes": 12 * GiB, "nodes": frozenset({3, 0, 1, 2}), "fill_order": [2, 0, 1],
          "ok": True, "kernel_release": None, "mode": MemoryMode.STRICT, "ratio": 0.5,
          "per_node_bytes": {0: GiB}, "names": ["a b", "c"], "x_bytes": [GiB, 0],
          "_bytes": 5}
    assert report.evidence_items(ev) == [
        "demand=12.0 GiB", "nodes=0-3", "fill_order=2,0,1", "ok=true", "kernel_release=unknown",
        "mode=strict", "ratio=0.5", "per_node={0: 1.0 GiB}", 'names=["a b", c]',
        "x=[1.0 GiB, 0 B]", "_bytes=5 B"]


def test_jsonable():
    assert report.jsonable({"a": frozenset({3, 1}), "b": (1, (2,)), "c": 2**40,
                            frozenset({0, 1}): 1, 2: Severity.WARNING,
                            "m": MemoryMode.INTERLEAVE, "f": float("inf"),
                            "d": Fix("g", "d")}) == {
        "a": [1, 3], "b": [1, [2]], "c": 2**40, "0-1": 1, "2": "warning", "m": "interleave",
        "f": "inf", "d": {"guest": "g", "description": "d", "mode": None, "nodeset": None,
                          "cell": None, "memory": None, "commands": []}}


def test_summary_lines_of_an_unknown_host():
    text = report.audit_text(small_result())
    verdict, blank, first, second = text.splitlines()[:4]
    assert verdict == ("Verdict: no OOM kill predicted; not simulated (NG110 not run); "
                       "0 critical, 0 warning, 0 info") and blank == ""
    assert first == ("Host: 2 NUMA nodes, 4 CPUs, 32.0 GiB memory, swap unknown, "
                     "numa_balancing unknown, kernel unknown")
    assert second.startswith("Audit: 0 guests; host reserve max(1 GiB, 5% of MemTotal)")
    assert "│    1 │ 16.0 GiB │        - │" in text  # free memory unknown
    assert "-1.0 GiB" in text and "over" in text and "low" in text


def test_colour_only_when_asked():
    f = Finding("NG101", Severity.CRITICAL, "m", guests=("g",))
    assert "\x1b[" not in report.audit_text(small_result([f]))
    coloured = report.audit_text(small_result([f]), color=True)
    assert "\x1b[" in coloured and "CRITICAL (1 finding, 1 change)" in coloured


def test_long_guest_lists_are_cut_in_text_only():
    guests = tuple(f"g{i:03d}" for i in range(40))
    f = Finding("NG101", Severity.WARNING, "m", guests=guests)
    text = report.audit_text(small_result([f]))
    assert "g009 and 30 more (--format json lists all)" in text and "g010" not in text
    md = report.audit_markdown(small_result([f]))
    assert "g039" in md and "### NG101 strict-overcommit: g000, g001, g002 and 37 more" in md
    assert json.loads(report.audit_json(small_result([f])))["findings"][0]["guests"] == \
        list(guests)


def test_markdown_escapes_data():
    f = Finding("NG101", Severity.INFO, "# not a heading <script> `x` a|b 1. no list",
                guests=("[evil](http://x)", "*star*", "snake_case_name"),
                fix=Fix("[evil](http://x)", "use <memory>", commands=("virsh x ```",)))
    md = report.audit_markdown(small_result([f]))
    assert "\\# not a heading \\<script\\> \\`x\\` a\\|b 1. no list" in md
    assert "**Guests:** \\[evil\\](http://x), \\*star\\*, snake_case_name" in md
    assert "**Fix (\\[evil\\](http://x)):** use \\<memory\\>" in md
    assert "  virsh x ```" in md  # inside the fenced block: an indented line cannot close it
    assert report.md_code("a`b") == "``a`b``" and report.md_code("`x") == "`` `x ``"


def test_markdown_node_table_is_well_formed():
    md = report.audit_markdown(small_result())
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 2 and len({row.count("|") for row in rows}) == 1
    assert "| 0 | 16.0 GiB | 10.0 GiB | 0 B | 1.0 GiB | 15.0 GiB | 12.0 GiB | 3.0 GiB | " \
           "`[████████░░]` 80% | low |" in md


def _many_findings(result: AuditResult, extra: int) -> tuple[Finding, ...]:
    """The real findings plus *extra* shaped like them (message, evidence with bytes, fix)."""
    out = list(result.findings)
    guests = [g.name for g in result.guests]
    sev = (Severity.CRITICAL, Severity.WARNING, Severity.INFO)
    for i in range(extra):
        g = guests[i % len(guests)]
        out.append(Finding(
            f"NG1{i % 9 + 1:02d}", sev[i % 3],
            f"{g} (8.0 GiB strict) is bound to node {i % 16}, where others take up to "
            "14.4 GiB of its 14.4 GiB first: when they run, the bound memory is short.",
            guests=(g, guests[(i + 1) % len(guests)]), nodes=(i % 16,),
            evidence={"demand_bytes": 8 * GiB, "capacity_bytes": 14 * GiB, "nodeset": [i % 16],
                      "placement_bytes": {0: GiB, 1: 2 * GiB}},
            fix=Fix(g, "set <numatune><memory> mode='preferred' nodeset='0'", "preferred",
                    frozenset({i % 16}), None,
                    (f"numaguard fix {g} --mode preferred --nodeset {i % 16}",
                     f"virsh numatune {g} --mode preferred --nodeset {i % 16} --config"))))
    return tuple(sorted(out, key=Finding.sort_key))


@pytest.fixture(scope="module")
def big_result(tmp_path_factory):
    snap = tmp_path_factory.mktemp("big")
    synth_snapshot(os.fspath(snap), nodes=16, guests=1000)
    loaded = read_paths([os.fspath(snap)])
    result = audit(loaded.host, loaded.guests)
    return dataclasses.replace(result, findings=_many_findings(result, 3000), groups=())


@pytest.mark.parametrize("render", [report.audit_text, report.audit_json,
                                    report.audit_markdown])
def test_renders_a_big_audit_whole(big_result, render):
    """16 nodes, 1,000 guests, 3,000 findings: every fix is rendered — in text once per
    group of findings that one change is for (speed: `make bench`)."""
    assert len(big_result.findings) >= 3000 and len(big_result.guests) == 1000
    out = render(big_result)
    if render is report.audit_text:
        changes = [g for g in big_result.groups if g.fix is not None and any(
            c.startswith("numaguard fix ") for c in g.fix.commands)]
        assert len(changes) > 1000
        for g in changes:
            assert f"    $ {g.fix.commands[0]}\n" in out
    else:
        assert out.count("numaguard fix ") >= 3000
