"""Feasibility of bound memory as a transportation problem (max-flow), and per-node headroom.

Guests bound to overlapping nodesets (vm1 on 0, vm2 on 0-1, vm3 on 1) cannot be judged by summing
per node: vm2 may take its memory from either node.  The question "can every bound guest get its
memory inside its nodeset?" is a bipartite max-flow: source → nodeset group (its demand) →
each node of the set (unbounded) → sink (the node's capacity).  By Hall's theorem the answer is
no exactly when some set of nodes T has less capacity than the demand of the groups whose
nodesets lie inside T.  The minimal such set comes out of the residual graph of a maximum flow;
its connected pieces are the smallest over-committed node sets we report.

Headroom of a node: the most memory that something else (an application, another guest) can
take on that node while every bound guest still fits, found by augmenting the maximum flow with
a new demand on that node only (and taking that flow back before the next node).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Overcommit:
    """A minimal over-committed set of nodes and the groups bound inside it."""

    nodes: frozenset[int]
    groups: tuple[frozenset[int], ...]
    demand: int
    capacity: int

    @property
    def shortfall(self) -> int:
        return self.demand - self.capacity


@dataclass(frozen=True, slots=True)
class FlowResult:
    demand: int
    placed: int
    #: bytes of bound demand the flow placed on each node
    per_node: Mapping[int, int]
    overcommits: tuple[Overcommit, ...]
    #: extra bytes each node can take while every bound group still fits (negative: the
    #: shortfall of the over-committed set the node belongs to)
    headroom: Mapping[int, int]

    @property
    def feasible(self) -> bool:
        return self.placed == self.demand


class _Graph:
    def __init__(self) -> None:
        self.cap: dict[int, dict[int, int]] = {}

    def add(self, u: int, v: int, c: int) -> None:
        self.cap.setdefault(u, {})
        self.cap.setdefault(v, {})
        self.cap[u][v] = self.cap[u].get(v, 0) + c
        self.cap[v].setdefault(u, 0)

    def augment(self, s: int, t: int, first: int | None = None,
                log: list[tuple[int, int, int]] | None = None) -> int:
        """Edmonds-Karp from *s* to *t*; with *first*, paths must leave *s* through it.
        *log*, when given, records every (u, v, bytes) pushed, so :meth:`undo` can take the
        flow back."""
        total = 0
        while True:
            parent = {s: s}
            queue = deque([s])
            while queue and t not in parent:
                u = queue.popleft()
                for v, c in self.cap[u].items():
                    if c > 0 and v not in parent and (u != s or first is None or v == first):
                        parent[v] = u
                        queue.append(v)
            if t not in parent:
                return total
            bottleneck = None
            v = t
            while v != s:
                u = parent[v]
                c = self.cap[u][v]
                bottleneck = c if bottleneck is None else min(bottleneck, c)
                v = u
            assert bottleneck is not None
            v = t
            while v != s:
                u = parent[v]
                self.cap[u][v] -= bottleneck
                self.cap[v][u] += bottleneck
                if log is not None:
                    log.append((u, v, bottleneck))
                v = u
            total += bottleneck

    def short_paths(self, s: int, t: int, firsts: list[int]) -> int:
        """Augment along every path s → u → v → t, in the order Edmonds-Karp finds them.

        For a graph whose vertices next to *s* are *firsts* (in the order of ``cap[s]``) and
        lead only back to *s* or to vertices not next to *s*: the BFS of :meth:`augment` finds
        such a path while one exists (shortest first), and the one it finds is the first u of
        *firsts* with room from *s* with the first v (in ``cap[u]`` order) with room to *t* —
        every vertex it reaches before v is a dead end.  Room from *s* and room to *t* only
        shrink while flow is added along such paths, so a u or v found full stays full: one
        pass over the edges, where a BFS per path scanned all of them each time (1,000s of
        guests bound on 1,024 nodes).  :meth:`augment` then finds the longer paths; as
        Edmonds-Karp's path lengths never decrease, the flow is the one it alone would give.
        """
        total = 0
        for u in firsts:
            nexts = [v for v in self.cap[u] if v != s]
            i = 0
            while self.cap[s][u] > 0:
                while i < len(nexts) and (self.cap[u][nexts[i]] <= 0
                                          or self.cap[nexts[i]].get(t, 0) <= 0):
                    i += 1
                if i == len(nexts):
                    break
                v = nexts[i]
                pushed = min(self.cap[s][u], self.cap[u][v], self.cap[v][t])
                for a, b in ((s, u), (u, v), (v, t)):
                    self.cap[a][b] -= pushed
                    self.cap[b][a] += pushed
                total += pushed
        return total

    def undo(self, log: list[tuple[int, int, int]]) -> None:
        for u, v, pushed in reversed(log):
            self.cap[u][v] += pushed
            self.cap[v][u] -= pushed

    def reachable(self, s: int) -> set[int]:
        seen = {s}
        queue = deque([s])
        while queue:
            u = queue.popleft()
            for v, c in self.cap[u].items():
                if c > 0 and v not in seen:
                    seen.add(v)
                    queue.append(v)
        return seen


def solve(demands: Mapping[frozenset[int], int], capacity: Mapping[int, int]) -> FlowResult:
    """Place *demands* (nodeset -> bytes) on nodes of *capacity* (node -> bytes).

    Nodes a nodeset names but *capacity* lacks have no capacity.
    """
    groups = [g for g, d in demands.items() if d > 0]
    node_ids = sorted(set(capacity) | {n for g in groups for n in g})
    # vertex numbering: 0 source, 1 sink, 2.. groups, then nodes
    src, sink = 0, 1
    gv = {g: 2 + i for i, g in enumerate(groups)}
    nv = {n: 2 + len(groups) + i for i, n in enumerate(node_ids)}
    total = sum(demands[g] for g in groups)
    inf = total + sum(c for c in capacity.values() if c > 0) + 1
    graph = _Graph()
    graph.cap.setdefault(src, {})
    graph.cap.setdefault(sink, {})
    for g in groups:
        graph.add(src, gv[g], demands[g])
        for n in g:
            graph.add(gv[g], nv[n], inf)
    for n in node_ids:
        graph.cap.setdefault(nv[n], {})
        if capacity.get(n, 0) > 0:
            graph.add(nv[n], sink, capacity[n])
    placed = graph.short_paths(src, sink, [gv[g] for g in groups]) + graph.augment(src, sink)
    per_node = {n: capacity.get(n, 0) - graph.cap[nv[n]].get(sink, 0) if capacity.get(n, 0) > 0
                else 0 for n in node_ids}

    overcommits: list[Overcommit] = []
    blocked: dict[int, int] = {}
    if placed < total:
        reach = graph.reachable(src)
        rgroups = [g for g in groups if gv[g] in reach]
        rnodes = {n for n in node_ids if nv[n] in reach}
        # connected pieces: groups joined by the nodes they share
        parent = {n: n for n in rnodes}

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for g in rgroups:
            first = min(g)
            for n in g:
                parent[find(n)] = find(first)
        pieces: dict[int, list[frozenset[int]]] = {}
        for g in rgroups:
            pieces.setdefault(find(min(g)), []).append(g)
        for root, gs in pieces.items():
            nodes = frozenset(n for n in rnodes if find(n) == root)
            demand = sum(demands[g] for g in gs)
            cap = sum(capacity.get(n, 0) for n in nodes)
            if demand > cap:
                oc = Overcommit(nodes, tuple(sorted(gs, key=sorted)), demand, cap)
                overcommits.append(oc)
                for n in nodes:
                    blocked[n] = -oc.shortfall
        overcommits.sort(key=lambda o: sorted(o.nodes))

    headroom: dict[int, int] = {}
    for n in node_ids:
        if n in blocked:
            headroom[n] = blocked[n]
            continue
        if capacity.get(n, 0) <= 0:
            headroom[n] = 0
            continue
        # a new demand on node n alone, pushed through the residual graph and taken back
        # (cheaper than a copy of the graph per node: 1,024 nodes)
        probe_vertex = -1
        graph.add(src, probe_vertex, inf)
        graph.add(probe_vertex, nv[n], inf)
        log: list[tuple[int, int, int]] = []
        headroom[n] = graph.augment(src, sink, first=probe_vertex, log=log)
        graph.undo(log)
        del graph.cap[src][probe_vertex], graph.cap[nv[n]][probe_vertex]
        del graph.cap[probe_vertex]
    return FlowResult(total, placed, per_node, tuple(overcommits), headroom)
