"""The hosts whose audits print the commands under test, written into a scratch directory.

Each source is copied or written into its own directory under one *work* directory, laid out
as in the repository (``examples/article-host``, ``tests/fixtures/...``), and audited from
there with the same relative paths a user would type (its own directory, so files a printed
line writes into the current directory never mix between sources).  So a printed
``numaguard fix … --write`` or an ``echo … > FILE`` redirected into the copy can never touch
the repository.

Three kinds of source:
- the bundled example, ``examples/article-host``;
- fixtures: every snapshot-like directory under tests/fixtures (``host/`` + ``domains/``), and
  each captured sysfs tree (tests/fixtures/sys/*) and capabilities XML
  (tests/fixtures/capabilities/*.xml) as the topology beside the guest fixtures
  (tests/fixtures/xml/guests/*-in.xml);
- synthetic snapshots (tests/support/synth.py), one per situation a rule handles.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import article_host
from tests.support.synth import SynthNode, domain_xml, write_sysfs

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
GUESTS = Path("tests/fixtures/xml/guests")
GiB = 1024 * 1024  # in KiB, the unit of synth.py

#: The captured topologies audited with the guest fixtures.  Each audit prints ~25
#: ``numaguard fix`` lines (each run twice: as printed and with --virsh), so the 2-node variants
#: that print the same lines as ``hugepages`` (2node, swap, offline-cpus) and the capabilities
#: twins of sys trees are left out to keep the module well under a minute (swap and its
#: shortfalls are covered by the synthetic hosts) and 8node (no rule prints differently there
#: than on 4node); kept: 1 and 4 nodes, the memoryless and
#: CPU-less nodes, hugepage pools, and one capabilities XML (no pools, no swap known).
TOPOLOGIES = ("sys/1node", "sys/4node", "sys/memoryless", "sys/cpuless",
              "sys/hugepages", "capabilities/4node.xml")


@dataclass
class Source:
    """One audit: ``numaguard audit *args`` run in *cwd*."""
    name: str
    cwd: Path
    args: list[str]
    #: the domain XML files the audit reads (for the test driver), absolute
    domains: list[Path] = field(default_factory=list)
    #: the sysfs/proc root of the host, when the topology comes from one (absolute)
    host_root: Path | None = None

    @property
    def paths(self) -> list[Path]:
        """The SOURCE arguments, absolute."""
        return [(self.cwd / a).resolve() for a in self.args]


def _slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)


def _snapshot_source(name: str, work: Path, rel: str) -> Source:
    root = work / rel
    return Source(name, work, [rel], sorted((root / "domains").glob("*.xml")),
                  root / "host")


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copy2(src, dst)


def snapshot_fixture_dirs() -> list[Path]:
    """Directories under tests/fixtures laid out as a snapshot (``host/`` + ``domains/``)."""
    return sorted(p.parent for p in FIXTURES.rglob("domains")
                  if p.is_dir() and (p.parent / "host").is_dir())


def fixture_sources(work: Path) -> list[Source]:
    out = []
    for d in snapshot_fixture_dirs():
        rel = d.relative_to(REPO)
        name = f"fixture:{rel}"
        _copy(d, work / _slug(name) / rel)
        out.append(_snapshot_source(name, work / _slug(name), str(rel)))
    for t in TOPOLOGIES:
        d = FIXTURES / t
        rel = d.relative_to(REPO)
        name = f"fixture:{rel}+guests"
        cwd = work / _slug(name)
        _copy(d, cwd / rel)
        _copy(REPO / GUESTS, cwd / GUESTS)
        out.append(Source(name, cwd, [str(rel), str(GUESTS)],
                          sorted((cwd / GUESTS).glob("*.xml")),
                          cwd / rel if d.is_dir() else None))
    return out


# --- synthetic snapshots ----------------------------------------------------------------------

def _host(root: Path, nodes: int, cpus: int, gib: int, *, free_gib: float | None = None,
          swap_gib: float = 2, hugepages: dict[int, tuple[int, int]] | None = None) -> None:
    kib = gib * GiB - 300_000
    free = int((free_gib if free_gib is not None else gib - 0.5) * GiB)
    ns = [SynthNode(i, f"{i * cpus}-{(i + 1) * cpus - 1}", kib, min(free, kib),
                    dict(hugepages or {})) for i in range(nodes)]
    dist = [[10 if a == b else 21 for b in range(nodes)] for a in range(nodes)]
    write_sysfs(str(root / "host"), ns, dist, swap_total_kib=int(swap_gib * GiB),
                swap_free_kib=int(swap_gib * GiB), numa_balancing=1,
                kernel_version=article_host.KERNEL)


def _domains(root: Path, guests: dict[str, str]) -> None:
    d = root / "domains"
    d.mkdir(parents=True, exist_ok=True)
    for name, xml in guests.items():
        (d / f"{name}.xml").write_text(xml)


def _cpus(node: int, per: int) -> str:
    return f"{node * per}-{(node + 1) * per - 1}"


def _implicit_memnode(xml: str) -> str:
    """Drop the mode of every ``<memnode>`` (libvirt then makes it strict)."""
    return xml.replace("<memnode cellid='0' mode='strict'", "<memnode cellid='0'")


def _synth_strict_overcommit(r: Path) -> None:
    _host(r, 2, 8, 16)
    _domains(r, {n: domain_xml(n, 10 * GiB, 4, cpuset="0-7", mode="strict", nodeset="0")
                 for n in ("app-a", "app-b")})


def _synth_implicit_strict(r: Path) -> None:
    _host(r, 2, 8, 16)
    _domains(r, {
        "implicit": domain_xml("implicit", 14 * GiB, 4, cpuset="0-7", nodeset="0"),
        "filler": domain_xml("filler", 12 * GiB, 4),
        "cell-implicit": _implicit_memnode(domain_xml(
            "cell-implicit", 12 * GiB, 2, cpuset="8-15",
            cells=[("0", 10 * GiB), ("1", 2 * GiB)],
            memnodes=[(0, "strict", "1"), (1, "preferred", "1")])),
    })


def _synth_preferred_spill(r: Path) -> None:
    """The issue's example: the article host and one preferred guest of 80 GiB."""
    article_host.build(str(r))
    _domains(r, {"bigpref": domain_xml("bigpref", 80 * GiB, 4, cpuset="0-9",
                                       mode="preferred", nodeset="0")})


