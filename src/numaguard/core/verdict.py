"""One cause, one finding: the audit's findings grouped by the change that clears them.

Several rules often see one cause from different sides: vm1's implicit strict binding on a
contended node is NG102 (implicit), NG108 (contended), NG101 (headroom), NG106 (swap) and NG110
(the simulator kills a guest), each proposing the same ``<numatune>`` change.  :func:`groups`
puts findings whose fixes make the same change into one :class:`Group`; NG106 (swap), whose fix
is only a stop-gap, joins the group of the binding it is about.  :func:`verify` applies each
group's change to the guests (:func:`apply_fix`), audits again and records which findings are
gone — so "1 change clears 4 findings" is measured, not assumed.  :func:`at_risk` is the
verdict: one line per guest the simulator kills (or leaves without memory), with the group that
clears it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from numaguard.core.changes import SetMaxMemory, apply_change
from numaguard.core.findings import Finding, Fix, Severity
from numaguard.model.guest import Guest

#: NG106's fix is more swap; the finding belongs with the binding that makes swap needed
_FOLLOWERS = ("NG106",)


@dataclass(frozen=True, slots=True)
class Group:
    """Findings one change is for.  ``cleared``: those of them that a re-audit with the change
    applied no longer reports (``None`` when not verified)."""

    fix: Fix | None
    findings: tuple[Finding, ...]
    cleared: tuple[Finding, ...] | None = None

    @property
    def severity(self) -> Severity:
        return max(f.severity for f in self.findings)

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(sorted({f.rule for f in self.findings}))

    @property
    def guest(self) -> str | None:
        """The guest the change is made to (the guest at fault)."""
        return self.fix.guest if self.fix is not None else None

    def sort_key(self) -> tuple[int, int, str]:
        return (-int(self.severity), -len(self.findings), self.guest or "")


def fix_key(fix: Fix | None) -> tuple[object, ...] | None:
    """What makes two fixes the same change (``None``: a fix that is only advice)."""
    if fix is None:
        return None
    if fix.mode is not None and fix.nodeset is not None:
        return ("numatune", fix.guest, fix.cell, fix.mode, fix.nodeset)
    if fix.memory is not None:
        return ("memory", fix.guest, fix.memory)
    return ("commands", fix.guest, fix.description, fix.commands)


def groups(findings: Iterable[Finding]) -> tuple[Group, ...]:
    """Findings grouped by the change their fixes make, worst group first."""
    by_key: dict[tuple[object, ...], list[Finding]] = {}
    fixes: dict[tuple[object, ...], Fix | None] = {}
    alone: list[Finding] = []
    followers: list[Finding] = []
    for f in findings:
        key = fix_key(f.fix)
        if f.rule in _FOLLOWERS:
            followers.append(f)
        elif key is None:
            alone.append(f)
        else:
            by_key.setdefault(key, []).append(f)
            fixes.setdefault(key, f.fix)
    # a follower's home: the first group (in order of appearance) that changes the binding of
    # the follower's one guest and holds a finding at least as severe
    bindings: dict[object, list[tuple[object, ...]]] = {}
    for k in by_key:
        if k[0] == "numatune":
            bindings.setdefault(k[1], []).append(k)
    for f in followers:
        names = set(f.guests)
        home = next((k for k in bindings.get(next(iter(names)), ())
                     if any(x.severity >= f.severity for x in by_key[k])),
                    None) if len(names) == 1 else None
        if home is None:
            key = fix_key(f.fix)
            if key is None:
                alone.append(f)
                continue
            if key[0] == "numatune" and key not in by_key:
                bindings.setdefault(key[1], []).append(key)
            by_key.setdefault(key, []).append(f)
            fixes.setdefault(key, f.fix)
        else:
            by_key[home].append(f)
    out = [Group(fixes[k], tuple(sorted(fs, key=Finding.sort_key))) for k, fs in by_key.items()]
    out += [Group(None, (f,)) for f in alone]
    return tuple(sorted(out, key=Group.sort_key))


# -- applying a fix to the model ----------------------------------------------------------------

def apply_fix(guest: Guest, fix: Fix) -> Guest:
    """*guest* as it is after *fix* (its :attr:`~numaguard.core.findings.Fix.changes`); a fix
    of another guest, or only advice, leaves it as it is, and so does a resize of a guest with
    NUMA cells (its memory is the sum of the cells: the fix only says so)."""
    if fix.guest != guest.name:
        return guest
    out = guest
    for change in fix.changes:
        if isinstance(change, SetMaxMemory) and guest.cells:
            continue
        out = apply_change(out, change)
    return out


def apply_fixes(guests: Sequence[Guest], fixes: Iterable[Fix]) -> tuple[Guest, ...]:
    out = list(guests)
    for fix in fixes:
        out = [apply_fix(g, fix) for g in out]
    return tuple(out)


def _same(a: Finding, b: Finding) -> bool:
    return a.rule == b.rule and a.guests == b.guests and b.severity >= a.severity \
        and a.evidence.get("constraint") == b.evidence.get("constraint")


def verify(found: Sequence[Group], guests: Sequence[Guest],
           reaudit: Callable[[tuple[Guest, ...], frozenset[str], frozenset[str]],
                             Sequence[Finding]],
           limit: int) -> tuple[Group, ...]:
    """For the first *limit* groups with a change the model can make, audit again with it
    applied and record which of the group's findings are gone.

    ``reaudit(guests, rules, focus)`` need only run *rules* (the group's own) and the rules
    they read, and only for the guests in *focus* where a rule's findings for a guest depend
    on that guest alone: whether a finding is gone is decided by the findings of its own rule
    naming its own guests (:func:`_same`), so the other rules' work — most of an audit,
    NG110's simulation of every start order included when no finding of the group is NG101's
    or NG110's — is not redone (a fleet's 4 x 50-guest hosts: 85 % of their audit was these
    re-audits; issue 12)."""
    out: list[Group] = []
    done = 0
    for g in found:
        fix = g.fix
        if done < limit and fix is not None and (fix.memory is not None or fix.mode is not None):
            after = reaudit(apply_fixes(guests, (fix,)), frozenset(f.rule for f in g.findings),
                            frozenset(name for f in g.findings for name in f.guests))
            cleared = tuple(f for f in g.findings if not any(_same(f, b) for b in after))
            out.append(dataclasses.replace(g, cleared=cleared))
            done += 1
        else:
            out.append(g)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class AtRisk:
    """One line of the verdict: a guest the simulator kills (or leaves short), why, and the
    group whose change is for it."""

    finding: Finding
    group: Group | None


def at_risk(found: Sequence[Group]) -> tuple[AtRisk, ...]:
    """Every NG110 finding (a predicted kill or failed allocation), with its group."""
    out = [AtRisk(f, g) for g in found for f in g.findings if f.rule == "NG110"]
    return tuple(sorted(out, key=lambda r: (r.finding.evidence.get("constraint") == "global",
                                            -int(r.finding.evidence.get("orders_killing", 0)),
                                            r.finding.guests)))
