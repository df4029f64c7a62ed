"""``numaguard audit --nagios``: the audit as a monitoring plugin (Nagios, Icinga, Naemon, …).

The contract is the Monitoring Plugins Development Guidelines
(https://www.monitoring-plugins.org/doc/guidelines.html: "Plugin Return Codes", "Plugin Output
for Nagios", "Performance data"), which Nagios Core and Icinga 2 ("Service Monitoring: Plugin
API") both read:

* one status line on **stdout**, ``SERVICE STATUS - text | perfdata``;
* the exit status is the state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.  The worst finding
  decides (critical -> CRITICAL, warning -> WARNING, info or none -> OK); ``--fail-on`` plays no
  part.  Bad input, an unreadable source, a bad option and numaguard's own bugs are UNKNOWN
  (exit 3, ``NUMAGUARD UNKNOWN - <the error>``), printed by the CLI's error boundary
  (:func:`unknown`);
* performance data, after the ``|``: ``'label'=value[UOM];[warn];[crit];[min];[max]``, one per
  NUMA node: ``'node0_headroom'=<bytes>B;<min headroom>:;0:;;<capacity>``.  The value is the
  audit's headroom of the node (its capacity minus the memory bound to it,
  :class:`~numaguard.core.rules.NodeSummary`, negative when over-committed), in bytes (UOM
  ``B``).  Thresholds are in the guidelines' range format, where ``N:`` alerts below N: WARNING
  under ``--min-headroom``, CRITICAL under 0; the maximum is the node's capacity.  Labels are
  single-quoted (a ``'`` inside is doubled, as the guidelines say).

The text stays short (at most :data:`MAX_TEXT` characters, it is what a pager shows): the counts,
then the audit's first verdict line when the simulator predicts a kill (``vm1 — strict on node 0
— bigmem-preferred will be OOM-killed when vm1 grows …``), else the rule and guests of the first
critical or warning finding.  Everything from the data goes
through :func:`~numaguard.display.printable`, and a ``|`` in a guest name is written ``\\x7c``
so it cannot start the performance data early.
"""

from __future__ import annotations

from numaguard.core.findings import Severity
from numaguard.core.rules import AuditResult
from numaguard.display import printable

SERVICE = "NUMAGUARD"
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
#: the longest status text before the performance data
MAX_TEXT = 200


def _text(value: str) -> str:
    return printable(value).replace("|", "\\x7c")


def _short(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def label(name: str) -> str:
    """A performance-data label, quoted: ``'node0_headroom'`` (``'`` doubled)."""
    return "'" + printable(name).replace("'", "''") + "'"


def perfdata(result: AuditResult) -> str:
    warn = result.options.min_headroom
    return " ".join(f"{label(f'node{n.id}_headroom')}={n.headroom}B;{warn}:;0:;;{n.capacity}"
                    for n in result.nodes)


def nagios_status(result: AuditResult) -> tuple[str, int]:
    """(the status line with its newline, the exit status) for *result*."""
    worst = result.worst()
    state = {Severity.CRITICAL: CRITICAL, Severity.WARNING: WARNING}.get(worst, OK) \
        if worst is not None else OK
    counts = {s: sum(1 for f in result.findings if f.severity is s) for s in Severity}
    text = (f"{counts[Severity.CRITICAL]} critical, {counts[Severity.WARNING]} warning, "
            f"{counts[Severity.INFO]} info")
    first = next((f for f in result.findings if f.severity >= Severity.WARNING), None)
    risks = result.at_risk
    if risks:   # the verdict's first line: who dies, and the guest at fault
        from numaguard.report.audit import risk_line

        text += f"; {risk_line(risks[0])}"
    elif first is not None:
        who = ", ".join(first.guests) if first.guests else \
            "node " + ",".join(str(n) for n in first.nodes) if first.nodes else "the host"
        text += f"; {first.rule} {first.severity.label}: {who}"
    elif not result.findings:
        text = f"no findings ({len(result.guests)} guests, {len(result.nodes)} nodes)"
    line = f"{SERVICE} {STATES[state]} - {_short(_text(text))}"
    data = perfdata(result)
    return (f"{line} | {data}\n" if data else f"{line}\n"), state


def unknown(message: str) -> str:
    """The UNKNOWN status line for an error (several problems joined on the one line)."""
    problems = [p for p in message.splitlines() if p.strip()] or [message]
    return f"{SERVICE} {STATES[UNKNOWN]} - {_text('; '.join(problems))}\n"
