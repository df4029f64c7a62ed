"""Real QEMU inside the kernel oracle: plans, parsing and the simulator's equivalent.

The scenarios in ``scenarios/qemu/*.toml`` are numaguard scenarios plus an ``[oracle]`` table
(``boot``, ``node_mib``, ``qemu``: the steps run as QEMU) like the hog scenarios of
``oracle_lib``.  A QEMU step is Debian's ``qemu-system-x86_64`` 7.2 (TCG, ``-S``) started by the
guest's /init (``oracle_init.sh`` ``qemu_start``) with guest RAM as libvirt 9 writes it for a
``<numatune><memory mode=... nodeset=...>`` guest with one cell and
``<allocation mode='immediate'>`` (the case where libvirt asks for ``prealloc``)::

    -object '{"qom-type":"memory-backend-ram","id":"ram-node0","size":N,
              "host-nodes":[1],"policy":"bind","prealloc":true}'
    -numa node,nodeid=0,cpus=0,memdev=ram-node0 -S

(libvirt src/qemu/qemu_command.c ``qemuBuildMemoryBackendProps``: ``host-nodes`` and ``policy``
from the numatune, ``prealloc`` for immediate allocation; QEMU backends/hostmem.c applies them
with ``mbind(2)`` on the RAM mapping - a VMA policy - and touches every page in
``host_memory_backend_memory_complete``.)  The emulator thread is pinned to the CPU of
``cpu_node`` (taskset), and runs as ``/bin/<step name>`` (a symlink to the binary) so that the
OOM killer's reports name the guest.

Measured per QEMU, from ``/proc/PID/numa_maps`` after its step (or the last look before it
died): ``guest`` - pages of the guest-RAM mapping per node (the VMA with a non-default policy,
else the largest anonymous one); ``own`` - every other anonymous page (QEMU's heap, thread
stacks, TCG buffers: QEMU's own memory); ``file`` - mapped file pages (qemu and its libraries, in
the tmpfs bound to ``ng.rootnode``).

The simulator's equivalent of a QEMU step (``simulator_steps``), one task: a default-policy
step of ``OVERHEAD_BEFORE`` on the QEMU's CPU node (its own memory allocated at start-up before
the backend), the guest RAM as the scenario's step (a VMA-bound policy, ``policy_scope =
"vma"``), and ``OVERHEAD_AFTER`` on the CPU node (the rest of its start-up, after prealloc).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from numaguard.core.scenario import QEMU_OWN, QEMU_OWN_BEFORE_PREALLOC
from tests.oracle import oracle_lib as ol

SCENARIO_DIR = ol.SCENARIO_DIR / "qemu"
RESULTS_DIR = ol.RESULTS_DIR / "qemu"
#: the node the QEMU initramfs is copied to (a tmpfs with mpol=bind) before switch_root
ROOT_NODE = 2
#: QEMU's own memory (-S, one vCPU, -nodefaults, TCG) as the simulator is given it, on the
#: QEMU's CPU node: what it allocates before the memory backend's prealloc and after it.
#: Measured (results/qemu/qemu-bind-n1-cpu0.json, guest RAM bound to node 1, QEMU on node 0's
#: CPU): node 0's MemFree fell 9.9 MiB, of which 7.9 MiB anonymous in numa_maps (heap, thread
#: stacks, TCG buffers), the rest page tables and kernel objects; QEMUs killed during prealloc
#: had 3.6-3.7 MiB anonymous memory at their last look (qemu-cpuset-bind-oom,
#: qemu-n1-killed-for-n0): about 4 MiB comes before the guest RAM, the rest after it.
#: ``numaguard simulate`` plays the same figures for a preallocated guest (core/scenario.py).
OVERHEAD_BEFORE = QEMU_OWN_BEFORE_PREALLOC
OVERHEAD_AFTER = QEMU_OWN - QEMU_OWN_BEFORE_PREALLOC


def results_dir(thp: str = "never") -> Path:
    """results/qemu/ for THP=never, results/qemu/thp-<mode>/ for the other boots."""
    return RESULTS_DIR if thp == "never" else RESULTS_DIR / f"thp-{thp}"


def load_qemu_scenarios(directory: Path = SCENARIO_DIR) -> list[ol.ScenarioFile]:
    return ol.load_scenarios(directory)


def qemu_names(scn: ol.ScenarioFile) -> set[str]:
    return set(scn.oracle.get("qemu", []))


def plan_text(group: list[ol.ScenarioFile]) -> str:
    """``oracle_lib.plan_text`` with the QEMU steps' action ``qemu`` instead of ``alloc``."""
    out = []
    for s in group:
        names = qemu_names(s)
        for line in ol.plan_text([s]).splitlines():
            parts = line.split()
            if parts[:1] == ["step"] and parts[2] in names and parts[3] == "alloc":
                parts[3] = "qemu"
                line = " ".join(parts)
            out.append(line)
    return "\n".join(out) + "\n"


