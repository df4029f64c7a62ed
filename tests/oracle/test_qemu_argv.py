"""numaguard reads a domain XML as libvirt turns it into QEMU's memory layout.

For every recorded ``tests/oracle/qemu/argv/NAME.json`` (libvirt 9.0.0's ``virsh domxml-to-native
qemu-argv`` of ``tests/oracle/qemu/domains/NAME.xml``, recorded by ``python -m
tests.support.capture_argv``) the memory part of the argv, parsed by
:func:`numaguard.readers.qemu_argv.parse_qemu_argv`, must be what numaguard's own model of the same
XML (:func:`numaguard.readers.domains.read_domain_file` → :class:`Guest`) says it is: one backend
per guest cell (or ``pc.ram`` without guest NUMA) of the cell's size in bytes; the policy
``MemoryMode.qemu_policy`` (strict → bind, preferred → preferred, interleave → interleave) on the
nodeset as ``host-nodes``; restrictive and no ``<numatune>`` → neither (restrictive is cgroup
``cpuset.mems`` only); huge pages → a ``memory-backend-file`` on the hugetlbfs mount or a
``memory-backend-memfd`` with ``hugetlb``; ``prealloc`` exactly for huge pages or
``<allocation mode='immediate'>``, then through a ``thread-context`` bound to the host nodes.
The mappings are libvirt's ``qemuBuildMemoryBackendProps`` (src/qemu/qemu_command.c; see
docs/qemu-argv.md).

The model has no field for ``<allocation mode>`` or ``<memoryBacking><source type>``: those two are
read from the XML here (noted in docs/qemu-argv.md).

``NUMAGUARD_LIBVIRTD=1`` also re-runs domxml-to-native on the real libvirtd and checks that the
memory part of every recording is still what libvirt makes of its XML.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from numaguard.domxml.document import DomainDocument
from numaguard.errors import ParseError
from numaguard.model.guest import Guest, GuestCell, HugepageBacking
from numaguard.model.policy import MemoryMode, MemoryPolicy
from numaguard.readers.domains import read_domain_file
from numaguard.readers.qemu_argv import QemuMemoryLayout, parse_qemu_argv

ROOT = Path(__file__).resolve().parents[2]
QEMU_DIR = Path(__file__).resolve().parent / "qemu"
RECORDED = sorted((QEMU_DIR / "argv").glob("*.json"))
DOMAINS = sorted((QEMU_DIR / "domains").glob("*.xml"))
#: where tests/support/capture_argv.py mounts hugetlbfs for libvirtd (a file backend's mem-path
#: is <mount>/libvirt/qemu/<id>-<short name>)
HUGETLBFS = "/dev/hugepages/"

PolicyOf = Callable[[MemoryMode], "str | None"]


def _qemu_policy(mode: MemoryMode) -> str | None:
    return mode.qemu_policy


def load(path: Path) -> tuple[dict[str, object], QemuMemoryLayout, Guest, DomainDocument]:
    data = json.loads(path.read_text())
    argv = data["argv"]
    assert isinstance(argv, list)
    xml = ROOT / str(data["domain"])
    return data, parse_qemu_argv(argv), read_domain_file(str(xml)), \
        DomainDocument(xml.read_bytes(), path=str(xml))


def xml_facts(doc: DomainDocument) -> tuple[bool, str | None]:
    """(``<allocation mode='immediate'>``, ``<memoryBacking><source type>``) — not in Guest."""
    alloc = doc.root.find("memoryBacking/allocation")
    source = doc.root.find("memoryBacking/source")
    return (alloc is not None and alloc.get("mode") == "immediate",
            None if source is None else source.get("type"))


def _units(guest: Guest) -> list[tuple[GuestCell | None, int, MemoryPolicy | None, int | None]]:
    """(cell, bytes, policy, hugepage size or None) per piece of guest RAM."""
    if guest.cells:
        return [(c, c.memory, c.policy, c.hugepage_size) for c in guest.cells]
    page: HugepageBacking | None = guest.hugepages[0] if guest.hugepages else None
    return [(None, guest.memory, guest.policy,
             None if page is None else (page.size or 0))]


def mismatches(layout: QemuMemoryLayout, guest: Guest, *, immediate: bool,
               source: str | None, policy_of: PolicyOf = _qemu_policy) -> list[str]:
    """Every way *layout* differs from what the model of the same domain says."""
    bad: list[str] = []
    if layout.memory != guest.memory:
        bad.append(f"-m {layout.memory} != memory {guest.memory}")
    if layout.smp is None or layout.smp.cpus != guest.vcpus:
        bad.append(f"-smp {layout.smp} != {guest.vcpus} vCPUs")
    units = _units(guest)
    ram = layout.guest_ram()
    if len(ram) != len(units):
        return [*bad, f"{len(ram)} RAM backends != {len(units)} guest cells"]
    if guest.cells and [n.nodeid for n in layout.numa_nodes] != [c.id for c in guest.cells]:
        bad.append(f"-numa nodeids {[n.nodeid for n in layout.numa_nodes]}")
    for (cell, size, policy, page), backend in zip(units, ram, strict=True):
        where = f"{backend.id}"
        if cell is not None:
            node = next(n for n in layout.numa_nodes if n.memdev == backend.id)
            if node.cpus != cell.cpus:
                bad.append(f"{where}: cpus {sorted(node.cpus)} != {sorted(cell.cpus)}")
        if backend.size != size:
            bad.append(f"{where}: size {backend.size} != {size}")
        qpolicy = None if policy is None else policy_of(policy.mode)
        want_nodes = None if qpolicy is None or policy is None else policy.nodeset
        if (backend.policy, backend.host_nodes) != (qpolicy or "default", want_nodes):
            bad.append(f"{where}: policy {backend.policy} on {backend.host_nodes} != "
                       f"{qpolicy or 'default'} on {want_nodes}")
        want_type = ("memory-backend-ram" if page is None
                     else "memory-backend-memfd" if source == "memfd" else "memory-backend-file")
        if backend.qom_type != want_type:
            bad.append(f"{where}: {backend.qom_type} != {want_type}")
        elif page is not None and backend.qom_type == "memory-backend-memfd":
            if not backend.hugetlb or (page and backend.hugetlbsize != page):
                bad.append(f"{where}: hugetlb {backend.hugetlb} {backend.hugetlbsize} != {page}")
        elif page is not None and not (backend.mem_path or "").startswith(HUGETLBFS):
            bad.append(f"{where}: mem-path {backend.mem_path} is not on {HUGETLBFS}")
        want_prealloc = page is not None or immediate
        if backend.prealloc != want_prealloc:
            bad.append(f"{where}: prealloc {backend.prealloc} != {want_prealloc}")
        context = (None if backend.prealloc_context is None
                   else layout.thread_context(backend.prealloc_context))
        if want_prealloc and want_nodes is not None:
            if context is None or context.node_affinity != want_nodes:
                bad.append(f"{where}: prealloc-context {context} not bound to {want_nodes}")
        elif backend.prealloc_context is not None:
            bad.append(f"{where}: unexpected prealloc-context {backend.prealloc_context}")
    return bad


def test_every_domain_is_recorded() -> None:
    assert DOMAINS and [p.stem for p in RECORDED] == [p.stem for p in DOMAINS]


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_argv_matches_the_model(path: Path) -> None:
    data, layout, guest, doc = load(path)
    immediate, source = xml_facts(doc)
    assert (data["libvirt_version"], data["argv"][0]) == ("9.0.0", "/usr/bin/qemu-system-x86_64")
    assert layout.guest_ram(), "every libvirt 9 guest has a RAM backend"
    assert mismatches(layout, guest, immediate=immediate, source=source) == []


def test_the_recordings_cover_each_case() -> None:
    """The set says what the issue asks for: each QEMU policy, no policy, two cells with
    different policies, both huge page backends, prealloc through a thread-context."""
    layouts = {p.stem: load(p)[1] for p in RECORDED}
    policies = {b.policy for lay in layouts.values() for b in lay.guest_ram()}
    assert policies == {"bind", "preferred", "interleave", "default"}
    cells = layouts["memnodes"].guest_ram()
    assert [b.policy for b in cells] == ["bind", "interleave"]
    assert {b.qom_type for lay in layouts.values() for b in lay.guest_ram()} == {
        "memory-backend-ram", "memory-backend-file", "memory-backend-memfd"}
    assert [n for n, lay in layouts.items() if any(b.prealloc for b in lay.guest_ram())] == [
        "hugepages-memfd", "hugepages-preferred", "hugepages", "immediate",
        "memnodes-immediate"]
    # one thread-context per prealloc'd cell, each bound to that cell's host nodes
    assert [t.id for t in layouts["memnodes-immediate"].thread_contexts] == [
        "tc-ram-node0", "tc-ram-node1"]
    # vCPU/emulator pinning is not on QEMU's command line (libvirt sets the affinities itself)
    assert layouts["pinned"].guest_ram() == layouts["strict"].guest_ram()


def _shift(mode: MemoryMode) -> str | None:
    return {"strict": "preferred", "preferred": "bind"}.get(mode.value, mode.qemu_policy)


def _restrictive_as_bind(mode: MemoryMode) -> str | None:
    return "bind" if mode is MemoryMode.RESTRICTIVE else mode.qemu_policy


def _with_policy(guest: Guest, **changes: object) -> Guest:
    assert guest.policy is not None
    return dataclasses.replace(guest, policy=dataclasses.replace(guest.policy, **changes))


MUTATIONS: dict[str, tuple[str, Callable[[Guest], Guest], PolicyOf, str]] = {
    "strict maps to preferred": ("strict", lambda g: g, _shift, "policy bind"),
    "preferred maps to bind": ("preferred", lambda g: g, _shift, "policy preferred"),
    "restrictive gets a policy": ("restrictive", lambda g: g, _restrictive_as_bind,
                                  "policy default"),
    "nodeset 1 instead of 0": ("strict", lambda g: _with_policy(g, nodeset=frozenset({1})),
                               _qemu_policy, "on frozenset({1})"),
    "interleave read as strict": ("interleave",
                                  lambda g: _with_policy(g, mode=MemoryMode.STRICT),
                                  _qemu_policy, "policy interleave"),
    "a MiB more memory": ("strict", lambda g: dataclasses.replace(g, memory=g.memory + 2**20),
                          _qemu_policy, "size"),
    "cell 1 without its memnode": (
        "memnodes", lambda g: dataclasses.replace(g, cells=(g.cells[0], dataclasses.replace(
            g.cells[1], policy=g.policy))), _qemu_policy, "ram-node1: policy interleave"),
    "cells swapped": ("memnodes", lambda g: dataclasses.replace(g, cells=g.cells[::-1]),
                      _qemu_policy, "-numa nodeids"),
    "hugepages dropped": ("hugepages", lambda g: dataclasses.replace(g, hugepages=()),
                          _qemu_policy, "memory-backend-file != memory-backend-ram"),
    "one vCPU more": ("pinned", lambda g: dataclasses.replace(g, vcpus=g.vcpus + 1),
                      _qemu_policy, "-smp"),
}


@pytest.mark.parametrize("name", MUTATIONS)
def test_a_wrong_mapping_fails(name: str) -> None:
    stem, mutate, policy_of, expected = MUTATIONS[name]
    _, layout, guest, doc = load(QEMU_DIR / "argv" / f"{stem}.json")
    immediate, source = xml_facts(doc)
    bad = mismatches(layout, mutate(guest), immediate=immediate, source=source,
                     policy_of=policy_of)
    assert any(expected in line for line in bad), bad


def test_immediate_allocation_is_what_adds_prealloc() -> None:
    _, layout, guest, doc = load(QEMU_DIR / "argv" / "immediate.json")
    _, source = xml_facts(doc)
    bad = mismatches(layout, guest, immediate=False, source=source)
    assert bad == ["pc.ram: prealloc True != False",
                   "pc.ram: unexpected prealloc-context tc-pc.ram"]


@pytest.mark.parametrize("stem", ["strict", "memnodes"])
def test_a_dropped_backend_is_an_error_naming_the_option(stem: str) -> None:
    data = json.loads((QEMU_DIR / "argv" / f"{stem}.json").read_text())
    argv = list(data["argv"])
    i = next(i for i, a in enumerate(argv) if a.startswith('{"qom-type":"memory-backend'))
    del argv[i - 1:i + 1]
    with pytest.raises(ParseError) as err:
        parse_qemu_argv(argv).guest_ram()
    assert err.value.field in ("-machine memory-backend", "-numa memdev")


@pytest.mark.skipif(os.environ.get("NUMAGUARD_LIBVIRTD") != "1",
                    reason="re-running libvirt needs NUMAGUARD_LIBVIRTD=1 (make test-libvirtd)")
def test_libvirt_still_makes_the_recorded_memory_layout() -> None:
    from tests.support import capture_argv, libvirtd

    missing = libvirtd.unavailable()
    if missing is not None:
        pytest.skip(f"no real libvirtd here: {missing}")
    with capture_argv.session() as hugetlbfs:
        for path in RECORDED:
            data = json.loads(path.read_text())
            xml = ROOT / str(data["domain"])
            try:
                _, argv = capture_argv.native_argv(xml)
            except RuntimeError as exc:
                # a daemon started without a hugetlbfs mount refuses a file backed <hugepages>
                if hugetlbfs or path.stem != "hugepages" or "hugetlbfs" not in str(exc):
                    raise
                continue
            assert parse_qemu_argv(argv) == parse_qemu_argv(data["argv"]), path.stem
        assert capture_argv.versions() == (data["libvirt_version"], data["qemu_version"])
