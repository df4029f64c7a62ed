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
  guest (core.scenario ``_cpu_node``: the first node of the nodeset), or to its emulatorpin CPU;
* ``<vcpupin>``/``<emulatorpin>`` host CPUs are mapped onto the oracle VM's CPUs (``cpus``; CPU
  i is node i's only CPU), in the domain XML numaguard reads and for the threads: ``qpin`` plan
  lines pin each ``CPU N/TCG`` thread while QEMU is paused (libvirt qemuProcessSetupVcpus); a
  lazily touched pinned guest keeps ``-S`` and gets ``-monitor pipe:`` to be resumed (``cont``);
  ``smp_touch`` boots the guest kernel that starts vCPU 1 too, each vCPU touching half;
* hugepage guests: ``hugepages`` plan lines reserve the experiment's 2 MiB pools per node, a
  ``hugetlbfs`` line mounts hugetlbfs where libvirt's ``mem-path`` lies (``HUGETLBFS``) and makes
  the directory; the pools per node before/after each step are recorded (``chain.hugepages``).

numaguard's side (``predict``) is a snapshot directory: ``host/`` = the oracle VM's sysfs and
proc as measured just before the experiment (per-node MemTotal/MemFree, distances, CPUs,
zoneinfo watermarks, ``vm.min_free_kbytes``, 2 MiB pools' nr/free_hugepages) and
``domains/NAME.xml`` = the domain XML with the same nodesets substituted; played by
``numaguard simulate``'s path (readers.scenario ``load_scenario`` then core.scenario ``play``).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from numaguard.readers.sources import SNAPSHOT_SCHEMA
from tests.oracle import oracle_lib as ol
from tests.oracle import qemu_oracle as qo
from tests.support.guestkernel import kernel_image
from tests.support.synth import SynthNode, write_sysfs

HERE = Path(__file__).resolve().parent
DOMAINS = HERE / "qemu" / "domains"
ARGV = HERE / "qemu" / "argv"
RESULTS_DIR = qo.RESULTS_DIR / "chain"


def results_dir(thp: str = "never") -> Path:
    """results/qemu/chain/ (THP=never) or results/qemu/chain/thp-always/."""
    return RESULTS_DIR if thp == "never" else RESULTS_DIR / f"thp-{thp}"
BOOT = "qchain"
NODE_MIB = [512, 768, 384]
STEP = "vm1"
TOUCH_SLACK_MIB = 3
#: where libvirt's mem-path lies: qemu.conf's hugetlbfs_mount default, the mount systemd makes
#: (libvirt writes HUGETLBFS/libvirt/qemu/ID-NAME, qemuGetDomainHugepagePath)
HUGETLBFS = "/dev/hugepages"
HUGEPAGE_KIB = 2048
PAGE = 4096
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
class Guest:
    """One QEMU of an experiment: step (and domain) name *step*, domain file *domain* with
    ``<memory nodeset>`` = *nodes* and ``<memnode cellid=N nodeset>`` = *memnodes[N]*."""

    step: str
    domain: str
    nodes: str
    memnodes: Mapping[int, str] = field(default_factory=dict)
    #: ``<vcpupin vcpu=N cpuset>`` (key ``N``) and ``<emulatorpin cpuset>`` (key
    #: ``"emulator"``) mapped onto the oracle VM's CPUs (CPU i is node i's only CPU)
    cpus: Mapping[str, str] = field(default_factory=dict)
    #: the guest kernel starts vCPU 1 too and each vCPU touches half (guestkernel.py vcpus=2)
    smp_touch: bool = False

    def argv_recorded(self) -> list[str]:
        return list(json.loads((ARGV / f"{self.domain}.json").read_text())["argv"])

    def root(self) -> ET.Element:
        return ET.fromstring((DOMAINS / f"{self.domain}.xml").read_text())

    @property
    def mode(self) -> str:
        mem = self.root().find("numatune/memory")
        return mem.get("mode", "strict") if mem is not None else "strict"

    @property
    def prealloc(self) -> bool:
        return any('"prealloc":true' in a for a in self.argv_recorded())

    @property
    def mib(self) -> int:
        argv = self.argv_recorded()
        return int(argv[argv.index("-m") + 1])

    @property
    def touch_mib(self) -> int:
        return self.mib - TOUCH_SLACK_MIB

    @property
    def touch_vcpus(self) -> int:
        return 2 if self.smp_touch else 1

    @property
    def kernel_file(self) -> str:
        return f"touch{self.touch_mib}{'x2' if self.smp_touch else ''}.bin"

    @property
    def cpu_node(self) -> int:
        """The node of the emulator's CPU: its emulatorpin's, else the first of the nodeset."""
        if "emulator" in self.cpus:
            return cpu_nodes(self.cpus["emulator"])[0]
        return node_list(self.nodes)[0]

    @property
    def vcpu_pins(self) -> dict[int, str]:
        """vCPU -> oracle CPUs its thread is pinned to (libvirt's vcpupin)."""
        return {int(k): v for k, v in self.cpus.items() if k != "emulator"}

    @property
    def bound(self) -> bool:
        """Every memory backend has host-nodes (a policy numa_maps shows)."""
        backends = [o for o in self.objects() if o["qom-type"].startswith("memory-backend")]
        return bool(backends) and all("host-nodes" in o for o in backends)

    def hugetlbfs_dirs(self) -> list[str]:
        """The ``mem-path`` of every file backend (a directory on hugetlbfs, libvirt's
        per-domain directory under the hugetlbfs mount)."""
        return [obj["mem-path"] for obj in self.objects() if "mem-path" in obj]

    def objects(self) -> list[dict[str, Any]]:
        argv = self.argv_recorded()
        return [json.loads(argv[i + 1]) for i, a in enumerate(argv)
                if a == "-object" and argv[i + 1].startswith("{")]

    @property
    def cpuset_mems(self) -> str | None:
        return self.nodes if self.mode in ("strict", "restrictive") else None

    def xml(self) -> str:
        """The domain XML with the experiment's nodesets, named after the step."""
        root = self.root()
        name = root.find("name")
        assert name is not None
        name.text = self.step
        nt = root.find("numatune")
        for el in nt if nt is not None else ():
            if el.tag == "memory":
                el.set("nodeset", self.nodes)
            elif el.tag == "memnode":
                el.set("nodeset", self.memnodes[int(el.get("cellid", "0"))])
        ct = root.find("cputune")
        for el in ct if ct is not None else ():
            key = "emulator" if el.tag == "emulatorpin" else el.get("vcpu")
            if el.tag in ("vcpupin", "emulatorpin") and key is not None:
                el.set("cpuset", self.cpus[key])
        return ET.tostring(root, encoding="unicode") + "\n"

    def backend_nodes(self, backend_id: str) -> list[int]:
        if backend_id.startswith("ram-node") and self.memnodes:
            return node_list(self.memnodes[int(backend_id[len("ram-node"):])])
        return node_list(self.nodes)


@dataclass(frozen=True)
class Chain:
    """One experiment: its guests started one after another."""

    name: str
    guests: tuple[Guest, ...]
    #: node -> 2 MiB pages reserved in its pool before the experiment
    #: (/sys/devices/system/node/nodeN/hugepages/hugepages-2048kB/nr_hugepages; 0 after it)
    hugepages: Mapping[int, int] = field(default_factory=dict)

    @classmethod
    def one(cls, name: str, domain: str, nodes: str,
            memnodes: Mapping[int, str] | None = None, *,
            cpus: Mapping[str, str] | None = None, smp_touch: bool = False,
            hugepages: Mapping[int, int] | None = None) -> Chain:
        return cls(name, (Guest(STEP, domain, nodes, memnodes or {}, cpus or {}, smp_touch),),
                   hugepages or {})


CHAIN = [
    Chain.one("chain-strict", "strict", "1"),
    Chain.one("chain-preferred", "preferred", "0"),
    Chain.one("chain-interleave", "interleave", "1-2"),
    Chain.one("chain-restrictive", "restrictive", "2"),
    Chain.one("chain-immediate", "immediate", "1"),
    Chain.one("chain-memnodes", "memnodes", "1-2", {0: "1", 1: "1-2"}),
    # node 0 (512 MiB, ~440 MiB free): a second guest there overflows it (not node 2: the
    # tmpfs the harness writes its measurements to is bound there, ROOT_NODE)
    Chain("chain-n0-strict-oom", (Guest("vm1", "immediate", "0"), Guest("vm2", "strict", "0"))),
    Chain("chain-n0-preferred-spill", (Guest("vm1", "immediate", "0"),
                                       Guest("vm2", "preferred", "0"))),
    # 2 MiB pools reserved per node; libvirt's file backend on hugetlbfs (mounted where its
    # argv's mem-path lies) and its memfd backend with hugetlb
    Chain.one("chain-hugepages", "hugepages", "1", hugepages={0: 64, 1: 160}),
    Chain.one("chain-hugepages-memfd", "hugepages-memfd", "0", hugepages={0: 160, 1: 64}),
    # node 1's pool too small for the guest bound there, node 0's big enough: 192 pages in all
    Chain.one("chain-hugepages-short", "hugepages", "1", hugepages={0: 128, 1: 64}),
    # preferred (no cgroup): node 1's pool short, the rest from the next node with pages
    Chain.one("chain-hugepages-preferred", "hugepages-preferred", "1",
              hugepages={0: 96, 1: 64}),
    # host CPUs 0 and 1 of libvirt's vcpupin/emulatorpin mapped onto node CPUs of the VM
    Chain.one("chain-memnodes-immediate", "memnodes-immediate", "1-2", {0: "1", 1: "1-2"},
              cpus={"0": "1", "1": "2", "emulator": "1"}),
    # both vCPUs touch (guestkernel.py with 2 vCPUs), each from the CPU it is pinned to
    Chain.one("chain-pinned", "pinned", "1", cpus={"0": "0", "1": "2", "emulator": "0"},
              smp_touch=True),
    # strict over two nodes, vCPU 0 pinned to node 1's CPU, vCPU 1 to node 0's
    Chain.one("chain-pinned-split", "pinned", "0-1", cpus={"0": "1", "1": "0", "emulator": "0"},
              smp_touch=True),
    # the same with vCPU 0 alone touching (a guest whose boot CPU writes its memory)
    Chain.one("chain-pinned-split-bsp", "pinned", "0-1",
              cpus={"0": "1", "1": "0", "emulator": "0"}),
    # preallocated over two nodes: QEMU's prealloc threads (one per vCPU) in the thread-context
    # whose affinity is the nodeset's CPUs touch the guest RAM, not the vCPUs
    Chain.one("chain-immediate-split", "immediate", "1-2"),
]

#: repeated boots in which the kernel placed an experiment away from numaguard's prediction
#: by its own run-to-run variation (test_qemu_chain marks them xfail(strict=True); QEMU.md)
REPEAT_KNOWN: dict[tuple[str, str], str] = {
    (boot, "chain-immediate-split"): (
        "QEMU's two prealloc threads run where the scheduler puts them inside the "
        "thread-context's CPUs (nodes 1-2), and migrate while they touch: over 5 boots node 1 "
        f"got 0-182 MiB of the 256 ({placed} in this one); numaguard gives each node the "
        "share of its CPUs, 128 MiB, inside that range (2 of the 5 boots placed exactly that) "
        "(test_prealloc_threads_spread_the_guest_over_the_nodeset)")
    for boot, placed in (("6", "N1=0 N2=256"), ("8", "N1=144 N2=112"), ("9", "N1=182 N2=74"))
}

#: THP=always chain runs numaguard does not predict, (boot, experiment) -> the kernel
#: behaviour that explains it (test_qemu_chain marks them xfail(strict=True); QEMU.md)
THP_CHAIN_KNOWN: dict[tuple[str, str], str] = {
    ("2", "chain-restrictive"): (
        "node 2 (cpuset.mems of the restrictive guest) had 275.1 MiB MemFree, min 18.4: "
        "256.7 MiB above min for 256 MiB of guest RAM and 8.4 of QEMU's own, so numaguard "
        "OOM-kills vm1 9.3 MiB short; the kernel placed all of it without an OOM, taking the "
        "rest off the per-CPU lists, which held 42.3 MiB on node 2 at the start and which "
        "MemFree leaves out (the THP=always OOM runs of QEMU.md, 'What the OOM runs under THP "
        "leave open': how much of them an allocation gets is not predictable from the start); "
        "in boot 1 of the same experiment both OOM-kill vm1"),
}

#: experiments numaguard does not predict, with the kernel behaviour that explains it
#: (test_qemu_chain marks them xfail(strict=True); QEMU.md)
CHAIN_KNOWN: dict[str, str] = {
    "chain-pinned-split-bsp": (
        "the guest decides who first touches its memory: here vCPU 0 (pinned to CPU 1) alone "
        "touched all of it and the kernel's MPOL_BIND over 0-1 put all 253.8 MiB on node 1, "
        "vCPU 0's node (the local node first when the mask has it, mm/mempolicy.c); numaguard "
        "expects a guest whose work runs on all its vCPUs and splits the unit by its vCPUs' "
        "nodes (core.scenario _touching_nodes): 128 MiB on each node, as the kernel placed it "
        "with both vCPUs touching (chain-pinned-split)"),
}


def by_name() -> dict[str, Chain]:
    return {c.name: c for c in CHAIN}


def node_list(text: str) -> list[int]:
    return sorted(ol._cpulist(text))


def cpu_nodes(cpus: str) -> list[int]:
    """The oracle VM's nodes of a CPU list (one CPU per node: CPU i is on node i)."""
    return sorted(set(ol._cpulist(cpus)))


def oracle_argv(g: Guest) -> tuple[list[str], list[dict[str, Any]]]:
    """The argv run in the oracle for *g* and what was changed: ``(argv, changes)``."""
    recorded = g.argv_recorded()
    src = recorded[1:]
    out: list[str] = []
    changes: list[dict[str, Any]] = [{"dropped": recorded[:1],
                                      "why": "runs as /bin/<step name>, a symlink to it"}]
    lazy = not g.prealloc
    i = 0
    while i < len(src):
        opt = src[i]
        val = src[i + 1] if i + 1 < len(src) and not src[i + 1].startswith("-") else None
        step = 2 if val is not None else 1
        if opt in DROPPED:
            changes.append({"dropped": [opt, val], "why": DROPPED[opt]})
        elif opt == "-S" and lazy and not g.vcpu_pins:
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
                    new["host-nodes"] = g.backend_nodes(obj["id"])
                if "node-affinity" in obj:
                    new["node-affinity"] = g.backend_nodes(obj["id"].removeprefix("tc-"))
                text = json.dumps(new, separators=(",", ":"))
                if new != obj:
                    changes.append({"substituted": [val, text]})
                out += [opt, text]
        else:
            out += [opt] + ([val] if val is not None else [])
        i += step
    if lazy:
        out += ["-kernel", f"/plans/{g.kernel_file}"]
        changes.append({"added": ["-kernel", f"/plans/{g.kernel_file}"],
                        "why": f"tests/support/guestkernel.py touching {g.touch_mib} MiB"
                        + (" (vCPU 0 the first half, vCPU 1 the rest)" if g.smp_touch else "")})
    if lazy and g.vcpu_pins:
        out += ["-monitor", f"pipe:{monitor_pipe(g)}"]
        changes.append({"added": ["-monitor", f"pipe:{monitor_pipe(g)}"],
                        "why": "-S kept: as libvirt, /init pins the vCPU threads while QEMU "
                        "is paused, then resumes it (HMP cont on this pipe)"})
    if g.cpus:
        changes.append({"pinned": {k: g.cpus[k] for k in sorted(g.cpus)},
                        "why": "libvirt's vcpupin/emulatorpin host CPUs mapped onto the "
                        "oracle VM's (CPU i = node i): taskset of the emulator, "
                        "taskset -p of each 'CPU N/TCG' thread (qpin plan lines)"})
    return out, changes


def monitor_pipe(g: Guest) -> str:
    """QEMU's ``-monitor pipe:PATH`` opens PATH.in and PATH.out (fifos /init makes)."""
    return f"/run/{g.step}.mon"


def scenario(c: Chain) -> ol.ScenarioFile:
    """The harness's view (plans, parsing): one QEMU step per guest, of the guest's size."""
    steps = []
    for g in c.guests:
        policy = {"strict": "bind", "preferred": "preferred", "interleave": "interleave",
                  "restrictive": "default"}[g.mode]
        step: dict[str, Any] = {"name": g.step, "size": f"{g.mib}MiB", "policy": policy,
                                "cpu_node": g.cpu_node, "policy_scope": "vma"}
        if policy != "default":
            step["nodes"] = g.nodes
        if g.cpuset_mems is not None:
            step["cpuset_mems"] = g.cpuset_mems
        steps.append(step)
    doc = {"name": c.name, "description": "libvirt's argv of " + ", ".join(
               f"domains/{g.domain}.xml (nodeset {g.nodes})" for g in c.guests),
           "host": HOST, "step": steps,
           "oracle": {"boot": BOOT, "node_mib": NODE_MIB, "qemu": [g.step for g in c.guests]}}
    return ol.ScenarioFile(c.name, DOMAINS / f"{c.guests[0].domain}.xml", doc)


def plan_text(chains: list[Chain]) -> str:
    """qemu_oracle.plan_text of the chain's scenarios plus one ``qarg STEP ARG`` line per
    argument; a lazily touched guest's step waits for the touched size, not the guest's."""
    out = []
    for c in chains:
        guests = {g.step: g for g in c.guests}
        for line in qo.plan_text([scenario(c)]).splitlines():
            parts = line.split()
            if parts[:1] == ["step"] and parts[3] == "qemu" and not guests[parts[2]].prealloc:
                parts[6] = str(guests[parts[2]].touch_mib * 1024)
                line = " ".join(parts)
            out.append(line)
            if parts[:1] == ["exp"]:
                out += [f"hugepages {n} {pages}" for n, pages in sorted(c.hugepages.items())]
                for g in c.guests:
                    out += [f"hugetlbfs {HUGETLBFS} {d}" for d in g.hugetlbfs_dirs()]
                    out += [f"qpin {g.step} {v} {cpus}" for v, cpus in
                            sorted(g.vcpu_pins.items())]
                    out += [f"qarg {g.step} {a}" for a in oracle_argv(g)[0]]
    return "\n".join(out) + "\n"


def plan_files(chains: list[Chain]) -> dict[str, bytes]:
    """The guest kernels the plans name (``/plans/touchN.bin``)."""
    return {g.kernel_file: kernel_image(g.touch_mib, g.touch_vcpus) for c in chains
            for g in c.guests if not g.prealloc}


# -- the kernel's side ---------------------------------------------------------------------------

def guest_rows(text: str, bound: bool = False) -> list[dict[str, Any]]:
    """Guest-RAM mappings of a QEMU's numa_maps: the anonymous or hugetlb (``huge``: a
    hugetlbfs file or a hugetlb memfd) ones with a policy (one per memory backend), else the
    largest anonymous one (a backend without host-nodes; none when *bound*: every backend has
    host-nodes, so a QEMU without such a mapping has no guest RAM, e.g. one that failed to map
    it)."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        huge = "huge" in parts
        if len(parts) < 2 or not huge and ("file=" in line or "anon=" not in line):
            continue
        # Nn= counts pages of kernelpagesize_kB (2048 for a hugetlb mapping, fs/proc/
        # task_mmu.c gather_hugetlb_stats counts one per huge page)
        kb = int(m.group(1)) if (m := re.search(r"kernelpagesize_kB=(\d+)", line)) else 4
        nodes = {n: int(p) * kb * ol.KiB for n, p in
                 re.findall(r"\bN(\d+)=(\d+)", line)}
        rows.append({"address": parts[0], "policy": parts[1], "nodes": nodes,
                     "bytes": sum(nodes.values())})
    with_policy = [r for r in rows if r["policy"] != "default"]
    if with_policy:
        return with_policy
    return [max(rows, key=lambda r: r["bytes"])] if rows and not bound else []


def kernel_guest(maps: str, bound: bool = False) -> dict[str, int]:
    total: dict[str, int] = {}
    for r in guest_rows(maps, bound):
        for n, b in r["nodes"].items():
            total[n] = total.get(n, 0) + b
    return dict(sorted(total.items()))


# -- numaguard's side ----------------------------------------------------------------------------

def write_snapshot(directory: Path, c: Chain, host: Mapping[str, Any],
                   pools: Mapping[str, Mapping[str, int]] | None = None) -> Path:
    """A snapshot of the oracle VM as measured (*host*: a result's ``host``, taken before the
    experiment; *pools*: its 2 MiB hugepage pools then, node -> total/free pages, written as
    sysfs' nr_hugepages/free_hugepages) with the experiment's domain XMLs and their start
    order (snapshot.json)."""
    pools = pools or {}
    nodes = [SynthNode(n["id"], n["cpus"], n["mem_total"] // ol.KiB, n["mem_free"] // ol.KiB,
                       hugepages={HUGEPAGE_KIB: (pools[str(n["id"])]["total"],
                                                 pools[str(n["id"])]["free"])}
                       if str(n["id"]) in pools else {})
             for n in host["nodes"]]
    root = directory / "host"
    write_sysfs(str(root), nodes, host["distances"], numa_balancing=0)
    zone = []
    for n in host["nodes"]:
        zone += [f"Node {n['id']}, zone   Normal",
                 f"  pages free     {n['mem_free'] // PAGE}",
                 f"        min      {n['watermark_min'] // PAGE}",
                 f"        low      {n['watermark_low'] // PAGE}",
                 f"        high     {n['watermark_high'] // PAGE}"]
    (root / "proc" / "zoneinfo").write_text("\n".join(zone) + "\n")
    vm = root / "proc" / "sys" / "vm"
    vm.mkdir(parents=True, exist_ok=True)
    (vm / "min_free_kbytes").write_text(f"{host['min_free_kbytes']}\n")
    (directory / "domains").mkdir(parents=True, exist_ok=True)
    for g in c.guests:
        (directory / "domains" / f"{g.step}.xml").write_text(g.xml())
    (directory / "snapshot.json").write_text(json.dumps({
        "schema_version": SNAPSHOT_SCHEMA, "numaguard_version": "oracle",
        "captured_at": "2026-12-01T00:00:00Z",
        "domains": {"copied": len(c.guests), "skipped": []},
        "start_order": [g.step for g in c.guests]}) + "\n")
    return directory


@dataclass
class Prediction:
    placed: dict[str, dict[str, int]]      # guest -> node -> bytes, over all its steps
    events: list[tuple[str | None, str | None]]
    failed: dict[str, int] = field(default_factory=dict)  # guest -> bytes it could not place


def predict(snapshot: Path) -> Prediction:
    """``numaguard simulate SNAPSHOT``'s path (readers.scenario.load_scenario, then
    core.scenario.play): guest RAM per guest and node (its steps less QEMU's own memory), and
    the OOM events (victim, constraint) in order."""
    from numaguard.core.scenario import OWN_LABEL, play
    from numaguard.readers.scenario import load_scenario

    run = play(load_scenario(str(snapshot)))
    placed: dict[str, dict[str, int]] = {}
    failed: dict[str, int] = {}
    events = []
    for s, label in zip(run.result.steps, run.scenario.labels, strict=True):
        events += [(e.victim, e.constraint) for e in s.oom]
        mine = placed.setdefault(s.name, {})
        if label == OWN_LABEL.format(name=s.name):
            continue  # QEMU's own memory: the kernel side (numa_maps) is guest RAM only
        for n, b in s.placed.items():
            if b:
                mine[str(n)] = mine.get(str(n), 0) + b
        if s.failed:
            failed[s.name] = failed.get(s.name, 0) + s.failed
    return Prediction({k: dict(sorted(v.items())) for k, v in placed.items()}, events, failed)


def kernel_placed(result: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per guest, its guest RAM per node as the kernel left it: numa_maps' guest mapping, or
    for a QEMU killed while it touched its RAM the kill line's ``anon-rss`` less its own
    memory (numa_maps' last look is up to 0.3 s older; qemu_oracle ``_placed_at_kill``)."""
    kern = {g: dict(r["guest_placed"]) for g, r in result["chain"]["guests"].items()}
    for st in result["steps"]:
        if str(st.get("placed_source", "")).startswith("anon-rss of the kill line"):
            kern[st["name"]] = dict(st["placed"])
    return kern


def thp_boots() -> list[Path]:
    """The THP=always chain boots: results/qemu/chain/thp-always/ and its boots/N/."""
    base = results_dir("always")
    return ([base] if base.is_dir() else []) + sorted(
        (d for d in (base / "boots").glob("*") if d.is_dir() and d.name.isdigit()),
        key=lambda d: int(d.name))


def thp_spread(c: Chain) -> dict[str, dict[str, int]]:
    """Per guest and node, the spread (max - min) of the guest RAM the kernel placed over the
    THP=always chain boots of *c*."""
    seen: dict[str, dict[str, list[int]]] = {}
    for d in thp_boots():
        res = load_result(c, d)
        if res is None:
            continue
        for g, placed in kernel_placed(res).items():
            for n in set(placed) | set(seen.get(g, {})):
                seen.setdefault(g, {}).setdefault(n, []).append(placed.get(n, 0))
    return {g: {n: max(v) - min(v) for n, v in nodes.items()} for g, nodes in seen.items()}


def repeat_boots() -> list[Path]:
    """The repeated chain boots (``run_qemu_oracle.py --chain --spread-boot N``): boots/N/."""
    return sorted((d for d in (RESULTS_DIR / "boots").glob("*") if d.is_dir()
                   and d.name.isdigit()), key=lambda d: int(d.name))


def start_pools(result: Mapping[str, Any]) -> dict[str, dict[str, int]] | None:
    """The 2 MiB pools before the first step, if the experiment reserved any."""
    huge = result.get("chain", {}).get("hugepages")
    return huge["start"] if huge else None


def pools(nodes_text: str) -> dict[str, dict[str, int]]:
    """Per node, the 2 MiB pool in per-node meminfo: HugePages_Total/_Free (pages)."""
    return {str(n): {"total": v.get("HugePages_Total", 0), "free": v.get("HugePages_Free", 0)}
            for n, v in sorted(ol.node_meminfo(nodes_text).items())}


def load_result(c: Chain, directory: Path = RESULTS_DIR) -> dict[str, Any] | None:
    path = directory / f"{c.name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def kernel_events(result: Mapping[str, Any]) -> list[tuple[str | None, str | None]]:
    return [(e.get("victim"), e.get("constraint")) for s in result["steps"]
            for e in s["oom_events"]]


def compare(c: Chain, result: Mapping[str, Any], snapshot: Path,
            spread: Mapping[str, Mapping[str, int]] | None = None) -> dict[str, Any]:
    """Kernel vs numaguard for one experiment: each guest's RAM per node (as its own step
    left it) within max(2 % of the guest's memory, 4 MiB), the OOM events exactly, and a
    guest that could not get its memory without an OOM kill (the kernel's QEMU ``died``:
    exited on its own) exactly where numaguard leaves some of it unplaced (``failed``).
    *spread* (THP=always: :func:`thp_spread`, guest -> node -> bytes) widens a node's
    tolerance to the kernel's run-to-run spread there, except for a guest in an OOM event (its
    RAM at the OOM is the node's free memory at the start, which the snapshot gives)."""
    write_snapshot(snapshot, c, result["host"], start_pools(result))
    pred = predict(snapshot)
    kern = kernel_placed(result)
    victims = {e[0] for e in kernel_events(result)}
    in_oom = victims | {e.get("invoker") for s in result["steps"] for e in s["oom_events"]}
    problems = []
    for g in c.guests:
        wide = {} if spread is None or g.step in in_oom else spread.get(g.step, {})
        k, p = kern.get(g.step, {}), pred.placed.get(g.step, {})
        for n in sorted(set(k) | set(p)):
            tol = max(ol.tolerance(g.mib * ol.MiB), wide.get(n, 0))
            if abs(k.get(n, 0) - p.get(n, 0)) > tol:
                problems.append(f"{g.step} node {n}: kernel {k.get(n, 0) / ol.MiB:.1f} MiB, "
                                f"numaguard {p.get(n, 0) / ol.MiB:.1f} MiB (tolerance "
                                f"{tol / ol.MiB:.1f})")
        died = result["chain"]["guests"][g.step]["outcome"] == "died"
        if g.step not in victims and died != bool(pred.failed.get(g.step)):
            problems.append(f"{g.step}: kernel {'QEMU exited' if died else 'started'}, "
                            f"numaguard failed {pred.failed.get(g.step, 0) / ol.MiB:.1f} MiB")
    if kernel_events(result) != pred.events:
        problems.append(f"OOM kernel {kernel_events(result)}, numaguard {pred.events}")
    return {"kernel": kern, "numaguard": pred.placed, "problems": problems,
            "agree": not problems, "failed": pred.failed, "events": pred.events,
            "died": [g for g, r in result["chain"]["guests"].items() if r["outcome"] == "died"]}


def mib_text(placed: Mapping[str, Mapping[str, int]], events=(),
             notes: Mapping[str, str] | None = None) -> str:
    notes = notes or {}
    out = "; ".join(f"{g}: " + (" ".join(f"N{n}={b / ol.MiB:.1f}" for n, b in sorted(p.items())
                                          if b) or "-") + notes.get(g, "")
                    for g, p in placed.items())
    return out + "".join(f" OOM[{c}]->{v}" for v, c in events)


def policy_text(c: Chain) -> str:
    out = []
    for g in c.guests:
        root = ET.fromstring(g.xml())
        parts = []
        for el in root.findall("numatune/*"):
            cell = f"cell{el.get('cellid')} " if el.tag == "memnode" else ""
            parts.append(f"{cell}{el.get('mode')} {el.get('nodeset')}")
        alloc = root.find("memoryBacking/allocation")
        if alloc is not None:
            parts.append(f"allocation {alloc.get('mode')}")
        page = root.find("memoryBacking/hugepages/page")
        if page is not None:
            source = root.find("memoryBacking/source")
            parts.append(f"hugepages {page.get('size')} {page.get('unit', 'KiB')}"
                         + (f" {source.get('type')}" if source is not None else ""))
        pins = [f"vcpu{el.get('vcpu')}->CPU {el.get('cpuset')}"
                for el in root.findall("cputune/vcpupin")]
        pins += [f"emulator->CPU {el.get('cpuset')}" for el in root.findall("cputune/emulatorpin")]
        if pins:
            parts.append("pinned " + " ".join(pins))
        out.append(f"{g.step} ({g.domain}.xml, {g.mib} MiB): " + ", ".join(parts))
    if c.hugepages:
        out.append("2 MiB pools " + " ".join(f"N{n}={p}" for n, p in sorted(c.hugepages.items())))
    return "; ".join(out)


def backend_text(c: Chain) -> str:
    out = []
    for g in c.guests:
        argv, _ = oracle_argv(g)
        for i, a in enumerate(argv):
            if a == "-object" and "memory-backend" in argv[i + 1]:
                o = json.loads(argv[i + 1])
                props = [f"host-nodes={o['host-nodes']}".replace(" ", "")] \
                    if "host-nodes" in o else []
                props += [f"policy={o['policy']}"] if "policy" in o else []
                props += ["prealloc"] if o.get("prealloc") else []
                props += ["mem-path=" + o["mem-path"]] if "mem-path" in o else []
                props += [f"hugetlb,hugetlbsize={o['hugetlbsize']}"] if o.get("hugetlb") else []
                props += [f"prealloc-context={o['prealloc-context']}"] \
                    if "prealloc-context" in o else []
                out.append(f"{g.step} {o['id']}: " + (",".join(props) or "no policy"))
    return "; ".join(out)


def table_rows(tmp: Path, known: Mapping[str, str] | None = None) -> list[list[str]]:
    """Per recorded experiment: the XML's policy, libvirt's backend props, the kernel's and
    numaguard's guest RAM per node, agree? (*known*: the explained disagreements)."""
    rows = []
    for c in CHAIN:
        result = load_result(c)
        if result is None:
            continue
        cmp = compare(c, result, tmp / c.name)
        agree = "yes" if cmp["agree"] else "no: " + "; ".join(cmp["problems"])
        if not cmp["agree"] and known and c.name in known:
            agree += " (explained: test_qemu_chain strict xfail, QEMU.md)"
        rows.append([c.name, policy_text(c), backend_text(c),
                     mib_text(cmp["kernel"], kernel_events(result),
                              dict.fromkeys(cmp["died"], " (QEMU exited)")),
                     mib_text(cmp["numaguard"], cmp["events"],
                              {g: f" (failed {b / ol.MiB:.1f})" for g, b in cmp["failed"].items()}),
                     agree])
    return rows


def chain_record(c: Chain, exp: Mapping[str, bytes], result: Mapping[str, Any]) -> dict[str, Any]:
    """What a chain result adds per guest: the domain, the substitution, libvirt's argv and
    the one run, and its guest RAM per node over all of its guest mappings (numa_maps after
    its own step, or the last look before it died)."""
    guests = {}
    for g in c.guests:
        argv, changes = oracle_argv(g)
        step = next(s for s in result["steps"] if s["name"] == g.step)
        alive = step["tasks_after"].get(g.step, {}).get("state") == "alive"
        i = step["index"]
        src = f"s{i}.{g.step}.numa_maps" if alive else f"s{i}.{g.step}.last_numa_maps"
        maps = ol._txt(exp, src)
        guests[g.step] = {
            "domain": f"tests/oracle/qemu/domains/{g.domain}.xml",
            "argv_file": f"tests/oracle/qemu/argv/{g.domain}.json",
            "nodeset": g.nodes, "memnodes": {str(k): v for k, v in g.memnodes.items()},
            "domain_xml_run": g.xml(), "argv_run": argv, "changes": changes,
            "cpu_node": g.cpu_node, "cpuset_mems": g.cpuset_mems,
            "touch_mib": None if g.prealloc else g.touch_mib,
            "guest_placed": kernel_guest(maps, g.bound),
            "guest_mappings": guest_rows(maps, g.bound),
            "guest_source": src, "outcome": step["outcome"]}
        if g.cpus:
            guests[g.step].update({
                "cpus": {k: g.cpus[k] for k in sorted(g.cpus)},
                "vcpu_threads": ol._txt(exp, f"s{i}.{g.step}.pins").splitlines(),
                "emulator_affinity": ol._txt(exp, f"s{i}.{g.step}.emulator_affinity").strip()})
    out: dict[str, Any] = {"guests": guests}
    if c.hugepages:
        out["hugepages"] = {
            "size_kib": HUGEPAGE_KIB, "reserved": {str(n): p for n, p in c.hugepages.items()},
            "start": pools(ol._txt(exp, "start.nodes")),
            "steps": [{"step": s["name"],
                       **{when: pools(ol._txt(exp, f"s{s['index']}.{when}.nodes"))
                          for when in ("before", "after")}} for s in result["steps"]],
            "guests_stopped": pools(ol._txt(exp, "stopped.nodes"))}
    return out