def qemu_command(s: ol.ScenarioFile, kernel_image: str, initrd: str, plan: str,
                 qemu: str = "qemu-system-x86_64") -> list[str]:
    """The outer qemu: ``oracle_lib.qemu_command`` plus ``ng.rootnode`` on the kernel line."""
    cmd = ol.qemu_command(s, kernel_image, initrd, plan, qemu)
    i = cmd.index("-append") + 1
    cmd[i] += f" ng.rootnode={ROOT_NODE}"
    return cmd


# -- numa_maps -------------------------------------------------------------------------------

def split_numa_maps(text: str) -> dict[str, Any]:
    """A QEMU's /proc/PID/numa_maps as bytes per node: guest RAM, its own anonymous memory,
    mapped files; and the guest mapping's policy as numa_maps prints it (``bind:1``)."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        kb = int(m.group(1)) if (m := re.search(r"kernelpagesize_kB=(\d+)", line)) else 4
        nodes = {n: int(p) * kb * ol.KiB for n, p in re.findall(r"\bN(\d+)=(\d+)", line)}
        anon = int(m.group(1)) if (m := re.search(r"\banon=(\d+)", line)) else 0
        rows.append({"policy": parts[1], "file": "file=" in line, "anon": anon,
                     "nodes": nodes})
    anon_rows = [r for r in rows if not r["file"] and r["anon"]]
    guest = next((r for r in anon_rows if r["policy"] != "default"), None)
    if guest is None and anon_rows:
        guest = max(anon_rows, key=lambda r: r["anon"])

    def total(sel) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in sel:
            for n, b in r["nodes"].items():
                out[n] = out.get(n, 0) + b
        return dict(sorted(out.items()))

    return {"guest": total([guest] if guest else []),
            "guest_policy": guest["policy"] if guest else None,
            "own": total(r for r in rows if not r["file"] and r is not guest),
            "file": total(r for r in rows if r["file"])}


def experiment_result(scn: ol.ScenarioFile, boot: Mapping[str, bytes],
                      exp: Mapping[str, bytes], meta: Mapping[str, Any]) -> dict[str, Any]:
    """``oracle_lib.experiment_result`` (hog steps, OOM reports, MemFree, host) with each QEMU
    step's placement taken from its numa_maps: ``placed`` = guest RAM, ``own_placed``."""
    res = ol.experiment_result(scn, boot, exp, meta)
    names = qemu_names(scn)
    argv = {}
    for line in ol._txt(exp, "qemu.argv").splitlines():
        name, _, rest = line.partition(" ")
        argv[name] = rest
    for rec in res["steps"]:
        i, name = rec["index"], rec["name"]
        if rec["action"] == "alloc":
            rec["kind"] = "qemu" if name in names else "hog"
        for tname, st in rec["tasks_after"].items():
            if tname in names and st["state"] == "alive":
                maps = split_numa_maps(ol._txt(exp, f"s{i}.{tname}.numa_maps"))
                st["resident"] = maps["guest"]
                st["own_resident"] = maps["own"]
                st["file_resident"] = maps["file"]
        if rec.get("kind") != "qemu":
            continue
        rec["qemu_argv"] = argv.get(name)
        alive = rec["tasks_after"].get(name, {}).get("state") == "alive"
        src = f"s{i}.{name}.numa_maps" if alive else f"s{i}.{name}.last_numa_maps"
        maps = split_numa_maps(ol._txt(exp, src))
        rec.update({"placed": maps["guest"], "own_placed": maps["own"],
                    "file_placed": maps["file"], "guest_policy": maps["guest_policy"],
                    "placed_source": "numa_maps" if alive else "numa_maps (last look)",
                    "stderr": ol._txt(exp, f"s{i}.err")[-2000:]})
        if alive:
            rec["outcome"] = "completed"
        elif rec.get("outcome") != "oom-killed":
            rec["outcome"] = "died"
        else:
            _placed_at_kill(rec, name)
        rec.pop("touched_bytes", None)
    res["tasks_end"] = res["steps"][-1]["tasks_after"] if res["steps"] else {}
    return res


