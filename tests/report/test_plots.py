"""`simulate --plot` / `--plot-steps` tell what the simulator says: the figures built by
report.plots are checked against the simulator's own JSON (the real CLI), never against numbers
written here.  Structure only (bars, markers, lines, texts), no pixels."""

import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys

import pytest

from numaguard import cli
from numaguard.core.scenario import compare, play
from numaguard.readers.scenario import load_scenario, parse_scenario
from numaguard.report import plots

pytest.importorskip("matplotlib")

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "examples" / "scenarios"
ARTICLE = ROOT / "examples" / "article-host"
THREE = SCENARIOS / "three-modes.toml"
MODES = ("strict", "preferred", "interleave")
GiB = 1024**3

SWAPPING = """\
name = "swapping"
[host]
swap = "2GiB"
[[host.nodes]]
id = 0
mem_total = "8GiB"
mem_free = "4GiB"
[[host.nodes]]
id = 1
mem_total = "8GiB"
mem_free = "6GiB"
[[step]]
name = "guest"
size = "5GiB"
policy = "bind"
nodes = "0"
cpuset_mems = "0"
[[step]]
name = "app"
size = "1GiB"
cpu_node = 1
"""


def simulate_json(capsys, *args):
    rc = cli.main(["simulate", *map(str, args), "--format", "json"])
    out, err = capsys.readouterr()
    assert err == "" and rc in (0, 1)
    return json.loads(out)


def runs_of(doc):
    """{mode or None: run dict} from the JSON of one run or of --compare."""
    return dict(doc["compare"]) if "compare" in doc else {None: doc}


def per_node(mapping):
    return {int(k): v for k, v in mapping.items()}


def bar_axes(fig):
    return [ax for ax in fig.axes if ax.get_title()]


def row_axes(fig):
    return [ax for ax in fig.axes if not ax.get_title()]


def columns(ax):
    """{column label: (stacked bytes drawn, outline bytes)} of one bars panel."""
    labels = [t.get_text() for t in ax.get_xticklabels()]
    xs = list(ax.get_xticks())
    stacked = dict.fromkeys(labels, 0.0)
    outline = dict.fromkeys(labels, 0.0)
    for r in ax.patches:
        x = r.get_x() + r.get_width() / 2
        label = labels[min(range(len(xs)), key=lambda i: abs(xs[i] - x))]
        if r.get_fill():
            stacked[label] += r.get_height() * GiB
        else:
            outline[label] = r.get_height() * GiB
    return {k: (stacked[k], outline[k]) for k in labels}


