"""How the kernel spreads memory over NUMA nodes, step by step, up to swap and the OOM killer.

A pure model of the Linux page allocator at the level that decides per-node outcomes, working in
byte amounts (never page by page), so its cost does not grow with the sizes simulated.  What it
follows, by kernel source (Linux 6.1):

* **Zonelists** (mm/page_alloc.c ``build_zonelists``): every allocation walks the fallback order
  of one node — see :mod:`numaguard.core.fallback`.
* **Policies** (mm/mempolicy.c ``policy_node``/``policy_nodemask``, ``alloc_pages_vma``):
  ``default`` walks the zonelist of the CPU's node; ``bind`` walks the same zonelist filtered by
  its nodemask (so a task on node 2 bound to 0-2 fills 2, then its fallback order — not nodeset
  order); ``preferred`` walks the zonelist of the preferred node, unfiltered;
  ``preferred-many`` first tries its nodes (CPU's zonelist, filtered, no direct reclaim), then
  any node; ``interleave`` hands pages out round-robin over its nodes, each page allocated with
  that node's zonelist and no nodemask (``alloc_page_interleave``) — when a node of the set is
  exhausted, its share follows *its* fallback order, possibly out of the set.
* **cpuset.mems** (``__cpuset_zone_allowed``): a wall on top of every policy (libvirt enforces
  ``strict`` and ``restrictive`` this way); interleave nodes are rebound into it.
* **Watermarks** (``get_page_from_freelist``/``__alloc_pages_slowpath``): the fast path leaves a
  node at its *low* watermark; the slow path may go down to *min*, then reclaims page cache,
  then swaps; only when every allowed node is below min and swap is full does the OOM killer run.
* **OOM killer** (mm/oom_kill.c ``constrained_alloc``, ``oom_badness``, ``select_bad_process``):
  constraint ``memory-policy`` when a bind nodemask excludes memory nodes, else ``cpuset`` when
  cpuset.mems does, else ``global``; eligible tasks are those whose bind nodes / cpuset intersect
  the allocation's; badness = resident + swapped + page tables (1/512 of resident) +
  ``oom_score_adj`` × (allowed memory + swap) / 1000; the highest wins, ties go to the newest
  task; ``-1000`` is never chosen.  The victim's memory is freed and the allocation retries,
  unless the victim is the allocating task itself.
* **Hugepages**: a hugepage-backed allocation draws whole pages from per-node pools (in the
  policy's order) and never swaps; it is reserved whole when it is mapped
  (mm/hugetlb.c ``hugetlb_acct_memory``), so when the pools it may use cannot give all of it,
  it gets none.

* **Swap** (mm/vmscan.c ``shrink_inactive_list``): reclaim swaps out the *oldest* anonymous
  memory on the nodes the allocation may use — a new page enters the head of the inactive anon
  LRU (``lru_cache_add_inactive_or_unevictable``) and reclaim isolates from the tail — whoever
  owns it, the allocating task included.  Memory is tracked as chunks in allocation order, so
  an application that touched memory after a guest pushes the guest's pages to swap (measured
  by the kernel oracle, tests/oracle).  A request larger than its nodes swaps its own pages
  out and refills the nodes round after round; once a round repeats the one before, the rest
  are counted in one step (:func:`_steady_cycles`), so a 1 EiB request costs what a 1 GiB one
  does.
"""

from __future__ import annotations

import gc
import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Policy(str, Enum):
    DEFAULT = "default"
    BIND = "bind"
    PREFERRED = "preferred"
    PREFERRED_MANY = "preferred-many"
    INTERLEAVE = "interleave"


@dataclass(frozen=True, slots=True)
class SimNode:
    """A node as the allocator sees it.  ``free`` is MemFree; watermarks are the sums over the
    node's zones (``/proc/zoneinfo`` min/low); ``reclaimable`` is page cache that reclaim can
    drop; ``hugepages`` maps a page size to its free pages."""

    id: int
    free: int
    watermark_min: int = 0
    watermark_low: int = 0
    reclaimable: int = 0
    total: int | None = None
    hugepages: Mapping[int, int] = field(default_factory=dict)


#: what a :class:`_Plan` is cached under (:func:`_plan`): the policy by identity, the step's
#: nodes, the node it runs on, its cpuset's mems
_PlanKey = tuple[int, frozenset[int] | None, int, frozenset[int] | None]


@dataclass(frozen=True, slots=True)
class SimHost:
    nodes: tuple[SimNode, ...]
    fallback: Mapping[int, tuple[int, ...]]
    swap_free: int = 0
    _index: dict[int, SimNode] = field(default_factory=dict, init=False, repr=False,
                                       compare=False)
    #: what the engine works out once per kind of step on this host (:func:`_plan`), kept
    #: across runs: the audit plays the same steps in several orders
    _plans: dict[_PlanKey, _Plan] = field(default_factory=dict, init=False, repr=False,
                                       compare=False)

    def __post_init__(self) -> None:
        for n in reversed(self.nodes):  # the first node of an id wins, as a search finds it
            self._index[n.id] = n

    def node(self, node_id: int) -> SimNode:
        try:
            return self._index[node_id]
        except KeyError:
            raise KeyError(f"no node {node_id}") from None


@dataclass(frozen=True, slots=True)
class Step:
    """One event: a task (guest, application) allocates or frees memory."""

    name: str
    size: int | None
    action: str = "alloc"  # alloc | free
    policy: Policy = Policy.DEFAULT
    nodes: frozenset[int] | None = None
    cpu_node: int = 0
    cpuset_mems: frozenset[int] | None = None
    hugepage_size: int | None = None
    oom_score_adj: int = 0
    #: "task": set_mempolicy (the task's policy); "vma": mbind on the memory, as QEMU does for
    #: guest RAM — the OOM killer's eligibility test looks at the task policy only.
    policy_scope: str = "task"


