"""The NUMA oracle: scenarios played on a real kernel, measured, and compared with the simulator.

Shared by ``run_oracle.py`` (boots qemu, records ``results/<scenario>.json``, prints the
agreement table) and ``test_oracle.py`` (replays every recorded result through the simulator on
each test run).  Nothing here boots anything; it turns scenario files into experiment plans and
qemu command lines, decodes what the guest's /init shipped over the serial console, and compares.

What the kernel measurement is (Debian 6.1, THP off, NUMA balancing off), per step:

* ``placed`` - the pages the step's hog put on each node, counted as it touched them
  (``move_pages(2)`` status after every 256 pages, kept in a shared file, so a hog the OOM killer
  takes during its own step still leaves its count).  This is the simulator's
  ``StepResult.placed`` (placed + failed = requested).
* ``swapped_out_bytes`` - pages reclaim wrote to swap during the step, whoever owned them
  (``pswpout`` of /proc/vmstat, before and after): ``StepResult.swapped``.
* ``oom_events`` - the kernel's OOM reports of the step: who invoked it, ``oom-kill:constraint=``
  (CONSTRAINT_MEMORY_POLICY / CONSTRAINT_CPUSET / CONSTRAINT_NONE), the victim (``task=``) and
  the candidate table (rss, swapents, oom_score_adj).
* ``tasks_after`` - every hog after the step: alive with its resident pages per node
  (``/proc/PID/numa_maps``, ``N<node>=<pages>``) and ``VmSwap``, or dead (OOM-killed / freed).
  After the last step this is the simulator's ``allocations`` (resident, swapped, oom_killed).

The simulator is fed the *measured* starting state (``result["host"]``): each node's MemFree
just before the first step, its watermarks from ``/proc/zoneinfo`` (sum over the node's zones of
the watermark plus the zone's ``protection`` for movable user allocations, which is what
``__zone_watermark_ok`` compares free pages against), the boot's ``Fallback order for Node N``
lines and SwapFree.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import struct
import tarfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCENARIO_DIR = HERE / "scenarios"
RESULTS_DIR = HERE / "results"

KiB = 1024
MiB = 1024**2
PAGE = 4096
#: zone index of ZONE_MOVABLE in 6.1 x86-64 (DMA, DMA32, Normal, Movable, Device):
#: gfp_zone(GFP_HIGHUSER_MOVABLE), the highest_zoneidx of a user page fault
ZONE_MOVABLE_IDX = 3
#: tolerance of the comparison: max(2 % of the request, 4 MiB)
TOL_FRACTION = 0.02
TOL_FLOOR = 4 * MiB

CONSTRAINTS = {
    "CONSTRAINT_MEMORY_POLICY": "memory-policy",
    "CONSTRAINT_CPUSET": "cpuset",
    "CONSTRAINT_NONE": "global",
    "CONSTRAINT_MEMCG": "memcg",
}

KERNEL_CMDLINE = ("nokaslr console=ttyS0 panic=-1 rdinit=/init quiet "
                  "transparent_hugepage=never numa_balancing=disable")


# -- scenarios ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScenarioFile:
    name: str
    path: Path
    doc: Mapping[str, Any]

    @property
    def oracle(self) -> Mapping[str, Any]:
        return self.doc.get("oracle", {})

    @property
    def boot(self) -> str:
        return self.oracle.get("boot", self.name)

    @property
    def steps(self) -> list[Mapping[str, Any]]:
        return list(self.doc.get("step", []))

    def topology(self) -> tuple:
        host = self.doc["host"]
        return (tuple(self.oracle["node_mib"]),
                tuple(n.get("cpus", "") for n in host["nodes"]),
                json.dumps(host.get("distances")))


def load_scenario(path: Path) -> ScenarioFile:
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    return ScenarioFile(doc.get("name", path.stem), path, doc)


def load_scenarios(directory: Path = SCENARIO_DIR) -> list[ScenarioFile]:
    return [load_scenario(p) for p in sorted(directory.glob("*.toml"))]


def size_bytes(value: str | int) -> int:
    """Sizes as the scenario format writes them ("300MiB", "4GiB", bytes as an integer)."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", value)
    if not m:
        raise ValueError(f"bad size {value!r}")
    unit = m.group(2).lower()
    scale = {"": 1, "b": 1, "k": KiB, "kib": KiB, "m": MiB, "mib": MiB, "g": 1024**3,
             "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}[unit]
    return int(float(m.group(1)) * scale)


def group_boots(scenarios: list[ScenarioFile]) -> dict[str, list[ScenarioFile]]:
    boots: dict[str, list[ScenarioFile]] = {}
    for s in scenarios:
        boots.setdefault(s.boot, []).append(s)
    for name, group in boots.items():
        topo = {s.topology() for s in group}
        if len(topo) != 1:
            raise ValueError(f"boot {name}: scenarios {[s.name for s in group]} disagree on "
                             "the topology (node_mib, cpus, distances)")
    return boots


def plan_text(group: list[ScenarioFile]) -> str:
    """The experiment plan the guest's /init (oracle_init.sh) runs for one boot."""
    out = []
    for s in group:
        o = s.oracle
        out.append(f"exp {s.name}")
        swap = size_bytes(s.doc["host"].get("swap", 0))
        out.append(f"swap {swap // KiB}")
        if "min_free_kbytes" in o:
            out.append(f"min_free_kbytes {int(o['min_free_kbytes'])}")
        for name in o.get("live", []):
            out.append(f"live {name}")
        names: set[str] = set()
        for i, st in enumerate(s.steps):
            name = st["name"]
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", name):
                raise ValueError(f"{s.name}: step name {name!r} (1-15 of [A-Za-z0-9_.-]: it "
                                 "is the process name the OOM killer prints)")
            action = st.get("action", "alloc")
            if action == "free":
                if "size" in st:
                    raise ValueError(f"{s.name}: the oracle frees whole tasks only")
                out.append(f"step {i} {name} free")
                continue
            if name in names:
                raise ValueError(f"{s.name}: the oracle runs one process per task; "
                                 f"{name!r} allocates twice")
            names.add(name)
            kib = -(-size_bytes(st["size"]) // KiB)
            policy = st.get("policy", "default")
            nodes = st.get("nodes", "-") if policy != "default" else "-"
            cpu_node = st.get("cpu_node", 0)
            cpuset = st.get("cpuset_mems", "-")
            adj = st.get("oom_score_adj", 0)
            api = "mbind" if st.get("policy_scope", "task") == "vma" else "set_mempolicy"
            out.append(f"step {i} {name} alloc {policy} {nodes} {kib} {cpu_node} {cpuset} "
                       f"{adj} {api}")
        out.append("run")
    return "\n".join(out) + "\n"


def qemu_command(s: ScenarioFile, kernel_image: str, initrd: str, plan: str,
                 qemu: str = "qemu-system-x86_64") -> list[str]:
    host = s.doc["host"]
    sizes = list(s.oracle["node_mib"])
    cpus = [n.get("cpus", "") for n in host["nodes"]]
    ncpu = sum(len(_cpulist(c)) for c in cpus)
    cmd = [qemu, "-machine", "pc", "-accel", "tcg", "-cpu", "max", "-m", f"{sum(sizes)}M",
           "-smp", f"{ncpu},sockets={len(sizes)},cores={ncpu // len(sizes)},threads=1"]
    for i, (mb, c) in enumerate(zip(sizes, cpus, strict=True)):
        cmd += ["-object", f"memory-backend-ram,id=m{i},size={mb}M",
                "-numa", f"node,nodeid={i}" + (f",cpus={c}" if c else "") + f",memdev=m{i}"]
    dist = host.get("distances")
    if dist:
        for i, row in enumerate(dist):
            for j, d in enumerate(row):
                if i != j:
                    cmd += ["-numa", f"dist,src={i},dst={j},val={d}"]
    cmd += ["-kernel", kernel_image, "-initrd", initrd,
            "-append", f"{KERNEL_CMDLINE} ng.plan={plan}", "-nographic", "-no-reboot"]
    return cmd


def _cpulist(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text.split(",")):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


# -- the console ------------------------------------------------------------------------------

_BLOCK = re.compile(r"NG-ORACLE-BEGIN ([^\n]*)\n(.*?)\nNG-ORACLE-END ([^\n]*) ([0-9a-f]{64})",
                    re.DOTALL)


def decode_console(text: str) -> dict[str, dict[str, bytes]]:
    """Blocks shipped by the guest: tag ("boot", "exp NAME") -> {file name: content}."""
    text = text.replace("\r", "")
    out: dict[str, dict[str, bytes]] = {}
    for m in _BLOCK.finditer(text):
        tag, body, tag2, digest = m.groups()
        if tag != tag2:
            continue
        data = base64.b64decode("".join(body.split()))
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"block {tag!r}: checksum mismatch")
        files: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    f = tar.extractfile(member)
                    assert f is not None
                    files[os.path.normpath(member.name)] = f.read()
        out[tag] = files
    return out


# -- parsing what the guest measured ----------------------------------------------------------

_TS = re.compile(r"^\[\s*[0-9.]+\]\s?", re.MULTILINE)


def strip_ts(text: str) -> str:
    return _TS.sub("", text)


def node_meminfo(text: str) -> dict[int, dict[str, int]]:
    """Concatenated /sys/devices/system/node/node*/meminfo -> node -> key -> bytes."""
    out: dict[int, dict[str, int]] = {}
    for line in text.splitlines():
        m = re.match(r"Node (\d+) ([A-Za-z_()]+):\s+(\d+)(?: kB)?", line)
        if m:
            scale = KiB if line.rstrip().endswith("kB") else 1
            out.setdefault(int(m.group(1)), {})[m.group(2)] = int(m.group(3)) * scale
    return out


def meminfo(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        m = re.match(r"([A-Za-z_()0-9]+):\s+(\d+)(?: kB)?", line)
        if m:
            out[m.group(1)] = int(m.group(2)) * (KiB if line.rstrip().endswith("kB") else 1)
    return out


def zoneinfo(text: str) -> list[dict[str, Any]]:
    """Per zone: node, zone, free pages, min/low/high, managed, protection, pcp count."""
    zones: list[dict[str, Any]] = []
    z: dict[str, Any] | None = None
    for line in text.splitlines():
        m = re.match(r"Node (\d+), zone\s+(\S+)", line)
        if m:
            z = {"node": int(m.group(1)), "zone": m.group(2), "pcp_count": 0}
            zones.append(z)
            continue
        if z is None:
            continue
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("min", "low", "high", "spanned", "present",
                                             "managed", "boost") and parts[1].isdigit():
            z[parts[0]] = int(parts[1])
        elif len(parts) == 3 and parts[0] == "pages" and parts[1] == "free":
            z["free_pages"] = int(parts[2])
        elif parts and parts[0] == "protection:":
            z["protection"] = [int(x) for x in re.findall(r"\d+", line)]
        elif len(parts) == 2 and parts[0] == "count:":
            z["pcp_count"] += int(parts[1])
    return zones


def node_watermarks(zones: list[dict[str, Any]]) -> dict[int, dict[str, int]]:
    """Per node, in bytes: min/low/high summed over its populated zones, each plus the zone's
    lowmem protection against movable user allocations (``lowmem_reserve[ZONE_MOVABLE]``), the
    floor ``__zone_watermark_ok`` applies (mm/page_alloc.c); ``raw_*`` without protection."""
    out: dict[int, dict[str, int]] = {}
    for z in zones:
        if not z.get("managed"):
            continue
        prot = z.get("protection", [0] * 5)
        reserve = prot[ZONE_MOVABLE_IDX] if len(prot) > ZONE_MOVABLE_IDX else 0
        n = out.setdefault(z["node"], dict.fromkeys(
            ("min", "low", "high", "raw_min", "raw_low", "raw_high", "pcp"), 0))
        for k in ("min", "low", "high"):
            n[k] += (z[k] + reserve) * PAGE
            n["raw_" + k] += z[k] * PAGE
        n["pcp"] += z.get("pcp_count", 0) * PAGE
    return out


def fallback_orders(dmesg: str) -> dict[int, list[int]]:
    out = {}
    for m in re.finditer(r"Fallback order for Node (\d+):((?: \d+)*)", dmesg):
        out[int(m.group(1))] = [int(x) for x in m.group(2).split()]
    return out


def fallback_lines(dmesg: str) -> list[str]:
    return [m.group(0).strip() for m in re.finditer(
        r"Fallback order for Node \d+:[ \d]*|Built \d+ zonelists[^\n]*", strip_ts(dmesg))]


def oom_events(dmesg: str) -> list[dict[str, Any]]:
    """The OOM reports in a kernel log (mm/oom_kill.c dump_header, dump_tasks,
    dump_oom_summary, __oom_kill_process)."""
    text = strip_ts(dmesg)
    events: list[dict[str, Any]] = []
    ev: dict[str, Any] | None = None
    in_tasks = False
    for line in text.splitlines():
        m = re.match(r"(\S.*?) invoked oom-killer: gfp_mask=(\S+), order=(\d+), "
                     r"oom_score_adj=(-?\d+)", line)
        if m:
            ev = {"invoker": m.group(1), "gfp_mask": m.group(2).rstrip(","),
                  "order": int(m.group(3)), "tasks": [], "node_anon_kb": {}}
            events.append(ev)
            in_tasks = False
            continue
        if ev is None:
            continue
        if line.startswith("Tasks state") or "[  pid  ]" in line:
            in_tasks = True
            continue
        m = re.match(r"\[\s*(\d+)\]\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)"
                     r"\s+(-?\d+)\s+(.+)$", line)
        if in_tasks and m:
            ev["tasks"].append({"pid": int(m.group(1)), "rss_pages": int(m.group(5)),
                                "pgtables_bytes": int(m.group(6)),
                                "swapents": int(m.group(7)),
                                "oom_score_adj": int(m.group(8)), "name": m.group(9).strip()})
            continue
        m = re.match(r"Node (\d+) active_anon:(\d+)kB inactive_anon:(\d+)kB", line)
        if m:
            ev["node_anon_kb"][m.group(1)] = int(m.group(2)) + int(m.group(3))
            continue
        m = re.match(r"Node (\d+) (\w+) free:(\d+)kB boost:(\d+)kB min:(\d+)kB low:(\d+)kB "
                     r"high:(\d+)kB .*free_pcp:(\d+)kB local_pcp:(\d+)kB", line)
        if m:
            # show_free_areas: each zone at the OOM (mm/page_alloc.c), free pages on the buddy
            # lists and on the per-CPU lists (free_pcp; local_pcp: the reporting CPU's)
            ev.setdefault("zones_kb", {}).setdefault(m.group(1), {})[m.group(2)] = dict(zip(
                ("free", "boost", "min", "low", "high", "free_pcp", "local_pcp"),
                (int(x) for x in m.groups()[2:]), strict=True))
            continue
        m = re.match(r"Free swap\s+=\s+(\d+)kB", line)
        if m:
            ev["free_swap_kb"] = int(m.group(1))
            continue
        m = re.match(r"oom-kill:constraint=(\w+),nodemask=([^,]*),cpuset=([^,]*),"
                     r"mems_allowed=([^,]*),(.*)", line)
        if m:
            in_tasks = False
            rest = dict(kv.split("=", 1) for kv in m.group(5).split(",") if "=" in kv)
            ev.update({"constraint_kernel": m.group(1),
                       "constraint": CONSTRAINTS.get(m.group(1), m.group(1)),
                       "nodemask": m.group(2), "cpuset": m.group(3),
                       "mems_allowed": m.group(4), "victim": rest.get("task"),
                       "victim_pid": int(rest["pid"]) if "pid" in rest else None,
                       "line": line.strip()})
            continue
        m = re.match(r"Out of memory(?: \(oom_kill_allocating_task\))?: Killed process (\d+) "
                     r"\((.*?)\) total-vm:(\d+)kB, anon-rss:(\d+)kB.*", line)
        if m:
            ev.update({"killed_line": line.strip(), "victim_anon_rss_kb": int(m.group(4))})
            if ev.get("victim") is None:
                ev["victim"] = m.group(2)
    return events


def numa_maps_resident(text: str) -> dict[str, int]:
    """Resident bytes per node of the hog's memory: the anonymous mapping with the most
    pages in /proc/PID/numa_maps (N<node>=<pages> x kernelpagesize_kB)."""
    best: tuple[int, dict[str, int]] = (-1, {})
    for line in text.splitlines():
        m = re.search(r"\banon=(\d+)", line)
        if not m or "file=" in line:
            continue
        kb = int(re.search(r"kernelpagesize_kB=(\d+)", line).group(1)) \
            if "kernelpagesize_kB=" in line else 4
        nodes = {n: int(p) * kb * KiB for n, p in re.findall(r"\bN(\d+)=(\d+)", line)}
        if int(m.group(1)) > best[0]:
            best = (int(m.group(1)), nodes)
    return best[1]


def vmstat(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in text.splitlines()
                                   if len(line.split()) == 2)}


def _progress(data: bytes | None) -> tuple[int, dict[str, int]] | None:
    """The hog's --progress file: magic, touched pages, 64 per-node page counts."""
    if not data or len(data) < 16 + 8 * 64 or not data.startswith(b"NGHOG1"):
        return None
    touched, *pages = struct.unpack_from("<Q64Q", data, 8)
    return touched * PAGE, {str(i): p * PAGE for i, p in enumerate(pages) if p}


def _hogs_state(text: str) -> dict[str, dict[str, Any]]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            st: dict[str, Any] = {"pid": None if parts[1] == "-" else int(parts[1]),
                                  "state": parts[2]}
            m = re.search(r"VmRSS:\s*(\d+)", line)
            if m:
                st["vm_rss_kb"] = int(m.group(1))
            m = re.search(r"VmSwap:\s*(\d+)", line)
            if m:
                st["vm_swap_kb"] = int(m.group(1))
            if parts[2] == "dead" and len(parts) > 3 and parts[3].isdigit():
                st["exit"] = int(parts[3])
                # 137: SIGKILL (the OOM killer; the harness kills only after the last step),
                # 143: SIGTERM (a free step)
                st["state"] = {137: "killed", 143: "freed"}.get(st["exit"], "dead")
            out[parts[0]] = st
    return out


def _net_swapped_out(mb: Mapping[str, int], ma: Mapping[str, int], events: list[dict[str, Any]],
                     tasks: Mapping[str, Any], prev_tasks: Mapping[str, Any]) -> int:
    """Bytes that went to swap during a step and stayed there until reclaim was done: the drop
    of SwapFree plus the swap released by tasks that died in the step (OOM victims: swapents in
    the OOM report; freed tasks: VmSwap after the previous step).  Not ``pswpout``: when swap
    runs full, reclaim drops the swap copy of pages it re-activates (mm/vmscan.c
    shrink_folio_list, activate_locked: folio_free_swap when mem_cgroup_swap_full), and such a
    page can be written again - writes, not pages in swap."""
    out = mb.get("SwapFree", 0) - ma.get("SwapFree", 0)
    for e in events:
        row = next((t for t in e.get("tasks", []) if t["name"] == e.get("victim")), None)
        if row:
            out += row["swapents"] * PAGE
    for name, st in tasks.items():
        if st["state"] == "freed" and prev_tasks.get(name, {}).get("state") == "alive":
            out += prev_tasks[name].get("swap_bytes", 0)
    return max(0, out)


def _txt(files: Mapping[str, bytes], name: str) -> str:
    return files.get(name, b"").decode("utf-8", "replace")


def measured_host(scn: ScenarioFile, boot: Mapping[str, bytes],
                  exp: Mapping[str, bytes]) -> dict[str, Any]:
    """The scenario's [host] as the kernel had it just before the first step."""
    start = node_meminfo(_txt(exp, "start.nodes"))
    marks = node_watermarks(zoneinfo(_txt(exp, "zoneinfo")))
    rows = {}
    for line in _txt(boot, "nodes").splitlines():
        parts = line.split()
        rows[int(parts[0])] = (parts[1], [int(x) for x in parts[2:]])
    fb = fallback_orders(_txt(boot, "dmesg"))
    mem = meminfo(_txt(exp, "start.meminfo"))
    ids = sorted(start)
    nodes = []
    for n in ids:
        w = marks.get(n, {})
        nodes.append({"id": n, "cpus": rows[n][0], "mem_total": start[n]["MemTotal"],
                      "mem_free": start[n]["MemFree"],
                      "watermark_min": w.get("min", 0), "watermark_low": w.get("low", 0),
                      "watermark_high": w.get("high", 0),
                      "zone_watermark_min": w.get("raw_min", 0),
                      "zone_watermark_low": w.get("raw_low", 0),
                      "pcp_free": w.get("pcp", 0),
                      "file_pages": start[n].get("FilePages", 0)})
    return {"distances": [rows[n][1] for n in ids],
            "fallback": [fb.get(n, []) for n in ids],
            "swap": mem.get("SwapFree", 0),
            "swap_total": mem.get("SwapTotal", 0),
            "min_free_kbytes": int(_txt(exp, "min_free_kbytes").strip() or 0),
            "nodes": nodes}


def experiment_result(scn: ScenarioFile, boot: Mapping[str, bytes], exp: Mapping[str, bytes],
                      meta: Mapping[str, Any]) -> dict[str, Any]:
    """results/<scenario>.json from the files one experiment shipped."""
    host = measured_host(scn, boot, exp)
    steps_out = []
    all_events = []
    prev_tasks: dict[str, dict[str, Any]] = {}
    for i, st in enumerate(scn.steps):
        name = st["name"]
        action = st.get("action", "alloc")
        before = node_meminfo(_txt(exp, f"s{i}.before.nodes"))
        after = node_meminfo(_txt(exp, f"s{i}.after.nodes"))
        mb = meminfo(_txt(exp, f"s{i}.before.meminfo"))
        ma = meminfo(_txt(exp, f"s{i}.after.meminfo"))
        events = oom_events(_txt(exp, f"s{i}.dmesg"))
        for e in events:
            e["step"] = i
        all_events += events
        vb, va = vmstat(_txt(exp, f"s{i}.before.vmstat")), vmstat(_txt(exp, f"s{i}.after.vmstat"))
        tasks = _hogs_state(_txt(exp, f"s{i}.hogs"))
        for h, st_ in tasks.items():
            if st_["state"] == "alive":
                st_["resident"] = numa_maps_resident(_txt(exp, f"s{i}.{h}.numa_maps"))
                st_["swap_bytes"] = st_.get("vm_swap_kb", 0) * KiB
        rec: dict[str, Any] = {
            "index": i, "name": name, "action": action,
            "memfree_before": {str(n): v["MemFree"] for n, v in sorted(before.items())},
            "memfree_after": {str(n): v["MemFree"] for n, v in sorted(after.items())},
            "swap_free_before": mb.get("SwapFree", 0), "swap_free_after": ma.get("SwapFree", 0),
            "swapped_out_bytes": _net_swapped_out(mb, ma, events, tasks, prev_tasks),
            "swap_writes_bytes": (va.get("pswpout", 0) - vb.get("pswpout", 0)) * PAGE,
            "swap_reads_bytes": (va.get("pswpin", 0) - vb.get("pswpin", 0)) * PAGE,
            "vmstat_delta": {k: va[k] - vb.get(k, 0) for k in va if va[k] != vb.get(k, 0)},
            "oom_events": events,
            "tasks_after": tasks,
        }
        if action == "alloc":
            rec.update({k: st[k] for k in ("policy", "nodes", "cpu_node", "cpuset_mems",
                                           "oom_score_adj", "policy_scope") if k in st})
            rec["api"] = "mbind" if st.get("policy_scope") == "vma" else "set_mempolicy"
            rec["requested_bytes"] = -(-size_bytes(st["size"]) // KiB) * KiB
            out = _txt(exp, f"s{i}.out").strip().splitlines()
            report = json.loads(out[0]) if out and out[0].startswith("{") else None
            prog = _progress(exp.get(f"s{i}.progress"))
            touched, first = prog if prog else (0, {})
            rec.update({"placed": first, "placed_source": "move_pages", "touched_bytes": touched})
            if report is not None:
                rec.update({"outcome": "completed", "placed": report["first_touch"],
                            "touched_bytes": report["touched_bytes"],
                            "resident_at_report": report["placed"],
                            "vm_swap_at_report_bytes": report["vm_swap_kb"] * KiB,
                            "cpu": report["cpu"], "seconds": report["seconds"]})
            else:
                kill = next((e for e in events if e.get("victim") == name), None)
                rec["outcome"] = "oom-killed" if kill else "died"
                row = next((t for t in kill["tasks"] if t["name"] == name), None) if kill else None
                if row:
                    rec["rss_at_kill_bytes"] = row["rss_pages"] * PAGE
                    rec["swap_at_kill_bytes"] = row["swapents"] * PAGE
            if f"s{i}.timeout" in exp:
                rec["outcome"] = "timeout"
        steps_out.append(rec)
        prev_tasks = tasks
    live = {k[len("live/"):]: v.decode("utf-8", "replace") for k, v in exp.items()
            if k.startswith("live/")}
    return {
        "scenario": scn.name,
        "scenario_file": os.path.relpath(scn.path, HERE.parent.parent),
        "description": scn.doc.get("description", ""),
        **meta,
        "guest": {"min_free_kbytes": host["min_free_kbytes"],
                  "experiment_seconds": int(_txt(exp, "seconds").strip() or 0)},
        "host": host,
        "zones": zoneinfo(_txt(exp, "zoneinfo")),
        "fallback_lines": fallback_lines(_txt(boot, "dmesg")),
        "memfree_end": {str(n): v["MemFree"]
                        for n, v in sorted(node_meminfo(_txt(exp, "end.nodes")).items())},
        "steps": steps_out,
        "tasks_end": steps_out[-1]["tasks_after"] if steps_out else {},
        "oom_events": [{"step": e["step"], "invoker": e["invoker"], "victim": e.get("victim"),
                        "constraint": e.get("constraint"), "nodemask": e.get("nodemask"),
                        "line": e.get("line")} for e in all_events],
        "_live": live,
    }


# -- the simulator side -----------------------------------------------------------------------

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def format_toml(doc: Mapping[str, Any]) -> str:
    """A scenario document (top-level keys, [host], [[host.nodes]], [[step]]) as TOML."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, (dict, list))
             or (isinstance(v, list) and not any(isinstance(x, dict) for x in v))]
    host = doc.get("host")
    if host is not None:
        lines += ["", "[host]"] + [f"{k} = {_toml_value(v)}" for k, v in host.items()
                                   if k != "nodes"]
        for n in host.get("nodes", []):
            lines += ["", "[[host.nodes]]"] + [f"{k} = {_toml_value(v)}" for k, v in n.items()]
    for st in doc.get("step", []):
        lines += ["", "[[step]]"] + [f"{k} = {_toml_value(v)}" for k, v in st.items()]
    return "\n".join(lines) + "\n"


def scenario_toml(scn: ScenarioFile) -> str:
    """The scenario file without its [oracle] table: numaguard's scenario format."""
    return format_toml({k: v for k, v in scn.doc.items() if k != "oracle"})


def simulator_toml(result: Mapping[str, Any], scn: ScenarioFile) -> str:
    """The scenario with its [host] replaced by the measured one (and [oracle] dropped), in
    numaguard's scenario format: what ``numaguard simulate`` is given."""
    h = result["host"]
    host = {"distances": h["distances"], "fallback": h["fallback"], "swap": h["swap"],
            "nodes": [{k: n[k] for k in ("id", "cpus", "mem_total", "mem_free",
                                          "watermark_min", "watermark_low")}
                      for n in h["nodes"]]}
    return format_toml({"name": scn.name, "host": host, "step": scn.steps})


def simulator_input(result: Mapping[str, Any], scn: ScenarioFile):
    """(SimHost, steps) from the measured host and the scenario's steps - through numaguard's
    scenario reader when it exists, else built directly."""
    try:
        from numaguard.readers.scenario import parse_scenario
    except ImportError:  # pragma: no cover - before the reader exists
        parse_scenario = None
    if parse_scenario is not None:
        sc = parse_scenario(simulator_toml(result, scn), path=f"{scn.name}.measured.toml")
        return sc.host, list(sc.steps)
    return _direct_input(result, scn)


def _nodeset(text: str | int | None) -> frozenset[int] | None:
    if text is None:
        return None
    return frozenset(_cpulist(str(text)))


def _direct_input(result: Mapping[str, Any], scn: ScenarioFile):
    from numaguard.core.simulate import Policy, SimHost, SimNode, Step

    h = result["host"]
    nodes = tuple(SimNode(n["id"], n["mem_free"], n["watermark_min"], n["watermark_low"],
                          total=n["mem_total"]) for n in h["nodes"])
    fallback = {n["id"]: tuple(order) for n, order in zip(h["nodes"], h["fallback"], strict=True)}
    steps = []
    for st in scn.steps:
        if st.get("action", "alloc") == "free":
            steps.append(Step(st["name"], None, action="free"))
            continue
        steps.append(Step(st["name"], size_bytes(st["size"]),
                          policy=Policy(st.get("policy", "default")),
                          nodes=_nodeset(st.get("nodes")), cpu_node=st.get("cpu_node", 0),
                          cpuset_mems=_nodeset(st.get("cpuset_mems")),
                          oom_score_adj=st.get("oom_score_adj", 0)))
    return SimHost(nodes, fallback, h["swap"]), steps


def simulate_result(result: Mapping[str, Any], scn: ScenarioFile):
    from numaguard.core.simulate import simulate

    host, steps = simulator_input(result, scn)
    return simulate(host, steps)


# -- comparing --------------------------------------------------------------------------------

@dataclass
class Comparison:
    scenario: str
    problems: list[str] = field(default_factory=list)
    kernel: list[str] = field(default_factory=list)     # one summary per step
    simulator: list[str] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return not self.problems


def tolerance(requested: int) -> int:
    return max(int(TOL_FRACTION * requested), TOL_FLOOR)


def _mib(b: int) -> str:
    return f"{b / MiB:.0f}"


def _placement(placed: Mapping[Any, int] | None) -> str:
    if placed is None:
        return "?"
    items = sorted(((int(n), b) for n, b in placed.items() if b), key=lambda x: x[0])
    return " ".join(f"N{n}={_mib(b)}" for n, b in items) or "-"


def _events_text(events: list[tuple[str, str]]) -> str:
    return "".join(f" OOM[{c}]->{v}" for v, c in events)


def _within(cmp: Comparison, what: str, kernel: Mapping[str, int], sim: Mapping[str, int],
            tol: int) -> None:
    for n in sorted(set(kernel) | set(sim), key=int):
        a, b = kernel.get(n, 0), sim.get(n, 0)
        if abs(a - b) > tol:
            cmp.problems.append(f"{what}: node {n} kernel {_mib(a)} MiB, simulator {_mib(b)} MiB "
                                f"(tolerance {_mib(tol)} MiB)")


def compare(result: Mapping[str, Any], sim) -> Comparison:
    """Kernel vs simulator, within max(2 % of the request, 4 MiB):

    * per alloc step: bytes put on each node (``StepResult.placed``) and bytes reclaim swapped
      out during the step (``StepResult.swapped``);
    * per step: the same OOM events (victim, constraint), in the same order;
    * at the end, per task: OOM-killed or not, and for a live task its resident bytes per node
      and its swap (``SimResult.allocations``).
    """
    cmp = Comparison(result["scenario"])
    requested: dict[str, int] = {}
    for k, s in zip(result["steps"], sim.steps, strict=True):
        i, name = k["index"], k["name"]
        k_ev = [(e.get("victim"), e.get("constraint")) for e in k["oom_events"]]
        s_ev = [(e.victim, e.constraint) for e in s.oom]
        kout, sout = k.get("swapped_out_bytes", 0), s.swapped
        if k["action"] != "alloc":
            cmp.kernel.append(f"{name} freed{_events_text(k_ev)}")
            cmp.simulator.append(f"{name} freed{_events_text(s_ev)}")
            tol = TOL_FLOOR
        else:
            req = k["requested_bytes"]
            requested[name] = requested.get(name, 0) + req
            tol = tolerance(req)
            kp = k.get("placed") or {}
            sp = {str(n): b for n, b in s.placed.items() if b}
            tag = "" if k["outcome"] == "completed" else f" ({k['outcome']})"
            cmp.kernel.append(f"{name}: {_placement(kp)}"
                              + (f" swapout={_mib(kout)}" if kout > tol // 2 else "")
                              + tag + _events_text(k_ev))
            cmp.simulator.append(f"{name}: {_placement(sp)}"
                                 + (f" swapout={_mib(sout)}" if sout > tol // 2 else "")
                                 + (f" failed={_mib(s.failed)}" if s.failed else "")
                                 + _events_text(s_ev))
            _within(cmp, f"step {i} {name} placed", kp, sp, tol)
        if abs(kout - sout) > tol:
            cmp.problems.append(f"step {i} {name}: swapped out during the step: kernel "
                                f"{_mib(kout)} MiB, simulator {_mib(sout)} MiB")
        if k_ev != s_ev:
            cmp.problems.append(f"step {i} {name}: OOM kernel {k_ev or 'none'}, simulator "
                                f"{s_ev or 'none'}")
    end_k, end_s = [], []
    tasks_end = result.get("tasks_end", {})
    for a in sim.allocations:
        kt = tasks_end.get(a.name)
        if kt is None:
            continue
        tol = tolerance(requested.get(a.name, 0))
        k_killed = kt["state"] == "killed"
        if k_killed != a.oom_killed:
            cmp.problems.append(f"end {a.name}: kernel {kt['state']}, simulator "
                                f"{'OOM-killed' if a.oom_killed else 'alive'}")
        if kt["state"] == "alive":
            kres, kswap = kt.get("resident", {}), kt.get("swap_bytes", 0)
            sres = {str(n): b for n, b in a.placed.items() if b}
            end_k.append(f"{a.name} {_placement(kres)}" + (f" swap={_mib(kswap)}" if kswap else ""))
            end_s.append(f"{a.name} {_placement(sres)}"
                         + (f" swap={_mib(a.swapped)}" if a.swapped else ""))
            _within(cmp, f"end {a.name} resident", kres, sres, tol)
            if abs(kswap - a.swapped) > tol:
                cmp.problems.append(f"end {a.name}: in swap kernel {_mib(kswap)} MiB, "
                                    f"simulator {_mib(a.swapped)} MiB")
        else:
            end_k.append(f"{a.name} {kt['state']}")
            end_s.append(f"{a.name} {'killed' if a.oom_killed else 'freed'}")
    if any("swap" in t or "killed" in t for t in end_k + end_s):
        cmp.kernel.append("end: " + ", ".join(end_k))
        cmp.simulator.append("end: " + ", ".join(end_s))
    return cmp


def load_results(directory: Path = RESULTS_DIR) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
