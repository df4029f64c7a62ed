"""Memory rules (NG1xx): bound memory that will not fit, silent strict, fill order, swap."""

from __future__ import annotations

import re
from collections.abc import Iterator

from numaguard.core.capacity import MemoryUnit, hugepages_reserved, vcpu_host_cpus
from numaguard.core.findings import Finding, Fix, Severity
from numaguard.core.flow import solve
from numaguard.core.rules import Context, rule
from numaguard.core.rules.common import (
    first_named,
    names_text,
    nodes_text,
    numatune_fix,
    relaxed_mode,
    size,
)
from numaguard.core.rules.simulation import fate
from numaguard.model.guest import Guest
from numaguard.model.policy import MemoryMode, MemoryPolicy, Placement
from numaguard.units import GiB


def _who(units: list[MemoryUnit]) -> str:
    """The largest units first, at most ten, then "and N more" (the finding's ``guests``
    names every guest)."""
    return first_named(sorted(units, key=lambda u: (-u.size, u.label)), lambda u: (
        f"{u.label} ({size(u.size)} {u.policy.mode.value if u.policy else 'unbound'})"))


def _are(units: list[MemoryUnit], one: str = "is", many: str = "are") -> str:
    return one if len({u.label for u in units}) == 1 else many


def _node_evidence(ctx: Context, nodes: frozenset[int]) -> dict[str, object]:
    ev: dict[str, object] = {
        "mem_total_bytes": sum(ctx.host.node(n).mem_total for n in nodes),
        "hugepages_reserved_bytes": sum(hugepages_reserved(ctx.host.node(n)) for n in nodes),
        "host_reserve_bytes": sum(ctx.options.host_reserve.of(ctx.host.node(n)) for n in nodes),
        "capacity_bytes": sum(ctx.capacity[n] for n in nodes),
    }
    frees = [ctx.host.node(n).mem_free for n in nodes]
    if all(f is not None for f in frees):
        ev["mem_free_bytes"] = sum(f for f in frees if f is not None)
    return ev


def _components(nodesets: list[frozenset[int]]) -> list[frozenset[int]]:
    """Connected pieces of overlapping nodesets."""
    pieces: list[set[int]] = []
    for ns in nodesets:
        merged = set(ns)
        rest = []
        for p in pieces:
            if p & merged:
                merged |= p
            else:
                rest.append(p)
        pieces = [*rest, merged]
    return sorted((frozenset(p) for p in pieces), key=sorted)


