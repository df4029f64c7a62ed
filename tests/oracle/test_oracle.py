"""The simulator against a real kernel: every recorded oracle run, replayed on every test run.

tests/oracle/results/<scenario>.json is what Debian's 6.1 kernel did under qemu (``make
oracle`` re-records it; see run_oracle.py).  Each test feeds the simulator the measured
starting state (per-node MemFree just before the experiment, zone watermarks, the boot's
fallback lines, SwapFree) and the scenario's steps - through numaguard's scenario reader, the
path ``numaguard simulate`` takes - and requires, per step: placement per node and swap within
max(2 % of the request, 4 MiB), and the same OOM events (victim, constraint) in the same steps.
Scenarios the model cannot follow are listed in known.py with the kernel behaviour that
explains them and run as strict xfails.
"""

from __future__ import annotations

import json

import pytest

from tests.oracle import oracle_lib as ol
from tests.oracle.known import KNOWN_DISAGREEMENTS

SCENARIOS = {s.name: s for s in ol.load_scenarios()}
RESULTS = {p.stem: p for p in sorted(ol.RESULTS_DIR.glob("*.json"))}


def _load(name: str) -> dict:
    return json.loads(RESULTS[name].read_text())


def _params():
    out = []
    for name in RESULTS:
        marks = []
        if name in KNOWN_DISAGREEMENTS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_DISAGREEMENTS[name]))
        out.append(pytest.param(name, id=name, marks=marks))
    return out


@pytest.mark.parametrize("name", _params())
def test_simulator_agrees_with_the_kernel(name):
    result = _load(name)
    scn = SCENARIOS[result["scenario"]]
    cmp = ol.compare(result, ol.simulate_result(result, scn))
    assert cmp.agree, "\n".join(
        cmp.problems + ["kernel:    " + "; ".join(cmp.kernel),
                        "simulator: " + "; ".join(cmp.simulator)])


def _disagreeing(mutate) -> set[str]:
    """Scenarios that disagree when *mutate(result, steps)* alters the simulator's input."""
    import copy

    out = set()
    for name in RESULTS:
        if name in KNOWN_DISAGREEMENTS:
            continue
        result = copy.deepcopy(_load(name))
        scn = SCENARIOS[name]
        steps = copy.deepcopy(scn.steps)
        mutate(result, steps)
        scn = ol.ScenarioFile(scn.name, scn.path, {**scn.doc, "step": steps})
        if not ol.compare(result, ol.simulate_result(result, scn)).agree:
            out.add(name)
    return out


def test_the_comparison_is_not_vacuous():
    """A simulator that ignored watermarks, zonelists, the CPU's node, cpusets or swap would
    fail named scenarios: the recorded runs are sensitive to each of them."""
    def no_watermarks(r, steps):
        for n in r["host"]["nodes"]:
            n["watermark_min"] = n["watermark_low"] = 0

    def local_then_id_order(r, steps):  # the naive zonelist, not build_zonelists()
        ids = [n["id"] for n in r["host"]["nodes"]]
        r["host"]["fallback"] = [[i] + [j for j in ids if j != i] for i in ids]

    def cpu_on_node_0(r, steps):
        for st in steps:
            if "cpu_node" in st:
                st["cpu_node"] = 0

    def no_cpuset(r, steps):
        for st in steps:
            st.pop("cpuset_mems", None)

    def no_swap(r, steps):
        r["host"]["swap"] = 0

    assert "n2-watermarks" in _disagreeing(no_watermarks)
    assert {"n3-default-cpu1", "n4-bind-cpu3", "n4-default-cpu1", "n4-interleave-all",
            "n4-preferred-3"} <= _disagreeing(local_then_id_order)
    assert {"n3-bind-cpu2", "n3-mbind-cpu1", "n4-bind-cpu3"} <= _disagreeing(cpu_on_node_0)
    assert {"n3-cpuset-fill", "n3-cpuset-oom"} <= _disagreeing(no_cpuset)
    assert {"n2-bind-swap", "n2-bind-swap-oom"} <= _disagreeing(no_swap)


def test_every_scenario_is_recorded_and_current():
    """A scenario added or edited without `make oracle` would be compared with nothing, or with
    a run of other steps."""
    assert set(SCENARIOS) == set(RESULTS), "run `make oracle` (missing or stale results)"
    for name, path in RESULTS.items():
        result = json.loads(path.read_text())
        steps = SCENARIOS[name].steps
        assert [s["name"] for s in result["steps"]] == [s["name"] for s in steps], name
        for rec, st in zip(result["steps"], steps, strict=True):
            assert rec["action"] == st.get("action", "alloc"), name
            if rec["action"] == "alloc":
                assert rec["requested_bytes"] == ol.size_bytes(st["size"]), name
                assert rec.get("policy", "default") == st.get("policy", "default"), name
                assert rec.get("cpuset_mems") == st.get("cpuset_mems"), name
                assert rec.get("policy_scope") == st.get("policy_scope"), name


def test_results_say_which_kernel_and_qemu():
    for name in RESULTS:
        r = _load(name)
        assert r["kernel"]["release"].startswith("6.1."), name
        assert "Debian" in r["kernel"]["version"], name
        assert r["kernel"]["thp"].endswith("[never]") and r["kernel"]["numa_balancing"] == "0"
        assert r["qemu"]["command"].startswith("qemu-system-x86_64 ") and "-accel tcg" in \
            r["qemu"]["command"], name
        assert len(r["fallback_lines"]) == len(r["host"]["nodes"]) + 1, name


