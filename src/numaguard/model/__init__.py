"""Pure value objects: the host's NUMA topology and the guests' NUMA requests (bytes everywhere)."""

from numaguard.model.guest import Guest, GuestCell, HugepageBacking, VcpuPin
from numaguard.model.policy import MemoryMode, MemoryPolicy, Placement
from numaguard.model.topology import Host, HostHugepages, Node

__all__ = [
    "Guest",
    "GuestCell",
    "Host",
    "HostHugepages",
    "HugepageBacking",
    "MemoryMode",
    "MemoryPolicy",
    "Node",
    "Placement",
    "VcpuPin",
]
