"""Helpers shared by rule modules: wording of sizes and sets, and the fixes they propose."""

from __future__ import annotations

from numaguard.core.capacity import MemoryUnit
from numaguard.core.findings import Fix
from numaguard.cpuset import format_bitmap
from numaguard.display import shell_quote
from numaguard.units import format_bytes


def size(n: int) -> str:
    return format_bytes(n)


def nodes_text(nodes: frozenset[int] | set[int] | tuple[int, ...]) -> str:
    ids = sorted(nodes)
    if len(ids) == 1:
        return f"node {ids[0]}"
    return f"nodes {format_bitmap(ids)}"


def numatune_fix(unit: MemoryUnit, mode: str, nodeset: frozenset[int], why: str) -> Fix:
    """A ``<numatune>`` change for the guest (or its cell's ``<memnode>``), with the numaguard
    and virsh lines that make it.  libvirt never changes the mode of a running guest, so the
    virsh line edits the persistent config and the guest needs a cold restart."""
    ns = format_bitmap(nodeset)
    g = shell_quote(unit.guest)
    commands: tuple[str, ...]
    if unit.cell is None:
        commands = (
            f"numaguard fix {g} --mode {mode} --nodeset {ns}",
            f"virsh numatune {g} --mode {mode} --nodeset {ns} --config",
        )
        where = "<numatune><memory>"
    else:
        commands = (f"numaguard fix {g} --memnode {unit.cell}:{mode}:{ns}",)
        where = f"<memnode cellid='{unit.cell}'>"
    return Fix(
        guest=unit.guest,
        description=f"set {where} mode='{mode}' nodeset='{ns}' ({why}); "
                    "takes effect at the next cold boot of the guest",
        mode=mode,
        nodeset=nodeset,
        cell=unit.cell,
        commands=commands,
    )


def relaxed_mode(unit: MemoryUnit) -> str:
    """The article's advice: preferred for one node, interleave over several."""
    ns = unit.static_nodeset or frozenset()
    return "preferred" if len(ns) <= 1 else "interleave"
