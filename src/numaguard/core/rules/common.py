"""Helpers shared by rule modules: wording of sizes and sets, and the fixes they propose."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, TypeVar

from numaguard.core.capacity import MemoryUnit
from numaguard.core.findings import Fix
from numaguard.cpuset import format_bitmap
from numaguard.display import shell_join, shell_quote
from numaguard.model.policy import MemoryMode
from numaguard.units import format_bytes

if TYPE_CHECKING:
    from numaguard.core.rules import Context

T = TypeVar("T")

#: text lists of guests in messages name at most this many, then "and N more"
LIST_LIMIT = 10


def names_text(names: list[str] | tuple[str, ...], limit: int = LIST_LIMIT) -> str:
    """``a, b, c`` — at most *limit* names, then ``and N more`` (the finding's ``guests``
    keeps every name)."""
    names = list(names)
    return _shown(names[:limit], len(names))


def first_named(items: list[T], say: Callable[[T], str], limit: int = LIST_LIMIT) -> str:
    """:func:`names_text` of ``say(item)`` for *items*, calling *say* only for the items
    shown."""
    return _shown([say(x) for x in items[:limit]], len(items))


def _shown(shown: list[str], total: int) -> str:
    more = total - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def fix_command(ctx: Context, guest: str, *args: str) -> str:
    """``numaguard fix GUEST ARGS…`` naming the guest (and host) the way the audit read them."""
    return shell_join(["numaguard", "fix", *ctx.options.refs.fix_args(guest), *args])


def size(n: int) -> str:
    return format_bytes(n)


def nodes_text(nodes: frozenset[int] | set[int] | tuple[int, ...]) -> str:
    """``node 3`` / ``nodes 0-2,5``."""
    return _nodes_text(frozenset(nodes) if isinstance(nodes, set) else nodes)


@lru_cache(maxsize=4096)   # the same few nodesets, in message after message
def _nodes_text(nodes: frozenset[int] | tuple[int, ...]) -> str:
    ids = sorted(nodes)
    if len(ids) == 1:
        return f"node {ids[0]}"
    return f"nodes {format_bitmap(ids)}"


def numatune_fix(ctx: Context, unit: MemoryUnit, mode: str, nodeset: frozenset[int],
                 why: str) -> Fix:
    """A ``<numatune>`` change for the guest (or its cell's ``<memnode>``), with the numaguard
    and virsh lines that make it.  libvirt never changes the mode of a running guest, so the
    virsh line edits the persistent config and the guest needs a cold restart.  An empty
    nodeset is a bug of the caller (virsh would read the next option as the bitmap).

    Made once per (unit, mode, nodeset, why) and audit: NG110 proposes the same change for
    every kill one binding causes (thousands on a large over-committed host)."""
    if not nodeset:
        raise ValueError(f"numatune fix for {unit.label} with an empty nodeset")
    key = (id(unit), mode, nodeset, why)
    made = ctx.fixes.get(key)
    if made is not None and made[0] is unit:   # the unit itself: an id may be reused
        return made[1]
    fix = _numatune_fix(ctx, unit, mode, nodeset, why)
    ctx.fixes[key] = (unit, fix)
    return fix


def _numatune_fix(ctx: Context, unit: MemoryUnit, mode: str, nodeset: frozenset[int],
                  why: str) -> Fix:
    have = ctx.host.node_ids
    if not nodeset <= have:   # a fix must name only nodes the host has (NG107 says the rest)
        nodeset = nodeset & have or frozenset({min(have)})
    guest = ctx.guest_by_name.get(unit.guest)
    top = guest.policy if guest is not None else None
    if unit.cell is not None and top is not None and top.mode is MemoryMode.RESTRICTIVE \
            and mode != "restrictive":
        # libvirt: a memnode of a restrictive guest must be restrictive too
        # (virDomainNumatuneParseXML); what helps is room: more nodes
        mode, nodeset = "restrictive", widened(ctx, unit, nodeset)
        why = "restrictive memnodes must stay restrictive while <memory> is; more nodes"
    p = unit.policy
    if p is not None and not p.implicit_mode and p.mode.value == mode and p.nodeset == nodeset:
        # the change would change nothing (one node, nothing to widen to): say so instead
        return Fix(guest=unit.guest,
                   description=f"no <numatune> change helps {unit.label}: it already is "
                               f"{mode} on {nodes_text(nodeset)}; give it less memory or "
                               "move it to a larger host")
    ns = format_bitmap(nodeset)
    g = shell_quote(unit.guest)
    commands: tuple[str, ...]
    if unit.cell is None:
        commands = (
            fix_command(ctx, unit.guest, "--mode", mode, "--nodeset", ns),
            f"virsh numatune {g} --mode {mode} --nodeset {ns} --config",
        )
        where = "<numatune><memory>"
    else:
        commands = (fix_command(ctx, unit.guest, "--memnode", f"{unit.cell}:{mode}:{ns}"),)
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


def widened(ctx: Context, unit: MemoryUnit, nodeset: frozenset[int]) -> frozenset[int]:
    """*nodeset* plus the next nodes of its first node's fallback order until their capacity
    holds the unit."""
    out = set(nodeset)
    for n in ctx.fallback.get(min(nodeset), ()):
        if sum(ctx.capacity.get(m, 0) for m in out) >= unit.size:
            break
        out.add(n)
    return frozenset(out)


def relaxed_mode(unit: MemoryUnit) -> str:
    """The article's advice: preferred for one node, interleave over several."""
    ns = unit.static_nodeset or frozenset()
    return "preferred" if len(ns) <= 1 else "interleave"