def _synth_host_full(r: Path) -> None:
    """Guests filling the whole host, one interleaved ("the host is full")."""
    _host(r, 2, 4, 8, swap_gib=0.5)
    _domains(r, {
        "app": domain_xml("app", 9 * GiB, 2, mode="preferred", nodeset="0"),
        "ilv": domain_xml("ilv", 6 * GiB, 2, mode="interleave", nodeset="0-1"),
        "spill": domain_xml("spill", 4 * GiB, 2, mode="preferred", nodeset="1"),
    })


def _synth_interleave(r: Path) -> None:
    _host(r, 3, 4, 16, free_gib=10)
    _domains(r, {
        "ilv-big": domain_xml("ilv-big", 30 * GiB, 8, mode="interleave", nodeset="0-1"),
        "ilv-small": domain_xml("ilv-small", 4 * GiB, 2, cpuset="0-7", mode="interleave",
                                nodeset="0-1"),
        "strict-two": domain_xml("strict-two", 20 * GiB, 4, cpuset="0-7", mode="strict",
                                 nodeset="0-1"),
        "pref-many": domain_xml("pref-many", 20 * GiB, 4, mode="preferred", nodeset="1-2"),
    })


def _synth_hugepages(r: Path) -> None:
    _host(r, 2, 4, 16, hugepages={2048: (1024, 1024), 1048576: (2, 1)})
    _domains(r, {
        "huge2m": domain_xml("huge2m", 6 * GiB, 2, cpuset="0-3", mode="strict", nodeset="0",
                             hugepage_kib=2048),
        "huge1g": domain_xml("huge1g", 4 * GiB, 2, cpuset="4-7", mode="strict", nodeset="1",
                             hugepage_kib=1048576),
        "huge-cells": domain_xml("huge-cells", 4 * GiB, 2, mode="strict", nodeset="0-1",
                                 hugepage_kib=2048, cells=[("0", 2 * GiB), ("1", 2 * GiB)],
                                 memnodes=[(0, "strict", "0"), (1, "strict", "1")]),
    })


def _synth_cpu_move(r: Path) -> None:
    """NG204 with room on another node (vcpupin/emulatorpin/numatune lines), NG201-203, NG205."""
    _host(r, 2, 4, 32)
    _domains(r, {
        "pinned-a": domain_xml("pinned-a", 2 * GiB, 4, cpuset="0-3", mode="strict",
                               nodeset="0"),
        "pinned-b": domain_xml("pinned-b", 2 * GiB, 2, cpuset="0-3", mode="strict",
                               nodeset="0"),
        "split": domain_xml("split", 2 * GiB, 2, cpuset="4-7", mode="strict", nodeset="0"),
        "unpinned": domain_xml("unpinned", 2 * GiB, 2, mode="strict", nodeset="1"),
        "span": domain_xml("span", 2 * GiB, 2, cpuset="0-7", mode="interleave",
                           nodeset="0-1"),
        "crossed": domain_xml("crossed", 4 * GiB, 2, cpuset="0-3",
                              cells=[("0", 2 * GiB), ("1", 2 * GiB)],
                              memnodes=[(0, "strict", "1"), (1, "strict", "1")]),
    })