def _placed_at_kill(rec: dict[str, Any], name: str) -> None:
    """A QEMU the OOM killer took during its own step: the last look at its numa_maps is up
    to 0.3 s old (prealloc went on); the kill line's ``anon-rss`` (mm/oom_kill.c
    __oom_kill_process: MM_ANONPAGES at the kill) less its own anonymous memory is the guest RAM
    it had.  Exact where the guest mapping had one node (or, without a look, is bound to one);
    several nodes keep the last look."""
    kill = next((e for e in rec["oom_events"] if e.get("victim") == name
                 and "victim_anon_rss_kb" in e), None)
    guest = rec["placed"]
    if not guest and rec.get("policy") == "bind" and str(rec.get("nodes")).isdigit():
        guest = {str(rec["nodes"]): 0}
    if kill is None or len(guest) != 1:
        return
    at_kill = kill["victim_anon_rss_kb"] * ol.KiB - sum(rec["own_placed"].values())
    rec["placed_last_look"] = dict(rec["placed"])
    rec["placed"] = {next(iter(guest)): at_kill}
    rec["placed_source"] = "anon-rss of the kill line less own anonymous memory"


# -- the simulator's side ----------------------------------------------------------------------

def overhead(scn: ol.ScenarioFile) -> tuple[int, int]:
    """QEMU's own memory before and after its guest RAM ([oracle] qemu_overhead_before/after
    override the measured defaults)."""
    o = scn.oracle
    return (ol.size_bytes(o.get("qemu_overhead_before", OVERHEAD_BEFORE)),
            ol.size_bytes(o.get("qemu_overhead_after", OVERHEAD_AFTER)))


def simulator_steps(scn: ol.ScenarioFile) -> tuple[list[dict[str, Any]], list[int], list[str]]:
    """The scenario's steps with each QEMU step as three steps of one task (see the module
    docstring): its own memory before the guest RAM, the guest RAM (the scenario's step), its own
    memory after; per simulator step the index of the scenario step it stands for, and its part
    ("own-before", "guest", "own-after"; "hog" for the other steps)."""
    names = qemu_names(scn)
    before, after = overhead(scn)
    out: list[dict[str, Any]] = []
    origin: list[int] = []
    part: list[str] = []
    for i, st in enumerate(scn.steps):
        if st["name"] not in names or st.get("action", "alloc") != "alloc":
            out.append(dict(st))
            origin.append(i)
            part.append("hog")
            continue
        own = {"name": st["name"], "cpu_node": st.get("cpu_node", 0)}
        if "cpuset_mems" in st:
            own["cpuset_mems"] = st["cpuset_mems"]
        out += [{**own, "size": before}, dict(st), {**own, "size": after}]
        origin += [i, i, i]
        part += ["own-before", "guest", "own-after"]
    return out, origin, part


def simulate(result: Mapping[str, Any], scn: ol.ScenarioFile):
    from numaguard.core.simulate import simulate as sim

    steps, origin, part = simulator_steps(scn)
    host, parsed = ol.simulator_input(result, ol.ScenarioFile(scn.name, scn.path,
                                                              {**scn.doc, "step": steps}))
    return sim(host, parsed), origin, part


