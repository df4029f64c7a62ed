"""Pure value objects: the host's NUMA topology and the guests' NUMA requests (bytes everywhere).

The names are loaded on first use (PEP 562 ``__getattr__``): ``numaguard topology`` needs only
:mod:`numaguard.model.topology`, and importing the guest and policy modules with it cost ~4 ms of
a ~40 ms command (issue 11)."""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (numaguard/cli/)
if TYPE_CHECKING:
    from typing import Any

_WHERE = {
    "Guest": "guest", "GuestCell": "guest", "HugepageBacking": "guest", "VcpuPin": "guest",
    "MemoryMode": "policy", "MemoryPolicy": "policy", "Placement": "policy",
    "Host": "topology", "HostHugepages": "topology", "Node": "topology",
    "HostFacts": "inventory", "Inventory": "inventory", "Problem": "inventory",
}

__all__ = ["Guest", "GuestCell", "Host", "HostFacts", "HostHugepages", "HugepageBacking",
           "Inventory", "MemoryMode",
           "MemoryPolicy", "Node", "Placement", "VcpuPin"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
