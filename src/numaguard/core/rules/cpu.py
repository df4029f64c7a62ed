"""CPU rules (NG2xx): where the vCPUs run compared with where their memory is.

Terms used by every rule here:

* a *memory unit* is a guest NUMA cell, or the whole guest when it has no cells
  (core/capacity.py); its vCPUs are the cell's ``cpus``, or all of the guest's vCPUs;
* the host CPUs a vCPU may run on are its ``<vcpupin>``, else the ``<vcpu cpuset>``, else every
  online host CPU: libvirt's ``qemuProcessSetupPid`` (src/qemu/qemu_process.c) gives a thread
  without a cpumask the affinity of all online CPUs, "we can't assume libvirtd itself is
  running on all pCPUs";
* the host nodes of a vCPU are the nodes owning those CPUs (CPUs no node owns are ignored);
* with ``<vcpu placement='auto'>`` libvirt ignores the cpuset and pins the vCPUs to the nodes
  numad advises at start (NG402), so these rules look only at statically placed vCPUs.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from numaguard.core.capacity import MemoryUnit, is_mode
from numaguard.core.fallback import node_distance
from numaguard.core.findings import Finding, Fix, Severity
from numaguard.core.rules import Context, rule
from numaguard.core.rules.common import nodes_text, numatune_fix, size
from numaguard.cpuset import format_bitmap
from numaguard.display import shell_quote
from numaguard.model.guest import Guest
from numaguard.model.policy import MemoryMode, Placement
from numaguard.model.topology import Host

# --- helpers shared by the NG2xx rules ---------------------------------------------------------


def local_cpus(host: Host, nodes: Iterable[int]) -> frozenset[int]:
    """Host CPUs next to the memory of *nodes*: the CPUs of those nodes, or, when none of them
    has CPUs (CXL or other memory-only nodes), the CPUs of the nearest nodes that have some."""
    wanted = [n for n in nodes if n in host.node_ids]
    cpus = frozenset().union(*(host.node(n).cpus for n in wanted))
    if cpus or not wanted:
        return cpus
    with_cpus = [n for n in host.nodes if n.cpus]
    if not with_cpus:
        return frozenset()
    best = min(min(node_distance(host, m, c.id) for m in wanted) for c in with_cpus)
    return frozenset().union(*(c.cpus for c in with_cpus
                               if min(node_distance(host, m, c.id) for m in wanted) == best))


def vcpupin_commands(guest: str, vcpus: Iterable[int], cpus: frozenset[int]) -> tuple[str, ...]:
    """``virsh vcpupin`` lines that pin each vCPU to *cpus* in the persistent definition."""
    cpulist = format_bitmap(cpus)
    g = shell_quote(guest)
    return tuple(f"virsh vcpupin {g} {v} {cpulist} --config" for v in sorted(vcpus))


def emulatorpin_command(guest: str, cpus: frozenset[int]) -> str:
    return f"virsh emulatorpin {shell_quote(guest)} {format_bitmap(cpus)} --config"


def _vcpus_text(vcpus: Iterable[int]) -> str:
    ids = sorted(vcpus)
    return f"vCPU {ids[0]}" if len(ids) == 1 else f"vCPUs {format_bitmap(ids)}"


def _near(host: Host, cpus: frozenset[int], ns: frozenset[int]) -> str:
    """Where *cpus* are, said against the memory's nodes *ns*."""
    if host.nodes_of_cpus(cpus) <= ns:
        return nodes_text(ns)
    return f"{nodes_text(host.nodes_of_cpus(cpus))}, nearest to {nodes_text(ns)}"


def _mode(unit: MemoryUnit) -> str:
    return unit.policy.mode.value if unit.policy is not None else "unbound"


def _memory_nodeset(ctx: Context, unit: MemoryUnit) -> frozenset[int] | None:
    """The unit's static nodeset when every node of it exists (NG107 reports the others)."""
    ns = unit.static_nodeset
    if ns is None or not ns or not ns <= ctx.host.node_ids:
        return None
    return ns


