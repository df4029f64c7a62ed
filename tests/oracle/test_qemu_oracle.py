"""The simulator against real QEMU guests on a real kernel: every recorded QEMU oracle run.

tests/oracle/results/qemu/<scenario>.json is what Debian's qemu-system-x86_64 7.2 (TCG, -S, a
libvirt-style prealloc'd memory-backend-ram) did inside Debian's 6.1 kernel with emulated NUMA
nodes (``make oracle-qemu`` re-records it; see run_qemu_oracle.py, qemu_oracle.py).  Each test
feeds the simulator the measured starting state and the scenario with each QEMU as one task: its
own memory on its CPU's node around a VMA-bound guest-RAM step; and requires guest RAM per node
within max(2 % of the request, 4 MiB), QEMU's own memory per node within 4 MiB, the same OOM
events (victim, constraint) in the same steps and the same tasks killed.
"""

from __future__ import annotations

import copy
import json

import pytest

from tests.oracle import oracle_lib as ol
from tests.oracle import qemu_oracle as qo
from tests.oracle import run_qemu_oracle as rq

SCENARIOS = {s.name: s for s in qo.load_qemu_scenarios()}
RESULTS = {p.stem: p for p in sorted(qo.RESULTS_DIR.glob("*.json"))}
THP_RESULTS = {p.stem: p for p in sorted(qo.results_dir("always").glob("*.json"))}

#: THP=always: every recorded boot (the committed one, results/qemu/thp-always/, and the
#: repeated ones, boots/N/) and the kernel's run-to-run spread over them (spread.json, written by
#: ``run_qemu_oracle.py --spread``)
THP_BOOTS = rq.boot_dirs("always")
THP_RUNS = {(d.name if d.parent.name == "boots" else "0", p.stem): p
            for d in THP_BOOTS for p in sorted(d.glob("qemu-*.json"))}
THP_SPREAD = json.loads(rq.spread_path("always").read_text())

#: THP=always runs the simulator misses by more than the measured spread, per boot (QEMU.md)
OOM_FILL = (
    "vm2 bound to node 0 got {k} MiB of node 0's {free} MiB MemFree before its OOM by the "
    "kill line, the simulator {s}: the simulator fills node 0's free memory to its min "
    "watermark (24.1 MiB with THP's min_free_kbytes of 79700) and no further; the kernel also "
    "takes pages off the per-CPU lists, which MemFree leaves out. Measured at the OOM in boot 5 "
    "(the OOM report's show_free_areas, QEMU.md 'What the OOM runs under THP leave open'): node "
    "0's buddy free memory at its min watermark as the simulator has it, and 18.8 MiB of the "
    "39.6 MiB per-CPU lists gone into vm2 over the two OOM cycles (2.6 MiB in "
    "qemu-hog-not-candidate's one), 20.8 MiB still on the lists; how much the kernel gets "
    "off them does not follow from the start")
THP_KNOWN: dict[tuple[str, str], str] = {
    **{(b, "qemu-n1-killed-for-n0"): OOM_FILL.format(k=k, free=free, s=sim)
       for b, k, free, sim in (("0", 406.8, 409.3, 381.8), ("1", 401.4, 405.1, 377.2),
                               ("2", 412.9, 420.8, 392.7), ("3", 404.8, 412.7, 384.9),
                               ("4", 404.8, 411.5, 385.2), ("5", 400.8, 404.6, 377.5))},
    # the same shortfall, 10.3-11.2 MiB in four other boots, 6.7 in boot 5: inside 2 % of
    # 600 MiB
    ("1", "qemu-hog-not-candidate"): OOM_FILL.format(k=403.3, free=415.2, s=387.1),
}
#: THP=never's repeated boots (results/qemu/boots/N/), judged at the THP=never tolerance
NEVER_RUNS = {(d.name, p.stem): p for d in rq.boot_dirs("never")[1:]
              for p in sorted(d.glob("qemu-*.json"))}


def _read(path) -> dict:
    return json.loads(path.read_text())


def _load(name: str) -> dict:
    return _read(RESULTS[name])


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_simulator_agrees_with_the_kernel_running_qemu(name):
    result = _load(name)
    cmp = qo.compare(result, SCENARIOS[result["scenario"]])
    assert cmp.agree, "\n".join(
        cmp.problems + ["kernel:    " + "; ".join(cmp.kernel),
                        "simulator: " + "; ".join(cmp.simulator)])


@pytest.mark.parametrize(("boot", "name"), sorted(NEVER_RUNS),
                         ids=[f"boot{b}-{n}" for b, n in sorted(NEVER_RUNS)])
def test_simulator_agrees_on_the_repeated_thp_never_boots(boot, name):
    """The repeated THP=never boots at the THP=never tolerance (no spread)."""
    result = _read(NEVER_RUNS[boot, name])
    assert result["kernel"]["thp"].endswith("[never]")
    cmp = qo.compare(result, SCENARIOS[result["scenario"]])
    assert cmp.agree, "\n".join(cmp.problems)


def test_the_thp_never_spread_is_current():
    assert len(rq.boot_dirs("never")) >= 3
    assert rq.spread_record("never") == json.loads(rq.spread_path("never").read_text())


