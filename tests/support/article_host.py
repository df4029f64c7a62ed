"""The example host of the seed article, written by code so it can be regenerated and checked.

A 4-socket server, 16 GiB per node (node 0 a little smaller: the kernel lives there), 10 cores
with 2 threads per socket.  As captured: node 0 can give about 15 GiB, node 2 only about 7 GiB
(an application runs there, as in the article's Figure 5), node 3 holds 8 GiB of 2 MiB hugepages
for a database guest.  Swap is 2 GiB, "frequently" too small, as the article says.

Guests (all defined, as `virsh dumpxml --inactive` writes them):
  vm1              12 GiB, vCPUs on node 0, `<memory nodeset='0'/>`: strict added silently
  bigmem-preferred 35 GiB, the article's preferred example (`mode='preferred' nodeset='0'`)
  web-interleave   12 GiB interleaved over nodes 0-2 (the article's Figure 6 policy)
  db-hugepages      8 GiB of 2 MiB hugepages, strict on node 3, vCPUs on node 3
"""

from __future__ import annotations

import os
import shutil
import sys

from tests.support.synth import SynthNode, domain_xml, write_sysfs

GiB_KiB = 1024 * 1024


#: /proc/version of Debian 12's kernel, as `numaguard snapshot` captures it.
KERNEL = ("Linux version 6.1.0-28-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian "
          "12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC "
          "Debian 6.1.119-1 (2024-11-22)")


def node_cpus(n: int) -> str:
    return f"{10 * n}-{10 * n + 9},{40 + 10 * n}-{40 + 10 * n + 9}"


def build(directory: str) -> None:
    if os.path.exists(directory):
        shutil.rmtree(directory)
    nodes = [
        SynthNode(0, node_cpus(0), 16_122_340, 15_728_640),
        SynthNode(1, node_cpus(1), 16_514_832, 15_938_004),
        SynthNode(2, node_cpus(2), 16_514_832, 7_340_032),
        SynthNode(3, node_cpus(3), 16_514_832, 7_712_412, hugepages={2048: (4096, 4096)}),
    ]
    distances = [[10, 21, 21, 31], [21, 10, 31, 21], [21, 31, 10, 21], [31, 21, 21, 10]]
    write_sysfs(os.path.join(directory, "host"), nodes, distances,
                swap_total_kib=2 * GiB_KiB, swap_free_kib=2 * GiB_KiB, numa_balancing=1,
                kernel_version=KERNEL)
    write_live(os.path.join(directory, "host"))
    ddir = os.path.join(directory, "domains")
    os.makedirs(ddir)
    guests = {
        "vm1": domain_xml("vm1", 12 * GiB_KiB, 4, cpuset="0-9", nodeset="0"),
        "bigmem-preferred": domain_xml("bigmem-preferred", 36_700_160, 4, cpuset="0-9",
                                       mode="preferred", nodeset="0"),
        "web-interleave": domain_xml("web-interleave", 12 * GiB_KiB, 6, cpuset="0-29",
                                     mode="interleave", nodeset="0-2"),
        "db-hugepages": domain_xml("db-hugepages", 8 * GiB_KiB, 4, cpuset="30-39",
                                   mode="strict", nodeset="3", hugepage_kib=2048),
    }
    for name, xml in guests.items():
        with open(os.path.join(ddir, f"{name}.xml"), "w") as fh:
            fh.write(xml)


#: the running guests of the captured live state: name -> (libvirt id, QEMU pid, MiB per node)
LIVE_GUESTS = {
    "vm1": (1, 2101, {0: 200}),
    "web-interleave": (2, 2102, {0: 128, 1: 128, 2: 128}),
    "bigmem-preferred": (3, 2103, {0: 48}),
}


def write_live(host: str) -> None:
    """What ``numaguard top`` and the exporter read on a running host (readers/live.py),
    captured: three guests just started (db-hugepages is shut off), each with libvirt's pid
    file, ``/proc/PID/cgroup`` without systemd and a cgroup v1 ``memory.numa_stat`` in 4 KiB
    pages, a little page cache beside the anonymous memory that is counted.  Their memory fits
    in what the nodes' meminfo shows as taken."""
    for name, (gid, pid, mib) in LIVE_GUESTS.items():
        run = os.path.join(host, "run", "libvirt", "qemu")
        os.makedirs(run, exist_ok=True)
        with open(os.path.join(run, f"{name}.pid"), "w") as fh:
            fh.write(str(pid))
        cgroup = f"/machine/qemu-{gid}-{name}.libvirt-qemu"
        os.makedirs(os.path.join(host, "proc", str(pid)), exist_ok=True)
        with open(os.path.join(host, "proc", str(pid), "cgroup"), "w") as fh:
            fh.write(f"12:hugetlb:{cgroup}\n8:cpuset:{cgroup}/emulator\n4:memory:{cgroup}\n"
                     "1:name=systemd:/\n0::/\n")
        anon = {n: mib.get(n, 0) * 256 for n in range(4)}
        cache = {n: 16 if anon[n] else 0 for n in range(4)}
        zero = dict.fromkeys(range(4), 0)

        def line(key: str, pages: dict[int, int]) -> str:
            return f"{key}={sum(pages.values())} " + " ".join(f"N{n}={pages[n]}" for n in range(4))

        lines = [line("total", {n: anon[n] + cache[n] for n in range(4)}),
                 line("file", cache), line("anon", anon), line("unevictable", zero)]
        folder = os.path.join(host, "sys", "fs", "cgroup", "memory", cgroup.lstrip("/"))
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "memory.numa_stat"), "w") as fh:
            fh.write("\n".join(lines + [f"hierarchical_{x}" for x in lines]) + "\n")


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else "examples/article-host")
