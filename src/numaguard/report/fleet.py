"""A fleet run (:mod:`numaguard.fleet`) as text, JSON and JUnit XML.

* text: one table, a row per host (host, nodes, guests, critical, warning, worst finding,
  status), in the order the hosts were given, and a line of totals;
* JSON: one document, ``schema_version`` first (:func:`numaguard.report.jsonout.versioned`),
  ``fleet`` (totals, deadline, workers), then ``hosts``, one per line: source, status, error,
  seconds, problems, notes and ``audit``, the host's document as ``numaguard audit --format
  json`` prints it for that host alone (:func:`numaguard.report.audit.audit_to_dict`);
* JUnit XML for CI: one ``<testsuite>`` with one ``<testcase>`` per host; a host with findings
  at or above ``--fail-on`` has a ``<failure>``, one that could not be audited in full (error,
  timeout, incomplete) an ``<error>``.  The layout is the one Jenkins' JUnit plugin and GitLab
  read (the ``testsuites/testsuite/testcase`` elements and the ``tests``, ``failures``,
  ``errors``, ``time`` attributes of Ant's JUnit task, as in
  https://github.com/jenkinsci/junit-plugin ``src/main/resources/hudson/tasks/junit/types``);
  every text passes through :func:`numaguard.display.printable`, so no control character
  reaches the XML (XML 1.0 forbids most of them).
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET

from numaguard.display import printable
from numaguard.report import term

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from numaguard.fleet import FleetResult, HostReport

HEADERS = [("Host", "left", "fold"), ("Nodes", "right", "keep"), ("Guests", "right", "keep"),
           ("Critical", "right", "keep"), ("Warning", "right", "keep"),
           ("Worst finding", "left", "fold"), ("Status", "left", "keep")]

_STATUS_STYLE = {"ok": "green", "incomplete": "yellow", "error": "bold red", "timeout": "bold red"}


def totals(result: FleetResult) -> dict[str, Any]:
    by_status = dict.fromkeys(("ok", "incomplete", "error", "timeout"), 0)
    findings = {"critical": 0, "warning": 0, "info": 0}
    for h in result.hosts:
        by_status[h.status] += 1
        for k, n in h.counts.items():
            findings[k] += n
    return {"hosts": len(result.hosts), **by_status,
            "failing": sum(result.failing(h) for h in result.hosts), "findings": findings}


def _cell(value: int | None) -> str:
    return "-" if value is None else str(value)


def fleet_text(result: FleetResult, *, width: int | None = None, color: bool = False) -> str:
    rows = []
    for h in result.hosts:
        critical = h.counts.get("critical")
        rows.append([
            printable(h.source), _cell(h.nodes), _cell(h.guests),
            term.styled(_cell(critical), "bold red" if critical else None, color),
            _cell(h.counts.get("warning")),
            h.worst_finding or ("-" if h.status in ("ok", "incomplete") else h.error or "-"),
            term.styled(h.status, _STATUS_STYLE[h.status], color)])
    columns = [term.Column(name, justify, overflow, key=(name == "Host"))
               for name, justify, overflow in HEADERS]
    grid = term.Grid(f"Fleet audit: {len(result.hosts)} hosts", columns, rows)
    rendered = "\n".join(line.rstrip() for line in grid.render(width, color).splitlines())
    return rendered + "\n" + summary_line(result) + "\n"


def summary_line(result: FleetResult) -> str:
    t = totals(result)
    statuses = ", ".join(f"{t[s]} {s}" for s in ("ok", "incomplete", "error", "timeout")
                         if t[s] or s == "ok")
    f = t["findings"]
    at = "" if result.fail_on == "never" else (
        f"; {t['failing']} with findings at or above {result.fail_on}")
    return (f"{t['hosts']} hosts: {statuses}; {f['critical']} critical, {f['warning']} "
            f"warning findings{at}; {result.seconds:.1f} s, {result.workers} workers, "
            f"deadline {result.deadline:g} s per host")


def problem_lines(result: FleetResult) -> list[str]:
    """For stderr: each host that could not be audited in full, one line each (and each
    domain it could not read), then what that means for the exit code."""
    lines: list[str] = []
    for h in result.hosts:
        where = printable(h.source)
        lines.extend(f"numaguard audit: {where}: {note}" for note in h.notes)
        if h.status in ("error", "timeout"):
            error = h.error or ""
            named = error.startswith(where) and error[len(where):len(where) + 1] in ":/"
            # an error that names its source (or a file in it) already says where
            lines.append(f"numaguard audit: {error}" if named and len(error) > len(where)
                         else f"numaguard audit: {where}: {error}")
        lines.extend(f"numaguard audit: {where}: {p}" for p in h.problems)
    failed = [h for h in result.hosts if h.failed]
    if failed:
        lines.append(f"numaguard audit: {len(failed)} of {len(result.hosts)} hosts could not "
                     "be audited in full; the output covers the others (exit 2)")
    return lines


# -- JSON ---------------------------------------------------------------------------------------

def host_to_dict(h: HostReport) -> dict[str, Any]:
    """The host's line of the document (its audit decoded again: for callers that want the
    values; :func:`fleet_json` splices the worker's text instead)."""
    return {**_host_fields(h), "audit": None if h.document is None else json.loads(h.document)}