def _thp_params():
    return [pytest.param(boot, name, id=f"boot{boot}-{name}",
                         marks=[pytest.mark.xfail(strict=True, reason=THP_KNOWN[boot, name])]
                         if (boot, name) in THP_KNOWN else [])
            for boot, name in sorted(THP_RUNS)]


@pytest.mark.parametrize(("boot", "name"), _thp_params())
def test_simulator_agrees_with_the_kernel_running_qemu_thp_always(boot, name):
    """Every THP=always boot: placement per node within max(2 % of the request, 4 MiB, the
    kernel's spread for that experiment, step and node over the recorded boots), QEMU's own
    memory within max(4 MiB, its spread), OOM events and victims exactly; the runs the
    simulator misses by more than the spread are strict xfails with the kernel behaviour."""
    result = json.loads(THP_RUNS[boot, name].read_text())
    assert result["kernel"]["thp"].startswith("[always]")
    cmp = qo.compare(result, SCENARIOS[result["scenario"]], rq.spread_tolerance(name))
    assert cmp.agree, "\n".join(
        cmp.problems + ["kernel:    " + "; ".join(cmp.kernel),
                        "simulator: " + "; ".join(cmp.simulator)])


def test_thp_always_boots_are_recorded_and_the_spread_is_current():
    """At least 5 THP=always boots of every QEMU scenario, one kernel, and spread.json is what
    ``run_qemu_oracle.py --spread`` computes from them."""
    assert len(THP_BOOTS) >= 5
    for d in THP_BOOTS:
        assert {p.stem for p in d.glob("qemu-*.json")} == set(SCENARIOS), d
    assert {r["kernel"]["release"] for r in map(_read, THP_RUNS.values())} == {
        THP_SPREAD["kernel"]["release"]}
    assert rq.spread_record("always") == THP_SPREAD, "run tests/oracle/run_qemu_oracle.py --spread"


def test_thp_always_oom_events_are_the_same_in_every_boot():
    """The OOM killer's victims, constraints and nodemasks do not vary between boots."""
    for name in SCENARIOS:
        events = [rq.oom_events(_read(THP_RUNS[b, n])) for b, n in sorted(THP_RUNS) if n == name]
        assert all(e == events[0] for e in events), (name, events)
        assert THP_SPREAD["experiments"][name]["oom_same_in_every_boot"], name


def test_the_thp_spread_widens_only_qemus_own_memory():
    """What the measured spread lets through that the THP=never tolerance would not: only
    QEMU's own memory (its brk heap as 2 MiB pages in some boots, 8 or 18-19 MiB), never guest
    RAM, a hog's placement or an OOM event."""
    widened = set()
    for (boot, name), path in THP_RUNS.items():
        result, scn = _read(path), SCENARIOS[name]
        plain = set(qo.compare(result, scn).problems)
        spread = set(qo.compare(result, scn, rq.spread_tolerance(name)).problems)
        assert spread <= plain
        for p in plain - spread:
            assert " own memory: " in p, (boot, name, p)
            widened.add(name)
    assert widened, "the spread widened nothing: judge at the THP=never tolerance instead"


def test_every_qemu_scenario_is_recorded_and_current():
    assert set(SCENARIOS) == set(RESULTS), "run `make oracle-qemu` (missing or stale results)"
    for name, scn in SCENARIOS.items():
        r = _load(name)
        assert [s["name"] for s in r["steps"]] == [s["name"] for s in scn.steps], name
        for rec, st in zip(r["steps"], scn.steps, strict=True):
            assert rec["requested_bytes"] == ol.size_bytes(st["size"]), name
            assert rec["kind"] == ("qemu" if st["name"] in qo.qemu_names(scn) else "hog"), name
            assert rec.get("policy_scope") == st.get("policy_scope"), name


def test_results_say_which_kernel_qemu_and_command_lines():
    for name in RESULTS:
        r = _load(name)
        assert r["kernel"]["release"].startswith("6.1.") and "Debian" in r["kernel"]["version"]
        assert r["kernel"]["thp"].endswith("[never]") and r["kernel"]["numa_balancing"] == "0"
        assert r["qemu"]["version"].startswith("QEMU emulator version 7.2")
        assert r["qemu"]["command"].startswith("qemu-system-x86_64 ") and "-accel tcg" in \
            r["qemu"]["command"] and f"ng.rootnode={qo.ROOT_NODE}" in r["qemu"]["command"]
        for rec in r["steps"]:
            if rec["kind"] != "qemu":
                continue
            argv = rec["qemu_argv"]
            # the shape libvirt 9 emits for a one-cell guest with <allocation mode='immediate'>
            assert ' -S ' in f" {argv} " and '"qom-type":"memory-backend-ram"' in argv
            assert '"prealloc":true' in argv and "memdev=ram-node0" in argv
            assert f'"policy":"{rec["policy"]}"' in argv
            assert rec["guest_policy"].startswith(rec["policy"][:4]), name


