"""Host rules NG401-NG402, and the NG2xx/NG3xx/NG4xx verdicts on the article's example host."""

import pathlib

from numaguard.core.findings import Severity
from numaguard.core.rules import AuditOptions, audit
from numaguard.readers.sources import load_guests, load_host
from tests.unit.rules.builders import GiB, guest, host

ARTICLE = pathlib.Path(__file__).resolve().parents[3] / "examples" / "article-host"


def run(h, guests, rule, **opts):
    return list(audit(h, guests, AuditOptions(**opts), only=[rule]).findings)


def two_nodes(**kw):
    return host([(4, 16), (4, 16)], **kw)


# --- NG401 autonuma-with-binding ----------------------------------------------------------------

def test_ng401_balancing_on_with_bound_guests():
    guests = [guest("vm1", 4, 2, mode="strict", nodeset="0"),
              guest("web", 6, 2, mode="interleave", nodeset="0-1"),
              guest("free", 2, 2)]
    [f] = run(two_nodes(numa_balancing=True), guests, "NG401")
    assert f.severity is Severity.WARNING
    # interleave is left out: the balancer migrates interleaved pages to their own node
    assert f.guests == ("vm1",) and f.nodes == (0,)
    assert f.evidence == {"numa_balancing": 1, "bound_guests": 1, "bound_units": 1,
                          "bound_bytes": 4 * GiB}
    assert f.message.startswith("automatic NUMA balancing is on (kernel.numa_balancing=1) "
                                "while 1 guest (vm1) keeps 4.0 GiB of memory")
    assert f.fix.commands == (
        "sysctl -w kernel.numa_balancing=0",
        "echo 'kernel.numa_balancing = 0' > /etc/sysctl.d/90-numaguard-numa-balancing.conf")
    assert "already bound to NUMA nodes" in f.fix.description


def test_ng401_counts_memnodes_and_every_mode():
    cells = guest("c", 0, 2, cells=[("0", 2, "preferred", "1"), ("1", 2)])
    [f] = run(two_nodes(numa_balancing=True), [cells], "NG401")
    assert f.guests == ("c",) and f.nodes == (1,) and f.evidence["bound_units"] == 1
    assert "1 guest (c) keeps 2.0 GiB" in f.message


def test_ng401_negative_cases():
    bound = [guest("vm1", 4, 2, mode="strict", nodeset="0")]
    assert run(two_nodes(numa_balancing=False), bound, "NG401") == []
    assert run(two_nodes(numa_balancing=None), bound, "NG401") == []  # source does not say
    unbound = [guest("free", 4, 2), guest("numad", 4, 2, placement="auto")]
    assert run(two_nodes(numa_balancing=True), unbound, "NG401") == []


# --- NG402 numad-placement ----------------------------------------------------------------------

def test_ng402_auto_placement_is_info_when_numad_is_there_or_unknown():
    g = guest("auto", 8, 4, placement="auto", vcpu_placement="auto")
    for installed in (None, True):
        [f] = run(two_nodes(), [g], "NG402", numad_installed=installed)
        assert f.severity is Severity.INFO and f.guests == ("auto",) and f.nodes == ()
        assert f.evidence == {"vcpus": 4, "memory_bytes": 8 * GiB, "vcpu_placement_auto": 1,
                              "memory_placement_auto": 1}
        assert "relies on numad's advice (numad -w 4:8192)" in f.message
        assert "chosen at each start" in f.message
        assert f.fix.commands == ("numad -w 4:8192",)


def test_ng402_critical_without_numad():
    g = guest("auto", 8, 4, cpuset="0-3", current_vcpus=2, placement="auto")  # vCPUs pinned
    [f] = run(two_nodes(), [g], "NG402", numad_installed=False)
    assert f.severity is Severity.CRITICAL
    assert f.evidence["vcpu_placement_auto"] == 0 and f.evidence["memory_placement_auto"] == 1
    assert "automatic memory placement" in f.message
    assert "Failed to query numad for the advisory nodeset" in f.message
    assert f.fix.commands == ("dnf install numad  # Debian/Ubuntu: apt-get install numad",
                              "numad -w 2:8192")


def test_ng402_vcpu_auto_alone_and_negative():
    g = guest("v", 3.5, 2, vcpu_placement="auto")
    [f] = run(two_nodes(), [g], "NG402", numad_installed=False)
    assert "automatic vCPU placement" in f.message and f.fix.commands[1] == "numad -w 2:3584"
    assert run(two_nodes(), [guest("static", 4, 2, mode="strict", nodeset="0")], "NG402",
               numad_installed=False) == []


# --- the article host ---------------------------------------------------------------------------

def test_article_host_verdicts_of_the_cpu_hugepage_and_host_rules():
    h = load_host(str(ARTICLE))
    guests = load_guests(str(ARTICLE))
    rules = ["NG201", "NG202", "NG203", "NG204", "NG205", "NG301", "NG401", "NG402"]
    findings = list(audit(h, guests, only=rules).findings)
    # Automatic NUMA balancing is on (numa_balancing=1); three guests are placed on fixed
    # nodes (the interleave guest is not named: the balancer respects interleave).
    [f] = findings
    assert (f.rule, f.severity) == ("NG401", Severity.WARNING)
    assert f.guests == ("bigmem-preferred", "db-hugepages", "vm1")
    assert f.nodes == (0, 3)
    assert f.evidence["bound_guests"] == 3
    assert f.evidence["bound_bytes"] == (12 + 8) * GiB + 36_700_160 * 1024
    # NG301 is clean: db-hugepages needs exactly the 4096 pages of 2 MiB reserved (and free) on
    # node 3 for its 8 GiB.
    db = next(g for g in guests if g.name == "db-hugepages")
    assert db.memory == 4096 * 2 * 1024**2
    assert h.node(3).hugepage_pool(2 * 1024**2).total == 4096
    # NG2xx are clean: vm1 and bigmem-preferred run on CPUs 0-9 (node 0) with memory on node
    # 0; web-interleave's CPUs 0-29 lie in nodes 0-2, its interleave set; db-hugepages runs on
    # CPUs 30-39 (node 3) with memory on node 3; every vCPU is pinned; no guest spans nodes
    # in strict/preferred mode; node 0 has 8 vCPUs pinned to it alone for 20 CPUs; no guest
    # has NUMA cells or automatic placement.


def test_article_host_hugepages_one_page_short():
    h = load_host(str(ARTICLE))
    db = next(g for g in load_guests(str(ARTICLE)) if g.name == "db-hugepages")
    bigger = guest("db-hugepages", 0, 4, cpuset="30-39", mode="strict", nodeset="3",
                   hugepage_size="2M", memory_bytes=db.memory + 2 * 1024**2)
    [f] = run(h, [bigger], "NG301")
    assert f.severity is Severity.CRITICAL and f.nodes == (3,)
    assert (f.evidence["pages_needed"], f.evidence["pages_reserved"]) == (4097, 4096)