def _statically_placed(guest: Guest) -> bool:
    return guest.vcpu_placement is Placement.STATIC


def _guest_memory_nodes(ctx: Context, guest: Guest) -> frozenset[int]:
    nodes: set[int] = set()
    for u in ctx.units_by_guest.get(guest.name, ()):
        nodes |= _memory_nodeset(ctx, u) or frozenset()
    return frozenset(nodes)


def _units_of(ctx: Context) -> Iterator[tuple[Guest, MemoryUnit, frozenset[int]]]:
    """(guest, unit, memory nodeset) for units with a usable static nodeset of statically
    placed guests."""
    for u in ctx.units:
        guest = ctx.guest_by_name[u.guest]
        ns = _memory_nodeset(ctx, u)
        if ns is None or not _statically_placed(guest) or not u.vcpus:
            continue
        yield guest, u, ns


def _pinned_nodes(ctx: Context, guest: Guest, vcpus: Iterable[int]) -> dict[int, frozenset[int]]:
    """Host nodes of each pinned vCPU (vCPUs that may run anywhere, or only on CPUs no node
    owns, are left out)."""
    if not guest.pins:   # every vCPU has the <vcpu cpuset>, or may run anywhere
        if guest.cpuset is None:
            return {}
        nodes = ctx.host.nodes_of_cpus(guest.cpuset)
        return dict.fromkeys(sorted(vcpus), nodes) if nodes else {}
    out: dict[int, frozenset[int]] = {}
    for v in sorted(vcpus):
        allowed = guest.vcpu_cpus(v)
        if allowed is None:
            continue
        nodes = ctx.host.nodes_of_cpus(allowed)
        if nodes:
            out[v] = nodes
    return out


def _repin_fix(ctx: Context, guest: Guest, unit: MemoryUnit, vcpus: list[int],
               ns: frozenset[int], why: str) -> Fix:
    """Pin *vcpus* next to the unit's memory; when no CPU is near it, move the memory to the
    vCPUs instead."""
    cpus = local_cpus(ctx.host, ns)
    if cpus:
        return Fix(guest=guest.name,
                   description=f"pin {_vcpus_text(vcpus)} of {guest.name} to host CPUs "
                               f"{format_bitmap(cpus)} ({_near(ctx.host, cpus, ns)}, {why})",
                   commands=vcpupin_commands(guest.name, vcpus, cpus))
    vnodes = frozenset().union(*_pinned_nodes(ctx, guest, vcpus).values())
    mode = unit.policy.mode.value if unit.policy is not None else "strict"
    return numatune_fix(ctx, unit, mode, vnodes, "no host CPU is near its memory")


# --- NG201 ------------------------------------------------------------------------------------

