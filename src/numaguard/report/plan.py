"""Renderers of ``numaguard plan``: text (fits the terminal, :mod:`numaguard.report.term`) and
JSON (a contract).

JSON contract (keys never change meaning; new keys may be added)::

    {"schema_version": 1, "numaguard_version", "source",
     "kept": [guests left as they are (--keep)],
     "placements": [{"guest", "placed", "new", "nodes", "cpuset", "mode", "nodeset",
                     "memnodes": [{"cell", "mode", "nodeset"}], "moved", "restart",
                     "why", "why_not": [{"node", "why"}], "changes": [{"kind", …}]}],
     "objective": {"placed", "guests", "peak_fill", "remote_cost", "moves_weight", "moved",
                   "cold_restarts"},
     "optimal": true | false | null (no solver ran), "gap": float | null,
     "solver": "highs" | "greedy", "stages": [{"name", "value", "bound", "gap", "optimal",
                                              "status"}],
     "time_limit_seconds",
     "bounds": {"balance", "largest_unit", "peak", "k_nodes": [{"k", "share_bytes", "guests",
                                                               "slots", "violated"}]},
     "proof": [lines], "shortfalls": [{"nodes", "demand_bytes", "capacity_bytes",
                                        "shortfall_bytes"}],
     "audit": {"summary": {"critical", "warning", "info"}, "critical": [{"rule", "guests",
               "message"}], "simulated": bool, "kills": [{"victim", "trigger", "constraint"}]},
     "changes": [{"guest", "restart", "commands": [shell lines]}],
     "notes": [lines]}

Fills are fractions (0..1), ``remote_cost`` is Σ bytes × (SLIT distance − 10), sizes are bytes.
No wall-clock figure is in either output (the solver's seconds vary run to run); the time
limit is.  Node and CPU lists are sorted integers: the output is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from numaguard.core.changes import Change, PinEmulator, PinVcpus, SetMemnode, SetMemoryPolicy
from numaguard.core.findings import Severity
from numaguard.core.plan import GuestPlacement, Plan, Restart
from numaguard.core.rules import AuditResult
from numaguard.cpuset import format_bitmap
from numaguard.display import printable
from numaguard.report import term
from numaguard.report.audit import counts, counts_line
from numaguard.report.jsonout import dumps, versioned
from numaguard.units import format_bytes


@dataclass(frozen=True, slots=True)
class GuestCommands:
    """The lines that make one guest's planned change (``#`` lines are comments)."""

    guest: str
    restart: Restart
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PlanReport:
    """What ``numaguard plan`` shows: the plan, the audit of the planned host, the commands."""

    source: str
    plan: Plan
    audit: AuditResult
    commands: tuple[GuestCommands, ...]
    time_limit: float
    explain: bool = False
    notes: tuple[str, ...] = field(default=())


def _ids(nodes: frozenset[int]) -> list[int]:
    return sorted(nodes)


def _nodes(nodes: frozenset[int]) -> str:
    return format_bitmap(nodes) if nodes else "-"


def _pct(fill: float) -> str:
    return f"{fill * 100:.1f} %"


def status_line(report: PlanReport) -> str:
    """``optimal …`` / ``best found in S s, gap X %`` / ``greedy: no optimality claimed``."""
    p = report.plan
    if p.optimal is None:
        return "greedy: no optimality claimed"
    if p.optimal:
        return "optimal: every stage proven by HiGHS (gap 0 %)"
    gap = "unknown" if p.gap is None else f"{p.gap * 100:.2f} %"
    return f"best found in {report.time_limit:g} s, gap {gap}"


def _mode_cell(pl: GuestPlacement) -> str:
    if not pl.placed:
        return "not placed"
    lines = [f"{pl.mode.value if pl.mode else 'none'} {_nodes(pl.nodeset)}"]
    lines += [f"cell {c}: {m.value} {_nodes(ns)}" for c, m, ns in pl.memnodes]
    return "\n".join(lines)


def _restart_text(r: Restart) -> str:
    return {Restart.COLD: "cold", Restart.LIVE: "live", Restart.NONE: "-"}[r]


def _placement_table(report: PlanReport, width: int | None, color: bool) -> str:
    rows = []
    for pl in report.plan.placements:
        name = printable(pl.guest) + (" (new)" if pl.new else "")
        rows.append([term.styled(name, None if pl.placed else "bold red", color),
                     _nodes(pl.nodes) if pl.placed else "-",
                     _nodes(pl.cpuset) if pl.placed else "-",
                     _mode_cell(pl), "yes" if pl.moved else "-", _restart_text(pl.restart)])
    columns = [term.Column("Guest", key=True, overflow="fold"), term.Column("Nodes"),
               term.Column("vCPUs on CPUs", overflow="wrap", commas=True),
               term.Column("Mode nodeset", overflow="wrap"), term.Column("Moved"),
               term.Column("Restart")]
    grid = term.Grid("Planned placement", columns, rows)
    return "\n".join(line.rstrip() for line in grid.render(width, color).splitlines())


