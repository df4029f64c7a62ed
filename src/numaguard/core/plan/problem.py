"""The placement problem the planner solves: what each guest may be given, and what it costs.

Pure values built from a host and its guests:

* an :class:`Item` is one memory unit to place (a guest NUMA cell, or a whole guest without
  cells: :func:`~numaguard.core.capacity.memory_units`), with its :class:`Option`\\ s — the node
  sets it may get.  One node when a node can hold it, else the fewest nodes that can, taken
  nearest first by the SLIT distance around each node (a "ball": the node and its k − 1
  nearest);
* an :class:`Load` is what an option, a guest left as it is or a kept guest takes from each
  node: ordinary memory (bytes, against :func:`usable`: the audit's capacity — MemTotal less
  hugepage pools less the host reserve — capped by what the node can give now), hugepages
  (pages of one size, against the node's pool of that size), pinned vCPUs (against the node's
  threads × the CPU over-commit ratio), and the remote-access cost Σ bytes × (distance − 10)
  between the nodes its vCPUs run on and the nodes its memory is on;
* a :class:`Choice` is one guest: its items, how it is now (``stay``: ``None`` when its current
  binding is not one the planner can vouch for) and what moving it costs.

Memory over several nodes is modelled interleaved (an equal share per node), because that is
the only multi-node mode the kernel spreads: ``strict``/``preferred`` over several nodes fill
one node after the other from the node the vCPU runs on (mm/mempolicy.c ``policy_nodemask``;
rule NG104), so a share model would not hold for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from numaguard.core.capacity import (
    DEFAULT_RESERVE,
    MemoryUnit,
    Reserve,
    capacities,
    memory_units,
    vcpu_host_cpus,
)
from numaguard.core.fallback import node_distance
from numaguard.model.guest import Guest
from numaguard.model.policy import MemoryMode
from numaguard.model.topology import Host

LOCAL = 10


class Restart(str, Enum):
    """What applying a guest's changes takes (FACTS.md, libvirt qemu_driver.c): the mode of a
    running domain never changes live, and a live nodeset change is accepted only in
    ``restrictive`` mode (refused for strict since libvirt 8.0); so every other memory change
    of a running guest is a ``--config`` change and a cold restart.  vCPU pins change live."""

    COLD = "cold"
    LIVE = "live"
    NONE = "none"


#: what one changed guest weighs in the moves objective: a cold restart of a running guest, a
#: live update, a shut-off guest (a small weight still: an edit nobody needs is not free)
MOVE_WEIGHT = {Restart.COLD: 100, Restart.LIVE: 10, Restart.NONE: 1}


@dataclass(frozen=True, slots=True)
class Load:
    """What something takes from the nodes.  ``mem``: node → bytes of ordinary memory;
    ``pages``: (node, page size) → pages; ``vcpus``: node → vCPUs pinned within that node;
    ``remote``: bytes × (distance − 10) summed over memory node and vCPU node pairs."""

    mem: Mapping[int, int] = field(default_factory=dict)
    pages: Mapping[tuple[int, int], int] = field(default_factory=dict)
    vcpus: Mapping[int, float] = field(default_factory=dict)
    remote: int = 0


def add_load(into: dict[str, dict], load: Load, sign: int = 1) -> None:  # type: ignore[type-arg]
    """Add (or with *sign* −1 take away) *load* in the running totals *into*."""
    for key, part in (("mem", load.mem), ("pages", load.pages), ("vcpus", load.vcpus)):
        tot = into[key]
        for k, v in part.items():
            tot[k] = tot.get(k, 0) + sign * v


def empty_totals() -> dict[str, dict]:  # type: ignore[type-arg]
    return {"mem": {}, "pages": {}, "vcpus": {}}


@dataclass(frozen=True, slots=True)
class Option:
    """One node set an item may get: its memory nodes, the nodes its vCPUs are pinned to (the
    same, or the nearest nodes with CPUs when the memory nodes have none) and its load."""

    nodes: tuple[int, ...]
    cpu_nodes: tuple[int, ...]
    load: Load


@dataclass(frozen=True, slots=True)
class Item:
    guest: str
    unit: MemoryUnit
    #: vCPUs of the unit that are online (counted against the CPU over-commit ratio)
    online: int
    options: tuple[Option, ...]


@dataclass(frozen=True, slots=True)
class Choice:
    """One guest to place: its items (one per memory unit), how it is now, what moving costs."""

    guest: Guest
    items: tuple[Item, ...]
    #: its load as it is now, when its binding is one the planner keeps as it is (every unit on
    #: one node, or interleaved, on nodes the host has); ``None``: it must change to be placed
    stay: Load | None
    #: what changing it takes if it runs (or may run)
    restart: Restart
    new: bool = False

    @property
    def name(self) -> str:
        return self.guest.name

    @property
    def weight(self) -> int:
        return MOVE_WEIGHT[self.restart]


@dataclass(frozen=True, slots=True)
class Problem:
    host: Host
    #: ordinary memory each node can give guests (bytes)
    capacity: Mapping[int, int]
    #: (node, page size) → pages in the pool
    pools: Mapping[tuple[int, int], int]
    #: node → vCPUs its threads may carry (threads × ratio)
    cpu_limit: Mapping[int, float]
    #: what kept guests take (fixed)
    fixed: Load
    kept: tuple[Guest, ...]
    choices: tuple[Choice, ...]
    max_moves: int | None

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(i for c in self.choices for i in c.items)


def distance(host: Host, a: int, b: int) -> int:
    return node_distance(host, a, b)


def nearest(host: Host, start: int, among: Iterable[int]) -> list[int]:
    """*among* sorted by distance from *start* (ties by id), *start* first when in it."""
    return sorted(among, key=lambda n: (distance(host, start, n), n != start, n))


def _share(total: int, k: int, i: int) -> int:
    """The i-th of k near-equal parts of *total* (the first ones take the remainder)."""
    q, r = divmod(total, k)
    return q + (1 if i < r else 0)


def _pages(size: int, page: int) -> int:
    return -(-size // page)


def unit_load(host: Host, unit: MemoryUnit, online: int, nodes: tuple[int, ...],
              cpu_nodes: tuple[int, ...]) -> Load:
    """The load of *unit* with its memory spread evenly over *nodes* and its vCPUs over
    *cpu_nodes* (counted per node only when the vCPUs stay within one node, as NG204 counts)."""
    k = len(nodes)
    mem: dict[int, int] = {}
    pages: dict[tuple[int, int], int] = {}
    if unit.hugepage_size is not None:
        total = _pages(unit.size, unit.hugepage_size)
        for i, n in enumerate(nodes):
            pages[n, unit.hugepage_size] = _share(total, k, i)
    else:
        for i, n in enumerate(nodes):
            mem[n] = _share(unit.size, k, i)
    vcpus = {cpu_nodes[0]: float(online)} if len(cpu_nodes) == 1 and online else {}
    remote = 0
    if cpu_nodes:
        spread = sum(distance(host, a, b) - LOCAL for a in nodes for b in cpu_nodes)
        remote = unit.size * spread // (k * len(cpu_nodes))
    return Load(mem, pages, vcpus, remote)


def cpu_nodes_for(host: Host, nodes: tuple[int, ...]) -> tuple[int, ...]:
    """Where the vCPUs of memory on *nodes* go: those of *nodes* that have CPUs, else the
    nearest node with CPUs (a memory-only node)."""
    with_cpus = tuple(n for n in nodes if host.node(n).cpus)
    if with_cpus:
        return with_cpus
    others = [n.id for n in host.nodes if n.cpus]
    return (nearest(host, nodes[0], others)[0],) if others else ()


def _fits_alone(unit: MemoryUnit, nodes: tuple[int, ...], capacity: Mapping[int, int],
                pools: Mapping[tuple[int, int], int]) -> bool:
    load_nodes = len(nodes)
    if unit.hugepage_size is not None:
        need = _pages(unit.size, unit.hugepage_size)
        return all(pools.get((n, unit.hugepage_size), 0) >= _share(need, load_nodes, i)
                   for i, n in enumerate(nodes))
    return all(capacity.get(n, 0) >= _share(unit.size, load_nodes, i)
               for i, n in enumerate(nodes))


def unit_options(host: Host, unit: MemoryUnit, online: int, capacity: Mapping[int, int],
                 pools: Mapping[tuple[int, int], int]) -> tuple[Option, ...]:
    """The node sets *unit* may get: every node that can hold it alone, else the smallest k for
    which some node and its k − 1 nearest can (each such ball once); none when no k can."""
    ids = [n.id for n in host.nodes]
    for k in range(1, len(ids) + 1):
        seen: set[frozenset[int]] = set()
        out: list[Option] = []
        for start in ids:
            ball = tuple(sorted(nearest(host, start, ids)[:k]))
            if frozenset(ball) in seen:
                continue
            seen.add(frozenset(ball))
            if not _fits_alone(unit, ball, capacity, pools):
                continue
            cpus = cpu_nodes_for(host, ball)
            out.append(Option(ball, cpus, unit_load(host, unit, online, ball, cpus)))
        if out:
            return tuple(out)
    return ()


def _online(guest: Guest, unit: MemoryUnit) -> int:
    return sum(1 for v in unit.vcpus if v < guest.vcpus_current)


def binds(guest: Guest) -> MemoryMode | None:
    """The binding mode the guest asked for (strict or restrictive), if any."""
    modes = [p.mode for p in (guest.policy, *guest.policies) if p is not None]
    if MemoryMode.RESTRICTIVE in modes:
        return MemoryMode.RESTRICTIVE
    if MemoryMode.STRICT in modes:
        return MemoryMode.STRICT
    return None


def current_load(host: Host, guest: Guest, *, lenient: bool = False) -> Load | None:
    """What *guest* takes as it is now.  Without *lenient*, ``None`` unless every memory unit
    has a static nodeset of host nodes that is one node, or several interleaved (the bindings
    whose placement the model can vouch for).  With *lenient* (kept guests, which are not the
    planner's to judge), a unit with no such nodeset is counted where the simulator puts it:
    on the node its vCPUs are pinned to, else the first host node; several nodes as equal
    shares."""
    total = empty_totals()
    remote = 0
    for unit in memory_units(guest):
        ns = unit.static_nodeset
        ok = ns is not None and ns <= host.node_ids and (
            len(ns) == 1 or (unit.policy is not None
                             and unit.policy.mode is MemoryMode.INTERLEAVE))
        pinned = vcpu_host_cpus(guest, unit.vcpus)
        cpu_nodes = tuple(sorted(host.nodes_of_cpus(pinned))) if pinned else ()
        if not ok:
            if not lenient:
                return None
            if ns is not None and ns & host.node_ids:
                ns = ns & host.node_ids
            elif len(cpu_nodes) == 1:
                ns = frozenset(cpu_nodes)
            else:
                ns = frozenset({host.nodes[0].id})
        assert ns is not None
        nodes = tuple(sorted(ns))
        load = unit_load(host, unit, _online(guest, unit), nodes, cpu_nodes or nodes)
        add_load(total, load)
        remote += load.remote
    return Load(total["mem"], total["pages"], total["vcpus"], remote)


def restart_of(guest: Guest, running: bool | None, items: tuple[Item, ...]) -> Restart:
    """What moving *guest* takes: nothing when it is shut off; a live update when it is
    restrictive and stays restrictive (every unit on one node); else a cold restart.  A guest
    whose state is unknown (``None``) is taken as running."""
    if running is False:
        return Restart.NONE
    if binds(guest) is MemoryMode.RESTRICTIVE and all(
            len(o.nodes) == 1 for i in items for o in i.options):
        return Restart.LIVE
    return Restart.COLD


def usable(host: Host, reserve: Reserve = DEFAULT_RESERVE) -> dict[int, int]:
    """Per node, the ordinary memory the plan may give guests: the audit's capacity (MemTotal
    less hugepage pools less the host reserve: NG101/NG108), but no more than the host can give
    now — MemFree above the *min* watermark plus the page cache reclaim can drop, as the
    simulator (NG110) and NG111 count it: a host whose own processes hold memory on a node has
    that much less there, and a plan filling the node to its capacity would be OOM-killed.  On
    a live host pass the host before its running guests (core/whatif.host_before_guests)."""
    from numaguard.core.scenario import sim_host

    cap = capacities(host, reserve)
    now = {n.id: max(0, n.free - n.watermark_min) + n.reclaimable
           for n in sim_host(host).nodes}
    return {n: min(c, now.get(n, c)) for n, c in cap.items()}


def build(host: Host, guests: Iterable[Guest], *, keep: Iterable[str] = (),
          new: Iterable[Guest] = (), running: frozenset[str] | None = None,
          reserve: Reserve = DEFAULT_RESERVE, cpu_overcommit_ratio: float = 1.0,
          max_moves: int | None = None, free_now: bool = True) -> Problem:
    """The problem of placing *guests* (and the *new* ones) on *host*, the guests named in
    *keep* staying as they are."""
    capacity = usable(host, reserve) if free_now else capacities(host, reserve)
    pools = {(n.id, p.size): p.total for n in host.nodes for p in n.hugepages}
    cpu_limit = {n.id: len(n.cpus) * cpu_overcommit_ratio for n in host.nodes}
    keep = frozenset(keep)
    fixed = empty_totals()
    remote = 0
    kept: list[Guest] = []
    choices: list[Choice] = []
    entries = [(g, False) for g in guests] + [(g, True) for g in new]
    names = [g.name for g, _ in entries]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[0]
        raise ValueError(f"two guests named {dup!r}")
    unknown = sorted(keep - set(names))
    if unknown:
        raise ValueError(f"no guest {unknown[0]!r} to keep")
    for g, is_new in entries:
        if g.name in keep:
            load = current_load(host, g, lenient=True)
            assert load is not None
            add_load(fixed, load)
            remote += load.remote
            kept.append(g)
            continue
        items = tuple(
            Item(g.name, u, _online(g, u),
                 unit_options(host, u, _online(g, u), capacity, pools))
            for u in memory_units(g) if u.size > 0)
        is_running = False if is_new else (None if running is None else g.name in running)
        stay = None if is_new else current_load(host, g)
        choices.append(Choice(g, items, stay, restart_of(g, is_running, items), is_new))
    return Problem(host, capacity, pools, cpu_limit,
                   Load(fixed["mem"], fixed["pages"], fixed["vcpus"], remote),
                   tuple(kept), tuple(choices), max_moves)