def legend_texts(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def all_texts(fig):
    return [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]


def close(a, b, tol=0.01 * GiB):
    return abs(a - b) <= tol


# -- bars: the end of the run ---------------------------------------------------------------------

def test_a_killed_guest_is_not_stacked_on_the_survivors(capsys):
    doc = simulate_json(capsys, ARTICLE)
    killed = {e["victim"]: e for e in doc["oom_events"]}
    assert killed, "the article host kills a guest"
    fig = plots.bars_figure([play(load_scenario(str(ARTICLE)))])
    (ax,) = bar_axes(fig)
    drawn = columns(ax)
    for node in doc["nodes"]:
        end = sum(per_node(a["placed"]).get(node["id"], 0) + per_node(a["hugepages"]).get(
            node["id"], 0) for a in doc["allocations"])
        stacked, outline = drawn[f"node {node['id']}"]
        assert close(stacked, end), node["id"]
        assert stacked <= outline + 0.01 * GiB   # the end state fits what was there
    # the victim has no bar, is marked in the legend and named with its step in the title
    legend = legend_texts(fig)
    handles = {t.get_text(): h for legend_ in fig.legends
               for t, h in zip(legend_.get_texts(), legend_.legend_handles, strict=True)}
    for victim, event in killed.items():
        assert f"{victim} — OOM-killed" in legend
        colour = handles[f"{victim} — OOM-killed"].get_facecolor()
        assert not [r for r in ax.patches if r.get_fill() and r.get_height() > 0
                    and tuple(r.get_facecolor()) == tuple(colour)]
        assert f"OOM-killed at step {event['step']}: {victim}" in ax.get_title()


def test_swap_is_a_column_with_each_tasks_swap(capsys, tmp_path):
    scenario = tmp_path / "swapping.toml"
    scenario.write_text(SWAPPING)
    doc = simulate_json(capsys, scenario)
    assert doc["swap_used_bytes"] > 0
    fig = plots.bars_figure([play(load_scenario(str(scenario)))])
    (ax,) = bar_axes(fig)
    stacked, outline = columns(ax)[plots.SWAP_COLUMN]
    assert close(stacked, doc["swap_used_bytes"])
    assert close(outline, doc["swap_free_before_bytes"])
    used = f"{doc['swap_used_bytes'] / GiB:.1f} of {doc['swap_free_before_bytes'] / GiB:.1f} GiB"
    assert used in all_texts(fig)
    assert f"swap: {doc['swap_used_bytes'] / GiB:.1f} GiB" in ax.get_title()


def test_no_swap_says_so(capsys):
    doc = simulate_json(capsys, SCENARIOS / "article-fig5-strict.toml", "--compare",
                        "strict,interleave")
    fig = plots.bars_figure(compare(load_scenario(str(SCENARIOS / "article-fig5-strict.toml")),
                                    ["strict", "interleave"]))
    for ax, run in zip(bar_axes(fig), runs_of(doc).values(), strict=True):
        stacked, outline = columns(ax)[plots.SWAP_COLUMN]
        assert close(stacked, run["swap_used_bytes"])
        assert close(outline, run["swap_free_before_bytes"])


def nodeset_markers(fig, panel, node_count):
    """{row label: (node indices marked, filled)} of one nodeset row panel (the rows are named
    on the first panel only)."""
    names = [t.get_text() for t in row_axes(fig)[0].get_yticklabels()]
    ax = row_axes(fig)[panel]
    out = {}
    for line in ax.get_lines():
        ys = set(line.get_ydata())
        if not ys:
            continue
        (y,) = ys
        xs = [int(x) for x in line.get_xdata()]
        assert all(0 <= x < node_count for x in xs)
        filled = line.get_marker() == "s" and line.get_markerfacecolor() != "none"
        out[names[int(y)]] = (xs, filled)
    return out


def test_each_bound_guests_nodeset_is_marked(capsys):
    doc = simulate_json(capsys, THREE, "--compare", ",".join(MODES))
    fig = plots.bars_figure(compare(load_scenario(str(THREE)), MODES))
    assert len(bar_axes(fig)) == len(row_axes(fig)) == len(MODES)
    for panel, (mode, run) in enumerate(runs_of(doc).items()):
        node_ids = [n["id"] for n in run["nodes"]]
        marks = nodeset_markers(fig, panel, len(node_ids))
        steps = {}
        for s in run["steps"]:
            steps.setdefault(s["name"], s)
        for name, step in steps.items():
            wall = step["cpuset_mems"]
            if step["policy"] == "bind":
                wall = sorted(set(wall or step["nodes"]) & set(step["nodes"]))
            if wall is not None:       # the batch job (cgroup) in every mode, guests in strict
                assert marks[name] == ([node_ids.index(n) for n in wall], True), (mode, name)
            elif step["nodes"] is not None:
                assert marks[name] == ([node_ids.index(n) for n in step["nodes"]], False)
            else:
                assert name not in marks
    # strict walls the guests in, preferred and interleave do not
    assert nodeset_markers(fig, 0, 3)["db"][1] is True
    assert nodeset_markers(fig, 1, 3)["db"][1] is False
    legend = " ".join(legend_texts(fig))
    assert "only these nodes" in legend and "may spill" in legend


def test_svg_carries_the_truth(tmp_path, capsys):
    target = tmp_path / "end.svg"
    snap = tmp_path / "article-host"   # the definitions alone: every guest from nothing
    shutil.copytree(ARTICLE, snap, ignore=shutil.ignore_patterns("run"))
    rc = cli.main(["simulate", str(snap), "--plot", str(target), "--order", "name"])
    capsys.readouterr()
    assert rc == 1
    svg = target.read_text()
    cli.main(["simulate", str(snap), "--order", "name", "--format", "json"])
    (event,) = json.loads(capsys.readouterr().out)["oom_events"]
    assert event["victim"] == "bigmem-preferred"
    for text in ("bigmem-preferred — OOM-killed", f"OOM-killed at step {event['step']}", "swap",
                 "node 3", "nodeset", "vm1", "hugepage pools included"):
        assert text in svg, text


# -- steps: the run over time ---------------------------------------------------------------------

def test_steps_follow_the_simulators_steps(capsys):
    doc = simulate_json(capsys, THREE, "--compare", ",".join(MODES))
    fig = plots.steps_figure(compare(load_scenario(str(THREE)), MODES))
    memory = [ax for ax in fig.axes if ax.get_title()]
    swap = [ax for ax in fig.axes if not ax.get_title()]
    assert len(memory) == len(swap) == len(MODES)
    for ax, sax, (mode, run) in zip(memory, swap, runs_of(doc).items(), strict=True):
        assert ax.get_title().startswith(mode)
        before = {n["id"]: n["free_before_bytes"] for n in run["nodes"]}
        expected = [[0] + [before[n] - per_node(s["free_after"])[n] for s in run["steps"]]
                    for n in sorted(before)]
        drawn = [list(line.get_ydata()) for line in ax.get_lines()
                 if len(line.get_xdata()) == len(run["steps"]) + 1]
        assert len(drawn) == len(expected)
        for want, got in zip(expected, drawn, strict=True):
            assert all(close(w, g * GiB) for w, g in zip(want, got, strict=True)), mode
        swap_line = next(line for line in sax.get_lines()
                         if len(line.get_xdata()) == len(run["steps"]) + 1)
        assert [v * GiB for v in swap_line.get_ydata()] == pytest.approx(
            [0] + [s["swap_used_after_bytes"] for s in run["steps"]], abs=0.01 * GiB)
        pushed = sorted(r.get_height() * GiB for r in sax.patches)
        assert pushed == pytest.approx(sorted(s["swapped_bytes"] for s in run["steps"]
                                              if s["swapped_bytes"]), abs=0.01 * GiB)
        # one red line per step with a kill, after that step, named after its victims
        kill_x = sorted({e["step"] + 1 for e in run["oom_events"]})
        lines = [c for c in ax.collections if c.get_segments()]
        assert sorted(seg[0][0] for c in lines for seg in c.get_segments()) == kill_x
        texts = [t.get_text() for t in ax.texts]
        for e in run["oom_events"]:
            assert any(t.startswith(" OOM:") and e["victim"] in t for t in texts)


def test_steps_count_hugepages_on_their_node(capsys):
    # in name order db-hugepages is the first to touch node 3
    doc = simulate_json(capsys, ARTICLE, "--order", "name")
    fig = plots.steps_figure([play(load_scenario(str(ARTICLE), order="name"))])
    (ax,) = [a for a in fig.axes if a.get_title()]
    db = next(s for s in doc["steps"] if s["hugepage_size_bytes"] and s["requested_bytes"])
    (node, size), = per_node(db["placed"]).items()
    line = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == len(doc["steps"]) + 1][node]
    assert close(line.get_ydata()[db["index"] + 1] * GiB, size)


