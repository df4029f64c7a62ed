"""Hugepage rule NG301 on hosts and guests built in code (tests/unit/rules/builders.py)."""

from numaguard.core.findings import Severity
from numaguard.core.rules import AuditOptions, audit
from tests.unit.rules.builders import PAGE_1G, PAGE_2M, GiB, guest, host

POOL_2M = "/sys/devices/system/node/node{}/hugepages/hugepages-2048kB/nr_hugepages"
POOL_1G = "/sys/devices/system/node/node{}/hugepages/hugepages-1048576kB/nr_hugepages"


def run(h, guests, **opts):
    return list(audit(h, guests, AuditOptions(**opts), only=["NG301"]).findings)


def pools(*per_node, free=None):
    """Two or more 16 GiB nodes of 4 CPUs with 2 MiB pools of the given totals."""
    nodes = []
    for i, total in enumerate(per_node):
        pool = {"2M": (total, None if free is None else free[i])}
        nodes.append((4, 16, None, pool))
    return host(nodes)


def test_strict_guest_short_of_pages_on_its_node_is_critical():
    h = pools(2048, 8192, free=(2048, 8192))
    db = guest("db", 8, 4, cpuset="0-3", mode="strict", nodeset="0", hugepage_size="2M")
    [f] = run(h, [db])
    assert f.severity is Severity.CRITICAL and f.guests == ("db",) and f.nodes == (0,)
    assert f.evidence == {"page_size_bytes": PAGE_2M, "pages_needed": 4096,
                          "pages_reserved": 2048, "pages_short": 2048,
                          "needed_bytes": 8 * GiB, "shortfall_bytes": 4 * GiB,
                          "pages_reserved_per_node": {0: 2048}}
    assert "needs 4096 hugepages of 2.0 MiB (8.0 GiB) on node 0, but only 2048" in f.message
    assert "does not start" in f.message
    assert f.fix.commands == (
        f"echo 4096 > {POOL_2M.format(0)}",
        ("# persistent: add 'hugepagesz=2M hugepages=0:4096,1:8192' to the kernel command line "
         "(per-node format, Documentation/admin-guide/mm/hugetlbpage.rst)"))


def test_exact_fit_is_clean():
    h = pools(4096, 0, free=(4096, 0))
    db = guest("db", 8, 4, mode="strict", nodeset="0", hugepage_size="2M")
    assert run(h, [db]) == []
    # the host default size (<hugepages/> without <page>) is 2 MiB on x86-64
    assert run(h, [guest("db", 8, 4, mode="strict", nodeset="0", hugepage_size=0)]) == []


def test_overlapping_nodesets_decided_by_max_flow():
    # 3072 pages per node.  a (node 0), b (nodes 0-1), c (node 1) need 2048 each: counting b in
    # full on both nodes would report both short; b can split, so all 6144 pages fit.
    h = pools(3072, 3072)
    guests = [guest("a", 4, 1, mode="strict", nodeset="0", hugepage_size="2M"),
              guest("b", 4, 1, mode="strict", nodeset="0-1", hugepage_size="2M"),
              guest("c", 4, 1, mode="strict", nodeset="1", hugepage_size="2M")]
    assert run(h, guests) == []
    guests[2] = guest("c", 6, 1, mode="strict", nodeset="1", hugepage_size="2M")
    [f] = run(h, guests)
    assert f.severity is Severity.CRITICAL and f.nodes == (0, 1)
    assert f.guests == ("a", "b", "c")
    assert (f.evidence["pages_needed"], f.evidence["pages_reserved"],
            f.evidence["pages_short"]) == (7168, 6144, 1024)
    # one node can carry the whole shortfall (node 0: b moves its share there)
    assert f.fix.commands[0] == f"echo 4096 > {POOL_2M.format(0)}"


def test_unbound_guest_uses_the_host_wide_pool():
    h = pools(1024, 1024)
    g = guest("free", 6, 2, hugepage_size="2M")
    [f] = run(h, [g])
    assert f.severity is Severity.CRITICAL and f.nodes == (0, 1)
    assert "on the host, but only 2048 are reserved there" in f.message
    assert f.evidence["pages_short"] == 1024
    assert run(pools(2048, 1024), [g]) == []


