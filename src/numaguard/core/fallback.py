"""The kernel's zonelist fallback order: which node an allocation tries next.

A port of ``build_zonelists()`` / ``find_next_best_node()`` (mm/page_alloc.c, Linux 6.1), the
order the kernel prints at boot as ``Fallback order for Node N: …``:

* the local node comes first, even when it has no memory;
* then, among nodes *with memory* not yet used, the smallest
  ``(distance + (n < node) + (node has CPUs)) * MAX_NUMNODES + node_load[n]``;
* ``node_load`` is shared by all nodes' lists (built in node-id order) and grows by one for the
  first node of each new distance group, which spreads ties round-robin.  This is why, with
  equal distances, node 1's order on a 4-node ring is ``1 3 0 2`` and not ``1 0 3 2``.

The result is checked against the boot logs of every captured host in tests/fixtures/sys, and
against a line-by-line port of the kernel's loop (tests/unit/test_fallback.py) on random
distance matrices.  Read at torvalds/linux mm/page_alloc.c (the same code from 5.x to 6.1):
``find_next_best_node`` returns the local node first, then scans ``for_each_node_state(n,
N_MEMORY)`` keeping the first strictly smallest value; ``build_zonelists`` adds one to
``node_load[node]`` when ``node_distance(local, node) != node_distance(local, prev)``.
"""

from __future__ import annotations

from numaguard.model.topology import Host

#: 1 << CONFIG_NODES_SHIFT; Debian's amd64 kernels use NODES_SHIFT=10.  Any value larger than
#: the number of nodes gives the same order.
MAX_NUMNODES = 1024
#: PENALTY_FOR_NODE_WITH_CPUS in mm/page_alloc.c.
PENALTY_FOR_NODE_WITH_CPUS = 1
LOCAL_DISTANCE = 10
REMOTE_DISTANCE = 20


def node_distance(host: Host, a: int, b: int) -> int:
    """The SLIT distance, or the kernel's default (10 local, 20 remote) without a SLIT."""
    d = host.distance(a, b)
    if d is None:  # no SLIT: the kernel's default node_distance()
        return LOCAL_DISTANCE if a == b else REMOTE_DISTANCE
    return d


def fallback_orders(host: Host) -> dict[int, tuple[int, ...]]:
    """The fallback order of every node, as the kernel builds it at boot.

    The kernel calls ``find_next_best_node`` once per position, each call scanning every memory
    node: O(N³) over all N lists.  But within one node's list ``node_load[]`` changes only for
    the node just chosen, which is then used and never a candidate again, so the remaining
    candidates' values are fixed for the whole list.  Repeatedly taking the smallest value
    (``val < min_val``: on equal values the lowest id, the first in ``for_each_node_state``)
    therefore gives the same order as one sort by (value, id) with ``node_load`` as it stood
    when the list began; the increments are applied after it.  O(N² log N): 1,024 nodes (Linux's
    MAX_NUMNODES) in a tenth of a second.
    """
    ids = [n.id for n in host.nodes]
    size = len(ids)
    if host.distances is not None:
        rows = [list(row) for row in host.distances]
    else:  # no SLIT: the kernel's default node_distance()
        rows = [[LOCAL_DISTANCE if a == b else REMOTE_DISTANCE for b in range(size)]
                for a in range(size)]
    # candidates: (index, PENALTY_FOR_NODE_WITH_CPUS if the node has CPUs); nodes are in id
    # order, so index order is id order
    memory = [(i, PENALTY_FOR_NODE_WITH_CPUS if n.cpus else 0)
              for i, n in enumerate(host.nodes) if n.mem_total > 0]
    node_load = [0] * size
    orders: dict[int, tuple[int, ...]] = {}
    for li, local in enumerate(ids):
        row = rows[li]
        # val = (distance + (n < node) + cpu penalty) * MAX_NUMNODES + node_load[n], ties by
        # id: one integer val * size + index per candidate, sorted
        ranked = sorted(((row[i] + (i < li) + penalty) * MAX_NUMNODES + node_load[i]) * size + i
                        for i, penalty in memory if i != li)
        order = [local]
        prev = row[li]
        for key in ranked:
            i = key % size
            if row[i] != prev:
                node_load[i] += 1
            prev = row[i]
            order.append(ids[i])
        orders[local] = tuple(order)
    return orders
