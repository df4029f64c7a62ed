"""The chain domain XML -> libvirt's QEMU command line -> the kernel's placement -> numaguard.

Each experiment of ``CHAIN`` takes one domain of ``qemu/domains/`` and the QEMU argv libvirt
9.0.0 wrote for it (``qemu/argv/NAME.json``, ``virsh domxml-to-native qemu-argv``; every
``host-nodes`` is ``[0]`` there because the host that ran libvirtd has one node,
docs/qemu-argv.md) and runs that argv's memory and NUMA part verbatim inside the 3-node oracle
kernel (oracle_init.sh ``qemu_start`` with ``qarg`` plan lines), with these changes, recorded in
every result (``chain`` in results/qemu/chain/NAME.json):

* ``host-nodes`` of every memory backend and ``node-affinity`` of every thread-context are
  replaced by the experiment's nodes of the oracle VM (``nodes``; libvirt writes both from the
  same ``<numatune>`` nodeset, qemuBuildMemoryBackendProps / qemuBuildThreadContextProps);
* dropped (``DROPPED``): the binary path (the step runs as ``/bin/NAME``, a symlink, so the
  OOM killer names it), the ``secret`` object (its key file lives in libvirt's state directory),
  the monitor ``-chardev``/``-mon`` (a socket in that directory), ``-device``/``-audiodev``
  (no memory or NUMA part; the USB controller and balloon need nothing but add noise);
* a guest libvirt does not preallocate (no ``prealloc`` in its backends) boots
  ``-kernel /plans/touchN.bin`` (tests/support/guestkernel.py: writes one word per page of
  N MiB of guest RAM from the vCPU thread, then halts) instead of ``-S``: first touch happens
  from the vCPU thread, as in production.  N = the guest's memory less ``TOUCH_SLACK_MIB``
  (the image touches from 2 MiB on and needs 3 MiB of room);
* libvirt's cgroup: a strict ``<memory>`` puts the emulator in a cgroup whose ``cpuset.mems``
  is the nodeset (libvirt qemuProcessSetupEmulator -> qemuSetupCpusetMems), so does the
  restrictive mode; the step sets the same ``cpuset.mems``;
* the emulator is pinned (taskset) to the CPU of the node numaguard assumes for an unpinned
  guest (core.scenario ``_cpu_node``: the first node of the nodeset).

numaguard's side (``predict``) is a snapshot directory: ``host/`` = the oracle VM's sysfs and
proc as measured just before the experiment (per-node MemTotal/MemFree, distances, CPUs,
zoneinfo watermarks, ``vm.min_free_kbytes``) and ``domains/NAME.xml`` = the domain XML with the
same nodesets substituted; played by ``numaguard simulate``'s path (readers.scenario
``load_scenario`` then core.scenario ``play``).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.oracle import oracle_lib as ol
from tests.oracle import qemu_oracle as qo
from tests.support.guestkernel import kernel_image
from tests.support.synth import SynthNode, write_sysfs

HERE = Path(__file__).resolve().parent
DOMAINS = HERE / "qemu" / "domains"
ARGV = HERE / "qemu" / "argv"
RESULTS_DIR = qo.RESULTS_DIR / "chain"
BOOT = "qchain"
NODE_MIB = [512, 768, 384]
STEP = "vm1"
TOUCH_SLACK_MIB = 3
#: options dropped from libvirt's argv, with the reason (recorded in every result)
DROPPED = {
    "-chardev": "the monitor socket lives in libvirt's state directory",
    "-mon": "the monitor on that socket",
    "-device": "no memory or NUMA part (USB controller, balloon)",
    "-audiodev": "goes with the devices",
}
DROPPED_OBJECTS = {"secret": "its key file lives in libvirt's state directory"}
#: the q3 host of scenarios/qemu/*.toml (nominal; the comparison uses the measured values)
HOST = {
    "distances": [[10, 21, 21], [21, 10, 21], [21, 21, 10]],
    "fallback": [[0, 1, 2], [1, 2, 0], [2, 0, 1]],
    "nodes": [{"id": 0, "cpus": "0", "mem_total": "450MiB", "mem_free": "430MiB"},
              {"id": 1, "cpus": "1", "mem_total": "760MiB", "mem_free": "740MiB"},
              {"id": 2, "cpus": "2", "mem_total": "375MiB", "mem_free": "300MiB"}],
}


@dataclass(frozen=True)
class Chain:
    """One experiment: domain *domain* with ``<memory nodeset>`` = *nodes* and
    ``<memnode cellid=N nodeset>`` = *memnodes[N]*."""

    name: str
    domain: str
    nodes: str
    memnodes: Mapping[int, str] = field(default_factory=dict)
    note: str = ""


CHAIN = [
    Chain("chain-strict", "strict", "1"),
    Chain("chain-preferred", "preferred", "0"),
    Chain("chain-interleave", "interleave", "1-2"),
    Chain("chain-restrictive", "restrictive", "2"),
    Chain("chain-immediate", "immediate", "1"),
    Chain("chain-memnodes", "memnodes", "1-2", {0: "1", 1: "1-2"}),
]


def by_name() -> dict[str, Chain]:
    return {c.name: c for c in CHAIN}


def node_list(text: str) -> list[int]:
    return sorted(ol._cpulist(text))


def recorded_argv(c: Chain) -> list[str]:
    return list(json.loads((ARGV / f"{c.domain}.json").read_text())["argv"])


def domain_root(c: Chain) -> ET.Element:
    return ET.fromstring((DOMAINS / f"{c.domain}.xml").read_text())


def numatune(c: Chain) -> tuple[str, dict[int, str]]:
    """The domain's ``<memory mode>`` and its ``<memnode>`` modes by cell."""
    nt = domain_root(c).find("numatune")
    assert nt is not None, c.domain
    mem = nt.find("memory")
    mode = mem.get("mode", "strict") if mem is not None else "strict"
    return mode, {int(m.get("cellid", "0")): m.get("mode", "strict") for m in nt.findall("memnode")}


