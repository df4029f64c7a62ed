"""Golden renders of the text output at 80 and 120 columns (issue 10, "output that fits the
terminal").

Each case of :data:`CASES` runs the real CLI in-process from the repository root with
``COLUMNS`` set, and compares its stdout with ``tests/golden/render/<case>-<width>.txt``;
``UPDATE_GOLDEN=1 pytest tests/golden/test_render_golden.py`` rewrites those files (review the
diff before committing, see README.md).  A second test holds every golden file to the width
contract of :mod:`numaguard.report.term`: no line longer than its width unless it is a command
line or a single unbreakable token.

To add a command (``audit``, ``fix``), add ``(case name, argv)`` entries to :data:`CASES` and
regenerate.  ``render/n16`` is a 16-node snapshot written by ``tests/support/synth.py``
(``synth_snapshot(…, nodes=16, guests=12, cpus_per_node=4, node_gib=32, seed=10)``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from numaguard.cli import main
from numaguard.report.term import fits

ROOT = Path(__file__).resolve().parents[2]
RENDER = Path(__file__).resolve().parent / "render"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
WIDTHS = (80, 120)
N16 = "tests/golden/render/n16"
ALL_MODES = "strict,preferred,interleave,restrictive"

#: (case name, argv): one golden file per case and width
CASES: list[tuple[str, list[str]]] = [
    ("topology-article-host", ["topology", "examples/article-host"]),
    ("guests-article-host", ["guests", "examples/article-host"]),
    ("simulate-article-host", ["simulate", "examples/article-host"]),
    ("simulate-compare-article-host",
     ["simulate", "examples/article-host", "--compare", "strict,preferred,interleave"]),
    ("guests-xml-corpus", ["guests", "tests/fixtures/xml/guests"]),
    ("audit-article-host", ["audit", "examples/article-host"]),
    ("audit-summary-article-host", ["audit", "examples/article-host", "--summary"]),
    ("fix-article-host-vm1", ["fix", "examples/article-host/domains/vm1.xml", "--recommended"]),
    ("fix-virsh-article-host-vm1",
     ["fix", "examples/article-host/domains/vm1.xml", "--recommended", "--virsh"]),
    ("topology-n16", ["topology", N16]),
    ("audit-n16", ["audit", N16]),
    ("guests-n16", ["guests", N16]),
    ("simulate-n16", ["simulate", N16]),
    ("simulate-compare-n16", ["simulate", N16, "--compare", ALL_MODES]),
    ("plan-article-host", ["plan", "examples/article-host", "--solver", "greedy"]),
]
for _toml in sorted((ROOT / "examples" / "scenarios").glob("*.toml")):
    _path = str(_toml.relative_to(ROOT))
    CASES += [(f"simulate-{_toml.stem}", ["simulate", _path]),
              (f"simulate-compare-{_toml.stem}", ["simulate", _path, "--compare", ALL_MODES])]

PARAMS = [pytest.param(name, argv, width, id=f"{name}-{width}")
          for name, argv in CASES for width in WIDTHS]


def golden(name: str, width: int) -> Path:
    return RENDER / f"{name}-{width}.txt"


def render(argv: list[str], width: int, capsys: pytest.CaptureFixture[str],
           monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.delenv("NO_COLOR", raising=False)
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    # fix says what the change does on stderr: it is part of what the admin reads
    assert code in (0, 1) and (err == "" or argv[0] == "fix"), (code, err)
    return out + (f"--- stderr ---\n{err}" if err else "")


@pytest.mark.parametrize(("name", "argv", "width"), PARAMS)
def test_render_matches_golden(name, argv, width, capsys, monkeypatch):
    out = render(argv, width, capsys, monkeypatch)
    path = golden(name, width)
    if UPDATE:
        path.write_text(out, encoding="utf-8")
    assert out == path.read_text(encoding="utf-8"), \
        f"{path.name} differs; UPDATE_GOLDEN=1 rewrites it (review the diff)"


def test_every_golden_belongs_to_a_case():
    expected = {golden(name, width).name for name, _ in CASES for width in WIDTHS}
    assert {p.name for p in RENDER.glob("*.txt")} == expected


@pytest.mark.parametrize("path", sorted(RENDER.glob("*.txt")), ids=lambda p: p.name)
def test_golden_keeps_the_width_contract(path):
    width = int(path.stem.rsplit("-", 1)[1])
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines, path.name
    wide = [line for line in lines if not fits(line, width)]
    assert wide == [], f"{path.name}: {len(wide)} line(s) wider than {width}"
    assert not any(line != line.rstrip() for line in lines), f"{path.name}: trailing spaces"


def test_the_widths_differ_where_they_should():
    """The 80-column render is not the 120-column one with lines cut: a table that needed
    stacking at 80 is one table at 120 (the guests of article-host fit one table either way;
    its simulate step table stacks at 80 and less so at 120)."""
    steps = {w: golden("simulate-article-host", w).read_text(encoding="utf-8")
             for w in WIDTHS}
    assert steps[80].count("Steps:") > steps[120].count("Steps:") >= 1
    assert max(map(len, steps[120].splitlines())) > 80
