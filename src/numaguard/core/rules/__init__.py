"""The rule engine: every rule is a pure function of (host, guests, options) with a stable ID.

A rule is declared with :func:`rule`; its docstring is its documentation (``numaguard explain
NG101`` and ``docs/rules.md``).  Rules see a shared :class:`Context` that computes the capacity
model, the memory units and the bound-memory flow once.  IDs are a contract: NG1xx memory,
NG2xx CPU, NG3xx hugepages, NG4xx host; never renumber.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

from numaguard.core.capacity import (
    DEFAULT_RESERVE,
    MemoryUnit,
    Reserve,
    capacities,
    memory_units,
)
from numaguard.core.fallback import fallback_orders
from numaguard.core.findings import Finding, Fix, Severity
from numaguard.core.flow import FlowResult, solve
from numaguard.core.orders import DEFAULT_RANDOM_ORDERS, StartOrder, start_orders
from numaguard.core.predict import Prediction, play_orders
from numaguard.core.scenario import QEMU_OWN, guest_step_map, sim_host
from numaguard.core.simulate import SimHost
from numaguard.core.verdict import AtRisk, Group, at_risk, groups, verify
from numaguard.core.whatif import host_before_guests, of_guests, play_live
from numaguard.model.guest import Guest
from numaguard.model.inventory import Inventory
from numaguard.model.live import LiveState
from numaguard.model.topology import Host
from numaguard.units import GiB


@dataclass(frozen=True, slots=True)
class CommandRefs:
    """How a printed ``numaguard fix`` line names what the audit read, so that pasted it acts on
    the same guest and host: on this machine a guest is its name (looked up in
    /etc/libvirt/qemu); through libvirt its name and ``-c URI`` (*connect*); from any other
    SOURCE it is the guest's domain XML file (*paths*) and ``--host`` the topology source
    (*host*)."""

    host: str | None = None
    paths: Mapping[str, str] = field(default_factory=dict)
    #: the libvirt URI the guests were read through: ``numaguard fix -c URI GUEST``
    connect: str | None = None

    def fix_args(self, guest: str) -> tuple[str, ...]:
        if self.connect is not None:
            return ("-c", self.connect, guest)
        path = self.paths.get(guest)
        if path is None:
            return (guest,)
        return (path, "--host", self.host) if self.host is not None else (path,)


LIVE_REFS = CommandRefs()


@dataclass(frozen=True, slots=True)
class AuditOptions:
    host_reserve: Reserve = DEFAULT_RESERVE
    #: below this headroom on a node, bound guests get a warning (NG101)
    min_headroom: int = 4 * GiB
    #: vCPUs pinned to a node per hardware thread before NG204 warns
    cpu_overcommit_ratio: float = 1.0
    #: ``uname -r`` of the host, when known (NG105)
    kernel_release: str | None = None
    #: whether the numad binary is installed (live sources only; NG402)
    numad_installed: bool | None = None
    #: the order the guests started in, when the source records it (NG110)
    start_order: tuple[str, ...] | None = None
    #: vm.min_free_kbytes, for watermarks the host model lacks (as ``numaguard simulate``)
    min_free_kbytes: int | None = None
    #: shuffled start orders NG110 plays besides the named ones (core/orders.py)
    random_orders: int = DEFAULT_RANDOM_ORDERS
    #: how printed ``numaguard`` command lines name the host and each guest
    refs: CommandRefs = field(default_factory=lambda: LIVE_REFS)
    #: QEMU's own memory per guest, besides its guest RAM (NG110; core/scenario.py)
    qemu_overhead: int = QEMU_OWN


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    name: str
    check: Callable[[Context], Iterable[Finding]]
    #: rules that read other rules' findings run after them
    after: tuple[str, ...] = ()
    #: a cheap test that is false only when ``check`` would find nothing here, whatever the
    #: rules it reads found: an audit of only such rules then runs none of them (their
    #: dependencies included) — verifying a group's change re-audits mostly NG102 alone
    applies: Callable[[Context], bool] | None = None

    @property
    def doc(self) -> str:
        return inspect.cleandoc(self.check.__doc__ or "")

    @property
    def summary(self) -> str:
        return self.doc.split("\n", 1)[0]


RULES: dict[str, Rule] = {}


def rule(rule_id: str, name: str, *, after: tuple[str, ...] = (),
         applies: Callable[[Context], bool] | None = None) -> Callable[
        [Callable[[Context], Iterable[Finding]]], Callable[[Context], Iterable[Finding]]]:
    def register(fn: Callable[[Context], Iterable[Finding]]) -> Callable[
            [Context], Iterable[Finding]]:
        if rule_id in RULES:
            raise ValueError(f"rule {rule_id} registered twice")
        if not fn.__doc__:
            raise ValueError(f"rule {rule_id} needs a docstring: it is its documentation")
        RULES[rule_id] = Rule(rule_id, name, fn, after, applies)
        return fn
    return register


class Context:
    """Everything rules share, computed once and lazily."""

    def __init__(self, host: Host, guests: Iterable[Guest], options: AuditOptions,
                 fallback: dict[int, tuple[int, ...]] | None = None,
                 live_guests: Iterable[Guest] = (), focus: frozenset[str] | None = None,
                 live: LiveState | None = None) -> None:
        self.host = host
        self.guests = tuple(guests)
        #: what the running guests hold now, when the source is live (or a snapshot of one
        #: with its live files): the simulation then starts from it (core/whatif.py)
        if live is not None:
            live = of_guests(live, self.guests)
        self.live = live if live is not None and live.guests else None
        #: the guests whose findings are wanted (``None``: all).  Only rules whose findings
        #: for a guest depend on nothing but that guest and the findings of the rules they
        #: read may skip the others (NG102); a re-audit that verifies a group sets it
        self.focus = focus
        #: the running definitions libvirt reported (what QEMU was started with), by name
        self.live_guests = {g.name: g for g in live_guests}
        self.options = options
        self.findings: list[Finding] = []
        self._fallback = fallback  # the host's fallback_orders(), when the caller has them
        self._ranks: dict[int, dict[int, int]] = {}
        #: findings_for's index: positions in findings per rule (the first *_ruled* findings),
        #: and per rule asked about, per guest (the first N of that rule's positions)
        self._by_rule: dict[str, list[int]] = {}
        self._ruled = 0
        self._by_rule_guest: dict[str, tuple[int, dict[str, list[int]]]] = {}
        #: rules/common.py's numatune_fix, by (id(unit), mode, nodeset, why): (unit, fix)
        self.fixes: dict[tuple[int, str, frozenset[int], str], tuple[MemoryUnit, Fix]] = {}

    @cached_property
    def guest_by_name(self) -> dict[str, Guest]:
        return {g.name: g for g in self.guests}

    @cached_property
    def capacity(self) -> dict[int, int]:
        return capacities(self.host, self.options.host_reserve)

    @cached_property
    def units(self) -> tuple[MemoryUnit, ...]:
        return tuple(u for g in self.guests for u in memory_units(g))

    @cached_property
    def units_by_guest(self) -> dict[str, tuple[MemoryUnit, ...]]:
        by: dict[str, list[MemoryUnit]] = {}
        for u in self.units:
            by.setdefault(u.guest, []).append(u)
        return {g: tuple(us) for g, us in by.items()}

    @cached_property
    def bound_units(self) -> tuple[MemoryUnit, ...]:
        """Bound memory in ordinary pages on nodes the host has (NG101/NG108's subject)."""
        return tuple(u for u in self.units if u.bound and not u.on_hugepages
                     and u.static_nodeset is not None
                     and u.static_nodeset <= self.host.node_ids)

    @cached_property
    def bound_demand(self) -> dict[frozenset[int], int]:
        demand: dict[frozenset[int], int] = {}
        for u in self.bound_units:
            assert u.static_nodeset is not None
            demand[u.static_nodeset] = demand.get(u.static_nodeset, 0) + u.size
        return demand

    @cached_property
    def _bound_alone(self) -> tuple[dict[int, int], dict[tuple[int, str], int]]:
        """Bound memory that can live only on one node: per node, and per (node, guest)."""
        total: dict[int, int] = {}
        by_guest: dict[tuple[int, str], int] = {}
        for u in self.bound_units:
            if u.static_nodeset is not None and len(u.static_nodeset) == 1:
                (n,) = u.static_nodeset
                total[n] = total.get(n, 0) + u.size
                by_guest[n, u.guest] = by_guest.get((n, u.guest), 0) + u.size
        return total, by_guest

    def pledged_alone(self, node: int, but: str) -> int:
        """Bound memory of guests other than *but* that can live only on *node*."""
        total, by_guest = self._bound_alone
        return total.get(node, 0) - by_guest.get((node, but), 0)

    @cached_property
    def bound_flow(self) -> FlowResult:
        return solve(self.bound_demand, self.capacity)

    @cached_property
    def fallback(self) -> dict[int, tuple[int, ...]]:
        return self._fallback if self._fallback is not None else fallback_orders(self.host)

    def fallback_rank(self, start: int) -> dict[int, int]:
        """Position of each node in the fallback order of *start* (all host nodes by id when
        *start* is not a host node), so that ordering a nodeset costs its size, not the
        host's."""
        rank = self._ranks.get(start)
        if rank is None:
            order = self.fallback.get(start, tuple(sorted(self.host.node_ids)))
            rank = self._ranks[start] = {n: i for i, n in enumerate(order)}
        return rank

    @cached_property
    def sim_host(self) -> SimHost:
        """The host as ``numaguard simulate`` sees it; on a live host as it was before the
        running guests took their memory (MemFree already counts it gone)."""
        host = self.host if self.live is None else host_before_guests(self.host, self.live)
        return sim_host(host, fallback=self.fallback,
                        min_free_kbytes=self.options.min_free_kbytes)

    @cached_property
    def orders(self) -> tuple[StartOrder, ...]:
        return start_orders(self.guests, recorded=self.options.start_order,
                            random_orders=self.options.random_orders)

    @property
    def order_word(self) -> str:
        """What an order of :attr:`orders` is: guests starting, or (live) guests growing."""
        return "start order" if self.live is None else "growth order"

    @property
    def simulated(self) -> str:
        """How the simulation was played, for the end of a finding."""
        if self.live is None:
            return "Simulated with every guest touching all its memory"
        n = sum(1 for g in self.live.guests if g.name in self.guest_by_name)
        return (f"Simulated from what the {n} running guest{'s' if n != 1 else ''} hold now, "
                "every guest growing to its full size (shut-off ones starting)")

    @cached_property
    def prediction(self) -> Prediction:
        """Every guest touching all its memory, in every start order (NG110); on a live host
        from what the running guests hold now, every guest growing to its full size
        (:func:`~numaguard.core.whatif.predict_live`)."""
        if self.live is None:
            return play_orders(self.sim_host, guest_step_map(
                self.host, self.guests, own=self.options.qemu_overhead), self.orders)
        return play_live(self.sim_host, self.host, self.guests, self.live, self.orders,
                         own=self.options.qemu_overhead)

    @cached_property
    def _bound_by_nodeset(self) -> dict[frozenset[int], list[int]]:
        """Positions in :attr:`bound_units` of the units bound to each nodeset."""
        by: dict[frozenset[int], list[int]] = {}
        for i, u in enumerate(self.bound_units):
            assert u.static_nodeset is not None
            by.setdefault(u.static_nodeset, []).append(i)
        return by

    def _bound_where(self, nodes: frozenset[int], inside: bool) -> list[MemoryUnit]:
        hits = sorted(i for ns, at in self._bound_by_nodeset.items()
                      if (ns <= nodes if inside else not ns.isdisjoint(nodes)) for i in at)
        units = self.bound_units
        return [units[i] for i in hits]

    def units_inside(self, nodes: frozenset[int]) -> list[MemoryUnit]:
        """The bound units whose nodeset lies inside *nodes*, in :attr:`bound_units` order
        (by nodeset: O(nodesets + answer), not O(units), per over-committed set)."""
        return self._bound_where(nodes, inside=True)

    def units_meeting(self, nodes: frozenset[int]) -> list[MemoryUnit]:
        """The bound units whose nodeset meets *nodes*, in :attr:`bound_units` order."""
        return self._bound_where(nodes, inside=False)

    def findings_for(self, guest: str, *rule_ids: str) -> list[Finding]:
        """The findings so far that name *guest*, of the rules *rule_ids*, in the order they
        were found (once per time they name it).  Indexed by rule, and the findings of the
        rules asked about by guest; what was added since the last call is indexed first, so
        that a rule asking about every guest costs O(findings), not O(guests x findings)."""
        findings = self.findings
        for i in range(self._ruled, len(findings)):
            self._by_rule.setdefault(findings[i].rule, []).append(i)
        self._ruled = len(findings)
        hits: list[int] = []
        for rule_id in dict.fromkeys(rule_ids):
            at = self._by_rule.get(rule_id, [])
            done, index = self._by_rule_guest.get(rule_id, (0, {}))
            for i in at[done:]:
                for g in findings[i].guests:
                    index.setdefault(g, []).append(i)
            self._by_rule_guest[rule_id] = (len(at), index)
            hits.extend(index.get(guest, ()))
        hits.sort()
        return [findings[i] for i in hits]


@dataclass(frozen=True, slots=True)
class NodeSummary:
    id: int
    capacity: int
    pledged_strict: int
    headroom: int
    #: bound demand on the node, not capped at capacity: what the flow places there plus the
    #: shortfall of an over-committed node set it belongs to (shared evenly by its nodes)
    bound_demand: int | None = None

    @property
    def bound(self) -> int:
        return self.pledged_strict if self.bound_demand is None else self.bound_demand


@dataclass(frozen=True, slots=True)
class AuditResult:
    host: Host
    guests: tuple[Guest, ...]
    options: AuditOptions
    nodes: tuple[NodeSummary, ...]
    findings: tuple[Finding, ...] = field(default=())
    #: the findings grouped by the change that clears them, worst first (core/verdict.py)
    groups: tuple[Group, ...] = field(default=())
    #: what the simulator predicted in every start order NG110 played (None: NG110 not run)
    prediction: Prediction | None = None
    #: the live state the simulation started from (``None``: every guest from nothing)
    live: LiveState | None = None

    @property
    def orders(self) -> tuple[StartOrder, ...]:
        return tuple(r.order for r in self.prediction.runs) if self.prediction else ()

    def __post_init__(self) -> None:
        if self.findings and not self.groups:  # built by hand (tests, callers): group them
            object.__setattr__(self, "groups", groups(self.findings))

    @property
    def at_risk(self) -> tuple[AtRisk, ...]:
        return at_risk(self.groups)

    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)


