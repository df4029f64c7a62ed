"""What the captured trees in tests/fixtures/sys/ contain, transcribed from the raw files.

Memory and hugepage sizes are written in KiB, exactly as in the ``meminfo`` files and the
``hugepages-<size>kB`` directory names; ``numactl`` holds the ``size``/``free`` MB figures of
``numactl-H.txt`` (run a moment after the sysfs files were copied, so *free* differs a little).
Recapturing (tests/oracle/capture_sysfs.sh) changes the free figures: update them here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from numaguard.cpuset import parse_cpulist
from numaguard.model.topology import Host, HostHugepages, Node
from numaguard.units import KiB, MiB

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SYS = FIXTURES / "sys"

#: (node id, cpulist, MemTotal kB, MemFree kB, {page size kB: (nr_hugepages, free_hugepages)})
NodeRow = tuple[int, str, int, int, dict[int, tuple[int, int]]]


@dataclass(frozen=True)
class Capture:
    nodes: list[NodeRow]
    distances: list[tuple[int, ...]]
    swap: tuple[int, int]  # SwapTotal, SwapFree in kB
    numa_balancing: int
    numactl: list[tuple[int, int]]  # (size MB, free MB) per node

    def sysfs_host(self) -> Host:
        return Host(
            nodes=tuple(
                Node(id=nid, cpus=parse_cpulist(cpus), mem_total=total * KiB,
                     mem_free=free * KiB,
                     hugepages=tuple(HostHugepages(size=size * KiB, total=nr, free=fr)
                                     for size, (nr, fr) in sorted(pools.items())))
                for nid, cpus, total, free, pools in self.nodes
            ),
            distances=tuple(self.distances),
            swap_total=self.swap[0] * KiB,
            swap_free=self.swap[1] * KiB,
            numa_balancing=self.numa_balancing > 0,
        )

    def numactl_host(self) -> Host:
        return Host(
            nodes=tuple(
                Node(id=nid, cpus=parse_cpulist(cpus), mem_total=size * MiB,
                     mem_free=free * MiB)
                for (nid, cpus, *_), (size, free) in zip(self.nodes, self.numactl, strict=True)
            ),
            distances=tuple(self.distances),
        )

    def capabilities_host(self) -> Host:
        """What ``virsh capabilities`` on this machine shows: totals, no free figures."""
        return Host(
            nodes=tuple(
                Node(id=nid, cpus=parse_cpulist(cpus), mem_total=total * KiB,
                     mem_free=None,
                     hugepages=tuple(HostHugepages(size=size * KiB, total=nr, free=None)
                                     for size, (nr, _) in sorted(pools.items())))
                for nid, cpus, total, _, pools in self.nodes
            ),
            distances=tuple(self.distances),
        )


_NO_POOLS = {2048: (0, 0), 1048576: (0, 0)}

CAPTURES: dict[str, Capture] = {
    "1node": Capture(
        nodes=[
            (0, "0-1", 466148, 435520, _NO_POOLS),
        ],
        distances=[(10,)],
        swap=(0, 0),
        numa_balancing=0,
        numactl=[(455, 424)],
    ),
    "2node": Capture(
        nodes=[
            (0, "0-1", 469112, 445600, _NO_POOLS),
            (1, "2-3", 513228, 485164, _NO_POOLS),
        ],
        distances=[(10, 21), (21, 10)],
        swap=(0, 0),
        numa_balancing=1,
        numactl=[(458, 431), (501, 473)],
    ),
    "4node": Capture(
        nodes=[
            (0, "0", 211312, 193856, _NO_POOLS),
            (1, "1", 386648, 373600, _NO_POOLS),
            (2, "2", 386648, 364956, _NO_POOLS),
            (3, "3", 189892, 176400, _NO_POOLS),
        ],
        distances=[(10, 21, 21, 31), (21, 10, 31, 21), (21, 31, 10, 21), (31, 21, 21, 10)],
        swap=(0, 0),
        numa_balancing=1,
        numactl=[(206, 189), (377, 364), (377, 352), (185, 172)],
    ),
    "8node": Capture(
        nodes=[
            (0, "0", 82288, 61316, _NO_POOLS),
            (1, "1", 257624, 252352, _NO_POOLS),
            (2, "2", 192088, 185836, _NO_POOLS),
            (3, "3", 128600, 114944, _NO_POOLS),
            (4, "4", 257624, 251620, _NO_POOLS),
            (5, "5", 194136, 176776, _NO_POOLS),
            (6, "6", 128600, 123700, _NO_POOLS),
            (7, "7", 255424, 247388, _NO_POOLS),
        ],
        distances=[
            (10, 12, 17, 17, 19, 19, 19, 19),
            (12, 10, 17, 17, 19, 19, 19, 19),
            (17, 17, 10, 12, 19, 19, 19, 19),
            (17, 17, 12, 10, 19, 19, 19, 19),
            (19, 19, 19, 19, 10, 12, 17, 17),
            (19, 19, 19, 19, 12, 10, 17, 17),
            (19, 19, 19, 19, 17, 17, 10, 12),
            (19, 19, 19, 19, 17, 17, 12, 10),
        ],
        swap=(0, 0),
        numa_balancing=1,
        numactl=[(80, 59), (251, 246), (187, 181),
                 (125, 112), (251, 245), (189, 182), (125, 120), (249, 241)],
    ),
    "cpuless": Capture(
        nodes=[
            (0, "0-1", 469112, 439724, _NO_POOLS),
            (1, "2-3", 515424, 494544, _NO_POOLS),
            (2, "", 255676, 247776, _NO_POOLS),
        ],
        distances=[(10, 21, 24), (21, 10, 24), (24, 24, 10)],
        swap=(0, 0),
        numa_balancing=1,
        numactl=[(458, 429), (503, 478), (249, 241)],
    ),
    "hugepages": Capture(
        nodes=[
            (0, "0-1", 469112, 395160, {2048: (16, 12), 1048576: (0, 0)}),
            (1, "2-3", 2061516, 977328, {2048: (8, 6), 1048576: (1, 1)}),
        ],
        distances=[(10, 21), (21, 10)],
        swap=(0, 0),
        numa_balancing=1,
        numactl=[(458, 382), (2013, 954)],
    ),
    "memoryless": Capture(
        nodes=[
            (0, "0", 469360, 432304, _NO_POOLS),
            (1, "1", 513056, 493908, _NO_POOLS),
            (2, "2", 0, 0, _NO_POOLS),
        ],
        distances=[(10, 21, 21), (21, 10, 21), (21, 21, 10)],
        swap=(0, 0),
        numa_balancing=1,
        numactl=[(458, 421), (501, 478), (0, 0)],
    ),
    "offline-cpus": Capture(
        nodes=[
            (0, "0-1", 469112, 440324, _NO_POOLS),
            (1, "2", 513228, 492208, _NO_POOLS),
        ],
        distances=[(10, 21), (21, 10)],
        swap=(0, 0),
        numa_balancing=1,
        numactl=[(458, 426), (501, 480)],
    ),
    "swap": Capture(
        nodes=[
            (0, "0-1", 469112, 422672, _NO_POOLS),
            (1, "2-3", 513228, 450964, _NO_POOLS),
        ],
        distances=[(10, 21), (21, 10)],
        swap=(65532, 32508),
        numa_balancing=1,
        numactl=[(458, 412), (501, 437)],
    ),
}