def substituted_xml(c: Chain) -> str:
    """The domain XML with the experiment's nodesets."""
    root = domain_root(c)
    nt = root.find("numatune")
    assert nt is not None
    for el in nt:
        if el.tag == "memory":
            el.set("nodeset", c.nodes)
        elif el.tag == "memnode":
            el.set("nodeset", c.memnodes[int(el.get("cellid", "0"))])
    return ET.tostring(root, encoding="unicode") + "\n"


def _cell_nodes(c: Chain, backend_id: str) -> list[int]:
    if backend_id.startswith("ram-node") and c.memnodes:
        return node_list(c.memnodes[int(backend_id[len("ram-node"):])])
    return node_list(c.nodes)


def prealloc(c: Chain) -> bool:
    return any('"prealloc":true' in a for a in recorded_argv(c))


def guest_mib(c: Chain) -> int:
    argv = recorded_argv(c)
    return int(argv[argv.index("-m") + 1])


def touch_mib(c: Chain) -> int:
    return guest_mib(c) - TOUCH_SLACK_MIB


def kernel_file(c: Chain) -> str:
    return f"touch{touch_mib(c)}.bin"


def oracle_argv(c: Chain) -> tuple[list[str], list[dict[str, Any]]]:
    """The argv run in the oracle and what was changed: ``(argv, changes)``."""
    src = recorded_argv(c)[1:]
    out: list[str] = []
    changes: list[dict[str, Any]] = [{"dropped": recorded_argv(c)[:1],
                                      "why": "runs as /bin/<step name>, a symlink to it"}]
    lazy = not prealloc(c)
    i = 0
    while i < len(src):
        opt = src[i]
        val = src[i + 1] if i + 1 < len(src) and not src[i + 1].startswith("-") else None
        step = 2 if val is not None else 1
        if opt in DROPPED:
            changes.append({"dropped": [opt, val], "why": DROPPED[opt]})
        elif opt == "-S" and lazy:
            changes.append({"dropped": ["-S"], "why": "lazily touched: the guest kernel "
                            "touches its RAM from the vCPU thread instead"})
        elif opt == "-object" and val is not None and val.startswith("{"):
            obj = json.loads(val)
            kind = obj["qom-type"]
            if kind in DROPPED_OBJECTS:
                changes.append({"dropped": [opt, val], "why": DROPPED_OBJECTS[kind]})
            else:
                new = dict(obj)
                if "host-nodes" in obj:
                    new["host-nodes"] = _cell_nodes(c, obj["id"])
                if "node-affinity" in obj:
                    new["node-affinity"] = _cell_nodes(c, obj["id"].removeprefix("tc-"))
                text = json.dumps(new, separators=(",", ":"))
                if new != obj:
                    changes.append({"substituted": [val, text]})
                out += [opt, text]
        else:
            out += [opt] + ([val] if val is not None else [])
        i += step
    if lazy:
        out += ["-kernel", f"/plans/{kernel_file(c)}"]
        changes.append({"added": ["-kernel", f"/plans/{kernel_file(c)}"],
                        "why": f"tests/support/guestkernel.py touching {touch_mib(c)} MiB"})
    return out, changes


def cpu_node(c: Chain) -> int:
    return node_list(c.nodes)[0]


def cpuset_mems(c: Chain) -> str | None:
    mode, _ = numatune(c)
    return c.nodes if mode in ("strict", "restrictive") else None