def _ordered_rules() -> list[Rule]:
    done: set[str] = set()
    ordered: list[Rule] = []
    pending = sorted(RULES.values(), key=lambda r: r.id)
    while pending:
        progressed = False
        for r in list(pending):
            if all(dep in done or dep not in RULES for dep in r.after):
                ordered.append(r)
                done.add(r.id)
                pending.remove(r)
                progressed = True
        if not progressed:
            raise ValueError(f"rule dependency cycle among {[r.id for r in pending]}")
    return ordered


#: groups whose change the audit verifies by auditing again with it applied (see
#: :func:`~numaguard.core.verdict.verify`); hosts with more guests than VERIFY_GUESTS get none
VERIFY_GROUPS = 10
VERIFY_GUESTS = 200


def audit(host: Host, guests: Iterable[Guest], options: AuditOptions | None = None,
          *, only: Iterable[str] | None = None,
          fallback: dict[int, tuple[int, ...]] | None = None,
          verify_groups: int | None = None,
          live_guests: Iterable[Guest] = (),
          focus: frozenset[str] | None = None,
          live: LiveState | None = None) -> AuditResult:
    """Run every rule (or those in *only*) and return their findings, worst first, grouped
    by the change that clears them.

    A rule in *only* still sees the findings of the rules it reads (``Rule.after``,
    transitively): NG102's severity follows NG101/NG103/NG108, so those run too, and only the
    findings of the rules asked for are returned.  *fallback*: the host's
    :func:`~numaguard.core.fallback.fallback_orders`, when the caller has it already.
    *verify_groups*: how many groups to verify by auditing again with their change applied
    (default :data:`VERIFY_GROUPS` up to :data:`VERIFY_GUESTS` guests, else none).
    *live_guests*: the running definitions, where the source has them (libvirt): NG112 compares
    them with the persistent ones.  *live*: what the running guests hold now, where the source
    has it (readers/live.py): NG110 and NG111 then start from it (:attr:`Context.prediction`).
    """
    from numaguard.core.rules import (  # noqa: F401  (register)
        cpu,
        hostrules,
        hugepages,
        memory,
        simulation,
    )

    ctx = Context(host, guests, options or AuditOptions(), fallback, live_guests, focus, live)
    wanted = set(only) if only is not None else None
    kept = _findings(ctx, wanted)
    flow = ctx.bound_flow
    unplaced: dict[int, int] = {}
    for oc in flow.overcommits:
        ids = sorted(oc.nodes)
        share, rest = divmod(oc.shortfall, len(ids))
        for i, n in enumerate(ids):
            unplaced[n] = unplaced.get(n, 0) + share + (1 if i < rest else 0)
    nodes = tuple(
        NodeSummary(n.id, ctx.capacity[n.id], flow.per_node.get(n.id, 0),
                    flow.headroom.get(n.id, ctx.capacity[n.id]),
                    flow.per_node.get(n.id, 0) + unplaced.get(n.id, 0))
        for n in host.nodes
    )
    found = groups(kept)
    if verify_groups is None:
        verify_groups = VERIFY_GROUPS if len(ctx.guests) <= VERIFY_GUESTS else 0
    if verify_groups and found:
        orders = ctx.fallback

        def reaudit(changed: tuple[Guest, ...], rules: frozenset[str],
                    focus: frozenset[str]) -> tuple[Finding, ...]:
            again = Context(host, changed, ctx.options, orders, ctx.live_guests.values(), focus,
                            ctx.live)
            return _findings(again, set(rules))

        found = verify(found, ctx.guests, reaudit, verify_groups)
    played = ctx.__dict__.get("prediction")
    return AuditResult(host, ctx.guests, ctx.options, nodes, kept, found, played, ctx.live)