@rule("NG201", "cpu-memory-split")
def cpu_memory_split(ctx: Context) -> Iterator[Finding]:
    """vCPUs pinned to host nodes outside their memory's nodeset: their memory accesses are remote.

    What it checks: for every memory unit with a static nodeset (any mode) — the whole guest,
    or each guest NUMA cell with that cell's vCPUs — the vCPUs pinned by ``<vcpupin>`` or
    ``<vcpu cpuset>`` to CPUs of host nodes that are not in the nodeset.  A vCPU pinned only
    outside the nodeset never runs next to its memory; one whose CPU list straddles the
    nodeset and other nodes runs there whenever the scheduler puts it there.

    Why it matters: the memory policy decides where pages are allocated, the pinning decides
    where the vCPU threads execute; libvirt applies both as written and never reconciles them.
    Every access from a vCPU on another node crosses the interconnect (the SLIT distance, e.g.
    21 against 10 locally, is the relative latency), and the kernel's automatic NUMA balancing
    cannot move pages that ``strict`` binds, nor the pinned threads.

    A guest NUMA cell whose pinned vCPUs *all* sit on nodes disjoint from the cell's memory is
    reported by NG205 (guest-cell-mismatch) instead, once; NG201 reports the cells whose vCPUs
    only partly leave the cell's memory nodes, and every guest without guest NUMA cells.
    Unpinned vCPUs are NG202's subject.

    Severity: **warning** (performance, not safety).

    Fix: pin the vCPUs to CPUs of the memory's nodes
    (``virsh vcpupin GUEST VCPU CPULIST --config``); when those nodes have no CPUs (memory-only
    nodes) move the memory to the vCPUs' nodes instead.
    """
    for guest, unit, ns in _units_of(ctx):
        pinned = _pinned_nodes(ctx, guest, unit.vcpus)
        if not pinned:
            continue
        if unit.cell is not None and not frozenset().union(*pinned.values()) & ns:
            continue  # NG205
        outside = {v: nodes for v, nodes in pinned.items() if not nodes <= ns}
        if not outside:
            continue
        vcpus = sorted(outside)
        away = frozenset().union(*outside.values()) - ns
        remote_only = [v for v in vcpus if not outside[v] & ns]
        everywhere = len(remote_only) == len(vcpus)
        are = "is" if len(vcpus) == 1 else "are"
        how = (f"{are} pinned only to {nodes_text(away)}" if everywhere
               else f"may also run on {nodes_text(away)}")
        ev: dict[str, object] = {
            "vcpus": vcpus,
            "remote_only_vcpus": len(remote_only),
            "vcpu_nodes": sorted(frozenset().union(*outside.values())),
            "memory_nodes": sorted(ns),
            "memory_bytes": unit.size,
        }
        if unit.cell is not None:
            ev["cell"] = unit.cell
        yield Finding(
            "NG201", Severity.WARNING,
            f"{unit.label}: {_vcpus_text(vcpus)} {how} while its {size(unit.size)} of memory "
            f"is {_mode(unit)} on {nodes_text(ns)}; "
            f"{'every' if everywhere else 'each'} memory access from "
            f"{'there' if everywhere else 'those nodes'} is remote.",
            guests=(guest.name,), nodes=tuple(sorted(ns | away)), evidence=ev,
            fix=_repin_fix(ctx, guest, unit, vcpus, ns, "where its memory is"),
        )


# --- NG202 ------------------------------------------------------------------------------------

