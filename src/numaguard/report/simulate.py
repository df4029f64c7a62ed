"""Renderers of ``numaguard simulate``: JSON (a contract) and text.

JSON contract of one run (keys never change meaning; new keys may be added)::

    {"scenario": {"name", "source", "mode"},
     "steps": [{"index", "name", "label", "action", "policy", "nodes", "cpu_node",
                "cpuset_mems", "hugepage_size_bytes", "requested_bytes",
                "placed": {"<node>": bytes},            # fill order; negative on "free" steps
                "swapped_bytes", "failed_bytes", "oom": [<oom event>],
                "free_after": {"<node>": bytes}, "swap_used_after_bytes"}],
     "allocations": [{"name", "requested_bytes", "placed": {"<node>": bytes},
                      "swapped_bytes", "failed_bytes", "oom_killed",
                      "hugepages": {"<node>": bytes}}],
     "nodes": [{"id", "free_bytes", "free_before_bytes", "total_bytes", "watermark_min_bytes",
                "watermark_low_bytes", "reclaimable_bytes"}],
     "swap_used_bytes", "swap_free_before_bytes",
     "oom_events": [{"step", "trigger", "victim", "constraint", "nodes", "victim_bytes"}]}

For every ``alloc`` step, ``sum(placed) + swapped_bytes + failed_bytes == requested_bytes``.
``--compare`` gives ``{"compare": {"<mode>": <run>, …}}`` in the order asked; both start with
``"schema_version": 1`` and ``"numaguard_version"``.

The text report fits the terminal width (:mod:`numaguard.report.term`): its tables are drawn
by hand (:class:`~numaguard.report.term.Grid`; rich's layout engine costs about a millisecond per
row, ten seconds for a 10,000-step run, while plain strings take milliseconds), shrink, and
stack into parts repeating the step and task when the nodes do not fit side by side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from numaguard.core.scenario import Run
from numaguard.core.simulate import OomEvent, Policy, SimHost, Step
from numaguard.cpuset import format_bitmap
from numaguard.display import printable
from numaguard.report.term import DEFAULT_WIDTH, GLUE, Column, Grid, paint, paragraph, styled
from numaguard.units import GiB, MiB, format_bytes

_string = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]

# -- JSON ---------------------------------------------------------------------------------------


def _per_node(values: Mapping[int, int]) -> dict[str, int]:
    return {str(n): b for n, b in values.items()}


def _ids(nodes: frozenset[int] | None) -> list[int] | None:
    return None if nodes is None else sorted(nodes)


def event_to_dict(e: OomEvent) -> dict[str, Any]:
    return {"step": e.step, "trigger": e.trigger, "victim": e.victim,
            "constraint": e.constraint, "nodes": list(e.nodes), "victim_bytes": e.victim_bytes}


def run_to_dict(run: Run, *, steps: bool = True) -> dict[str, Any]:
    """The JSON contract of one run (the module docstring); *steps*: with the per-step list
    (else ``[]``)."""
    scenario, result = run.scenario, run.result
    host = scenario.host
    per_step = []
    for sr, step, label in zip(result.steps if steps else (), scenario.steps, scenario.labels,
                               strict=False):
        per_step.append({
            "index": sr.index,
            "name": sr.name,
            "label": label,
            "action": sr.action,
            "policy": step.policy.value if step.action == "alloc" else None,
            "nodes": _ids(step.nodes),
            "cpu_node": step.cpu_node if step.action == "alloc" else None,
            "cpuset_mems": _ids(step.cpuset_mems),
            "hugepage_size_bytes": step.hugepage_size,
            "requested_bytes": sr.requested,
            "placed": _per_node(sr.placed),
            "swapped_bytes": sr.swapped,
            "failed_bytes": sr.failed,
            "oom": [event_to_dict(e) for e in sr.oom],
            "free_after": _per_node(sr.free_after),
            "swap_used_after_bytes": sr.swap_used_after,
        })
    return {
        "scenario": {"name": scenario.name, "source": scenario.source, "mode": run.mode},
        "steps": per_step,
        "allocations": [
            {"name": a.name, "requested_bytes": a.requested, "placed": _per_node(a.placed),
             "swapped_bytes": a.swapped, "failed_bytes": a.failed, "oom_killed": a.oom_killed,
             "hugepages": _per_node(a.hugepages)}
            for a in result.allocations],
        "nodes": [
            {"id": n.id, "free_bytes": result.free[n.id], "free_before_bytes": n.free,
             "total_bytes": n.total, "watermark_min_bytes": n.watermark_min,
             "watermark_low_bytes": n.watermark_low, "reclaimable_bytes": n.reclaimable}
            for n in host.nodes],
        "swap_used_bytes": result.swap_used,
        "swap_free_before_bytes": host.swap_free,
        "oom_events": [event_to_dict(e) for e in result.oom_events],
    }


def simulate_json(runs: Sequence[Run]) -> str:
    """The JSON document of *runs*: ``json.dumps(..., indent=2)`` of :func:`run_to_dict`'s,
    byte for byte, with each run's steps written by :func:`_steps_json` (json's indented
    encoder is pure Python, and a 10,000-step run holds half a million lines)."""
    steps: dict[str, Run] = {}

    def lean(run: Run) -> dict[str, Any]:
        d = run_to_dict(run, steps=False)
        mark = f"\x00steps{len(steps)}\x00"
        steps[mark] = run
        d["steps"] = mark
        return {k: d[k] for k in _RUN_KEYS}

    if len(runs) == 1 and runs[0].mode is None:
        doc: dict[str, Any] = lean(runs[0])
        depth = 1
    else:
        doc = {"compare": {r.mode or "scenario": lean(r) for r in runs}}
        depth = 3
    from numaguard.report.jsonout import versioned

    text = json.dumps(versioned(doc), indent=2) + "\n"
    for mark, run in steps.items():
        # the key before it: a scenario name cannot hold an unescaped quote
        text = text.replace(f'"steps": {json.dumps(mark)}',
                            '"steps": ' + _steps_json(run, "  " * depth), 1)
    return text


_RUN_KEYS = ("scenario", "steps", "allocations", "nodes", "swap_used_bytes",
             "swap_free_before_bytes", "oom_events")


def _enc(value: Any, indent: str) -> str:
    """*value* as ``json.dumps(value, indent=2)`` writes it at *indent* (ints, strings, None,
    booleans, lists and dicts of them; anything else through json itself)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is str:
        return _string(value)
    inner = indent + "  "
    if type(value) is list:
        if not value:
            return "[]"
        return ("[\n" + inner + (",\n" + inner).join(_enc(v, inner) for v in value)
                + "\n" + indent + "]")
    if type(value) is dict and all(type(k) is str for k in value):
        if not value:
            return "{}"
        return ("{\n" + inner + (",\n" + inner).join(
            _string(k) + ": " + _enc(v, inner) for k, v in value.items()) + "\n" + indent + "}")
    return json.dumps(value, indent=2).replace("\n", "\n" + indent)