(_set_name, _set_size, _set_action, _set_policy, _set_nodes, _set_cpu_node, _set_cpuset_mems,
 _set_hugepage_size, _set_oom_score_adj, _set_policy_scope) = (
    getattr(Step, f).__set__ for f in Step.__slots__)


def new_step(name: str, size: int | None, action: str, policy: Policy,
             nodes: frozenset[int] | None, cpu_node: int, cpuset_mems: frozenset[int] | None,
             hugepage_size: int | None, oom_score_adj: int, policy_scope: str) -> Step:
    """``Step(...)`` with every field given in order, at half the cost of the frozen
    dataclass's ``__init__`` (one ``object.__setattr__`` per field; readers build tens of
    thousands): each slot set through its own descriptor."""
    step = object.__new__(Step)
    _set_name(step, name)
    _set_size(step, size)
    _set_action(step, action)
    _set_policy(step, policy)
    _set_nodes(step, nodes)
    _set_cpu_node(step, cpu_node)
    _set_cpuset_mems(step, cpuset_mems)
    _set_hugepage_size(step, hugepage_size)
    _set_oom_score_adj(step, oom_score_adj)
    _set_policy_scope(step, policy_scope)
    return step


@dataclass(frozen=True, slots=True)
class OomEvent:
    step: int
    trigger: str
    victim: str
    constraint: str  # memory-policy | cpuset | global
    nodes: tuple[int, ...]
    victim_bytes: int


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one step did.  ``placed`` is what it put on each node (negative for frees);
    ``swapped`` the bytes reclaim pushed to swap during the step, whoever owned them;
    ``placed`` + ``failed`` = ``requested`` for every allocation."""

    index: int
    name: str
    action: str
    requested: int
    placed: Mapping[int, int]
    swapped: int
    failed: int
    oom: tuple[OomEvent, ...]
    free_after: Mapping[int, int]
    swap_used_after: int


#: one step as :func:`_play` records it: ``(index, name, action, requested, placed, swapped,
#: failed, oom, free_after, swap_used_after)``, *free_after* in the order of the host's nodes
StepRow = tuple[int, str, str, int, dict[int, int], int, int, tuple[OomEvent, ...],
                tuple[int, ...], int]


@dataclass(frozen=True, slots=True)
class Allocation:
    """A task's state at the end: where its memory is, how much is in swap, whether it died."""

    name: str
    requested: int
    placed: Mapping[int, int]
    swapped: int
    failed: int
    oom_killed: bool
    hugepages: Mapping[int, int]


class SimResult:
    """The end of a run, and what each step did.

    Recorded compactly while the run plays — per step a tuple of what it changed and the free
    memory of every node after it, per task its live state — and turned into
    :class:`StepResult` and :class:`Allocation` values when first read, so a run whose steps
    nobody reads (the audit's) never builds them.  Two results are equal when their steps,
    allocations, free memory, swap and OOM events are."""

    __slots__ = (
        "_allocations",
        "_node_ids",
        "_rows",
        "_steps",
        "_tasks",
        "free",
        "oom_events",
        "swap_used",
    )

    free: Mapping[int, int]
    swap_used: int
    oom_events: tuple[OomEvent, ...]

    def __init__(self, rows: list[StepRow], node_ids: tuple[int, ...], tasks: list[_Task],
                 free: Mapping[int, int], swap_used: int,
                 oom_events: tuple[OomEvent, ...]) -> None:
        self._rows = rows
        self._node_ids = node_ids
        self._tasks = tasks
        self.free = free
        self.swap_used = swap_used
        self.oom_events = oom_events
        self._steps: tuple[StepResult, ...] | None = None
        self._allocations: tuple[Allocation, ...] | None = None

    @property
    def steps(self) -> tuple[StepResult, ...]:
        """One :class:`StepResult` per step (empty when played with ``record_steps=False``)."""
        if self._steps is None:
            ids = self._node_ids
            self._steps = tuple(
                StepResult(i, name, action, requested, placed, swapped, failed, oom,
                           dict(zip(ids, free, strict=True)), swap)
                for i, name, action, requested, placed, swapped, failed, oom, free, swap
                in self._rows)
        return self._steps

    def step_rows(self) -> list[StepRow]:
        """The steps as recorded, for renderers that read every step: ``(index, name, action,
        requested, placed, swapped, failed, oom, free_after, swap_used_after)`` where
        *free_after* is a tuple in the order of :attr:`node_ids` (the host's nodes)."""
        return self._rows

    @property
    def node_ids(self) -> tuple[int, ...]:
        return self._node_ids

    @property
    def allocations(self) -> tuple[Allocation, ...]:
        """Every task at the end, in the order they first appeared."""
        if self._allocations is None:
            self._allocations = tuple(
                Allocation(t.name, t.requested, {n: b for n, b in t.placed.items() if b},
                           t.swapped, t.failed, t.killed,
                           {n: b for n, b in t.hugepages.items() if b})
                for t in self._tasks)
        return self._allocations

    def unplaced(self) -> list[tuple[str, int]]:
        """``(task, failed bytes)`` of every task that has failed bytes and was not
        OOM-killed — :attr:`allocations` filtered, without building them."""
        return [(t.name, t.failed) for t in self._tasks if t.failed and not t.killed]

    def _key(self) -> tuple[object, ...]:
        return (self.steps, self.allocations, dict(self.free), self.swap_used, self.oom_events)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SimResult):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"SimResult(steps={len(self._rows)}, allocations={len(self._tasks)}, "
                f"free={dict(self.free)!r}, swap_used={self.swap_used}, "
                f"oom_events={self.oom_events!r})")