@rule("NG202", "unpinned-bound-memory")
def unpinned_bound_memory(ctx: Context) -> Iterator[Finding]:
    """Memory bound to a nodeset while some of its vCPUs may run on any host CPU.

    What it checks: every memory unit (the guest, or a guest NUMA cell) whose memory has a
    static nodeset while some of its vCPUs have neither a ``<vcpupin>`` nor a
    ``<vcpu cpuset>``, in a guest whose vCPU placement is static.  A nodeset whose nodes own
    every host CPU is not reported: no pinning could bring the vCPUs closer (how such memory
    fills its nodes is NG104's subject).

    Why it matters: libvirt gives such vCPU threads the affinity of every online host CPU
    (``qemuProcessSetupPid`` in src/qemu/qemu_process.c: "we can't assume libvirtd itself is
    running on all pCPUs, so we need to explicitly set the spawned QEMU instance to all
    pCPUs"), while the memory stays on its nodeset (``strict``: QEMU ``policy=bind`` plus
    cgroup ``cpuset.mems``).  The scheduler moves the vCPUs to whichever node is idle, and from
    any other node every access is remote; automatic NUMA balancing may pull the threads back
    but cannot move bound pages.

    Severity: **warning** for ``strict``, ``restrictive`` and ``preferred`` memory (the guest
    was meant to be local to its nodes); **info** for ``interleave``, whose pages are spread
    over the nodeset anyway, so only accesses from nodes outside the set get slower.

    Fix: pin the unpinned vCPUs to the CPUs of the memory's nodes
    (``virsh vcpupin GUEST VCPU CPULIST --config``) and the emulator threads with them
    (``virsh emulatorpin GUEST CPULIST --config``), or let numad place the whole guest
    (``placement='auto'``, NG402).
    """
    every_cpu = frozenset().union(*(n.cpus for n in ctx.host.nodes))
    emulator: dict[str, str] = {}  # the emulatorpin line of each guest, made once per guest
    for guest, unit, ns in _units_of(ctx):
        loose = [v for v in sorted(unit.vcpus) if guest.vcpu_cpus(v) is None]
        if not loose:
            continue
        cpus = local_cpus(ctx.host, ns)
        if cpus >= every_cpu:
            continue  # every CPU is next to the memory: no pinning would narrow anything
        severity = Severity.INFO if is_mode(unit, MemoryMode.INTERLEAVE) else Severity.WARNING
        host_cpus = len(every_cpu)
        ev: dict[str, object] = {
            "vcpus": loose,
            "unpinned_vcpus": len(loose),
            "memory_nodes": sorted(ns),
            "memory_bytes": unit.size,
            "host_cpus": host_cpus,
        }
        if unit.cell is not None:
            ev["cell"] = unit.cell
        commands = vcpupin_commands(guest.name, loose, cpus)
        if guest.emulatorpin is None:
            if guest.name not in emulator:
                emulator[guest.name] = emulatorpin_command(
                    guest.name, local_cpus(ctx.host, _guest_memory_nodes(ctx, guest)))
            commands += (emulator[guest.name],)
        fix = Fix(guest=guest.name,
                  description=f"pin {_vcpus_text(loose)} of {guest.name} to host CPUs "
                              f"{format_bitmap(cpus)} ({_near(ctx.host, cpus, ns)}, where its "
                              "memory is)"
                              + ("" if guest.emulatorpin is not None
                                 else " and its emulator threads with them"),
                  commands=commands)
        yield Finding(
            "NG202", severity,
            f"{unit.label}: its {size(unit.size)} of memory is {_mode(unit)} on "
            f"{nodes_text(ns)} but {_vcpus_text(loose)} {'is' if len(loose) == 1 else 'are'} "
            f"not pinned and may run on any of the host's {host_cpus} CPUs; from another node "
            "every memory access is remote.",
            guests=(guest.name,), nodes=tuple(sorted(ns)), evidence=ev, fix=fix,
        )


# --- NG203 ------------------------------------------------------------------------------------

def _unit_fits(ctx: Context, unit: MemoryUnit, node: int) -> int:
    """What node *node* can hold of this unit's kind of memory: its capacity, or its pool of
    the unit's hugepage size."""
    if unit.on_hugepages:
        pool = ctx.host.node(node).hugepage_pool(unit.hugepage_size or 0)
        return pool.total_bytes if pool is not None else 0
    return ctx.capacity[node]


