"""The live reader (readers/live.py, docs/live.md) on this machine, against guests of the real
libvirtd + QEMU (TCG), read the way ``numaguard top`` and ``numaguard exporter`` read them.

Gated like tests/integration/test_libvirtd.py (``NUMAGUARD_LIBVIRTD=1`` every test,
``=bounded`` the one not marked ``full_only``, < 20 s; root, libvirtd, QEMU): the daemon is
started by :mod:`tests.support.libvirtd` (or a running one is used) and stopped by its PID
afterwards; the guests are ``ngtest-…``, each destroyed by the test or fixture that started it.

The guests (:data:`tests.support.capture_live.GUESTS`, the ones of the captured
tests/fixtures/live/v1-libvirtd-1node): 64 MiB whose multiboot kernel
(tests/support/guestkernel.py) touches 40 MiB, 256 MiB touching 200 MiB, 128 MiB with
``<allocation mode='immediate'/>``.  For each: the PID is the one in
``/run/libvirt/qemu/NAME.pid``, and the per-node bytes of its cgroup (v1 here:
``hierarchical_anon`` + ``hierarchical_unevictable`` pages × 4096) equal what
``/proc/PID/numa_maps`` of the same process, read right after, says it holds (docs/live.md's
count: anonymous, heap, stack and shared-memory mappings whole, other file mappings by their
``anon=`` pages) within max(1 %, 4 MiB).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from numaguard.model.inventory import Inventory
from numaguard.model.live import GuestLive, LiveState
from numaguard.model.topology import Host
from numaguard.readers.live import parse_numa_maps, read_live, running_of
from numaguard.readers.sources import LibvirtSource, has_live_files, live_root, open_source
from numaguard.units import MiB
from tests.integration.test_libvirtd import MODE, URI, _read, _wait_for, full_only, n
from tests.integration.test_libvirtd_cli import numaguard
from tests.support import libvirtd
from tests.support.capture_live import GUESTS, _domain_xml
from tests.support.guestkernel import message, write_kernel

pytestmark = pytest.mark.libvirt
assert MODE in ("1", "bounded")
import libvirt  # noqa: E402  (after the skips of test_libvirtd)

from tests.integration import test_libvirtd as base  # noqa: E402

daemon = base.daemon      # the fixture: one daemon for the module, stopped by PID afterwards


def close(a: int, b: int) -> bool:
    return abs(a - b) <= max(0.01 * max(a, b), 4 * MiB)


class Guests:
    """Guests this test started (and only those: another run's ``ngtest-…`` are left alone)."""

    def __init__(self, conn: Any, tmp: Path) -> None:
        self.conn, self.tmp = conn, tmp
        self.doms: dict[str, Any] = {}
        self.serials: dict[str, tuple[Path, int]] = {}

    def start(self, name: str, memory_mib: int, touch: int | None = None,
              immediate: bool = False) -> Any:
        kernel = write_kernel(self.tmp / f"{name}.bin", touch) if touch else None
        serial = self.tmp / f"{name}.log" if touch else None
        dom = self.conn.createXML(_domain_xml(name, memory_mib, kernel, serial, immediate), 0)
        self.doms[n(name)] = dom
        if serial is not None and touch is not None:
            self.serials[n(name)] = (serial, touch)
        return dom

    def wait(self) -> None:
        """Until every guest kernel has said it touched its memory (60 s each at most)."""
        for serial, touch in self.serials.values():
            _wait_for(lambda s=serial, t=touch: message(t) in _read(s), 60,  # type: ignore[misc]
                      f"{serial} never said {message(touch)!r}")

    def remove(self) -> None:
        for dom in self.doms.values():
            libvirtd.remove_guest(dom)


@pytest.fixture
def guests(daemon: libvirtd.Daemon, tmp_path: Path) -> Iterator[Guests]:
    conn = libvirt.open(URI)
    started = Guests(conn, tmp_path)
    try:
        yield started
    finally:
        started.remove()
        conn.close()


@pytest.fixture(scope="module")
def three(daemon: libvirtd.Daemon, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[dict[str, int]]:
    """The three guests of :data:`GUESTS`, running and done touching: name -> the MiB of guest
    RAM it holds (what its kernel touched, or all of it when allocated at start)."""
    conn = libvirt.open(URI)
    started = Guests(conn, tmp_path_factory.mktemp("live"))
    try:
        for name, mib, touch, immediate in GUESTS:
            started.start(name, mib, touch, immediate)
        started.wait()
        yield {n(name): touch or mib for name, mib, touch, _ in GUESTS}
    finally:
        started.remove()
        conn.close()


def read_as_the_cli(uri: str = URI) -> LiveState:
    """What ``numaguard top -c URI`` reads: the inventory through libvirt, the live state under
    :func:`live_root` for the guests libvirt says run (cli/top.py, cli/exporter.py)."""
    source = open_source((), uri)
    assert isinstance(source, LibvirtSource)
    inventory = source.read()
    root = live_root(source, inventory)
    assert root == "/" and has_live_files(root), root
    return read_live(root, running_of(inventory))


def numa_maps_of(pid: int) -> tuple[dict[int, int], dict[int, int]]:
    path = f"/proc/{pid}/numa_maps"
    return parse_numa_maps(Path(path).read_text(), path)


def check_against_the_host(g: GuestLive, dom: Any) -> None:
    """*g* has the PID of libvirt's pid file, the cgroup libvirt made for *dom*, and per node
    the bytes numa_maps of that process shows (read now, right after)."""
    assert g.error is None, g.error
    pid_file = Path(f"/run/libvirt/qemu/{g.name}.pid")
    assert g.pid == int(pid_file.read_text()), (g.pid, pid_file.read_text())
    assert g.source in ("cgroup-v1", "cgroup-v2"), g.source      # the fast path, not numa_maps
    # libvirt without systemd: /machine/qemu-<id>-<name>.libvirt-qemu; with: machine-qemu…scope
    assert g.cgroup is not None and re.search(
        rf"/machine/qemu-{dom.ID()}-{re.escape(g.name)}\.libvirt-qemu$|"
        rf"machine-qemu\\x2d{dom.ID()}\\x2d.*\.scope$", g.cgroup), g.cgroup
    normal, huge = numa_maps_of(g.pid)
    assert huge == {} and g.hugepages_per_node == ()
    assert set(dict(g.per_node)) == set(normal), (g.per_node, normal)
    for node, held in g.per_node:
        assert close(held, normal[node]), (g.name, node, held, normal[node])


def test_only_the_system_driver_reads_this_machines_run_folder() -> None:
    """``/run/libvirt/qemu`` holds the system driver's pid files; the session driver's are in
    ``$XDG_RUNTIME_DIR/libvirt/qemu/run``: reading it for a session URI would take a system
    guest of the same name for the session one (readers/sources.live_root)."""
    inventory = Inventory(Host(nodes=()), ())
    for uri in ("qemu:///system", "qemu+unix:///system", "qemu:///system/",
                "qemu+unix:///system?socket=/run/libvirt/libvirt-sock"):
        assert live_root(LibvirtSource(uri), inventory) == "/", uri
    for uri in ("qemu:///session", "qemu+unix:///session", "qemu+ssh://host/system",
                "qemu:///embed?root=/tmp/x", "test:///default"):
        assert live_root(LibvirtSource(uri), inventory) is None, uri


def test_a_guest_destroyed_after_listing_is_its_error(guests: Guests) -> None:
    """The cheap one (``make test``): one guest read as top reads it, checked against its pid
    file and numa_maps; another destroyed between libvirt's listing and the read is that
    guest's ``error`` (its pid file is gone; with its PID given: the process is gone)."""
    stays = guests.start("lv-stays", 64, touch=40)
    gone = guests.start("lv-gone", 64)
    guests.wait()
    source = open_source((), URI)
    inventory = source.read()
    assert {n("lv-stays"), n("lv-gone")} <= (inventory.running or frozenset())
    root = live_root(source, inventory)
    assert root is not None
    pid = int(Path(f"/run/libvirt/qemu/{n('lv-gone')}.pid").read_text())
    gone.destroy()
    state = read_live(root, running_of(inventory))
    g = state.guest(n("lv-gone"))
    assert g is not None and g.per_node == () and g.error is not None
    assert g.error == f"/run/libvirt/qemu/{n('lv-gone')}.pid: no such file", g.error
    (by_pid,) = read_live(root, [(n("lv-gone"), pid)]).guests
    assert by_pid.error == (f"/proc/{pid}/cgroup: pid: no such process {pid} (the guest "
                            "stopped or the PID is stale)"), by_pid.error
    kept = state.guest(n("lv-stays"))
    assert kept is not None
    check_against_the_host(kept, stays)


@full_only
def test_every_guest_matches_its_pid_file_and_numa_maps(three: dict[str, int]) -> None:
    state = read_as_the_cli()
    conn = libvirt.open(URI)
    try:
        for name, ram_mib in three.items():
            g = state.guest(name)
            assert g is not None, [x.name for x in state.guests]
            check_against_the_host(g, conn.lookupByName(name))
            # guest RAM plus QEMU's own memory and firmware (reported, not subtracted)
            extra = g.resident - ram_mib * MiB
            assert 2 * MiB < extra < 24 * MiB, (name, extra / MiB)
    finally:
        conn.close()
    assert [node.id for node in state.nodes] == [0]     # one node here
    assert state.nodes[0].anon_pages >= sum(state.guest(x).resident for x in three)  # type: ignore[union-attr]


@full_only
def test_the_difference_between_two_guests_is_what_their_kernels_touched(
        three: dict[str, int]) -> None:
    """ngtest-live-b touched 200 MiB, ngtest-live-a 40: QEMU's own memory is about the same in
    both, so their figures differ by the 160 MiB between them."""
    state = read_as_the_cli()
    a, b = state.guest(n("live-a")), state.guest(n("live-b"))
    assert a is not None and b is not None
    difference = b.resident - a.resident
    assert abs(difference - 160 * MiB) < 4 * MiB, difference / MiB


def top_rows(text: str) -> dict[str, list[str]]:
    """The guest table of a ``top`` frame: name -> its other cells (Guest, MiB by node, MiB, …)."""
    rows = [[cell.strip() for cell in line.strip("│").split("│")]
            for line in text.splitlines() if line.startswith("│")]
    return {row[0]: row[1:] for row in rows}


@full_only
def test_top_shows_the_guests_with_their_mib(three: dict[str, int]) -> None:
    done = numaguard("top", "--once", "-c", URI)
    assert done.returncode == 0, done.stderr
    shown = top_rows(done.stdout)
    state = read_as_the_cli()
    for name in three:
        g = state.guest(name)
        assert g is not None and name in shown, done.stdout
        by_node, mib = shown[name][:2]
        total = int(mib.replace(",", ""))
        assert by_node == f"0:{total}", shown[name]          # one node
        assert close(total * MiB, g.resident), (name, total, g.resident / MiB)


@full_only
def test_the_exporter_textfile_holds_the_guests_memory(three: dict[str, int],
                                                       tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    path = tmp_path / "numaguard.prom"
    done = numaguard("exporter", "--textfile", str(path), "-c", URI)
    assert done.returncode == 0, done.stderr
    samples = {(s.name, s.labels.get("guest"), s.labels.get("node")): s.value
               for family in text_string_to_metric_families(path.read_text())
               for s in family.samples}
    state = read_as_the_cli()
    assert samples[("numaguard_scrape_success", None, None)] == 1
    for name in three:
        g = state.guest(name)
        assert g is not None
        assert samples[("numaguard_guest_read_error", name, None)] == 0
        exported = samples[("numaguard_guest_memory_bytes", name, "0")]
        assert close(int(exported), g.on(0)), (name, exported, g.on(0))