# A chunk is memory one task placed on one node in one step — an entry of the anon LRU — kept
# as a list for speed: [bytes, node, task, seq], *seq* its place in allocation order.  A list's
# items have one type, so its items are Any here (int, int, _Task, int by position); a tuple or
# a slotted class would type them, and cost the engine its in-place updates (bench/simulate).
_Chunk = list[Any]


class _Task:
    __slots__ = (
        "chunks",
        "cpuset",
        "failed",
        "hugepage_pages",
        "hugepage_size",
        "hugepages",
        "killed",
        "name",
        "nodes",
        "oom_score_adj",
        "order",
        "placed",
        "policy",
        "policy_scope",
        "requested",
        "resident",
        "swapped",
        "version",
    )

    def __init__(self, name: str, order: int) -> None:
        self.name = name
        self.order = order
        self.policy = Policy.DEFAULT
        self.nodes: frozenset[int] | None = None
        self.cpuset: frozenset[int] | None = None
        self.oom_score_adj = 0
        self.requested = 0
        self.failed = 0
        self.placed: dict[int, int] = {}
        self.swapped = 0
        #: node -> bytes in hugepages, node -> whole pages held: the shared empty mapping
        #: until the task takes hugepages (:func:`_alloc_hugepages` gives it its own)
        self.hugepages: dict[int, int] = _NO_HUGEPAGES
        self.hugepage_pages: dict[int, int] = _NO_HUGEPAGES
        self.hugepage_size: int | None = None
        self.policy_scope = "task"
        self.killed = False
        self.chunks: list[_Chunk] = []
        #: sum(placed.values()), kept up to date where placed changes (the OOM killer reads it)
        self.resident = 0
        #: bumped whenever the task's entry in the OOM heap is renewed (older entries are stale)
        self.version = 0


#: what a task without hugepages holds in them (never written: see :func:`_alloc_hugepages`)
_NO_HUGEPAGES: dict[int, int] = {}

#: compact the LRU when it holds more freed chunks than this, and more than live ones
_LRU_SLACK = 4096


class _State:
    def __init__(self, host: SimHost) -> None:
        self.host = host
        self.free = {n.id: n.free for n in host.nodes}
        self.low = {n.id: n.watermark_low for n in host.nodes}
        self.min = {n.id: n.watermark_min for n in host.nodes}
        self.reclaimable = {n.id: n.reclaimable for n in host.nodes}
        #: how many nodes still have page cache to drop (direct reclaim skips its loop at 0)
        self.reclaim_left = sum(1 for b in self.reclaimable.values() if b)
        self.hp_free = {n.id: dict(n.hugepages) for n in host.nodes}
        self.swap_free = host.swap_free
        self.swap_used = 0
        self.memory_nodes = frozenset(n.id for n in host.nodes
                                      if (n.total if n.total is not None else n.free) > 0)
        self.tasks: dict[str, _Task] = {}
        #: OOM candidates by badness (see :func:`_oom`): (-points, -order, version, task);
        #: tasks whose memory changed since the last OOM event wait in *dirty*
        self.heap: list[tuple[int, int, int, _Task]] = []
        self.dirty: set[_Task] = set()
        #: a task with an oom_score_adj: badness then depends on the event, no heap
        self.adjusted = False
        #: the anon LRU, one queue per node, oldest first: reclaim takes the oldest chunk of
        #: the nodes it may use, which is the queue head with the lowest *seq*.  A freed chunk
        #: (0 bytes) stays until it reaches a head or the queues are compacted.
        self.lru: dict[int, deque[_Chunk]] = {n: deque() for n in self.free}
        self.seq = 0
        #: freed chunks still in the queues (the live ones are counted when compacting)
        self.lru_dead = 0
        self.zonelists: dict[int, tuple[int, ...]] = {}
        #: the nodes with free memory above their low / min watermark: a walk of a full host
        #: looks at no node
        self.room_low = {n for n, b in self.free.items() if b > self.low[n]}
        self.room_min = {n for n, b in self.free.items() if b > self.min[n]}

    def zonelist(self, node: int) -> tuple[int, ...]:
        order = self.zonelists.get(node)
        if order is None:
            order = self.host.fallback.get(node)
            if order is None:
                order = tuple(sorted(self.free))
            self.zonelists[node] = order
        return order

    def grew(self, n: int) -> None:
        """Node *n* has more free memory now."""
        b = self.free[n]
        if b > self.low[n]:
            self.room_low.add(n)
        if b > self.min[n]:
            self.room_min.add(n)

    def take(self, task: _Task, n: int, amount: int, placed: dict[int, int],
             merge: bool = False) -> None:
        """Place *amount* bytes of *task* on node *n*: a new chunk at the head of the node's
        LRU — or, with *merge* (an interleave's rounds, which often land on one node), more in
        the newest chunk of all when it is this task's on this node: the two would sit side by
        side in every order reclaim and frees walk."""
        free = self.free
        b = free[n] = free[n] - amount
        if b <= self.low[n]:
            self.room_low.discard(n)
        if b <= self.min[n]:
            self.room_min.discard(n)
        p = task.placed
        p[n] = p.get(n, 0) + amount
        task.resident += amount
        self.dirty.add(task)
        placed[n] = placed.get(n, 0) + amount
        seq = self.seq
        if merge and task.chunks:
            last = task.chunks[-1]
            if last[3] == seq - 1 and last[1] == n and last[0]:
                last[0] += amount
                return
        self.seq = seq + 1
        chunk = [amount, n, task, seq]
        task.chunks.append(chunk)
        self.lru[n].append(chunk)

    def swap_out(self, nodes: frozenset[int], amount: int) -> int:
        """Swap out up to *amount* bytes of the oldest anonymous memory on *nodes*: the chunks
        of those nodes in allocation order, whoever owns them."""
        lru = self.lru
        for n in [n for n in nodes if (q := lru[n]) and not q[0][0]]:  # freed chunks first
            q = lru[n]
            while q and not q[0][0]:
                q.popleft()
                self.lru_dead -= 1
        heads = [(q[0][3], n) for n in nodes if (q := lru[n])]
        out = 0
        if not heads:
            return 0
        heapq.heapify(heads)
        free = self.free
        dirty = self.dirty
        while out < amount and heads:
            n = heads[0][1]
            q = lru[n]
            chunk = q[0]
            b = chunk[0]
            take = min(amount - out, b)
            chunk[0] = b - take
            owner = chunk[2]
            owner.placed[n] -= take
            owner.resident -= take
            owner.swapped += take
            dirty.add(owner)
            free[n] += take
            out += take
            self.grew(n)
            if not chunk[0]:
                q.popleft()
                while q and not q[0][0]:
                    q.popleft()
                    self.lru_dead -= 1
                if q:
                    heapq.heapreplace(heads, (q[0][3], n))
                else:
                    heapq.heappop(heads)
        self.swap_free -= out
        self.swap_used += out
        return out

    def dead(self, count: int) -> None:
        """*count* chunks still in the LRU were freed; compact it when they dominate."""
        self.lru_dead += count
        if self.lru_dead > _LRU_SLACK and \
                2 * self.lru_dead > sum(len(q) for q in self.lru.values()):
            for n, q in self.lru.items():
                self.lru[n] = deque(c for c in q if c[0])
            self.lru_dead = 0

    def release(self, task: _Task) -> int:
        freed = 0
        free = self.free
        for n, b in task.placed.items():
            if b:
                free[n] += b
                freed += b
                self.grew(n)
        task.placed.clear()
        task.resident = 0
        self.dirty.add(task)  # its entry in the OOM heap (if any) is stale now
        live = 0
        for chunk in task.chunks:
            if chunk[0]:
                chunk[0] = 0
                live += 1
        task.chunks.clear()
        if live:
            self.dead(live)
        if task.hugepage_pages:
            for n, pages in task.hugepage_pages.items():
                if task.hugepage_size:
                    self.hp_free[n][task.hugepage_size] = \
                        self.hp_free[n].get(task.hugepage_size, 0) + pages
            freed += sum(task.hugepages.values())
            task.hugepages.clear()
            task.hugepage_pages.clear()
        elif task.hugepages:
            freed += sum(task.hugepages.values())
            task.hugepages.clear()
        if task.swapped:
            self.swap_free += task.swapped
            self.swap_used -= task.swapped
            freed += task.swapped
            task.swapped = 0
        return freed


