"""``numaguard fix``: one guest's ``<numatune>`` change, checked, made and re-audited.

No I/O here: the caller reads the document and the host (``readers/``) and writes the result
(``writers/``).  :func:`plan_fix` refuses, before anything can be written, with an error naming
the document and the field:

* a document that is not a valid libvirt domain (``DomainDocument``/``extract_guest``);
* a nodeset naming nodes the host lacks (when the host is known);
* a ``<memnode>`` for a guest without guest NUMA cells;
* an edit libvirt would reject: the edited bytes are parsed and extracted again, so
  ``restrictive`` mixed with other modes, a memnode cellid the guest lacks, ... are caught by
  the same checks that read any domain;
* a nodeset for ``placement='auto'`` (:func:`numaguard.domxml.edit.edit_numatune` raises).

The result carries the old and new bytes, the guest before and after, and both audits, so the
caller can print ``NG108 critical -> none``.
"""

from __future__ import annotations

from dataclasses import dataclass

from numaguard.core.fallback import fallback_orders
from numaguard.core.findings import Finding, Fix, Severity
from numaguard.core.predict import Prediction
from numaguard.core.rules import AuditOptions, AuditResult, audit_inventory
from numaguard.cpuset import format_bitmap
from numaguard.domxml.document import DomainDocument
from numaguard.domxml.edit import MemnodeEdit, NumatuneEdit, edit_numatune
from numaguard.domxml.extract import extract_guest
from numaguard.errors import InvalidDocument, NumaguardError, ParseError
from numaguard.model.guest import Guest
from numaguard.model.inventory import Inventory
from numaguard.model.policy import MemoryMode, MemoryPolicy, Placement
from numaguard.model.topology import Host

NOTHING_TO_CHANGE = ("nothing to change: give --mode, --nodeset, --memnode CELL:MODE:NODESET "
                     "or --recommended")


@dataclass(frozen=True, slots=True)
class FixPlan:
    label: str                      # the document's name in messages and diff headers
    old: bytes
    new: bytes
    edit: NumatuneEdit
    before: Guest
    after: Guest
    audit_before: AuditResult | None = None
    audit_after: AuditResult | None = None
    #: the findings whose fixes ``--recommended`` applied
    recommended_by: tuple[Finding, ...] = ()

    @property
    def sim_before(self) -> Prediction | None:
        """Every guest of the host touching all its memory in the audit's start orders, with
        the old XML."""
        return self.audit_before.prediction if self.audit_before else None

    @property
    def sim_after(self) -> Prediction | None:
        return self.audit_after.prediction if self.audit_after else None

    @property
    def name(self) -> str:
        return self.before.name

    @property
    def changed(self) -> bool:
        """The bytes differ (possibly only by an implicit strict written out)."""
        return self.old != self.new

    @property
    def policy_changed(self) -> bool:
        return effective_policies(self.before) != effective_policies(self.after)

    @property
    def live_nodeset(self) -> frozenset[int] | None:
        """The new ``<memory>`` nodeset when libvirt can also give it to the running guest:
        restrictive before and after, static placement, only that nodeset changed.  libvirt
        never changes the mode of a running guest, and changes a running guest's nodeset only
        in restrictive mode (src/qemu/qemu_driver.c ``qemuDomainSetNumaParameters``; strict
        refused since 8.0.0)."""
        b, a = self.before.policy, self.after.policy
        if self.edit.memnodes or b is None or a is None:
            return None
        if b.mode is not MemoryMode.RESTRICTIVE or a.mode is not MemoryMode.RESTRICTIVE:
            return None
        if b.placement is not Placement.STATIC or a.placement is not Placement.STATIC:
            return None
        if a.nodeset == b.nodeset:
            return None
        return a.nodeset


def _policy_key(p: MemoryPolicy | None) -> tuple[str, str, frozenset[int] | None] | None:
    return None if p is None else (p.mode.value, p.placement.value, p.nodeset)


def effective_policies(guest: Guest) -> tuple[object, ...]:
    """The guest's policy and each cell's, ignoring whether a strict mode was implicit."""
    return (_policy_key(guest.policy), tuple(_policy_key(c.policy) for c in guest.cells))


def recommended_edit(name: str, findings: tuple[Finding, ...]) -> tuple[NumatuneEdit,
                                                                        tuple[Finding, ...]]:
    """The ``<numatune>`` changes the audit proposes for guest *name*: per target (``<memory>``
    or a memnode's cell) the fix of the worst finding naming the guest (findings come worst
    first).  Returns the edit and the findings it came from."""
    memory: tuple[Finding, Fix] | None = None
    cells: dict[int, tuple[Finding, Fix]] = {}
    for f in sorted(findings, key=Finding.sort_key):
        fix = f.fix
        if fix is None or name not in f.guests or fix.guest != name or fix.mode is None \
                or fix.nodeset is None:
            continue
        if fix.cell is None:
            memory = memory or (f, fix)
        else:
            cells.setdefault(fix.cell, (f, fix))
    edit = NumatuneEdit(
        mode=memory[1].mode if memory else None,
        nodeset=memory[1].nodeset if memory else None,
        memnodes=tuple(MemnodeEdit(cell, fx.mode or "strict", fx.nodeset or frozenset())
                       for cell, (_, fx) in sorted(cells.items())),
    )
    used = ([memory[0]] if memory else []) + [f for f, _ in (cells[c] for c in sorted(cells))]
    return edit, tuple(used)


