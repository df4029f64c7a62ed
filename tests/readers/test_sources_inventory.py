"""readers/sources.py: every SOURCE becomes an Inventory through one Source interface."""

import os
import pathlib
import shutil

import pytest

from numaguard.errors import InvalidDocument, SourceError
from numaguard.model.inventory import Inventory
from numaguard.readers.sources import (
    SYSTEM_URI,
    LibvirtSource,
    LocalSource,
    PathSource,
    default_uri,
    open_source,
    read_paths,
)

ARTICLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "article-host"
NAMES = ["bigmem-preferred", "db-hugepages", "vm1", "web-interleave"]


def test_a_snapshot_is_one_inventory_with_its_facts():
    inv = PathSource([str(ARTICLE)]).read()
    assert isinstance(inv, Inventory) and inv.complete
    assert sorted(g.name for g in inv.guests) == NAMES
    assert inv.host_source == str(ARTICLE) and inv.origin == str(ARTICLE)
    assert not inv.live and inv.uri is None and inv.running is None
    assert inv.facts.kernel_release is not None


def test_a_broken_domain_in_a_folder_is_a_problem_and_the_others_are_read(tmp_path):
    snap = tmp_path / "snap"
    shutil.copytree(ARTICLE, snap, symlinks=True)
    (snap / "domains" / "broken.xml").write_text("<domain><name>x</name><memory>lots")
    inv = read_paths([str(snap)])
    assert sorted(g.name for g in inv.guests) == NAMES
    assert not inv.complete and len(inv.problems) == 1
    (problem,) = inv.problems
    assert problem.where == str(snap / "domains" / "broken.xml")
    assert str(problem).startswith(f"{snap / 'domains' / 'broken.xml'}:")


def test_a_broken_domain_named_on_its_own_is_still_an_error(tmp_path):
    bad = tmp_path / "broken.xml"
    bad.write_text("<domain><name>x</name><memory>lots")
    with pytest.raises(InvalidDocument, match="broken.xml"):
        read_paths([str(ARTICLE / "host"), str(bad)])


@pytest.mark.parametrize(("environ", "sockets", "want"), [
    ({"LIBVIRT_DEFAULT_URI": "test:///default"}, (), "test:///default"),
    ({}, ("{tmp}/sock",), SYSTEM_URI),
    ({}, ("{tmp}/none",), None),
    ({"LIBVIRT_DEFAULT_URI": ""}, ("{tmp}/none",), None),
])
def test_the_default_source(tmp_path, environ, sockets, want):
    (tmp_path / "sock").touch()
    sockets = tuple(s.format(tmp=tmp_path) for s in sockets)
    if want == SYSTEM_URI:
        pytest.importorskip("libvirt")
    assert default_uri(environ, sockets) == want


def test_open_source_picks_by_what_is_given(monkeypatch):
    assert isinstance(open_source([str(ARTICLE)]), PathSource)
    src = open_source((), "test:///default")
    assert isinstance(src, LibvirtSource) and src.uri == "test:///default"
    monkeypatch.setattr("numaguard.readers.sources.default_uri", lambda environ: None)
    assert isinstance(open_source(()), LocalSource)
    with pytest.raises(SourceError, match="not both"):
        open_source([str(ARTICLE)], "test:///default")


def test_sources_read_again_each_time(tmp_path):
    snap = tmp_path / "snap"
    shutil.copytree(ARTICLE, snap, symlinks=True)
    source = PathSource([str(snap)])
    first = source.read()
    os.remove(snap / "domains" / "vm1.xml")
    assert len(source.read().guests) == len(first.guests) - 1
