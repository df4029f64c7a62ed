"""Human-readable text for ``topology`` and ``guests``, rendered to a string so the CLI decides
where it goes, fitted to the terminal width (:mod:`numaguard.report.term`).

:func:`_render` and :func:`_table` are the rich-based helpers the audit report uses."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from numaguard.cpuset import format_bitmap
from numaguard.display import printable, printable_lines
from numaguard.model.guest import Guest
from numaguard.model.policy import MemoryPolicy
from numaguard.model.topology import Host
from numaguard.report.term import DEFAULT_WIDTH, GLUE, Column, Grid, paragraph
from numaguard.units import format_bytes

if TYPE_CHECKING:  # rich costs ~30 ms to import; topology and guests do without it
    from rich.table import Table
    from rich.text import Text


def _render(*renderables: object, width: int | None = None, color: bool = False) -> str:
    """*renderables* through rich.  The console is *width* wide (120 without), or wider when a
    :func:`_table` needs it: its columns are sized here and never cut."""
    from rich.console import Console

    buf = io.StringIO()
    needed = max((getattr(r, "_ng_width", 0) for r in renderables), default=0)
    # markup=False: guest names are data, "[red]" in a name must print as written.
    console = Console(file=buf, width=max(width or 120, needed), force_terminal=color,
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
    from rich.table import Table

    rows = [[printable_lines(c) if isinstance(c, str) else c for c in row] for row in rows]
    widths = [len(h) for h, _ in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], max((len(x) for x in str(cell).split("\n")), default=0))
    table = Table(title=title, title_justify="left")
    for (header, justify), w in zip(headers, widths, strict=True):
        table.add_column(header, justify=justify, width=w, no_wrap=True)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*row)
    table._ng_width = sum(widths) + 3 * len(widths) + 1  # type: ignore[attr-defined]
    return table


def _glued(text: str) -> str:
    """``12.0 GiB`` that never wraps between the number and its unit."""
    return text.replace(" ", GLUE)


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
        parts.append(f"{_glued(format_bytes(hp.size, precision=0))}: {free}/{hp.total} free")
    return ", ".join(parts) or "-"


def topology_text(host: Host, *, width: int | None = None, color: bool = False) -> str:
    """The nodes (CPUs, memory, hugepages), the distance matrix and the host facts, at *width*
    columns (default 80): CPU lists and hugepage pools wrap, a distance matrix too wide for
    the line is split into column blocks."""
    width = width or DEFAULT_WIDTH
    title = f"NUMA topology of {printable(host.name)}" if host.name else "NUMA topology"
    rows = [[str(n.id), _set(n.cpus, "(none)"), format_bytes(n.mem_total),
             format_bytes(n.mem_free), _hugepages(n.hugepages)] for n in host.nodes]
    rows.append(["all", str(sum(len(n.cpus) for n in host.nodes)) + " CPUs",
                 format_bytes(host.mem_total), format_bytes(host.mem_free), ""])
    nodes = Grid(title, [Column("Node", "right", key=True),
                         Column("CPUs", overflow="wrap", commas=True),
                         Column("Memory total", "right"), Column("Memory free", "right"),
                         Column("Hugepages (free/total)", overflow="wrap")],
                 rows, sections=[len(rows) - 2])
    out = [nodes.render(width, color)]
    if host.distances is not None and len(host.nodes) <= BOXED_DISTANCES:
        columns = [Column("from \\ to", "right", key=True)]
        columns += [Column(str(n.id), "right") for n in host.nodes]
        dist = Grid("Distances", columns,
                    [[str(n.id), *(str(d) for d in row)]
                     for n, row in zip(host.nodes, host.distances, strict=False)])
        out.append(dist.render(width, color))
    elif host.distances is not None:
        out.append(_plain_distances(host, width) + "\n")
    if host.swap_total is not None:
        out.append(paragraph(f"Swap: {format_bytes(host.swap_free)} free of "
                             f"{format_bytes(host.swap_total)}", width))
    else:
        out.append(paragraph("Swap: unknown (source does not say)", width))
    if host.numa_balancing is not None:
        out.append("Automatic NUMA balancing: " + ("on" if host.numa_balancing else "off") + "\n")
    return "".join(out)


#: up to this many nodes the distance matrix is a boxed table; beyond, rows as numactl prints
#: them (a rich table of 1,024 x 1,024 cells takes ten seconds to lay out)
BOXED_DISTANCES = 64


def _plain_distances(host: Host, width: int) -> str:
    """numactl's rows (``node   0   1 …`` then ``  0:  10  20 …``), in blocks of as many
    columns as fit *width*, each block headed by its ``node`` line."""
    assert host.distances is not None
    cell = max(len(str(n.id)) for n in host.nodes) + 1
    cell = max(cell, max(len(str(d)) for row in host.distances for d in row) + 1)
    per_block = max(1, (width - 5) // cell)
    lines = ["Distances (from \\ to)"]
    for start in range(0, len(host.nodes), per_block):
        block = host.nodes[start:start + per_block]
        if start:
            lines.append("")
        lines.append("node " + "".join(f"{n.id:>{cell}}" for n in block))
        lines += [f"{n.id:>4}:" + "".join(f"{d:>{cell}}" for d in row[start:start + per_block])
                  for n, row in zip(host.nodes, host.distances, strict=False)]
    return "\n".join(lines)


def policy_text(p: MemoryPolicy | None) -> str:
    if p is None:
        return "none (local allocation)"
    where = _set(p.nodeset) if p.nodeset is not None else "numad decides"
    implicit = " (implicit)" if p.implicit_mode else ""
    return f"{p.mode.value}{implicit} {p.placement.value}{GLUE}→{GLUE}{where}"


def _pinning(g: Guest) -> str:
    if g.pins:
        return "; ".join(f"vcpu{p.vcpu}→{_set(p.cpus)}" for p in g.pins)
    if g.cpuset is not None:
        return f"all→{_set(g.cpuset)}"
    return "auto (numad)" if g.vcpu_placement.value == "auto" else "none"


GUEST_COLUMNS = [
    Column("Guest", overflow="fold", key=True, floor=20),
    Column("Memory (max / current)", "right", overflow="wrap"),
    Column("vCPUs", "right"),
    Column("vCPU pinning", overflow="wrap", commas=True, floor=12),
    Column("Memory policy", overflow="wrap", commas=True, floor=16),
    Column("Guest NUMA cells", overflow="wrap", commas=True, floor=24),
]


def guests_text(guests: list[Guest], *, width: int | None = None, color: bool = False) -> str:
    """One row per guest at *width* columns (default 80): the free-text columns (pinning,
    policy, guest cells) wrap at spaces and commas, names longer than 20 characters fold."""
    rows: list[list[str]] = []
    for g in guests:
        mem = _glued(format_bytes(g.memory))
        if g.current_memory != g.memory:
            mem += f" / {_glued(format_bytes(g.current_memory))}"
        cells = "\n".join(
            f"cell {c.id}: vcpus {_set(c.cpus)}, {_glued(format_bytes(c.memory))}, "
            f"{policy_text(c.policy)}"
            + (f", hugepages {_glued(format_bytes(c.hugepage_size, precision=0))}"
               if c.hugepage_size else "")
            for c in g.cells
        ) or "-"
        vcpus = str(g.vcpus) if g.vcpus == g.vcpus_current else f"{g.vcpus_current}/{g.vcpus}"
        rows.append([printable(g.name), mem, vcpus, _pinning(g), policy_text(g.policy), cells])
    table = Grid(f"{len(guests)} guest(s)", GUEST_COLUMNS, rows)
    return table.render(width or DEFAULT_WIDTH, color)
