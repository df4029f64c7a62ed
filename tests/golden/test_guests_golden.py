"""Golden corpus for `numaguard guests` (virtinst style: input XML / expected output pairs).

* ``tests/fixtures/xml/guests/<case>-in.xml`` is a domain libvirt accepts; ``<case>-out.json`` is
  what ``numaguard guests <case>-in.xml --format json`` prints, without each guest's ``source``
  key (a path; checked separately) and the ``schema_version``/``numaguard_version`` keys.
* ``tests/fixtures/xml/invalid/<case>.xml`` is a domain libvirt rejects; ``<case>.err`` is the
  exact stderr of ``numaguard guests <case>.xml`` (exit code 2), one problem per line.

Both run the real CLI in-process from inside the fixture folder, so the paths in the output are
the bare file names, exactly as ``cd tests/fixtures/xml/invalid && numaguard guests X.xml``
prints them.  ``UPDATE_GOLDEN=1 pytest tests/golden`` rewrites the .json/.err files from the
current output: check every changed value against libvirt's rules before committing it (see
README.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from numaguard.cli import main
from numaguard.domxml.document import DomainDocument
from numaguard.errors import ParseError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "xml"
GUESTS = FIXTURES / "guests"
INVALID = FIXTURES / "invalid"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

VALID_CASES = sorted(p.name[: -len("-in.xml")] for p in GUESTS.glob("*-in.xml"))
INVALID_CASES = sorted(p.stem for p in INVALID.glob("*.xml"))
ALL_XML = sorted(FIXTURES.rglob("*.xml"))


def _run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, folder: Path,
         name: str) -> tuple[int, str, str]:
    monkeypatch.chdir(folder)
    capsys.readouterr()
    code = main(["guests", name, "--format", "json"])
    out, err = capsys.readouterr()
    return code, out, err


def _without_source(doc: dict, expected_source: str) -> dict:
    """*doc* without the paths and the version keys (checked here, not pinned in the files)."""
    from numaguard import __version__

    assert list(doc)[:2] == ["schema_version", "numaguard_version"]
    assert (doc.pop("schema_version"), doc.pop("numaguard_version")) == (1, __version__)
    for guest in doc["guests"]:
        assert guest.pop("source") == expected_source
    return doc


def _dumps(doc: dict) -> str:
    return json.dumps(doc, indent=2) + "\n"


def test_corpus_is_complete() -> None:
    assert len(VALID_CASES) >= 30 and len(INVALID_CASES) >= 28
    stray = {p.name for p in GUESTS.iterdir()} - {
        f"{c}{suffix}" for c in VALID_CASES for suffix in ("-in.xml", "-out.json")}
    stray |= {p.name for p in INVALID.iterdir()} - {
        f"{c}{suffix}" for c in INVALID_CASES for suffix in (".xml", ".err")}
    assert not stray, f"files without a partner: {sorted(stray)}"


@pytest.mark.parametrize("case", VALID_CASES)
def test_valid_guest(case: str, capsys: pytest.CaptureFixture[str],
                     monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"{case}-in.xml"
    code, out, err = _run(capsys, monkeypatch, GUESTS, name)
    assert (code, err) == (0, ""), err
    actual = _dumps(_without_source(json.loads(out), name))
    expected_path = GUESTS / f"{case}-out.json"
    if UPDATE:
        expected_path.write_text(actual)
    assert actual == expected_path.read_text()


@pytest.mark.parametrize("case", INVALID_CASES)
def test_invalid_guest(case: str, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _run(capsys, monkeypatch, INVALID, f"{case}.xml")
    assert (code, out) == (2, "")
    expected_path = INVALID / f"{case}.err"
    if UPDATE:
        expected_path.write_text(err)
    assert err == expected_path.read_text()
    assert all(line.startswith(f"numaguard guests: {case}.xml:") for line in err.splitlines())


def _document_level_error(path: Path) -> bool:
    """An invalid fixture refused before there is a <domain> tree (bad XML, DTD, wrong root)."""
    if path.parent != INVALID:
        return False
    err = (INVALID / f"{path.stem}.err").read_text()
    fields = {line.split(": ")[2] for line in err.splitlines()}
    return fields <= {"xml", "domain"}


@pytest.mark.parametrize("path", ALL_XML, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_round_trip_is_byte_identical(path: Path) -> None:
    data = path.read_bytes()
    if _document_level_error(path):
        with pytest.raises(ParseError):
            DomainDocument(data, path=path.name)
        return
    assert DomainDocument(data, path=path.name).to_bytes() == data
