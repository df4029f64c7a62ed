"""The Prometheus collector: one audit of the host per scrape, as metric families.

A custom collector in the shape prometheus/client_python documents ("Custom Collectors":
``collect()`` yields metric families; register it on a ``CollectorRegistry``), with its sources
injected: *inventory* returns an :class:`~numaguard.model.inventory.Inventory` (a SOURCE or a
libvirt URI read again at every scrape), *live* (optional) a
:class:`~numaguard.model.live.LiveState`.  Nothing is registered at import time.

Metrics (base units; ``node`` is the node number as a string, so that
``numaguard_node_free_bytes * on(node) group_left node_memory_numa_MemFree`` joins
node_exporter's ``--collector.meminfo_numa`` series, which are bytes named without ``_bytes``):

========================================  ======================  ==========================
metric                                    labels                  series
========================================  ======================  ==========================
numaguard_node_memory_total_bytes         node                    nodes
numaguard_node_memory_free_bytes          node                    nodes (where known)
numaguard_node_bound_bytes                node                    nodes
numaguard_node_headroom_bytes             node                    nodes
numaguard_guest_memory_bytes              guest, node             live guests × (nodes held
                                                                  ∪ their own nodes) ≤ G × N
numaguard_guest_locality_ratio            guest                   live guests
numaguard_guest_read_error                guest                   live guests
numaguard_guest_policy_info               guest, mode, nodeset,   guests × distinct policies
                                          implicit                (≤ cells)
numaguard_finding_info                    rule, severity, guest   findings × their guests
numaguard_predicted_oom_kills             victim, trigger         predicted kills ≤ G × R
numaguard_scrape_success                  —                       1
numaguard_scrape_duration_seconds         —                       1
========================================  ======================  ==========================

A guest's memory series are the nodes it holds memory on and its own nodes (its binding, else
its vCPUs' nodes; core/capacity.home_nodes) even where it holds nothing yet, so that a locality
panel has them; a node it neither holds nor owns has no series (``or on() vector(0)`` in
PromQL): a guest bound to one node that holds memory on two has two series, not N.

So a scrape has at most ``4·N + G·(H + 2 + C) + F + K + 2`` series for N nodes, G guests
holding or owning up to H ≤ N nodes each, with up to C policy cells each, F (finding, guest)
pairs and K ≤ G·R predicted kills (R: the orders played, 6 by default); 500 guests on 16 nodes
each on 2: 64 + 2,000 + 500·C + F + K — and 64 + 9,000 + … when every guest spreads over all
16.

A failed read or audit gives ``numaguard_scrape_success 0`` (and the duration), never an
exception out of :meth:`NumaguardCollector.collect` — client_python would answer 500 — and
:attr:`NumaguardCollector.last_error` says why.  One guest that cannot be read live gives
``numaguard_guest_read_error{guest} 1`` and the others' figures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric

from numaguard.core.capacity import home_nodes
from numaguard.core.rules import AuditResult, audit_inventory
from numaguard.model.inventory import Inventory
from numaguard.model.live import LiveState

PREFIX = "numaguard_"


def _ids(nodes: Iterable[int] | None) -> str:
    """A nodeset label value: ``0-3,5`` (libvirt's syntax), ``""`` for none."""
    if nodes is None:
        return ""
    from numaguard.cpuset import format_bitmap

    return format_bitmap(nodes)


class NumaguardCollector:
    """Collect numaguard's metrics from the injected sources at every scrape.

    Scrapes are served one at a time (a lock): 200 concurrent scrapers make 200 audits in turn,
    not 200 at once, so memory stays that of one audit."""

    def __init__(self, inventory: Callable[[], Inventory],
                 live: Callable[[Inventory], LiveState] | None = None,
                 *, clock: Callable[[], float] = time.perf_counter,
                 on_change: Callable[[str | None], None] | None = None) -> None:
        """*on_change* hears each change of :attr:`last_error` (the new error, or ``None``
        when scrapes succeed again): a server logs it once, not at every scrape."""
        self._inventory = inventory
        self._on_change = on_change
        self._live = live
        self._clock = clock
        self._cond = threading.Condition()
        self._running = False            # a scrape is under way
        self._flights = 0                # scrapes finished (a waiter's is the next one)
        self._last: tuple[list[Metric], bool, float] | None = None
        #: why the last scrape failed (``None``: it succeeded)
        self.last_error: str | None = None

    def describe(self) -> Iterable[Metric]:
        # registering must not run a scrape (client_python calls collect() without describe)
        return ()

    def collect(self) -> Iterator[Metric]:
        """One scrape.  Scrapes that arrive while one runs wait for it and share its result
        (single flight): 200 scrapers at once cost one read and one audit, not 200 in a row,
        and the memory of one."""
        with self._cond:
            if self._running:
                flight = self._flights
                while self._running and self._flights == flight:
                    self._cond.wait()
                scraped = self._last
            else:
                self._running = True
                scraped = None
        if scraped is None:
            try:
                scraped = self._scrape()
            finally:
                with self._cond:
                    self._last = scraped
                    self._flights += 1
                    self._running = False
                    self._cond.notify_all()
        assert scraped is not None
        families, ok, elapsed = scraped
        yield from families
        yield GaugeMetricFamily(PREFIX + "scrape_success",
                                "1 if the last read and audit of the host succeeded, else 0",
                                value=1 if ok else 0)
        yield GaugeMetricFamily(PREFIX + "scrape_duration_seconds",
                                "seconds the read and audit of this scrape took",
                                value=elapsed)

    def _scrape(self) -> tuple[list[Metric], bool, float]:
        start = self._clock()
        families: list[Metric] = []
        try:
            inventory = self._inventory()
            live = self._live(inventory) if self._live is not None else None
            result = audit_inventory(inventory, live=live)
            families = list(_families(result, live))
            error = None
        except Exception as exc:  # a scrape never fails with a 500
            families = []
            error = str(exc) or type(exc).__name__
        if error != self.last_error and self._on_change is not None:
            self._on_change(error)
        self.last_error = error
        return families, error is None, self._clock() - start


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=labels)