@rule("NG203", "needless-span")
def needless_span(ctx: Context) -> Iterator[Finding]:
    """A guest spread over several nodes although one node could hold its memory and vCPUs.

    What it checks: guests *without* guest NUMA cells whose memory is ``strict``,
    ``restrictive`` or ``preferred`` on a static nodeset of two or more nodes, where one node of
    that set alone could hold the guest: its maximum memory fits the node's capacity (MemTotal
    less hugepages less the host reserve; for hugepage-backed guests, the node's pool of that
    page size) and its vCPU count is at most the node's CPU count.

    Why it matters: without guest NUMA cells the guest cannot see that its memory is split, so
    it cannot keep its threads near their pages.  ``strict`` and ``preferred`` fill the nodes of
    the set one after another, starting at the node of the CPU that faults first (kernel
    zonelist order, see NG104), so part of the memory ends up remote from most vCPUs for no
    gain.  ``interleave`` spreads memory on purpose (bandwidth) and is not reported.

    Severity: **info**.

    Fix: bind the guest to the single node of the set with the most room left — its capacity
    less the memory other guests can take only there — keeping the mode
    (``virsh numatune GUEST --mode MODE --nodeset N --config``, cold restart), and pin its vCPUs
    to that node's CPUs (``virsh vcpupin``).
    """
    host = ctx.host
    for unit in ctx.units:
        guest = ctx.guest_by_name[unit.guest]
        if guest.cells or unit.cell is not None:
            continue
        if not is_mode(unit, MemoryMode.STRICT, MemoryMode.RESTRICTIVE, MemoryMode.PREFERRED):
            continue
        ns = _memory_nodeset(ctx, unit)
        if ns is None or len(ns) < 2:
            continue
        candidates = [n for n in sorted(ns)
                      if unit.size <= _unit_fits(ctx, unit, n)
                      and guest.vcpus <= len(host.node(n).cpus)]
        if not candidates:
            continue
        room = {n: _unit_fits(ctx, unit, n) - (0 if unit.on_hugepages
                                                else ctx.pledged_alone(n, guest.name))
                for n in candidates}
        best = max(candidates, key=lambda n: (room[n], -n))
        node = host.node(best)
        mode = _mode(unit)
        fix = numatune_fix(ctx, unit, mode, frozenset({best}), f"node {best} holds it alone")
        misplaced = [v for v in range(guest.vcpus)
                     if (allowed := guest.vcpu_cpus(v)) is None or not allowed <= node.cpus]
        if _statically_placed(guest) and misplaced:
            commands = fix.commands + vcpupin_commands(guest.name, misplaced, node.cpus)
            if guest.emulatorpin is not None and not guest.emulatorpin <= node.cpus:
                commands += (emulatorpin_command(guest.name, node.cpus),)
            fix = Fix(guest=fix.guest, mode=fix.mode, nodeset=fix.nodeset, cell=fix.cell,
                      description=f"{fix.description}; pin {_vcpus_text(misplaced)} to node "
                                  f"{best}'s CPUs {format_bitmap(node.cpus)}",
                      commands=commands)
        kind = (f"its {size(unit.hugepage_size or 0)} hugepage pool holds "
                if unit.on_hugepages else "capacity ")
        yield Finding(
            "NG203", Severity.INFO,
            f"{guest.name} is {mode} on {nodes_text(ns)} although its {size(unit.size)} and "
            f"{guest.vcpus} vCPUs fit on node {best} alone ({kind}"
            f"{size(_unit_fits(ctx, unit, best))}, {len(node.cpus)} CPUs); spreading it only "
            "adds remote accesses.",
            guests=(guest.name,), nodes=tuple(sorted(ns)),
            evidence={"memory_bytes": unit.size, "vcpus": guest.vcpus,
                      "memory_nodes": sorted(ns), "suggested_node": best,
                      "node_capacity_bytes": _unit_fits(ctx, unit, best),
                      "node_room_bytes": room[best], "node_cpus": len(node.cpus)},
            fix=fix,
        )


# --- NG204 ------------------------------------------------------------------------------------

@dataclass
class _NodeLoad:
    node: int
    cpus: int
    limit: int
    by_guest: dict[str, list[int]]
    #: number of vCPUs in by_guest, kept up to date by _node_loads (read in a hot loop)
    vcpus: int = 0