def scenario(c: Chain) -> ol.ScenarioFile:
    """The harness's view (plans, parsing): one QEMU step of the guest's size."""
    mode, _ = numatune(c)
    policy = {"strict": "bind", "preferred": "preferred", "interleave": "interleave",
              "restrictive": "default"}[mode]
    step: dict[str, Any] = {"name": STEP, "size": f"{guest_mib(c)}MiB", "policy": policy,
                            "cpu_node": cpu_node(c), "policy_scope": "vma"}
    if policy != "default":
        step["nodes"] = c.nodes
    if (mems := cpuset_mems(c)) is not None:
        step["cpuset_mems"] = mems
    doc = {"name": c.name, "description": f"libvirt's argv of domains/{c.domain}.xml, nodeset "
           f"{c.nodes}", "host": HOST, "step": [step],
           "oracle": {"boot": BOOT, "node_mib": NODE_MIB, "qemu": [STEP]}}
    return ol.ScenarioFile(c.name, DOMAINS / f"{c.domain}.xml", doc)


def plan_text(chains: list[Chain]) -> str:
    """qemu_oracle.plan_text of the chain's scenarios plus one ``qarg STEP ARG`` line per
    argument; a lazily touched guest's step waits for the touched size, not the guest's."""
    out = []
    for c in chains:
        argv, _ = oracle_argv(c)
        for line in qo.plan_text([scenario(c)]).splitlines():
            parts = line.split()
            if parts[:1] == ["step"] and parts[3] == "qemu" and not prealloc(c):
                parts[6] = str(touch_mib(c) * 1024)
                line = " ".join(parts)
            out.append(line)
            if parts[:1] == ["exp"]:
                out += [f"qarg {STEP} {a}" for a in argv]
    return "\n".join(out) + "\n"


def plan_files(chains: list[Chain]) -> dict[str, bytes]:
    """The guest kernels the plans name (``/plans/touchN.bin``)."""
    return {kernel_file(c): kernel_image(touch_mib(c)) for c in chains if not prealloc(c)}


# -- the kernel's side ---------------------------------------------------------------------------

