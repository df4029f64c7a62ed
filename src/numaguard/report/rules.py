"""Rule documentation: ``numaguard explain`` and ``docs/rules.md``, from the rule docstrings.

A rule's docstring is its documentation: the first line is its summary, the rest Markdown.
``docs/rules.md`` is :func:`rules_markdown` of every registered rule; a test checks that the
committed file is current.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from numaguard.core.rules import Rule, all_rules

#: how docs/rules.md is regenerated (printed by the test that checks it is current)
REGENERATE = "make docs  # or: numaguard explain --all --format markdown > docs/rules.md"

AREAS = (("NG1", "Memory (NG1xx)"), ("NG2", "CPU (NG2xx)"), ("NG3", "Hugepages (NG3xx)"),
         ("NG4", "Host (NG4xx)"))


def area(rule_id: str) -> str:
    for prefix, name in AREAS:
        if rule_id.startswith(prefix):
            return name
    return "Other"


def _plain(text: str) -> str:
    """Docstring markup for a terminal: ````x```` -> ```x```."""
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def explain_text(r: Rule) -> str:
    return f"{r.id} {r.name}\n\n{_plain(r.doc)}\n"


def rules_text(rules: Iterable[Rule] | None = None) -> str:
    rules = list(all_rules() if rules is None else rules)
    if not rules:
        return "No rules are registered.\n"
    width = max(len(r.name) for r in rules)
    return "".join(f"{r.id}  {r.name:<{width}}  {_plain(r.summary)}\n" for r in rules)


def anchor(r: Rule) -> str:
    """GitHub's heading anchor of ``### NG101 strict-overcommit``."""
    return re.sub(r"[^a-z0-9 _-]", "", f"{r.id} {r.name}".lower()).replace(" ", "-")


def explain_markdown(r: Rule, level: int = 1) -> str:
    return f"{'#' * level} {r.id} {r.name}\n\n{r.doc}\n"


def rules_markdown(rules: Iterable[Rule] | None = None) -> str:
    rules = sorted(all_rules() if rules is None else rules, key=lambda r: r.id)
    lines = [
        "# numaguard rules",
        "",
        "<!-- Generated from the rule docstrings in src/numaguard/core/rules/; do not edit.",
        f"     Regenerate: {REGENERATE} -->",
        "",
        "`numaguard audit` runs every rule below and reports every finding, with the guests",
        "and nodes concerned, the evidence in numbers and the fix.  IDs are stable and never",
        "renumbered: NG1xx memory, NG2xx CPU, NG3xx hugepages, NG4xx host.",
        "`numaguard explain ID` prints one rule; `numaguard audit --rule ID` runs only that rule.",
        "The capacity model the memory rules share is described in [capacity.md](capacity.md).",
        "",
    ]
    if not rules:
        return "\n".join([*lines, "No rules are registered yet.", ""])
    lines += ["| ID | Name | Summary |", "|---|---|---|"]
    for r in rules:
        summary = r.summary.replace("|", "\\|")
        lines.append(f"| [{r.id}](#{anchor(r)}) | {r.name} | {summary} |")
    current = None
    for r in rules:
        if area(r.id) != current:
            current = area(r.id)
            lines += ["", f"## {current}"]
        lines += ["", explain_markdown(r, level=3).rstrip("\n")]
    return "\n".join(lines) + "\n"
