"""What the simulator predicts for a host when every guest touches all its memory.

The audit's verdict comes from the same engine as ``numaguard simulate``: the host as the
allocator sees it (:func:`~numaguard.core.scenario.sim_host`), every guest's memory as the steps
libvirt's policies give QEMU (:func:`~numaguard.core.scenario.guest_step_map`), played once per
start order (:mod:`numaguard.core.orders`).  This module plays them and gathers, per guest, how
it ends: OOM-killed (by whose allocation, under which constraint, on which nodes), or left with
memory that could not be placed at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from numaguard.core.orders import StartOrder
from numaguard.core.scenario import ordered_names
from numaguard.core.simulate import OomEvent, SimHost, SimResult, Step, simulate


@dataclass(frozen=True, slots=True)
class OrderRun:
    order: StartOrder
    result: SimResult


@dataclass(frozen=True, slots=True)
class Kill:
    """One way a guest dies: killed for *trigger*'s allocation under *constraint*, first seen in
    *order*, and in every order of *orders*."""

    victim: str
    trigger: str          # the guest whose allocation made the kernel kill
    constraint: str       # memory-policy | cpuset | global
    nodes: tuple[int, ...]
    victim_bytes: int
    order: StartOrder     # the first order in which it happens
    orders: tuple[str, ...]  # every order (by name) in which it happens

    @property
    def innocent(self) -> bool:
        """The victim is not the guest whose allocation the kernel could not serve."""
        return self.victim != self.trigger


@dataclass(frozen=True, slots=True)
class Failure:
    """Memory of a guest that could not be placed at all (no victim left, or a hugepage pool
    short), in the first order where it happens."""

    guest: str
    failed_bytes: int
    order: StartOrder
    orders: tuple[str, ...]


@dataclass(frozen=True)
class Prediction:
    runs: tuple[OrderRun, ...]
    kills: tuple[Kill, ...]        # one per (victim, trigger, constraint): strict bindings
    #                                first, then the most frequent
    failures: tuple[Failure, ...]  # guests with unplaced memory that were not killed

    @property
    def clean(self) -> bool:
        return not self.kills and not self.failures

    @cached_property
    def bound_kills(self) -> dict[str, tuple[Kill, ...]]:
        """Per guest, the kills under a binding (not ``global``) it triggered or suffered."""
        by: dict[str, list[Kill]] = {}
        for k in self.kills:
            if k.constraint != "global":
                for g in {k.trigger, k.victim}:
                    by.setdefault(g, []).append(k)
        return {g: tuple(ks) for g, ks in by.items()}

    @cached_property
    def victims(self) -> frozenset[str]:
        return frozenset(k.victim for k in self.kills)


def play_orders(host: SimHost, step_map: Mapping[str, Sequence[tuple[Step, str]]],
                orders: Iterable[StartOrder], *, prefix: Sequence[Step] = ()) -> Prediction:
    """Play every order; gather each victim's first kill and each guest's first failure.

    *prefix*: steps played before every order's (the memory a live host's guests hold now,
    :mod:`numaguard.core.whatif`)."""
    runs: list[OrderRun] = []
    first_kill: dict[tuple[str, str, str], tuple[OomEvent, StartOrder]] = {}
    killing: dict[tuple[str, str, str], list[str]] = {}
    first_fail: dict[str, tuple[int, StartOrder]] = {}
    failing: dict[str, list[str]] = {}
    for order in orders:
        steps = [*prefix, *(s for name in ordered_names(step_map, order.guests)
                             for s, _ in step_map[name])]
        result = simulate(host, steps, record_steps=False)
        runs.append(OrderRun(order, result))
        for event in result.oom_events:
            # a host out of memory is one cause, whoever's allocation tipped it
            trigger = "" if event.constraint == "global" else event.trigger
            key = (event.victim, trigger, event.constraint)
            first_kill.setdefault(key, (event, order))
            names = killing.setdefault(key, [])
            if not names or names[-1] != order.name:
                names.append(order.name)
        for name, failed in result.unplaced():  # allocations with failed bytes, not killed
            first_fail.setdefault(name, (failed, order))
            failing.setdefault(name, []).append(order.name)
    kills = sorted((Kill(v, e.trigger, e.constraint, e.nodes, e.victim_bytes, o,
                         tuple(killing[key])) for key, (e, o) in first_kill.items()
                    for v in (key[0],)),
                   key=lambda k: (k.constraint == "global", -len(k.orders)))
    victims = {k.victim for k in kills}
    failures = tuple(Failure(g, b, o, tuple(failing[g])) for g, (b, o) in first_fail.items()
                     if g not in victims)
    return Prediction(tuple(runs), tuple(kills), failures)
