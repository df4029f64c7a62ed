"""Byte-exact goldens of every output format (issue 11, "fast at every scale": the speed work
must not change one byte of what numaguard prints).

Two sets, both run through the real CLI in-process with ``COLUMNS=80``:

* **small**: the example host, the example scenarios and the 16-node render snapshot, in
  ``--format json`` (the text renders are held by ``test_render_golden.py``) plus the audit's
  Markdown and Nagios forms; plain files in ``tests/golden/output/``.
* **scale**: a 16-node, 1,000-guest snapshot written by ``tests/support/synth.py``
  (``synth_snapshot(…, nodes=16, guests=1000)``, seed 1 — the benchmark's snapshot) into a
  temporary folder, read as the relative path ``big`` from inside it (the audit's fix lines
  name the snapshot's path).  Every command and format; the goldens (2–6 MB each) are stored
  xz-compressed in ``tests/golden/output/scale/``.

``UPDATE_GOLDEN=1 pytest tests/golden/test_output_golden.py`` rewrites them; review the diff
(``xzcat`` the scale ones) before committing.  A JSON golden also pins ``numaguard_version``,
so a release bump rewrites them.
"""

from __future__ import annotations

import lzma
import os
from pathlib import Path

import pytest

from numaguard.cli import main
from tests.support.synth import synth_snapshot

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "output"
SCALE = OUT / "scale"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
N16 = "tests/golden/render/n16"
ALL_MODES = "strict,preferred,interleave,restrictive"
JSON = ["--format", "json"]

SMALL: list[tuple[str, list[str]]] = [
    ("topology-article-host", ["topology", "examples/article-host", *JSON]),
    ("guests-article-host", ["guests", "examples/article-host", *JSON]),
    ("audit-article-host", ["audit", "examples/article-host", *JSON]),
    ("audit-md-article-host", ["audit", "examples/article-host", "--format", "markdown"]),
    ("audit-nagios-article-host", ["audit", "examples/article-host", "--nagios"]),
    ("simulate-article-host", ["simulate", "examples/article-host", *JSON]),
    ("simulate-compare-article-host",
     ["simulate", "examples/article-host", "--compare", "strict,preferred,interleave", *JSON]),
    ("topology-n16", ["topology", N16, *JSON]),
    ("guests-n16", ["guests", N16, *JSON]),
    ("audit-n16", ["audit", N16, *JSON]),
    ("simulate-n16", ["simulate", N16, *JSON]),
    # the greedy path: byte-identical without the optional highspy and across its versions
    ("plan-article-host", ["plan", "examples/article-host", "--solver", "greedy", *JSON]),
]
for _toml in sorted((ROOT / "examples" / "scenarios").glob("*.toml")):
    _path = str(_toml.relative_to(ROOT))
    SMALL += [(f"simulate-{_toml.stem}", ["simulate", _path, *JSON]),
              (f"simulate-compare-{_toml.stem}", ["simulate", _path, "--compare", ALL_MODES,
                                                  *JSON])]

SCALE_CASES: list[tuple[str, list[str]]] = [
    ("topology", ["topology", "big"]),
    ("topology-json", ["topology", "big", *JSON]),
    ("guests", ["guests", "big"]),
    ("guests-json", ["guests", "big", *JSON]),
    ("audit", ["audit", "big"]),
    ("audit-json", ["audit", "big", *JSON]),
    ("audit-md", ["audit", "big", "--format", "markdown"]),
    ("audit-summary", ["audit", "big", "--summary"]),
    ("simulate", ["simulate", "big"]),
    ("simulate-json", ["simulate", "big", *JSON]),
]


def run(argv: list[str], cwd: Path, capsys, monkeypatch) -> str:
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("NO_COLOR", raising=False)
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    # --nagios exits with the plugin's state (2: CRITICAL) and says so on stdout
    assert code in ((0, 1, 2) if "--nagios" in argv else (0, 1)) and err == "", (code, err)
    return out


@pytest.mark.parametrize(("name", "argv"), SMALL, ids=[n for n, _ in SMALL])
def test_small_output_matches_golden(name, argv, capsys, monkeypatch):
    out = run(argv, ROOT, capsys, monkeypatch)
    path = OUT / f"{name}.out"
    if UPDATE:
        path.write_text(out, encoding="utf-8")
    assert out == path.read_text(encoding="utf-8"), \
        f"{path.name} differs; UPDATE_GOLDEN=1 rewrites it (review the diff)"


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("scale")
    synth_snapshot(str(where / "big"), nodes=16, guests=1000)
    return where


@pytest.mark.parametrize(("name", "argv"), SCALE_CASES, ids=[n for n, _ in SCALE_CASES])
def test_scale_output_matches_golden(name, argv, big, capsys, monkeypatch):
    out = run(argv, big, capsys, monkeypatch)
    path = SCALE / f"{name}.out.xz"
    if UPDATE:
        path.write_bytes(lzma.compress(out.encode("utf-8"), preset=9))
    expected = lzma.decompress(path.read_bytes()).decode("utf-8")
    if out != expected:
        got, want = out.splitlines(), expected.splitlines()
        first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                     min(len(got), len(want)))
        pytest.fail(f"{path.name} differs from line {first + 1} "
                    f"(got {got[first:first + 1]!r}, want {want[first:first + 1]!r}); "
                    "UPDATE_GOLDEN=1 rewrites it (review the diff)")


def test_every_golden_belongs_to_a_case():
    assert {p.name for p in OUT.glob("*.out")} == {f"{n}.out" for n, _ in SMALL}
    assert {p.name for p in SCALE.glob("*.xz")} == {f"{n}.out.xz" for n, _ in SCALE_CASES}