def _objective_lines(report: PlanReport) -> list[str]:
    p = report.plan
    o = p.objective
    return [
        f"placed: {o.placed} of {len(p.placements)} guests",
        f"peak fill: {_pct(o.peak)} (the worst node's ordinary memory over its capacity)",
        f"remote cost: {format_bytes(o.remote)} x (SLIT distance - 10), summed over the "
        "guests' memory away from their vCPUs' nodes",
        f"moves: {o.moved} guest{'s change' if o.moved != 1 else ' changes'} (weight {o.moves}), "
        f"{p.cold_restarts} cold restart{'s' if p.cold_restarts != 1 else ''}",
        f"solver: {status_line(report)}",
    ]


def _bound_lines(report: PlanReport) -> list[str]:
    b = report.plan.bounds
    out = [f"balance bound: peak fill >= {_pct(b.balance)} (all guest memory over all "
           "capacity)",
           f"largest unit: peak fill >= {_pct(b.largest_unit)} (the largest guest or cell "
           "alone on its best nodes)"]
    for k in b.k_nodes:
        nodes = f"{k.k} node{'s' if k.k > 1 else ''}"
        out.append(f"k-node slots: {k.guests} unit{'s need' if k.guests != 1 else ' needs'} "
                   f"{nodes} with {format_bytes(k.share)} each; room for {k.slots}"
                   + (" (too few)" if k.violated else ""))
    return out


def _why_lines(report: PlanReport) -> list[tuple[str, str]]:
    """(guest line, its why-not lines) for the guests to explain: all with --explain, else the
    moved, new and unplaced ones."""
    out: list[tuple[str, str]] = []
    for pl in report.plan.placements:
        if not (report.explain or pl.moved or pl.new or not pl.placed):
            continue
        head = f"{printable(pl.guest)}: {printable(pl.why)}"
        nots = "\n".join(f"- {printable(w)}" for _, w in pl.why_not)
        out.append((head, nots))
    return out


def _audit_lines(report: PlanReport) -> list[str]:
    a = report.audit
    crit = [f for f in a.findings if f.severity is Severity.CRITICAL]
    out = []
    if report.plan.unplaced:
        out.append("without " + ", ".join(printable(g) for g in report.plan.unplaced)
                   + ", which the plan cannot place here: move "
                   + ("it" if len(report.plan.unplaced) == 1 else "them")
                   + " to another host (see why above)")
    out.append(f"audit: {counts_line(a)}" + (": no critical finding" if not crit else ""))
    out += [f"{f.rule} critical: {printable(f.message)}" for f in crit]
    pred = a.prediction
    if pred is None:
        out.append("simulation (NG110): not run")
    elif not pred.kills:
        out.append("simulation (NG110): no predicted OOM kill in any start order played")
    else:
        out.append("simulation (NG110): predicted OOM kills: " + "; ".join(
            f"{printable(k.victim)} when {printable(k.trigger)} grows ({k.constraint})"
            for k in pred.kills))
    return out


def _section(title: str, lines: list[str], width: int | None, color: bool) -> str:
    w = width or term.MAX_WIDTH
    body = "\n".join(x for line in lines for x in term.wrap(line, w, indent="  ",
                                                             subsequent="      "))
    return f"\n{term.paint(title, 'bold') if color else title}\n{body}\n"


def changes_lines(report: PlanReport) -> list[str]:
    """The commands of every changed guest, each guest under a heading line."""
    out: list[str] = []
    for gc in report.commands:
        restart = {Restart.COLD: "a cold restart (virsh shutdown + start) makes it take "
                                 "effect", Restart.LIVE: "it can take effect live",
                   Restart.NONE: "no restart needed"}[gc.restart]
        out.append(f"{printable(gc.guest)}: {restart}:")
        out += list(gc.lines)
    return out


def plan_text(report: PlanReport, *, width: int | None = None, color: bool = False) -> str:
    p = report.plan
    w = width or term.MAX_WIDTH
    out = ["\n".join(term.wrap(f"numaguard plan of {printable(report.source)}: "
                               f"{status_line(report)}", w)), "\n\n",
           _placement_table(report, width, color), "\n"]
    if p.kept:
        out.append("\n".join(term.wrap("kept as they are (--keep): "
                                       + ", ".join(printable(g) for g in p.kept), w)) + "\n")
    out.append(_section("Objective", _objective_lines(report), width, color))
    out.append(_section("Bounds on any plan placing every guest (no solver needed)",
                        _bound_lines(report), width, color))
    if p.proof:
        title = f"Not placed: {', '.join(printable(g) for g in p.unplaced)} (proof)"
        out.append(_section(title, list(p.proof), width, color))
    why = _why_lines(report)
    if why:
        lines = []
        for head, nots in why:
            lines.append("\n".join(term.wrap(head, w, indent="  ", subsequent="      ")))
            lines += ["\n".join(term.wrap(n, w, indent="    ", subsequent="      "))
                      for n in nots.splitlines()]
        title = "Why (every guest)" if report.explain else \
            "Why (moved, new and unplaced guests; --explain: every guest)"
        out.append(f"\n{term.paint(title, 'bold') if color else title}\n" + "\n".join(lines)
                   + "\n")
    out.append(_section("The planned host", _audit_lines(report), width, color))
    cmd = changes_lines(report)
    n = len(report.commands)
    title = (f"Changes ({n} guest{'s' if n != 1 else ''}, {p.cold_restarts} cold restart"
             f"{'s' if p.cold_restarts != 1 else ''})")
    if not cmd:
        out.append(_section(title, ["nothing to change"], width, color))
    else:
        body = []
        for line in cmd:
            if line.startswith("# "):
                body.append("\n".join(term.wrap(line, w, indent="    ",
                                                subsequent="    # ")))
            elif line.endswith(":") and not line.startswith(("numaguard ", "virsh ")):
                body.append("\n".join(term.wrap(line, w, indent="  ", subsequent="    ")))
            else:
                body.append(term.command_line(line))
        out.append(f"\n{term.paint(title, 'bold') if color else title}\n" + "\n".join(body)
                   + "\n")
    if report.notes or p.notes:
        out.append(_section("Notes", [*report.notes, *p.notes], width, color))
    return "".join(out)