_ACTION_TEXT = {a: _string(a) for a in ("alloc", "free")}


def _steps_json(run: Run, indent: str) -> str:
    """The ``"steps"`` list of :func:`run_to_dict` as :func:`_enc` writes it at *indent*,
    from the result's recorded rows; the free memory after each step, the same keys every
    step, goes through one %-template."""
    scenario, result = run.scenario, run.result
    rows = result.step_rows()
    if not rows:
        return "[]"
    item = indent + "  "
    key = item + "  "
    ids = result.node_ids
    free_tpl = ("{\n" + ",\n".join(f"{key}  {_string(str(n))}: %d" for n in ids)
                + "\n" + key + "}") if ids else "{}"
    entry = key + "  "
    node_keys = {n: f'{entry}"{n}": ' for n in ids}
    known = node_keys.keys()
    strings: dict[str, str] = {}     # names and labels repeat: encode each once
    policies: dict[tuple, str] = {}  # so do the lines a step's policy writes
    out = []
    for row, step, label in zip(rows, scenario.steps, scenario.labels, strict=False):
        index, name, action, requested, placed, swapped, failed, oom, free, swap = row
        what = (step.action, step.policy, step.nodes, step.cpu_node, step.cpuset_mems,
                step.hugepage_size)
        lines = policies.get(what)
        if lines is None:
            alloc = step.action == "alloc"
            lines = policies[what] = (
                f'{key}"policy": {_string(step.policy.value) if alloc else "null"},\n'
                f'{key}"nodes": {_enc(_ids(step.nodes), key)},\n'
                f'{key}"cpu_node": {step.cpu_node if alloc else "null"},\n'
                f'{key}"cpuset_mems": {_enc(_ids(step.cpuset_mems), key)},\n'
                f'{key}"hugepage_size_bytes": {_enc(step.hugepage_size, key)},\n')
        name_text = strings.get(name)
        if name_text is None:
            name_text = strings[name] = _string(name)
        label_text = strings.get(label)
        if label_text is None:
            label_text = strings[label] = _string(label)
        if placed and placed.keys() <= known:
            placed_text = ("{\n" + ",\n".join([node_keys[n] + str(b) for n, b in placed.items()])
                           + "\n" + key + "}")
        else:
            placed_text = _enc(_per_node(placed), key)
        out.append(
            f'{item}{{\n{key}"index": {index},\n{key}"name": {name_text},\n'
            f'{key}"label": {label_text},\n'
            f'{key}"action": {_ACTION_TEXT.get(action) or _string(action)},\n'
            f'{lines}'
            f'{key}"requested_bytes": {requested},\n'
            f'{key}"placed": {placed_text},\n'
            f'{key}"swapped_bytes": {swapped},\n{key}"failed_bytes": {failed},\n'
            f'{key}"oom": {_enc([event_to_dict(e) for e in oom], key) if oom else "[]"},\n'
            f'{key}"free_after": {free_tpl % free},\n'
            f'{key}"swap_used_after_bytes": {swap}\n{item}}}')
    return "[\n" + ",\n".join(out) + "\n" + indent + "]"


