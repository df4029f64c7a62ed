"""What a running host holds now: per guest, its resident memory on each host node; per node,
its memory figures (issue 13).  Pure values, in bytes; :mod:`numaguard.readers.live` reads them
(cgroup ``memory.numa_stat`` v1 or v2, ``hugetlb.<size>.numa_stat``, else ``/proc/PID/numa_maps``)
under an explicit root, so a captured tree reads the same as the live machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: where a guest's figures came from
SOURCES = ("cgroup-v2", "cgroup-v1", "hugetlb", "numa_maps")


@dataclass(frozen=True, slots=True)
class GuestLive:
    """One running guest as the host sees it now.

    ``per_node``: bytes resident on each host node (anonymous memory of the guest's cgroup, or
    of the QEMU process's mappings: guest RAM plus QEMU's own 5–15 MiB, reported, not hidden);
    ``hugepages_per_node``: bytes in hugepages per node (hugepage-backed guests); ``source``:
    one of :data:`SOURCES`; ``error``: why the guest could not be read (then the figures are
    empty: a vanished PID, an unreadable file) — one guest's failure never hides the others."""

    name: str
    pid: int | None
    per_node: tuple[tuple[int, int], ...] = ()
    hugepages_per_node: tuple[tuple[int, int], ...] = ()
    source: str | None = None
    cgroup: str | None = None
    error: str | None = None

    @property
    def resident(self) -> int:
        return sum(b for _, b in self.per_node) + sum(b for _, b in self.hugepages_per_node)

    def on(self, node: int) -> int:
        """Bytes on *node* (ordinary and huge pages)."""
        return sum(b for n, b in self.per_node if n == node) + \
            sum(b for n, b in self.hugepages_per_node if n == node)

    def locality(self, nodes: frozenset[int] | None) -> float | None:
        """The share of its memory on *nodes* (its vCPUs' nodes, or its binding), ``None``
        when it holds nothing or *nodes* is unknown."""
        total = self.resident
        if not total or nodes is None:
            return None
        return sum(self.on(n) for n in nodes) / total


@dataclass(frozen=True, slots=True)
class NodeLive:
    """One host node now (``/sys/devices/system/node/nodeN/meminfo``), in bytes."""

    id: int
    mem_total: int
    mem_free: int
    file_pages: int = 0
    anon_pages: int = 0
    hugepages_total: int = 0
    hugepages_free: int = 0


@dataclass(frozen=True, slots=True)
class LiveState:
    """The host's nodes and its running guests, read at one moment (``taken_at``: seconds of
    the reader's clock, for rates; ``None`` for a captured tree)."""

    nodes: tuple[NodeLive, ...]
    guests: tuple[GuestLive, ...] = ()
    taken_at: float | None = None
    notes: tuple[str, ...] = field(default=())

    def guest(self, name: str) -> GuestLive | None:
        for g in self.guests:
            if g.name == name:
                return g
        return None
