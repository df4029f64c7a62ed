"""`numaguard fix` on the golden corpus: only <numatune> changes, and libvirt's schema agrees.

For every valid domain fixture (tests/fixtures/xml/guests/*-in.xml: virsh dumpxml output, nova
XML with its metadata namespace, hand-written files with comments, memnodes, hugepages):

* an edit of ``<memory>`` (interleave over node 0; mode only for ``placement='auto'``, where a
  nodeset is refused) and, for guests with NUMA cells, an edit of cell 0's ``<memnode>``;
* every byte outside ``<numatune>…</numatune>`` is unchanged, and every line the unified diff
  removes or adds lies inside that element (old and new line ranges);
* the edited XML reads back with the expected policy and validates against libvirt's RNG schema
  (``virt-xml-validate FILE domain``; skipped with a reason when the binary is absent);
* no change requested: the output is byte-identical.
"""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from numaguard.cli import main
from numaguard.domxml.document import DomainDocument
from numaguard.domxml.edit import MemnodeEdit, NumatuneEdit, edit_numatune
from numaguard.domxml.extract import extract_guest
from numaguard.errors import ParseError
from numaguard.model.guest import Guest
from numaguard.model.policy import MemoryMode, Placement

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "xml"
GUESTS = FIXTURES / "guests"
CASES = sorted(p.name[: -len("-in.xml")] for p in GUESTS.glob("*-in.xml"))
ALL_VALID_XML = sorted(GUESTS.glob("*-in.xml")) + sorted(
    (Path(__file__).resolve().parents[2] / "examples").rglob("domains/*.xml"))

_OPEN = re.compile(rb"<numatune\b")
_CLOSE = re.compile(rb"</numatune\s*>|<numatune\b[^>]*/>")


def _numatune_bytes(data: bytes) -> tuple[int, int] | None:
    """Byte span of the (only) ``<numatune>`` element, found by text, not by the code under
    test; the line holding its start tag begins at the returned start's line."""
    m = _OPEN.search(data)
    if m is None:
        return None
    end = _CLOSE.search(data, m.start())
    assert end is not None
    return m.start(), end.end()


def _line_range(data: bytes, span: tuple[int, int]) -> range:
    first = data.count(b"\n", 0, span[0])
    last = data.count(b"\n", 0, span[1])
    return range(first, last + 1)


def _guest(case: str) -> Guest:
    path = GUESTS / f"{case}-in.xml"
    return extract_guest(DomainDocument(path.read_bytes(), path=str(path)))


def _auto_placed(case: str) -> bool:
    """``<numatune><memory placement='auto'>`` is written: a nodeset would be refused."""
    data = (GUESTS / f"{case}-in.xml").read_bytes()
    return re.search(rb"<memory\b[^>]*placement=['\"]auto['\"]", data) is not None


def _edits(case: str) -> list[tuple[str, NumatuneEdit]]:
    g = _guest(case)
    restrictive = any(p is not None and p.mode is MemoryMode.RESTRICTIVE
                      for p in (g.policy, *(c.policy for c in g.cells)))
    # something the guest does not have yet: another mode, or (restrictive) another nodeset
    current = g.policy.mode.value if g.policy is not None else None
    mode = "restrictive" if restrictive else "interleave" if current != "interleave" \
        else "preferred"
    nodeset = frozenset({1}) if restrictive and g.policy is not None and \
        g.policy.nodeset == frozenset({0}) else frozenset({0})
    if _auto_placed(case):
        edits = [("memory", NumatuneEdit(mode))]
    else:
        edits = [("memory", NumatuneEdit(mode, nodeset))]
    if g.cells and not _auto_placed(case):
        memnode_mode = "restrictive" if restrictive else "preferred"
        edits.append(("memnode", NumatuneEdit(memnodes=(MemnodeEdit(0, memnode_mode,
                                                                    frozenset({1})),))))
    return edits


EDIT_CASES = [(case, kind) for case in CASES for kind, _ in _edits(case)]


def _edited(case: str, kind: str) -> tuple[bytes, bytes, NumatuneEdit]:
    path = GUESTS / f"{case}-in.xml"
    old = path.read_bytes()
    edit = dict(_edits(case))[kind]
    return old, edit_numatune(DomainDocument(old, path=str(path)), edit), edit