def plan_virsh(report: PlanReport) -> str:
    """``--virsh``: the change commands alone, as a shell script (comments start with ``#``)."""
    lines = []
    for gc in report.commands:
        lines.append(f"# {printable(gc.guest)}")
        lines += list(gc.lines)
    return "".join(f"{line}\n" for line in lines) or "# nothing to change\n"


# -- JSON ---------------------------------------------------------------------------------------

def change_to_dict(c: Change) -> dict[str, Any]:
    if isinstance(c, SetMemoryPolicy):
        return {"kind": "memory", "mode": c.mode.value, "nodeset": _ids(c.nodeset)}
    if isinstance(c, SetMemnode):
        return {"kind": "memnode", "cell": c.cell, "mode": c.mode.value,
                "nodeset": _ids(c.nodeset)}
    if isinstance(c, PinVcpus):
        return {"kind": "vcpupin", "vcpus": _ids(c.vcpus), "cpus": _ids(c.cpus)}
    if isinstance(c, PinEmulator):
        return {"kind": "emulatorpin", "cpus": _ids(c.cpus)}
    return {"kind": "maxmemory", "memory_bytes": c.memory}


def _placement_dict(pl: GuestPlacement) -> dict[str, Any]:
    return {"guest": pl.guest, "placed": pl.placed, "new": pl.new, "nodes": _ids(pl.nodes),
            "cpuset": _ids(pl.cpuset), "mode": pl.mode.value if pl.mode else None,
            "nodeset": _ids(pl.nodeset),
            "memnodes": [{"cell": c, "mode": m.value, "nodeset": _ids(ns)}
                         for c, m, ns in pl.memnodes],
            "moved": pl.moved, "restart": pl.restart.value, "why": pl.why,
            "why_not": [{"node": n, "why": w} for n, w in pl.why_not],
            "changes": [change_to_dict(c) for c in pl.changes]}


def plan_dict(report: PlanReport) -> dict[str, Any]:
    p = report.plan
    o = p.objective
    a = report.audit
    pred = a.prediction
    return versioned({
        "source": report.source,
        "placements": [_placement_dict(pl) for pl in p.placements],
        "kept": list(p.kept),
        "objective": {"placed": o.placed, "guests": len(p.placements), "peak_fill": o.peak,
                      "remote_cost": o.remote, "moves_weight": o.moves, "moved": o.moved,
                      "cold_restarts": p.cold_restarts},
        "optimal": p.optimal,
        "gap": p.gap,
        "solver": "greedy" if p.optimal is None else "highs",
        "stages": [{"name": s.name, "value": s.value, "bound": s.bound, "gap": s.gap,
                    "optimal": s.optimal, "status": s.status} for s in p.stages],
        "time_limit_seconds": report.time_limit,
        "bounds": {"balance": p.bounds.balance, "largest_unit": p.bounds.largest_unit,
                   "peak": p.bounds.peak,
                   "k_nodes": [{"k": k.k, "share_bytes": k.share, "guests": k.guests,
                                "slots": k.slots, "violated": k.violated}
                               for k in p.bounds.k_nodes]},
        "proof": list(p.proof),
        "shortfalls": [{"nodes": _ids(s.nodes), "demand_bytes": s.demand,
                        "capacity_bytes": s.capacity, "shortfall_bytes": s.shortfall}
                       for s in p.shortfalls],
        "audit": {"summary": counts(a),
                  "critical": [{"rule": f.rule, "guests": list(f.guests), "message": f.message}
                               for f in a.findings if f.severity is Severity.CRITICAL],
                  "simulated": pred is not None,
                  "kills": [{"victim": k.victim, "trigger": k.trigger,
                             "constraint": k.constraint} for k in (pred.kills if pred else ())]},
        "changes": [{"guest": gc.guest, "restart": gc.restart.value,
                     "commands": list(gc.lines)} for gc in report.commands],
        "notes": [*report.notes, *p.notes],
    })


def plan_json(report: PlanReport) -> str:
    return dumps(plan_dict(report))
