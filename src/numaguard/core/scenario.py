"""What ``numaguard simulate`` plays: a host for the simulator and a sequence of steps.

Pure glue between the model (:class:`~numaguard.model.topology.Host`, guests) and the engine
(:mod:`numaguard.core.simulate`):

* :func:`sim_host` turns a host into the allocator's view of it — free memory, watermarks (from
  ``/proc/zoneinfo`` when known, else derived as the kernel does, :mod:`.watermarks`), page cache
  reclaim can drop, free hugepages per pool, zonelists (:func:`~.fallback.fallback_orders`) and
  free swap;
* :func:`guest_steps` turns libvirt guests into allocation steps the way libvirt hands their
  policies to QEMU and cgroups (FACTS.md, qemu_command.c / qemu_process.c);
* :func:`with_mode` rewrites a run for ``--compare`` (the same steps in strict, preferred, …).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from numaguard.core.capacity import MemoryUnit, memory_units, vcpu_host_cpus
from numaguard.core.fallback import fallback_orders
from numaguard.core.simulate import Policy, SimHost, SimNode, SimResult, Step, new_step, simulate
from numaguard.core.watermarks import kernel_watermarks
from numaguard.model.guest import Guest
from numaguard.model.policy import MemoryMode, Placement
from numaguard.model.topology import Host

#: QEMU's own memory per guest (its heap, thread stacks, page tables; not guest RAM): measured
#: 10 MiB for libvirt's command line without devices (tests/oracle/QEMU.md: 7.9 MiB of own
#: anonymous memory plus page tables and kernel objects; the chain's preferred spill starts
#: 18.4 MiB earlier for two QEMUs).  A floor: emulated devices (video memory, virtio rings,
#: vhost) add to it, and so do the page tables of guest RAM without transparent huge pages
#: (2 MiB per GiB).
QEMU_OWN = 10 * 1024 * 1024
#: of :data:`QEMU_OWN`, what QEMU has allocated before it preallocates guest RAM (measured
#: 4 MiB); a guest touched lazily by its vCPUs has all of it before
QEMU_OWN_BEFORE_PREALLOC = 4 * 1024 * 1024
#: the label of a QEMU's own memory in a run
OWN_LABEL = "{name} QEMU's own"


#: ``--compare`` modes, in the order they are shown.
MODES = ("strict", "restrictive", "preferred", "interleave")


@dataclass(frozen=True, slots=True)
class Scenario:
    """A host and the steps played on it.  ``labels[i]`` names step *i* for people (``vm1
    cell 0`` when a guest has several NUMA cells; the step's ``name`` is the task, the whole
    QEMU process, which is what the OOM killer kills)."""

    name: str
    host: SimHost
    steps: tuple[Step, ...]
    labels: tuple[str, ...]
    source: str | None = None
    #: the first *held* steps put back what a live host's guests hold now (core/whatif.py):
    #: where it is, whatever mode the rest is played in
    held: int = 0

    def run(self) -> SimResult:
        return simulate(self.host, self.steps)

    def with_mode(self, mode: str) -> Scenario:
        return replace(self, steps=self.steps[:self.held] + tuple(
            with_mode(s, mode) for s in self.steps[self.held:]))


@dataclass(frozen=True, slots=True)
class Run:
    """One played scenario; *mode* is the ``--compare`` mode it was rewritten to, if any."""

    scenario: Scenario
    result: SimResult
    mode: str | None = None

    @property
    def troubled(self) -> bool:
        """Some task was OOM-killed or some bytes could not be placed at all."""
        return troubled(self.result)


def troubled(result: SimResult) -> bool:
    return bool(result.oom_events) or any(a.oom_killed or a.failed for a in result.allocations)


def play(scenario: Scenario) -> Run:
    return Run(scenario, scenario.run())


def compare(scenario: Scenario, modes: Iterable[str]) -> tuple[Run, ...]:
    """The scenario once per mode (:func:`with_mode`)."""
    runs = []
    for mode in modes:
        variant = scenario.with_mode(mode)
        runs.append(Run(variant, variant.run(), mode))
    return tuple(runs)


def sim_host(host: Host, *, fallback: Mapping[int, tuple[int, ...]] | None = None,
             swap: int | None = None, min_free_kbytes: int | None = None,
             watermark_scale_factor: int = 10) -> SimHost:
    """The allocator's view of *host*.

    Free memory is MemFree (which already excludes hugepage pools); a source that does not know
    it (capabilities XML) gives MemTotal minus the hugepage pools.  Watermarks missing from the
    source are derived with the kernel's boot-time formula over all nodes' MemTotal.  A hugepage
    pool with an unknown free count counts as entirely free.  Swap is *swap*, else the host's
    SwapFree, else none.
    """
    derived = kernel_watermarks({n.id: n.mem_total for n in host.nodes},
                                min_free_kbytes=min_free_kbytes,
                                watermark_scale_factor=watermark_scale_factor)
    nodes = []
    for n in host.nodes:
        hugepages = sum(p.total_bytes for p in n.hugepages)
        free = n.mem_free if n.mem_free is not None else max(0, n.mem_total - hugepages)
        marks = derived[n.id]
        wmin = n.watermark_min if n.watermark_min is not None else marks.min
        wlow = n.watermark_low if n.watermark_low is not None else max(marks.low, wmin)
        nodes.append(SimNode(
            id=n.id, free=free, watermark_min=wmin, watermark_low=wlow,
            reclaimable=n.reclaimable or 0, total=n.mem_total,
            hugepages={p.size: (p.free if p.free is not None else p.total)
                       for p in n.hugepages if p.total or p.free}))
    if fallback is None:
        fallback = fallback_orders(host)
    if swap is None:
        swap = host.swap_free or 0
    return SimHost(tuple(nodes), dict(fallback), swap)


# -- libvirt guests -> steps ------------------------------------------------------------------

def _strict_mems(guest: Guest) -> frozenset[int] | None:
    """The union of the guest's nodesets (``<memory>`` and every cell's), or ``None``."""
    union: set[int] = set()
    for p in (guest.policy, *guest.policies):
        if p is not None and p.nodeset is not None:
            union |= p.nodeset
    return frozenset(union) or None


def _cgroup_mems(guest: Guest, restrictive: frozenset[int] | None,
                 strict: frozenset[int] | None) -> frozenset[int] | None:
    """cpuset.mems libvirt gives the threads that touch a unit's memory (FACTS.md,
    src/qemu/qemu_process.c ``qemuProcessSetupEmulator``, ``qemuProcessSetupVcpu``): strict
    ``<memory>`` → the union of the guest's nodesets (*strict*, :func:`_strict_mems`, the same
    for every unit and the emulator); restrictive → *restrictive*: the unit's own nodeset (a
    restrictive memnode's for its cell's vCPUs; ``<memory>``'s for the emulator); preferred,
    interleave or no ``<numatune>`` → not set."""
    top = guest.policy
    if top is None or top.placement is not Placement.STATIC:
        return None
    if top.mode is MemoryMode.STRICT:
        return strict
    if top.mode is MemoryMode.RESTRICTIVE:
        return restrictive
    return None


def _policy(unit: MemoryUnit) -> tuple[Policy, frozenset[int] | None]:
    """The QEMU memory-backend policy of a unit (qemu_command.c): strict → bind, preferred →
    preferred (MPOL_PREFERRED_MANY for several nodes, kernel ≥ 5.15), interleave →
    interleave; restrictive and automatic placement give QEMU no policy."""
    nodeset = unit.static_nodeset
    if unit.policy is None or nodeset is None:
        return Policy.DEFAULT, None
    mode = unit.policy.mode
    if mode is MemoryMode.STRICT:
        return Policy.BIND, nodeset
    if mode is MemoryMode.PREFERRED:
        return (Policy.PREFERRED if len(nodeset) == 1 else Policy.PREFERRED_MANY), nodeset
    if mode is MemoryMode.INTERLEAVE:
        return Policy.INTERLEAVE, nodeset
    return Policy.DEFAULT, nodeset  # restrictive: cgroups only


def _one_node(host: Host, cpus: frozenset[int] | None,
              memo: dict[frozenset[int], frozenset[int]] | None) -> int | None:
    """The node of host CPUs *cpus* when they are all on one, else ``None``.  *memo* keeps the
    nodes of the CPU sets seen (guests pinned alike share them)."""
    if not cpus:
        return None
    nodes = memo.get(cpus) if memo is not None else None
    if nodes is None:
        nodes = host.nodes_of_cpus(cpus)
        if memo is not None:
            memo[cpus] = nodes
    return next(iter(nodes)) if len(nodes) == 1 else None


def _cpu_node(host: Host, guest: Guest, unit: MemoryUnit,
              memo: dict[frozenset[int], frozenset[int]] | None = None) -> int:
    """The node the unit's vCPUs run on when their pinning keeps them on one node, else the
    first node of its nodeset, else the first host node."""
    node = _one_node(host, vcpu_host_cpus(guest, unit.vcpus), memo)
    if node is not None:
        return node
    nodeset = unit.static_nodeset
    if nodeset:
        known = sorted(nodeset & host.node_ids)
        if known:
            return known[0]
    return host.nodes[0].id if host.nodes else 0


def guest_steps(host: Host, guests: Iterable[Guest], order: Sequence[str] | None = None, *,
                own: int = QEMU_OWN) -> list[tuple[Step, str]]:
    """Each guest touching its full memory, one after another: QEMU's own memory and one step
    per memory unit (guest NUMA cell, or the whole guest), with the label people see
    (:func:`guest_parts`).  *order*: guest names in start
    order (a :class:`~numaguard.core.orders.StartOrder`'s); guests it leaves out follow in name
    order.  Without it, name order.  *own*: QEMU's own memory per guest."""
    per_guest = guest_step_map(host, guests, own=own)
    return [s for name in ordered_names(per_guest, order) for s in per_guest[name]]


def ordered_names(per_guest: Mapping[str, object], order: Sequence[str] | None) -> list[str]:
    """*order*'s names that are guests, then the rest by name."""
    if order is None:
        return sorted(per_guest)
    first = [n for n in dict.fromkeys(order) if n in per_guest]
    seen = set(first)
    return first + sorted(n for n in per_guest if n not in seen)


@dataclass(frozen=True, slots=True)
class GuestSteps:
    """One guest's steps: QEMU's own memory before its guest RAM, the guest RAM (one step per
    memory unit, with its label) and QEMU's own memory after it."""

    before: tuple[Step, ...]
    ram: tuple[tuple[Step, str], ...]
    after: tuple[Step, ...]

    def pairs(self) -> list[tuple[Step, str]]:
        return _labelled(self.before) + list(self.ram) + _labelled(self.after)

    def own(self) -> list[tuple[Step, str]]:
        """QEMU's own memory, before and after."""
        return _labelled(self.before + self.after)


def _labelled(steps: tuple[Step, ...]) -> list[tuple[Step, str]]:
    return [(s, OWN_LABEL.format(name=s.name)) for s in steps]


def preallocated(guest: Guest) -> bool:
    """libvirt has QEMU preallocate the guest RAM at start (``prealloc``) for huge pages and for
    ``<allocation mode='immediate'>`` only (docs/qemu-argv.md); other guests are touched
    lazily, by their vCPU threads."""
    return guest.immediate or bool(guest.hugepages)


def _emulator_node(host: Host, guest: Guest, units: Sequence[MemoryUnit],
                   memo: dict[frozenset[int], frozenset[int]]) -> int:
    """The node QEMU's own memory comes from: its ``<emulatorpin>``'s when that is one node,
    else the node of the guest's first memory unit (:func:`_cpu_node`)."""
    node = _one_node(host, guest.emulatorpin, memo)
    if node is not None:
        return node
    if units:
        return _cpu_node(host, guest, units[0], memo)
    return host.nodes[0].id if host.nodes else 0


def _touching_nodes(host: Host, guest: Guest, unit: MemoryUnit, policy: Policy,
                    nodes: frozenset[int] | None,
                    memo: dict[frozenset[int], frozenset[int]]) -> list[tuple[int, int]] | None:
    """Where a lazily touched unit's pages are first touched, when that spreads it: per node,
    how many of the unit's vCPUs are pinned there — ``None`` unless they are pinned to CPUs of
    two or more nodes (each vCPU within one) and the policy lets the touching CPU's node
    decide (default and restrictive, bind and preferred-many over several nodes:
    mm/mempolicy.c takes the local node first when the mask has it).  Measured: a strict 0-1
    guest with vCPU 0 on node 1 and vCPU 1 on node 0, each touching half, got 126.9 MiB on
    each node (tests/oracle/QEMU.md, ``chain-pinned-split``); how a guest OS spreads its first
    touches over its vCPUs is its own, and an equal share per vCPU is the expectation for a
    guest whose work runs on all of them."""
    if policy in (Policy.PREFERRED, Policy.INTERLEAVE) or (
            policy is Policy.BIND and nodes is not None and len(nodes) < 2):
        return None
    counts: dict[int, int] = {}
    for v in sorted(unit.vcpus):
        n = _one_node(host, guest.vcpu_cpus(v), memo)
        if n is None:
            return None
        counts[n] = counts.get(n, 0) + 1
    return sorted(counts.items()) if len(counts) > 1 else None


def _prealloc_nodes(host: Host, guest: Guest, unit: MemoryUnit, policy: Policy,
                    nodes: frozenset[int] | None) -> list[tuple[int, int]] | None:
    """Where QEMU's prealloc threads touch a preallocated unit bound to several nodes: per node
    of the nodeset that has CPUs, its CPU count — ``None`` for one node, hugepage units, or
    fewer threads than such nodes.  libvirt gives a backend with ``prealloc`` and
    ``host-nodes`` a thread-context whose CPU affinity is the nodeset's CPUs
    (``prealloc-context``, docs/qemu-argv.md); QEMU starts one prealloc thread per vCPU it
    boots with (``-smp``) there,
    each touching its own slice, and under bind or preferred-many each page comes from the
    touching thread's node.  Measured: a strict 1-2 guest with 2 vCPUs and
    ``<allocation mode='immediate'>`` got 128.0 MiB on each node (tests/oracle/QEMU.md,
    ``chain-immediate-split``); with the threads spread evenly over the nodeset's CPUs, each
    node's share follows its CPUs."""
    if policy not in (Policy.BIND, Policy.PREFERRED_MANY) or nodes is None or len(nodes) < 2 \
            or unit.hugepage_size is not None:
        return None
    counts = [(n.id, len(n.cpus)) for n in host.nodes if n.id in nodes and n.cpus]
    if len(counts) < 2 or guest.vcpus_current < len(counts):
        return None
    return counts


def guest_parts(host: Host, guests: Iterable[Guest], *, own: int = QEMU_OWN
                ) -> dict[str, GuestSteps]:
    """Per guest name, its :class:`GuestSteps`.  QEMU's own memory (*own* bytes) is taken
    under QEMU's task policy, the default, on the emulator's node inside its cgroup's
    cpuset.mems: all before the guest RAM when the vCPUs touch it lazily,
    :data:`QEMU_OWN_BEFORE_PREALLOC` before and the rest after when QEMU preallocates it."""
    out: dict[str, GuestSteps] = {}
    memo: dict[frozenset[int], frozenset[int]] = {}
    for guest in guests:
        strict = _strict_mems(guest)
        units = [u for u in memory_units(guest) if u.size > 0]
        ram = []
        lazy = not preallocated(guest)
        for unit in units:
            policy, nodes = _policy(unit)
            mems = _cgroup_mems(guest, unit.static_nodeset, strict)
            split = (_touching_nodes(host, guest, unit, policy, nodes, memo) if lazy
                     else _prealloc_nodes(host, guest, unit, policy, nodes))
            if split is None:
                # QEMU applies the policy with mbind on the guest RAM, not to the task: vma
                step = new_step(guest.name, unit.size, "alloc", policy, nodes,
                                _cpu_node(host, guest, unit, memo), mems, unit.hugepage_size,
                                0, "vma")
                ram.append((step, unit.label))
                continue
            given, total = 0, sum(k for _, k in split)
            for i, (node, count) in enumerate(split):
                size = unit.size - given if i == len(split) - 1 else unit.size * count // total
                given += size
                if size > 0:
                    ram.append((new_step(guest.name, size, "alloc", policy, nodes, node, mems,
                                         unit.hugepage_size, 0, "vma"),
                                f"{unit.label} ({'vCPUs' if lazy else 'prealloc'} on node "
                                f"{node})"))
        before: tuple[Step, ...] = ()
        after: tuple[Step, ...] = ()
        if own > 0:
            first = own if lazy else min(own, QEMU_OWN_BEFORE_PREALLOC)
            top = guest.policy.nodeset if guest.policy is not None else None
            node, mems = _emulator_node(host, guest, units, memo), _cgroup_mems(guest, top, strict)
            before = (new_step(guest.name, first, "alloc", Policy.DEFAULT, None, node, mems,
                               None, 0, "task"),)
            if own > first:
                after = (new_step(guest.name, own - first, "alloc", Policy.DEFAULT, None, node,
                                  mems, None, 0, "task"),)
        out[guest.name] = GuestSteps(before, tuple(ram), after)
    return out


def guest_step_map(host: Host, guests: Iterable[Guest], *, own: int = QEMU_OWN
                   ) -> dict[str, list[tuple[Step, str]]]:
    """Per guest name, its steps (see :func:`guest_steps`: :class:`GuestSteps` in order),
    computed once for many orders."""
    return {name: parts.pairs() for name, parts in guest_parts(host, guests, own=own).items()}


# -- --compare ----------------------------------------------------------------------------------

def with_mode(step: Step, mode: str) -> Step:
    """*step* as if its nodeset were given with libvirt *mode*; steps without ``nodes`` (an
    application with the default policy) and ``free`` steps are left alone.

    strict → bind + cpuset.mems = nodes; restrictive → default policy + cpuset.mems = nodes;
    preferred → preferred (one node) or preferred-many (several); interleave → interleave.
    """
    if step.nodes is None or step.action != "alloc":
        return step
    if mode == "strict":
        return replace(step, policy=Policy.BIND, cpuset_mems=step.nodes)
    if mode == "restrictive":
        return replace(step, policy=Policy.DEFAULT, cpuset_mems=step.nodes)
    if mode == "preferred":
        policy = Policy.PREFERRED if len(step.nodes) == 1 else Policy.PREFERRED_MANY
        return replace(step, policy=policy, cpuset_mems=None)
    if mode == "interleave":
        return replace(step, policy=Policy.INTERLEAVE, cpuset_mems=None)
    raise ValueError(f"unknown mode {mode!r} ({', '.join(MODES)})")
