"""Issue 10: the audit's verdict agrees with the simulator, over random hosts and guests.

For every host and set of guests Hypothesis draws (2-4 nodes of 4-64 GiB, some free memory
already taken, swap or none, hugepage pools; 1-7 guests without policy, strict, restrictive,
preferred, interleave, implicit strict, pinned or not, some on hugepages, some with guest NUMA
cells and memnodes):

* an audit that exits 0 at ``--fail-on critical`` means no OOM kill and no failed allocation in
  any start order it simulated;
* every guest the simulator kills, in any of those orders, is named in a critical finding;
* the audit's simulation is ``numaguard simulate``'s: each order played through the scenario
  path (:func:`guest_steps` on :func:`sim_host`, what ``simulate SNAPSHOT --order NAME``
  plays) kills the same guests for the same allocations.

``VERDICT_EXAMPLES`` (default 500) sets the number of examples; the bounded run in ``make test``
keeps the default.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st

from numaguard.core.findings import Severity
from numaguard.core.rules import AuditOptions, audit
from numaguard.core.scenario import guest_steps, sim_host
from numaguard.core.simulate import simulate
from numaguard.domxml.document import DomainDocument
from numaguard.domxml.extract import extract_guest
from numaguard.model.topology import Host, HostHugepages, Node
from tests.support.synth import domain_xml

GiB = 1024**3
KiB_PER_GiB = 1024 * 1024
EXAMPLES = int(os.environ.get("VERDICT_EXAMPLES", "500"))
CPUS = 4


@st.composite
def hosts(draw) -> Host:
    n = draw(st.integers(2, 4))
    nodes = []
    for i in range(n):
        total = draw(st.integers(4, 64)) * GiB
        pages = draw(st.sampled_from([0, 0, 0, 512, 2048]))  # 2 MiB pages
        used = draw(st.integers(0, total // 4 // GiB)) * GiB
        free = max(0, total - pages * 2 * 1024 * 1024 - used)
        nodes.append(Node(i, frozenset(range(i * CPUS, (i + 1) * CPUS)), total, free,
                          (HostHugepages(2 * 1024 * 1024, pages, pages),) if pages else ()))
    far = draw(st.sampled_from([20, 21, 32]))
    distances = tuple(tuple(10 if a == b else far + abs(a - b) for b in range(n))
                      for a in range(n))
    swap = draw(st.sampled_from([0, 1, 2, 8])) * GiB
    return Host(tuple(nodes), distances, swap_total=swap, swap_free=swap)


def _nodeset(draw, n: int) -> str:
    first = draw(st.integers(0, n - 1))
    last = draw(st.integers(first, min(n - 1, first + 1)))
    return str(first) if first == last else f"{first}-{last}"


@st.composite
def guest_sets(draw, host: Host):
    n = len(host.nodes)
    guests = []
    for i in range(draw(st.integers(1, 7))):
        name = f"g{i}"
        mem = draw(st.integers(1, 40))
        vcpus = draw(st.integers(1, 4))
        kind = draw(st.sampled_from(["none", "strict", "implicit", "preferred", "interleave",
                                     "restrictive", "cells"]))
        node = draw(st.integers(0, n - 1))
        pinned = draw(st.booleans())
        cpuset = f"{node * CPUS}-{node * CPUS + CPUS - 1}" if pinned else None
        kw: dict = {}
        if kind == "cells":
            half = mem * KiB_PER_GiB // 2
            other = (node + 1) % n
            kw = {"cells": [(f"0-{max(0, vcpus // 2 - 1)}", half),
                            (f"{max(1, vcpus // 2)}-{max(1, vcpus - 1)}", half)],
                  "mode": "strict", "nodeset": f"{min(node, other)}-{max(node, other)}"
                  if abs(node - other) == 1 else f"{node},{other}",
                  "memnodes": [(0, draw(st.sampled_from(["strict", "preferred"])), str(node)),
                               (1, "strict", str(other))]}
            vcpus = max(vcpus, 2)
        elif kind != "none":
            kw = {"nodeset": _nodeset(draw, n)}
            if kind != "implicit":
                kw["mode"] = kind
        if kind in ("strict", "preferred") and draw(st.integers(0, 5)) == 0 and \
                any(nd.hugepages for nd in host.nodes):
            kw["hugepage_kib"] = 2048
        xml = domain_xml(name, mem * KiB_PER_GiB, vcpus, cpuset=cpuset, **kw)
        guests.append(extract_guest(DomainDocument(xml.encode(), path=f"{name}.xml")))
    return guests


@st.composite
def cases(draw):
    host = draw(hosts())
    return host, draw(guest_sets(host))


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases())
def test_exit_0_means_no_kill_and_every_victim_is_named_critical(case):
    host, guests = case
    result = audit(host, guests, AuditOptions(random_orders=2))
    prediction = result.prediction
    assert prediction is not None and prediction.runs
    critical = [f for f in result.findings if f.severity is Severity.CRITICAL]
    troubled = [r.order.name for r in prediction.runs if r.result.oom_events
                or any(a.failed for a in r.result.allocations)]
    note("a kill or a failed allocation predicted" if troubled else "no kill predicted")
    note("critical" if critical else "exit 0")
    if not critical:   # `numaguard audit` exits 0 at --fail-on critical
        assert troubled == [], troubled
    named = {g for f in critical for g in f.guests}
    for run in prediction.runs:
        for event in run.result.oom_events:
            assert event.victim in named, (run.order.name, event)
        for a in run.result.allocations:
            if a.failed:
                assert a.name in named, (run.order.name, a)
    # the same orders through numaguard simulate's scenario path
    sim = sim_host(host)
    for run in prediction.runs:
        steps = [s for s, _ in guest_steps(host, guests, run.order.guests)]
        played = simulate(sim, steps)
        assert [(e.trigger, e.victim, e.constraint) for e in played.oom_events] == \
            [(e.trigger, e.victim, e.constraint) for e in run.result.oom_events]
        assert played.allocations == run.result.allocations