# -- text ---------------------------------------------------------------------------------------

def size_text(n: int, *, dash: bool = True) -> str:
    """GiB with two decimals, MiB below 1 GiB; ``-`` for zero."""
    if n == 0 and dash:
        return "-"
    if abs(n) >= GiB:
        return f"{n / GiB:.2f} GiB"
    if abs(n) >= MiB:
        return f"{n / MiB:.1f} MiB"
    return format_bytes(n)


def _size_cell(n: int, *, dash: bool = True) -> str:
    """:func:`size_text` that never wraps between the number and its unit."""
    return size_text(n, dash=dash).replace(" ", GLUE)


def policy_text(step: Step) -> str:
    """``bind 0-2, cpu node 0, mems 0-2`` — how a step allocates (words that belong together
    glued with :data:`~numaguard.report.term.GLUE`, printed as spaces)."""
    if step.action != "alloc":
        return "free"
    p = step.policy
    parts = [p.value if step.nodes is None or p is Policy.DEFAULT
             else f"{p.value}{GLUE}{format_bitmap(step.nodes)}"]
    parts.append(f"cpu{GLUE}node{GLUE}{step.cpu_node}")
    if step.cpuset_mems is not None:
        parts.append(f"mems{GLUE}{format_bitmap(step.cpuset_mems)}")
    if step.hugepage_size:
        size = format_bytes(step.hugepage_size, precision=0).replace(" ", GLUE)
        parts.append(f"{size}{GLUE}pages")
    return ", ".join(parts)


def event_text(e: OomEvent, labels: Sequence[str]) -> str:
    who = printable(labels[e.step] if e.step < len(labels) else e.trigger)
    self_kill = " (the task that asked)" if e.victim == e.trigger else ""
    return (f"OOM kill at step {e.step} ({who}): killed {printable(e.victim)}{self_kill}, "
            f"{_size_cell(e.victim_bytes, dash=False)} freed; constraint {e.constraint}, "
            f"nodes {format_bitmap(e.nodes) if e.nodes else '-'}")


def _host_line(name: str, host: SimHost, mode: str | None = None) -> str:
    total = sum(n.total or 0 for n in host.nodes)
    free = sum(n.free for n in host.nodes)
    how = f" as {mode}" if mode else ""
    return (f"Scenario {printable(name)}{how}: {len(host.nodes)} NUMA nodes, "
            f"{_size_cell(total, dash=False)} memory, {_size_cell(free, dash=False)} free, "
            f"swap {_size_cell(host.swap_free, dash=False)} free")


def _hugepages_text(pools: Mapping[int, int]) -> str:
    parts = [f"{format_bytes(size, precision=0).replace(' ', GLUE)}: {count}"
             for size, count in sorted(pools.items()) if count]
    return ", ".join(parts) or "-"


def _right(header: str) -> Column:
    return Column(header, "right")


#: the step and the task: repeated in every part of a table too wide for the terminal
_TASK = Column("Task", overflow="fold", key=True, floor=16)