def _host_fields(h: HostReport) -> dict[str, Any]:
    return {"source": h.source, "status": h.status, "error": h.error,
            "seconds": None if h.seconds is None else round(h.seconds, 6),
            "problems": list(h.problems), "notes": list(h.notes)}


def _host_json(h: HostReport) -> str:
    """``item_json(host_to_dict(h))`` without decoding and encoding the audit again: the
    fields, then ``"audit"`` (the last key) with the text the worker encoded."""
    from numaguard.report.audit import item_json

    fields = item_json(_host_fields(h))
    return f"{fields[:-1]}, \"audit\": {h.document or 'null'}}}"


def fleet_to_dict(result: FleetResult) -> dict[str, Any]:
    return _fleet_doc(result, [host_to_dict(h) for h in result.hosts])


def _fleet_doc(result: FleetResult, hosts: list[Any]) -> dict[str, Any]:
    from numaguard.report.jsonout import versioned

    return versioned({
        "fleet": {**totals(result), "fail_on": result.fail_on,
                  "deadline_seconds": result.deadline, "workers": result.workers,
                  "seconds": round(result.seconds, 6), "exit_code": result.exit_code()},
        "hosts": hosts,
    })


def fleet_json(result: FleetResult) -> str:
    """One document: top-level keys one per line, each host on a line of its own (the bytes
    of ``lines_json(fleet_to_dict(result))``, with each host's audit spliced in as its worker
    encoded it)."""
    from numaguard.report.audit import item_json, lines_json

    marker = "\x00host\x00"          # no source, error or note can hold a NUL: see printable
    text = lines_json(_fleet_doc(result, [marker] * len(result.hosts)))
    pieces = text.split(item_json(marker))
    out = [pieces[0]]
    for h, rest in zip(result.hosts, pieces[1:], strict=True):
        out += [_host_json(h), rest]
    return "".join(out)


# -- JUnit XML ----------------------------------------------------------------------------------

def fleet_junit(result: FleetResult, *, now: float | None = None) -> bytes:
    """The JUnit XML document (UTF-8 bytes with its declaration)."""
    t = totals(result)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() if now is None else now))
    attrs = {"name": "numaguard audit", "tests": str(t["hosts"]),
             "failures": str(sum(result.failing(h) and not h.failed for h in result.hosts)),
             "errors": str(sum(h.failed for h in result.hosts)), "skipped": "0",
             "time": f"{result.seconds:.3f}"}
    root = ET.Element("testsuites", attrs)
    suite = ET.SubElement(root, "testsuite", {**attrs, "timestamp": stamp})
    for h in result.hosts:
        case = ET.SubElement(suite, "testcase", {
            "classname": "numaguard.audit", "name": printable(h.source),
            "time": f"{h.seconds or 0:.3f}"})
        if h.failed:
            message = h.error if h.status in ("error", "timeout") else (
                f"input incomplete: {len(h.problems)} domain definition"
                f"{'s' if len(h.problems) != 1 else ''} could not be read")
            error = ET.SubElement(case, "error", {"type": h.status, "message": message or ""})
            error.text = "\n".join(h.problems) or None
        elif result.failing(h):
            floor = _floor(result.fail_on)
            at = [line for sev, line in h.findings if sev >= floor]
            failure = ET.SubElement(case, "failure", {
                "type": "findings",
                "message": f"{len(at)} finding{'s' if len(at) != 1 else ''} at or above "
                           f"{result.fail_on}; worst: {h.worst_finding}"})
            failure.text = "\n".join(at)
        if h.findings:
            ET.SubElement(case, "system-out").text = "\n".join(line for _, line in h.findings)
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def _floor(fail_on: str) -> int:
    from numaguard.core.findings import Severity

    return int(Severity.parse(fail_on))
