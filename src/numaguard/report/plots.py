"""Charts of ``numaguard simulate --plot`` (matplotlib, imported only when a plot is asked for).

One panel per run (per ``--compare`` mode): for each node, a stacked bar of every task's bytes on
that node after the run (hugepage-backed bytes hatched), inside a dashed outline of the node's
free memory before the run; each panel's title says what was swapped, what failed and who the OOM
killer took.  The figure is drawn with matplotlib's object API and the Agg canvas, so nothing
global (``pyplot``, the interactive backend) is touched.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from numaguard.core.scenario import Run
from numaguard.display import printable
from numaguard.errors import NumaguardError
from numaguard.units import GiB, format_bytes

FORMATS = ("png", "svg")
#: tasks get these colours in order (matplotlib's tab20 without its greys, kept for the rest)
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
            "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5")
_OTHERS = "#d0d0d0"
#: a segment shows its size in GiB when it is at least this share of the panel's height
_LABEL_SHARE = 0.06
#: at most this many tasks (the largest) get their own colour and legend entry
MAX_TASKS = len(_PALETTE)


def _matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise NumaguardError("--plot needs matplotlib: pip install 'numaguard[plots]'") from None


def _gib(n: int) -> float:
    return n / GiB


def _panel_title(run: Run) -> tuple[str, str]:
    """(title, colour): the mode and what went wrong."""
    result = run.result
    head = run.mode or "as written"
    problems = []
    if result.oom_events:
        victims = list(dict.fromkeys(e.victim for e in result.oom_events))
        text = ", ".join(printable(v) for v in victims[:3]) + (
            f" and {len(victims) - 3} more" if len(victims) > 3 else "")
        problems.append(f"OOM-killed: {text}")
    failed = sum(a.failed for a in result.allocations)
    if failed:
        problems.append(f"failed: {format_bytes(failed)}")
    if result.swap_used:
        problems.append(f"swap: {format_bytes(result.swap_used)}")
    if not problems:
        return f"{head}\nall placed, no OOM kill", "#2ca02c"
    return f"{head}\n" + "; ".join(problems), "#d62728" if (result.oom_events or failed) \
        else "#b8860b"


def held_at_kill(run: Run) -> dict[str, dict[int, int]]:
    """Per OOM-killed task, the bytes it held on each node when it was killed (replayed from the
    steps: a victim that triggered the kill had placed its step's bytes before it)."""
    held: dict[str, dict[int, int]] = {}
    out: dict[str, dict[int, int]] = {}
    for sr in run.result.steps:
        mine = held.setdefault(sr.name, {})
        for node, b in sr.placed.items():
            mine[node] = mine.get(node, 0) + b
        for e in sr.oom:
            victim = held.pop(e.victim, {})
            kept = {n: b for n, b in victim.items() if b > 0}
            if kept:
                total = out.setdefault(e.victim, {})
                for n, b in kept.items():
                    total[n] = total.get(n, 0) + b
            if e.victim == sr.name:
                held[sr.name] = {}
    return out


def _stack(ax, xs: range, heights: list[float], bottoms: list[float], top: float, **style) -> None:
    ax.bar(xs, heights, width=0.58, bottom=bottoms, linewidth=0.6, zorder=2, **style)


def _label(ax, x: int, y: float, text: str, colour: str = "white", box: bool = False) -> None:
    kw = {"bbox": {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.5}} \
        if box else {}
    ax.text(x, y, text, ha="center", va="center", fontsize=8, color=colour,
            fontweight="bold", zorder=4, **kw)


def render_plot(runs: Sequence[Run], fmt: str) -> bytes:
    """The chart as PNG or SVG bytes.  The :data:`MAX_TASKS` largest tasks get a colour and a
    legend entry each; the others are stacked together in grey, and so are OOM-killed tasks
    (hatched), so a 10,000-step run draws as fast as a 3-step one.

    Names are data: they are drawn :func:`~numaguard.display.printable` (no control character
    reaches the SVG, where XML forbids most of them) and never as mathtext (``$`` is a
    dollar sign, not a formula that could fail to parse)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown plot format {fmt!r}")
    _matplotlib()
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        return _render(runs, fmt)


def _render(runs: Sequence[Run], fmt: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    base = runs[0].scenario
    node_ids = [n.id for n in base.host.nodes]
    size: dict[str, int] = {}
    for run in runs:
        for a in run.result.allocations:
            size[a.name] = max(size.get(a.name, 0), a.requested)
    names = list(size)
    biggest = set(sorted(names, key=lambda n: -size[n])[:MAX_TASKS])
    shown = [n for n in names if n in biggest]  # scenario order
    colour = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(shown)}
    ghosts = [held_at_kill(run) for run in runs]
    killed = any(ghosts) or any(run.result.oom_events for run in runs)

    top = 0.0
    for run, ghost in zip(runs, ghosts):
        for n in run.scenario.host.nodes:
            top = max(top, _gib(n.free))
        for nid in node_ids:
            live = sum(a.placed.get(nid, 0) + a.hugepages.get(nid, 0)
                       for a in run.result.allocations)
            dead = sum(nodes.get(nid, 0) for nodes in ghost.values())
            top = max(top, _gib(live + dead))
    top = max(top, 1.0) * 1.12

    width = max(4.0, 0.9 * len(node_ids) + 1.6)
    fig = Figure(figsize=(max(6.0, width * len(runs)), 5.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(runs), sharey=True, squeeze=False)[0]
    others = False
    for ax, run, ghost in zip(axes, runs, ghosts):
        xs = range(len(node_ids))
        free_before = [_gib(run.scenario.host.node(n).free) for n in node_ids]
        ax.bar(xs, free_before, width=0.82, fill=False, edgecolor="#555555", linestyle="--",
               linewidth=1.2, zorder=3)
        bottoms = [0.0] * len(node_ids)
        by_name = {a.name: a for a in run.result.allocations}
        rest_placed = [0] * len(node_ids)
        rest_huge = [0] * len(node_ids)
        for a in run.result.allocations:
            if a.name not in colour:
                for i, n in enumerate(node_ids):
                    rest_placed[i] += a.placed.get(n, 0)
                    rest_huge[i] += a.hugepages.get(n, 0)
        segments = []
        for name in shown:
            a = by_name.get(name)
            if a is not None:
                segments.append(([a.placed.get(n, 0) for n in node_ids], colour[name], None))
                segments.append(([a.hugepages.get(n, 0) for n in node_ids], colour[name], "//"))
        segments.append((rest_placed, _OTHERS, None))
        segments.append((rest_huge, _OTHERS, "//"))
        for values, c, hatch in segments:
            heights = [_gib(v) for v in values]
            if not any(heights):
                continue
            others = others or c == _OTHERS
            _stack(ax, xs, heights, bottoms, top, color=c, hatch=hatch,
                   edgecolor="white" if hatch is None else "#333333")
            for i, h in enumerate(heights):
                if h >= top * _LABEL_SHARE:
                    _label(ax, i, bottoms[i] + h / 2, f"{h:.1f}",
                           "#333333" if c == _OTHERS else "white")
            bottoms = [b + h for b, h in zip(bottoms, heights)]
        # what OOM-killed tasks held when they died: one hatched ghost per task, or one for all
        groups = list(ghost.items()) if len(ghost) <= 3 else [
            (f"{len(ghost)} tasks", {n: sum(g.get(n, 0) for g in ghost.values())
                                      for n in node_ids})]
        for name, nodes in groups:
            heights = [_gib(nodes.get(n, 0)) for n in node_ids]
            _stack(ax, xs, heights, bottoms, top, color="white", hatch="xx",
                   edgecolor=colour.get(name, "#b00000"))
            for i, h in enumerate(heights):
                if h >= top * _LABEL_SHARE:
                    _label(ax, i, bottoms[i] + h / 2, f"killed\n{h:.1f}", "#b00000", box=True)
            bottoms = [b + h for b, h in zip(bottoms, heights)]
        title, tcolour = _panel_title(run)
        ax.set_title(title, fontsize=10, color=tcolour)
        ax.set_xticks(list(xs), [f"node {n}" for n in node_ids])
        ax.set_ylim(0, top)
        ax.grid(axis="y", linestyle=":", linewidth=0.6, zorder=0)
        ax.set_axisbelow(True)
    axes[0].set_ylabel("GiB")
    handles = [Patch(facecolor=colour[n], label=printable(n)) for n in shown]
    if others:
        handles.append(Patch(facecolor=_OTHERS, label=f"{len(names) - len(shown)} more tasks"))
    handles.append(Patch(fill=False, edgecolor="#555555", linestyle="--",
                         label="free before the run"))
    if any(a.hugepages for run in runs for a in run.result.allocations):
        handles.append(Patch(facecolor="white", edgecolor="#333333", hatch="//",
                             label="hugepages"))
    if killed:
        handles.append(Patch(facecolor="white", edgecolor="#b00000", hatch="xx",
                             label="held by an OOM-killed task (freed)"))
    columns = min(len(handles), max(2, int(fig.get_figwidth() // 2.2)))
    fig.legend(handles=handles, loc="lower center", ncol=columns, fontsize=9, frameon=False)
    fig.suptitle(f"{printable(base.name)}: memory per node after the run (GiB)", fontsize=12)
    rows = -(-len(handles) // columns)
    fig.tight_layout(rect=(0, min(0.3, 0.035 + 0.05 * rows), 1, 1))
    buf = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    fig.savefig(buf, format=fmt, metadata=metadata)
    return buf.getvalue()