def test_the_issue_facts_are_in_the_recorded_runs():
    """What the kernel did with real QEMU (the issue's first measured facts), read from the
    results themselves - not from the simulator."""
    killed_for_n0 = _load("qemu-n1-killed-for-n0")["oom_events"]
    # vm1's guest RAM is on node 1 only, yet it is node 0's first victim, then vm2
    assert [(e["victim"], e["nodemask"]) for e in killed_for_n0] == [("vm1", "0"), ("vm2", "0")]
    assert set(_load("qemu-n1-killed-for-n0")["steps"][0]["placed"]) == {"1"}
    # a set_mempolicy(MPOL_BIND) hog on node 1 is not even in node 0's candidate table
    hog = _load("qemu-hog-not-candidate")["steps"][1]["oom_events"]
    assert [t["name"] for e in hog for t in e["tasks"] if t["oom_score_adj"] > -1000] == ["vm2"]
    # cpuset.mems and a bind backend: the memory policy decides the constraint
    (strict,) = _load("qemu-cpuset-bind-oom")["oom_events"]
    assert strict["constraint"] == "memory-policy"
    # QEMU's own memory is on its CPU's node, not where its guest RAM is bound
    cpu0 = _load("qemu-bind-n1-cpu0")["steps"][0]
    assert set(cpu0["placed"]) == {"1"} and set(cpu0["own_placed"]) == {"0"}
    assert 4 * ol.MiB < cpu0["own_placed"]["0"] < 12 * ol.MiB


def _disagreeing(mutate, thp: bool = False) -> set[str]:
    """Runs (THP=never, or every THP=always boot judged with its spread) where a simulator
    given the *mutate*d scenario has a problem the real one has not."""
    runs = THP_RUNS if thp else {("0", n): p for n, p in RESULTS.items()}
    out = set()
    for (_, name), path in runs.items():
        scn, result = SCENARIOS[name], _read(path)
        doc = copy.deepcopy(dict(scn.doc))
        mutate(doc)
        spread = rq.spread_tolerance(name) if thp else None
        if set(qo.compare(result, ol.ScenarioFile(scn.name, scn.path, doc), spread).problems) \
                - set(qo.compare(result, scn, spread).problems):
            out.add(name)
    return out


def like_the_hog(doc):  # numactl --membind semantics, no own memory
    doc["oracle"] = {**doc["oracle"], "qemu": []}
    for st in doc["step"]:
        st.pop("policy_scope", None)


def no_own_memory(doc):
    doc["oracle"] = {**doc["oracle"], "qemu_overhead_before": 0, "qemu_overhead_after": 0}


def own_memory_with_the_guest(doc):
    for st in doc["step"]:
        if st.get("nodes") is not None and "," not in st["nodes"] and "-" not in st["nodes"]:
            st["cpu_node"] = int(st["nodes"])


def test_the_comparison_is_not_vacuous():
    """A simulator that modelled each QEMU like the C hog (a set_mempolicy task, no memory of
    its own), ignored QEMU's own memory or put it on the guest's node would fail named runs."""
    assert "qemu-n1-killed-for-n0" in _disagreeing(like_the_hog)
    assert {"qemu-bind-n1", "qemu-two-kill-other"} <= _disagreeing(no_own_memory)
    assert "qemu-bind-n1-cpu0" in _disagreeing(own_memory_with_the_guest)


def test_the_thp_always_comparison_is_not_vacuous():
    """With the spread, the same wrong simulators still fail THP=always runs (QEMU's own
    memory varies 8-19 MiB there in two scenarios, so its absence shows in the others)."""
    assert "qemu-n1-killed-for-n0" in _disagreeing(like_the_hog, True)
    assert {"qemu-bind-n1", "qemu-preferred-n0"} <= _disagreeing(no_own_memory, True)
    assert "qemu-bind-n1-cpu0" in _disagreeing(own_memory_with_the_guest, True)


def test_the_split_of_numa_maps():
    text = """\
56247b1cf000 default anon=20 dirty=20 active=0 N0=20 kernelpagesize_kB=4
5624964a3000 default heap anon=1026 dirty=1026 active=0 N0=1026 kernelpagesize_kB=4
7f88cfe00000 bind:1 anon=16384 dirty=16384 active=0 N1=16384 kernelpagesize_kB=4
7f88d4000000 default anon=512 dirty=512 active=0 N0=512 kernelpagesize_kB=4
7f891d8ef000 default
7f8913fff000 default file=/usr/bin/qemu-system-x86_64 mapped=300 N2=300 kernelpagesize_kB=4
"""
    m = qo.split_numa_maps(text)
    assert m["guest"] == {"1": 16384 * 4096} and m["guest_policy"] == "bind:1"
    assert m["own"] == {"0": (20 + 1026 + 512) * 4096} and m["file"] == {"2": 300 * 4096}


def test_plans_run_the_qemu_steps_as_qemu():
    plan = qo.plan_text([SCENARIOS["qemu-hog-not-candidate"]])
    assert "step 0 vm1 alloc bind 1 614400 1 - 0 set_mempolicy" in plan
    assert "step 1 vm2 qemu bind 0 614400 0 - 0 mbind" in plan