def _check_nodes(edit: NumatuneEdit, host: Host, label: str) -> None:
    have = host.node_ids
    wanted: list[tuple[str, frozenset[int] | None]] = [("numatune/memory/@nodeset", edit.nodeset)]
    wanted += [(f"numatune/memnode[@cellid='{m.cellid}']/@nodeset", m.nodeset)
               for m in edit.memnodes]
    for where, nodeset in wanted:
        if nodeset is None:
            continue
        missing = sorted(nodeset - have)
        if missing:
            plural = "s" if len(missing) > 1 else ""
            raise ParseError(f"node{plural} {format_bitmap(missing)} not on the host (it has "
                             f"node{'s' if len(have) != 1 else ''} {format_bitmap(have)}); "
                             "nothing written", field=where, path=label)


def plan_fix(doc: DomainDocument, edit: NumatuneEdit | None, world: Inventory | None, *,
             options: AuditOptions | None = None, unknown: str | None = None) -> FixPlan:
    """Check and make *edit* (``None``: the audit's recommendation) on *doc*; re-audit.

    *world*: the host the guest runs on and its other guests (the guest itself, if it is
    among them, is replaced by *doc*'s); ``None`` when the host cannot be read (*unknown*
    says why): the nodeset check and the re-audit are skipped."""
    label = doc.path or "domain XML"
    before = extract_guest(doc)
    others = tuple(g for g in world.guests if g.name != before.name) if world else ()
    # the host's zonelists, once for both audits and both simulations (1,024 nodes: 1M pairs)
    orders = fallback_orders(world.host) if world else None

    def audited(guest: Guest) -> AuditResult | None:
        if world is None:
            return None
        return audit_inventory(world.with_guests((*others, guest)), options, fallback=orders)

    audit_before = audited(before)
    used: tuple[Finding, ...] = ()
    if edit is None:
        if audit_before is None:
            raise NumaguardError(f"{label}: --recommended needs the host topology "
                                 f"({unknown or 'unknown'}); give --host SOURCE")
        edit, used = recommended_edit(before.name, audit_before.findings)
        if edit.empty:
            return FixPlan(label, doc.to_bytes(), doc.to_bytes(), edit, before, before,
                           audit_before, audit_before, ())
    elif edit.empty:
        raise NumaguardError(NOTHING_TO_CHANGE)
    if edit.memnodes and not before.cells:
        raise ParseError(f"{before.name} has no guest NUMA cells (<cpu><numa>), so it cannot "
                         "have a <memnode>: change the whole guest with --mode/--nodeset",
                         field="numatune/memnode", path=label)
    if world is not None:
        _check_nodes(edit, world.host, label)
    try:
        new = edit_numatune(doc, edit)
    except ParseError as exc:
        raise exc.located(path=label) from None
    try:
        after = extract_guest(DomainDocument(new, path=label))
    except InvalidDocument as exc:
        problems: list[ParseError] = []
        for p in exc.problems:
            again = ParseError(f"libvirt would reject the edited XML: {p.reason}; nothing "
                               "written", field=p.field, path=label)
            if all(str(again) != str(q) for q in problems):
                problems.append(again)
        raise InvalidDocument(problems) from None
    audit_after = audited(after)
    return FixPlan(label, doc.to_bytes(), new, edit, before, after, audit_before, audit_after,
                   used)


# -- before/after of the findings ---------------------------------------------------------------

def _worst(result: AuditResult) -> dict[tuple[str, str], tuple[Severity, int]]:
    """(guest, rule) -> (worst severity, number of findings)."""
    out: dict[tuple[str, str], tuple[Severity, int]] = {}
    for f in result.findings:
        for g in f.guests:
            sev, n = out.get((g, f.rule), (f.severity, 0))
            out[(g, f.rule)] = (max(sev, f.severity), n + 1)
    return out


def _sev(entry: tuple[Severity, int] | None) -> str:
    if entry is None:
        return "none"
    sev, n = entry
    return sev.label if n == 1 else f"{sev.label} ({n})"


@dataclass(frozen=True, slots=True)
class FindingChange:
    guest: str
    rule: str
    before: tuple[Severity, int] | None
    after: tuple[Severity, int] | None

    @property
    def text(self) -> str:
        return f"{self.rule} {_sev(self.before)} -> {_sev(self.after)}"


def finding_changes(plan: FixPlan) -> tuple[list[FindingChange], list[FindingChange]]:
    """(every rule that names the guest before or after, changes for other guests)."""
    if plan.audit_before is None or plan.audit_after is None:
        return [], []
    b, a = _worst(plan.audit_before), _worst(plan.audit_after)
    keys = set(b) | set(a)

    def order(k: tuple[str, str]) -> tuple[int, int, str]:
        # what the guest had, worst first; then what is new, worst first; then by rule
        had = int(b[k][0]) if k in b else 0
        return (-had, 0 if had else -int(a[k][0]), k[1])

    own = [FindingChange(g, r, b.get((g, r)), a.get((g, r)))
           for g, r in sorted((k for k in keys if k[0] == plan.name), key=order)]
    other = [FindingChange(g, r, b.get((g, r)), a.get((g, r)))
             for g, r in sorted((k for k in keys if k[0] != plan.name),
                                key=lambda k: (k[0], *order(k)))
             if b.get((g, r)) != a.get((g, r))]
    return own, other


def severity_counts(result: AuditResult | None, guest: str) -> str:
    if result is None:
        return "?"
    counts = dict.fromkeys((Severity.CRITICAL, Severity.WARNING, Severity.INFO), 0)
    for f in result.findings:
        if guest in f.guests:
            counts[f.severity] += 1
    return ", ".join(f"{n} {s.label}" for s, n in counts.items())
