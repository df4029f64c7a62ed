"""``numaguard top``: one frame of what a running host holds now (issue 13).

A bar per node — guests' memory, the host's own (everything else taken: the kernel, page cache,
other processes), free — with the memory strictly bound to it marked (``|`` at the sum of the
strict/restrictive pledges: what the guests may claim there and nowhere else); a table of the
running guests with their memory per node, the share of it on their own nodes (their binding,
else the nodes their vCPUs are pinned to: :func:`~numaguard.core.capacity.home_nodes`, as the
exporter's locality), their mode and nodeset; and what the live what-if
predicts (:mod:`numaguard.core.whatif`): who is OOM-killed if every running guest grows to its
full size now.  Plain text, fitted to the width (80 columns at least); bytes become MiB/GiB only
here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from numaguard.core.capacity import home_nodes, memory_units
from numaguard.core.predict import Prediction
from numaguard.cpuset import format_bitmap
from numaguard.display import printable
from numaguard.model.guest import Guest
from numaguard.model.inventory import Inventory
from numaguard.model.live import GuestLive, LiveState
from numaguard.report import term
from numaguard.units import format_bytes

MiB = 1024**2
GUEST, HOST, FREE, PLEDGE = "█", "▒", "░", "|"


def pledged(inventory: Inventory) -> dict[int, int]:
    """Per node, the memory of units bound strictly (or restrictive) to it alone."""
    out: dict[int, int] = {}
    for g in inventory.guests:
        for u in memory_units(g):
            ns = u.static_nodeset if u.bound else None
            if ns is not None and len(ns) == 1:
                (n,) = ns
                out[n] = out.get(n, 0) + u.size
    return out


def _bar(total: int, guests: int, free: int, pledge: int, cells: int) -> str:
    """*cells* characters: guests, then the host's own, then free; the pledge mark over them."""
    if total <= 0:
        return FREE * cells
    g = round(cells * guests / total)
    f = round(cells * free / total)
    h = max(0, cells - g - f)
    bar = list(GUEST * g + HOST * h + FREE * (cells - g - h))
    if pledge > 0:
        at = min(cells - 1, round(cells * pledge / total))
        bar[at] = PLEDGE
    return "".join(bar)


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f}"


def node_lines(inventory: Inventory, live: LiveState, width: int) -> list[str]:
    held: dict[int, int] = {}
    for g in live.guests:
        for node_id, b in (*g.per_node, *g.hugepages_per_node):
            held[node_id] = held.get(node_id, 0) + b
    pledges = pledged(inventory)
    label = max((len(str(n.id)) for n in live.nodes), default=1)
    lines = [f"Nodes ({GUEST} guests, {HOST} host, {FREE} free, {PLEDGE} strict pledges; GiB)"]
    for n in live.nodes:
        guests = held.get(n.id, 0)
        host = max(0, n.mem_total - n.mem_free - guests)
        tail = (f" {_gib(guests)} guests {_gib(host)} host {_gib(n.mem_free)} free "
                f"of {_gib(n.mem_total)}")
        cells = max(10, width - len(f"node {'':>{label}} []") - len(tail))
        bar = _bar(n.mem_total, guests, n.mem_free, pledges.get(n.id, 0), cells)
        lines.append(f"node {n.id:>{label}} [{bar}]{tail}")
    return lines


def _per_node(g: GuestLive) -> str:
    parts = [(n, b) for n, b in sorted((*g.per_node, *g.hugepages_per_node)) if b]
    return " ".join(f"{n}:{b // MiB}" for n, b in parts) or "-"


def _policy(guest: Guest | None) -> tuple[str, str]:
    if guest is None or guest.policy is None:
        return "-", "-"
    p = guest.policy
    mode = p.mode.value + (" (implicit)" if p.implicit_mode else "")
    return mode, format_bitmap(p.nodeset) if p.nodeset is not None else "auto"


def guest_table(inventory: Inventory, live: LiveState, width: int) -> str:
    by_name: Mapping[str, Guest] = {g.name: g for g in inventory.guests}
    rows = []
    for g in live.guests:
        guest = by_name.get(g.name)
        if g.error is not None:
            rows.append([printable(g.name), "-", "-", "-", "-", printable(g.error)])
            continue
        local = g.locality(home_nodes(inventory.host, guest)) if guest is not None else None
        mode, nodeset = _policy(guest)
        rows.append([printable(g.name), _per_node(g), f"{g.resident // MiB:,}",
                     "-" if local is None else f"{100 * local:.0f}%", mode, nodeset])
    columns = [term.Column("Guest", overflow="fold", key=True, floor=12),
               term.Column("MiB by node", overflow="wrap", floor=12),
               term.Column("MiB", "right"), term.Column("Local", "right"),
               term.Column("Mode", overflow="wrap", floor=8), term.Column("Nodeset",
                                                                          overflow="wrap")]
    return term.Grid(f"Running guests ({len(live.guests)})", columns, rows).render(width)


def prediction_lines(prediction: Prediction | None, width: int) -> list[str]:
    if prediction is None:
        return []
    runs = len(prediction.runs)
    if not prediction.kills and not prediction.failures:
        return term.wrap("If every guest grows to its full size now (shut-off ones starting): "
                         f"no OOM kill predicted ({runs} growth order{'s' if runs != 1 else ''} "
                         "played).", width)
    lines = ["If every guest grows to its full size now (shut-off ones starting):"]
    for k in prediction.kills:
        who = (f"when {printable(k.trigger)} grows" if k.trigger and k.constraint != "global"
               else "when the host runs out of memory")
        lines += term.wrap(f"{printable(k.victim)} is OOM-killed {who} ({k.constraint}, "
                           f"{len(k.orders)} of {runs} growth orders)", width, indent="  ",
                           subsequent="    ")
    for f in prediction.failures:
        lines += term.wrap(f"{printable(f.guest)}: {format_bytes(f.failed_bytes)} cannot be "
                           f"placed ({len(f.orders)} of {runs} growth orders)", width,
                           indent="  ", subsequent="    ")
    return lines


def top_text(inventory: Inventory, live: LiveState, prediction: Prediction | None, *,
             width: int = 80, notes: Sequence[str] = ()) -> str:
    """One frame, at most *width* columns wide (no line is wider unless a name alone is)."""
    width = max(width, 60)
    head = f"numaguard top — {printable(inventory.origin)}"
    out = [head[:width], ""]
    out += node_lines(inventory, live, width)
    out += ["", guest_table(inventory, live, width).rstrip("\n"), ""]
    out += prediction_lines(prediction, width)
    out += [printable(n) for n in (*live.notes, *notes)]
    return "\n".join(out).rstrip("\n") + "\n"