class _Plan:
    """What an allocation step does on a host, worked out once per (policy, nodes, CPU node,
    cpuset.mems): the zonelists it walks already filtered by the nodes it may use (so a walk
    looks only at nodes it can take from), the nodes reclaim and swap may touch, and the OOM
    constraint (:func:`_constraint`)."""

    __slots__ = (
        "allowed",
        "constraint",
        "domain",
        "domain_ids",
        "first",
        "interleave",
        "mask",
        "own",
        "reach",
        "reclaim",
        "simple",
        "spread",
        "walk",
        "zonelists",
    )

    def __init__(self, state: _State, step: Step) -> None:
        mem = state.memory_nodes
        policy, nodes = step.policy, step.nodes
        allowed = mem & step.cpuset_mems if step.cpuset_mems is not None else mem
        mask = allowed & nodes if nodes is not None else allowed
        self.allowed, self.mask = allowed, mask
        self.spread = policy is Policy.INTERLEAVE
        self.interleave: list[int] = []
        #: interleave: every node of the set comes first in its own zonelist
        self.own = False
        self.zonelists: dict[int, tuple[int, ...]] = {}
        self.first: tuple[int, ...] | None = None
        self.walk: tuple[int, ...] = ()
        if self.spread:
            self.interleave = sorted(mask) if nodes is not None else sorted(allowed)
            self.zonelists = {n: _only(state.zonelist(n), allowed) for n in self.interleave}
            self.own = all(zl[:1] == (n,) for n, zl in self.zonelists.items())
        elif policy is Policy.BIND:
            self.walk = _only(state.zonelist(step.cpu_node), mask)
        elif policy is Policy.PREFERRED:
            self.walk = _only(state.zonelist(min(nodes) if nodes else step.cpu_node), allowed)
        else:  # default, preferred-many
            zl = state.zonelist(step.cpu_node)
            self.walk = _only(zl, allowed)
            if policy is Policy.PREFERRED_MANY:
                self.first = _only(zl, mask)
        #: one walk of one zonelist (bind, preferred, default)
        self.simple = not self.spread and self.first is None
        self.reach = mask if policy is Policy.BIND else allowed
        self.reclaim = sorted(self.reach)
        self.constraint, self.domain = _constraint(state, step)
        self.domain_ids = tuple(sorted(self.domain))


def _only(order: Iterable[int], nodes: frozenset[int]) -> tuple[int, ...]:
    return tuple(n for n in order if n in nodes)


#: plans kept per host before the cache starts again (steps with random nodesets)
_PLAN_CACHE = 1 << 14


def _plan(state: _State, step: Step) -> _Plan:
    # the policy by identity: an Enum member hashes through a Python-level __hash__
    key = (id(step.policy), step.nodes, step.cpu_node, step.cpuset_mems)
    plans = state.host._plans
    plan = plans.get(key)
    if plan is None:
        if len(plans) >= _PLAN_CACHE:
            plans.clear()
        plan = plans[key] = _Plan(state, step)
    return plan


