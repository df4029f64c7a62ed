"""docs/rules.md is generated from the rule docstrings and must be current."""

import pathlib

from numaguard.core.rules import Rule, all_rules
from numaguard.report.rules import REGENERATE, anchor, rules_markdown

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_docs_rules_md_is_current():
    committed = (ROOT / "docs" / "rules.md").read_text()
    assert committed == rules_markdown(), (
        "docs/rules.md differs from the rule docstrings; regenerate it: " + REGENERATE)


def test_every_rule_is_documented_with_an_anchor():
    md = rules_markdown()
    for r in all_rules():
        assert f"\n### {r.id} {r.name}\n" in md
        assert f"| [{r.id}](#{anchor(r)}) | {r.name} |" in md


def _r(rule_id, name, doc):
    def check(ctx):
        return iter(())
    check.__doc__ = doc
    return Rule(rule_id, name, check)


def test_layout_on_given_rules():
    md = rules_markdown([_r("NG201", "cpu-x", "CPU | summary.\n\n    Body with ``code``."),
                         _r("NG101", "mem-y", "Memory summary.")])
    assert md.index("## Memory (NG1xx)") < md.index("### NG101 mem-y") < \
        md.index("## CPU (NG2xx)") < md.index("### NG201 cpu-x")
    assert "| [NG201](#ng201-cpu-x) | cpu-x | CPU \\| summary. |" in md
    assert "### NG201 cpu-x\n\nCPU | summary.\n\nBody with ``code``.\n" in md
    assert "No rules are registered yet." in rules_markdown([])