def _node_loads(ctx: Context) -> dict[int, _NodeLoad]:
    ratio = ctx.options.cpu_overcommit_ratio
    loads = {n.id: _NodeLoad(n.id, len(n.cpus), math.floor(len(n.cpus) * ratio + 1e-9), {})
             for n in ctx.host.nodes}
    host = ctx.host
    #: the one node whose CPUs hold all of a CPU set (None: several, or none), per set
    home: dict[frozenset[int], int | None] = {}
    def home_of(allowed: frozenset[int]) -> int | None:
        if allowed not in home:
            nodes = host.nodes_of_cpus(allowed)
            n = next(iter(nodes)) if len(nodes) == 1 else None
            home[allowed] = n if n is not None and allowed <= host.node(n).cpus else None
        return home[allowed]

    for guest in ctx.guests:
        if not _statically_placed(guest):
            continue
        if not guest.pins:   # every vCPU has the <vcpu cpuset>, or may run anywhere
            n = home_of(guest.cpuset) if guest.cpuset and guest.vcpus_current > 0 else None
            if n is not None:
                loads[n].by_guest.setdefault(guest.name, []).extend(
                    range(guest.vcpus_current))
                loads[n].vcpus += guest.vcpus_current
            continue
        for v in range(guest.vcpus_current):
            allowed = guest.vcpu_cpus(v)
            n = home_of(allowed) if allowed else None
            if n is not None:
                loads[n].by_guest.setdefault(guest.name, []).append(v)
                loads[n].vcpus += 1
    return loads


def _targets(ctx: Context, load: _NodeLoad, roomiest: list[_NodeLoad], name: str,
             vcpus: list[int]) -> list[_NodeLoad]:
    """Nodes that can take these vCPUs, and the memory the guest binds to the loaded node.
    *roomiest*: every node's load, most free vCPU slots first (so that only nodes with room
    for the vCPUs are looked at); the nodes come back in that order."""
    if not roomiest or roomiest[0].limit - roomiest[0].vcpus < len(vcpus):
        return []   # no node has room for them (often: every node is over-committed)
    here = frozenset({load.node})
    bound_here = [u for u in ctx.units_by_guest.get(name, ()) if u.static_nodeset == here]
    need = sum(u.size for u in bound_here if not u.on_hugepages)
    paged = [u for u in bound_here if u.on_hugepages]
    out = []
    for other in roomiest:
        if other.limit - other.vcpus < len(vcpus):
            break
        if other.node == load.node or other.cpus == 0:
            continue
        if need and need > ctx.capacity[other.node] - ctx.pledged_alone(other.node, name):
            continue
        if any(u.size > _unit_fits(ctx, u, other.node) for u in paged):
            continue
        out.append(other)
    return out