def _node_table(host: SimHost, title: str) -> Grid:
    rows = []
    for n in host.nodes:
        order = host.fallback.get(n.id)
        rows.append([str(n.id), size_text(n.total or 0), size_text(n.free),
                     size_text(n.watermark_min), size_text(n.watermark_low),
                     size_text(n.reclaimable), _hugepages_text(n.hugepages),
                     " ".join(map(str, order)) if order else "-"])
    return Grid(title, [Column("Node", "right", key=True), _right("Total"), _right("Free"),
                        _right("Min wmark"), _right("Low wmark"), _right("Page cache"),
                        Column("Hugepages free", overflow="wrap"),
                        Column("Fallback order", overflow="wrap")], rows)


def _steps_table(run: Run, color: bool) -> Grid:
    scenario, result = run.scenario, run.result
    node_ids = [n.id for n in scenario.host.nodes]
    columns = [Column("#", "right", key=True), _TASK,
               Column("How", overflow="wrap", floor=12), _right("Requested")]
    columns += [_right(f"Node{GLUE}{n}") for n in node_ids]
    columns += [_right("Swapped"), _right("Failed"),
                Column("OOM kill", overflow="wrap", floor=12)]
    rows = []
    for sr, step, label in zip(result.steps, scenario.steps, scenario.labels, strict=False):
        requested = size_text(sr.requested) if sr.action == "alloc" else (
            "all" if step.size is None else size_text(step.size))
        cells: list[Any] = [str(sr.index), printable(label), policy_text(step), requested]
        cells += [size_text(sr.placed.get(n, 0)) for n in node_ids]
        cells.append(styled(size_text(sr.swapped), "yellow" if sr.swapped else None, color))
        cells.append(styled(size_text(sr.failed), "bold red" if sr.failed else None, color))
        kills = ", ".join(f"{printable(e.victim)} ({e.constraint})" for e in sr.oom) or "-"
        cells.append(styled(kills, "bold red" if sr.oom else None, color))
        rows.append(cells)
    return Grid("Steps: bytes each step placed per node (negative: freed)", columns, rows)


def _tasks_table(run: Run, color: bool) -> Grid:
    scenario, result = run.scenario, run.result
    node_ids = [n.id for n in scenario.host.nodes]
    columns = [_TASK, _right("Requested")]
    columns += [_right(f"Node{GLUE}{n}") for n in node_ids]
    columns += [_right("Swapped"), _right("Failed"), Column("Status")]
    rows = []
    for a in result.allocations:
        on_node = {n: a.placed.get(n, 0) + a.hugepages.get(n, 0) for n in node_ids}
        if a.oom_killed:
            status = styled("OOM-killed", "bold red", color)
        elif a.failed:
            status = styled("allocation failed", "bold red", color)
        elif a.swapped:
            status = styled("swapping", "yellow", color)
        else:
            status = styled("ok", "green", color)
        rows.append([printable(a.name), size_text(a.requested),
                     *(size_text(on_node[n]) for n in node_ids),
                     size_text(a.swapped), size_text(a.failed), status])
    return Grid("Tasks at the end (hugepages included)", columns, rows)


def _free_table(run: Run) -> Grid:
    rows = []
    for n in run.scenario.host.nodes:
        after = run.result.free[n.id]
        rows.append([str(n.id), size_text(n.free, dash=False), size_text(after, dash=False),
                     size_text(n.free - after), size_text(after - n.watermark_low, dash=False)])
    return Grid("Nodes at the end", [Column("Node", "right", key=True), _right("Free before"),
                                     _right("Free after"), _right("Taken"),
                                     _right("Above low wmark")], rows)


def _summary(runs: Sequence[Run], width: int) -> str:
    lines = []
    for run in runs:
        result = run.result
        kills = len(result.oom_events)
        failed = sum(a.failed for a in result.allocations)
        swapped = result.swap_used
        prefix = f"{run.mode}: " if run.mode else ""
        if not kills and not failed:
            verdict = "every byte placed" + (f", {_size_cell(swapped)} in swap" if swapped
                                             else "") + ", no OOM kill"
        else:
            parts = []
            if kills:
                victims = ", ".join(printable(e.victim) for e in result.oom_events)
                parts.append(f"{kills} OOM kill{'s' if kills > 1 else ''} ({victims})")
            if failed:
                parts.append(f"{_size_cell(failed)} could not be placed")
            if swapped:
                parts.append(f"{_size_cell(swapped)} in swap")
            verdict = ", ".join(parts)
        lines.append(paragraph(f"Result: {prefix}{verdict}", width, subsequent="  "))
    return "".join(lines)


