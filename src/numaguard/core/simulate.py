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
  policy's order) and never swaps; what the pools cannot give fails.

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

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum


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


@dataclass(frozen=True, slots=True)
class SimHost:
    nodes: tuple[SimNode, ...]
    fallback: Mapping[int, tuple[int, ...]]
    swap_free: int = 0
    _index: dict[int, SimNode] = field(default_factory=dict, init=False, repr=False,
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


@dataclass(frozen=True, slots=True)
class SimResult:
    steps: tuple[StepResult, ...]
    allocations: tuple[Allocation, ...]
    free: Mapping[int, int]
    swap_used: int
    oom_events: tuple[OomEvent, ...]


@dataclass(eq=False)
class _Chunk:
    """Memory one task placed on one node in one step: an entry of the anon LRU."""

    task: _Task
    node: int
    bytes: int


@dataclass(eq=False)
class _Task:
    name: str
    order: int
    policy: Policy = Policy.DEFAULT
    nodes: frozenset[int] | None = None
    cpuset: frozenset[int] | None = None
    oom_score_adj: int = 0
    requested: int = 0
    failed: int = 0
    placed: dict[int, int] = field(default_factory=dict)
    swapped: int = 0
    hugepages: dict[int, int] = field(default_factory=dict)  # node -> bytes in hugepages
    hugepage_pages: dict[int, int] = field(default_factory=dict)  # node -> whole pages held
    hugepage_size: int | None = None
    policy_scope: str = "task"
    killed: bool = False
    chunks: list[_Chunk] = field(default_factory=list)
    #: sum(placed.values()), kept up to date where placed changes (the OOM killer reads it
    #: for every task at every event)
    resident: int = 0
    #: bumped whenever the task's entry in the OOM heap is renewed (older entries are stale)
    version: int = 0


class _State:
    def __init__(self, host: SimHost) -> None:
        self.host = host
        self.free = {n.id: n.free for n in host.nodes}
        self.low = {n.id: n.watermark_low for n in host.nodes}
        self.min = {n.id: n.watermark_min for n in host.nodes}
        self.reclaimable = {n.id: n.reclaimable for n in host.nodes}
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
        self.lru: list[_Chunk] = []  # oldest first
        self.lru_head = 0            # chunks before this index are empty

    def zonelist(self, node: int) -> tuple[int, ...]:
        order = self.host.fallback.get(node)
        if order is None:
            order = tuple(sorted(self.free))
        return order

    def room(self, n: int, floor: str) -> int:
        mark = self.low[n] if floor == "low" else self.min[n]
        return max(0, self.free[n] - mark)

    def take(self, task: _Task, n: int, amount: int, placed: dict[int, int]) -> None:
        self.free[n] -= amount
        task.placed[n] = task.placed.get(n, 0) + amount
        task.resident += amount
        self.dirty.add(task)
        placed[n] = placed.get(n, 0) + amount
        chunk = _Chunk(task, n, amount)
        task.chunks.append(chunk)
        self.lru.append(chunk)

    def swap_out(self, nodes: frozenset[int], amount: int) -> int:
        """Swap out up to *amount* bytes of the oldest anonymous memory on *nodes*."""
        out = 0
        for i in range(self.lru_head, len(self.lru)):
            if out >= amount:
                break
            chunk = self.lru[i]
            if chunk.bytes == 0 or chunk.node not in nodes:
                continue
            take = min(chunk.bytes, amount - out)
            chunk.bytes -= take
            owner = chunk.task
            owner.placed[chunk.node] -= take
            owner.resident -= take
            owner.swapped += take
            self.dirty.add(owner)
            self.free[chunk.node] += take
            out += take
        while self.lru_head < len(self.lru) and self.lru[self.lru_head].bytes == 0:
            self.lru_head += 1
        self.swap_free -= out
        self.swap_used += out
        return out

    def release(self, task: _Task) -> int:
        freed = 0
        for n, b in task.placed.items():
            self.free[n] += b
            freed += b
        task.placed.clear()
        task.resident = 0
        for chunk in task.chunks:
            chunk.bytes = 0
        task.chunks.clear()
        for n, pages in task.hugepage_pages.items():
            if task.hugepage_size:
                self.hp_free[n][task.hugepage_size] = \
                    self.hp_free[n].get(task.hugepage_size, 0) + pages
        freed += sum(task.hugepages.values())
        task.hugepages.clear()
        task.hugepage_pages.clear()
        self.swap_free += task.swapped
        self.swap_used -= task.swapped
        freed += task.swapped
        task.swapped = 0
        return freed


def _allowed(state: _State, step: Step) -> frozenset[int]:
    nodes = state.memory_nodes
    if step.cpuset_mems is not None:
        nodes &= step.cpuset_mems
    return nodes


def _walk(state: _State, task: _Task, order: Iterable[int], allowed: frozenset[int],
          amount: int, floor: str, placed: dict[int, int]) -> int:
    """Take up to *amount* from nodes in *order* (filtered) down to a watermark; return rest."""
    for n in order:
        if amount <= 0:
            break
        if n not in allowed:
            continue
        take = min(amount, state.room(n, floor))
        if take:
            state.take(task, n, take, placed)
            amount -= take
    return amount


def _interleave(state: _State, task: _Task, nodes: list[int], allowed: frozenset[int],
                amount: int, floor: str, placed: dict[int, int],
                turns: dict[int, int] | None = None) -> int:
    """Round-robin over *nodes*; a node that has run dry sends its turn along its own zonelist.

    Each round gives every node with quota left the same slice, limited by what the nodes its
    pages currently land on can still give; a round ends when a node or a quota runs out, so the
    number of rounds depends on the number of nodes, not on bytes.  Free memory only shrinks
    during a call, so where a node's turn lands is found by a cursor that only moves on along
    its zonelist: O(nodes²) per call, not O(nodes³).  *turns*, when given, adds up the bytes
    placed on each node's turn (wherever they landed).
    """
    if not nodes:
        return amount
    quota = {n: amount // len(nodes) for n in nodes}
    for n in nodes[: amount % len(nodes)]:
        quota[n] += 1
    zonelists = {n: state.zonelist(n) for n in nodes}
    cursor = dict.fromkeys(nodes, 0)

    def lands(n: int) -> int | None:
        """The first node of n's zonelist that is allowed and has room."""
        zl, i = zonelists[n], cursor[n]
        while i < len(zl) and (zl[i] not in allowed or state.room(zl[i], floor) <= 0):
            i += 1
        cursor[n] = i
        return zl[i] if i < len(zl) else None

    def give(n: int, t: int, take: int) -> None:
        state.take(task, t, take, placed)
        quota[n] -= take
        if turns is not None:
            turns[n] = turns.get(n, 0) + take

    while True:
        active = [n for n in nodes if quota[n] > 0]
        if not active:
            return 0
        target: dict[int, int] = {}
        for n in active:
            t = lands(n)
            if t is not None:
                target[n] = t
        if not target:
            return sum(quota.values())
        sharing: dict[int, int] = {}
        for t in target.values():
            sharing[t] = sharing.get(t, 0) + 1
        delta = min(min(quota[n] for n in target),
                    min(state.room(t, floor) // k for t, k in sharing.items()))
        if delta == 0:
            # fewer bytes left on a target than nodes sharing it: hand them out one node at a time
            for n, t in target.items():
                take = min(quota[n], state.room(t, floor))
                if take:
                    give(n, t, take)
            continue
        for n, t in target.items():
            give(n, t, delta)


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
    for task in state.dirty:
        task.version += 1
        if not task.killed and (task.resident or task.swapped):
            rss = task.resident
            heapq.heappush(heap, (-(rss + task.swapped + rss // 512), -task.order,
                                  task.version, task))
    state.dirty.clear()
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
        heapq.heappush(heap, entry)
    return chosen


def _oom(state: _State, current: _Task, step: Step, index: int) -> OomEvent | None:
    constraint, nodes = _constraint(state, step)
    total = state.swap_free + state.swap_used + sum(
        (state.host.node(n).total or 0) for n in nodes)
    chosen = (_heap_victim(state, constraint, nodes) if _HEAP_OOM and not state.adjusted
              else _scan_victim(state, constraint, nodes, total))
    if chosen is None:
        return None
    size = chosen.resident + chosen.swapped + sum(chosen.hugepages.values())
    state.release(chosen)
    chosen.killed = True
    return OomEvent(index, current.name, chosen.name, constraint, tuple(sorted(nodes)), size)


def _alloc(state: _State, task: _Task, step: Step, index: int,
           placed: dict[int, int]) -> tuple[int, int, list[OomEvent]]:
    """Place step.size bytes for *task*; return (swapped, failed, oom events)."""
    assert step.size is not None
    amount = step.size
    allowed = _allowed(state, step)
    events: list[OomEvent] = []
    if step.hugepage_size:
        return 0, _alloc_hugepages(state, task, step, allowed, amount, placed), events
    mask = allowed & step.nodes if step.nodes is not None else allowed

    interleave = (sorted(mask) if step.nodes is not None else sorted(allowed)) \
        if step.policy is Policy.INTERLEAVE else []

    def attempt(amount: int, floor: str, turns: dict[int, int] | None = None) -> int:
        p = step.policy
        if p is Policy.INTERLEAVE:
            return _interleave(state, task, interleave, allowed, amount, floor, placed, turns)
        if p is Policy.BIND:
            return _walk(state, task, state.zonelist(step.cpu_node), mask, amount, floor, placed)
        if p is Policy.PREFERRED:
            first = min(step.nodes) if step.nodes else step.cpu_node
            return _walk(state, task, state.zonelist(first), allowed, amount, floor, placed)
        if p is Policy.PREFERRED_MANY:
            # alloc_pages_preferred_many: its nodes first without direct reclaim — the fast
            # path and then the slow path down to min — then any node
            zl = state.zonelist(step.cpu_node)
            if floor == "low":
                amount = _walk(state, task, zl, mask, amount, "low", placed)
                amount = _walk(state, task, zl, mask, amount, "min", placed)
            return _walk(state, task, zl, allowed, amount, floor, placed)
        return _walk(state, task, state.zonelist(step.cpu_node), allowed, amount, floor, placed)

    swapped = 0
    while True:
        amount = attempt(amount, "low")          # fast path
        if amount:
            amount = attempt(amount, "min")      # slow path: ALLOC_WMARK_MIN
        if amount:                               # direct reclaim drops page cache
            reclaimed = False
            for n in sorted(mask if step.policy is Policy.BIND else allowed):
                if state.reclaimable[n]:
                    state.free[n] += state.reclaimable[n]
                    state.reclaimable[n] = 0
                    reclaimed = True
            if reclaimed:
                amount = attempt(amount, "min")
        reach = mask if step.policy is Policy.BIND else allowed
        last: list[_Chunk] = []                  # what the previous retry placed
        last_sizes: list[tuple[int, int]] = []
        while amount and state.swap_free:        # reclaim swaps the oldest anon memory out
            out = state.swap_out(reach, min(amount, state.swap_free))
            if not out:
                break
            swapped += out
            mark = len(task.chunks)
            turns: dict[int, int] = {}
            amount = attempt(amount, "min", turns)
            new = task.chunks[mark:]
            sizes = [(c.node, c.bytes) for c in new]
            if _SKIP_SWAP_CYCLES and sizes == last_sizes and out == sum(b for _, b in sizes) \
                    and all(c.bytes == 0 for c in last):
                # what the rest of the request must cover for the next round to repeat this one
                need = ((max(turns.values(), default=0) + 1) * len(interleave) if interleave
                        else out)
                cycles = _steady_cycles(amount, state.swap_free, out, need)
                if cycles:
                    amount -= cycles * out
                    swapped += cycles * out
                    _skip_cycles(state, task, sizes, cycles, placed)
            last, last_sizes = new, sizes
        if not amount:
            return swapped, 0, events
        event = _oom(state, task, step, index)
        if event is None:
            return swapped, amount, events
        events.append(event)
        if event.victim == task.name:
            return swapped, amount, events


#: The swap loop's shortcut (:func:`_steady_cycles`); tests switch it off to compare.
_SKIP_SWAP_CYCLES = True


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

    A request that is not a multiple of the page size still takes whole pages; the bytes
    reported placed are the bytes requested (the rest of the last page is slack)."""
    size = step.hugepage_size
    assert size
    task.hugepage_size = size
    if step.policy is Policy.INTERLEAVE and step.nodes:
        order = tuple(sorted(step.nodes & allowed))
    elif step.policy is Policy.PREFERRED and step.nodes:
        order = state.zonelist(min(step.nodes))
    else:
        order = state.zonelist(step.cpu_node)
    mask = allowed & step.nodes if (step.nodes is not None and step.policy in (
        Policy.BIND, Policy.INTERLEAVE)) else allowed
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
    for n in sorted(task.placed, key=lambda n: -task.placed[n]):
        if left <= 0:
            break
        give = min(left, task.placed[n])
        task.placed[n] -= give
        task.resident -= give
        state.dirty.add(task)
        state.free[n] += give
        rest = give
        for chunk in reversed(task.chunks):
            if rest <= 0:
                break
            if chunk.node == n and chunk.bytes:
                cut = min(rest, chunk.bytes)
                chunk.bytes -= cut
                rest -= cut
        placed[n] = placed.get(n, 0) - give
        left -= give
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
    failed (or freed, or gone with an OOM-killed task).  *record_steps*: keep a
    :class:`StepResult` per step (the audit's verdict needs only the end and the OOM events:
    ``steps`` is then empty)."""
    state = _State(host)
    results: list[StepResult] = []
    events: list[OomEvent] = []
    for index, step in enumerate(steps):
        task = state.tasks.get(step.name)
        if task is None:
            task = state.tasks[step.name] = _Task(step.name, order=len(state.tasks))
        placed: dict[int, int] = {}
        swapped = failed = 0
        step_events: list[OomEvent] = []
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
            swapped, failed, step_events = _alloc(state, task, step, index, placed)
            task.failed += failed
        events.extend(step_events)
        if record_steps:
            results.append(StepResult(index, step.name, step.action, requested, placed,
                                      swapped, failed, tuple(step_events), dict(state.free),
                                      state.swap_used))
    allocations = tuple(
        Allocation(t.name, t.requested, {n: b for n, b in t.placed.items() if b},
                   t.swapped, t.failed, t.killed,
                   {n: b for n, b in t.hugepages.items() if b})
        for t in sorted(state.tasks.values(), key=lambda t: t.order))
    return SimResult(tuple(results), allocations, dict(state.free), state.swap_used,
                     tuple(events))
