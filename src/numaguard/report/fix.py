"""What ``numaguard fix`` tells the admin besides the change itself: which audit findings the
change came from (``--recommended``), the guest's findings before and after (``NG108 critical
-> none``), changes it causes for other guests, and when it takes effect."""

from __future__ import annotations

from numaguard.core.findings import Fix, Severity
from numaguard.core.predict import OrderRun, Prediction
from numaguard.core.rules import AuditResult
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
    if plan.recommended_by or plan.edit.empty:
        lines.extend(_other_changes(plan))
    before, after = plan.audit_before, plan.audit_after
    if before is not None and after is not None:
        own, other = finding_changes(plan)
        lines.append(f"re-audit of the whole host ({len(after.guests)} guest"
                     f"{'s' if len(after.guests) != 1 else ''}) with the edited XML "
                     "(before -> after):")
        if own:
            lines.extend(f"  {c.text}" for c in own)
        else:
            lines.append(f"  no findings for {plan.name} before or after")
        lines.append(f"  {plan.name}: {severity_counts(before, plan.name)} -> "
                     f"{severity_counts(after, plan.name)}")
        if other:
            lines.append("  other guests:")
            lines.extend(f"    {c.guest}: {c.text}" for c in other)
        lines.append(f"  host: {counts_text(before)} -> {counts_text(after)}")
        lines.extend(_sim_lines(plan))
        lines.extend(_left_lines(plan))
    if effect:
        lines.append(effect_note(plan))
    return [printable(line) for line in lines]


def _other_changes(plan: FixPlan) -> list[str]:
    """Changes the audit proposes for this guest that are not a <numatune> edit (NG111's
    resize): `numaguard fix` does not make them; say so, with the line that does."""
    before = plan.audit_before
    if before is None:
        return []
    out = []
    seen = set()
    for f in before.findings:
        fix = f.fix
        if fix is None or fix.guest != plan.name or fix.memory is None or fix.memory in seen:
            continue
        seen.add(fix.memory)
        out.append(f"the audit also proposes ({f.rule}, {f.severity.label}): "
                   f"{' '.join(fix.description.split())} — not a <numatune> change, so "
                   "numaguard fix does not make it; on the guest's host:")
        out.extend(f"  $ {c}" for c in fix.commands)
    return out


def counts_text(result: AuditResult) -> str:
    c = dict.fromkeys((Severity.CRITICAL, Severity.WARNING, Severity.INFO), 0)
    for f in result.findings:
        c[f.severity] += 1
    return ", ".join(f"{n} {s.label}" for s, n in c.items())


def _sim_lines(plan: FixPlan) -> list[str]:
    b, a = plan.sim_before, plan.sim_after
    if b is None or a is None or not a.runs:
        return []
    n = len(a.runs)
    lines = [(f"simulation of the whole host, every guest touching all its memory, in {n} start "
             f"order{'s' if n != 1 else ''} (before -> after):")]
    first_b, first_a = _run_of(b, a.runs[0].order.name), a.runs[0]
    lines.append(f"  {plan.name}'s memory in the {first_a.order.label} order: "
                 f"{_sim_text(first_b.result, plan.name) if first_b else 'not simulated'} -> "
                 f"{_sim_text(first_a.result, plan.name)}")
    lines.append(f"  OOM kills: {_kills(b)} -> {_kills(a)}")
    return lines


def _run_of(p: Prediction, order: str) -> OrderRun | None:
    return next((r for r in p.runs if r.order.name == order), None)


def _kills(p: Prediction) -> str:
    parts = []
    for k in p.kills:
        why = k.constraint if k.constraint == "global" else f"{k.constraint}, for {k.trigger}"
        parts.append(f"{k.victim} ({why}; {len(k.orders)} of {len(p.runs)} orders)")
    parts += [f"{f.guest} ({format_bytes(f.failed_bytes)} cannot be placed; {len(f.orders)} "
              f"of {len(p.runs)} orders)" for f in p.failures]
    return ", ".join(parts) or "none"


def _left_lines(plan: FixPlan) -> list[str]:
    """Plain words when the change does not remove every predicted kill."""
    a = plan.sim_after
    after = plan.audit_after
    if a is None or after is None or a.clean:
        return []
    n = len(a.kills) + len(a.failures)
    parts = []
    for k in a.kills:
        cause = ""
        if k.constraint == "global":
            short = next((f for f in after.findings if f.rule == "NG111"
                          and "shortfall_bytes" in f.evidence), None)
            if short is not None:
                cause = (" — the host is over-committed by "
                         f"{format_bytes(int(short.evidence['shortfall_bytes']))}")
                if short.fix is not None:
                    cause += f" (NG111: {short.fix.description})"
        else:
            cause = f" — {k.trigger}'s binding on nodes {format_bitmap(k.nodes)}"
        parts.append(f"{k.victim}, {k.constraint}{cause}")
    parts += [f"{f.guest}: {format_bytes(f.failed_bytes)} cannot be placed" for f in a.failures]
    return [f"still {n} predicted kill{'s' if n != 1 else ''} after this change: "
            + "; ".join(parts)]


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


def wrapped(lines: list[str], width: int, prefix: str = "") -> str:
    """The summary lines as text of at most *width* columns: each line wraps at spaces, its
    continuation indented two more than the line, every line starting with *prefix*."""
    from numaguard.report import term

    out: list[str] = []
    for line in lines:
        body = line.lstrip(" ")
        indent = prefix + line[: len(line) - len(body)]
        if term.is_command_line(body):      # a command stands whole
            out.append(indent + body)
            continue
        out += term.wrap(body, width, indent=indent, subsequent=indent + "    ")
    return "".join(f"{x}\n" for x in out)
