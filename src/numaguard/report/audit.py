"""Renderers of an :class:`AuditResult`: JSON (a contract), text and Markdown.

JSON contract (keys never change meaning; new keys may be added)::

    {"schema_version": 1, "numaguard_version", "host": <topology JSON>, "guests": [names],
     "verdict": [{"line", "victim", "trigger", "constraint", "guest_at_fault", "change"}],
     "groups": [{"guest", "fix", "severity", "rules", "findings": [indices into findings],
                 "cleared": [indices] | null}],
     "orders": [{"name", "aliases"}]  (`numaguard simulate SNAPSHOT --order NAME` plays one),
     "nodes": [{"id", "capacity_bytes", "pledged_strict_bytes", "bound_demand_bytes",
                "headroom_bytes",
                "mem_total_bytes", "mem_free_bytes", "hugepages_reserved_bytes",
                "host_reserve_bytes"}],
     "findings": [{"rule", "name", "severity", "guests", "nodes", "message", "evidence",
                   "fix": {"guest", "mode", "nodeset", "cell", "description", "command",
                           "commands"} | null}],
     "summary": {"critical", "warning", "info"},
     "options": {"host_reserve", "min_headroom_bytes", "cpu_overcommit_ratio",
                 "kernel_release", "numad_installed"}}

Text and Markdown show the same content: a one-screen summary (host, per-node capacity, bound
memory, headroom and a bar), then the findings grouped by severity, then the counts.  Both are
built from plain strings, not rich's layout engine, so thousands of findings render in tens of
milliseconds.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any

from numaguard.core.capacity import Reserve, hugepages_reserved
from numaguard.core.findings import Finding, Fix, Severity
from numaguard.core.rules import AuditResult, NodeSummary, all_rules
from numaguard.core.rules.common import LIST_LIMIT, names_text
from numaguard.core.verdict import AtRisk, Group, fix_key
from numaguard.cpuset import format_bitmap
from numaguard.display import printable
from numaguard.report import term
from numaguard.report.jsonout import host_to_dict, versioned
from numaguard.units import format_bytes

SEVERITIES = (Severity.CRITICAL, Severity.WARNING, Severity.INFO)
BAR_CELLS = 10
#: text output lists at most this many guests per finding (JSON and Markdown list all)
TEXT_GUESTS = LIST_LIMIT


# -- shared helpers ---------------------------------------------------------------------------

def counts(result: AuditResult) -> dict[str, int]:
    out = {s.label: 0 for s in SEVERITIES}
    for f in result.findings:
        out[f.severity.label] += 1
    return out


def counts_line(result: AuditResult) -> str:
    c = counts(result)
    return ", ".join(f"{c[s.label]} {s.label}" for s in SEVERITIES)


def reserve_text(reserve: Reserve) -> str:
    if reserve.fixed is not None:
        return format_bytes(reserve.fixed)
    share = f"{reserve.share * 100:g}% of MemTotal"
    return f"max({format_bytes(reserve.floor, precision=0)}, {share})" if reserve.floor else share


def _rule_names() -> dict[str, str]:
    return {r.id: r.name for r in all_rules()}


def _ids(ids: tuple[int, ...] | frozenset[int] | list[int]) -> str:
    ids = list(ids)
    if not ids:
        return "-"
    # an ordered tuple (a fill order) keeps its order; a set is printed like a nodeset
    return format_bitmap(ids) if ids == sorted(ids) else ",".join(map(str, ids))


def bar(pledged: int, capacity: int, cells: int = BAR_CELLS) -> tuple[str, str]:
    """``("[██████░░░░]", "60%")``: bound memory as a share of capacity."""
    if capacity <= 0:
        return "[" + ("█" if pledged > 0 else "░") * cells + "]", "n/a"
    ratio = pledged / capacity
    filled = min(cells, max(0, round(ratio * cells)))
    if pledged > 0 and filled == 0:
        filled = 1
    return "[" + "█" * filled + "░" * (cells - filled) + "]", f"{ratio:.0%}"


def node_status(n: NodeSummary, min_headroom: int) -> str:
    """``over`` (bound demand does not fit), ``low`` (bound guests leave less than
    --min-headroom), ``ok``."""
    if n.headroom < 0:
        return "over"
    if n.headroom < n.capacity and n.headroom < min_headroom:
        return "low"
    return "ok"


def _node_rows(result: AuditResult) -> list[dict[str, Any]]:
    rows = []
    for n in result.nodes:
        node = result.host.node(n.id)
        rows.append({
            "id": n.id,
            "capacity_bytes": n.capacity,
            "pledged_strict_bytes": n.pledged_strict,
            "bound_demand_bytes": n.bound,
            "headroom_bytes": n.headroom,
            "mem_total_bytes": node.mem_total,
            "mem_free_bytes": node.mem_free,
            "hugepages_reserved_bytes": hugepages_reserved(node),
            "host_reserve_bytes": result.options.host_reserve.of(node),
        })
    return rows


def _host_lines(result: AuditResult) -> list[str]:
    host = result.host
    ncpus = sum(len(n.cpus) for n in host.nodes)
    free = f" ({format_bytes(host.mem_free)} free)" if host.mem_free is not None else ""
    name = f" {host.name}" if host.name else ""
    if host.swap_total is None:
        swap = "swap unknown"
    else:
        swap = f"swap {format_bytes(host.swap_free)} free of {format_bytes(host.swap_total)}"
    balancing = {None: "unknown", True: "on", False: "off"}[host.numa_balancing]
    o = result.options
    kernel = o.kernel_release or "unknown"
    host_line = (f"Host{name}: {len(host.nodes)} NUMA nodes, {ncpus} CPUs, "
                 f"{format_bytes(host.mem_total)} memory{free}, {swap}, "
                 f"numa_balancing {balancing}, kernel {kernel}")
    audit_line = (f"Audit: {len(result.guests)} guests; host reserve "
                  f"{reserve_text(o.host_reserve)} per node; min headroom "
                  f"{format_bytes(o.min_headroom)}; vCPUs per thread up to "
                  f"{o.cpu_overcommit_ratio:g}")
    return [printable(host_line), audit_line]


NODE_HEADERS = [("Node", "right"), ("MemTotal", "right"), ("Free", "right"),
                ("Hugepages", "right"), ("Reserve", "right"), ("Capacity", "right"),
                ("Bound (strict)", "right"), ("Headroom", "right"), ("Bound / capacity", "left"),
                ("Status", "left")]


def _node_cells(result: AuditResult) -> list[tuple[list[str], str, str, str]]:
    """Per node: the formatted numeric cells, the bar, its percentage and the status."""
    out = []
    for n, row in zip(result.nodes, _node_rows(result), strict=True):
        b, pct = bar(n.bound, n.capacity)
        out.append(([str(n.id), format_bytes(row["mem_total_bytes"]),
                     format_bytes(row["mem_free_bytes"]),
                     format_bytes(row["hugepages_reserved_bytes"]),
                     format_bytes(row["host_reserve_bytes"]), format_bytes(n.capacity),
                     format_bytes(n.bound), format_bytes(n.headroom)],
                    b, pct, node_status(n, result.options.min_headroom)))
    return out


_NEEDS_QUOTES = re.compile(r"[\s,=]").search


def _value_text(key: str, v: Any) -> str:
    """One evidence value for people: bytes with units, node sets as nodesets."""
    t = type(v)  # fast paths for the common plain values (same text as below)
    if t is str:
        return f'"{v}"' if not v or _NEEDS_QUOTES(v) else v
    if t is int:
        return format_bytes(v) if key.endswith("_bytes") else str(v)
    if key.endswith("_bytes"):
        if isinstance(v, int) and not isinstance(v, bool):
            return format_bytes(v)
        if isinstance(v, Mapping):
            return "{" + ", ".join(f"{_key_text(k)}: {_value_text(key, x)}"
                                   for k, x in v.items()) + "}"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(_value_text(key, x) for x in v) + "]"
    if v is None:
        return "unknown"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Enum):
        return str(v.value) if not isinstance(v, Severity) else v.label
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (set, frozenset)):
        return _ids(sorted(v)) if all(isinstance(x, int) for x in v) else \
            ",".join(sorted(map(str, v)))
    if isinstance(v, (list, tuple)):
        if all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return _ids(tuple(v))
        return "[" + ", ".join(_value_text("", x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_key_text(k)}: {_value_text(str(k), x)}"
                               for k, x in v.items()) + "}"
    s = str(v)
    return f'"{s}"' if not s or _NEEDS_QUOTES(s) else s


def _key_text(k: Any) -> str:
    if isinstance(k, (set, frozenset)):
        return _ids(sorted(k))
    return str(k)


def evidence_items(evidence: Mapping[str, Any]) -> list[str]:
    """``["demand=12.0 GiB", "nodeset=0-2", …]``: ``_bytes`` keys lose the suffix and show
    units; the JSON keeps the exact keys and byte counts."""
    shown = _SHOWN_KEYS
    items = []
    for k, v in evidence.items():
        key = k if type(k) is str else str(k)
        name = shown.get(key)
        if name is None:
            name = key[:-len("_bytes")] if key.endswith("_bytes") and len(key) > 6 else key
            if len(shown) < 1024:  # evidence keys are a small fixed vocabulary
                shown[key] = name
        items.append(f"{name}={_value_text(key, v)}")
    return items


#: evidence key -> the name shown for it (``demand_bytes`` -> ``demand``), filled as met
_SHOWN_KEYS: dict[str, str] = {}


# -- JSON -------------------------------------------------------------------------------------

def jsonable(v: Any) -> Any:
    """Evidence values as JSON: sets → sorted lists, tuples → lists, ints stay ints."""
    t = type(v)
    if t is str or t is int or v is None or t is bool:  # the common case, first
        return v
    if t is dict:
        return {k if type(k) is str else _json_key(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, Severity):
        return v.label
    if isinstance(v, Enum):
        return jsonable(v.value)
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, Mapping):
        return {_json_key(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (set, frozenset)):
        items = [jsonable(x) for x in v]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: jsonable(getattr(v, f.name)) for f in dataclasses.fields(v)}
    return str(v)


def _json_key(k: Any) -> str:
    if isinstance(k, (set, frozenset)):
        return format_bitmap(sorted(k)) if all(isinstance(x, int) for x in k) else str(k)
    return str(k)


def fix_to_dict(fix: Fix | None) -> dict[str, Any] | None:
    if fix is None:
        return None
    return {
        "guest": fix.guest,
        "mode": fix.mode,
        "nodeset": sorted(fix.nodeset) if fix.nodeset is not None else None,
        "cell": fix.cell,
        "memory_bytes": fix.memory,
        "description": fix.description,
        "command": fix.commands[0] if fix.commands else None,
        "commands": list(fix.commands),
    }


def finding_to_dict(f: Finding, names: Mapping[str, str]) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "name": names.get(f.rule),
        "severity": f.severity.label,
        "guests": list(f.guests),
        "nodes": list(f.nodes),
        "message": f.message,
        "evidence": jsonable(dict(f.evidence)),
        "fix": fix_to_dict(f.fix),
    }


def audit_to_dict(result: AuditResult) -> dict[str, Any]:
    names = _rule_names()
    o = result.options
    return versioned({
        "host": host_to_dict(result.host),
        "guests": [g.name for g in result.guests],
        "nodes": _node_rows(result),
        "findings": [finding_to_dict(f, names) for f in result.findings],
        "groups": _groups_json(result),
        "verdict": _verdict_json(result),
        "orders": [{"name": o.name, "aliases": list(o.aliases)} for o in result.orders],
        **({"live": _live_json(result)} if result.live is not None else {}),
        "summary": counts(result),
        "options": {
            "host_reserve": reserve_text(o.host_reserve),
            "min_headroom_bytes": o.min_headroom,
            "cpu_overcommit_ratio": o.cpu_overcommit_ratio,
            "kernel_release": o.kernel_release,
            "numad_installed": o.numad_installed,
            "random_orders": o.random_orders,
        },
    })


def _live_json(result: AuditResult) -> dict[str, Any]:
    """What the simulation started from on a live host: each running guest's resident bytes
    per node (or why it could not be read); the orders are growth orders over them."""
    assert result.live is not None
    return {"guests": [{"name": g.name, "held_bytes": {str(n): b for n, b in g.per_node},
                        "hugepage_bytes": {str(n): b for n, b in g.hugepages_per_node},
                        "error": g.error} for g in result.live.guests]}


def _groups_json(result: AuditResult) -> list[dict[str, Any]]:
    index = {id(f): i for i, f in enumerate(result.findings)}
    return [{"guest": g.guest, "fix": fix_to_dict(g.fix), "severity": g.severity.label,
             "rules": list(g.rules), "findings": [index[id(f)] for f in g.findings],
             "cleared": None if g.cleared is None else [index[id(f)] for f in g.cleared]}
            for g in result.groups]


def _verdict_json(result: AuditResult) -> list[dict[str, Any]]:
    out = []
    for r in result.at_risk:
        ev = r.finding.evidence
        fault = None if ev.get("constraint") in (None, "global") else ev.get("trigger")
        out.append({"line": risk_line(r), "victim": ev.get("victim"),
                    "trigger": ev.get("trigger"), "constraint": ev.get("constraint"),
                    "guest_at_fault": fault,
                    "change": fix_to_dict(r.group.fix) if r.group else None})
    return out


def audit_json(result: AuditResult) -> str:
    """The document with one top-level key per line and one list item (a finding, a node, a
    group) per line: readable and greppable, and encoded by json's C encoder (``indent=``
    makes json fall back to its Python one, ~3x slower on thousands of findings)."""
    return lines_json(audit_to_dict(result))


def _item_encoder() -> Any:
    """``json.dumps`` for many small documents: the C encoder ``json.dumps`` itself makes per
    call (same separators, ASCII escaping, float repr, ``default`` error), made once —
    ``json.dumps`` builds a new one for each of a 16 x 1,000 audit's ~6,800 list items, a
    sixth of the encoding time.  Without the C accelerator: ``json.dumps``."""
    from json import encoder as json_encoder

    # json.encoder's name for CPython's C encoder (_json.make_encoder), None without it: private,
    # so typeshed leaves it out of json.encoder's stub
    c_make_encoder = getattr(json_encoder, "c_make_encoder", None)
    encode_basestring_ascii = json_encoder.encode_basestring_ascii
    if c_make_encoder is None:
        return json.dumps
    encoder = c_make_encoder(None, json.JSONEncoder().default, encode_basestring_ascii, None,
                             ": ", ", ", False, False, True)
    return lambda item: "".join(encoder(item, 0))


def item_json(item: Any) -> str:
    """One list item of :func:`lines_json` on its own: the same bytes it writes for it."""
    return _item_encoder()(item)


def lines_json(doc: Mapping[str, Any]) -> str:
    dumps = _item_encoder()
    parts = []
    for key, value in doc.items():
        name = json.dumps(key)
        if isinstance(value, list) and value:
            items = ",\n    ".join(dumps(item) for item in value)
            parts.append(f"  {name}: [\n    {items}\n  ]")
        else:
            parts.append(f"  {name}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


# -- text -------------------------------------------------------------------------------------

_SEVERITY_STYLE = {Severity.CRITICAL: "bold red", Severity.WARNING: "bold yellow",
                   Severity.INFO: "bold blue"}
_STATUS_STYLE = {"over": "red", "low": "yellow", "ok": "green"}


def _guests_text(guests: tuple[str, ...]) -> str:
    if not guests:
        return "-"
    if len(guests) <= TEXT_GUESTS:
        return ", ".join(guests)
    return ", ".join(guests[:TEXT_GUESTS]) + \
        f" and {len(guests) - TEXT_GUESTS} more (--format json lists all)"


def wrap(text: str, width: int | None, indent: str = "",
         subsequent: str | None = None) -> list[str]:
    """Prose as lines of at most *width* columns (:func:`numaguard.report.term.wrap`: broken at
    spaces only, so a path, a name or a nodeset is never split); no *width*: one line."""
    if not width:
        return [indent + text]
    return term.wrap(text, width, indent=indent, subsequent=subsequent)


def _command_lines(commands: tuple[str, ...], indent: str) -> list[str]:
    """Commands stand on their own lines and are never split, whatever the width."""
    return [term.command_line(c, indent=indent) for c in commands]


def _finding_text(f: Finding, names: Mapping[str, str], width: int | None = None,
                  fix: bool = True) -> list[str]:
    name = names.get(f.rule)
    head = (f"{f.rule}{' ' + name if name else ''}  guests: {_guests_text(f.guests)}  "
            f"nodes: {_ids(f.nodes)}")
    lines = wrap(head, width, "", "    ")
    lines += wrap(" ".join(f.message.split()), width, "  ")
    ev = evidence_items(f.evidence)
    if ev:
        lines += wrap("evidence: " + "  ".join(ev), width, "  ", "    ")
    if fix and f.fix is not None:
        who = f" ({f.fix.guest})" if tuple(f.guests) != (f.fix.guest,) else ""
        lines += wrap(f"fix{who}: {' '.join(f.fix.description.split())}", width, "  ", "    ")
        lines += _command_lines(f.fix.commands, "    ")
    return [printable(line) for line in lines]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _clears(group: Group) -> str:
    if group.fix is None:
        return ""
    if group.cleared is not None:
        n = len(group.cleared)
        if not n:
            return "; the change alone does not clear these findings"
        return f"; 1 change clears {_plural(n, 'finding')}"
    return f"; 1 change for {_plural(len(group.findings), 'finding')}"


def risk_line(r: AtRisk) -> str:
    """``vm1 — strict on node 0 — bigmem-preferred will be OOM-killed when vm1 grows; 1 change
    clears 4 findings``"""
    f = r.finding
    ev = f.evidence
    clears = _clears(r.group) if r.group is not None else ""
    word = "growth orders" if ev.get("growth") else "start orders"
    if "victim" not in ev:       # memory that cannot be placed at all
        guest = f.guests[0]
        return (f"{guest} — {format_bytes(int(ev['failed_bytes']))} of its memory cannot be "
                f"placed (in {ev['orders_failing']} of {ev['orders_tried']} {word})"
                f"{clears}")
    victim, trigger = str(ev["victim"]), str(ev["trigger"])
    orders = f"{ev['orders_killing']} of {ev['orders_tried']} {word}"
    if ev["constraint"] == "global":
        short = next((x for x in (r.group.findings if r.group else ()) if x.rule == "NG111"
                      and "shortfall_bytes" in x.evidence), None)
        by = f" by {format_bytes(int(short.evidence['shortfall_bytes']))}" if short else ""
        when = ("every guest grows to its full size from now" if ev.get("growth") else
                "every guest touches its memory")
        return (f"host — out of memory{by} — {victim} will be OOM-killed when {when} "
                f"({orders}){clears}")
    binding = str(ev.get("binding", f"bound to {_ids(f.nodes)}"))
    if victim == trigger:
        return (f"{victim} — {binding} — {victim} will be OOM-killed as it grows ({orders})"
                f"{clears}")
    return (f"{trigger} — {binding} — {victim} will be OOM-killed when {trigger} grows "
            f"({orders}){clears}")


def verdict_lines(result: AuditResult, width: int | None = None) -> list[str]:
    """The verdict: one line per guest at risk (and the change that clears it), then one line
    of counts.  The first line names the guest that dies and the guest at fault."""
    risks = result.at_risk
    lines: list[str] = []
    shown_fixes: set[int] = set()
    for r in risks[:TEXT_GUESTS]:
        lines += [printable(x) for x in wrap(risk_line(r), width, "", "    ")]
        if r.group is not None and r.group.fix is not None and id(r.group) not in shown_fixes:
            shown_fixes.add(id(r.group))
            lines += [printable(x) for x in _command_lines(r.group.fix.commands, "    ")]
    if len(risks) > TEXT_GUESTS:
        lines.append(f"… and {len(risks) - TEXT_GUESTS} more at risk (--format json lists all)")
    n_orders = len(result.orders)
    if not n_orders:
        sim = "not simulated (NG110 not run)"
    elif result.live is not None:
        names = {g.name for g in result.guests}
        running = sum(1 for g in result.live.guests if g.name in names)
        sim = (f"simulated: every guest growing to its full size from what the "
               f"{_plural(running, 'running guest')} hold now, in "
               f"{_plural(n_orders, 'growth order')}")
    else:
        sim = ("simulated: every guest touching all its memory in "
               f"{_plural(n_orders, 'start order')}")
    victims = sorted({str(r.finding.evidence.get("victim", r.finding.guests[0]))
                      for r in risks})
    if victims:
        head = f"Verdict: {_plural(len(victims), 'guest')} at risk ({names_text(victims)})"
    else:
        worst = result.worst()
        head = ("Verdict: no OOM kill predicted" if worst is None or
                worst < Severity.CRITICAL else "Verdict: no OOM kill predicted, but critical "
                "findings")
    lines += wrap(f"{head}; {sim}; {counts_line(result)}", width, "", "    ")
    return [printable(line) for line in lines]


def _group_text(group: Group, names: Mapping[str, str], width: int | None) -> list[str]:
    if group.fix is None or len(group.findings) == 1:
        lines: list[str] = []
        for f in group.findings:
            lines += _finding_text(f, names, width)
        return lines
    fix = group.fix
    if group.cleared is not None:
        gone = sorted({f.rule for f in group.cleared})
        what = (f"clears {', '.join(gone)} (re-audited with the change)" if gone else
                f"for {', '.join(group.rules)} (a re-audit with it still reports them)")
    else:
        what = f"one change for {', '.join(group.rules)}"
    lines = wrap(f"{fix.guest}: {' '.join(fix.description.split())} — {what}", width,
                 "", "    ")
    lines += _command_lines(fix.commands, "    ")
    key = fix_key(fix)
    for f in group.findings:   # a finding with a fix of its own (NG106's swap) shows it too
        lines += ["  " + x for x in _finding_text(f, names, width and width - 2,
                                                  fix=fix_key(f.fix) != key)]
    return [printable(line) for line in lines]


def audit_text(result: AuditResult, *, width: int | None = None, color: bool = False,
               summary: bool = False) -> str:
    """The verdict first (who dies, who is at fault, the change), then the host and per-node
    table, then every finding grouped by the change that clears it.  *summary*: the verdict
    and the table only."""
    rows: list[list[str]] = []
    for cells, b, pct, status in _node_cells(result):
        style = _STATUS_STYLE[status]
        rows.append([*cells, term.styled(f"{b} {pct:>4}", style, color),
                     term.styled(status, style, color)])
    columns = [term.Column(h, j, key=(h == "Node")) for h, j in NODE_HEADERS]
    rendered = term.Grid("Bound memory per node (capacity = MemTotal - hugepages - reserve)",
                         columns, rows).render(width, color)
    out = ["\n".join(verdict_lines(result, width)), "\n\n",
           "\n".join(x for line in _host_lines(result) for x in wrap(line, width, "", "    ")),
           "\n\n",
           "\n".join(line.rstrip() for line in rendered.splitlines()), "\n"]
    if summary:
        return "".join(out)

    names = _rule_names()
    by_sev: dict[Severity, list[Group]] = {s: [] for s in SEVERITIES}
    for g in result.groups:
        by_sev[g.severity].append(g)
    for sev in SEVERITIES:
        if not by_sev[sev]:
            continue
        n = sum(len(g.findings) for g in by_sev[sev])
        heading = f"{sev.name} ({_plural(n, 'finding')}, {_plural(len(by_sev[sev]), 'change')})"
        out.append("\n" + term.paint(heading, _SEVERITY_STYLE[sev] if color else None) + "\n")
        blocks = ["\n".join(_group_text(g, names, width)) for g in by_sev[sev]]
        out.append("\n\n".join(blocks) + "\n")
    if not result.findings:
        out.append("\nNo findings.\n")
    out.append("\n" + counts_line(result) + "\n")
    return "".join(out)


# -- Markdown ---------------------------------------------------------------------------------

# always special: \ ` * [ ] < > | ~ ; "_" only at a word boundary (GFM ignores intraword "_")
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_MD_LINE_START = re.compile(r"^([#+\-=])|^(\d+)([.)])")


@functools.lru_cache(maxsize=4096)  # guest names and descriptions repeat across findings
def md_escape(text: str) -> str:
    """Text safe in GitHub-flavoured Markdown as one line: a paragraph, a list item or a
    table cell (no emphasis, links, HTML, code or table breaks from the data)."""
    escaped = _MD_SPECIAL.sub(r"\\\1", printable(" ".join(str(text).split())))
    if escaped[:1] in ("#", "+", "-", "=") or escaped[:1].isdigit():
        escaped = _MD_LINE_START.sub(
            lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", escaped)
    return escaped


def md_code(text: str) -> str:
    """An inline code span holding *text* verbatim (whatever backticks it contains)."""
    text = printable(" ".join(str(text).split()))
    if "`" not in text:
        return f"`{text}`"
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_finding(f: Finding, names: Mapping[str, str]) -> list[str]:
    name = names.get(f.rule)
    who = ", ".join(f.guests[:3]) + (f" and {len(f.guests) - 3} more" if len(f.guests) > 3
                                     else "")
    title = f"{f.rule}{' ' + name if name else ''}" + (f": {who}" if who else "")
    lines = [f"### {md_escape(title)}", "", md_escape(f.message), "",
             f"- **Severity:** {f.severity.label}",
             f"- **Guests:** {', '.join(md_escape(g) for g in f.guests) or '-'}",
             f"- **Nodes:** {_ids(f.nodes)}"]
    ev = evidence_items(f.evidence)
    if ev:
        lines.append("- **Evidence:** " + ", ".join(md_code(e) for e in ev))
    if f.fix is not None:
        for_guest = f" ({md_escape(f.fix.guest)})" if tuple(f.guests) != (f.fix.guest,) else ""
        lines.append(f"- **Fix{for_guest}:** {md_escape(f.fix.description)}")
        if f.fix.commands:
            lines += ["", "  ```sh", *(f"  {printable(c)}" for c in f.fix.commands), "  ```"]
    lines.append("")
    return lines


def audit_markdown(result: AuditResult) -> str:
    lines = ["# numaguard audit", ""]
    lines += [md_escape(line) + "  " for line in _host_lines(result)]
    lines[-1] = lines[-1].rstrip()
    lines += ["", f"**Result: {counts_line(result)}**", ""]
    lines.append("| " + " | ".join(h for h, _ in NODE_HEADERS) + " |")
    lines.append("|" + "|".join("---:" if j == "right" else "---" for _, j in NODE_HEADERS)
                 + "|")
    for cells, b, pct, status in _node_cells(result):
        lines.append("| " + " | ".join([*cells, f"`{b}` {pct}", status]) + " |")
    lines.append("")
    names = _rule_names()
    for sev in SEVERITIES:
        group = [f for f in result.findings if f.severity is sev]
        if not group:
            continue
        lines += [f"## {sev.name.capitalize()} ({len(group)})", ""]
        for f in group:
            lines += _md_finding(f, names)
    if not result.findings:
        lines += ["No findings.", ""]
    return "\n".join(lines).rstrip("\n") + "\n"
