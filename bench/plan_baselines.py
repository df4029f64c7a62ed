"""Two placement baselines for bench/plan_bench.py, written from their published sources.

**Nova first fit** — OpenStack Nova, ``nova/virt/hardware.py`` (github:openstack/nova):
``numa_fit_instance_to_host`` tries ``itertools.permutations(host_cells, len(instance_cells))``
and returns the *first* permutation in which ``_numa_fit_instance_cell`` accepts every instance
cell on its host cell — no scoring of the candidates.  ``_numa_fit_instance_cell`` checks a
requested page size against the host cell's free pages of that size, else the cell's memory
against the host cell's available memory (``instance_cell.memory > host_cell.avail_memory``:
"Oversubscription is not possible with pinned instances"), and the vCPUs against the host
cell's CPUs × ``cpu_allocation_ratio``.  The libvirt driver then binds every cell ``strict`` to
its host cell and pins the cell's vCPUs to that cell's CPUs.  Simplifications here: the host
cells' memory is numaguard's capacity model (MemTotal less hugepage pools less the host
reserve, as ``reserved_host_memory_mb`` would be spread per node); every guest is a shared-CPU
instance limited by the audit's CPU over-commit ratio (no ``dedicated`` CPU pools); a guest
without guest NUMA cells is the implicit one-cell topology Nova gives hugepage and pinned
instances; guests arrive in the inventory's order, one at a time, as a scheduler sees them.

**numad** — numad.c (Bill Gray, Red Hat; the copy read is github:yhaenggi/numad, version
20160428), ``pick_numa_nodes`` as libvirt's ``placement='auto'`` asks it (``numad -w
CPUs:MBs``, pre-placement advice, ``pid = -1``): per node a *magnitude* —
``combined_value_of_weighted_resources``: (needed MBs × 10 + excess MBs × 4) × (needed CPUs × 6
+ excess CPUs × 1), CPUs in hundredths; the fewest nodes the request needs (``ceil(MBs /
node MBs_total)``, likewise for CPUs); for every node the sum of the magnitudes of that many
nearest nodes, each divided by its distance squared; the best node is the largest sum; nodes are
then taken nearest-first from it (ties: larger magnitude) until the memory (less a 100 MB
margin per node) and the CPUs are covered.  libvirt binds the memory ``strict`` to the advised
nodes and pins the vCPUs to their CPUs.  Simplifications here: free MBs are the capacity model
less what earlier guests were given (numad reads MemFree, which the guests started before have
lowered); free CPUs are the node's threads × the over-commit ratio less the vCPUs placed there
(numad measures idle time, which it cannot know before the guests run); hugepage-backed
memory does not lower MemFree (the pool is reserved already), so numad neither sees a guest's
hugepages being taken nor checks a pool — exactly why it can over-commit one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from numaguard.core.capacity import capacities, memory_units
from numaguard.core.changes import Change, PinVcpus, SetMemnode, SetMemoryPolicy
from numaguard.core.plan.problem import distance
from numaguard.model.guest import Guest
from numaguard.model.policy import MemoryMode
from numaguard.model.topology import Host
from numaguard.units import MiB


@dataclass(frozen=True, slots=True)
class Placed:
    """One guest as a baseline placed it: per memory unit (cell, or ``None`` for the whole
    guest) the host nodes, and its changes; ``nodes`` empty when it was not placed."""

    guest: str
    cells: tuple[tuple[int | None, tuple[int, ...]], ...]
    changes: tuple[Change, ...]

    @property
    def placed(self) -> bool:
        return bool(self.cells)

    @property
    def nodes(self) -> frozenset[int]:
        return frozenset(n for _, ns in self.cells for n in ns)


def _pages(size: int, page: int) -> int:
    return -(-size // page)


def _changes(host: Host, g: Guest, cells: Sequence[tuple[int | None, tuple[int, ...]]],
             vcpus_of: Sequence[frozenset[int]]) -> tuple[Change, ...]:
    """Strict binding of each unit to its nodes and its vCPUs pinned to their CPUs (what both
    Nova's libvirt driver and libvirt's placement='auto' write)."""
    union = frozenset(n for _, ns in cells for n in ns)
    out: list[Change] = [SetMemoryPolicy(g.name, MemoryMode.STRICT, union)]
    for (cell, ns), vcpus in zip(cells, vcpus_of, strict=True):
        if cell is not None:
            out.append(SetMemnode(g.name, cell, MemoryMode.STRICT, frozenset(ns)))
        cpus = frozenset(c for n in ns for c in host.node(n).cpus)
        vc = frozenset(v for v in vcpus if v < g.vcpus)
        if vc and cpus:
            out.append(PinVcpus(g.name, vc, cpus))
    return tuple(out)


class _Ledger:
    """What the guests placed so far take from each node."""

    def __init__(self, host: Host, cpu_overcommit_ratio: float) -> None:
        self.cap = capacities(host)
        self.used = dict.fromkeys(self.cap, 0)
        self.pools = {(n.id, p.size): p.total for n in host.nodes for p in n.hugepages}
        self.pages = dict.fromkeys(self.pools, 0)
        self.cpu_limit = {n.id: len(n.cpus) * cpu_overcommit_ratio for n in host.nodes}
        self.vcpus = dict.fromkeys(self.cap, 0.0)


def nova_first_fit(host: Host, guests: Sequence[Guest], *,
                   cpu_overcommit_ratio: float = 1.0) -> tuple[Placed, ...]:
    """Each guest in turn: the first permutation of host nodes that fits every cell."""
    led = _Ledger(host, cpu_overcommit_ratio)
    ids = [n.id for n in host.nodes]
    out = []
    for g in guests:
        units = [u for u in memory_units(g) if u.size > 0]
        vcpus = [u.vcpus if g.cells else frozenset(range(g.vcpus)) for u in units]
        chosen: list[int] | None = None
        for perm in itertools.permutations(ids, len(units)):
            if all(_nova_cell_fits(led, u, len(v), n)
                   for u, v, n in zip(units, vcpus, perm, strict=True)):
                chosen = list(perm)
                break
        if chosen is None:
            out.append(Placed(g.name, (), ()))
            continue
        for u, v, n in zip(units, vcpus, chosen, strict=True):
            if u.hugepage_size is not None:
                led.pages[n, u.hugepage_size] += _pages(u.size, u.hugepage_size)
            else:
                led.used[n] += u.size
            led.vcpus[n] += len(v)
        cells = tuple((u.cell, (n,)) for u, n in zip(units, chosen, strict=True))
        out.append(Placed(g.name, cells, _changes(host, g, cells, vcpus)))
    return tuple(out)


def _nova_cell_fits(led: _Ledger, unit, vcpus: int, node: int) -> bool:  # type: ignore[no-untyped-def]
    if unit.hugepage_size is not None:
        key = (node, unit.hugepage_size)
        if key not in led.pools:
            return False   # MemoryPageSizeNotSupported
        if led.pages[key] + _pages(unit.size, unit.hugepage_size) > led.pools[key]:
            return False
    elif led.used[node] + unit.size > led.cap[node]:
        return False
    return led.vcpus[node] + vcpus <= led.cpu_limit[node] + 1e-9


def _magnitude(mbs: int, cpus: int, mbs_free: int, cpus_free: int) -> int:
    """numad.c ``combined_value_of_weighted_resources``."""
    need_mem, excess_mem = (mbs, mbs_free - mbs) if mbs_free > mbs else (mbs_free, 0)
    need_cpu, excess_cpu = (cpus, cpus_free - cpus) if cpus_free > cpus else (cpus_free, 0)
    return (need_mem * 10 + excess_mem * 4) * (need_cpu * 6 + excess_cpu)


MBS_MARGIN = 100


def numad_advice(host: Host, mbs: int, cpus: int, mbs_free: dict[int, int],
                 cpus_free: dict[int, int]) -> tuple[int, ...]:
    """numad.c ``pick_numa_nodes(-1, cpus, mbs, 0)``: the advised nodes (CPUs in hundredths,
    memory in MB)."""
    ids = [n.id for n in host.nodes]
    free_mb = dict(mbs_free)
    free_cpu = {n: max(1, cpus_free[n]) for n in ids}   # "Enforce 1/100th CPU minimum"
    mag = {n: _magnitude(mbs, cpus, free_mb[n], free_cpu[n]) for n in ids}
    first = host.nodes[0]
    mb_total0 = max(1, first.mem_total // MiB)
    cpu_total0 = max(1, len(first.cpus) * 100)
    need = max(math.ceil(mbs / mb_total0), math.ceil(cpus / cpu_total0))
    need = min(need, len(ids))

    def by_distance(start: int) -> list[int]:
        # numad's selection sort: nearer first, ties to the larger magnitude (then node order)
        return sorted(ids, key=lambda n: (distance(host, n, start), -mag[n], ids.index(n)))

    totmag = {}
    for ix in ids:
        order = by_distance(ix)
        totmag[ix] = sum(mag[n] // (distance(host, n, ix) ** 2) for n in order[:need])
    best = max(ids, key=lambda n: (totmag[n], -ids.index(n)))
    order = by_distance(best)
    chosen: list[int] = []
    i = 0
    while (need > 0 or mbs > 0 or cpus > 0) and i < len(order):
        n = order[i]
        chosen.append(n)
        need -= 1
        if len(chosen) == len(ids):
            break
        if free_mb[n] >= mbs + MBS_MARGIN:
            free_mb[n] -= mbs
            mbs = 0
        else:
            mbs -= free_mb[n] - MBS_MARGIN
            free_mb[n] = MBS_MARGIN
        if free_cpu[n] >= cpus:
            free_cpu[n] -= cpus
            cpus = 0
        else:
            cpus -= free_cpu[n]
            free_cpu[n] = 0
        i += 1
    return tuple(sorted(chosen or [ids[0]]))


def numad(host: Host, guests: Sequence[Guest], *,
          cpu_overcommit_ratio: float = 1.0) -> tuple[Placed, ...]:
    """Each guest in turn, as libvirt's placement='auto' starts it: numad's advice for the
    whole guest (its vCPUs and memory), memory strict there, vCPUs pinned there."""
    led = _Ledger(host, cpu_overcommit_ratio)
    out = []
    for g in guests:
        units = [u for u in memory_units(g) if u.size > 0]
        mbs_free = {n: max(0, led.cap[n] - led.used[n]) // MiB for n in led.cap}
        cpus_free = {n: int(max(0.0, led.cpu_limit[n] - led.vcpus[n]) * 100) for n in led.cap}
        nodes = numad_advice(host, g.memory // MiB, g.vcpus * 100, mbs_free, cpus_free)
        k = len(nodes)
        for u in units:
            if u.hugepage_size is not None:
                pages = _pages(u.size, u.hugepage_size)
                for i, n in enumerate(nodes):   # the pool is taken, MemFree does not show it
                    led.pages[n, u.hugepage_size] = led.pages.get((n, u.hugepage_size), 0) + (
                        pages // k + (1 if i < pages % k else 0))
            else:
                for i, n in enumerate(nodes):
                    led.used[n] += u.size // k + (1 if i < u.size % k else 0)
        for n in nodes:
            led.vcpus[n] += g.vcpus / k
        cells = tuple((u.cell, nodes) for u in units) if g.cells else ((None, nodes),)
        vcpus = [u.vcpus for u in units] if g.cells else [frozenset(range(g.vcpus))]
        out.append(Placed(g.name, cells, _changes(host, g, cells, vcpus)))
    return tuple(out)
