"""The JSON contract of ``topology`` and ``guests`` (keep it stable: users script it).

Keys listed in the contract never change meaning; new keys may be added.  Sizes are bytes,
sets are sorted lists, unknown values are ``null``.

Every JSON document numaguard prints starts with two keys (:func:`versioned`):

* ``schema_version`` (int, :data:`SCHEMA_VERSION`): raised only when a key of the contract
  changes meaning or disappears, so a script can refuse a document it does not understand;
  new keys do not raise it;
* ``numaguard_version``: the release that wrote it.

``topology``: ``{schema_version, numaguard_version, nodes: [{id, cpus, mem_total_bytes,
mem_free_bytes, hugepages: [{size_bytes, total, free}]}], distances, swap_total_bytes,
swap_free_bytes, numa_balancing}``.  ``guests``: ``{schema_version, numaguard_version,
guests: [...]}`` (:func:`guest_to_dict`).
"""

from __future__ import annotations

import json

from numaguard import __version__

#: typing.TYPE_CHECKING without importing typing (~2 ms of every command); mypy and ruff
#: read a module's own TYPE_CHECKING as true
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `topology --format json` loads no guest model
    from typing import Any

    from numaguard.model.guest import Guest
    from numaguard.model.policy import MemoryPolicy
    from numaguard.model.topology import Host


def _ids(s: frozenset[int] | None) -> list[int] | None:
    return None if s is None else sorted(s)


def host_to_dict(host: Host) -> dict[str, Any]:
    return {
        "nodes": [
            {
                "id": n.id,
                "cpus": sorted(n.cpus),
                "mem_total_bytes": n.mem_total,
                "mem_free_bytes": n.mem_free,
                "hugepages": [
                    {"size_bytes": hp.size, "total": hp.total, "free": hp.free}
                    for hp in n.hugepages
                ],
            }
            for n in host.nodes
        ],
        "distances": [list(row) for row in host.distances] if host.distances is not None else None,
        "swap_total_bytes": host.swap_total,
        "swap_free_bytes": host.swap_free,
        "numa_balancing": host.numa_balancing,
    }


def policy_to_dict(policy: MemoryPolicy | None) -> dict[str, Any]:
    if policy is None:
        return {"mode": None, "placement": None, "nodeset": None, "implicit_mode": False}
    return {
        "mode": policy.mode.value,
        "placement": policy.placement.value,
        "nodeset": _ids(policy.nodeset),
        "implicit_mode": policy.implicit_mode,
    }


def guest_to_dict(g: Guest) -> dict[str, Any]:
    return {
        "name": g.name,
        "uuid": g.uuid,
        "memory_bytes": g.memory,
        "current_memory_bytes": g.current_memory,
        "vcpus": g.vcpus,
        "vcpus_current": g.vcpus_current,
        "vcpu_placement": g.vcpu_placement.value,
        "cpuset": _ids(g.cpuset),
        "pins": [{"vcpu": p.vcpu, "cpus": sorted(p.cpus)} for p in g.pins],
        "emulatorpin": _ids(g.emulatorpin),
        "policy": policy_to_dict(g.policy),
        "cells": [
            {
                "id": c.id,
                "cpus": sorted(c.cpus),
                "memory_bytes": c.memory,
                "mode": c.policy.mode.value if c.policy else None,
                "placement": c.policy.placement.value if c.policy else None,
                "nodeset": _ids(c.policy.nodeset) if c.policy else None,
                "implicit_mode": c.policy.implicit_mode if c.policy else False,
                "hugepage_size_bytes": c.hugepage_size,
            }
            for c in g.cells
        ],
        "hugepages": [
            {"size_bytes": hp.size, "cells": _ids(hp.cells)} for hp in g.hugepages
        ],
        "source": g.source,
    }


#: the version of the JSON contract (see the module docstring)
SCHEMA_VERSION = 1


def versioned(d: dict[str, Any]) -> dict[str, Any]:
    """*d* with ``schema_version`` and ``numaguard_version`` first (keys of *d* keep their
    order after them)."""
    return {"schema_version": SCHEMA_VERSION, "numaguard_version": __version__, **d}


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False) + "\n"


def topology_json(host: Host) -> str:
    return dumps(versioned(host_to_dict(host)))


def guests_json(guests: list[Guest]) -> str:
    return dumps(versioned({"guests": [guest_to_dict(g) for g in guests]}))