def test_many_steps_many_kills_stay_bounded():
    steps = "".join(f'[[step]]\nname = "g{i}"\nsize = "3GiB"\npolicy = "bind"\nnodes = "0"\n'
                    for i in range(200))
    scenario = parse_scenario('[host]\n[[host.nodes]]\nid = 0\nmem_total = "8GiB"\n' + steps,
                              path="many.toml")
    run = play(scenario)
    assert len(run.result.oom_events) > plots.MAX_KILL_LABELS
    fig = plots.steps_figure([run])
    (ax,) = [a for a in fig.axes if a.get_title()]
    assert len([t for t in ax.texts if t.get_text().startswith(" OOM:")]) == plots.MAX_KILL_LABELS
    assert len(ax.get_xticklabels()) < 50
    bars = plots.bars_figure([run])
    assert len(row_axes(bars)[0].get_yticklabels()) == plots.MAX_NODESET_ROWS


def test_svg_is_the_same_bytes_every_time():
    runs = compare(load_scenario(str(THREE)), MODES)
    for kind in plots.KINDS:
        assert plots.render_plot(runs, "svg", kind) == plots.render_plot(runs, "svg", kind)


# -- the bundled three-modes scenario -------------------------------------------------------------

def outcome(run):
    kills = tuple(sorted((e["victim"], e["constraint"]) for e in run["oom_events"]))
    failed = sum(a["failed_bytes"] for a in run["allocations"])
    return kills, failed > 0


