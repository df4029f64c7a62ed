"""The capacity model: what each node can give guests, and what each guest asks of which nodes.

Capacity of a node = MemTotal − memory reserved as hugepages there − a host reserve.

The host reserve is what the kernel and the host itself need on every node and what bound guests
therefore can never count on: the allocator stops at the zone *low* watermark, and with THP the
kernel raises ``min_free_kbytes`` towards 5 % of memory (mm/khugepaged.c
``set_recommended_min_free_kbytes``); QEMU's own threads, page tables, libvirt, page cache and
slab live there too.  The default is max(1 GiB, 5 % of the node's MemTotal); ``--host-reserve``
takes a size (``2GiB``) or a share (``8%``).

A guest's demand is its maximum memory (``<memory>``: the balloon can always give memory back),
split over its guest NUMA cells when it has them; each part follows its cell's effective policy.
Parts backed by hugepages come out of the hugepage pools (rule NG301), not out of capacity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import cast

from numaguard.errors import UnitError
from numaguard.model.guest import Guest
from numaguard.model.policy import MemoryMode, MemoryPolicy, Placement
from numaguard.model.topology import Host, Node
from numaguard.units import GiB, parse_size

#: Hugepage size assumed for ``<hugepages/>`` without a size (the x86-64 default).
DEFAULT_HUGEPAGE_SIZE = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Reserve:
    """Host reserve per node: max(``floor``, ``share`` × MemTotal), or exactly ``fixed``."""

    share: float = 0.05
    floor: int = GiB
    fixed: int | None = None

    def of(self, node: Node) -> int:
        if self.fixed is not None:
            return self.fixed
        return max(self.floor, int(node.mem_total * self.share))


DEFAULT_RESERVE = Reserve()


def parse_reserve(text: str) -> Reserve:
    """``"2GiB"`` → a fixed reserve; ``"8%"`` → that share of each node's MemTotal."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*", text)
    if m:
        share = float(m.group(1)) / 100
        if not 0 <= share < 1:
            raise UnitError(f"host reserve {text!r} must be below 100%", field="--host-reserve")
        return Reserve(share=share, floor=0)
    try:
        return Reserve(fixed=parse_size(text))
    except UnitError as exc:
        raise UnitError(exc.reason, field="--host-reserve") from None


def hugepages_reserved(node: Node) -> int:
    return sum(p.total_bytes for p in node.hugepages)


def node_capacity(node: Node, reserve: Reserve = DEFAULT_RESERVE) -> int:
    return max(0, node.mem_total - hugepages_reserved(node) - reserve.of(node))


def capacities(host: Host, reserve: Reserve = DEFAULT_RESERVE) -> dict[int, int]:
    return {n.id: node_capacity(n, reserve) for n in host.nodes}


@dataclass(frozen=True, slots=True)
class MemoryUnit:
    """One part of a guest's memory with one policy: a guest NUMA cell, or the whole guest.

    ``static_nodeset``, ``bound`` and ``label`` follow from the fields and are computed once
    at construction: the rules read them hundreds of thousands of times on a large host."""

    guest: str
    cell: int | None
    size: int
    policy: MemoryPolicy | None
    hugepage_size: int | None
    vcpus: frozenset[int]
    #: the policy's nodeset when placement is static, else ``None``
    static_nodeset: frozenset[int] | None = field(init=False, repr=False, compare=False)
    #: memory may come only from the nodeset: strict (mbind + cgroup) or restrictive
    bound: bool = field(init=False, repr=False, compare=False)
    #: the guest's name, or ``GUEST cell N``
    label: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        p = self.policy
        ns = p.nodeset if p is not None and p.placement is Placement.STATIC else None
        object.__setattr__(self, "static_nodeset", ns)
        object.__setattr__(self, "bound", p is not None and p.mode.binds and ns is not None)
        object.__setattr__(self, "label", self.guest if self.cell is None
                           else f"{self.guest} cell {self.cell}")

    @property
    def on_hugepages(self) -> bool:
        return self.hugepage_size is not None


def memory_units(guest: Guest) -> tuple[MemoryUnit, ...]:
    """The guest's memory units (one per guest NUMA cell, else the whole guest), made once per
    guest object (kept in its ``_units``: a guest is immutable)."""
    units = guest._units
    if units is None:
        units = _memory_units(guest)
        object.__setattr__(guest, "_units", units)
    return cast("tuple[MemoryUnit, ...]", units)


def _memory_units(guest: Guest) -> tuple[MemoryUnit, ...]:
    if guest.cells:
        return tuple(
            MemoryUnit(guest.name, c.id, c.memory, c.policy,
                       _page_size(c.hugepage_size), c.cpus)
            for c in guest.cells
        )
    page = None
    for hp in guest.hugepages:
        if hp.cells is None:
            page = hp.size if hp.size is not None else 0
    return (MemoryUnit(guest.name, None, guest.memory, guest.policy, _page_size(page),
                       frozenset(range(guest.vcpus))),)


def _page_size(size: int | None) -> int | None:
    if size is None:
        return None
    return size or DEFAULT_HUGEPAGE_SIZE


def vcpu_host_cpus(guest: Guest, vcpus: frozenset[int]) -> frozenset[int] | None:
    """Host CPUs the given vCPUs may run on; ``None`` when any of them may run anywhere."""
    cpus: set[int] = set()
    for v in vcpus:
        allowed = guest.vcpu_cpus(v)
        if allowed is None:
            return None
        cpus |= allowed
    return frozenset(cpus)


def is_mode(unit: MemoryUnit, *modes: MemoryMode) -> bool:
    return unit.policy is not None and unit.policy.mode in modes


def home_nodes(host: Host, guest: Guest) -> frozenset[int] | None:
    """The nodes a guest's memory belongs on, for its locality: the union of its policies'
    nodesets, else the nodes of the host CPUs its vCPUs are pinned to (vcpupin / ``<vcpu
    cpuset>``); ``None`` when neither is known (a vCPU that may run anywhere)."""
    bound = [p.nodeset for p in guest.policies if p is not None and p.nodeset is not None]
    if bound:
        return frozenset().union(*bound)
    cpus = vcpu_host_cpus(guest, frozenset(range(guest.vcpus)))
    if not cpus:
        return None
    return host.nodes_of_cpus(cpus) or None