def _move_fix(ctx: Context, load: _NodeLoad, roomiest: list[_NodeLoad]) -> Fix:
    """Move one guest's vCPUs (and the memory it binds to this node) to the node with the most
    free vCPU slots: the smallest guest that covers the excess, else the largest that fits.
    When no node can take any of them, boot the guest with the most vCPUs here with fewer."""
    host = ctx.host
    excess = load.vcpus - load.limit
    order = sorted(load.by_guest.items(),
                   key=lambda kv: (0, len(kv[1]), kv[0]) if len(kv[1]) >= excess
                   else (1, -len(kv[1]), kv[0]))
    for name, vcpus in order:
        targets = _targets(ctx, load, roomiest, name, vcpus)
        if not targets:
            continue
        # (node ids are unique: the order of *targets* cannot decide)
        target = max(targets, key=lambda t: (t.limit - t.vcpus,
                                             -node_distance(host, load.node, t.node), -t.node))
        guest = ctx.guest_by_name[name]
        cpus = host.node(target.node).cpus
        commands = vcpupin_commands(name, vcpus, cpus)
        if guest.emulatorpin is not None and guest.emulatorpin <= host.node(load.node).cpus:
            commands += (emulatorpin_command(name, cpus),)
        moved = ""
        for u in ctx.units_by_guest.get(name, ()):
            if u.static_nodeset != frozenset({load.node}):
                continue
            assert u.policy is not None
            commands += numatune_fix(ctx, u, u.policy.mode.value, frozenset({target.node}),
                                     "its vCPUs move there").commands
            moved = f", and bind its memory there instead of node {load.node}"
        return Fix(guest=name,
                   description=f"pin {_vcpus_text(vcpus)} of {name} to node {target.node}'s CPUs "
                               f"{format_bitmap(cpus)} ({target.limit - target.vcpus} free "
                               f"vCPU slots){moved}",
                   commands=commands)
    # No node can take them: fewer online vCPUs (libvirt onlines vCPUs 0..N-1).
    name, vcpus = max(load.by_guest.items(), key=lambda kv: (len(kv[1]), kv[0]))
    guest = ctx.guest_by_name[name]
    keep = max(len(vcpus) - excess, 0)
    # the most online vCPUs (down to 1) that leave at most *keep* of these here: below the
    # keep-th smallest of them (a search from vcpus_current down, in one step)
    ordered = sorted(vcpus)
    current = guest.vcpus_current
    if current > 1 and keep < len(ordered):
        current = max(1, min(current, ordered[keep]))
    left = excess - (len(vcpus) - bisect_left(ordered, current))
    rest = f" (that leaves {left} too many: repeat for another guest)" if left > 0 else ""
    if current >= guest.vcpus_current:   # already at one vCPU: nothing to take away
        return Fix(guest=name,
                   description=f"no other node has free vCPU slots for these guests and "
                               f"{name} already runs {guest.vcpus_current} vCPU"
                               f"{'s' if guest.vcpus_current > 1 else ''}: move a guest to "
                               "another host, or accept the overcommit with a higher "
                               "--cpu-overcommit")
    return Fix(guest=name,
               description=f"no other node has free vCPU slots for these guests: boot {name} "
                           f"with {current} vCPU{'s' if current > 1 else ''} instead of "
                           f"{guest.vcpus_current}{rest}, or accept the overcommit with a "
                           "higher --cpu-overcommit",
               commands=(f"virsh setvcpus {shell_quote(name)} {current} --config",))


@rule("NG204", "node-cpu-overcommit")
def node_cpu_overcommit(ctx: Context) -> Iterator[Finding]:
    """More vCPUs pinned to one node's CPUs than it has hardware threads (times the ratio).

    What it checks: for every host node, the online vCPUs (``current``, vCPUs 0..current-1) of
    statically placed guests whose allowed CPUs (``<vcpupin>``, else ``<vcpu cpuset>``) all lie
    within that node, against the node's logical CPUs × ``--cpu-overcommit`` (default
    1.0).  vCPUs that may run on several nodes, or anywhere, are not counted: the scheduler
    can move them.

    Why it matters: pinned vCPU threads cannot leave their CPUs, so when more of them want to
    run than the node has threads they wait for each other (steal time inside the guests) while
    other nodes may idle.  Pinning to one node is usually done to keep vCPUs next to their
    memory, so the usual answer is to move a whole guest — vCPUs and memory — not to unpin it.

    Severity: **warning**.

    Fix: move one guest — the smallest whose vCPUs on the node cover the excess, else the
    largest that some node can take — to the node with the most free vCPU slots that can
    also hold the memory it binds to this node (capacity less what other guests bind there
    alone): ``virsh vcpupin GUEST VCPU CPULIST --config`` for each vCPU, ``virsh emulatorpin``
    when the emulator is pinned here, ``virsh numatune`` for its memory.  When no node can take
    any of them, boot the guest with the most vCPUs here with fewer
    (``virsh setvcpus GUEST N --config``), or raise ``--cpu-overcommit``.
    """
    ratio = ctx.options.cpu_overcommit_ratio
    loads = _node_loads(ctx)
    roomiest = sorted(loads.values(), key=lambda t: t.limit - t.vcpus, reverse=True)
    for load in loads.values():
        if load.vcpus <= load.limit:
            continue
        guests = tuple(sorted(load.by_guest))
        yield Finding(
            "NG204", Severity.WARNING,
            f"node {load.node}: {load.vcpus} vCPUs of {len(guests)} "
            f"guest{'s' if len(guests) > 1 else ''} are pinned to its {load.cpus} CPUs "
            f"(at most {load.limit} at ratio {ratio:g}); {load.vcpus - load.limit} too many, so "
            "they wait for each other while other nodes may idle.",
            guests=guests, nodes=(load.node,),
            evidence={"node": load.node, "pinned_vcpus": load.vcpus, "node_cpus": load.cpus,
                      "ratio": ratio, "limit_vcpus": load.limit,
                      "excess_vcpus": load.vcpus - load.limit,
                      "guest_vcpus": {g: len(v) for g, v in sorted(load.by_guest.items())}},
            fix=_move_fix(ctx, load, roomiest),
        )


