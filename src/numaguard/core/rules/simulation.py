"""The simulator's verdict (NG110) and the host-wide memory balance (NG111)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from numaguard.core.capacity import MemoryUnit
from numaguard.core.findings import Finding, Fix, Severity
from numaguard.core.predict import Failure, Kill
from numaguard.core.rules import Context, rule
from numaguard.core.rules.common import nodes_text, numatune_fix, relaxed_mode, size
from numaguard.display import shell_quote
from numaguard.units import GiB

_CONSTRAINT = {
    "memory-policy": "its strict binding (QEMU's mbind) allows only",
    "cpuset": "its cgroup (cpuset.mems) allows only",
}


def binding_text(u: MemoryUnit) -> str:
    """``strict on node 0`` / ``strict (implicit) on nodes 0-1`` / ``unbound``."""
    p = u.policy
    if p is None or u.static_nodeset is None:
        return "unbound"
    implicit = " (implicit)" if p.implicit_mode else ""
    return f"{p.mode.value}{implicit} on {nodes_text(u.static_nodeset)}"


def culprit(ctx: Context, guest: str, nodes: tuple[int, ...]) -> tuple[MemoryUnit | None,
                                                                      str | None]:
    """The bound memory of *guest* that the kernel could not serve on *nodes* — its largest
    bound unit whose nodeset lies inside them (else meets them) — with its
    :func:`binding_text`.  Found once per (guest, nodes) and audit: every kill names it up to
    three times, and one binding causes many kills."""
    culprits: dict[tuple[str, tuple[int, ...]], tuple[MemoryUnit | None, str | None]] = \
        ctx.__dict__.setdefault("_culprits", {})
    key = (guest, nodes)
    found = culprits.get(key)
    if found is not None:
        return found
    where = set(nodes)
    units = [u for u in ctx.units_by_guest.get(guest, ()) if u.bound
             and u.static_nodeset is not None]
    inside = [u for u in units if u.static_nodeset is not None
              and u.static_nodeset <= where]
    near = inside or [u for u in units if u.static_nodeset and u.static_nodeset & where]
    unit = max(near, key=lambda u: (u.size, u.label), default=None)
    found = culprits[key] = (unit, binding_text(unit) if unit is not None else None)
    return found


class Balance:
    """Every guest's ordinary memory against what the host can give it now (NG111): free
    memory above the *min* watermark plus page cache reclaim can drop on every node (the
    simulator's host), plus free swap.  Hugepage-backed memory comes from the pools (NG301)."""

    def __init__(self, ctx: Context) -> None:
        # what shrink() reads, not the context itself: the context keeps this object, and a
        # cycle would leave the whole audit to the cyclic garbage collector
        self.guests = ctx.guests
        self.units_by_guest = ctx.units_by_guest
        host = ctx.sim_host
        self.demand = sum(u.size for u in ctx.units if not u.on_hugepages)
        self.ram = sum(max(0, n.free - n.watermark_min) + n.reclaimable for n in host.nodes)
        self.swap = host.swap_free
        self.shortfall = self.demand - self.ram - self.swap

    @cached_property
    def fix(self) -> Fix:
        """The fix for the shortfall (critical), else for the part that would be swapped."""
        return self.shrink(self.shortfall if self.shortfall > 0 else self.demand - self.ram)

    def shrink(self, short: int) -> Fix:
        """Shrink the guest the OOM killer would pick — the largest whose maximum memory
        virsh can lower (no guest NUMA cells, ordinary pages) — by *short*, rounded to whole
        GiB; when none is large enough, move guests to another host."""
        candidates = [g for g in self.guests if not g.cells and not any(
            u.on_hugepages for u in self.units_by_guest.get(g.name, ()))]
        new_size = 0
        target = max(candidates, key=lambda g: (g.memory, g.name), default=None)
        if target is not None:
            new_size = (target.memory - max(short, 1)) // GiB * GiB
        if target is None or new_size < GiB:
            biggest = max(self.guests, key=lambda g: (g.memory, g.name))
            return Fix(guest=biggest.name,
                       description=f"move guests holding at least {size(short)} (e.g. "
                                   f"{biggest.name}) to another host, or give this host more "
                                   "memory: no single guest can shrink that much")
        g = shell_quote(target.name)
        return Fix(guest=target.name,
                   description=f"lower {target.name}'s maximum memory from "
                               f"{size(target.memory)} to {size(new_size)} (or move it to "
                               "another host); takes effect at the next cold boot",
                   memory=new_size,
                   commands=(f"virsh setmaxmem {g} {new_size // GiB}G --config",))


def balance(ctx: Context) -> Balance:
    cached = ctx.__dict__.get("_balance")
    if cached is None:
        cached = ctx.__dict__["_balance"] = Balance(ctx)
    return cached


def _kill_fix(ctx: Context, kill: Kill) -> Fix | None:
    if kill.constraint == "global":
        return balance(ctx).fix
    unit = culprit(ctx, kill.trigger, kill.nodes)[0]
    if unit is None or unit.static_nodeset is None:
        return None
    return numatune_fix(ctx, unit, relaxed_mode(unit), unit.static_nodeset,
                        "the kernel spills instead of killing")


def _orders_text(ctx: Context, names: tuple[str, ...]) -> str:
    tried = len(ctx.orders)
    return f"{len(names)} of the {tried} {ctx.order_word}{'s' if tried > 1 else ''} tried"


@dataclass(frozen=True, slots=True)
class _Cause:
    """What NG110's findings say of the kills of one (constraint, trigger, nodes): the nodes,
    the binding at fault (``None``: none found, or a host out of memory as a whole) and how
    to word it, and the fix."""

    where: str
    bound: str | None
    binding: str
    limit: str
    verb: str
    fix: Fix | None


def _cause(ctx: Context, kill: Kill) -> _Cause:
    where = nodes_text(kill.nodes)
    if kill.constraint == "global":
        b = balance(ctx)
        said = (f"the host is out of memory: the guests need {size(b.demand)} of ordinary "
                f"memory, the nodes can give {size(b.ram)} and swap {size(b.swap)}")
        return _Cause(where, None, said, "", "", _kill_fix(ctx, kill))
    unit, bound = culprit(ctx, kill.trigger, kill.nodes)
    return _Cause(where, bound if unit is not None else None, bound or f"bound to {where}",
                  _CONSTRAINT.get(kill.constraint, "it may use only"),
                  "is" if len(kill.nodes) == 1 else "are", _kill_fix(ctx, kill))


def _kill_findings(ctx: Context) -> Iterator[Finding]:
    """NG110's finding for each kill.  What comes back kill after kill — a victim's size, an
    order's label, the cause of the kills of one binding and its fix — is made once per
    audit: a large over-committed host has thousands of kills."""
    tried = len(ctx.orders)
    of_tried = f" of the {tried} {ctx.order_word}{'s' if tried > 1 else ''} tried"
    simulated = ctx.simulated
    sizes: dict[str, str] = {}
    labels: dict[int, str] = {}   # by id(): hashing an order hashes its guests
    causes: dict[tuple[str, str, tuple[int, ...]], _Cause] = {}
    by_name = ctx.guest_by_name
    for kill in ctx.prediction.kills:
        victim, trigger, nodes, constraint = kill.victim, kill.trigger, kill.nodes, \
            kill.constraint
        vsize = sizes.get(victim)
        if vsize is None:
            guest = by_name.get(victim)
            if guest is None:
                vsize = size(kill.victim_bytes)
            else:
                vsize = sizes[victim] = size(guest.memory)
        label = labels.get(id(kill.order))
        if label is None:
            label = labels[id(kill.order)] = kill.order.label
        key = (constraint, trigger, nodes)
        cause = causes.get(key)
        if cause is None:
            cause = causes[key] = _cause(ctx, kill)
        innocent = victim != trigger
        evidence: dict[str, object] = {"victim": victim, "trigger": trigger,
                                       "constraint": constraint,
                                       "freed_bytes": kill.victim_bytes}
        if constraint == "global":
            # a host out of memory has no guest at fault: whoever grew last only tipped it
            guests: tuple[str, ...] = (victim,)
            if innocent:
                head = (f"{victim} ({vsize}) will be OOM-killed when {trigger} grows: "
                        f"{cause.binding}, and the kernel kills the largest guest")
            else:
                head = f"{victim} ({vsize}) will be OOM-killed as it grows: {cause.binding}"
        else:
            guests = (victim, trigger) if innocent else (victim,)
            if cause.bound is not None:
                evidence["binding"] = cause.bound
            where = cause.where
            if innocent:
                head = (f"{victim} ({vsize}) will be OOM-killed when {trigger} grows: "
                        f"{trigger} is {cause.binding}, {cause.limit} {where}, and {where} "
                        f"{cause.verb} full; QEMU binds guest RAM with mbind, so every QEMU "
                        "is a candidate and the kernel kills the largest — "
                        f"{victim}, which is not at fault (killing it may free nothing on "
                        f"{where}, and then {trigger} dies too)")
            else:
                head = (f"{victim} ({vsize}) will be OOM-killed as it grows: it is "
                        f"{cause.binding} and {where} cannot hold it")
        evidence["order"] = label
        if ctx.live is not None:
            evidence["growth"] = True   # played from what the running guests hold now
        evidence["orders_killing"] = len(kill.orders)
        evidence["orders_tried"] = tried
        yield Finding("NG110", Severity.CRITICAL,
                      f"{head}.  {simulated}: killed in {len(kill.orders)}{of_tried} "
                      f"(first: {label}).",
                      guests, nodes, evidence, cause.fix)


def failure_message(ctx: Context, f: Failure) -> str:
    units = ctx.units_by_guest.get(f.guest, ())
    pages = any(u.on_hugepages for u in units)
    why = ("its hugepage pools are short (see NG301)" if pages else
           "no node it may use has room and no task is left to kill")
    return (f"{f.guest}: {size(f.failed_bytes)} of its memory cannot be placed — {why}.  "
            f"{ctx.simulated}: in {_orders_text(ctx, f.orders)} (first: {f.order.label}).")


@rule("NG110", "simulated-oom-kill")
def simulated_oom(ctx: Context) -> Iterator[Finding]:
    """The simulator predicts an OOM kill (or memory that cannot be placed) when every guest
    touches all its memory.

    The host and guests are played through ``numaguard simulate``'s engine (the kernel's
    zonelists, policies, cpuset.mems, watermarks, reclaim, swap and OOM killer, checked against
    a real kernel: tests/oracle): every guest starts and touches its full memory, one after
    another, each guest cell with the policy libvirt gives QEMU and the cgroups.  Offline the
    start order is unknown and decides who dies, so the verdict is the worst case over the
    orders in ``core/orders.py``: the order the snapshot recorded (when it did), bound guests
    last, largest first, smallest first, by name, and a few seeded shuffles.  The finding names
    the guest that dies, the guest whose allocation made the kernel kill, the constraint and
    the nodes, the first order that kills and how many of the orders tried do.

    The guest that dies is often not the guest at fault: QEMU binds guest RAM with ``mbind`` (a
    VMA policy), so the kernel's ``oom_cpuset_eligible()``/``mempolicy_in_oom_domain()`` treat
    every QEMU as a candidate for every node's OOM and the largest dies — measured with a real
    QEMU under an emulated-NUMA kernel: a guest bound to node 1 was killed for node 0's OOM,
    freeing nothing there, and then the guest that asked died too.

    On a live host (this machine, a libvirt URI of it, or a snapshot with its captured live
    files) the question is what happens from now: the host is taken back to before the running
    guests (each node's MemFree plus what they hold there), what each running guest holds is
    put back on the nodes it is on (``/proc``, its memory cgroup: readers/live.py), and then
    each grows to its full size under its own policy, in the same kinds of orders over the
    running guests ("growth orders").  Shut-off guests are not played (NG101/NG111 still count
    them); what a guest holds includes QEMU's own memory, so the rest it may still touch is
    that much smaller (core/whatif.py).

    Severity: always **critical**.

    Fix: for a kill under a strict binding (constraint ``memory-policy`` or ``cpuset``), the
    binding of the guest at fault: ``preferred`` (one node) or ``interleave`` (several); for a
    host that is out of memory as a whole (constraint ``global``), NG111's fix.
    """
    prediction = ctx.prediction
    yield from _kill_findings(ctx)
    for failure in prediction.failures:
        unit = max((u for u in ctx.units_by_guest.get(failure.guest, ()) if u.bound
                    and not u.on_hugepages and u.static_nodeset), key=lambda u: u.size,
                   default=None)
        fix = (numatune_fix(ctx, unit, relaxed_mode(unit), unit.static_nodeset,
                            "the kernel spills instead of failing")
               if unit is not None and unit.static_nodeset else None)
        yield Finding(
            "NG110", Severity.CRITICAL, failure_message(ctx, failure),
            guests=(failure.guest,),
            evidence={"failed_bytes": failure.failed_bytes, "order": failure.order.label,
                      **({"growth": True} if ctx.live is not None else {}),
                      "orders_failing": len(failure.orders), "orders_tried": len(ctx.orders)},
            fix=fix)


@rule("NG111", "host-memory-overcommit")
def host_overcommit(ctx: Context) -> Iterator[Finding]:
    """All guests together need more memory than the host can give them.

    Every guest's maximum memory in ordinary pages — bound or not — against what the host has
    for it now: on every node the free memory above the *min* watermark plus the page cache
    reclaim can drop (the simulator's view of the host, from MemFree, ``/proc/zoneinfo`` and
    the page cache figures the source gives), plus free swap.  Guests on hugepages are left to
    NG301.  No binding helps here: once every guest has touched its memory the kernel runs out
    and the OOM killer kills the largest guest (NG110 shows who and when).

    Severity: **critical** when the demand exceeds RAM and swap together; **warning** when it
    fits only by swapping.

    Fix: lower the maximum memory of the largest guest virsh can resize (``virsh setmaxmem
    GUEST SIZE --config``, cold boot) by the shortfall, or move guests to another host.
    """
    b = balance(ctx)
    if b.demand <= b.ram:
        return
    guests = tuple(sorted({u.guest for u in ctx.units if not u.on_hugepages}))
    ev = {"demand_bytes": b.demand, "ram_bytes": b.ram, "swap_free_bytes": b.swap}
    if b.shortfall > 0:
        yield Finding(
            "NG111", Severity.CRITICAL,
            f"the guests need {size(b.demand)} of ordinary memory, but the host's nodes can "
            f"give {size(b.ram)} and swap {size(b.swap)} more: {size(b.shortfall)} short, so "
            "once every guest has touched its memory the OOM killer kills the largest guest "
            "— no binding can prevent it.",
            guests=guests, nodes=tuple(sorted(ctx.host.node_ids)),
            evidence={**ev, "shortfall_bytes": b.shortfall}, fix=b.fix)
    else:
        yield Finding(
            "NG111", Severity.WARNING,
            f"the guests need {size(b.demand)} of ordinary memory and the host's nodes can "
            f"give {size(b.ram)}: once every guest has touched its memory "
            f"{size(b.demand - b.ram)} of it lives in swap (of {size(b.swap)} free), and "
            "the guests slow down.",
            guests=guests, nodes=tuple(sorted(ctx.host.node_ids)),
            evidence={**ev, "swapped_bytes": b.demand - b.ram},
            fix=b.fix)


def fate(ctx: Context, guests: set[str] | frozenset[str] | tuple[str, ...]) -> str:
    """What the simulator (NG110) predicts for the memory of *guests*, as the end of a
    sentence: who is OOM-killed when they grow — often not they themselves — or that no
    start order tried kills anyone for them.  Said once per set of guests and audit (NG102,
    NG103 and NG101 ask about the same guests)."""
    fates: dict[frozenset[str], str] = ctx.__dict__.setdefault("_fates", {})
    key = frozenset(guests)
    said = fates.get(key)
    if said is None:
        said = fates[key] = _fate(ctx, key)
    return said


def _fate(ctx: Context, guests: frozenset[str]) -> str:
    by_guest = ctx.prediction.bound_kills
    kills: list[Kill] = []
    seen: set[int] = set()   # by identity: hashing a Kill hashes its whole start order
    for g in sorted(set(guests)):
        for k in by_guest.get(g, ()):
            if id(k) not in seen:
                seen.add(id(k))
                kills.append(k)
    n = len(ctx.orders)
    word = ctx.order_word
    if not kills:
        return (f"the simulator kills no one for them in the {n} {word}"
                f"{'s' if n != 1 else ''} it tried (swap and the other nodes absorb it)")
    parts = []
    for k in kills[:3]:
        who = (f"{k.victim} is OOM-killed when {k.trigger} grows" if k.innocent
               else f"{k.victim} is OOM-killed as it grows")
        parts.append(f"{who} ({len(k.orders)} of {n} {word}s)")
    more = f", and {len(kills) - 3} more kills" if len(kills) > 3 else ""
    return "the simulator predicts: " + "; ".join(parts) + more + " (NG110)"