def _walk(state: _State, task: _Task, order: tuple[int, ...], amount: int, floor: str,
          placed: dict[int, int]) -> int:
    """Take up to *amount* from the nodes of *order* (a filtered zonelist) down to a
    watermark; return the rest."""
    if amount <= 0:
        return amount
    rooms = state.room_low if floor == "low" else state.room_min
    if not rooms:
        return amount
    free = state.free
    marks = state.low if floor == "low" else state.min
    for n in order:
        if n in rooms:
            room = free[n] - marks[n]
            if amount <= room:
                state.take(task, n, amount, placed)
                return 0
            state.take(task, n, room, placed)
            amount -= room
    return amount


def _interleave(state: _State, task: _Task, plan: _Plan, amount: int, floor: str,
                placed: dict[int, int], turns: dict[int, int] | None = None) -> int:
    """Round-robin over the plan's nodes; a node that has run dry sends its turn along its own
    zonelist.

    Each round gives every node with quota left the same slice, limited by what the nodes its
    pages currently land on can still give; a round ends when a node or a quota runs out, so the
    number of rounds depends on the number of nodes, not on bytes.  Free memory only shrinks
    during a call, so where a node's turn lands is found by a cursor that only moves on along
    its zonelist: O(nodes²) per call, not O(nodes³).  *turns*, when given, adds up the bytes
    placed on each node's turn (wherever they landed).
    """
    nodes = plan.interleave
    rooms = state.room_low if floor == "low" else state.room_min
    if not nodes or not rooms:  # no node has room: no turn lands anywhere
        return amount
    k = len(nodes)
    marks = state.low if floor == "low" else state.min
    base, extra = divmod(amount, k)
    lands = _own_lands(state.free, marks, rooms, plan, base, extra)
    if lands is not None:
        for share, count in ((base, k), (1, extra)):
            if share:
                for n, t in zip(nodes[:count], lands, strict=False):
                    state.take(task, t, share, placed)
                    if turns is not None:
                        turns[n] = turns.get(n, 0) + share
        return 0
    quota = dict.fromkeys(nodes, base)
    for n in nodes[:extra]:
        quota[n] += 1
    return _interleave_rounds(state, task, plan, rooms, marks, quota, placed, turns)


def _own_lands(free: dict[int, int], marks: dict[int, int], rooms: set[int], plan: _Plan,
               base: int, extra: int) -> list[int] | None:
    """Where each node's turn lands in the common case of :func:`_interleave` — every node's
    turn lands on a node of its own, which holds its whole share (*base*, one more for the first
    *extra* in node order) — or None when some turn does not."""
    nodes = plan.interleave
    if plan.own:  # each node heads its own zonelist: its turn lands on itself if it has room
        for i, n in enumerate(nodes):
            if n not in rooms or free[n] - marks[n] < base + (i < extra):
                break
        else:
            return nodes
    lands: list[int] = []
    zonelists = plan.zonelists
    for i, n in enumerate(nodes):
        for t in zonelists[n]:
            if t in rooms:
                break
        else:
            return None
        if free[t] - marks[t] < base + (i < extra):
            return None
        lands.append(t)
    return lands if len(set(lands)) == len(lands) else None