def test_preferred_spills_to_other_pools_warning_strict_fails_critical():
    h = pools(1024, 4096)
    pref = guest("p", 4, 2, mode="preferred", nodeset="0", hugepage_size="2M")
    [f] = run(h, [pref])
    assert f.severity is Severity.WARNING and f.nodes == (0,) and f.guests == ("p",)
    assert (f.evidence["pages_needed"], f.evidence["pages_reserved"]) == (2048, 1024)
    assert "will take 1024 pages (2.0 GiB) from the pools of other nodes" in f.message
    assert f.fix.commands[0] == f"echo 2048 > {POOL_2M.format(0)}"
    strict = guest("s", 4, 2, mode="strict", nodeset="0", hugepage_size="2M")
    [f] = run(h, [strict])
    assert f.severity is Severity.CRITICAL
    # interleave falls back like preferred
    il = guest("i", 6, 2, mode="interleave", nodeset="0-1", hugepage_size="2M")
    [f] = run(pools(1024, 1024, 4096), [il])
    assert f.severity is Severity.WARNING and f.nodes == (0, 1)
    assert f.evidence["pages_short"] == 1024
    # interleave takes pages from its nodes in turn: the fix spreads the pages evenly
    assert f.fix.commands[:2] == (f"echo 1536 > {POOL_2M.format(0)}",
                                  f"echo 1536 > {POOL_2M.format(1)}")
    # ... but not beyond what the host holds at all
    [f] = run(h, [guest("i", 12, 2, mode="interleave", nodeset="0-1", hugepage_size="2M")])
    assert f.severity is Severity.CRITICAL and f.evidence["pages_short"] == 1024


def test_free_pages_short_is_a_warning_naming_pages_in_use():
    h = pools(4096, 0, free=(1024, 0))
    db = guest("db", 8, 4, mode="strict", nodeset="0", hugepage_size="2M")
    [f] = run(h, [db])
    assert f.severity is Severity.WARNING and f.nodes == (0,)
    assert f.evidence["pages_free"] == 1024 and f.evidence["pages_in_use"] == 3072
    assert f.evidence["pages_short"] == 3072
    assert "not running yet cannot start now" in f.message
    assert f.fix.commands[0] == f"echo 7168 > {POOL_2M.format(0)}"
    # without free counts (virsh capabilities) only the totals are judged
    assert run(pools(4096, 0), [db]) == []


def test_no_pool_of_the_size_anywhere():
    h = pools(4096, 4096)
    big = guest("big", 8, 4, mode="strict", nodeset="1", hugepage_size="1G")
    [f] = run(h, [big])
    assert f.severity is Severity.CRITICAL and f.nodes == (1,)
    assert f.message.startswith("no hugepages of 1.0 GiB are reserved on any node (the host has "
                                "no hugepages-1048576kB pool")
    assert f.evidence["pages_needed"] == 8 and f.evidence["nodes_with_pool"] == 0
    assert f.fix.commands[0] == f"echo 8 > {POOL_1G.format(1)}"
    assert "hugepagesz=1G hugepages=1:8" in f.fix.commands[1]
    assert "reserve them on the kernel command line" in f.fix.description
    # pools exist but are empty
    empty = host([(4, 16, None, {"1G": (0, 0)}), (4, 16, None, {"1G": (0, 0)})])
    [f] = run(empty, [big])
    assert f.evidence["nodes_with_pool"] == 2 and "no pages in them" in f.message


def test_source_without_pools_cannot_be_checked():
    h = host([(4, 16), (4, 16)])  # numactl -H: no hugepage pools at all
    [f] = run(h, [guest("db", 8, 4, mode="strict", nodeset="0", hugepage_size="2M")])
    assert f.severity is Severity.INFO and f.guests == ("db",)
    assert f.evidence == {"needed_bytes": 8 * GiB}


def test_cells_with_different_page_sizes_are_checked_per_size():
    h = host([(4, 16, None, {"2M": (2048, 2048), "1G": (0, 0)}),
              (4, 16, None, {"2M": (0, 0), "1G": (2, 2)})])
    g = guest("c", 0, 4, cells=[{"cpus": "0-1", "memory_gib": 4, "mode": "strict",
                                 "nodeset": "0", "hugepage_size": "2M"},
                                {"cpus": "2-3", "memory_gib": 4, "mode": "strict",
                                 "nodeset": "1", "hugepage_size": "1G"}])
    [f] = run(h, [g])
    assert f.evidence["page_size_bytes"] == PAGE_1G and f.nodes == (1,)
    assert (f.evidence["pages_needed"], f.evidence["pages_reserved"]) == (4, 2)
    assert f.message.startswith("c cell 1 (4 pages, strict on node 1)")


def test_ordinary_memory_and_missing_nodes_are_not_ng301s():
    h = pools(0, 0)
    assert run(h, [guest("plain", 8, 2, mode="strict", nodeset="0")]) == []
    assert run(h, [guest("ghost", 8, 2, mode="strict", nodeset="7", hugepage_size="2M")]) == []
