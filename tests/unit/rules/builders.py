"""Small builders of real model objects (Host, Guest) for rule tests.

    from tests.unit.rules.builders import host, guest, GiB

    h = host(nodes=[("0-3", 16, 12, {"2M": (1024, 1024)}),   # cpus, MemTotal GiB, free GiB, pools
                    (4, 16)],                                 # 4 CPUs (4-7), 16 GiB, free unknown
             numa_balancing=True, swap=2)
    g = guest("db", 8, 4, cpuset="0-3", mode="strict", nodeset="0", hugepage_size="2M")
    c = guest("big", 0, 4, cells=[("0-1", 4, "strict", "0"), ("2-3", 4)], mode="strict",
              nodeset="1", pins={0: "0", 1: "1"})

Sizes are GiB (floats allowed) unless a keyword says bytes; page sizes take bytes or "2M" /
"1G" / "2MiB" / "2048KiB"; CPU and node sets take "0-3,^2" strings, iterables of ints or a
single int.  Everything returned is a frozen model object exactly as the readers build it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from numaguard.cpuset import parse_bitmap
from numaguard.model.guest import Guest, GuestCell, HugepageBacking, VcpuPin
from numaguard.model.policy import MemoryMode, MemoryPolicy, Placement
from numaguard.model.topology import Host, HostHugepages, Node
from numaguard.units import GiB, MiB, parse_size

__all__ = ["PAGE_1G", "PAGE_2M", "GiB", "MiB", "guest", "host", "ids", "node_cpus", "pages"]

PAGE_2M = 2 * MiB
PAGE_1G = GiB

#: default SLIT when distances are not given: 10 local, 21 remote
DEFAULT = object()

Ids = str | int | Iterable[int] | None


def ids(value: Ids) -> frozenset[int] | None:
    """``"0-3,^2"`` / ``[0, 1]`` / ``3`` → frozenset; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_bitmap(value)
    if isinstance(value, int):
        return frozenset({value})
    return frozenset(value)


def page_bytes(value: int | str) -> int:
    """A page size: bytes, or a string with a unit ("2M", "1G", "2048KiB")."""
    if isinstance(value, str):
        return parse_size(value)
    return value


def _gib(value: float | None) -> int | None:
    return None if value is None else round(value * GiB)