def compare(result: Mapping[str, Any], scn: ol.ScenarioFile,
            spread: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None
            ) -> ol.Comparison:
    """Kernel vs simulator: per QEMU step its guest RAM per node within max(2 % of the
    request, 4 MiB) and its own memory per node within 4 MiB; per hog step its placement
    within the same tolerance; per scenario step the OOM events (victim, constraint) in order;
    at the end who was killed.  *spread* (THP=always: the kernel's measured run-to-run spread,
    ``{step index: {"guest"|"own": {node: bytes}}}``) widens each node's tolerance to it where
    it is larger - except for the guest RAM of a step that ends in an OOM: that is the node's
    free memory at the start, which varies from boot to boot and which the simulator is given
    per run, so its spread over boots is the start's, not the kernel's."""
    spread = spread or {}
    sim, origin, part = simulate(result, scn)
    names = qemu_names(scn)
    cmp = ol.Comparison(result["scenario"])
    for k in result["steps"]:
        i, name = k["index"], k["name"]
        rows = {part[j]: s for j, s in enumerate(sim.steps) if origin[j] == i}
        s_ev = [(e.victim, e.constraint) for s in rows.values() for e in s.oom]
        k_ev = [(e.get("victim"), e.get("constraint")) for e in k["oom_events"]]
        if k["action"] == "alloc":
            guest = rows.get("guest") or rows["hog"]
            tol = ol.tolerance(k["requested_bytes"])
            sp = {str(n): b for n, b in guest.placed.items() if b}
            tag = "" if k["outcome"] == "completed" else f" ({k['outcome']})"
            line_k = f"{name}: {ol._placement(k.get('placed'))}"
            line_s = f"{name}: {ol._placement(sp)}"
            if name in names:
                own_s: dict[str, int] = {}
                for s in (rows["own-before"], rows["own-after"]):
                    for n, b in s.placed.items():
                        if b:
                            own_s[str(n)] = own_s.get(str(n), 0) + b
                line_k += f" own {ol._placement(k.get('own_placed'))}"
                line_s += f" own {ol._placement(own_s)}"
                _within_spread(cmp, f"step {i} {name} own memory", k.get("own_placed") or {},
                               own_s, ol.TOL_FLOOR, spread.get(str(i), {}).get("own", {}))
            cmp.kernel.append(line_k + tag + ol._events_text(k_ev))
            cmp.simulator.append(line_s + (f" failed={ol._mib(guest.failed)}"
                                           if guest.failed else "") + ol._events_text(s_ev))
            _within_spread(cmp, f"step {i} {name} placed", k.get("placed") or {}, sp, tol,
                           {} if k_ev else spread.get(str(i), {}).get("guest", {}))
        if k_ev != s_ev:
            cmp.problems.append(f"step {i} {name}: OOM kernel {k_ev or 'none'}, simulator "
                                f"{s_ev or 'none'}")
    for a in sim.allocations:
        kt = result.get("tasks_end", {}).get(a.name)
        if kt is not None and (kt["state"] == "killed") != a.oom_killed:
            cmp.problems.append(f"end {a.name}: kernel {kt['state']}, simulator "
                                f"{'OOM-killed' if a.oom_killed else 'alive'}")
    return cmp


def _within_spread(cmp: ol.Comparison, what: str, kernel: Mapping[str, int],
                   sim: Mapping[str, int], tol: int, spread: Mapping[str, int]) -> None:
    """``oracle_lib._within`` node by node, at max(*tol*, that node's measured spread)."""
    for n in sorted(set(kernel) | set(sim), key=int):
        ol._within(cmp, what, {n: kernel.get(n, 0)}, {n: sim.get(n, 0)},
                   max(tol, spread.get(n, 0)))


def steps_for_simulate(scn: ol.ScenarioFile) -> str:
    """The simulator's equivalent as a ``numaguard simulate`` scenario file (nominal host)."""
    steps, _, _ = simulator_steps(scn)
    doc = {k: v for k, v in scn.doc.items() if k != "oracle"}
    return ol.format_toml({**doc, "step": steps})