def test_the_scenarios_cover_the_issue():
    """2, 3 and 4 nodes; unequal sizes; non-uniform distances; every policy; the CPU on
    different nodes; cgroup strict; swap; two hogs; OOMs of every constraint."""
    assert len(SCENARIOS) >= 12
    results = [_load(n) for n in RESULTS]
    assert {len(r["host"]["nodes"]) for r in results} >= {2, 3, 4}
    steps = [st for s in SCENARIOS.values() for st in s.steps]
    assert {st.get("policy", "default") for st in steps if st.get("action", "alloc") == "alloc"} \
        >= {"default", "bind", "preferred", "preferred-many", "interleave"}
    assert len({st.get("cpu_node") for st in steps}) >= 3
    assert any("cpuset_mems" in st for st in steps)
    assert any(st.get("policy_scope") == "vma" for st in steps)  # mbind(2), as QEMU does
    assert any(r["host"]["swap"] > 0 for r in results)
    assert any(len({st["name"] for st in s.steps}) > 1 for s in SCENARIOS.values())
    assert any(len({d for row in r["host"]["distances"] for d in row}) > 2 for r in results)
    assert any(len({n["mem_total"] // ol.MiB // 64 for n in r["host"]["nodes"]}) > 1
               for r in results)
    constraints = {e["constraint"] for r in results for e in r["oom_events"]}
    assert constraints >= {"memory-policy", "cpuset", "global"}
    victims_other = [e for r in results for e in r["oom_events"] if e["victim"] != e["invoker"]]
    assert victims_other, "a scenario where the OOM killer takes another task"


def test_fallback_orders_from_the_distances_match_the_boot():
    """numaguard's port of build_zonelists() against each boot's measured lines."""
    from numaguard.core.fallback import fallback_orders
    from numaguard.model.topology import Host, Node

    seen = set()
    for name in RESULTS:
        h = _load(name)["host"]
        key = json.dumps([h["distances"], [n["cpus"] for n in h["nodes"]]])
        if key in seen:
            continue
        seen.add(key)
        host = Host(nodes=tuple(Node(n["id"], frozenset(ol._cpulist(n["cpus"])),
                                     n["mem_total"]) for n in h["nodes"]),
                    distances=tuple(tuple(r) for r in h["distances"]))
        derived = fallback_orders(host)
        assert [list(derived[n["id"]]) for n in h["nodes"]] == h["fallback"], name


def test_scenario_files_are_numaguard_scenarios():
    """Without their [oracle] table the files are plain `numaguard simulate` input."""
    parse = pytest.importorskip("numaguard.readers.scenario").parse_scenario
    for scn in SCENARIOS.values():
        parsed = parse(ol.scenario_toml(scn), path=scn.path.name)
        assert [s.name for s in parsed.steps] == [s["name"] for s in scn.steps]


def test_plans_and_qemu_command_lines():
    boots = ol.group_boots(list(SCENARIOS.values()))
    for boot, group in boots.items():
        plan = ol.plan_text(group)
        assert plan.count("\nrun\n") + plan.startswith("run\n") == len(group)
        cmd = ol.qemu_command(group[0], "vmlinuz", "initrd", boot)
        assert cmd[-1] == "-no-reboot" and f"ng.plan={boot}" in cmd[cmd.index("-append") + 1]


# -- parsing the kernel log -------------------------------------------------------------------

OOM_SAMPLE = """\
[    7.862204] app invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO), order=0, oom_score_adj=0
[    7.864494] Node 0 active_anon:28kB inactive_anon:200584kB active_file:0kB inactive_file:0kB unevictable:0kB
[    7.869916] Free swap  = 0kB
[    7.870020] Tasks state (memory values in pages):
[    7.870027] [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name
[    7.870196] [    163]     0   163      565       35    28672        0         -1000 init
[    7.870232] [    165]     0   165   102677   102495   860160        0             0 vm1
[    7.870252] [    239]     0   239    77077    40323   364544        0             0 app
[    7.870285] oom-kill:constraint=CONSTRAINT_MEMORY_POLICY,nodemask=0,cpuset=/,mems_allowed=0-2,global_oom,task_memcg=/ng-vm1,task=vm1,pid=165,uid=0
[    7.871259] Out of memory: Killed process 165 (vm1) total-vm:410708kB, anon-rss:409660kB, file-rss:4kB, shmem-rss:336kB, UID:0 pgtables:840kB oom_score_adj:0
"""  # noqa: E501 (a kernel log as the kernel writes it)


def test_oom_report_parsing():
    (ev,) = ol.oom_events(OOM_SAMPLE)
    assert ev["invoker"] == "app" and ev["victim"] == "vm1" and ev["victim_pid"] == 165
    assert ev["constraint"] == "memory-policy" and ev["nodemask"] == "0"
    assert [t["name"] for t in ev["tasks"]] == ["init", "vm1", "app"]
    assert ev["tasks"][1]["rss_pages"] == 102495 and ev["node_anon_kb"] == {"0": 200612}
    assert ev["victim_anon_rss_kb"] == 409660 and ev["free_swap_kb"] == 0


def test_zoneinfo_watermarks_include_the_lowmem_protection():
    text = """Node 0, zone      DMA
  pages free     3776
        min      15
        low      18
        high     21
        managed  3840
        protection: (0, 183, 183, 183, 183)
Node 0, zone    DMA32
  pages free     44658
        min      197
        low      246
        high     295
        managed  48988
        protection: (0, 0, 0, 0, 0)
  pagesets
    cpu: 0
              count: 60
Node 0, zone   Normal
  pages free     0
        min      0
        low      0
        high     0
        managed  0
"""
    marks = ol.node_watermarks(ol.zoneinfo(text))
    assert marks[0]["min"] == (15 + 183 + 197) * 4096
    assert marks[0]["low"] == (18 + 183 + 246) * 4096
    assert marks[0]["raw_low"] == (18 + 246) * 4096 and marks[0]["pcp"] == 60 * 4096
