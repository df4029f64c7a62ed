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


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else "examples/article-host")
