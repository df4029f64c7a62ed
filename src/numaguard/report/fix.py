"""What ``numaguard fix`` tells the admin besides the change itself: which audit findings the
change came from (``--recommended``), the guest's findings before and after (``NG108 critical
-> none``), changes it causes for other guests, and when it takes effect."""

from __future__ import annotations

from numaguard.core.findings import Fix
from numaguard.core.simulate import SimResult
from numaguard.cpuset import format_bitmap
from numaguard.display import printable
from numaguard.fix import FixPlan, finding_changes, severity_counts
from numaguard.units import format_bytes
from numaguard.writers.virsh import effect_note


def _change(fix: Fix) -> str:
    where = "<numatune><memory>" if fix.cell is None else f"<memnode cellid='{fix.cell}'>"
    nodeset = format_bitmap(fix.nodeset) if fix.nodeset is not None else "?"
    return f"{where} mode='{fix.mode}' nodeset='{nodeset}'"


def summary_lines(plan: FixPlan, *, effect: bool = True) -> list[str]:
    lines: list[str] = []
    for f in plan.recommended_by:
        assert f.fix is not None
        lines.append(f"recommended by {f.rule} ({f.severity.label}): {_change(f.fix)}")
    if plan.audit_before is not None and plan.audit_after is not None:
        own, other = finding_changes(plan)
        lines.append(f"re-audit of {plan.name} with the edited XML (before -> after):")
        if own:
            lines.extend(f"  {c.text}" for c in own)
        else:
            lines.append("  no findings before or after")
        lines.append(f"  {plan.name}: {severity_counts(plan.audit_before, plan.name)} -> "
                     f"{severity_counts(plan.audit_after, plan.name)}")
        if other:
            lines.append("other guests (before -> after):")
            lines.extend(f"  {c.guest}: {c.text}" for c in other)
    if plan.sim_before is not None and plan.sim_after is not None:
        lines.append(f"simulation, every guest touching its memory in name order (before -> "
                     f"after): {_sim_text(plan.sim_before, plan.name)} -> "
                     f"{_sim_text(plan.sim_after, plan.name)}")
        if plan.sim_before.oom_events or plan.sim_after.oom_events:
            lines.append(f"  OOM kills: {_kills(plan.sim_before)} -> {_kills(plan.sim_after)}")
    if effect:
        lines.append(effect_note(plan))
    return [printable(line) for line in lines]


def _kills(result: SimResult) -> str:
    return ", ".join(f"{e.victim} ({e.constraint}, for {e.trigger})"
                     for e in result.oom_events) or "none"


def _sim_text(result: SimResult, name: str) -> str:
    a = next((x for x in result.allocations if x.name == name), None)
    if a is None:
        return "not simulated"
    if a.oom_killed:
        return f"{name} OOM-killed"
    where = ", ".join(f"node {n} {format_bytes(b)}" for n, b in sorted(a.placed.items()) if b)
    where = where or "hugepages only" if a.hugepages and not where else where
    extra = []
    if a.swapped:
        extra.append(f"{format_bytes(a.swapped)} in swap")
    if a.failed:
        extra.append(f"{format_bytes(a.failed)} failed")
    return where + (f" ({', '.join(extra)})" if extra else "")