@rule("NG101", "strict-overcommit")
def strict_overcommit(ctx: Context) -> Iterator[Finding]:
    """Bound guests need more memory than their nodes can give, or leave too little headroom.

    Memory in ``strict`` mode (QEMU ``policy=bind`` plus the cgroup ``cpuset.mems`` libvirt
    sets) or ``restrictive`` mode (cgroup only) may come only from its nodeset.  When the
    nodeset runs short the kernel reclaims, then swaps the guest, then the OOM killer kills a
    task inside the cpuset (constraint ``CPUSET``), usually qemu itself — without any warning
    beforehand.

    Capacity of a node is MemTotal less hugepages reserved there less the host reserve
    (``--host-reserve``, default max(1 GiB, 5 % of MemTotal)); see docs/capacity.md.  Demand is
    each guest's maximum memory (per guest NUMA cell when it has memnodes).  Nodesets overlap in
    real hosts (vm1 on 0, vm2 on 0-1, vm3 on 1), so feasibility is decided as a transportation
    problem (max-flow, Hall's condition), not by summing per node; the finding names the
    smallest over-committed set of nodes and the guests bound inside it.

    Severity: **critical** when the bound demand exceeds the capacity of some node set;
    **warning** when it fits but a node's headroom — what anything else may take there before a
    bound guest runs short — is under ``--min-headroom`` (default 4 GiB): the article's "an
    application or a second guest lands on node 0 and takes 2 or 3 GB".

    Fix: ``preferred`` (one node) or ``interleave`` (several) lets the kernel spill to other
    nodes instead of killing; or bind to more nodes; or move guests.
    """
    flow = ctx.bound_flow
    blocked: set[int] = set()
    for oc in flow.overcommits:
        blocked |= oc.nodes
        units = ctx.units_inside(oc.nodes)
        biggest = max(units, key=lambda u: u.size)
        ev = {"demand_bytes": oc.demand, **_node_evidence(ctx, oc.nodes),
              "shortfall_bytes": oc.shortfall}
        yield Finding(
            "NG101", Severity.CRITICAL,
            f"{_who(units)} {_are(units)} bound to {nodes_text(oc.nodes)} and "
            f"{_are(units, 'needs', 'need')} "
            f"{size(oc.demand)}, "
            f"but {nodes_text(oc.nodes)} can give guests only {size(oc.capacity)}: "
            f"{size(oc.shortfall)} short, so the kernel swaps them and then OOM-kills; "
            f"{fate(ctx, {u.guest for u in units})}.",
            guests=tuple(sorted({u.guest for u in units})), nodes=tuple(sorted(oc.nodes)),
            evidence=ev,
            fix=numatune_fix(ctx, biggest, relaxed_mode(biggest), biggest.static_nodeset
                             or oc.nodes, "the kernel spills instead of killing"),
        )
    # Headroom: per connected piece of bound nodesets, the nodes that are short of it.
    minimum = ctx.options.min_headroom
    for piece in _components(list(ctx.bound_demand)):
        if piece & blocked:
            continue
        low = {n: flow.headroom[n] for n in sorted(piece) if flow.headroom[n] < minimum}
        if not low:
            continue
        units = ctx.units_meeting(frozenset(low))
        worst = min(low, key=lambda n: low[n])
        lows = " and ".join(f"node {n} only {size(h)}" for n, h in low.items())
        biggest = max(units, key=lambda u: u.size)
        ev = {"demand_bytes": sum(u.size for u in units),
              **_node_evidence(ctx, frozenset(low)),
              "headroom_bytes": low[worst], "min_headroom_bytes": minimum}
        yield Finding(
            "NG101", Severity.WARNING,
            f"{_who(units)} {_are(units, 'leaves', 'leave')} {lows} of headroom (capacity "
            f"{size(sum(ctx.capacity[n] for n in low))}): an application or another guest "
            f"taking more than {size(low[worst])} on node {worst} makes the kernel swap them "
            f"and then OOM-kill; {fate(ctx, {u.guest for u in units})}.",
            guests=tuple(sorted({u.guest for u in units})), nodes=tuple(sorted(low)),
            evidence=ev,
            fix=numatune_fix(ctx, biggest, relaxed_mode(biggest), biggest.static_nodeset
                             or frozenset(low), "the kernel spills instead of killing"),
        )


def _implicit(u: MemoryUnit) -> bool:
    """The unit's memory is bound with a nodeset and no mode (libvirt's silent strict)."""
    p = u.policy
    return p is not None and p.implicit_mode and p.placement is Placement.STATIC \
        and p.nodeset is not None


def _any_implicit(ctx: Context) -> bool:
    focus = ctx.focus
    return any(_implicit(u) for u in ctx.units if focus is None or u.guest in focus)