def test_corpus_has_every_kind_of_case() -> None:
    kinds = {kind for _, kind in EDIT_CASES}
    assert kinds == {"memory", "memnode"} and len(CASES) >= 30
    assert any(_auto_placed(c) for c in CASES)
    assert any(b"<!--" in (GUESTS / f"{c}-in.xml").read_bytes() for c in CASES)
    assert any(b"nova:" in (GUESTS / f"{c}-in.xml").read_bytes() for c in CASES)
    assert any(b"<hugepages" in (GUESTS / f"{c}-in.xml").read_bytes() for c in CASES)
    assert any(b"<numatune" not in (GUESTS / f"{c}-in.xml").read_bytes() for c in CASES)


@pytest.mark.parametrize(("case", "kind"), EDIT_CASES)
def test_only_numatune_changes(case: str, kind: str) -> None:
    old, new, _ = _edited(case, kind)
    assert new != old
    new_span = _numatune_bytes(new)
    assert new_span is not None
    old_span = _numatune_bytes(old)
    if old_span is not None:
        # byte-exact outside the element
        assert new[:new_span[0]] == old[:old_span[0]]
        assert new[new_span[1]:] == old[old_span[1]:]
    else:
        # created: removing the new element's lines gives back the old bytes exactly
        line_start = new.rfind(b"\n", 0, new_span[0])
        assert new[:line_start] + new[new_span[1]:] == old
    # every removed/added line of the diff lies inside the element's line range
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    old_lines = _line_range(old, old_span) if old_span else range(0)
    new_lines = _line_range(new, new_span)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        assert all(i in old_lines for i in range(i1, i2)), (case, tag, a[i1:i2])
        assert all(j in new_lines for j in range(j1, j2)), (case, tag, b[j1:j2])


@pytest.mark.parametrize(("case", "kind"), EDIT_CASES)
def test_edit_reads_back(case: str, kind: str) -> None:
    _, new, edit = _edited(case, kind)
    g = extract_guest(DomainDocument(new, path=f"{case} edited"))
    if kind == "memory":
        assert g.policy is not None and g.policy.mode.value == edit.mode
        assert not g.policy.implicit_mode
        if edit.nodeset is not None:
            assert g.policy.placement is Placement.STATIC and g.policy.nodeset == edit.nodeset
    else:
        (m,) = edit.memnodes
        cell = next(c for c in g.cells if c.id == m.cellid)
        assert cell.policy is not None and cell.policy.mode.value == m.mode
        assert cell.policy.nodeset == m.nodeset
    # never leave strict implicit
    for p in (g.policy, *(c.policy for c in g.cells)):
        assert p is None or not p.implicit_mode


@pytest.mark.parametrize("case", [c for c in CASES if _auto_placed(c)])
def test_placement_auto_refuses_a_nodeset(case: str) -> None:
    path = GUESTS / f"{case}-in.xml"
    with pytest.raises(ParseError, match="placement 'auto'"):
        edit_numatune(DomainDocument(path.read_bytes()), NumatuneEdit("interleave",
                                                                      frozenset({0})))


@pytest.mark.parametrize("path", ALL_VALID_XML, ids=lambda p: p.name)
def test_no_change_is_byte_identical(path: Path) -> None:
    data = path.read_bytes()
    assert edit_numatune(DomainDocument(data), NumatuneEdit()) == data


def test_cli_same_policy_is_byte_identical(tmp_path: Path, capsysbinary) -> None:
    # an explicit edit to what the file already says: --xml prints the very same bytes
    src = GUESTS / "mode-strict-in.xml"
    snap = tmp_path / "snap"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "article-host", snap)
    code = main(["fix", str(src), "--mode", "strict", "--nodeset", "1", "--xml",
                 "--host", str(snap)])
    out, err = capsysbinary.readouterr()
    assert code == 0
    assert out == src.read_bytes()
    assert b"no change" in err


# -- libvirt's schema --------------------------------------------------------------------------

def _virt_xml_validate() -> str:
    exe = shutil.which("virt-xml-validate")
    if exe is None:
        pytest.skip("virt-xml-validate not installed (Debian package libvirt-clients; "
                    "`make test` installs it)")
    return exe


@pytest.mark.parametrize(("case", "kind"), EDIT_CASES)
def test_edited_xml_is_schema_valid(case: str, kind: str, tmp_path: Path) -> None:
    exe = _virt_xml_validate()
    _, new, _ = _edited(case, kind)
    out = tmp_path / f"{case}-{kind}.xml"
    out.write_bytes(new)
    proc = subprocess.run([exe, str(out), "domain"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
