"""NG112: a running guest whose live <numatune> differs from its persistent definition."""

from numaguard.core.findings import Severity
from numaguard.core.rules import AuditOptions, audit, audit_inventory
from numaguard.model.inventory import HostFacts, Inventory
from tests.unit.rules.test_memory_rules import g, make_host


def test_a_mode_changed_in_the_definition_is_a_pending_restart():
    host = make_host(16, 16)
    defined = g("web", 4, mode="preferred", nodeset="1")
    running = g("web", 4, mode="strict", nodeset="0")
    found = [f for f in audit(host, [defined], live_guests=[running]).findings
             if f.rule == "NG112"]
    assert len(found) == 1
    f = found[0]
    assert f.severity is Severity.INFO and f.guests == ("web",)
    assert f.message.startswith("web runs with strict on node 0 but is defined with "
                                "preferred on node 1")
    assert f.evidence["differ"] == ["<memory>"]


def test_same_tuning_or_no_live_xml_is_not_judged():
    host = make_host(16, 16)
    web = g("web", 4, mode="strict", nodeset="0")
    other = g("db", 4)
    same = audit(host, [web, other], live_guests=[web]).findings
    assert not [f for f in same if f.rule == "NG112"]
    none = audit(host, [web, other]).findings     # files: no live XML at all
    assert not [f for f in none if f.rule == "NG112"]


def test_losing_the_numatune_is_a_difference_too():
    host = make_host(16, 16)
    defined = g("web", 4)
    running = g("web", 4, mode="interleave", nodeset="0-1")
    (f,) = [f for f in audit(host, [defined], live_guests=[running]).findings
            if f.rule == "NG112"]
    assert "runs with interleave on nodes 0-1 but is defined with no <numatune>" in f.message


def test_audit_inventory_takes_the_facts_of_the_inventory():
    host = make_host(16, 16)
    inv = Inventory(host, (g("web", 4),), HostFacts(kernel_release="5.10.0-9-amd64",
                                                    numad_installed=False),
                    start_order=("web",))
    result = audit_inventory(inv, AuditOptions(kernel_release="6.1.0", random_orders=0))
    assert result.options.kernel_release == "5.10.0-9-amd64"
    assert result.options.numad_installed is False
    assert result.options.start_order == ("web",)
    assert result.options.random_orders == 0        # the caller's own options stay
