"""The host: NUMA nodes, their CPUs and memory, the distance matrix, swap."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class HostHugepages:
    """One hugepage pool of one node: page size in bytes, pages reserved and free."""

    size: int
    total: int
    free: int | None = None

    @property
    def total_bytes(self) -> int:
        return self.size * self.total


@dataclass(frozen=True, slots=True)
class Node:
    """A NUMA node as the kernel reports it.

    ``mem_free`` is ``None`` when the source does not know it (``virsh capabilities`` reports
    totals only); so are the watermarks and reclaimable page cache, which only a sysfs/proc tree
    gives.  A memoryless node has ``mem_total == 0``; a CPU-less node has no ``cpus``.
    """

    id: int
    cpus: frozenset[int]
    mem_total: int
    mem_free: int | None = None
    hugepages: tuple[HostHugepages, ...] = ()
    #: zone watermarks summed over the node's zones (``/proc/zoneinfo``), bytes, when known
    watermark_min: int | None = None
    watermark_low: int | None = None
    watermark_high: int | None = None
    #: page cache reclaim can drop (``Active(file)`` + ``Inactive(file)``), bytes, when known
    reclaimable: int | None = None

    def hugepage_pool(self, size: int) -> HostHugepages | None:
        for pool in self.hugepages:
            if pool.size == size:
                return pool
        return None


@dataclass(frozen=True, slots=True)
class Host:
    """A NUMA host.  ``distances[i][j]`` is the SLIT distance from ``nodes[i]`` to ``nodes[j]``.

    Unknown facts are ``None`` (a ``numactl -H`` text knows nothing of swap, a capabilities XML
    nothing of free memory or ``numa_balancing``).
    """

    nodes: tuple[Node, ...]
    distances: tuple[tuple[int, ...], ...] | None = None
    swap_total: int | None = None
    swap_free: int | None = None
    numa_balancing: bool | None = None
    name: str | None = None
    _index: dict[int, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    #: CPU id -> node id; a CPU listed by two nodes (a broken source) maps to the lower id, as
    #: a search in node order finds it, and makes nodes_of_cpus search every node
    _cpu_node: dict[int, int] = field(default_factory=dict, init=False, repr=False,
                                      compare=False)
    _shared_cpus: bool = field(default=False, init=False, repr=False, compare=False)
    _node_ids: frozenset[int] = field(default=frozenset(), init=False, repr=False,
                                      compare=False)
    #: nodes_of_cpus' answers: hosts have few distinct CPU sets (one per pinning), asked
    #: about once per vCPU by several rules
    _nodes_of: dict[frozenset[int], frozenset[int]] = field(default_factory=dict, init=False,
                                                            repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = [n.id for n in self.nodes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate node ids {ids}")
        if list(ids) != sorted(ids):
            raise ValueError(f"nodes must be sorted by id, got {ids}")
        if self.distances is not None:
            size = len(self.nodes)
            if len(self.distances) != size or any(len(row) != size for row in self.distances):
                raise ValueError(f"distance matrix is not {size}x{size}")
        self._index.update({nid: i for i, nid in enumerate(ids)})
        for node in reversed(self.nodes):
            self._cpu_node.update(dict.fromkeys(node.cpus, node.id))
        object.__setattr__(self, "_node_ids", frozenset(ids))
        object.__setattr__(self, "_shared_cpus",
                           len(self._cpu_node) != sum(len(n.cpus) for n in self.nodes))

    @property
    def node_ids(self) -> frozenset[int]:
        return self._node_ids

    def node(self, node_id: int) -> Node:
        try:
            return self.nodes[self._index[node_id]]
        except KeyError:
            raise KeyError(f"host has no NUMA node {node_id}") from None

    def distance(self, a: int, b: int) -> int | None:
        if self.distances is None:
            return None
        return self.distances[self._index[a]][self._index[b]]

    def node_of_cpu(self, cpu: int) -> int | None:
        return self._cpu_node.get(cpu)

    def nodes_of_cpus(self, cpus: frozenset[int]) -> frozenset[int]:
        """The nodes that hold any of *cpus*: O(len(cpus)), not O(nodes), the first time a
        set is asked about; a dictionary look-up after."""
        known = self._nodes_of.get(cpus)
        if known is not None:
            return known
        if self._shared_cpus:
            known = frozenset(n.id for n in self.nodes if n.cpus & cpus)
        else:
            where = self._cpu_node
            known = frozenset(where[c] for c in cpus if c in where)
        self._nodes_of[cpus] = known
        return known

    @property
    def mem_total(self) -> int:
        return sum(n.mem_total for n in self.nodes)

    @property
    def mem_free(self) -> int | None:
        frees = [n.mem_free for n in self.nodes]
        if any(f is None for f in frees):
            return None
        return sum(f for f in frees if f is not None)