def _families(result: AuditResult, live: LiveState | None) -> Iterator[Metric]:
    yield from _node_families(result, live)
    if live is not None:
        yield from _live_families(result, live)
    yield _policy_family(result)
    yield _finding_family(result)
    yield _kill_family(result)


def _node_families(result: AuditResult, live: LiveState | None) -> Iterator[Metric]:
    total = _gauge("node_memory_total_bytes", "MemTotal of the node", ["node"])
    free = _gauge("node_memory_free_bytes", "MemFree of the node", ["node"])
    bound = _gauge("node_bound_bytes", "strict/restrictive guest memory bound to the node "
                   "(the audit's bound demand, not capped at capacity)", ["node"])
    headroom = _gauge("node_headroom_bytes", "node capacity (MemTotal - hugepages - host "
                      "reserve) left after the bound demand", ["node"])
    now = {n.id: n for n in live.nodes} if live is not None else {}
    for node in result.host.nodes:
        label = [str(node.id)]
        seen = now.get(node.id)
        total.add_metric(label, seen.mem_total if seen is not None else node.mem_total)
        mem_free = seen.mem_free if seen is not None else node.mem_free
        if mem_free is not None:
            free.add_metric(label, mem_free)
    for s in result.nodes:
        bound.add_metric([str(s.id)], s.bound)
        headroom.add_metric([str(s.id)], s.headroom)
    yield from (total, free, bound, headroom)


def _live_families(result: AuditResult, live: LiveState) -> Iterator[Metric]:
    memory = _gauge("guest_memory_bytes", "guest memory resident on the host node now "
                    "(QEMU's own memory included; ordinary and huge pages)", ["guest", "node"])
    locality = _gauge("guest_locality_ratio", "share of the guest's resident memory on its "
                      "nodes (its binding, else its vCPUs' nodes)", ["guest"])
    error = _gauge("guest_read_error", "1 if the guest's live memory could not be read",
                   ["guest"])
    guests = {g.name: g for g in result.guests}
    node_ids = frozenset(n.id for n in live.nodes) or result.host.node_ids
    for g in live.guests:
        error.add_metric([g.name], 1 if g.error is not None else 0)
        if g.error is not None:
            continue
        defined = guests.get(g.name)
        home = home_nodes(result.host, defined) if defined is not None else None
        held: dict[int, int] = {}
        for n, b in (*g.per_node, *g.hugepages_per_node):
            held[n] = held.get(n, 0) + b
        # the nodes it holds memory on, and its own nodes even at 0 (absent: 0 bytes)
        for n in sorted(held.keys() | ((home or frozenset()) & node_ids)):
            memory.add_metric([g.name, str(n)], held.get(n, 0))
        ratio = g.locality(home)
        if ratio is not None:
            locality.add_metric([g.name], ratio)
    yield from (memory, locality, error)


def _policy_family(result: AuditResult) -> Metric:
    info = InfoMetricFamily(PREFIX + "guest_policy", "the guest's effective memory policy "
                            "(one series per distinct policy of its cells; mode 'none': no "
                            "<numatune>)", labels=["guest"])
    for g in result.guests:
        seen: set[tuple[str, str, str]] = set()
        for p in g.policies:
            key = ("none", "", "false") if p is None else (
                p.mode.value, _ids(p.nodeset), "true" if p.implicit_mode else "false")
            if key in seen:
                continue
            seen.add(key)
            info.add_metric([g.name], dict(zip(("mode", "nodeset", "implicit"), key,
                                               strict=True)))
    return info


def _finding_family(result: AuditResult) -> Metric:
    info = InfoMetricFamily(PREFIX + "finding", "an audit finding (rule ID, severity, the "
                            "guest it names; guest '' for a host finding)",
                            labels=["rule", "severity", "guest"])
    seen: set[tuple[str, str, str]] = set()
    for f in result.findings:
        for guest in f.guests or ("",):
            key = (f.rule, f.severity.label, guest)
            if key not in seen:
                seen.add(key)
                info.add_metric(list(key), {})
    return info


def _kill_family(result: AuditResult) -> Metric:
    """With a live state that has running guests, the live what-if (core/whatif.py: what they
    hold now, then each grows to its full size); else the audit's NG110 (every guest touching
    all its memory on an empty host)."""
    kills = _gauge("predicted_oom_kills", "start orders in which the kernel OOM-kills victim "
                   "for trigger's allocation: if every running guest grows to its full size "
                   "now (live what-if), else when every guest touches all its memory (NG110)",
                   ["victim", "trigger"])
    worst: dict[tuple[str, str], int] = {}
    prediction = result.prediction   # the live what-if when the audit had a live state
    if prediction is not None:
        for k in prediction.kills:
            key = (k.victim, k.trigger)
            worst[key] = max(worst.get(key, 0), len(k.orders))
    for (victim, trigger), orders in sorted(worst.items()):
        kills.add_metric([victim, trigger], orders)
    return kills