# --- NG205 ------------------------------------------------------------------------------------

@rule("NG205", "guest-cell-mismatch")
def guest_cell_mismatch(ctx: Context) -> Iterator[Finding]:
    """A guest NUMA cell whose memory and pinned vCPUs sit on different host nodes.

    What it checks: every guest NUMA cell (``<cpu><numa><cell>``) whose effective memory policy
    (its ``<memnode>``, else ``<memory>``) has a static nodeset and whose pinned vCPUs run only
    on host nodes *disjoint* from that nodeset.  Decision: disjoint, not "not a subset" — a
    cell whose vCPUs only partly leave its memory nodes is NG201's finding, so each situation
    is reported once.

    Why it matters: QEMU tells the guest (ACPI SRAT/SLIT) that the cell's vCPUs and memory are
    local to each other, so the guest kernel places each task's pages in the cell of the CPU it
    runs on — memory it believes local.  On the host that memory is on another node: every
    access the guest optimised to be local is remote, typically with the cells crossed (cell
    0's vCPUs on the node holding cell 1's memory and the reverse).  Neither the guest's nor
    the host's NUMA balancing can repair it: the guest sees nothing wrong, and the host cannot
    move pinned threads or bound pages.

    Severity: **warning**.

    Fix: pin the cell's vCPUs to the CPUs of the cell's memory nodes
    (``virsh vcpupin GUEST VCPU CPULIST --config``); when those nodes have no CPUs, move the
    cell's memory (``<memnode>``) to the vCPUs' nodes instead.
    """
    for guest, unit, ns in _units_of(ctx):
        if unit.cell is None:
            continue
        pinned = _pinned_nodes(ctx, guest, unit.vcpus)
        if not pinned:
            continue
        vnodes = frozenset().union(*pinned.values())
        if vnodes & ns:
            continue
        vcpus = sorted(pinned)
        crossed = sorted(
            u.cell for u in ctx.units_by_guest[guest.name]
            if u.cell is not None and u.cell != unit.cell
            and (u.static_nodeset or frozenset()) & vnodes)
        there = (f", where cell{'s' if len(crossed) > 1 else ''} "
                 f"{format_bitmap(crossed)} keep{'' if len(crossed) > 1 else 's'} "
                 "memory" if crossed else "")
        ev: dict[str, object] = {
            "cell": unit.cell, "vcpus": vcpus, "vcpu_nodes": sorted(vnodes),
            "memory_nodes": sorted(ns), "memory_bytes": unit.size,
        }
        if crossed:
            ev["cells_on_vcpu_nodes"] = crossed
        yield Finding(
            "NG205", Severity.WARNING,
            f"{unit.label}: its {size(unit.size)} of memory is {_mode(unit)} on "
            f"{nodes_text(ns)} but its {_vcpus_text(vcpus)} "
            f"{'is' if len(vcpus) == 1 else 'are'} pinned to "
            f"{nodes_text(vnodes)}{there}; the guest treats that memory as local to those "
            "vCPUs, so every access it believes local is remote.",
            guests=(guest.name,), nodes=tuple(sorted(ns | vnodes)), evidence=ev,
            fix=_repin_fix(ctx, guest, unit, vcpus, ns, f"where cell {unit.cell}'s memory is"),
        )
