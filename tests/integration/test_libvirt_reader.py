"""LibvirtReader against libvirt's test driver (``test:///default``, in-process, no daemon) and
against URIs that cannot be reached.

``test:///default`` shows what the one-node host here cannot: two host cells (2 GiB with CPUs
0-7, 4 GiB with CPUs 8-15; no distances) and one running persistent domain ``test``.  Its
``getCellsFreeMemory`` returns each cell's *total* in KiB, where the API promises free memory in
bytes (``testNodeGetCellsFreeMemory``, src/test/test_driver.c, copies ``cells[i].mem``); the
reader follows the API, and ``test_free_memory_is_taken_as_bytes`` pins the driver's difference.
All domains defined or started here live only in this process's test-driver state and are
removed again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import NAMESPACE_DNS, uuid5

import pytest

from numaguard.model.policy import MemoryMode
from numaguard.readers.libvirt_api import DomainVanished, LibvirtError, LibvirtReader

pytestmark = pytest.mark.libvirt

libvirt = pytest.importorskip(
    "libvirt", reason="libvirt-python is not usable; `make test` installs it (pip install "
    "libvirt-python, which needs libvirt-dev and pkg-config)")

URI = "test:///default"
INVALID = Path(__file__).resolve().parent.parent / "fixtures" / "xml" / "invalid"


def _domain(name: str, mode: str = "strict", nodeset: str = "0") -> str:
    uuid = uuid5(NAMESPACE_DNS, name)       # the same per name: a redefinition replaces it
    return f"""<domain type='test'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <numatune><memory mode='{mode}' nodeset='{nodeset}'/></numatune>
  <os><type arch='x86_64'>hvm</type></os>