def node_cpus(spec: Ids, start: int) -> frozenset[int]:
    """A node's CPUs: an int N means N consecutive CPUs from *start*."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        return frozenset(range(start, start + spec))
    return ids(spec) or frozenset()


def pages(spec: Mapping[int | str, int | tuple[int, int | None]] | None) -> tuple[
        HostHugepages, ...]:
    """``{"2M": (total, free)}`` or ``{"2M": total}`` (free unknown) → pools sorted by size."""
    pools = []
    for size, counts in (spec or {}).items():
        total, free = counts if isinstance(counts, tuple) else (counts, None)
        pools.append(HostHugepages(page_bytes(size), total, free))
    return tuple(sorted(pools, key=lambda p: p.size))


def host(nodes: Sequence[tuple[Any, ...]], *, distances: Any = DEFAULT,
         swap: float | tuple[float, float] | None = None, numa_balancing: bool | None = None,
         node_ids: Sequence[int] | None = None, name: str | None = None) -> Host:
    """A Host from ``(cpus, mem_total_gib[, free_gib[, hugepages]])`` per node.

    *cpus*: cpulist string, iterable, or a count (then CPUs are numbered on from the previous
    node).  *free_gib* ``None`` means unknown.  *hugepages*: see :func:`pages`.  *distances*:
    a matrix, ``None`` for no SLIT, default 10 local / 21 remote.  *swap*: GiB total (= free),
    or ``(total, free)``.  *node_ids*: sparse ids instead of 0..n-1.
    """
    built = []
    next_cpu = 0
    nids = list(node_ids) if node_ids is not None else list(range(len(nodes)))
    for nid, spec in zip(nids, nodes, strict=True):
        cpus_spec, mem, *rest = spec
        free = rest[0] if len(rest) > 0 else None
        hp = rest[1] if len(rest) > 1 else None
        cpus = node_cpus(cpus_spec, next_cpu)
        next_cpu = max(cpus, default=next_cpu - 1) + 1
        built.append(Node(nid, cpus, _gib(mem) or 0, _gib(free), pages(hp)))
    n = len(built)
    if distances is DEFAULT:
        distances = tuple(tuple(10 if a == b else 21 for b in range(n)) for a in range(n))
    elif distances is not None:
        distances = tuple(tuple(row) for row in distances)
    if isinstance(swap, tuple):
        swap_total, swap_free = _gib(swap[0]), _gib(swap[1])
    else:
        swap_total = swap_free = _gib(swap)
    return Host(tuple(built), distances, swap_total=swap_total, swap_free=swap_free,
                numa_balancing=numa_balancing, name=name)


def _policy(mode: str | None, nodeset: Ids, placement: str | None) -> MemoryPolicy | None:
    if placement == "auto":
        return MemoryPolicy(MemoryMode(mode or "strict"), Placement.AUTO, None,
                            implicit_mode=mode is None)
    ns = ids(nodeset)
    if ns is None:
        if mode is not None:
            raise ValueError("a static memory mode needs a nodeset (libvirt rejects it)")
        return None
    return MemoryPolicy(MemoryMode(mode or "strict"), Placement.STATIC, ns,
                        implicit_mode=mode is None)


def guest(name: str, memory_gib: float, vcpus: int, *, cpuset: Ids = None,
          pins: Mapping[int, Ids] | None = None, emulatorpin: Ids = None,
          mode: str | None = None, nodeset: Ids = None, placement: str | None = None,
          vcpu_placement: str = "static", cells: Sequence[Any] | None = None,
          hugepage_size: int | str | None = None, current_vcpus: int | None = None,
          memory_bytes: int | None = None) -> Guest:
    """A Guest as libvirt resolves it.

    *mode*/*nodeset*: ``<numatune><memory>``; a nodeset without mode is strict (implicit);
    ``placement="auto"`` gives numad placement (no nodeset).  *pins*: ``{vcpu: cpus}``.
    *cells*: guest NUMA cells, each ``(cpus, memory_gib)`` or ``(cpus, memory_gib, mode,
    nodeset)`` (its memnode) or a dict with keys ``cpus, memory_gib, mode, nodeset,
    hugepage_size``; a cell without its own policy takes the guest's, as libvirt does, and
    the guest's memory becomes the sum of the cells.  *hugepage_size*: page size backing the
    guest (bytes, "2M", "1G"; 0 = host default), for every cell unless a cell says otherwise.
    *memory_bytes* overrides *memory_gib* for exact sizes.
    """
    policy = _policy(mode, nodeset, placement)
    page = None if hugepage_size is None else page_bytes(hugepage_size)
    built_cells: list[GuestCell] = []
    for i, spec in enumerate(cells or ()):
        if isinstance(spec, Mapping):
            c = dict(spec)
        else:
            c = dict(zip(("cpus", "memory_gib", "mode", "nodeset"), spec, strict=False))
        cpol = policy
        if c.get("mode") is not None or c.get("nodeset") is not None:
            cpol = _policy(c.get("mode"), c.get("nodeset"), None)
        cpage = c.get("hugepage_size", page)
        built_cells.append(GuestCell(
            id=i, cpus=ids(c.get("cpus")) or frozenset(),
            memory=_gib(c["memory_gib"]) or 0, policy=cpol,
            hugepage_size=None if cpage is None else page_bytes(cpage)))
    memory = memory_bytes if memory_bytes is not None else (_gib(memory_gib) or 0)
    if built_cells:
        memory = sum(c.memory for c in built_cells)
    backing: tuple[HugepageBacking, ...] = ()
    if page is not None:
        backing = (HugepageBacking(page or None, None),)
    vplace = Placement(vcpu_placement)
    return Guest(
        name=name, uuid=None, memory=memory, current_memory=memory, vcpus=vcpus,
        vcpus_current=vcpus if current_vcpus is None else current_vcpus,
        vcpu_placement=vplace,
        cpuset=None if vplace is Placement.AUTO else ids(cpuset),
        pins=tuple(VcpuPin(v, ids(c) or frozenset()) for v, c in sorted((pins or {}).items())),
        emulatorpin=ids(emulatorpin), policy=policy, cells=tuple(built_cells),
        hugepages=backing,
    )
