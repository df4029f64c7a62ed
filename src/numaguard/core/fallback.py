"""The kernel's zonelist fallback order: which node an allocation tries next.

A port of ``build_zonelists()`` / ``find_next_best_node()`` (mm/page_alloc.c, Linux 6.1), the
order the kernel prints at boot as ``Fallback order for Node N: …``:

* the local node comes first, even when it has no memory;
* then, among nodes *with memory* not yet used, the smallest
  ``(distance + (n < node) + (node has CPUs)) * MAX_NUMNODES + node_load[n]``;
* ``node_load`` is shared by all nodes' lists (built in node-id order) and grows by one for the
  first node of each new distance group, which spreads ties round-robin.  This is why, with
  equal distances, node 1's order on a 4-node ring is ``1 3 0 2`` and not ``1 0 3 2``.

The result is checked against the boot logs of every captured host in tests/fixtures/sys.
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
    """The fallback order of every node, as the kernel builds it at boot."""
    node_load = {n.id: 0 for n in host.nodes}
    with_memory = [n for n in host.nodes if n.mem_total > 0]
    orders: dict[int, tuple[int, ...]] = {}
    for local in host.nodes:
        used: set[int] = set()
        order: list[int] = []
        prev = local.id
        while True:
            if local.id not in used:
                best = local.id
            else:
                best = -1
                best_val = None
                for cand in with_memory:
                    n = cand.id
                    if n in used:
                        continue
                    val = node_distance(host, local.id, n)
                    val += 1 if n < local.id else 0
                    if cand.cpus:
                        val += PENALTY_FOR_NODE_WITH_CPUS
                    val = val * MAX_NUMNODES + node_load[n]
                    if best_val is None or val < best_val:
                        best_val, best = val, n
                if best < 0:
                    break
            used.add(best)
            if node_distance(host, local.id, best) != node_distance(host, local.id, prev):
                node_load[best] += 1
            order.append(best)
            prev = best
        orders[local.id] = tuple(order)
    return orders
