"""Write synthetic hosts in the exact on-disk formats numaguard reads.

Used to build the example host (examples/article-host), the benchmark snapshots (16 nodes,
1,000 guests) and property tests.  The sysfs/proc text follows the kernel's own printf formats
(drivers/base/node.c ``node_read_meminfo``: ``"Node %d MemTotal:       %8lu kB"``,
``"Node %d HugePages_Total: %5u"``), checked against the real trees captured under qemu in
tests/fixtures/sys/.
"""

from __future__ import annotations

import os
import random
import uuid as uuidlib
from dataclasses import dataclass, field

HUGEPAGE_SIZES_KIB = (2048, 1048576)


@dataclass
class SynthNode:
    id: int
    cpus: str  # kernel cpulist text, e.g. "0-9,40-49"
    mem_total_kib: int
    mem_free_kib: int
    hugepages: dict[int, tuple[int, int]] = field(default_factory=dict)  # size KiB -> total, free


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


def _meminfo_line(node: int, key: str, kib: int) -> str:
    return f"Node {node} {key + ':':<16}{kib:>8} kB\n"


def _nodelist(ids: list[int]) -> str:
    from numaguard.cpuset import format_bitmap

    return format_bitmap(ids) + "\n"


def write_sysfs(root: str, nodes: list[SynthNode], distances: list[list[int]], *,
                swap_total_kib: int = 0, swap_free_kib: int = 0,
                numa_balancing: int | None = 1, kernel_version: str | None = None) -> None:
    """Write ``root/sys/devices/system/node`` and ``root/proc`` for *nodes*."""
    base = os.path.join(root, "sys", "devices", "system", "node")
    ids = [n.id for n in nodes]
    for name in ("online", "possible", "has_normal_memory"):
        _write(os.path.join(base, name), _nodelist(ids))
    _write(os.path.join(base, "has_cpu"), _nodelist([n.id for n in nodes if n.cpus]))
    _write(os.path.join(base, "has_memory"), _nodelist([n.id for n in nodes if n.mem_total_kib]))
    total = free = 0
    for node, row in zip(nodes, distances, strict=True):
        nd = os.path.join(base, f"node{node.id}")
        _write(os.path.join(nd, "cpulist"), node.cpus + "\n")
        _write(os.path.join(nd, "distance"), " ".join(str(d) for d in row) + "\n")
        hp_default = node.hugepages.get(2048, (0, 0))
        used = node.mem_total_kib - node.mem_free_kib
        _write(os.path.join(nd, "meminfo"), "".join([
            _meminfo_line(node.id, "MemTotal", node.mem_total_kib),
            _meminfo_line(node.id, "MemFree", node.mem_free_kib),
            _meminfo_line(node.id, "MemUsed", used),
            _meminfo_line(node.id, "FilePages", used // 4),
            _meminfo_line(node.id, "AnonPages", used // 3),
            f"Node {node.id} HugePages_Total: {hp_default[0]:5}\n",
            f"Node {node.id} HugePages_Free:  {hp_default[1]:5}\n",
            f"Node {node.id} HugePages_Surp:  {0:5}\n",
        ]))
        for size in HUGEPAGE_SIZES_KIB:
            tot, fr = node.hugepages.get(size, (0, 0))
            hd = os.path.join(nd, "hugepages", f"hugepages-{size}kB")
            _write(os.path.join(hd, "nr_hugepages"), f"{tot}\n")
            _write(os.path.join(hd, "free_hugepages"), f"{fr}\n")
            _write(os.path.join(hd, "surplus_hugepages"), "0\n")
        total += node.mem_total_kib
        free += node.mem_free_kib
    _write(os.path.join(root, "proc", "meminfo"), "".join([
        f"{'MemTotal:':<16}{total:>8} kB\n",
        f"{'MemFree:':<16}{free:>8} kB\n",
        f"{'SwapTotal:':<16}{swap_total_kib:>8} kB\n",
        f"{'SwapFree:':<16}{swap_free_kib:>8} kB\n",
        f"{'Hugepagesize:':<16}{2048:>8} kB\n",
    ]))
    if numa_balancing is not None:
        _write(os.path.join(root, "proc", "sys", "kernel", "numa_balancing"),
               f"{numa_balancing}\n")
    if kernel_version is not None:
        _write(os.path.join(root, "proc", "version"), kernel_version + "\n")


def domain_xml(name: str, memory_kib: int, vcpus: int, *, cpuset: str | None = None,
               mode: str | None = None, nodeset: str | None = None,
               placement: str | None = None, hugepage_kib: int | None = None,
               cells: list[tuple[str, int]] | None = None,
               memnodes: list[tuple[int, str, str]] | None = None,
               uuid: str | None = None, comment: str | None = None) -> str:
    """A realistic libvirt domain XML (the shape `virsh dumpxml --inactive` writes)."""
    u = uuid or str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, name + ".numaguard.example"))
    lines = []
    if comment:
        lines.append(f"<!--\n{comment}\n-->")
    lines += ["<domain type='kvm'>", f"  <name>{name}</name>", f"  <uuid>{u}</uuid>",
              f"  <memory unit='KiB'>{memory_kib}</memory>",
              f"  <currentMemory unit='KiB'>{memory_kib}</currentMemory>"]
    if hugepage_kib:
        lines += ["  <memoryBacking>", "    <hugepages>",
                  f"      <page size='{hugepage_kib}' unit='KiB'/>", "    </hugepages>",
                  "  </memoryBacking>"]
    vattrs = " placement='static'"
    if cpuset:
        vattrs += f" cpuset='{cpuset}'"
    lines.append(f"  <vcpu{vattrs}>{vcpus}</vcpu>")
    if mode or nodeset or placement or memnodes:
        lines.append("  <numatune>")
        attrs = ""
        if mode:
            attrs += f" mode='{mode}'"
        if placement:
            attrs += f" placement='{placement}'"
        if nodeset:
            attrs += f" nodeset='{nodeset}'"
        if attrs:
            lines.append(f"    <memory{attrs}/>")
        for cellid, mmode, mnodes in memnodes or []:
            lines.append(f"    <memnode cellid='{cellid}' mode='{mmode}' nodeset='{mnodes}'/>")
        lines.append("  </numatune>")
    lines += ["  <os>", "    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>",
              "    <boot dev='hd'/>", "  </os>", "  <features>", "    <acpi/>", "    <apic/>",
              "  </features>"]
    if cells:
        lines += ["  <cpu mode='host-passthrough' check='none' migratable='on'>", "    <numa>"]
        for i, (cpus, kib) in enumerate(cells):
            lines.append(f"      <cell id='{i}' cpus='{cpus}' memory='{kib}' unit='KiB'/>")
        lines += ["    </numa>", "  </cpu>"]
    else:
        lines.append("  <cpu mode='host-passthrough' check='none' migratable='on'/>")
    lines += ["  <on_poweroff>destroy</on_poweroff>", "  <on_reboot>restart</on_reboot>",
              "  <on_crash>destroy</on_crash>", "  <devices>",
              "    <emulator>/usr/bin/qemu-system-x86_64</emulator>",
              "    <disk type='file' device='disk'>",
              "      <driver name='qemu' type='qcow2'/>",
              f"      <source file='/var/lib/libvirt/images/{name}.qcow2'/>",
              "      <target dev='vda' bus='virtio'/>", "    </disk>",
              "    <interface type='network'>", "      <source network='default'/>",
              "      <model type='virtio'/>", "    </interface>",
              "    <memballoon model='virtio'/>", "  </devices>", "</domain>", ""]
    return "\n".join(lines)