def _oom_block(runs: Sequence[Run], color: bool, width: int) -> str:
    lines = []
    for run in runs:
        prefix = f"[{run.mode}] " if run.mode else ""
        for e in run.result.oom_events:
            lines += paragraph(prefix + event_text(e, run.scenario.labels), width,
                               subsequent="  ").splitlines()
    return "".join((paint(line, "bold red") if color else line) + "\n" for line in lines)


def run_text(run: Run, *, width: int | None = None, color: bool = False) -> str:
    """Header, the nodes before, one row per step, the tasks and the nodes at the end, the OOM
    kills (highlighted), a one-line result; fitted to *width* columns (default 80): a step
    or task table whose nodes do not fit side by side stacks into parts that repeat the step
    and the task."""
    width = width or DEFAULT_WIDTH
    out = [paragraph(_host_line(run.scenario.name, run.scenario.host, run.mode), width), "\n"]
    tables = [_node_table(run.scenario.host, "Nodes before the run"),
              _steps_table(run, color), _tasks_table(run, color), _free_table(run)]
    out.append("\n".join(t.render(width, color) for t in tables))
    oom = _oom_block([run], color, width)
    if oom:
        out += ["\n", oom]
    out += ["\n", _summary([run], width)]
    return "".join(out)


def compare_text(runs: Sequence[Run], *, width: int | None = None, color: bool = False) -> str:
    """One side-by-side table: rows task × node (plus swapped / failed / OOM rows and each
    node's free memory at the end), one column per mode; fitted to *width* (default 80)."""
    width = width or DEFAULT_WIDTH
    base = runs[0].scenario
    node_ids = [n.id for n in base.host.nodes]
    columns = [_TASK, Column("", key=True)]
    columns += [Column(r.mode or "scenario", "right", overflow="wrap", floor=10) for r in runs]
    allocations = [{a.name: a for a in r.result.allocations} for r in runs]
    names: list[str] = []
    for r in runs:
        for a in r.result.allocations:
            if a.name not in names:
                names.append(a.name)
    rows: list[list[str]] = []
    sections: list[int] = []
    for name in names:
        per_run = [allocs.get(name) for allocs in allocations]
        requested = max((a.requested for a in per_run if a is not None), default=0)
        label = [name]

        def row(what: str, cells: list[str], label: list[str] = label) -> None:
            rows.append([printable(label.pop()) if label else "", what, *cells])

        row("requested", [_size_cell(requested) for _ in runs])
        for n in node_ids:
            values = [(a.placed.get(n, 0) + a.hugepages.get(n, 0)) if a else 0 for a in per_run]
            if any(values):
                row(f"node {n}", [_size_cell(v) for v in values])
        row("swapped", [styled(_size_cell(a.swapped if a else 0),
                               "yellow" if a and a.swapped else None, color) for a in per_run])
        row("failed", [styled(_size_cell(a.failed if a else 0),
                              "bold red" if a and a.failed else None, color) for a in per_run])
        row("OOM-killed", [styled("yes" if a and a.oom_killed else "no",
                                  "bold red" if a and a.oom_killed else None, color)
                           for a in per_run])
        sections.append(len(rows) - 1)
    for n in node_ids:
        rows.append(["free at end" if n == node_ids[0] else "", f"node {n}",
                     *(_size_cell(r.result.free[n], dash=False) for r in runs)])
    rows.append(["swap used", "", *(_size_cell(r.result.swap_used) for r in runs)])
    kills = []
    for r in runs:
        text = ", ".join(f"{printable(e.victim)} ({e.constraint})"
                         for e in r.result.oom_events) or "-"
        kills.append(styled(text, "bold red" if r.result.oom_events else None, color))
    rows.append(["OOM kills", "", *kills])
    table = Grid("Compare: bytes per task and node at the end of the run", columns, rows,
                 sections)
    out = [paragraph(_host_line(base.name, base.host), width), "\n", table.render(width, color)]
    oom = _oom_block(runs, color, width)
    if oom:
        out += ["\n", oom]
    out += ["\n", _summary(runs, width)]
    return "".join(out)


def simulate_text(runs: Sequence[Run], *, width: int | None = None, color: bool = False) -> str:
    if len(runs) == 1 and runs[0].mode is None:
        return run_text(runs[0], width=width, color=color)
    return compare_text(runs, width=width, color=color)