@rule("NG102", "implicit-strict", after=("NG101", "NG103", "NG108"), applies=_any_implicit)
def implicit_strict(ctx: Context) -> Iterator[Finding]:
    """A ``<numatune><memory>`` or ``<memnode>`` with a nodeset and no ``mode``: strict, silently.

    libvirt fills in ``mode='strict'`` when none is given (``virDomainNumatuneSet``), and
    ``virsh edit`` then writes it back: the admin asked for "node 0" and got "only node 0, or
    the OOM killer" without ever choosing it.

    Severity follows the guest's other memory findings (NG101, NG103, NG108): critical or
    warning when the binding is already dangerous, info when it is safe today.

    Fix: write the mode explicitly — ``preferred`` (or ``interleave`` over several nodes), as
    the article advises, or ``strict`` if the hard binding is really wanted.
    """
    focus = ctx.focus       # each finding names one guest and reads only that guest's
    for u in ctx.units:
        if not _implicit(u) or (focus is not None and u.guest not in focus):
            continue
        p = u.policy
        assert p is not None and p.nodeset is not None
        related = ctx.findings_for(u.guest, "NG101", "NG103", "NG108")
        sev = max((f.severity for f in related), default=Severity.INFO)
        elem = "<memory>" if u.cell is None else f"<memnode cellid='{u.cell}'>"
        why = (f"; see {', '.join(sorted({f.rule for f in related}))} — "
               f"{fate(ctx, {u.guest})}" if related else
               "; safe today, but nothing warns before it is not")
        yield Finding(
            "NG102", sev,
            f"{u.label}: {elem} gives nodeset {nodes_text(p.nodeset)} without a mode, so "
            f"libvirt made it strict: {size(u.size)} may come only from "
            f"{nodes_text(p.nodeset)}{why}.",
            guests=(u.guest,), nodes=tuple(sorted(p.nodeset)),
            evidence={"memory_bytes": u.size, "nodeset": sorted(p.nodeset)},
            fix=numatune_fix(ctx, u, relaxed_mode(u), p.nodeset, "an explicit mode; preferred "
                             "spills instead of killing"),
        )


@rule("NG103", "guest-exceeds-nodeset")
def guest_exceeds_nodeset(ctx: Context) -> Iterator[Finding]:
    """One bound guest alone needs more memory than its nodeset holds at all.

    Counted against the nodes' total memory (MemTotal less their hugepage pools), not against
    free memory or the host reserve: no matter what else runs, the guest will swap and then be
    OOM-killed once it touches its memory.  Always **critical**.

    Fix: ``preferred``/``interleave`` instead of ``strict``, or a nodeset large enough.
    """
    for u in ctx.bound_units:
        ns = u.static_nodeset
        assert ns is not None
        total = sum(ctx.host.node(n).mem_total - hugepages_reserved(ctx.host.node(n))
                    for n in ns)
        if u.size <= total:
            continue
        yield Finding(
            "NG103", Severity.CRITICAL,
            f"{u.label} needs {size(u.size)} but {nodes_text(ns)} hold only {size(total)} in "
            f"all: once the guest touches its memory it swaps and then the OOM killer acts; "
            f"{fate(ctx, {u.guest})}.",
            guests=(u.guest,), nodes=tuple(sorted(ns)),
            evidence={"memory_bytes": u.size, "nodeset_total_bytes": total,
                      "shortfall_bytes": u.size - total},
            fix=numatune_fix(ctx, u, relaxed_mode(u), ns, "the kernel spills instead of killing"),
        )


def _local_node(ctx: Context, u: MemoryUnit) -> int | None:
    """The host node the unit's vCPUs run on, when they are pinned within one node."""
    cpus = vcpu_host_cpus(ctx.guest_by_name[u.guest], u.vcpus)
    if not cpus:
        return None
    nodes = ctx.host.nodes_of_cpus(cpus)
    return next(iter(nodes)) if len(nodes) == 1 else None


def fill_order(ctx: Context, u: MemoryUnit) -> tuple[int | None, tuple[int, ...]]:
    """(local node, the unit's nodes in the order the kernel fills them from that node).

    Bind and preferred-many allocate from the local node's zonelist filtered by the nodemask
    (mm/mempolicy.c ``policy_nodemask``/``policy_node``; mm/page_alloc.c
    ``get_page_from_freelist``): the local node first when allowed, then the fallback order.
    """
    ns = u.static_nodeset or frozenset()
    local = _local_node(ctx, u)
    start = local if local is not None else min(ns)
    rank = ctx.fallback_rank(start)  # a fallback order names each node once
    seq = tuple(sorted((n for n in ns if n in rank), key=rank.__getitem__))
    seq += tuple(sorted(n for n in ns if n not in rank))
    return local, seq


