"""The live what-if: from what a running host holds now, does anything get OOM-killed if every
guest reaches its full size now — the running ones growing, the shut-off ones starting — and
who (issue 13).

The audit's prediction (NG110) plays every guest touching all its memory on an empty host.  On a
live host that is not the question: the guests already hold memory, where the kernel put it
(MemFree already counts it gone), and what matters is the rest.  So the host is taken back to
before the guests (each node's MemFree plus what the running guests hold on it now), what they
hold is put back first, on the very nodes it is on (one ``bind`` step per guest and node), and
then each running guest touches what is still missing of its memory and each guest that is not
running all of it, under its own policy, in every order the audit plays (over all its guests,
as offline: the order decides who dies).

Approximations (said, not hidden): a guest's figures include QEMU's own memory, so what it
holds is counted against QEMU's own memory first (:data:`~numaguard.core.scenario.QEMU_OWN`)
and then against its guest RAM; what is left is spread over the guest's memory units (its NUMA
cells) in proportion to their sizes; hugepage-backed memory is not replayed (the pools'
free counts already say what is taken) and the rest of such a unit is taken from the pool; a
guest that could not be read counts as holding nothing (its whole memory still to touch: the
prediction errs on the side of a warning).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from numaguard.core.orders import StartOrder, start_orders
from numaguard.core.predict import Prediction, play_orders
from numaguard.core.scenario import (
    QEMU_OWN,
    guest_parts,
    guest_step_map,
    ordered_names,
    sim_host,
)
from numaguard.core.simulate import Policy, SimHost, Step, new_step
from numaguard.model.guest import Guest
from numaguard.model.live import LiveState
from numaguard.model.topology import Host


def host_before_guests(host: Host, live: LiveState) -> Host:
    """*host* with each node's free memory as it would be without the running guests' ordinary
    memory: the live MemFree (from *live*, else the host's) plus what they hold there."""
    held: dict[int, int] = {}
    for g in live.guests:
        for node_id, b in g.per_node:
            held[node_id] = held.get(node_id, 0) + b
    free_now = {n.id: n.mem_free for n in live.nodes}
    nodes = []
    for node in host.nodes:
        free = free_now.get(node.id, node.mem_free)
        if free is None:
            nodes.append(node)
            continue
        nodes.append(dataclasses.replace(
            node, mem_free=min(node.mem_total, free + held.get(node.id, 0))))
    return dataclasses.replace(host, nodes=tuple(nodes))


def held_steps(live: LiveState, running: Iterable[str]) -> list[Step]:
    """What the running guests hold now, put back where it is: one step per guest and node."""
    wanted = set(running)
    steps = []
    for g in live.guests:
        if g.name not in wanted or g.error is not None:
            continue
        for n, b in sorted(g.per_node):
            if b > 0:
                steps.append(new_step(g.name, b, "alloc", Policy.BIND, frozenset({n}), n, None,
                                      None, 0, "vma"))
    return steps


def growth_map(host: Host, guests: Sequence[Guest], live: LiveState, *, own: int = QEMU_OWN
               ) -> dict[str, list[tuple[Step, str]]]:
    """Per running guest, the steps that touch what is still missing of its memory: QEMU's own
    memory less what it holds, then its unit steps, each scaled to the part not yet held
    (what it holds beyond QEMU's own memory); hugepage units less what it holds in
    hugepages."""
    full = guest_parts(host, guests, own=own)
    out: dict[str, list[tuple[Step, str]]] = {}
    for g in live.guests:
        parts = full.get(g.name)
        if parts is None:
            continue
        held = 0 if g.error is not None else sum(b for _, b in g.per_node)
        held_huge = 0 if g.error is not None else sum(b for _, b in g.hugepages_per_node)
        own_pairs = parts.own()
        own_size = sum(s.size or 0 for s, _ in own_pairs)
        plain = [(s, lb) for s, lb in parts.ram if s.hugepage_size is None]
        huge = [(s, lb) for s, lb in parts.ram if s.hugepage_size is not None]
        steps = (_scaled(own_pairs, held) + _scaled(plain, max(0, held - own_size))
                 + _scaled(huge, held_huge))
        if steps:
            out[g.name] = steps
    return out


def _scaled(pairs: list[tuple[Step, str]], held: int) -> list[tuple[Step, str]]:
    total = sum(s.size or 0 for s, _ in pairs)
    left = max(0, total - held)
    if not total or not left:
        return []
    out: list[tuple[Step, str]] = []
    given = 0
    for i, (s, label) in enumerate(pairs):
        size = left - given if i == len(pairs) - 1 else (s.size or 0) * left // total
        given += size
        if size > 0:
            out.append((dataclasses.replace(s, size=size), label))
    return out


def of_guests(live: LiveState, guests: Sequence[Guest]) -> LiveState:
    """*live* with only the running guests among *guests*: a QEMU the source has no definition
    for stays what MemFree says it is (memory the host uses), not a guest to grow."""
    names = {g.name for g in guests}
    kept = tuple(g for g in live.guests if g.name in names)
    return live if len(kept) == len(live.guests) else dataclasses.replace(live, guests=kept)


def live_step_map(host: Host, guests: Sequence[Guest], live: LiveState, *,
                  own: int = QEMU_OWN) -> dict[str, list[tuple[Step, str]]]:
    """Per guest, what it still touches from now: a running guest what is missing of its memory
    (:func:`growth_map`), a guest that is not running all of it (it starts)."""
    running = {g.name for g in live.guests}
    out = guest_step_map(host, [g for g in guests if g.name not in running], own=own)
    out.update(growth_map(host, [g for g in guests if g.name in running], live, own=own))
    return out


def play_live(simhost: SimHost, host: Host, guests: Sequence[Guest], live: LiveState,
              orders: Iterable[StartOrder], *, own: int = QEMU_OWN) -> Prediction:
    """:func:`play_orders` from *live*: what the running guests hold put back first, then in
    every order each guest reaching its full size (*simhost*: :func:`host_before_guests`'s)."""
    return play_orders(simhost, live_step_map(host, guests, live, own=own), orders,
                       prefix=held_steps(live, [g.name for g in live.guests]))


def live_steps(host: Host, guests: Sequence[Guest], live: LiveState,
               order: Sequence[str] | None, *, own: int = QEMU_OWN
               ) -> tuple[list[tuple[Step, str]], int]:
    """What ``numaguard simulate`` plays on a live host: what the running guests hold put back
    (labelled ``NAME holds now``), then every guest reaching its full size in *order*; and how
    many of the steps are the held ones."""
    held = [(s, f"{s.name} holds now") for s in held_steps(live, [g.name for g in live.guests])]
    per_guest = live_step_map(host, guests, live, own=own)
    return held + [p for name in ordered_names(per_guest, order) for p in per_guest[name]], \
        len(held)


def predict_live(host: Host, guests: Sequence[Guest], live: LiveState, *,
                 orders: Sequence[StartOrder] | None = None,
                 min_free_kbytes: int | None = None, own: int = QEMU_OWN) -> Prediction:
    """Who is OOM-killed (and whose allocation tips it) if from what *live* holds now every
    guest reaches its full size — the running ones growing, the others starting — in every
    order the audit plays (*orders*: by default :func:`~numaguard.core.orders.start_orders`
    over *guests*).  The audit's NG110 on a live host (core/rules: ``Context.prediction``)."""
    if orders is None:
        orders = start_orders(guests)
    simhost = sim_host(host_before_guests(host, live), min_free_kbytes=min_free_kbytes)
    return play_live(simhost, host, guests, live, orders, own=own)
