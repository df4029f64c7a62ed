"""Hugepage rules (NG3xx): hugepage-backed guest memory against the host's hugepage pools."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from numaguard.core.capacity import MemoryUnit
from numaguard.core.findings import Finding, Fix, Severity
from numaguard.core.flow import FlowResult, solve
from numaguard.core.rules import Context, rule
from numaguard.core.rules.common import nodes_text, size
from numaguard.model.policy import MemoryMode
from numaguard.units import GiB, KiB, MiB


@dataclass(frozen=True, slots=True)
class _Demand:
    """One hugepage-backed memory unit: pages of one size and where they may come from."""

    unit: MemoryUnit
    pages: int
    #: nodes the pages must come from for the guest to start: the nodeset when the memory is
    #: bound (strict, restrictive), every node otherwise (preferred and interleave fall back)
    hard: frozenset[int]
    #: nodes the pages are meant to come from: the static nodeset in any mode, else every node
    soft: frozenset[int]

    @property
    def flexible(self) -> bool:
        return self.hard != self.soft


def _page_label(page: int) -> str:
    """``hugepagesz=`` spelling of a page size: ``2M``, ``1G``, ``64K``."""
    if page % GiB == 0:
        return f"{page // GiB}G"
    if page % MiB == 0:
        return f"{page // MiB}M"
    return f"{page // KiB}K"


def _pool_path(node: int, page: int) -> str:
    return f"/sys/devices/system/node/node{node}/hugepages/hugepages-{page // KiB}kB/nr_hugepages"


def _demands(ctx: Context) -> dict[int, list[_Demand]]:
    """Hugepage-backed units by page size (units whose nodeset names missing nodes are left
    to NG107)."""
    everywhere = ctx.host.node_ids
    by_size: dict[int, list[_Demand]] = {}
    for u in ctx.units:
        if not u.on_hugepages or u.size <= 0:
            continue
        page = u.hugepage_size or 0
        ns = u.static_nodeset
        if ns is not None and not ns <= everywhere:
            continue
        soft = ns if ns else everywhere
        hard = soft if u.bound else everywhere
        by_size.setdefault(page, []).append(_Demand(u, math.ceil(u.size / page), hard, soft))
    return by_size


def _interleaved(demands: list[_Demand]) -> frozenset[frozenset[int]]:
    return frozenset(d.soft for d in demands
                     if d.unit.policy is not None and d.unit.policy.mode is MemoryMode.INTERLEAVE)


def _plan(demands: list[_Demand], caps: Mapping[int, int]) -> dict[int, int]:
    """Pages to add so that *demands* find their pages where they are meant to come from."""
    return _pages_to_add(_groups(demands, hard=False), caps, _interleaved(demands))


def _groups(demands: list[_Demand], hard: bool) -> dict[frozenset[int], int]:
    out: dict[frozenset[int], int] = {}
    for d in demands:
        key = d.hard if hard else d.soft
        out[key] = out.get(key, 0) + d.pages
    return out


def _inside(demands: list[_Demand], nodes: frozenset[int], hard: bool) -> list[_Demand]:
    return [d for d in demands if (d.hard if hard else d.soft) <= nodes]


def _pages_to_add(groups: Mapping[frozenset[int], int], caps: Mapping[int, int],
                  even: frozenset[frozenset[int]] = frozenset()) -> dict[int, int]:
    """Pages to add per node so that every group fits its nodes.

    Each minimal over-committed set is independent of the rest (no flow crosses its cut), so
    it is fixed on its own: on one node of the set when one node can carry the whole
    shortfall, else — and always when an interleaved group (*even*) is inside, since
    interleave takes pages from its nodes in turn — by giving every group inside it an even
    share on each of its nodes.
    """
    result = solve(groups, caps)
    add: dict[int, int] = {}
    for oc in result.overcommits:
        inner = {g: p for g, p in groups.items() if g <= oc.nodes}
        sub_caps = {n: caps.get(n, 0) for n in oc.nodes}
        for n in sorted(oc.nodes) if not set(inner) & even else ():
            trial = dict(sub_caps)
            trial[n] += oc.shortfall
            if solve(inner, trial).feasible:
                add[n] = add.get(n, 0) + oc.shortfall
                break
        else:
            need: dict[int, int] = {}
            for g, pages in inner.items():
                nodes = sorted(g)
                share, extra = divmod(pages, len(nodes))
                for i, n in enumerate(nodes):
                    need[n] = need.get(n, 0) + share + (1 if i < extra else 0)
            for n, pages in need.items():
                if pages > sub_caps[n]:
                    add[n] = add.get(n, 0) + pages - sub_caps[n]
    return add


def _fix(guest: str, page: int, totals: Mapping[int, int], add: Mapping[int, int],
         why: str) -> Fix:
    new = {n: totals.get(n, 0) + add.get(n, 0) for n in set(totals) | set(add)}
    commands = tuple(f"echo {new[n]} > {_pool_path(n, page)}" for n in sorted(add))
    label = _page_label(page)
    boot = ",".join(f"{n}:{new[n]}" for n in sorted(new) if new[n] > 0)
    persistent = (f"# persistent: add 'hugepagesz={label} hugepages={boot}' to the kernel "
                  "command line (per-node format, Documentation/admin-guide/mm/hugetlbpage.rst)")
    commands += (persistent,)
    where = ", ".join(f"{add[n]} more on node {n} ({new[n]} in all)" for n in sorted(add))
    gigantic = (" 1 GiB pages can rarely be found once memory is fragmented: reserve them on "
                "the kernel command line and reboot." if page >= GiB else "")
    return Fix(guest=guest, description=f"reserve {size(page)} hugepages: {where}, {why}."
               + gigantic, commands=commands)


def _guests(demands: list[_Demand]) -> tuple[str, ...]:
    return tuple(sorted({d.unit.guest for d in demands}))


def _who(demands: list[_Demand]) -> str:
    parts = []
    for d in sorted(demands, key=lambda d: (-d.pages, d.unit.label)):
        mode = d.unit.policy.mode.value if d.unit.policy is not None else "unbound"
        where = nodes_text(d.soft) if d.unit.static_nodeset else "any node"
        parts.append(f"{d.unit.label} ({d.pages} pages, {mode} on {where})")
    return ", ".join(parts)


def _need(demands: list[_Demand]) -> str:
    return "needs" if len(demands) == 1 else "need"


def _where(nodes: frozenset[int], everywhere: frozenset[int]) -> str:
    return "the host" if nodes == everywhere and len(nodes) > 1 else nodes_text(nodes)


def _evidence(page: int, oc_nodes: frozenset[int], needed: int, available: int,
              per_node: Mapping[int, int], key: str) -> dict[str, object]:
    return {
        "page_size_bytes": page,
        "pages_needed": needed,
        f"pages_{key}": available,
        "pages_short": needed - available,
        "needed_bytes": needed * page,
        "shortfall_bytes": (needed - available) * page,
        f"pages_{key}_per_node": {n: per_node.get(n, 0) for n in sorted(oc_nodes)},
    }


@rule("NG301", "hugepages-short")
def hugepages_short(ctx: Context) -> Iterator[Finding]:
    """Hugepage-backed guests need more pages of their size than the host's pools hold.

    What it checks: the memory units (the guest, or each guest NUMA cell) backed by hugepages
    (``<memoryBacking><hugepages>``; ``<hugepages/>`` without a size means the host default,
    2 MiB on x86-64), grouped by page size S, against the per-node pools of size S
    (``/sys/devices/system/node/nodeN/hugepages/hugepages-<S>kB``).  A unit with a static
    nodeset takes its pages there — libvirt gives QEMU a ``memory-backend-file`` with
    ``host-nodes`` and the policy of the mode — so the pools are a transportation problem per
    size (max-flow over overlapping nodesets, like NG101), capacity per node = pool total × S.
    Units without a nodeset (or placed by numad) may take pages on any node: the host-wide
    pool.  Guests are counted by their maximum memory, rounded up to whole pages.

    Why it matters: hugepages are not reclaimable and not swappable; there is no fallback to
    ordinary pages.  libvirt asks QEMU to preallocate hugepage-backed RAM (``"prealloc":true``,
    see libvirt's tests/qemuxmlconfdata/hugepages-numa-nodeset.x86_64-latest.args), so a
    missing page shows at start: QEMU fails with "unable to map backing store for guest RAM:
    Cannot allocate memory" (pool too small) or "Insufficient free host memory pages available
    to allocate guest RAM" (the bound nodes' pools too small) and the guest does not start.
    ``strict`` and ``restrictive`` (mbind / cgroup ``cpuset.mems``) must find every page in
    the nodeset; ``preferred`` and ``interleave`` fall back to other nodes' pools, and start,
    with remote memory.

    Severity: **critical** when the pools' totals cannot hold the guests where they must come
    from, or when no node has a pool of size S with pages in it ("no hugepages of size S
    reserved"); **warning** when the totals suffice but ``preferred``/``interleave`` units
    would take pages outside their nodeset (remote), or when the *free* pages (live sources)
    are short: a guest not running yet cannot start now.  numaguard does not know which guests
    run; a running guest's pages are counted as used, so that warning is exact for stopped
    guests only.  **info** when the topology source reports no hugepage pools at all
    (``numactl -H``): nothing can be checked.

    Fix: reserve more pages on the named nodes —
    ``echo N > /sys/devices/system/node/nodeX/hugepages/hugepages-<S/1024>kB/nr_hugepages`` —
    and make it persistent on the kernel command line (``hugepagesz=2M hugepages=0:N0,3:N3``,
    the per-node format of Documentation/admin-guide/mm/hugetlbpage.rst); 1 GiB pages are best
    reserved at boot.
    """
    host = ctx.host
    everywhere = host.node_ids
    by_size = _demands(ctx)
    if not by_size:
        return
    if not any(n.hugepages for n in host.nodes):
        every = [d for ds in by_size.values() for d in ds]
        yield Finding(
            "NG301", Severity.INFO,
            f"this topology source reports no hugepage pools, so the hugepage-backed memory of "
            f"{', '.join(_guests(every))} ({size(sum(d.unit.size for d in every))}) cannot be "
            "checked; audit the host's sysfs (or a snapshot of it) instead.",
            guests=_guests(every),
            evidence={"needed_bytes": sum(d.unit.size for d in every)},
            fix=Fix(guest=_guests(every)[0],
                    description="run the audit on the host itself, where the pools are read "
                                "from /sys/devices/system/node",
                    commands=("numaguard audit",)))
        return
    for page in sorted(by_size):
        demands = by_size[page]
        pools = {n.id: n.hugepage_pool(page) for n in host.nodes}
        totals = {n: (p.total if p is not None else 0) for n, p in pools.items()}
        needed = sum(d.pages for d in demands)
        first = _guests(demands)[0]
        if sum(totals.values()) == 0:
            add = _plan(demands, totals)
            have_pool = sum(1 for p in pools.values() if p is not None)
            why = ("the host has pools of this size but no pages in them" if have_pool
                   else f"the host has no hugepages-{page // KiB}kB pool: the CPU or kernel "
                        "may not offer this size")
            yield Finding(
                "NG301", Severity.CRITICAL,
                f"no hugepages of {size(page)} are reserved on any node ({why}), but "
                f"{_who(demands)} {_need(demands)} {needed} of them ({size(needed * page)}): "
                "QEMU cannot map the guest RAM and the guest does not start.",
                guests=_guests(demands), nodes=tuple(sorted(add)),
                evidence={"page_size_bytes": page, "pages_needed": needed,
                          "pages_reserved": 0, "pages_short": needed,
                          "needed_bytes": needed * page, "shortfall_bytes": needed * page,
                          "nodes_with_pool": have_pool},
                fix=_fix(first, page, totals, add, "where the guests bind their memory"),
            )
            continue

        critical_nodes: set[int] = set()
        hard: FlowResult = solve(_groups(demands, hard=True), totals)
        for oc in hard.overcommits:
            critical_nodes |= oc.nodes
            inside = _inside(demands, oc.nodes, hard=True)
            where = _where(oc.nodes, everywhere)
            yield Finding(
                "NG301", Severity.CRITICAL,
                f"{_who(inside)} {_need(inside)} {oc.demand} hugepages of {size(page)} "
                f"({size(oc.demand * page)}) on {where}, but only {oc.capacity} are reserved "
                f"there ({size(oc.shortfall * page)} short): QEMU cannot allocate the guest RAM "
                "and the guest does not start.",
                guests=_guests(inside), nodes=tuple(sorted(oc.nodes)),
                evidence=_evidence(page, oc.nodes, oc.demand, oc.capacity, totals, "reserved"),
                fix=_fix(_guests(inside)[0], page, totals, _plan(inside, totals),
                         "so that the guests find their pages where they bind memory"),
            )

        soft = solve(_groups(demands, hard=False), totals)
        for oc in soft.overcommits:
            if oc.nodes & critical_nodes:
                continue
            inside = _inside(demands, oc.nodes, hard=False)
            spill = [d for d in inside if d.flexible]
            if not spill:
                continue
            yield Finding(
                "NG301", Severity.WARNING,
                f"{_who(inside)} {_need(inside)} {oc.demand} hugepages of {size(page)} on "
                f"{nodes_text(oc.nodes)}, where only {oc.capacity} are reserved: "
                f"{', '.join(sorted({d.unit.label for d in spill}))} will take "
                f"{oc.shortfall} pages ({size(oc.shortfall * page)}) from the pools of other "
                "nodes, outside the nodeset meant to keep that memory local.",
                guests=_guests(inside), nodes=tuple(sorted(oc.nodes)),
                evidence=_evidence(page, oc.nodes, oc.demand, oc.capacity, totals, "reserved"),
                fix=_fix(spill[0].unit.guest, page, totals, _plan(inside, totals),
                         "so that the pages are local"),
            )

        frees = {n: p.free for n, p in pools.items() if p is not None}
        if any(f is None for f in frees.values()):
            continue  # the source knows the totals only (virsh capabilities)
        free = {n: frees.get(n) or 0 for n in totals}
        live = solve(_groups(demands, hard=True), free)
        for oc in live.overcommits:
            if oc.nodes & critical_nodes:
                continue
            inside = _inside(demands, oc.nodes, hard=True)
            where = _where(oc.nodes, everywhere)
            used = sum(totals[n] - free[n] for n in oc.nodes)
            ev = _evidence(page, oc.nodes, oc.demand, oc.capacity, free, "free")
            ev["pages_in_use"] = used
            yield Finding(
                "NG301", Severity.WARNING,
                f"{_who(inside)} {_need(inside)} {oc.demand} hugepages of {size(page)} on "
                f"{where}, but only {oc.capacity} are free there ({used} in use): any of these "
                "guests not running yet cannot start now.",
                guests=_guests(inside), nodes=tuple(sorted(oc.nodes)), evidence=ev,
                fix=_fix(_guests(inside)[0], page, totals, _plan(inside, free),
                         "so that enough pages are free"),
            )