@rule("NG104", "sequential-fill")
def sequential_fill(ctx: Context) -> Iterator[Finding]:
    """``strict`` or ``preferred`` over several nodes fills one node after another.

    With a multi-node nodeset the kernel does not spread memory: bind and preferred-many
    allocate from the node of the CPU the vCPU runs on, then follow that node's fallback order
    (measured on Linux 6.1: a task on node 2 bound to 0-2 fills 2, then 0, then 1).  The first
    node is exhausted before the next is touched, which fragments it and starves whatever else
    runs there; the article's Figure 5.

    Severity: **warning** when the guest is larger than the first node's capacity (it will
    exhaust that node), **info** otherwise.

    Fix: ``interleave`` over the same nodes spreads pages evenly (Figure 6).
    """
    for u in ctx.units:
        ns = u.static_nodeset
        if ns is None or len(ns) < 2 or u.on_hugepages or u.policy is None or \
                u.policy.mode not in (MemoryMode.STRICT, MemoryMode.PREFERRED):
            continue
        if not ns <= ctx.host.node_ids:
            continue
        local, seq = fill_order(ctx, u)
        first = seq[0]
        exhausts = u.size > ctx.capacity[first]
        where = (f"from node {local}, where its vCPUs run" if local is not None else
                 f"from the node of whichever CPU its vCPU threads run on (e.g. {first})")
        yield Finding(
            "NG104", Severity.WARNING if exhausts else Severity.INFO,
            f"{u.label} ({size(u.size)} {u.policy.mode.value} over {nodes_text(ns)}) fills "
            f"{where} in the order {' → '.join(map(str, seq))}"
            + (f"; it exhausts node {first} ({size(ctx.capacity[first])}) before touching the "
               "next" if exhausts else "") + ".",
            guests=(u.guest,), nodes=seq,
            evidence={"memory_bytes": u.size, "fill_order": list(seq),
                      "first_node_capacity_bytes": ctx.capacity[first]},
            fix=numatune_fix(ctx, u, "interleave", ns, "pages spread evenly over the nodes"),
        )


def _kernel_version(release: str | None) -> tuple[int, int] | None:
    if not release:
        return None
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else None


@rule("NG105", "preferred-single-node-fallback")
def preferred_many(ctx: Context) -> Iterator[Finding]:
    """``preferred`` with several nodes needs MPOL_PREFERRED_MANY (Linux 5.15 or newer).

    QEMU turns a multi-node ``preferred`` into MPOL_PREFERRED_MANY where the kernel has it;
    on older kernels it silently uses only the first node of the set.

    Severity: **warning** when the host's kernel is known to be older than 5.15, **info** when
    the kernel version is unknown (snapshot without ``proc/version``); nothing on 5.15+.

    Fix: ``interleave`` over the set, or ``preferred`` with a single node.
    """
    version = _kernel_version(ctx.options.kernel_release)
    if version is not None and version >= (5, 15):
        return
    for u in ctx.units:
        ns = u.static_nodeset
        if ns is None or len(ns) < 2 or u.policy is None or \
                u.policy.mode is not MemoryMode.PREFERRED:
            continue
        known = version is not None
        yield Finding(
            "NG105", Severity.WARNING if known else Severity.INFO,
            f"{u.label} prefers {nodes_text(ns)}; "
            + (f"kernel {ctx.options.kernel_release} has no MPOL_PREFERRED_MANY, so QEMU "
               f"uses only node {min(ns)}." if known else
               "unless the kernel is 5.15 or newer, QEMU uses only the first node "
               f"({min(ns)})."),
            guests=(u.guest,), nodes=tuple(sorted(ns)),
            evidence={"kernel_release": ctx.options.kernel_release or "unknown"},
            fix=numatune_fix(ctx, u, "interleave", ns, "supported by every kernel"),
        )


