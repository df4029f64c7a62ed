"""Reading folders of domain XMLs: the listing, its real-path keys, the stat-less read of files
the listing shows regular, and the extraction's shared memo of parsed values (issue 11)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from numaguard.domxml.document import DomainDocument
from numaguard.domxml.extract import extract_guest
from numaguard.errors import InvalidDocument, SourceError
from numaguard.readers import domains
from numaguard.readers.files import read_bytes, read_listed_bytes
from numaguard.readers.sources import read_paths

ARTICLE = Path(__file__).resolve().parents[2] / "examples" / "article-host"
VM1 = ARTICLE / "domains" / "vm1.xml"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """a.xml (a file), b.xml (a link to it), c.xml (a link out of the folder), fifo.xml,
    dir.xml/ (a folder: not listed), notes.txt (not XML), through a linked folder path."""
    real = tmp_path / "real"
    real.mkdir()
    shutil.copy(VM1, real / "a.xml")
    (real / "b.xml").symlink_to("a.xml")
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(VM1, other / "c.xml")
    (real / "c.xml").symlink_to(other / "c.xml")
    os.mkfifo(real / "fifo.xml")
    (real / "dir.xml").mkdir()
    (real / "notes.txt").write_text("x")
    alias = tmp_path / "alias"
    alias.symlink_to(real)
    return alias


def test_listing_keys_are_realpaths_and_only_plain_files_are_plain(folder: Path) -> None:
    listed = domains.list_domain_files_keyed(str(folder))
    assert [os.path.basename(f.path) for f in listed] == ["a.xml", "b.xml", "c.xml", "fifo.xml"]
    for f in listed:
        assert f.path == str(folder / os.path.basename(f.path))
        assert f.real == os.path.realpath(f.path)
    assert {os.path.basename(f.path): f.plain for f in listed} == {
        "a.xml": True, "b.xml": False, "c.xml": False, "fifo.xml": False}
    assert domains.list_domain_files(str(folder)) == [f.path for f in listed]


def test_listing_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such directory"):
        domains.list_domain_files_keyed(str(tmp_path / "missing"))
    (tmp_path / "file").write_text("")
    with pytest.raises(SourceError, match="not a directory"):
        domains.list_domain_files_keyed(str(tmp_path / "file"))


def test_a_file_named_twice_counts_once(tmp_path: Path) -> None:
    """A link beside the file it names, and the file named again as a SOURCE of its own, are
    one guest (libvirt would refuse two definitions of one name)."""
    snap = tmp_path / "snap"
    shutil.copytree(ARTICLE, snap, symlinks=True)
    (snap / "domains" / "alias.xml").symlink_to("vm1.xml")
    plain = read_paths([str(ARTICLE)])
    twice = read_paths([str(snap), str(snap / "domains" / "vm1.xml")])
    assert sorted(g.name for g in twice.guests) == sorted(g.name for g in plain.guests)
    # the first name it was reached by is kept (the listing is sorted: alias.xml)
    assert {g.name: g.source for g in twice.guests}["vm1"] == str(snap / "domains" / "alias.xml")


def test_a_second_file_with_the_same_name_is_still_an_error(tmp_path: Path) -> None:
    snap = tmp_path / "snap"
    shutil.copytree(ARTICLE, snap, symlinks=True)
    shutil.copy(snap / "domains" / "vm1.xml", snap / "domains" / "copy.xml")
    with pytest.raises(SourceError, match="guest name 'vm1' is also defined in"):
        read_paths([str(snap)])


def _outcome(read, path: str) -> object:
    try:
        return read(path)
    except SourceError as exc:
        return str(exc)


def test_listed_read_is_read_bytes_whatever_the_file_became(tmp_path: Path) -> None:
    """Listed as a regular file, then replaced: the stat-less read gives what read_bytes gives
    (content, or the same one-line refusal), and a FIFO never blocks it."""
    path = tmp_path / "vm.xml"
    shutil.copy(VM1, path)
    assert read_listed_bytes(str(path)) == read_bytes(str(path)) == VM1.read_bytes()
    path.unlink()
    path.symlink_to(VM1)  # a link put in its place is followed only through read_bytes
    assert read_listed_bytes(str(path)) == VM1.read_bytes()
    for make in (lambda: os.mkfifo(path), lambda: path.symlink_to("/dev/zero"),
                 lambda: path.symlink_to(tmp_path / "gone"), lambda: path.mkdir(), lambda: None):
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        elif path.exists() or path.is_symlink():
            path.unlink()
        make()
        expected = _outcome(read_bytes, str(path))
        assert isinstance(expected, str) and str(path) in expected
        assert _outcome(read_listed_bytes, str(path)) == expected


def test_listed_read_keeps_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(b"x" * 2000)
    with pytest.raises(SourceError, match="larger than"):
        read_listed_bytes(str(path), limit=1000)


def test_folder_with_a_fifo_names_it_and_reads_the_rest(folder: Path) -> None:
    with pytest.raises(InvalidDocument) as exc:
        domains.read_domain_dir(str(folder))
    (line,) = str(exc.value).splitlines()
    assert line.startswith(f"{folder / 'fifo.xml'}: is a FIFO") and "refusing" in line


# -- the shared memo of parsed cpusets, nodesets and sizes ---------------------------------------

def _guest(text: str, path: str = "vm.xml"):
    return extract_guest(DomainDocument(text.encode(), path=path))


def _domain(name: str, cpuset: str, nodeset: str, memory: str = "4", unit: str = "GiB") -> str:
    return (f"<domain type='kvm'><name>{name}</name>"
            f"<memory unit='{unit}'>{memory}</memory>"
            f"<vcpu placement='static' cpuset='{cpuset}'>2</vcpu>"
            f"<numatune><memory mode='strict' nodeset='{nodeset}'/></numatune></domain>")


def test_memoised_values_are_the_parsed_values() -> None:
    first = _guest(_domain("a", "0-3,^2", "1"))
    again = _guest(_domain("b", "0-3,^2", "1"))
    assert first.cpuset == again.cpuset == frozenset({0, 1, 3})
    assert first.memory == again.memory == 4 * 1024**3
    assert first.policy == again.policy and again.policy.nodeset == frozenset({1})
    # the same digits in another unit are another size
    assert _guest(_domain("c", "0-3,^2", "1", unit="MiB")).memory == 4 * 1024**2


def test_invalid_values_are_reported_by_every_document() -> None:
    """Only valid values are kept: each document with a bad one says so, at its own line."""
    for name in ("a", "b"):
        with pytest.raises(InvalidDocument) as exc:
            _guest(_domain(name, "0-3,x", "1", memory="lots"), path=f"{name}.xml")
        text = str(exc.value)
        assert f"{name}.xml:1: vcpu/@cpuset" in text and f"{name}.xml:1: memory" in text
    with pytest.raises(InvalidDocument, match="unknown unit"):
        _guest(_domain("c", "0", "1", unit="parsecs"))


def test_the_member_budget_still_counts_memoised_sets() -> None:
    """Sets memoised from an earlier document still count against this document's budget."""
    from numaguard.limits import MAX_BITMAP_MEMBERS

    width = 1024  # small enough to be memoised
    pins = MAX_BITMAP_MEMBERS // width + 2
    text = (f"<domain><name>w</name><memory unit='GiB'>4</memory><vcpu>{pins}</vcpu><cputune>"
            + "".join(f"<vcpupin vcpu='{v}' cpuset='{v}-{v + width - 1}'/>" for v in range(pins))
            + "</cputune></domain>")
    for _ in range(2):
        with pytest.raises(InvalidDocument, match=f"more than {MAX_BITMAP_MEMBERS}"):
            _guest(text)


def test_many_hugepage_pages_are_one_problem_each_not_one_per_pair():
    """Each page is checked against what the pages before it claimed: 60 pages without
    nodeset are 59 problems (a pairwise check made 1,770; a fuzzed file with ~3,700 pages made
    ~7 million and took seconds)."""
    pages = "".join(f"<page size='{2048 * (i + 1)}' unit='KiB'/>" for i in range(60))
    xml = (f"<domain type='kvm'><name>hp</name><memory unit='GiB'>4</memory><vcpu>2</vcpu>"
           f"<memoryBacking><hugepages>{pages}</hugepages></memoryBacking></domain>").encode()
    with pytest.raises(InvalidDocument) as exc:
        extract_guest(DomainDocument(xml, path="hp.xml"))
    found = [p for p in exc.value.problems if "two hugepage sizes" in p.reason]
    assert len(found) == 20 and str(exc.value).endswith("... and 39 more problems in this file")
