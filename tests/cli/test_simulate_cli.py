"""`numaguard simulate` as a user meets it: the article's scenarios, the JSON contract, --compare,
--plot, snapshots as input, derived watermarks, exit codes and one-line errors."""

import json
import os
import pathlib
import re
import shutil
import struct
from pathlib import Path

import pytest

from numaguard import cli
from tests.support.synth import SynthNode, domain_xml, write_sysfs

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "examples" / "scenarios"
ARTICLE = ROOT / "examples" / "article-host"
GiB = 1024**3
MiB = 1024**2
PAGE = 4096
EXAMPLES = sorted(SCENARIOS.glob("*.toml"))


def run(capsys, *args):
    rc = cli.main(["simulate", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def run_json(capsys, *args):
    rc, out, err = run(capsys, *args, "--format", "json")
    assert err == ""
    return rc, json.loads(out)


def node_bytes(placed):
    return {int(n): b for n, b in placed.items()}


def check_conservation(doc):
    for step in doc["steps"]:
        if step["action"] == "alloc":
            placed = sum(step["placed"].values())
            # what a step asks for is placed or failed; swap takes the oldest pages of anyone
            assert placed + step["failed_bytes"] == step["requested_bytes"], step
    for a in doc["allocations"]:
        if not a["oom_killed"] and not any(s["action"] == "free" and s["name"] == a["name"]
                                           for s in doc["steps"]):
            resident = sum(a["placed"].values()) + sum(a["hugepages"].values())
            assert resident + a["swapped_bytes"] + a["failed_bytes"] == \
                a["requested_bytes"], a


# -- the article's examples ---------------------------------------------------------------------

def test_every_example_is_documented_and_runs(capsys):
    names = {p.name for p in EXAMPLES}
    assert {"article-fig5-strict.toml", "article-fig6-interleave.toml", "article-vm1-app.toml",
            "article-vm1-app-preferred.toml"} <= names
    readme = (SCENARIOS / "README.md").read_text()
    for path in EXAMPLES:
        assert path.name in readme
        rc, doc = run_json(capsys, path)
        assert rc in (0, 1)
        check_conservation(doc)
        rc_text, out, err = run(capsys, path)
        assert rc_text == rc and err == "" and out.startswith("Scenario ")


def test_fig5_strict_fills_node_0_then_1_then_2(capsys):
    rc, doc = run_json(capsys, SCENARIOS / "article-fig5-strict.toml")
    assert rc == 0
    [step] = doc["steps"]
    nodes = {n["id"]: n for n in doc["nodes"]}
    # fill order: the zonelist of node 0 (0 1 2 3) filtered by the nodeset 0-2
    assert list(step["placed"]) == ["0", "1", "2"]
    placed = node_bytes(step["placed"])
    for n in (0, 1):  # filled down to the low watermark before the next node is touched
        assert placed[n] == nodes[n]["free_before_bytes"] - nodes[n]["watermark_low_bytes"]
        assert nodes[n]["free_bytes"] == nodes[n]["watermark_low_bytes"]
    assert placed[2] == 35 * GiB - placed[0] - placed[1]
    assert [round(placed[n] / GiB) for n in (0, 1, 2)] == [13, 15, 7]
    assert nodes[3]["free_bytes"] == nodes[3]["free_before_bytes"]
    assert step["swapped_bytes"] == step["failed_bytes"] == 0 and doc["oom_events"] == []
    assert (step["policy"], step["nodes"], step["cpuset_mems"], step["cpu_node"]) == \
        ("bind", [0, 1, 2], [0, 1, 2], 0)


def test_fig6_interleave_splits_evenly(capsys):
    rc, doc = run_json(capsys, SCENARIOS / "article-fig6-interleave.toml")
    assert rc == 0
    placed = node_bytes(doc["steps"][0]["placed"])
    assert set(placed) == {0, 1, 2}
    third = 35 * GiB / 3
    for n in (0, 1, 2):
        assert abs(placed[n] - third) <= 0.01 * third
    assert sum(placed.values()) == 35 * GiB


def test_strict_story_swaps_then_kills_vm1_for_its_memory_policy(capsys):
    rc, doc = run_json(capsys, SCENARIOS / "article-vm1-app.toml")
    assert rc == 1  # an OOM kill
    [event] = doc["oom_events"]
    assert (event["victim"], event["trigger"], event["constraint"], event["nodes"]) == \
        ("vm1", "vm1", "memory-policy", [0])
    last = doc["steps"][2]
    assert last["oom"] == [event] and event["step"] == 2
    # swap filled up before the OOM killer ran, and vm1 never left node 0
    assert last["swapped_bytes"] == doc["swap_free_before_bytes"] == 1 * GiB
    assert set(last["placed"]) == {"0"}
    vm1 = next(a for a in doc["allocations"] if a["name"] == "vm1")
    assert vm1["oom_killed"] and vm1["placed"] == {}
    app = next(a for a in doc["allocations"] if a["name"] == "app")
    assert not app["oom_killed"] and node_bytes(app["placed"]) == {0: 4 * GiB}


def test_preferred_story_spills_to_node_1_and_nobody_dies(capsys):
    rc, doc = run_json(capsys, SCENARIOS / "article-vm1-app-preferred.toml")
    assert rc == 0
    assert doc["oom_events"] == [] and doc["swap_used_bytes"] == 0
    vm1 = node_bytes(next(a for a in doc["allocations"] if a["name"] == "vm1")["placed"])
    assert set(vm1) == {0, 1} and vm1[1] > 512 * MiB
    assert sum(vm1.values()) == 12 * GiB


def test_text_report_shows_steps_tasks_and_the_oom_kill(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that no cell or line wraps
    rc, out, err = run(capsys, SCENARIOS / "article-vm1-app.toml")
    assert rc == 1 and err == ""
    for heading in ("Nodes before the run", "Steps:", "Tasks at the end", "Nodes at the end"):
        assert heading in out
    assert "bind 0, cpu node 0, mems 0" in out and "default, cpu node 0" in out
    assert "OOM kill at step 2 (vm1): killed vm1 (the task that asked)" in out
    assert "constraint memory-policy, nodes 0" in out
    assert out.rstrip().splitlines()[-1].startswith("Result: 1 OOM kill (vm1)")
    assert "\x1b[" not in out  # no colour into a pipe


# -- --compare ------------------------------------------------------------------------------------

def test_compare_json_runs_each_mode(capsys):
    rc, doc = run_json(capsys, SCENARIOS / "article-fig5-strict.toml",
                       "--compare", "strict,preferred,interleave")
    assert rc == 0
    assert list(doc["compare"]) == ["strict", "preferred", "interleave"]
    runs = doc["compare"]
    for mode, sub in runs.items():
        assert sub["scenario"]["mode"] == mode
        check_conservation(sub)
    assert [s["policy"] for s in (runs[m]["steps"][0] for m in runs)] == \
        ["bind", "preferred-many", "interleave"]
    assert runs["strict"]["steps"][0]["cpuset_mems"] == [0, 1, 2]
    assert runs["interleave"]["steps"][0]["cpuset_mems"] is None
    # interleave: node 2 (7.1 GiB free) runs dry and its share follows node 2's fallback order,
    # out of the nodeset (FACTS.md)
    inter = node_bytes(runs["interleave"]["allocations"][0]["placed"])
    assert inter.get(3, 0) > 0


def test_compare_text_is_one_side_by_side_table(capsys):
    rc, out, err = run(capsys, SCENARIOS / "article-vm1-app.toml", "--compare",
                       "strict, preferred")
    assert rc == 1 and err == ""
    header = next(line for line in out.splitlines() if "strict" in line and "preferred" in line)
    assert header.index("strict") < header.index("preferred")
    for row in ("requested", "node 0", "node 1", "swapped", "failed", "OOM-killed",
                "free at end", "swap used", "OOM kills"):
        assert row in out
    assert "[strict] OOM kill at step 2 (vm1): killed vm1" in out
    assert "Result: strict: 1 OOM kill (vm1)" in out
    assert "Result: preferred: every byte placed, no OOM kill" in out


def test_compare_exit_code_is_0_when_every_mode_is_clean(capsys):
    rc, _, _ = run(capsys, SCENARIOS / "article-vm1-app.toml", "--compare", "preferred")
    assert rc == 0


# -- --plot ----------------------------------------------------------------------------------------

def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_png_is_a_real_picture(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "fig5.png"
    rc, out, err = run(capsys, SCENARIOS / "article-fig5-strict.toml", "--compare",
                       "strict,preferred,interleave", "--plot", target)
    assert rc == 0 and err == "" and "Compare:" in out
    data = target.read_bytes()
    width, height = png_size(data)
    assert 900 <= width <= 4000 and 300 <= height <= 1500
    assert 10_000 < len(data) < 2_000_000
    assert os.listdir(tmp_path) == ["fig5.png"]  # written atomically: no temporary left


def test_plot_svg_of_a_single_run_and_of_a_kill(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "story.svg"
    rc, _, _ = run(capsys, SCENARIOS / "article-vm1-app.toml", "--plot", target)
    assert rc == 1
    svg = target.read_text()
    assert "<svg" in svg and "article-vm1-app" in svg and "vm1" in svg and "killed" in svg


def test_plot_replaces_an_existing_file(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    run(capsys, SCENARIOS / "article-fig6-interleave.toml", "--plot", target)
    png_size(target.read_bytes())


@pytest.mark.parametrize("args, key", [
    (["--plot", "chart.pdf"], "--plot"),
    (["--plot", "/nonexistent-dir/x.png"], "/nonexistent-dir/x.png"),
    (["--compare", "strict,binded"], "--compare"),
    (["--compare", ","], "--compare"),
])
def test_bad_options_are_one_line(capsys, args, key):
    rc, out, err = run(capsys, SCENARIOS / "article-fig5-strict.toml", *args)
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1 and key in err and err.startswith("numaguard simulate: ")


# -- snapshots -----------------------------------------------------------------------------------

def guest_ram(steps: list[dict]) -> list[dict]:
    """The steps of guest RAM (not QEMU's own memory, labelled ``NAME QEMU's own``)."""
    return [s for s in steps if s["label"] != f"{s['name']} QEMU's own"]


def without_live(tmp_path: Path) -> Path:
    """A copy of the article host without its captured live files (libvirt's run folder): a
    snapshot of the definitions alone, every guest touching its memory from nothing."""
    snap = tmp_path / "article-host"
    shutil.copytree(ARTICLE, snap, ignore=shutil.ignore_patterns("run"))
    return snap


def test_snapshot_guests_touch_their_memory_bound_ones_last(capsys, tmp_path):
    """Issue 10: no recorded start order: unbound guests first, then bound ones, each largest
    first (the audit's ``bound-last``); ``--order name`` is the old name order."""
    rc, doc = run_json(capsys, without_live(tmp_path))
    check_conservation(doc)
    names = [s["name"] for s in guest_ram(doc["steps"])]
    assert names == ["bigmem-preferred", "web-interleave", "vm1", "db-hugepages"]
    _, by_name = run_json(capsys, without_live(tmp_path / "2"), "--order", "name")
    assert [s["name"] for s in guest_ram(by_name["steps"])] == sorted(names)
    steps = {s["name"]: s for s in guest_ram(doc["steps"])}
    # each QEMU's own memory: 10 MiB before its guest RAM (the vCPUs touch it lazily), or
    # 4 before and 6 after when QEMU preallocates (db-hugepages: huge pages), on the
    # emulator's node, default policy, inside its cgroup's cpuset.mems
    own = [(s["name"], s["requested_bytes"], s["policy"], s["cpu_node"], s["cpuset_mems"])
           for s in doc["steps"] if s["label"] == f"{s['name']} QEMU's own"]
    assert own == [("bigmem-preferred", 10 * MiB, "default", 0, None),
                   ("web-interleave", 10 * MiB, "default", 0, None),
                   ("vm1", 10 * MiB, "default", 0, [0]),
                   ("db-hugepages", 4 * MiB, "default", 3, [3]),
                   ("db-hugepages", 6 * MiB, "default", 3, [3])]
    assert [s["label"] for s in doc["steps"]][-3:] == [
        "db-hugepages QEMU's own", "db-hugepages", "db-hugepages QEMU's own"]
    assert (steps["vm1"]["policy"], steps["vm1"]["nodes"], steps["vm1"]["cpuset_mems"]) == \
        ("bind", [0], [0])
    assert steps["vm1"]["requested_bytes"] == 12 * GiB and steps["vm1"]["cpu_node"] == 0
    assert (steps["bigmem-preferred"]["policy"], steps["bigmem-preferred"]["cpuset_mems"]) == \
        ("preferred", None)
    assert steps["web-interleave"]["policy"] == "interleave"
    assert steps["web-interleave"]["nodes"] == [0, 1, 2]
    db = steps["db-hugepages"]
    assert db["hugepage_size_bytes"] == 2 * MiB and node_bytes(db["placed"]) == {3: 8 * GiB}
    assert {a["name"] for a in doc["allocations"]} == set(names)
    assert doc["scenario"]["name"] == "article-host (bound-last start order)"
    assert [n["id"] for n in doc["nodes"]] == [0, 1, 2, 3]
    assert doc["swap_free_before_bytes"] == 2 * GiB
    assert rc == (1 if doc["oom_events"] or any(a["failed_bytes"] for a in doc["allocations"])
                  else 0)
    json.dumps(doc)  # plain JSON types only


def test_renaming_a_guest_does_not_change_who_dies(capsys, tmp_path):
    """Issue 10: a snapshot's guests were simulated in name order, so renaming one changed who
    died.  Renamed so that name order flips, the same guest (by its new name) dies."""
    _, before = run_json(capsys, without_live(tmp_path))
    snap = tmp_path / "renamed"
    shutil.copytree(ARTICLE, snap, ignore=shutil.ignore_patterns("run"))
    for f in (snap / "domains").iterdir():
        text = f.read_text()
        name = re.search(r"<name>([^<]+)</name>", text).group(1)
        f.write_text(text.replace(f"<name>{name}</name>", f"<name>{name[::-1]}</name>"))
    _, after = run_json(capsys, snap)
    assert [e["victim"][::-1] for e in after["oom_events"]] == \
        [e["victim"] for e in before["oom_events"]] != []
    assert [s["name"][::-1] for s in after["steps"]] == [s["name"] for s in before["steps"]]


def test_a_snapshot_with_live_files_starts_from_what_the_guests_hold(capsys, tmp_path):
    """Issue 13: the article host's captured live files say vm1, web-interleave and
    bigmem-preferred run: the simulation puts back what each holds now, on its nodes (bind,
    whatever mode --compare plays), from the host before them (MemFree plus what they hold),
    then every guest grows by what it lacks; db-hugepages (shut off) starts in full."""
    rc, doc = run_json(capsys, ARTICLE)
    _, static = run_json(capsys, without_live(tmp_path))
    held = [s for s in doc["steps"] if s["label"].endswith(" holds now")]
    assert [(s["name"], s["policy"], s["nodes"], s["requested_bytes"]) for s in held] == [
        ("bigmem-preferred", "bind", [0], 48 * MiB), ("vm1", "bind", [0], 200 * MiB),
        ("web-interleave", "bind", [0], 128 * MiB), ("web-interleave", "bind", [1], 128 * MiB),
        ("web-interleave", "bind", [2], 128 * MiB)]
    grow = {s["name"]: s["requested_bytes"] for s in guest_ram(doc["steps"][len(held):])}
    full = {s["name"]: s["requested_bytes"] for s in guest_ram(static["steps"])}
    # what a running guest holds counts against its QEMU's own memory (10 MiB) first
    assert grow == {"vm1": full["vm1"] - 190 * MiB, "db-hugepages": full["db-hugepages"],
                    "web-interleave": full["web-interleave"] - 374 * MiB,
                    "bigmem-preferred": full["bigmem-preferred"] - 38 * MiB}
    # only db-hugepages, which starts, has QEMU's own memory still to take
    assert [s["name"] for s in doc["steps"][len(held):]
            if s["label"].endswith("QEMU's own")] == ["db-hugepages", "db-hugepages"]
    before = {n["id"]: n["free_before_bytes"] for n in doc["nodes"]}
    was = {n["id"]: n["free_before_bytes"] for n in static["nodes"]}
    assert before == {0: was[0] + 376 * MiB, 1: was[1] + 128 * MiB, 2: was[2] + 128 * MiB,
                      3: was[3]}
    assert doc["scenario"]["name"] == "article-host (live: bound-last growth order)"
    _, modes = run_json(capsys, ARTICLE, "--compare", "interleave")
    assert [s["policy"] for s in modes["compare"]["interleave"]["steps"][:len(held)]] == \
        ["bind"] * len(held)


def test_a_running_qemu_without_a_definition_is_host_memory(capsys, tmp_path):
    """vm1's QEMU runs (its pid file and cgroup are captured) but its domain XML is gone: its
    200 MiB stay what MemFree says (used), it is neither put back nor grown; the audit's
    live state lists only the defined guests."""
    snap = tmp_path / "article-host"
    shutil.copytree(ARTICLE, snap)
    (snap / "domains" / "vm1.xml").unlink()
    _, doc = run_json(capsys, snap)
    assert "vm1" not in {s["name"] for s in doc["steps"]}
    assert {s["name"] for s in doc["steps"] if s["label"].endswith(" holds now")} == \
        {"bigmem-preferred", "web-interleave"}
    capsys.readouterr()
    assert cli.main(["audit", str(snap), "--format", "json", "--fail-on", "never"]) == 0
    audit = json.loads(capsys.readouterr().out)
    assert sorted(g["name"] for g in audit["live"]["guests"]) == ["bigmem-preferred",
                                                                  "web-interleave"]


def test_order_goes_with_a_snapshot(capsys):
    rc, _, err = run(capsys, ROOT / "examples/scenarios/article-vm1-app.toml", "--order", "name")
    assert rc == 2 and err.startswith("numaguard simulate: ") and "--order" in err


def test_scenario_file_can_name_a_snapshot_and_its_own_steps(capsys, tmp_path):
    scenario = tmp_path / "on-article.toml"
    rel = os.path.relpath(ARTICLE, tmp_path)
    scenario.write_text(f'snapshot = "{rel}"\n\n[[step]]\nname = "app"\nsize = "20GiB"\n'
                        'cpu_node = 2\n')
    rc, doc = run_json(capsys, scenario)
    assert rc == 0 and doc["scenario"]["name"] == "on-article"
    placed = node_bytes(doc["steps"][0]["placed"])
    assert next(iter(placed)) == 2 and sum(placed.values()) == 20 * GiB


def test_snapshot_with_cells_restrictive_and_multi_node_preferred(capsys, tmp_path):
    snap = tmp_path / "snap"
    write_sysfs(str(snap / "host"), [SynthNode(0, "0-3", 8 * 1024 * 1024, 7 * 1024 * 1024),
                                     SynthNode(1, "4-7", 8 * 1024 * 1024, 7 * 1024 * 1024)],
                [[10, 20], [20, 10]], swap_total_kib=0, swap_free_kib=0)
    domains = snap / "domains"
    domains.mkdir()
    (domains / "a.xml").write_text(domain_xml(
        "a-cells", 4 * 1024 * 1024, 4, mode="strict", nodeset="0-1",
        cells=[("0-1", 2 * 1024 * 1024), ("2-3", 2 * 1024 * 1024)],
        memnodes=[(0, "strict", "0"), (1, "strict", "1")]))
    (domains / "b.xml").write_text(domain_xml("b-restrictive", 1024 * 1024, 2,
                                              mode="restrictive", nodeset="1"))
    (domains / "c.xml").write_text(domain_xml("c-preferred", 1024 * 1024, 2, cpuset="4-7",
                                              mode="preferred", nodeset="0-1"))
    (domains / "d.xml").write_text(domain_xml("d-none", 1024 * 1024, 2, cpuset="4-5"))
    rc, doc = run_json(capsys, snap, "--order", "name")  # the steps by guest name
    assert rc == 0
    steps = [(s["name"], s["label"], s["policy"], s["nodes"], s["cpuset_mems"], s["cpu_node"])
             for s in doc["steps"]]
    # QEMU's own memory before each guest's RAM: default policy on the emulator's node (its
    # first unit's), inside the emulator cgroup's cpuset.mems (strict: the union; restrictive:
    # the nodeset)
    assert [s for s in steps if s[1].endswith("QEMU's own")] == [
        ("a-cells", "a-cells QEMU's own", "default", None, [0, 1], 0),
        ("b-restrictive", "b-restrictive QEMU's own", "default", None, [1], 1),
        ("c-preferred", "c-preferred QEMU's own", "default", None, None, 1),
        ("d-none", "d-none QEMU's own", "default", None, None, 1)]
    steps = [s for s in steps if not s[1].endswith("QEMU's own")]
    assert steps == [
        # strict <memory>: bind per cell, cgroup cpuset.mems = the union of the nodesets
        ("a-cells", "a-cells cell 0", "bind", [0], [0, 1], 0),
        ("a-cells", "a-cells cell 1", "bind", [1], [0, 1], 1),
        # restrictive: no QEMU policy, cgroups only
        ("b-restrictive", "b-restrictive", "default", [1], [1], 1),
        # preferred over two nodes: MPOL_PREFERRED_MANY; vCPUs pinned to node 1's CPUs
        ("c-preferred", "c-preferred", "preferred-many", [0, 1], None, 1),
        # no <numatune>: local allocation on the node its pinned vCPUs run on
        ("d-none", "d-none", "default", None, None, 1),
    ]
    # one task per guest (the QEMU process): its cells add up in allocations
    a = next(x for x in doc["allocations"] if x["name"] == "a-cells")
    assert node_bytes(a["placed"]) == {0: 2 * GiB + 10 * MiB, 1: 2 * GiB}


def test_snapshot_without_guests_is_an_error(capsys, tmp_path):
    snap = tmp_path / "snap"
    write_sysfs(str(snap / "host"), [SynthNode(0, "0-3", 1024 * 1024, 900 * 1024)], [[10]])
    (snap / "domains").mkdir()
    rc, _, err = run(capsys, snap)
    assert rc == 2 and "no guests to simulate" in err and len(err.splitlines()) == 1


# -- watermarks derived the kernel's way ---------------------------------------------------------

def test_derived_watermarks_follow_the_kernel_formula(capsys, tmp_path):
    scenario = tmp_path / "w.toml"
    scenario.write_text("""
[host]
[[host.nodes]]
id = 0
mem_total = "3GiB"
[[host.nodes]]
id = 1
mem_total = "1GiB"
[[step]]
name = "t"
size = "1MiB"
""")
    rc, doc = run_json(capsys, scenario)
    assert rc == 0
    # By hand (mm/page_alloc.c): lowmem = 4 GiB = 4194304 KiB; min_free_kbytes =
    # int_sqrt(4194304 * 16) = 8192 KiB -> pages_min = 8192 >> 2 = 2048 pages, split by
    # managed pages (786432 + 262144 = 1048576):
    #   node 0: min = 2048 * 786432 / 1048576 = 1536; low = 1536 + max(1536 >> 2 = 384,
    #           mult_frac(786432, 10, 10000) = 78 * 10 + 6432 * 10 / 10000 = 786) = 2322
    #   node 1: min = 512; low = 512 + max(128, 26 * 10 + 2144 * 10 / 10000 = 262) = 774
    marks = {n["id"]: (n["watermark_min_bytes"], n["watermark_low_bytes"]) for n in doc["nodes"]}
    assert marks == {0: (1536 * PAGE, 2322 * PAGE), 1: (512 * PAGE, 774 * PAGE)}
    # mem_free defaults to mem_total
    assert [n["free_before_bytes"] for n in doc["nodes"]] == [3 * GiB, 1 * GiB]


def test_given_watermarks_and_min_free_kbytes_are_used(capsys, tmp_path):
    scenario = tmp_path / "w.toml"
    scenario.write_text("""
[host]
min_free_kbytes = 65536
[[host.nodes]]
id = 0
mem_total = "4GiB"
watermark_min = "100MiB"
watermark_low = "200MiB"
[[host.nodes]]
id = 1
mem_total = "4GiB"
[[step]]
name = "t"
size = "1MiB"
""")
    _, doc = run_json(capsys, scenario)
    marks = {n["id"]: (n["watermark_min_bytes"], n["watermark_low_bytes"]) for n in doc["nodes"]}
    # node 1: pages_min = 65536 >> 2 = 16384, half of it; low = min + max(8192 >> 2, 1048) pages
    assert marks == {0: (100 * MiB, 200 * MiB), 1: (8192 * PAGE, (8192 + 2048) * PAGE)}


# -- bad input: exit 2, one line naming the file and the key ---------------------------------------

GOOD_HOST = """
[host]
distances = [[10, 21], [21, 10]]
swap = "1GiB"
[[host.nodes]]
id = 0
cpus = "0-3"
mem_total = "8GiB"
[[host.nodes]]
id = 1
cpus = "4-7"
mem_total = "8GiB"
"""
STEP = '\n[[step]]\nname = "vm1"\nsize = "1GiB"\n'


@pytest.mark.parametrize("text, where", [
    (GOOD_HOST + STEP + 'policy = "binded"\nnodes = "0"\n',
     ("step[0].policy: unknown policy 'binded' (default, bind, preferred, preferred-many, "
      "interleave)")),
    (GOOD_HOST + STEP + STEP + 'polcy = "bind"\n', "step[1].polcy: unknown key"),
    (GOOD_HOST + STEP + 'policy = "bind"\nnodes = "0-5"\n',
     "step[0].nodes: node 2-5 is not a host node (0-1)"),
    (GOOD_HOST + STEP + 'policy = "bind"\n', "step[0].nodes: missing"),
    (GOOD_HOST + STEP + 'policy = "preferred"\nnodes = "0-1"\n',
     "step[0].nodes: policy 'preferred' takes one node"),
    (GOOD_HOST + STEP + 'nodes = "1,^1"\n', "step[0].nodes:"),
    (GOOD_HOST + STEP + 'cpu_node = 7\n', "step[0].cpu_node: node 7 is not a host node"),
    (GOOD_HOST + STEP + 'cpu_node = "0"\n', "step[0].cpu_node: expected an integer"),
    (GOOD_HOST + STEP + 'action = "touch"\n', "step[0].action: unknown action 'touch'"),
    (GOOD_HOST + STEP + 'action = "free"\npolicy = "bind"\n', "step[0].policy: not used by"),
    (GOOD_HOST + STEP + 'hugepage_size = "2MiB"\n', "step[0].hugepage_size: no node has a pool"),
    (GOOD_HOST + STEP + 'oom_score_adj = 2000\n', "step[0].oom_score_adj: 2000 is out of range"),
    (GOOD_HOST + '\n[[step]]\nname = "x"\nsize = "12 parsecs"\n',
     "step[0].size: unknown unit 'parsecs'"),
    (GOOD_HOST + '\n[[step]]\nname = "x"\n', "step[0].size: missing"),
    (GOOD_HOST + '\n[[step]]\nsize = "1GiB"\n', "step[0].name: missing"),
    (GOOD_HOST, "step: missing"),
    (STEP, "host: missing"),
    (GOOD_HOST.replace('mem_total = "8GiB"\n[[host.nodes]]', 'mem_total = "8GiB"\n'
                       'mem_free = "9GiB"\n[[host.nodes]]'), "host.nodes[0].mem_free: larger"),
    (GOOD_HOST.replace("[[10, 21], [21, 10]]", "[[10, 21]]") + STEP,
     "host.distances: expected a 2x2 matrix"),
    (GOOD_HOST.replace('swap = "1GiB"', 'swap = "1GiB"\nfallback = [[0, 1], [1, 2]]') + STEP,
     "host.fallback[1]: node 2 is not a host node"),
    (GOOD_HOST.replace('swap = "1GiB"', 'swapp = "1GiB"') + STEP, "host.swapp: unknown key"),
    (GOOD_HOST.replace("id = 1", "id = 0") + STEP, "host.nodes[1].id: node 0 is defined twice"),
    (GOOD_HOST.replace('cpus = "0-3"', 'cpus = "0-"') + STEP, "host.nodes[0].cpus:"),
    (GOOD_HOST.replace('mem_total = "8GiB"', 'mem_total = 8.5', 1) + STEP,
     "host.nodes[0].mem_total: expected a size"),
    ('snapshot = "nowhere"\n' + STEP, "snapshot: 'nowhere' is not a directory"),
    ('snapshot = "."\n' + GOOD_HOST + STEP, "snapshot: give [host] or snapshot, not both"),
    ('nmae = "x"\n' + GOOD_HOST + STEP, "nmae: unknown key"),
    (GOOD_HOST + STEP + 'size = "2GiB"\n', ":"),  # duplicate key: a TOML error with its line
    ("[host\n", ":1: invalid TOML"),
])
def test_bad_scenarios_exit_2_with_one_line_naming_file_and_key(capsys, tmp_path, text, where):
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    rc, out, err = run(capsys, path)
    assert rc == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"numaguard simulate: {path}")
    assert where in lines[0], lines[0]


def test_missing_source_and_non_utf8(capsys, tmp_path):
    rc, _, err = run(capsys, tmp_path / "nope.toml")
    assert rc == 2 and "no such file or directory" in err
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"\xff\xfe")
    rc, _, err = run(capsys, bad)
    assert rc == 2 and "not UTF-8" in err and len(err.splitlines()) == 1


def test_free_steps_and_a_killed_task_restarting(capsys, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(GOOD_HOST + STEP + 'cpu_node = 0\n' +
                    '\n[[step]]\nname = "vm1"\naction = "free"\nsize = "512MiB"\n' +
                    '\n[[step]]\nname = "vm1"\naction = "free"\n')
    rc, doc = run_json(capsys, path)
    assert rc == 0
    freed = [node_bytes(s["placed"]) for s in doc["steps"][1:]]
    assert freed == [{0: -512 * MiB}, {0: -512 * MiB}]
    assert doc["steps"][2]["requested_bytes"] == 0
    assert doc["nodes"][0]["free_bytes"] == 8 * GiB


def test_colour_output_only_adds_escapes(capsys):
    import re

    from numaguard.core.scenario import compare, play
    from numaguard.readers.scenario import load_scenario
    from numaguard.report.simulate import simulate_text

    scenario = load_scenario(str(SCENARIOS / "article-vm1-app.toml"))
    for runs in ((play(scenario),), compare(scenario, ["strict", "preferred"])):
        plain = simulate_text(runs)
        coloured = simulate_text(runs, color=True)
        assert "\x1b[1;31m" in coloured  # the OOM kill stands out
        assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_control_characters_in_names_are_neutralised(capsys, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(GOOD_HOST + '\n[[step]]\nname = "evil\\u001b[31m"\nsize = "1GiB"\n')
    rc, out, _ = run(capsys, path)
    assert rc == 0 and "\x1b" not in out and "evil\\x1b[31m" in out


def test_qemu_overhead_sets_each_qemus_own_memory(capsys, tmp_path):
    """--qemu-overhead: a production QEMU with devices takes more than the measured 10 MiB;
    the lazily touched guests take it all before their RAM, db-hugepages (preallocated) 4 MiB
    before and the rest after."""
    _, doc = run_json(capsys, without_live(tmp_path), "--qemu-overhead", "300MiB")
    own = {}
    for s in doc["steps"]:
        if s["label"] == f"{s['name']} QEMU's own":
            own.setdefault(s["name"], []).append(s["requested_bytes"])
    assert own == {"bigmem-preferred": [300 * MiB], "web-interleave": [300 * MiB],
                   "vm1": [300 * MiB], "db-hugepages": [4 * MiB, 296 * MiB]}
    _, none = run_json(capsys, without_live(tmp_path / "2"), "--qemu-overhead", "0")
    assert not [s for s in none["steps"] if s["label"].endswith("QEMU's own")]
    assert len(none["steps"]) == 4


@pytest.mark.parametrize(("value", "why"), [("12x", "unknown unit"), ("-1", "invalid size"),
                                            ("9EiB", "too large")])
def test_a_bad_qemu_overhead_is_one_line(capsys, tmp_path, value, why):
    rc, out, err = run(capsys, without_live(tmp_path), "--qemu-overhead", value)
    assert rc == 2 and out == "" and len(err.splitlines()) == 1
    assert "--qemu-overhead" in err and why in err


def test_qemu_overhead_goes_with_a_snapshot_not_a_scenario_file(capsys):
    rc, out, err = run(capsys, SCENARIOS / "article-fig5-strict.toml", "--qemu-overhead", "1G")
    assert rc == 2 and out == "" and len(err.splitlines()) == 1
    assert "--qemu-overhead goes with a snapshot directory" in err