#: where NG106's swap file goes: the root filesystem, as the Debian and Red Hat guides do
SWAP_FILE = "/swapfile.numaguard"


def swap_fix(guest: str, missing: int) -> Fix:
    """A swap file of *missing* bytes (whole GiB, rounded up), switched on now and at every
    boot (an ``/etc/fstab`` line)."""
    gib = -(-missing // GiB)
    return Fix(guest=guest,
               description=f"correct the binding named by the other findings; more swap only "
                           f"delays the OOM killer: a {gib} GiB swap file at {SWAP_FILE} on the "
                           f"root filesystem (it needs {gib} GiB free there; put it on another "
                           "local disk by changing the path, and on btrfs create it with "
                           "`btrfs filesystem mkswapfile` instead of fallocate), kept at boot "
                           "by its /etc/fstab line",
               commands=((f"fallocate -l {gib}G {SWAP_FILE} && chmod 600 {SWAP_FILE} && "
                          f"mkswap {SWAP_FILE} && swapon {SWAP_FILE}"),
                         f"echo '{SWAP_FILE} none swap sw 0 0' >> /etc/fstab"))


@rule("NG106", "no-swap-safety-net", after=("NG101", "NG103", "NG108"))
def no_swap(ctx: Context) -> Iterator[Finding]:
    """Bound guests on a host whose swap cannot absorb their shortfall.

    When bound memory runs short the kernel first swaps (the article: "the hypervisor starts to
    swap the guest on disk"); only when swap is full does the OOM killer act.  Swap is
    "frequently" too small for that.

    Severity: **critical** when a shortfall found by NG101/NG103/NG108 exceeds the free swap
    (the OOM killer will act); **warning** when the headroom missing to ``--min-headroom`` on
    NG101-warned nodes exceeds the free swap, or when there is no swap at all while guests are
    bound; **info** when the source does not say how much swap there is.

    Fix: correct the binding (see the findings named); more swap only buys time: a swap file
    sized from what is missing beyond the free swap, with its ``/etc/fstab`` line so it
    survives a reboot.
    """
    if not ctx.bound_units:
        return
    host = ctx.host
    guests = tuple(sorted({u.guest for u in ctx.bound_units}))
    if host.swap_total is None or host.swap_free is None:
        yield Finding("NG106", Severity.INFO,
                      "this source does not say how much swap the host has; bound guests rely "
                      "on it before the OOM killer acts.", guests=guests)
        return
    swap_free = host.swap_free
    related = [f for f in ctx.findings if f.rule in ("NG101", "NG103", "NG108")]
    hard = [f for f in related if f.severity is Severity.CRITICAL]
    need = sum(int(f.evidence.get("shortfall_bytes", 0)) for f in hard)
    soft = [f for f in related if f.severity is Severity.WARNING and f.rule == "NG101"]
    soft_need = sum(int(f.evidence["min_headroom_bytes"]) - int(f.evidence["headroom_bytes"])
                    for f in soft)
    ev = {"swap_total_bytes": host.swap_total, "swap_free_bytes": swap_free}
    involved = tuple(sorted({g for f in related for g in f.guests})) or guests
    nodes = tuple(sorted({n for f in related for n in f.nodes}))
    missing = (need if need > swap_free else soft_need if soft_need > swap_free
               else ctx.options.min_headroom) - swap_free
    fix = swap_fix(involved[0], max(missing, GiB))
    if need > swap_free:
        yield Finding("NG106", Severity.CRITICAL,
                      (f"bound guests are {size(need)} short (see "
                       f"{', '.join(sorted({f.rule for f in hard}))}) and only "
                       f"{size(swap_free)} of swap is free, so the OOM killer acts — "
                       f"{fate(ctx, set(involved))}."),
                      guests=involved, nodes=nodes,
                      evidence={**ev, "shortfall_bytes": need}, fix=fix)
    elif soft_need > swap_free:
        yield Finding("NG106", Severity.WARNING,
                      f"{size(swap_free)} of free swap cannot cover the {size(soft_need)} of "
                      "headroom missing on nodes with bound guests (NG101): beyond it the OOM "
                      "killer acts.", guests=involved, nodes=nodes,
                      evidence={**ev, "missing_headroom_bytes": soft_need}, fix=fix)
    elif host.swap_total == 0:
        yield Finding("NG106", Severity.WARNING,
                      "the host has no swap: when bound memory runs short the OOM killer acts "
                      "at once.", guests=guests, evidence=ev, fix=fix)


@rule("NG107", "nodeset-missing-node")
def nodeset_missing_node(ctx: Context) -> Iterator[Finding]:
    """A memory nodeset names host nodes that do not exist.

    libvirt refuses to start such a guest ("NUMA node N is unavailable",
    ``virNumaNodesetIsAvailable``); a configuration copied from a bigger host or written for
    another machine shows up here before the next reboot does.  Always **critical**.

    Fix: the nodes that exist (or the node of the guest's vCPUs).
    """
    have = ctx.host.node_ids
    for u in ctx.units:
        ns = u.static_nodeset
        if ns is None or ns <= have:
            continue
        missing = ns - have
        keep = ns & have or frozenset({min(have)})
        yield Finding(
            "NG107", Severity.CRITICAL,
            f"{u.label} asks for {nodes_text(ns)}, but the host has no "
            f"{nodes_text(missing)} (it has {nodes_text(have)}): libvirt will not start it.",
            guests=(u.guest,), nodes=tuple(sorted(missing)),
            evidence={"nodeset": sorted(ns), "host_nodes": sorted(have)},
            fix=numatune_fix(ctx, u, u.policy.mode.value if u.policy else "preferred", keep,
                             "only nodes the host has"),
        )


def soft_claims(ctx: Context) -> dict[int, tuple[int, list[MemoryUnit]]]:
    """What unbound guests take first on each node (bytes, capped at capacity), and who.

    ``preferred`` takes its node (or the first node of its fill order) before any other;
    ``interleave`` takes an equal share of each node; a guest without policy whose vCPUs are
    pinned within one node allocates locally there first.
    """
    claims: dict[int, int] = {}
    who: dict[int, list[MemoryUnit]] = {}

    def add(n: int, amount: int, u: MemoryUnit) -> None:
        if n in ctx.capacity:
            claims[n] = claims.get(n, 0) + amount
            who.setdefault(n, []).append(u)

    for u in ctx.units:
        if u.bound or u.on_hugepages:
            continue
        p = u.policy
        ns = u.static_nodeset
        if p is None:
            local = _local_node(ctx, u)
            if local is not None:
                add(local, u.size, u)
        elif ns is None:
            continue
        elif p.mode is MemoryMode.INTERLEAVE:
            for n in ns:
                add(n, u.size // len(ns), u)
        elif p.mode is MemoryMode.PREFERRED:
            add(fill_order(ctx, u)[1][0] if ns <= ctx.host.node_ids else min(ns), u.size, u)
    return {n: (min(c, ctx.capacity[n]), who[n]) for n, c in claims.items()}


@rule("NG108", "bound-node-contended", after=("NG101",))
def bound_node_contended(ctx: Context) -> Iterator[Finding]:
    """Bound guests share their nodes with guests that will take that memory first.

    A ``preferred`` guest takes its preferred node's memory before any other node, an
    ``interleave`` guest an equal share of each of its nodes, and a guest without policy takes
    memory where its vCPUs run.  QEMU touches guest memory lazily, as the guest uses it: when
    those guests run, a guest bound to the same nodes finds them full, swaps, and is OOM-killed
    — the article's "a second guest is scheduled on node 0".

    Severity: **critical** when the bound guests no longer fit once those first-choice claims
    are taken (checked with the same max-flow as NG101, on capacity less the claims); nodes
    already over-committed by bound guests alone are left to NG101.

    Fix: make the bound guest ``preferred``/``interleave`` too, or move the other guests.
    """
    claims = soft_claims(ctx)
    if not claims or not ctx.bound_demand:
        return
    blocked = {n for oc in ctx.bound_flow.overcommits for n in oc.nodes}
    reduced = {n: c - claims.get(n, (0, []))[0] for n, c in ctx.capacity.items()}
    result = solve(ctx.bound_demand, reduced)
    for oc in result.overcommits:
        if oc.nodes & blocked:
            continue
        units = ctx.units_inside(oc.nodes)
        others = sorted({v.label for n in oc.nodes for v in claims.get(n, (0, []))[1]})
        taken = sum(claims.get(n, (0, []))[0] for n in oc.nodes)
        cap = sum(ctx.capacity[n] for n in oc.nodes)
        biggest = max(units, key=lambda u: u.size)
        yield Finding(
            "NG108", Severity.CRITICAL,
            f"{_who(units)} {_are(units)} bound to {nodes_text(oc.nodes)}, where "
            f"{names_text(others)} "
            f"take up to {size(taken)} of its {size(cap)} first: when they run, the bound memory "
            f"is {size(oc.shortfall)} short, so the kernel swaps and then OOM-kills — "
            f"{fate(ctx, {u.guest for u in units})}.",
            guests=tuple(sorted({u.guest for u in units})), nodes=tuple(sorted(oc.nodes)),
            evidence={"demand_bytes": oc.demand, "capacity_bytes": cap,
                      "claimed_by_others_bytes": taken, "shortfall_bytes": oc.shortfall,
                      "contending": others},
            fix=numatune_fix(ctx, biggest, relaxed_mode(biggest), biggest.static_nodeset
                             or oc.nodes, "the kernel spills instead of killing"),
        )


@rule("NG109", "preferred-spill")
def preferred_spill(ctx: Context) -> Iterator[Finding]:
    """A ``preferred`` guest larger than its preferred node(s): it spills to other nodes.

    ``preferred`` is the article's safe choice: when the preferred node is full the kernel takes
    pages from the next node of the fallback order instead of swapping or killing.  The guest is
    not at OOM risk, but the spilled part is remote memory.  Always **info**; it names where the
    pages will go (capacity left after bound guests, in the kernel's fallback order).  "No OOM
    risk" is said only when the simulator (NG110) kills it in none of the start orders.

    Fix: none needed; ``interleave`` over the nodes it spans anyway spreads it evenly.
    """
    pledged = ctx.bound_flow.per_node
    room = {n: max(0, ctx.capacity[n] - pledged.get(n, 0)) for n in ctx.host.node_ids}
    for u in ctx.units:
        ns = u.static_nodeset
        if ns is None or u.on_hugepages or u.policy is None or \
                u.policy.mode is not MemoryMode.PREFERRED or not ns <= ctx.host.node_ids:
            continue
        _, seq = fill_order(ctx, u)
        fits = sum(room[n] for n in ns)
        if u.size <= fits:
            continue
        order = seq + tuple(n for n in ctx.fallback[seq[0]] if n not in ns)
        left, spread = u.size, {}
        for n in order:
            take = min(left, room[n])
            if take:
                spread[n] = take
                left -= take
            if not left:
                break
        spill_nodes = [n for n in spread if n not in ns]
        dies = u.guest in ctx.prediction.victims
        if spill_nodes:
            where = ", then ".join(f"node {n} ({size(spread[n])})" for n in spill_nodes)
        else:
            where = "no other node: the host has no room left for it"
        risk = ("; when every guest touches its memory the simulator predicts it is "
                "OOM-killed (NG110)" if dies else
                f" — no OOM risk in the simulated {ctx.order_word}s, but remote memory")
        yield Finding(
            "NG109", Severity.INFO,
            f"{u.label} ({size(u.size)} preferred on {nodes_text(ns)}) does not fit there "
            f"({size(fits)} left for it): the kernel spills {size(u.size - fits)} to "
            f"{where}{risk}.",
            guests=(u.guest,), nodes=tuple(spread),
            evidence={"memory_bytes": u.size, "fits_bytes": fits,
                      "spill_bytes": u.size - fits,
                      "placement_bytes": {str(n): b for n, b in spread.items()}},
            fix=numatune_fix(ctx, u, "interleave", frozenset(spread), "spread evenly over "
                             "the nodes it spans anyway") if len(spread) > 1 else None,
        )


def _policy_text(p: MemoryPolicy | None) -> str:
    if p is None:
        return "no <numatune>"
    if p.nodeset is None:
        return f"{p.mode.value} (placement auto)"
    return f"{p.mode.value} on {nodes_text(p.nodeset)}"


def _tuning(g: Guest) -> dict[str, tuple[object, ...] | None]:
    """What of a guest's memory tuning a restart would change: the ``<memory>`` policy and
    each cell's, as (mode, placement, nodeset) — an implicit strict is strict."""
    def key(p: MemoryPolicy | None) -> tuple[object, ...] | None:
        return None if p is None else (p.mode, p.placement, p.nodeset)

    out = {"<memory>": key(g.policy)}
    out.update((f"cell {c.id}", key(c.policy)) for c in g.cells)
    return out


@rule("NG112", "restart-pending")
def restart_pending(ctx: Context) -> Iterator[Finding]:
    """A running guest's memory policy differs from its definition: a restart is pending.

    What it checks: for every running guest whose source has its live XML (libvirt's
    ``virDomainGetXMLDesc`` without ``VIR_DOMAIN_XML_INACTIVE``: what QEMU was started with),
    the ``<numatune>`` mode, placement and nodeset of the whole guest and of each guest NUMA
    cell, against the persistent definition (``VIR_DOMAIN_XML_INACTIVE``: what the next cold
    boot uses).  Folders of XML files and snapshots without live XML are not judged.

    Why it matters: libvirt never changes a running guest's memory mode, and changes its
    nodeset live only in ``restrictive`` mode (src/qemu/qemu_driver.c
    ``qemuDomainSetNumaParameters``); ``virsh numatune --config`` and ``virsh define`` change
    only the next boot.  Until the guest is shut down and started again (a reboot from inside
    the guest is not enough), the host runs the old policy — the audit of the persistent
    definitions describes a host that does not exist yet, and a fix that was "applied" has not
    taken effect.

    Severity: **info** (nothing fails because of it; the other findings say what the running
    policy risks).

    Fix: shut the guest down and start it again (``virsh shutdown NAME``, then ``virsh start
    NAME``) in a maintenance window, or define the running policy again if the persistent one
    was changed by mistake.
    """
    if not ctx.live_guests:
        return
    for g in ctx.guests:
        live = ctx.live_guests.get(g.name)
        if live is None:
            continue
        now, then = _tuning(live), _tuning(g)
        if now == then:
            continue
        differ = sorted(set(now) | set(then), key=lambda w: (w != "<memory>", len(w), w))
        differ = [w for w in differ if now.get(w) != then.get(w)]
        which = "" if differ == ["<memory>"] else f" ({', '.join(differ)} differ)"
        yield Finding(
            "NG112", Severity.INFO,
            f"{g.name} runs with {_policy_text(live.policy)} but is defined with "
            f"{_policy_text(g.policy)}{which}: the definition takes effect only when the "
            "guest is shut down and started again (libvirt never changes a running guest's "
            "memory mode) — a restart is pending.",
            guests=(g.name,),
            evidence={"running": _policy_text(live.policy),
                      "defined": _policy_text(g.policy), "differ": differ},
        )