def test_three_modes_end_three_ways(capsys):
    rc = cli.main(["simulate", str(THREE), "--compare", ",".join(MODES), "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 1
    runs = runs_of(doc)
    outcomes = {mode: outcome(runs[mode]) for mode in MODES}
    assert len(set(outcomes.values())) == 3, outcomes
    strict, preferred, interleave = (runs[m] for m in MODES)
    # strict: kills for node 0 under its memory policy, and db (the guest at fault) survives
    assert strict["oom_events"] and {e["constraint"] for e in strict["oom_events"]} == \
        {"memory-policy"}
    db = next(a for a in strict["allocations"] if a["name"] == "db")
    assert not db["oom_killed"] and db["failed_bytes"] == 0
    # preferred: no kill, db spilled beyond its nodeset
    assert not preferred["oom_events"]
    db_step = next(s for s in preferred["steps"] if s["name"] == "db")
    db = next(a for a in preferred["allocations"] if a["name"] == "db")
    assert set(per_node(db["placed"])) - set(db_step["nodes"])
    # interleave: a cpuset-constrained kill, other victims than strict's
    assert {e["constraint"] for e in interleave["oom_events"]} == {"cpuset"}
    assert {e["victim"] for e in interleave["oom_events"]} != \
        {e["victim"] for e in strict["oom_events"]}


# -- files through the real CLI -------------------------------------------------------------------

@pytest.mark.parametrize("existing", [None, 0o600], ids=["new", "was-0600"])
def test_plot_files_are_0644_minus_the_umask_through_the_cli(tmp_path, existing):
    end, steps = tmp_path / "end.png", tmp_path / "steps.svg"
    if existing is not None:
        for p in (end, steps):
            p.write_bytes(b"old")
            os.chmod(p, existing)
    done = subprocess.run([sys.executable, "-m", "numaguard", "simulate", str(THREE),
                           "--compare", ",".join(MODES), "--plot", str(end),
                           "--plot-steps", str(steps)],
                          capture_output=True, text=True, timeout=120, check=False,
                          cwd=ROOT, umask=0o022,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert done.returncode == 1 and done.stderr == "", done.stderr
    for p in (end, steps):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    assert end.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in steps.read_text() and sorted(os.listdir(tmp_path)) == ["end.png",
                                                                             "steps.svg"]


def test_plot_steps_needs_png_or_svg(capsys):
    rc = cli.main(["simulate", str(THREE), "--plot-steps", "steps.pdf"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err == "numaguard simulate: --plot-steps: 'steps.pdf': expected a file name ending " \
        "in .png or .svg\n"
