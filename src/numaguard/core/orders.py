"""The start orders the audit plays: who touches memory first decides who is OOM-killed.

Offline, numaguard does not know in which order the guests started and grew, and the outcome
depends on it: a ``preferred`` guest that touches node 0 before a ``strict`` guest bound there
leaves it nothing (the kernel then kills the largest eligible QEMU — often the preferred guest
itself, which is not at fault); the other way round both fit.  So the audit's verdict is the
worst case over a set of orders, each of them a reason to exist:

``recorded``
    the order the guests started in, when the source records it (a snapshot of a running host:
    the QEMU processes' start times) — what happened last time;
``bound-last``
    unbound guests first (largest first), then bound ones (largest first): every ``preferred``,
    ``interleave`` or unpinned guest takes its first choice before a bound guest asks, which is
    the worst case for bound guests (the article's "a second guest lands on node 0");
``largest-first``
    every guest by size, largest first: the most memory spills before the rest arrive;
``smallest-first``
    the reverse: the largest guest asks last, when the nodes are fullest;
``name``
    by name — what ``numaguard simulate SNAPSHOT`` played before it knew better; kept so both
    agree on old snapshots;
``random-N``
    a bounded number of shuffles from fixed seeds (reproducible: the same host gives the same
    orders on every run).

Ties (equal sizes) are broken by name, so two runs agree.  What this can miss: an order none of
these reaches in which a particular subset of guests grows first; real guests also grow
concurrently and partially, which only spreads the same memory over time.  More random orders
(``--orders``) make a miss less likely; the finding says how many of the orders tried kill.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from numaguard.core.capacity import memory_units
from numaguard.model.guest import Guest

#: Named orders, in the order they are tried and reported (``random-N`` follow).
NAMED_ORDERS = ("recorded", "bound-last", "largest-first", "smallest-first", "name")
#: Shuffled orders the audit adds by default.
DEFAULT_RANDOM_ORDERS = 4


@dataclass(frozen=True, slots=True)
class StartOrder:
    """One order the guests start and touch all their memory in."""

    name: str
    guests: tuple[str, ...]
    #: other named orders that came out the same for these guests
    aliases: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return " = ".join((self.name, *self.aliases))


def _size_bound(g: Guest) -> tuple[int, bool]:
    """The guest's memory and whether any of it is bound (one pass over its units)."""
    units = memory_units(g)
    return sum(u.size for u in units), any(u.bound for u in units)


def start_orders(guests: Iterable[Guest], *, recorded: Sequence[str] | None = None,
                 random_orders: int = DEFAULT_RANDOM_ORDERS) -> tuple[StartOrder, ...]:
    """The orders to play (see the module docstring), without duplicates: an order equal to
    one before it becomes that one's alias, so a host with one guest plays one order.

    *recorded*: the start order the source knows (names; guests it does not name follow in
    name order, unknown names are ignored)."""
    out: dict[tuple[str, ...], StartOrder] = {}
    for order in _candidates(guests, recorded, random_orders):
        first = out.get(order.guests)
        if first is None:
            out[order.guests] = order
        else:
            out[order.guests] = StartOrder(first.name, first.guests,
                                           (*first.aliases, order.name))
    return tuple(out.values())


def named_order(guests: Iterable[Guest], name: str, *,
                recorded: Sequence[str] | None = None) -> StartOrder:
    """The order called *name* (``bound-last``, ``random-3`` …); ``ValueError`` naming the
    known ones when there is none (``recorded`` without a recorded order)."""
    count = 0
    if name.startswith("random-") and name[7:].isdigit() and len(name) < 12:
        count = int(name[7:])
    for order in _candidates(guests, recorded, count):
        if order.name == name:
            return order
    known = [n for n in NAMED_ORDERS if n != "recorded" or recorded is not None]
    raise ValueError(f"unknown start order {name!r} (known: {', '.join(known)}, random-N)")


def _candidates(guests: Iterable[Guest], recorded: Sequence[str] | None,
                random_orders: int) -> list[StartOrder]:
    by_name = {g.name: g for g in guests}
    names = sorted(by_name)
    size: dict[str, int] = {}
    bound: dict[str, bool] = {}
    for n in names:
        size[n], bound[n] = _size_bound(by_name[n])
    candidates: list[StartOrder] = []
    if recorded is not None:
        seen = [n for n in dict.fromkeys(recorded) if n in by_name]
        known = set(seen)
        candidates.append(StartOrder("recorded", tuple(seen + [n for n in names
                                                               if n not in known])))
    largest = sorted(names, key=lambda n: (-size[n], n))
    candidates.append(StartOrder("bound-last", tuple(
        [n for n in largest if not bound[n]] + [n for n in largest if bound[n]])))
    candidates.append(StartOrder("largest-first", tuple(largest)))
    candidates.append(StartOrder("smallest-first", tuple(sorted(names,
                                                                key=lambda n: (size[n], n)))))
    candidates.append(StartOrder("name", tuple(names)))
    for seed in range(1, random_orders + 1):
        shuffled = list(names)
        random.Random(seed).shuffle(shuffled)
        candidates.append(StartOrder(f"random-{seed}", tuple(shuffled)))
    return candidates