</domain>
"""


@pytest.fixture
def reader() -> Iterator[LibvirtReader]:
    with LibvirtReader(URI) as r:
        before = {d.name() for d in r.conn.listAllDomains(0)}
        yield r
        for dom in r.conn.listAllDomains(0):
            if dom.name() in before:
                continue
            persistent = dom.isPersistent()
            if dom.isActive():
                dom.destroy()
            if persistent:
                dom.undefine()


def test_two_cells_with_cpus_and_distances(reader: LibvirtReader) -> None:
    inv = reader.read()
    assert [(n.id, n.mem_total, sorted(n.cpus)) for n in inv.host.nodes] == [
        (0, 2 * 1024**3, list(range(8))), (1, 4 * 1024**3, list(range(8, 16)))]
    # the test driver's capabilities list no <distances> and two empty hugepage pools per cell
    assert inv.host.distances is None
    assert [sorted(h.size for h in n.hugepages) for n in inv.host.nodes] == [
        [2 * 1024**2, 1024**3]] * 2
    assert (inv.uri, inv.origin, inv.live) == (URI, URI, True)


def test_free_memory_is_taken_as_bytes(reader: LibvirtReader) -> None:
    inv = reader.read()
    assert inv.facts.free_bytes is not None
    totals = {n.id: n.mem_total for n in inv.host.nodes}
    # The test driver's difference: "free" is each cell's total, and in KiB, not bytes.  The
    # reader keeps the number as the API defines it (bytes), so here it is 1/1024 of the total.
    assert inv.facts.free_bytes == tuple((i, totals[i] // 1024) for i in sorted(totals))


def test_domains_running_shut_off_and_transient(reader: LibvirtReader) -> None:
    reader.conn.defineXML(_domain("ng-off", "preferred"))
    reader.conn.createXML(_domain("ng-transient", "interleave"), 0)
    inv = reader.read()
    assert sorted(g.name for g in inv.guests) == ["ng-off", "ng-transient", "test"]
    assert inv.running == frozenset({"test", "ng-transient"})
    assert sorted(g.name for g in inv.live_guests) == ["ng-transient", "test"]
    assert inv.live_guest("ng-off") is None
    # the transient domain has no persistent definition: its live one stands for both
    transient = inv.guest("ng-transient")
    assert transient is not None and transient.policy is not None
    assert transient.policy.mode is MemoryMode.INTERLEAVE
    assert inv.live_guest("ng-transient") == transient
    off = inv.guest("ng-off")
    assert off is not None and off.policy is not None and off.policy.mode is MemoryMode.PREFERRED
    assert off.source == f"{URI} domain ng-off"
    # test:///default's own domain started first (ID 1), the transient one later
    assert inv.start_order == ("test", "ng-transient")
    assert inv.complete and inv.notes == ()

    xmls = {d.name: d for d in reader.domain_xmls()}
    assert xmls["ng-off"].live is None and not xmls["ng-off"].running
    assert xmls["ng-transient"].transient and xmls["ng-transient"].persistent == \
        xmls["ng-transient"].live
    assert reader.read_domain_xml("ng-off") == xmls["ng-off"]


def test_live_and_persistent_definitions_differ(reader: LibvirtReader) -> None:
    dom = reader.conn.defineXML(_domain("ng-pending", "strict"))
    dom.create()
    reader.conn.defineXML(_domain("ng-pending", "preferred"))  # the next boot's definition
    inv = reader.read()
    persistent, live = inv.guest("ng-pending"), inv.live_guest("ng-pending")
    assert persistent is not None and live is not None
    assert persistent.policy is not None and live.policy is not None
    assert (persistent.policy.mode, live.policy.mode) == (MemoryMode.PREFERRED,
                                                         MemoryMode.STRICT)
    assert live.source == f"{URI} domain ng-pending live XML"


def test_domain_undefined_after_listing_is_skipped_with_a_note(reader: LibvirtReader) -> None:
    dom = reader.conn.defineXML(_domain("ng-gone"))
    listed = reader.list_domains()
    dom.undefine()
    (handle,) = [d for d in listed if d.name() == "ng-gone"]
    with pytest.raises(DomainVanished, match="ng-gone"):
        reader.read_domain(handle)
    inv = reader.inventory(listed)
    assert inv.notes == (f"{URI}: domain ng-gone vanished while being read; skipped",)
    assert inv.guest("ng-gone") is None and inv.guest("test") is not None
    assert inv.complete


def test_unreadable_domain_is_a_problem_and_the_others_are_read(reader: LibvirtReader) -> None:
    # The test driver accepts <vcpu current='0'>, which numaguard (like the qemu driver) refuses.
    reader.conn.defineXML((INVALID / "vcpu-current-zero.xml").read_text())
    reader.conn.defineXML(_domain("ng-fine"))
    inv = reader.read()
    assert not inv.complete
    (problem,) = inv.problems
    assert problem.where == f"{URI} domain vcpu70"
    assert "vcpu" in problem.message and "\n" not in problem.message
    assert str(problem).startswith(f"{URI} domain vcpu70: ")
    assert sorted(g.name for g in inv.guests) == ["ng-fine", "test"]


@pytest.mark.parametrize("uri", ["qemu+tcp://127.0.0.1:1/system",
                                 "qemu:///system?socket=/nonexistent/libvirt-sock",
                                 "nosuchdriver:///x"])
def test_unreachable_uri_is_one_line_naming_it(uri: str) -> None:
    with pytest.raises(LibvirtError) as caught:
        LibvirtReader(uri)
    message = str(caught.value)
    assert message.startswith(f"{uri}: ") and "\n" not in message
    assert len(message) > len(uri) + 2


def test_a_remote_uri_takes_each_nodes_free_memory_from_libvirt():
    """LibvirtSource: the capabilities carry no free memory; getCellsFreeMemory's goes into
    each node (as bytes, as the API promises — the test driver returns KiB totals, see
    test_free_memory_is_taken_as_bytes)."""
    from numaguard.readers.sources import LibvirtSource, is_this_machine

    assert not is_this_machine("test:///default")
    assert is_this_machine("qemu:///system") and is_this_machine("qemu+unix:///session")
    assert not is_this_machine("qemu+ssh://hv07/system")
    inv = LibvirtSource("test:///default").read()
    free = dict(inv.facts.free_bytes)
    assert [n.mem_free for n in inv.host.nodes] == [free[n.id] for n in inv.host.nodes]