def _interleave_rounds(state: _State, task: _Task, plan: _Plan, rooms: set[int],
                       marks: dict[int, int], quota: dict[int, int], placed: dict[int, int],
                       turns: dict[int, int] | None) -> int:
    """The rounds of :func:`_interleave` when some node's turn leaves its own node: gives each
    node its *quota* (bytes, consumed) and returns the bytes no node could take."""
    nodes = plan.interleave
    zonelists = plan.zonelists
    free = state.free
    cursor = dict.fromkeys(nodes, 0)
    take = state.take
    while True:
        # where the turn of each node with quota left lands: the first node of its zonelist
        # (allowed nodes only) that has room
        target: dict[int, int] = {}
        active = False
        for n in nodes:
            if quota[n] > 0:
                active = True
                zl, i = zonelists[n], cursor[n]
                end = len(zl)
                while i < end and zl[i] not in rooms:
                    i += 1
                cursor[n] = i
                if i < end:
                    target[n] = zl[i]
        if not active:
            return 0
        if not target:
            return sum(quota.values())
        sharing: dict[int, int] = {}
        for t in target.values():
            sharing[t] = sharing.get(t, 0) + 1
        delta = min(min(quota[n] for n in target),
                    min((free[t] - marks[t]) // c for t, c in sharing.items()))
        if delta == 0:
            # fewer bytes left on a target than nodes sharing it: hand them out one node at a time
            for n, t in target.items():
                give = min(free[t] - marks[t], quota[n])
                if give > 0:
                    take(task, t, give, placed, True)
                    quota[n] -= give
                    if turns is not None:
                        turns[n] = turns.get(n, 0) + give
            continue
        for n, t in target.items():
            take(task, t, delta, placed, True)
            quota[n] -= delta
            if turns is not None:
                turns[n] = turns.get(n, 0) + delta


def _constraint(state: _State, step: Step) -> tuple[str, frozenset[int]]:
    mem = state.memory_nodes
    if step.policy is Policy.BIND and step.nodes is not None and not mem <= step.nodes:
        return "memory-policy", step.nodes & mem
    if step.cpuset_mems is not None and not mem <= step.cpuset_mems:
        return "cpuset", step.cpuset_mems & mem
    return "global", mem


def _eligible(task: _Task, constraint: str, nodes: frozenset[int]) -> bool:
    if task.killed or (not task.resident and not task.swapped):
        return False
    if constraint == "memory-policy":
        # mempolicy_in_oom_domain: only a task-wide bind policy (set_mempolicy) can take a task
        # out of the domain; an mbind on its memory (QEMU's guest RAM) does not
        return (task.policy_scope != "task" or task.policy is not Policy.BIND
                or task.nodes is None or bool(task.nodes & nodes))
    if constraint == "cpuset":
        return task.cpuset is None or bool(task.cpuset & nodes)
    return True


#: choose OOM victims from a heap (tests switch it off to compare with the scan)
_HEAP_OOM = True
#: stale entries the OOM heap may hold beyond twice the tasks before it is compacted
_HEAP_SLACK = 64


def _scan_victim(state: _State, constraint: str, nodes: frozenset[int],
                 total: int) -> _Task | None:
    """select_bad_process: every task, the highest badness wins, ties go to the later task."""
    chosen: _Task | None = None
    best = -1 << 126
    check = constraint != "global"  # every task is in the domain of a global OOM
    for task in state.tasks.values():  # created in order: the dict keeps it
        rss = task.resident
        if task.killed or (not rss and not task.swapped):
            continue
        if check and not _eligible(task, constraint, nodes):
            continue
        adj = task.oom_score_adj
        if adj <= -1000:
            continue
        points = rss + task.swapped + rss // 512 + (adj * total // 1000 if adj else 0)
        if points >= best:
            best, chosen = points, task
    return chosen


def _heap_victim(state: _State, constraint: str, nodes: frozenset[int]) -> _Task | None:
    """What :func:`_scan_victim` chooses when no task has an ``oom_score_adj`` (badness is
    then resident + swapped + resident // 512, whatever the event), in O(log tasks) for each
    task whose memory changed since the last event: the candidates sit in a heap keyed by
    (-badness, -order), so the top is the highest badness and, among equals, the later task;
    a task's older entries are recognised by their version and dropped.  Tasks outside the
    constraint's domain are set aside and put back."""
    heap = state.heap
    push = heapq.heappush
    for task in state.dirty:
        task.version += 1
        if not task.killed and (task.resident or task.swapped):
            rss = task.resident
            push(heap, (-(rss + task.swapped + rss // 512), -task.order, task.version, task))
    state.dirty.clear()
    if len(heap) > 2 * len(state.tasks) + _HEAP_SLACK:
        # stale entries leave only when they reach the top: drop them all, so the heap stays
        # within twice the live tasks (each push then costs O(1) amortised to compact)
        heap[:] = [e for e in heap if e[2] == e[3].version and not e[3].killed]
        heapq.heapify(heap)
    check = constraint != "global"
    aside = []
    chosen = None
    while heap:
        _, _, version, task = heap[0]
        if task.killed or version != task.version:
            heapq.heappop(heap)
            continue
        if check and not _eligible(task, constraint, nodes):
            aside.append(heapq.heappop(heap))
            continue
        chosen = task
        break
    for entry in aside:
        push(heap, entry)
    return chosen


def _oom(state: _State, current: _Task, plan: _Plan, index: int) -> OomEvent | None:
    constraint, nodes = plan.constraint, plan.domain
    if _HEAP_OOM and not state.adjusted:
        chosen = _heap_victim(state, constraint, nodes)
    else:
        total = state.swap_free + state.swap_used + sum(
            (state.host.node(n).total or 0) for n in nodes)
        chosen = _scan_victim(state, constraint, nodes, total)
    if chosen is None:
        return None
    size = chosen.resident + chosen.swapped + sum(chosen.hugepages.values())
    state.release(chosen)
    chosen.killed = True
    return OomEvent(index, current.name, chosen.name, constraint, plan.domain_ids, size)


def _alloc(state: _State, task: _Task, step: Step, index: int,
           placed: dict[int, int], events: list[OomEvent]) -> tuple[int, int]:
    """Place step.size bytes for *task*; return (swapped, failed); OOM events go to
    *events*."""
    assert step.size is not None
    amount = step.size
    if step.hugepage_size:
        allowed = state.memory_nodes
        if step.cpuset_mems is not None:
            allowed = allowed & step.cpuset_mems
        return 0, _alloc_hugepages(state, task, step, allowed, amount, placed)
    plan = _plan(state, step)
    walk, first = plan.walk, plan.first
    if plan.simple:  # the fast path of a walk, the common case, before anything else
        amount = _walk(state, task, walk, amount, "low", placed)
        if not amount:
            return 0, 0

    def attempt(amount: int, floor: str, turns: dict[int, int] | None = None) -> int:
        if plan.spread:
            return _interleave(state, task, plan, amount, floor, placed, turns)
        if first is not None and floor == "low":
            # alloc_pages_preferred_many: its nodes first without direct reclaim — the fast
            # path and then the slow path down to min — then any node
            amount = _walk(state, task, first, amount, "low", placed)
            amount = _walk(state, task, first, amount, "min", placed)
        return _walk(state, task, walk, amount, floor, placed)

    swapped = 0
    fast = plan.simple  # a walk's fast path was just tried
    while True:
        if not fast:
            amount = attempt(amount, "low")      # fast path
        fast = False
        if amount:
            amount = attempt(amount, "min")      # slow path: ALLOC_WMARK_MIN
        if amount and state.reclaim_left:        # direct reclaim drops page cache
            reclaimed = False
            reclaimable = state.reclaimable
            for n in plan.reclaim:
                if reclaimable[n]:
                    state.free[n] += reclaimable[n]
                    state.grew(n)
                    reclaimable[n] = 0
                    state.reclaim_left -= 1
                    reclaimed = True
            if reclaimed:
                amount = attempt(amount, "min")
        if amount and state.swap_free:
            amount, more = _swap_loop(state, task, plan, amount, attempt, placed)
            swapped += more
        if not amount:
            return swapped, 0
        event = _oom(state, task, plan, index)
        if event is None:
            return swapped, amount
        events.append(event)
        if event.victim == task.name:
            return swapped, amount


def _swap_loop(state: _State, task: _Task, plan: _Plan, amount: int,
               attempt: Callable[..., int], placed: dict[int, int]) -> tuple[int, int]:
    """Reclaim swaps the oldest anonymous memory out and the allocation retries, while swap
    lasts; return (the rest of the request, the bytes swapped)."""
    swapped = 0
    interleave = plan.interleave
    last: list[_Chunk] = []                  # what the previous retry placed
    last_sizes: list[tuple[int, int]] = []
    stuck = False                            # the previous retry placed nothing
    while amount and state.swap_free:
        want = max(amount, RECLAIM_BATCH) if stuck else amount
        out = state.swap_out(plan.reach, min(want, state.swap_free))
        if not out:
            break
        swapped += out
        state.seq += 1  # what this retry takes never grows an older chunk (see _State.take)
        mark = len(task.chunks)
        turns: dict[int, int] = {}
        before = amount
        amount = attempt(amount, "min", turns)
        stuck = amount == before
        new = task.chunks[mark:]
        sizes = [(c[1], c[0]) for c in new]
        if _SKIP_SWAP_CYCLES and sizes == last_sizes and out == sum(b for _, b in sizes) \
                and all(c[0] == 0 for c in last):
            # what the rest of the request must cover for the next round to repeat this one
            need = ((max(turns.values(), default=0) + 1) * len(interleave) if interleave
                    else out)
            cycles = _steady_cycles(amount, state.swap_free, out, need)
            if cycles:
                amount -= cycles * out
                swapped += cycles * out
                _skip_cycles(state, task, sizes, cycles, placed)
        last, last_sizes = new, sizes
    return amount, swapped


#: The swap loop's shortcut (:func:`_steady_cycles`); tests switch it off to compare.
_SKIP_SWAP_CYCLES = True

#: What a round of the swap loop reclaims at least once a retry has placed nothing: the
#: kernel's direct reclaim asks for SWAP_CLUSTER_MAX (32) pages a round (mm/vmscan.c
#: ``try_to_free_pages``: ``.nr_to_reclaim = SWAP_CLUSTER_MAX``), so a request of a few bytes
#: on a node below its watermark does not swap a few bytes a round — which took ~10^9 rounds
#: for a 3-byte request 139 MB below the watermark (a Hypothesis case that hung).
RECLAIM_BATCH = 32 * 4096


def _steady_cycles(amount: int, swap_free: int, cycle: int, need: int) -> int:
    """How many more rounds of the swap loop are the same as the one just played.

    The loop swaps the oldest anonymous memory on the nodes the allocation may use out and
    retries.  When the memory it swapped out is exactly what the previous retry placed (so the
    task's own pages from this step were the only anonymous memory left on those nodes) and the
    retry placed the same amounts on the same nodes, the nodes are back where they were, and
    each later round repeats it — swap *cycle* bytes out, place them again — for as long as:

    * swap and the rest of the request both cover *cycle*, so the swap-out takes exactly the
      last round's pages (the oldest, and the only ones there); and
    * the rest of the request is at least *need*, so the retry is limited by free memory, not
      by the request: a walk of the zonelist (bind, default, preferred) places the same bytes
      whenever the rest is at least what it placed (*need* = *cycle*); an interleave places the
      same when every node's share (rest // nodes) exceeds the most any node's turn placed
      (*need* = (that + 1) × nodes) — a share that never runs out never changes a round.

    With a 1 EiB request bound to a 16 GiB node and 1 EiB of swap there are 2**26 such rounds;
    this counts those after the current one, so the loop skips them in O(1).
    """
    by_amount = (amount - need) // cycle + 1
    by_swap = swap_free // cycle
    return max(0, min(by_amount, by_swap))


def _skip_cycles(state: _State, task: _Task, sizes: list[tuple[int, int]], cycles: int,
                 placed: dict[int, int]) -> None:
    """Account *cycles* rounds of the swap loop that swap out and place *sizes* again.

    Each round moves the task's last placed pages to swap and places the same bytes on the same
    nodes: free memory and the LRU (the last round's chunks, now the newest) end as they are;
    only swap, the task's swapped bytes and the step's placed bytes grow."""
    out = cycles * sum(b for _, b in sizes)
    state.swap_free -= out
    state.swap_used += out
    task.swapped += out
    state.dirty.add(task)
    for n, b in sizes:
        placed[n] = placed.get(n, 0) + cycles * b


def _alloc_hugepages(state: _State, task: _Task, step: Step, allowed: frozenset[int],
                     amount: int, placed: dict[int, int]) -> int:
    """Whole pages from the pools in the policy's node order; return the bytes not placed.

    All or nothing: a hugetlb mapping reserves its pages when it is mapped (mm/hugetlb.c
    ``hugetlb_reserve_pages`` → ``hugetlb_acct_memory``), against the free pages of the
    task's ``cpuset.mems`` (``allowed_mems_nr``), and its faults then take them from the
    pools its policy allows (a bind's nodes) — so when those pools hold fewer free pages than
    the request, the mapping (or, for QEMU, which preallocates every hugepage backend, its
    ``prealloc``) fails and nothing is placed.  Measured: a strict guest whose node had 64 of
    the 128 pages it needed, with 128 more on another node, got none, and QEMU exited
    (tests/oracle/QEMU.md, ``chain-hugepages-short``).

    A request that is not a multiple of the page size still takes whole pages; the bytes
    reported placed are the bytes requested (the rest of the last page is slack)."""
    size = step.hugepage_size
    assert size
    task.hugepage_size = size
    if task.hugepages is _NO_HUGEPAGES:
        task.hugepages, task.hugepage_pages = {}, {}
    if step.policy is Policy.INTERLEAVE and step.nodes:
        order = tuple(sorted(step.nodes & allowed))
    elif step.policy is Policy.PREFERRED and step.nodes:
        order = state.zonelist(min(step.nodes))
    else:
        order = state.zonelist(step.cpu_node)
    mask = allowed & step.nodes if (step.nodes is not None and step.policy in (
        Policy.BIND, Policy.INTERLEAVE)) else allowed
    hp_free = state.hp_free
    if -(-amount // size) > sum(hp_free[n].get(size, 0) for n in mask):
        return amount
    left = amount
    for n in order:
        if n not in mask or left <= 0:
            continue
        pages = min(-(-left // size), state.hp_free[n].get(size, 0))
        if pages:
            got = min(pages * size, left)
            state.hp_free[n][size] -= pages
            task.hugepage_pages[n] = task.hugepage_pages.get(n, 0) + pages
            task.hugepages[n] = task.hugepages.get(n, 0) + got
            placed[n] = placed.get(n, 0) + got
            left -= got
    return left


def _free(state: _State, task: _Task, amount: int | None, placed: dict[int, int]) -> int:
    """Free *amount* bytes (all when ``None``): swap first, then the nodes it has most on."""
    if amount is None:
        freed: dict[int, int] = {}
        for source in (task.placed, task.hugepages):
            for n, b in source.items():
                freed[n] = freed.get(n, 0) - b
        total = state.release(task)
        placed.update(freed)
        task.killed = False  # a guest that stopped (or was killed) may be started again
        return total
    left = amount
    out = min(left, task.swapped)
    task.swapped -= out
    state.dirty.add(task)
    state.swap_free += out
    state.swap_used -= out
    left -= out
    emptied = 0
    for n in sorted(task.placed, key=lambda n: -task.placed[n]):
        if left <= 0:
            break
        give = min(left, task.placed[n])
        task.placed[n] -= give
        task.resident -= give
        state.dirty.add(task)
        state.free[n] += give
        state.grew(n)
        rest = give
        for chunk in reversed(task.chunks):
            if rest <= 0:
                break
            if chunk[1] == n and chunk[0]:
                cut = min(rest, chunk[0])
                chunk[0] -= cut
                rest -= cut
                if not chunk[0]:
                    emptied += 1
        placed[n] = placed.get(n, 0) - give
        left -= give
    if emptied:
        state.dead(emptied)
    size = task.hugepage_size
    for n in sorted(task.hugepages, key=lambda n: -task.hugepages[n]):
        if left <= 0 or not size:
            break
        pages = min(-(-left // size), task.hugepage_pages.get(n, 0))
        give = min(pages * size, task.hugepages[n])
        task.hugepage_pages[n] -= pages
        task.hugepages[n] -= give
        state.hp_free[n][size] = state.hp_free[n].get(size, 0) + pages
        placed[n] = placed.get(n, 0) - give
        left -= give
    return amount - max(left, 0)


def simulate(host: SimHost, steps: Iterable[Step], *, record_steps: bool = True) -> SimResult:
    """Play *steps* on *host*.  Every byte a task requests ends resident on a node, in swap, or
    failed (or freed, or gone with an OOM-killed task).  *record_steps*: keep what each step did
    (:attr:`SimResult.steps`; the audit's verdict needs only the end and the OOM events:
    ``steps`` is then empty).

    The cyclic garbage collector is paused while the steps play: a run keeps every chunk, task
    and recorded step alive to its end and makes no garbage cycles of its own (what it drops,
    reference counting frees), so each collection would only walk the growing result — at
    4,000 live tasks one full collection costs as much as a third of the run."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return _play(host, steps, record_steps)
    finally:
        if paused:
            gc.enable()


def _play(host: SimHost, steps: Iterable[Step], record_steps: bool) -> SimResult:
    state = _State(host)
    tasks = state.tasks
    free, low, room_low = state.free, state.low, state.room_low
    take = state.take
    plans = host._plans
    rows: list[StepRow] = []
    events: list[OomEvent] = []
    for index, step in enumerate(steps):
        name = step.name
        task = tasks.get(name)
        if task is None:
            task = tasks[name] = _Task(name, len(tasks))
        placed: dict[int, int] = {}
        swapped = failed = 0
        mark = len(events)
        if step.action == "free":
            _free(state, task, step.size, placed)
            requested = 0
        elif task.killed:
            requested = failed = step.size or 0
        else:
            task.policy, task.nodes, task.cpuset = step.policy, step.nodes, step.cpuset_mems
            task.policy_scope = step.policy_scope
            task.oom_score_adj = step.oom_score_adj
            if step.oom_score_adj:
                state.adjusted = True
            requested = step.size or 0
            task.requested += requested
            # the common case first: the fast path of a walk whose first node with room above
            # the low watermark holds the whole request (what _alloc would do, without it)
            plan = plans.get((id(step.policy), step.nodes, step.cpu_node, step.cpuset_mems))
            done = False
            if plan is not None and plan.simple and room_low and requested > 0 \
                    and not step.hugepage_size:
                for n in plan.walk:
                    if n in room_low:
                        if free[n] - low[n] >= requested:
                            take(task, n, requested, placed)
                            done = True
                        break
            if not done:
                swapped, failed = _alloc(state, task, step, index, placed, events)
                task.failed += failed
        if record_steps:
            rows.append((index, name, step.action, requested, placed, swapped, failed,
                         tuple(events[mark:]) if len(events) > mark else (),
                         tuple(free.values()), state.swap_used))
    return SimResult(rows, tuple(free), list(tasks.values()), dict(free), state.swap_used,
                     tuple(events))
