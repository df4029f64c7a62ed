"""Charts of ``numaguard simulate --plot`` and ``--plot-steps`` (matplotlib, imported only when a
plot is asked for).

Two kinds, one panel (column) per run, i.e. per ``--compare`` mode:

* ``bars`` (``--plot FILE``), the end of the run: for each node a stacked bar of every task's
  bytes on that node (hugepage-backed bytes hatched) inside a dashed outline of what the node had
  free before the run (its free hugepages included), and a last column ``swap``: each task's
  swapped bytes inside an outline of the swap that was free.  An OOM-killed task holds nothing at
  the end, so it has no bar: the panel's title says who was killed at which step and how much
  that freed, and the legend marks the task ``OOM-killed``.  Under the bars, one row per task
  with a nodeset marks its nodes: a filled square where the task may only use these nodes (a
  ``bind`` policy or a cgroup ``cpuset.mems``: libvirt's ``strict``), an open circle where the
  nodes are only the policy's first choice and the task may spill (``preferred``,
  ``interleave``).
* ``steps`` (``--plot-steps FILE``), the run over time: per node the memory taken after each
  step, hugepages included (with what the node had free before the run as a dotted ceiling); under
  it the swap in use after each step and the bytes each step pushed to swap (a kill frees the
  victim's swap within the same step, so a step can fill swap and end with none); a red line at
  each OOM kill, named after its victim (past :data:`MAX_KILL_LINES` steps with a kill, a short
  tick along the top instead, and only the first :data:`MAX_KILL_LABELS` are named).

Both figures are built by pure functions (:func:`bars_figure`, :func:`steps_figure`) that return
a matplotlib :class:`~matplotlib.figure.Figure`, drawn with matplotlib's object API and the Agg
canvas, so nothing global (``pyplot``, the interactive backend) is touched; :func:`render_plot`
saves one as PNG or SVG bytes (without a timestamp, so the same run gives the same bytes).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from numaguard.core.scenario import Run, Scenario
from numaguard.core.simulate import Policy
from numaguard.display import printable
from numaguard.errors import NumaguardError
from numaguard.units import GiB, format_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = ("png", "svg")
KINDS = ("bars", "steps")
#: tasks get these colours in order (matplotlib's tab20 without its greys, kept for the rest)
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
            "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5")
_OTHERS = "#d0d0d0"
_KILL = "#b00000"
#: a segment shows its size in GiB when it is at least this share of the panel's height
_LABEL_SHARE = 0.06
#: at most this many tasks (the largest) get their own colour and legend entry
MAX_TASKS = len(_PALETTE)
#: at most this many nodeset rows under the bars (the largest tasks with a nodeset)
MAX_NODESET_ROWS = 8
#: at most this many steps with an OOM kill get a full-height red line (beyond: a rug on top)
MAX_KILL_LINES = 40
#: at most this many OOM kills are named on a steps panel (all are drawn)
MAX_KILL_LABELS = 6
#: at most this many steps get a bar of what they swapped out (beyond: one filled area)
MAX_SWAP_BARS = 300
#: at most this many steps get their own tick label on a steps panel
MAX_STEP_TICKS = 24
SWAP_COLUMN = "swap"


def _matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise NumaguardError("--plot needs matplotlib: pip install 'numaguard[plots]'") from None


@contextmanager
def _plain_text() -> Iterator[None]:
    """Names are data: never mathtext (``$`` is a dollar sign, not a formula that could fail to
    parse) nor TeX.  Text objects read these settings when they are created."""
    _matplotlib()
    import matplotlib

    # svg.hashsalt: the SVG ids of clip paths and glyphs are random without it
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False,
                                "svg.hashsalt": "numaguard"}):
        yield


def _gib(n: int) -> float:
    return n / GiB


def _names(names: Sequence[str], limit: int = 3) -> str:
    text = ", ".join(printable(v) for v in names[:limit])
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")


def kills(run: Run) -> list[tuple[int, str, int]]:
    """(step, victim, bytes freed) of every OOM kill of *run*, in order."""
    return [(e.step, e.victim, e.victim_bytes) for e in run.result.oom_events]


def panel_title(run: Run) -> tuple[str, str]:
    """(title, colour): the mode and what went wrong — who was OOM-killed at which step (and
    what that freed), what could not be placed, what is in swap at the end."""
    result = run.result
    head = run.mode or "as written"
    problems = []
    events = kills(run)
    if events:
        steps = sorted({s for s, _, _ in events})
        where = f"step {steps[0]}" if len(steps) == 1 else \
            f"steps {', '.join(map(str, steps[:4]))}{'…' if len(steps) > 4 else ''}"
        victims = list(dict.fromkeys(v for _, v, _ in events))
        freed = sum(b for _, _, b in events)
        problems.append(f"OOM-killed at {where}: {_names(victims)} ({format_bytes(freed)} freed)")
    failed = sum(a.failed for a in result.allocations)
    if failed:
        problems.append(f"failed: {format_bytes(failed)}")
    if result.swap_used:
        problems.append(f"swap: {format_bytes(result.swap_used)}")
    if not problems:
        return f"{head}\nall placed, no OOM kill", "#2ca02c"
    colour = "#d62728" if (events or failed) else "#b8860b"
    return f"{head}\n" + "\n".join(problems), colour


def nodesets(scenario: Scenario) -> dict[str, tuple[frozenset[int], bool]]:
    """Per task with a nodeset: (its nodes, walled).  *walled*: every allocation of the task may
    only use these nodes (a ``bind`` policy, a cgroup ``cpuset.mems``, or both: their
    intersection — the kernel applies both, mm/mempolicy.c, kernel/cgroup/cpuset.c); otherwise
    the nodes are the policy's first choice (``preferred``, ``interleave``) and the task may
    spill anywhere."""
    walls: dict[str, list[frozenset[int] | None]] = {}
    chosen: dict[str, set[int]] = {}
    for step in scenario.steps:
        if step.action != "alloc":
            continue
        wall = step.nodes if step.policy is Policy.BIND else None
        if step.cpuset_mems is not None:
            wall = step.cpuset_mems if wall is None else wall & step.cpuset_mems
        walls.setdefault(step.name, []).append(wall)
        if step.nodes is not None and step.policy is not Policy.DEFAULT:
            chosen.setdefault(step.name, set()).update(step.nodes)
    out: dict[str, tuple[frozenset[int], bool]] = {}
    for name, ws in walls.items():
        if all(w is not None for w in ws):
            out[name] = (frozenset().union(*(w for w in ws if w is not None)), True)
        elif name in chosen:
            out[name] = (frozenset(chosen[name]), False)
    return out


def _tasks(runs: Sequence[Run]) -> tuple[list[str], list[str], dict[str, str]]:
    """(every task, the shown ones in scenario order, their colours)."""
    size: dict[str, int] = {}
    for run in runs:
        for a in run.result.allocations:
            size[a.name] = max(size.get(a.name, 0), a.requested)
    names = list(size)
    biggest = set(sorted(names, key=lambda n: -size[n])[:MAX_TASKS])
    shown = [n for n in names if n in biggest]
    return names, shown, {n: _PALETTE[i % len(_PALETTE)] for i, n in enumerate(shown)}


def _pool_bytes(node: Any) -> int:
    return sum(size * pages for size, pages in node.hugepages.items())


def _save(fig: Figure, fmt: str) -> bytes:
    buf = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    fig.savefig(buf, format=fmt, metadata=metadata)
    return buf.getvalue()


def render_plot(runs: Sequence[Run], fmt: str, kind: str = "bars") -> bytes:
    """The chart of *kind* (:data:`KINDS`) as PNG or SVG bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown plot format {fmt!r}")
    if kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}")
    fig = bars_figure(runs) if kind == "bars" else steps_figure(runs)
    with _plain_text():  # tick labels may be made while drawing
        return _save(fig, fmt)


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _finish(fig: Figure, handles: list[Any], title: str) -> None:
    """The legend under the panels (the figure grows by its rows) and the title."""
    # a legend entry is about 6 px per character of 9 pt text, plus its swatch
    longest = max(len(h.get_label()) for h in handles)
    columns = max(1, min(len(handles), int(fig.get_figwidth() * 100 // (6 * longest + 50))))
    rows = -(-len(handles) // columns)
    legend = 0.2 + 0.2 * rows
    fig.set_figheight(fig.get_figheight() + legend)
    fig.legend(handles=handles, loc="lower center", ncol=columns, fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, legend / fig.get_figheight(), 1, 1))


# -- bars: the end state ------------------------------------------------------------------------

def _label(ax: Any, x: float, y: float, text: str, colour: str = "white") -> None:
    ax.text(x, y, text, ha="center", va="center", fontsize=8, color=colour,
            fontweight="bold", zorder=4)


def bars_figure(runs: Sequence[Run]) -> Figure:
    """The end of each run (see the module docstring).  The :data:`MAX_TASKS` largest tasks get
    a colour and a legend entry each; the others are stacked together in grey, so a
    10,000-step run draws as fast as a 3-step one.  Names are drawn
    :func:`~numaguard.display.printable` (no control character reaches the SVG, where XML
    forbids most of them)."""
    with _plain_text():
        return _bars(runs)


def _bars(runs: Sequence[Run]) -> Figure:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    base = runs[0].scenario
    node_ids = [n.id for n in base.host.nodes]
    names, shown, colour = _tasks(runs)
    sets = [nodesets(run.scenario) for run in runs]
    with_sets = [n for n in shown if any(n in s for s in sets)]
    rows = with_sets[:MAX_NODESET_ROWS]
    hidden_rows = len({n for s in sets for n in s}) - len(rows)

    columns = [f"node {n}" for n in node_ids] + [SWAP_COLUMN]
    xs = list(range(len(node_ids))) + [len(node_ids) + 0.25]
    top = _bars_top(runs, node_ids)

    width = max(4.5, 0.9 * len(xs) + 1.8)
    fig = _new_figure(max(8.0, width * len(runs)), 5.4 + 0.22 * len(rows))
    grid = fig.add_gridspec(2 if rows else 1, len(runs),
                            height_ratios=[5, 0.5 + 0.3 * len(rows)] if rows else None)
    first_bar = first_row = None
    hugepages = others = False
    for col, (run, tasksets) in enumerate(zip(runs, sets, strict=True)):
        ax = fig.add_subplot(grid[0, col], sharey=first_bar)
        first_bar = first_bar or ax
        host = run.scenario.host
        before = [_gib(host.node(n).free + _pool_bytes(host.node(n))) for n in node_ids]
        before.append(_gib(host.swap_free))
        ax.bar(xs, before, width=0.82, fill=False, edgecolor="#555555", linestyle="--",
               linewidth=1.2, zorder=3)
        bottoms = [0.0] * len(xs)
        for values, c, hatch in _bar_segments(run, node_ids, shown, colour):
            heights = [_gib(v) for v in values]
            if not any(heights):
                continue
            others = others or c == _OTHERS
            hugepages = hugepages or hatch is not None
            ax.bar(xs, heights, width=0.58, bottom=bottoms, linewidth=0.6, zorder=2, color=c,
                   hatch=hatch, edgecolor="white" if hatch is None else "#333333")
            for x, b, h in zip(xs, bottoms, heights, strict=True):
                if h >= top * _LABEL_SHARE:
                    _label(ax, x, b + h / 2, f"{h:.1f}", "#333333" if c == _OTHERS else "white")
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        swap_x = xs[-1]
        used = f"{_gib(run.result.swap_used):.1f} of {_gib(host.swap_free):.1f} GiB" \
            if host.swap_free else "no swap"
        ax.text(swap_x, max(before[-1], bottoms[-1]) + top * 0.015, used, ha="center",
                va="bottom", fontsize=7, color="#555555", zorder=4)
        ax.axvline(len(node_ids) - 0.4, color="#999999", linewidth=0.8, linestyle=":")
        title, tcolour = panel_title(run)
        ax.set_title(title, fontsize=9.5, color=tcolour)
        ax.set_xticks(xs, columns)
        ax.set_xlim(-0.6, xs[-1] + 0.6)
        ax.set_ylim(0, top)
        ax.grid(axis="y", linestyle=":", linewidth=0.6, zorder=0)
        ax.set_axisbelow(True)
        if col == 0:
            ax.set_ylabel("GiB")
        else:
            ax.tick_params(labelleft=False)
        if rows:
            rax = fig.add_subplot(grid[1, col], sharex=ax, sharey=first_row)
            first_row = first_row or rax
            _nodeset_rows(rax, rows, tasksets, node_ids, colour, col == 0, hidden_rows)
    handles = _task_handles(runs, names, shown, colour, others)
    handles.append(Patch(fill=False, edgecolor="#555555", linestyle="--",
                         label="free before the run (hugepage pools included)"
                         if any(_pool_bytes(n) for n in base.host.nodes)
                         else "free before the run"))
    if hugepages:
        handles.append(Patch(facecolor="white", edgecolor="#333333", hatch="//",
                             label="hugepages"))
    if rows:
        handles.append(Line2D([], [], linestyle="none", marker="s", color="#333333",
                              label="only these nodes (bind, cpuset.mems)"))
        if any(not walled for s in sets for _, walled in s.values()):
            handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="none",
                                  color="#333333",
                                  label="first choice, may spill (preferred, interleave)"))
    _finish(fig, handles, f"{printable(base.name)}: memory per node and swap at the end of "
                          "the run (GiB)")
    return fig


def _bars_top(runs: Sequence[Run], node_ids: Sequence[int]) -> float:
    """The bar panels' height in GiB: the largest bar of any run (free before, a node's
    allocations at the end, swap), plus room above it."""
    top = 1.0
    for run in runs:
        host = run.scenario.host
        top = max(top, _gib(host.swap_free), _gib(run.result.swap_used))
        for node in host.nodes:
            top = max(top, _gib(node.free + _pool_bytes(node)))
        for nid in node_ids:
            top = max(top, _gib(sum(a.placed.get(nid, 0) + a.hugepages.get(nid, 0)
                                    for a in run.result.allocations)))
    return top * 1.15


def _bar_segments(run: Run, node_ids: Sequence[int], shown: Sequence[str],
                  colour: dict[str, str]) -> list[tuple[list[int], str, str | None]]:
    """The stacked segments of one run's bars, bottom up: ``(bytes per node + swap, colour,
    hatch)`` for each shown task (pages, then hugepages), then the other tasks together."""
    width = len(node_ids) + 1
    by_name = {a.name: a for a in run.result.allocations}
    segments: list[tuple[list[int], str, str | None]] = []
    rest = ([0] * width, [0] * width)
    for a in run.result.allocations:
        if a.name not in colour:
            for i, n in enumerate(node_ids):
                rest[0][i] += a.placed.get(n, 0)
                rest[1][i] += a.hugepages.get(n, 0)
            rest[0][-1] += a.swapped
    for name in shown:
        task = by_name.get(name)
        if task is not None:
            segments.append(([task.placed.get(n, 0) for n in node_ids] + [task.swapped],
                             colour[name], None))
            segments.append(([task.hugepages.get(n, 0) for n in node_ids] + [0],
                             colour[name], "//"))
    segments.append((rest[0], _OTHERS, None))
    segments.append((rest[1], _OTHERS, "//"))
    return segments


def _task_handles(runs: Sequence[Run], names: Sequence[str], shown: Sequence[str],
                  colour: dict[str, str], others: bool) -> list[Any]:
    """The legend's entries for the tasks: one per shown task (which runs OOM-killed it), one
    for the others when their bars were drawn."""
    from matplotlib.patches import Patch

    handles: list[Any] = []
    killed_in = {n: [r.mode or "the run" for r in runs
                     if any(v == n for _, v, _ in kills(r))] for n in shown}
    for n in shown:
        label = printable(n)
        if killed_in[n]:
            label += " — OOM-killed" + ("" if len(runs) == 1 else
                                        f" ({', '.join(killed_in[n])})")
        handles.append(Patch(facecolor=colour[n], label=label))
    if others:
        handles.append(Patch(facecolor=_OTHERS, label=f"{len(names) - len(shown)} more tasks"))
    return handles


def _nodeset_rows(ax: Any, rows: Sequence[str], tasksets: dict[str, tuple[frozenset[int], bool]],
                  node_ids: Sequence[int], colour: dict[str, str], first: bool,
                  hidden: int) -> None:
    """One row per task in *rows*: a marker on each node of its nodeset in this run."""
    for y, name in enumerate(rows):
        entry = tasksets.get(name)
        if entry is None:
            continue
        nodes, walled = entry
        xs = [i for i, n in enumerate(node_ids) if n in nodes]
        ax.plot(xs, [y] * len(xs), linestyle="none", marker="s" if walled else "o",
                markersize=8, color=colour[name],
                markerfacecolor=colour[name] if walled else "none", markeredgewidth=1.6)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_yticks(range(len(rows)), [printable(n) for n in rows], fontsize=8)
    ax.tick_params(labelleft=first, labelbottom=False, length=0)
    ax.grid(axis="x", linestyle=":", linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if first:
        ax.set_title("nodeset" + (f" ({hidden} more tasks not shown)" if hidden > 0 else ""),
                     fontsize=8, loc="left")


# -- steps: the run over time -------------------------------------------------------------------

def hugepages_in_use(run: Run) -> list[dict[int, int]]:
    """Per step, the bytes of hugepage pools in use on each node after it, replayed from the
    steps: what hugepage-backed steps placed, less what an OOM kill or a full ``free``
    releases (and what a partial ``free`` of a task backed only by hugepages gives back).
    Hugepages never swap, so the replay is exact; a partial ``free`` of a task that mixes
    hugepage-backed and normal steps (a QEMU: its own memory is normal) counts as normal
    memory."""
    pure: dict[str, bool] = {}
    for step in run.scenario.steps:
        if step.action == "alloc":
            pure[step.name] = pure.get(step.name, True) and step.hugepage_size is not None
    held: dict[str, dict[int, int]] = {}
    out: list[dict[int, int]] = []
    for sr in run.result.steps:
        step = run.scenario.steps[sr.index]
        if step.action == "free" and step.size is None:
            held.pop(sr.name, None)
        elif step.hugepage_size is not None or (step.action == "free" and pure.get(sr.name)):
            mine = held.setdefault(sr.name, {})
            for n, b in sr.placed.items():
                mine[n] = mine.get(n, 0) + b
        for e in sr.oom:
            held.pop(e.victim, None)
        total: dict[int, int] = {}
        for nodes in held.values():
            for n, b in nodes.items():
                total[n] = total.get(n, 0) + b
        out.append(total)
    return out


def steps_figure(runs: Sequence[Run]) -> Figure:
    """Each run over its steps (see the module docstring).  x = 0 is before the run, x = i + 1
    after step i.  A node's taken memory is its MemFree before the run minus its MemFree after
    the step, plus the bytes of its hugepage pools in use (:func:`hugepages_in_use`); its
    ceiling is MemFree plus the free hugepages before the run."""
    with _plain_text():
        return _steps(runs)


def _steps(runs: Sequence[Run]) -> Figure:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    base = runs[0].scenario
    node_ids = [n.id for n in base.host.nodes]
    node_colour = {n: _PALETTE[i % len(_PALETTE)] for i, n in enumerate(node_ids)}
    steps = max(len(r.result.steps) for r in runs)
    top = max(1.0, *(_gib(n.free + _pool_bytes(n)) for r in runs
                     for n in r.scenario.host.nodes)) * 1.12
    swap_top = max(0.25, *(_gib(r.scenario.host.swap_free) for r in runs),
                   *(_gib(max([sr.swapped for sr in r.result.steps], default=0)) for r in runs),
                   *(_gib(max([sr.swap_used_after for sr in r.result.steps], default=0))
                     for r in runs)) * 1.2
    few = steps <= MAX_STEP_TICKS
    fig = _new_figure(max(8.0, (4.0 + (0.45 * steps if few else 4.0)) * len(runs)), 6.4)
    grid = fig.add_gridspec(2, len(runs), height_ratios=[3.2, 1.3])
    first_mem = first_swap = None
    any_kill = any_swap = False
    for col, run in enumerate(runs):
        ax = fig.add_subplot(grid[0, col], sharey=first_mem)
        sax = fig.add_subplot(grid[1, col], sharex=ax, sharey=first_swap)
        first_mem, first_swap = first_mem or ax, first_swap or sax
        host = run.scenario.host
        results = run.result.steps
        x = list(range(len(results) + 1))
        marker = "o" if len(results) <= 60 else None
        pools = hugepages_in_use(run)
        for nid in node_ids:
            free = host.node(nid).free
            taken = [0.0] + [_gib(free - sr.free_after.get(nid, free) + huge.get(nid, 0))
                             for sr, huge in zip(results, pools, strict=False)]
            ax.plot(x, taken, color=node_colour[nid], marker=marker, markersize=4,
                    linewidth=1.6, zorder=3)
            ax.axhline(_gib(free + _pool_bytes(host.node(nid))), color=node_colour[nid],
                       linestyle=":", linewidth=1.1, zorder=2)
        swap_after = [0.0] + [_gib(sr.swap_used_after) for sr in results]
        pushed = [_gib(sr.swapped) for sr in results]
        any_swap = any_swap or any(pushed) or bool(host.swap_free)
        swapping = [(i + 1, v) for i, v in enumerate(pushed) if v]
        if len(swapping) <= MAX_SWAP_BARS:
            sax.bar([i for i, _ in swapping], [v for _, v in swapping], width=0.6,
                    color="#f3c969", edgecolor="#b8860b", linewidth=0.6, zorder=2)
        else:   # one artist, not thousands of bars
            sax.fill_between(x[1:], pushed, step="mid", color="#f3c969", edgecolor="#b8860b",
                             linewidth=0.6, zorder=2)
        sax.plot(x, swap_after, color="#8c564b", marker=marker, markersize=4, linewidth=1.6,
                 zorder=3)
        sax.axhline(_gib(host.swap_free), color="#8c564b", linestyle="--", linewidth=1.1)
        events = kills(run)
        if events:
            any_kill = True
            at = sorted({s + 1 for s, _, _ in events})
            if len(at) <= MAX_KILL_LINES:
                for a in (ax, sax):
                    a.vlines(at, 0, 1, transform=a.get_xaxis_transform(), colors=_KILL,
                             linewidth=1.4, zorder=2.5)
            else:   # a rug of short ticks along the top, not a red wall over the data
                ax.vlines(at, 0.94, 1, transform=ax.get_xaxis_transform(), colors=_KILL,
                          linewidth=0.8, zorder=2.5)
            victims: dict[int, list[str]] = {}
            for s, v, _ in events:
                victims.setdefault(s + 1, []).append(v)
            for xpos in at[:MAX_KILL_LABELS]:
                ax.text(xpos, 0.97, f" OOM: {_names(victims[xpos], 2)}", rotation=90,
                        ha="right", va="top", fontsize=8, color=_KILL,
                        transform=ax.get_xaxis_transform(), zorder=5)
        title, tcolour = panel_title(run)
        ax.set_title(title, fontsize=9.5, color=tcolour)
        ax.set_ylim(0, top)
        sax.set_ylim(0, swap_top)
        if few:
            labels = ["start"] + [f"{sr.index} {printable(run.scenario.labels[sr.index])}"
                                  if sr.index < len(run.scenario.labels) else str(sr.index)
                                  for sr in results]
            sax.set_xticks(x, labels, rotation=35, ha="right", fontsize=8)
        else:
            sax.set_xlabel("after step")
        ax.tick_params(labelbottom=False)
        for a in (ax, sax):
            a.grid(linestyle=":", linewidth=0.6, zorder=0)
            a.set_axisbelow(True)
            a.set_xlim(-0.4, len(results) + 0.4)
        if col == 0:
            ax.set_ylabel("taken (GiB)")
            sax.set_ylabel("swap (GiB)")
        else:
            ax.tick_params(labelleft=False)
            sax.tick_params(labelleft=False)
    handles: list[Any] = [Line2D([], [], color=node_colour[n], linewidth=1.6, label=f"node {n}")
                          for n in node_ids[:MAX_TASKS]]
    handles.append(Line2D([], [], color="#555555", linestyle=":",
                          label="node's free memory before the run"
                          + (" (hugepage pools included)"
                             if any(_pool_bytes(n) for n in base.host.nodes) else "")))
    handles.append(Line2D([], [], color="#8c564b", linewidth=1.6,
                          label="swap used after the step"))
    if any_swap:
        handles.append(Patch(facecolor="#f3c969", edgecolor="#b8860b",
                             label="swapped out during the step"))
        handles.append(Line2D([], [], color="#8c564b", linestyle="--",
                              label="swap free before the run"))
    if any_kill:
        handles.append(Line2D([], [], color=_KILL, linewidth=1.4, label="OOM kill"))
    _finish(fig, handles, f"{printable(base.name)}: memory taken per node and swap, "
                          "step by step (GiB)")
    return fig