def _synth_cpu_full(r: Path) -> None:
    """NG204 with no room anywhere: 1-vCPU guests pinned three to a one-CPU node."""
    _host(r, 2, 1, 16)
    _domains(r, {f"g{i}": domain_xml(f"g{i}", GiB, 1, cpuset=str(i % 2)) for i in range(6)}
             | {"wide": domain_xml("wide", GiB, 4, cpuset="0")})


def _synth_no_swap(r: Path) -> None:
    _host(r, 2, 8, 16, swap_gib=0)
    _domains(r, {"tight": domain_xml("tight", 15 * GiB, 4, cpuset="0-7", mode="strict",
                                     nodeset="0"),
                 "other": domain_xml("other", 8 * GiB, 4, mode="preferred", nodeset="0")})


def _synth_small_swap(r: Path) -> None:
    _host(r, 2, 8, 16, swap_gib=0.25)
    _domains(r, {"tight": domain_xml("tight", 13 * GiB, 4, cpuset="0-7", nodeset="0"),
                 "other": domain_xml("other", 8 * GiB, 4)})


def _synth_many_guests(r: Path) -> None:
    _host(r, 2, 16, 64)
    guests = {f"vm{i:02d}": domain_xml(f"vm{i:02d}", 5 * GiB, 2, cpuset="0-15",
                                       mode="strict", nodeset="0") for i in range(14)}
    guests |= {f"free{i:02d}": domain_xml(f"free{i:02d}", 3 * GiB, 1) for i in range(12)}
    _domains(r, guests)


def _synth_memnodes(r: Path) -> None:
    _host(r, 2, 4, 16)
    _domains(r, {
        "cells-strict": domain_xml("cells-strict", 28 * GiB, 4, cpuset="0-7",
                                   cells=[("0-1", 20 * GiB), ("2-3", 8 * GiB)],
                                   memnodes=[(0, "strict", "0"), (1, "strict", "1")]),
        "cells-mixed": domain_xml("cells-mixed", 12 * GiB, 4,
                                  cells=[("0-1", 6 * GiB), ("2-3", 6 * GiB)],
                                  memnodes=[(0, "preferred", "0"), (1, "interleave", "0-1")]),
    })


def _synth_missing_nodes(r: Path) -> None:
    _host(r, 2, 4, 16)
    _domains(r, {
        "far": domain_xml("far", 4 * GiB, 2, mode="strict", nodeset="5"),
        "wide": domain_xml("wide", 4 * GiB, 2, mode="interleave", nodeset="0-3"),
        "cell-far": domain_xml("cell-far", 4 * GiB, 2, cells=[("0", 2 * GiB), ("1", 2 * GiB)],
                               memnodes=[(0, "strict", "0"), (1, "preferred", "3")]),
    })


def _synth_auto_placement(r: Path) -> None:
    _host(r, 2, 4, 16)
    _domains(r, {"auto": domain_xml("auto", 4 * GiB, 2, mode="strict", placement="auto")})


SYNTHETIC = {
    "strict-overcommit": _synth_strict_overcommit,
    "implicit-strict": _synth_implicit_strict,
    "preferred-spill-80g": _synth_preferred_spill,
    "host-full": _synth_host_full,
    "interleave": _synth_interleave,
    "hugepages": _synth_hugepages,
    "cpu-overcommit-move": _synth_cpu_move,
    "cpu-overcommit-full": _synth_cpu_full,
    "no-swap": _synth_no_swap,
    "small-swap": _synth_small_swap,
    "many-guests": _synth_many_guests,
    "memnodes": _synth_memnodes,
    "missing-nodes": _synth_missing_nodes,
    "auto-placement": _synth_auto_placement,
}


def synthetic_sources(work: Path) -> list[Source]:
    out = []
    for name, build in SYNTHETIC.items():
        rel = f"synth/{name}"
        cwd = work / _slug(f"synth:{name}")
        build(cwd / rel)
        out.append(_snapshot_source(f"synth:{name}", cwd, rel))
    return out


def example_sources(work: Path) -> list[Source]:
    rel = "examples/article-host"
    cwd = work / _slug("example:article-host")
    _copy(REPO / rel, cwd / rel)
    return [_snapshot_source("example:article-host", cwd, rel)]


def all_sources(work: Path) -> list[Source]:
    work.mkdir(parents=True, exist_ok=True)
    return example_sources(work) + fixture_sources(work) + synthetic_sources(work)
