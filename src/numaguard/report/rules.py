"""Rule documentation: ``numaguard explain`` and ``docs/rules.md``, from the rule docstrings.

A rule's docstring is its documentation: the first line is its summary, the rest Markdown.
``docs/rules.md`` is :func:`rules_markdown` of every registered rule; a test checks that the
committed file is current.  ``numaguard explain`` (text) renders the same Markdown for a
terminal (:func:`plain_text`): no markup, wrapped to its width.
"""

from __future__ import annotations

import re
import shutil
import textwrap
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


_CODE = re.compile(r"``(.+?)``|`([^`]+)`")
_STRONG = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*|__(\S(?:.*?\S)?)__")
_EMPHASIS = re.compile(r"(?<![\w*])\*(\S(?:[^*]*?\S)?)\*(?![\w*])")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_HEADING = re.compile(r"#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"(\s*)([-*+]|\d+[.)])\s+(.*)")
#: a no-break space holds a code span together while a paragraph is wrapped
_NBSP = "\u00a0"


def terminal_width() -> int:
    """``COLUMNS``, else the terminal's width, else 80 (:func:`shutil.get_terminal_size`)."""
    return shutil.get_terminal_size((80, 24)).columns


def _inline(text: str) -> str:
    """Inline Markdown as plain words: code spans lose their backticks (and are never broken
    across lines), ``**bold**`` and ``*emphasis*`` their stars, a link becomes ``text (url)``."""
    text = _CODE.sub(lambda m: (m[1] or m[2]).replace(" ", _NBSP), text)
    text = _STRONG.sub(lambda m: m[1] or m[2], text)
    text = _EMPHASIS.sub(r"\1", text)
    return _LINK.sub(lambda m: m[1] if m[1] == m[2] else f"{m[1]} ({m[2]})", text)


def _wrap(text: str, width: int, first: str = "", rest: str = "") -> list[str]:
    lines = textwrap.wrap(_inline(text), max(width, 20), initial_indent=first,
                          subsequent_indent=rest, break_long_words=False,
                          break_on_hyphens=False) or [first.rstrip()]
    return [line.replace(_NBSP, " ") for line in lines]


def plain_text(markdown: str, width: int | None = None) -> str:
    """Markdown (a rule docstring) for a terminal: no markup left, paragraphs wrapped to
    *width* (default :func:`terminal_width`) at word boundaries.  Headings become plain lines,
    list items hang under ``• ``, and indented or fenced code blocks are kept as written."""
    width = terminal_width() if width is None else width
    out: list[str] = []
    fenced = False
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.extend(_wrap(" ".join(paragraph), width))
            paragraph.clear()

    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            flush()
            fenced = not fenced
            continue
        if fenced or line.startswith("    ") and not paragraph:
            out.append(line.removeprefix("    ") if not fenced else line)
            continue
        if not line.strip():
            flush()
            out.append("")
            continue
        heading = _HEADING.fullmatch(line)
        bullet = _BULLET.fullmatch(line)
        if heading:
            flush()
            out.append(_inline(heading[1]).replace(_NBSP, " "))
        elif bullet:
            flush()
            marker = "•" if bullet[2] in "-*+" else bullet[2]
            pad = bullet[1] + " " * (len(marker) + 1)
            out.extend(_wrap(bullet[3], width, f"{bullet[1]}{marker} ", pad))
        elif out and not paragraph and out[-1].startswith(("•", " ")) and line[:1] == " ":
            # a continuation line of a list item
            item = out.pop()
            indent = len(item) - len(item.lstrip(" •0123456789.)"))
            out.extend(_wrap(item.strip() + " " + line.strip(), width,
                             item[:indent], " " * indent))
        else:
            paragraph.append(line.strip())
    flush()
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def explain_text(r: Rule, width: int | None = None) -> str:
    return f"{r.id} {r.name}\n\n{plain_text(r.doc, width)}\n"


def rules_text(rules: Iterable[Rule] | None = None, width: int | None = None) -> str:
    rules = list(all_rules() if rules is None else rules)
    if not rules:
        return "No rules are registered.\n"
    width = terminal_width() if width is None else width
    name_width = max(len(r.name) for r in rules)
    lead = 5 + 2 + name_width + 2
    lines: list[str] = []
    for r in rules:
        first = f"{r.id:<5}  {r.name:<{name_width}}  "
        if width - lead < 30:      # too narrow for columns: the summary under the name
            lines.append(f"{r.id}  {r.name}")
            lines.extend(_wrap(r.summary, width, "    ", "    "))
        else:
            lines.extend(_wrap(r.summary, width, first, " " * lead))
    return "\n".join(lines) + "\n"


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
