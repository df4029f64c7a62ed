"""Human-readable tables (rich), rendered to a string so the CLI decides where it goes."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

from numaguard.cpuset import format_bitmap
from numaguard.display import printable, printable_lines
from numaguard.model.guest import Guest
from numaguard.model.policy import MemoryPolicy
from numaguard.model.topology import Host
from numaguard.units import format_bytes


def _render(*renderables: object, width: int | None = None, color: bool = False) -> str:
    buf = io.StringIO()
    needed = max((getattr(r, "_ng_width", 0) for r in renderables), default=0)
    # markup=False: guest names are data, "[red]" in a name must print as written.
    console = Console(file=buf, width=width or max(120, needed), force_terminal=color,
                      no_color=not color, highlight=False, soft_wrap=False, markup=False,
                      emoji=False)
    for r in renderables:
        console.print(r)
    return buf.getvalue()


def _table(title: str, headers: list[tuple[str, str]], rows: list[list[str | Text]]) -> Table:
    """A rich table whose column widths are computed here from the cell text.

    Rich would otherwise measure every cell of every row through its layout engine, which
    costs about half a second for 1,000 guests; a plain length is the same answer for text.
    Cells are ``str`` or a styled :class:`rich.text.Text` (``str()`` of it is its plain text);
    ``str`` cells hold data (guest names) and are shown :func:`printable`.
    """
    rows = [[printable_lines(c) if isinstance(c, str) else c for c in row] for row in rows]
    widths = [len(h) for h, _ in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], max((len(x) for x in str(cell).split("\n")), default=0))
    table = Table(title=title, title_justify="left")
    for (header, justify), w in zip(headers, widths):
        table.add_column(header, justify=justify, width=w, no_wrap=True)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*row)
    table._ng_width = sum(widths) + 3 * len(widths) + 1  # type: ignore[attr-defined]
    return table


def _set(s: frozenset[int] | None, empty: str = "-") -> str:
    if s is None:
        return "any"
    return format_bitmap(s) if s else empty


def _hugepages(host_node_pools: tuple) -> str:
    parts = []
    for hp in host_node_pools:
        if hp.total == 0:
            continue
        free = "?" if hp.free is None else str(hp.free)
        parts.append(f"{format_bytes(hp.size, precision=0)}: {free}/{hp.total} free")
    return ", ".join(parts) or "-"


def topology_text(host: Host, *, width: int | None = None, color: bool = False) -> str:
    title = f"NUMA topology of {printable(host.name)}" if host.name else "NUMA topology"
    nodes = Table(title=title, title_justify="left")
    nodes.add_column("Node", justify="right")
    nodes.add_column("CPUs")
    nodes.add_column("Memory total", justify="right")
    nodes.add_column("Memory free", justify="right")
    nodes.add_column("Hugepages (free/total)")
    for n in host.nodes:
        nodes.add_row(str(n.id), _set(n.cpus, "(none)"), format_bytes(n.mem_total),
                      format_bytes(n.mem_free), _hugepages(n.hugepages))
    nodes.add_section()
    nodes.add_row("all", str(sum(len(n.cpus) for n in host.nodes)) + " CPUs",
                  format_bytes(host.mem_total), format_bytes(host.mem_free), "")
    out: list[object] = [nodes]
    if host.distances is not None and len(host.nodes) <= BOXED_DISTANCES:
        dist = Table(title="Distances", title_justify="left")
        dist.add_column("from \\ to", justify="right")
        for n in host.nodes:
            dist.add_column(str(n.id), justify="right")
        for n, row in zip(host.nodes, host.distances):
            dist.add_row(str(n.id), *(str(d) for d in row))
        out.append(dist)
    plain = _plain_distances(host) + "\n" if host.distances is not None and \
        len(host.nodes) > BOXED_DISTANCES else ""
    facts = []
    if host.swap_total is not None:
        facts.append(f"Swap: {format_bytes(host.swap_free)} free of {format_bytes(host.swap_total)}")
    else:
        facts.append("Swap: unknown (source does not say)")
    if host.numa_balancing is not None:
        facts.append("Automatic NUMA balancing: " + ("on" if host.numa_balancing else "off"))
    out.append("\n".join(facts))
    return (_render(*out[:-1], width=width, color=color) + plain
            + _render(out[-1], width=width, color=color))


#: up to this many nodes the distance matrix is a boxed table; beyond, rows as numactl prints
#: them (a rich table of 1,024 x 1,024 cells takes ten seconds to lay out)
BOXED_DISTANCES = 64


def _plain_distances(host: Host) -> str:
    assert host.distances is not None
    width = max(len(str(n.id)) for n in host.nodes) + 1
    lines = ["Distances (from \\ to)", "node " + "".join(f"{n.id:>{width}}" for n in host.nodes)]
    lines += [f"{n.id:>4}:" + "".join(f"{d:>{width}}" for d in row)
              for n, row in zip(host.nodes, host.distances)]
    return "\n".join(lines)


def policy_text(p: MemoryPolicy | None) -> str:
    if p is None:
        return "none (local allocation)"
    where = _set(p.nodeset) if p.nodeset is not None else "numad decides"
    implicit = " (implicit)" if p.implicit_mode else ""
    return f"{p.mode.value}{implicit} {p.placement.value} → {where}"


def _pinning(g: Guest) -> str:
    if g.pins:
        return "; ".join(f"vcpu{p.vcpu}→{_set(p.cpus)}" for p in g.pins)
    if g.cpuset is not None:
        return f"all→{_set(g.cpuset)}"
    return "auto (numad)" if g.vcpu_placement.value == "auto" else "none"


def guests_text(guests: list[Guest], *, width: int | None = None, color: bool = False) -> str:
    rows: list[list[str | Text]] = []
    for g in guests:
        mem = format_bytes(g.memory)
        if g.current_memory != g.memory:
            mem += f" / {format_bytes(g.current_memory)}"
        cells = "\n".join(
            f"cell {c.id}: vcpus {_set(c.cpus)}, {format_bytes(c.memory)}, {policy_text(c.policy)}"
            + (f", hugepages {format_bytes(c.hugepage_size, precision=0)}"
               if c.hugepage_size else "")
            for c in g.cells
        ) or "-"
        vcpus = str(g.vcpus) if g.vcpus == g.vcpus_current else f"{g.vcpus_current}/{g.vcpus}"
        rows.append([g.name, mem, vcpus, _pinning(g), policy_text(g.policy), cells])
    table = _table(f"{len(guests)} guest(s)", [
        ("Guest", "left"), ("Memory (max/current)", "right"), ("vCPUs", "right"),
        ("vCPU pinning", "left"), ("Memory policy", "left"), ("Guest NUMA cells", "left")], rows)
    return _render(table, width=width, color=color)