def audit_inventory(inventory: Inventory, options: AuditOptions | None = None, *,
                    only: Iterable[str] | None = None,
                    fallback: dict[int, tuple[int, ...]] | None = None,
                    live: LiveState | None = None) -> AuditResult:
    """:func:`audit` of what a source read: the inventory's host facts (kernel release, numad,
    ``vm.min_free_kbytes``) and recorded start order replace those of *options*, and its
    running definitions go to NG112; *live*, what its running guests hold now."""
    facts = inventory.facts
    opts = replace(options or AuditOptions(), kernel_release=facts.kernel_release,
                   numad_installed=facts.numad_installed,
                   min_free_kbytes=facts.min_free_kbytes, start_order=inventory.start_order)
    return audit(inventory.host, inventory.guests, opts, only=only, fallback=fallback,
                 live_guests=inventory.live_guests, live=live)


def _findings(ctx: Context, wanted: set[str] | None) -> tuple[Finding, ...]:
    """Run the rules *wanted* (``None``: all) and those they read, on *ctx*; the findings of
    the wanted ones, worst first.  When every wanted rule has an ``applies`` test and none
    applies, nothing runs: they would find nothing, whatever the rules they read found."""
    if wanted is not None and not any(_may_apply(ctx, r) for r in wanted):
        return ()
    needed = _with_dependencies(wanted)
    for r in _ordered_rules():
        if needed is not None and r.id not in needed:
            continue
        ctx.findings.extend(r.check(ctx))
    return tuple(sorted((f for f in ctx.findings if wanted is None or f.rule in wanted),
                        key=Finding.sort_key))


def _may_apply(ctx: Context, rule_id: str) -> bool:
    found = RULES.get(rule_id)
    test = found.applies if found is not None else None
    return test is None or test(ctx)


def _with_dependencies(wanted: set[str] | None) -> set[str] | None:
    if wanted is None:
        return None
    needed: set[str] = set()
    pending = list(wanted)
    while pending:
        rule_id = pending.pop()
        if rule_id in needed or rule_id not in RULES:
            continue
        needed.add(rule_id)
        pending.extend(RULES[rule_id].after)
    return needed


def all_rules() -> list[Rule]:
    from numaguard.core.rules import cpu, hostrules, hugepages, memory, simulation  # noqa: F401

    return sorted(RULES.values(), key=lambda r: r.id)