def synth_snapshot(directory: str, *, nodes: int = 16, guests: int = 1000,
                   cpus_per_node: int = 16, node_gib: int = 256, seed: int = 1) -> None:
    """A large hypervisor: *nodes* nodes and *guests* guests with a mix of every policy."""
    rng = random.Random(seed)
    kib_gib = 1024 * 1024
    synth_nodes = []
    for i in range(nodes):
        total = node_gib * kib_gib - rng.randrange(200_000, 600_000)
        synth_nodes.append(SynthNode(
            id=i, cpus=f"{i * cpus_per_node}-{(i + 1) * cpus_per_node - 1}",
            mem_total_kib=total, mem_free_kib=total - rng.randrange(1, 60) * kib_gib // 2,
            hugepages={2048: (rng.choice([0, 0, 4096]), 0), 1048576: (rng.choice([0, 0, 8]), 2)},
        ))
    distances = [[10 if a == b else (21 if abs(a - b) < 4 else 31) for b in range(nodes)]
                 for a in range(nodes)]
    write_sysfs(os.path.join(directory, "host"), synth_nodes, distances,
                swap_total_kib=8 * kib_gib, swap_free_kib=8 * kib_gib)
    ddir = os.path.join(directory, "domains")
    os.makedirs(ddir, exist_ok=True)
    modes = [None, "strict", "preferred", "interleave", "restrictive", "implicit"]
    for g in range(guests):
        node = rng.randrange(nodes)
        vcpus = rng.choice([1, 2, 4, 8])
        mem = rng.choice([1, 2, 4, 8, 16, 32]) * kib_gib
        mode = rng.choice(modes)
        cpus = f"{node * cpus_per_node}-{node * cpus_per_node + cpus_per_node - 1}"
        kwargs: dict = {}
        if mode == "implicit":
            kwargs["nodeset"] = str(node)
        elif mode == "interleave":
            kwargs.update(mode=mode, nodeset=f"{node},{(node + 1) % nodes}")
        elif mode:
            kwargs.update(mode=mode, nodeset=str(node))
        if g % 10 == 0 and mode != "restrictive":
            half = mem // 2
            kwargs["cells"] = [(f"0-{max(vcpus // 2 - 1, 0)}", half),
                               (f"{vcpus // 2}-{vcpus - 1}" if vcpus > 1 else "", mem - half)]
            if vcpus == 1:
                kwargs["cells"] = [("0", mem)]
        name = f"guest{g:04d}"
        with open(os.path.join(ddir, name + ".xml"), "w") as fh:
            fh.write(domain_xml(name, mem, vcpus, cpuset=cpus, **kwargs))