def guest_rows(text: str) -> list[dict[str, Any]]:
    """Guest-RAM mappings of a QEMU's numa_maps: the anonymous ones with a policy (one per
    memory backend), else the largest anonymous one (a backend without host-nodes)."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2 or "file=" in line or "anon=" not in line:
            continue
        nodes = {n: int(p) * 4 * ol.KiB for n, p in
                 re.findall(r"\bN(\d+)=(\d+)", line)}
        rows.append({"address": parts[0], "policy": parts[1], "nodes": nodes,
                     "bytes": sum(nodes.values())})
    bound = [r for r in rows if r["policy"] != "default"]
    if bound:
        return bound
    return [max(rows, key=lambda r: r["bytes"])] if rows else []


def kernel_guest(result: Mapping[str, Any], maps: str) -> dict[str, int]:
    total: dict[str, int] = {}
    for r in guest_rows(maps):
        for n, b in r["nodes"].items():
            total[n] = total.get(n, 0) + b
    return dict(sorted(total.items()))


# -- numaguard's side ----------------------------------------------------------------------------

def write_snapshot(directory: Path, c: Chain, host: Mapping[str, Any]) -> Path:
    """A snapshot of the oracle VM as measured (*host*: a result's ``host``) with the
    experiment's domain XML."""
    nodes = [SynthNode(n["id"], n["cpus"], n["mem_total"] // ol.KiB, n["mem_free"] // ol.KiB)
             for n in host["nodes"]]
    root = directory / "host"
    write_sysfs(str(root), nodes, host["distances"], numa_balancing=0)
    zone = []
    for n in host["nodes"]:
        zone += [f"Node {n['id']}, zone   Normal",
                 f"  pages free     {n['mem_free'] // 4096}",
                 f"        min      {n['watermark_min'] // 4096}",
                 f"        low      {n['watermark_low'] // 4096}",
                 f"        high     {n['watermark_high'] // 4096}"]
    (root / "proc" / "zoneinfo").write_text("\n".join(zone) + "\n")
    vm = root / "proc" / "sys" / "vm"
    vm.mkdir(parents=True, exist_ok=True)
    (vm / "min_free_kbytes").write_text(f"{host['min_free_kbytes']}\n")
    (directory / "domains").mkdir(parents=True, exist_ok=True)
    (directory / "domains" / f"{c.name}.xml").write_text(substituted_xml(c))
    return directory


def predict(snapshot: Path) -> tuple[dict[str, int], list[tuple[str | None, str | None]]]:
    """``numaguard simulate SNAPSHOT``'s path: guest RAM per node (all the guest's steps) and
    the OOM events (victim, constraint)."""
    from numaguard.core.scenario import play
    from numaguard.readers.scenario import load_scenario

    run = play(load_scenario(str(snapshot)))
    placed: dict[str, int] = {}
    events = []
    for s in run.result.steps:
        for n, b in s.placed.items():
            if b:
                placed[str(n)] = placed.get(str(n), 0) + b
        events += [(e.victim, e.constraint) for e in s.oom]
    return dict(sorted(placed.items())), events


def load_result(c: Chain) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{c.name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def kernel_events(result: Mapping[str, Any]) -> list[tuple[str | None, str | None]]:
    return [(e.get("victim"), e.get("constraint")) for e in result["oom_events"]]


def compare(c: Chain, result: Mapping[str, Any], snapshot: Path) -> dict[str, Any]:
    """Kernel vs numaguard for one experiment: guest RAM per node within max(2 % of the
    guest's memory, 4 MiB), OOM events exactly."""
    write_snapshot(snapshot, c, result["host"])
    sim, sim_ev = predict(snapshot)
    kern = result["chain"]["guest_placed"]
    tol = ol.tolerance(guest_mib(c) * ol.MiB)
    problems = []
    for n in sorted(set(kern) | set(sim)):
        d = kern.get(n, 0) - sim.get(n, 0)
        if abs(d) > tol:
            problems.append(f"node {n}: kernel {kern.get(n, 0) / ol.MiB:.1f} MiB, numaguard "
                            f"{sim.get(n, 0) / ol.MiB:.1f} MiB (tolerance {tol / ol.MiB:.1f})")
    if kernel_events(result) != sim_ev:
        problems.append(f"OOM kernel {kernel_events(result)}, numaguard {sim_ev}")
    return {"kernel": kern, "numaguard": sim, "problems": problems, "agree": not problems}


def mib_text(placed: Mapping[str, int]) -> str:
    return " ".join(f"N{n}={b / ol.MiB:.1f}" for n, b in sorted(placed.items()) if b) or "-"


def policy_text(c: Chain) -> str:
    root = ET.fromstring(substituted_xml(c))
    nt = root.find("numatune")
    assert nt is not None
    parts = []
    for el in nt:
        cell = f"cell{el.get('cellid')} " if el.tag == "memnode" else ""
        parts.append(f"{cell}{el.get('mode')} {el.get('nodeset')}")
    alloc = root.find("memoryBacking/allocation")
    if alloc is not None:
        parts.append(f"allocation {alloc.get('mode')}")
    return "; ".join(parts)


def backend_text(c: Chain) -> str:
    argv, _ = oracle_argv(c)
    out = []
    for i, a in enumerate(argv):
        if a == "-object" and "memory-backend" in argv[i + 1]:
            o = json.loads(argv[i + 1])
            props = [f"host-nodes={o['host-nodes']}".replace(" ", "")] if "host-nodes" in o \
                else []
            props += [f"policy={o['policy']}"] if "policy" in o else []
            props += ["prealloc"] if o.get("prealloc") else []
            props += [f"context {o['prealloc-context']}"] if "prealloc-context" in o else []
            out.append(f"{o['id']}: " + (",".join(props) or "default"))
    return "; ".join(out)


def table_rows(tmp: Path, expected_fail: Mapping[str, str] | None = None) -> list[list[str]]:
    rows = []
    for c in CHAIN:
        result = load_result(c)
        if result is None:
            continue
        cmp = compare(c, result, tmp / c.name)
        rows.append([f"{c.domain}.xml", policy_text(c), backend_text(c),
                     mib_text(cmp["kernel"]) + "".join(f" OOM->{v}" for v, _ in
                                                       kernel_events(result)),
                     mib_text(cmp["numaguard"]),
                     "yes" if cmp["agree"] else "no: " + "; ".join(cmp["problems"])])
    return rows


def chain_record(c: Chain, exp: Mapping[str, bytes], result: Mapping[str, Any]) -> dict[str, Any]:
    """What a chain result adds: the domain, the substitution, libvirt's argv and the one run,
    and the guest RAM per node over all of the QEMU's guest mappings (numa_maps)."""
    argv, changes = oracle_argv(c)
    step = result["steps"][0]
    alive = step["tasks_after"].get(STEP, {}).get("state") == "alive"
    src = f"s0.{STEP}.numa_maps" if alive else f"s0.{STEP}.last_numa_maps"
    maps = ol._txt(exp, src)
    rows = guest_rows(maps)
    return {"domain": f"tests/oracle/qemu/domains/{c.domain}.xml",
            "argv_file": f"tests/oracle/qemu/argv/{c.domain}.json",
            "nodeset": c.nodes, "memnodes": {str(k): v for k, v in c.memnodes.items()},
            "domain_xml_run": substituted_xml(c), "argv_run": argv, "changes": changes,
            "cpu_node": cpu_node(c), "cpuset_mems": cpuset_mems(c),
            "touch_mib": None if prealloc(c) else touch_mib(c),
            "guest_placed": kernel_guest(result, maps), "guest_mappings": rows,
            "guest_source": src}
