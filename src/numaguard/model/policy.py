"""Memory policy as libvirt resolves it from ``<numatune>`` (src/conf/numa_conf.c).

Raw declarations (what the XML says) go in as :class:`NumatuneSpec`; :func:`resolve_numatune`
applies libvirt's defaults and checks and returns the *effective* policy of the guest and of
each guest cell, or every problem libvirt would reject the definition for.

What libvirt does, and what this module therefore does:

* ``<memory>`` without ``mode`` is ``strict``.  We keep ``implicit_mode=True`` so that rules can
  say the strict mode was added silently (``virDomainNumatuneSet``).
* ``placement`` defaults to ``static`` when a nodeset is given, else to the ``<vcpu>``
  placement; ``static`` without a nodeset is an error; ``auto`` drops any nodeset.
* ``<vcpu placement='auto'>`` with no ``<numatune><memory>`` means ``strict`` + ``auto``.
* ``<memnode cellid mode nodeset>`` overrides ``<memory>`` for one guest cell; its mode defaults
  to ``strict``; it needs guest NUMA cells, an existing cellid, a nodeset, no duplicates, and is
  not allowed with automatic placement.
* ``restrictive`` is on ``<memory>`` and every memnode, or on none (``virDomainNumaDefValidate``).
* No ``<numatune>`` at all: no policy, the kernel's local allocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from numaguard.errors import ParseError


class MemoryMode(str, Enum):
    """libvirt ``<numatune>`` modes.  QEMU gets ``policy=bind|preferred|interleave``;
    ``restrictive`` gives QEMU no policy and is enforced by cgroup ``cpuset.mems`` only."""

    STRICT = "strict"
    PREFERRED = "preferred"
    INTERLEAVE = "interleave"
    RESTRICTIVE = "restrictive"

    @property
    def binds(self) -> bool:
        """Memory may come only from the nodeset (strict via mbind, restrictive via cgroups)."""
        return self in (MemoryMode.STRICT, MemoryMode.RESTRICTIVE)

    @property
    def qemu_policy(self) -> str | None:
        """The ``policy=`` libvirt gives QEMU's memory-backend objects (qemu_command.c)."""
        return {"strict": "bind", "preferred": "preferred", "interleave": "interleave"}.get(
            self.value
        )


#: the mode names, in libvirt's order (what ``--mode`` accepts)
MODE_NAMES = tuple(m.value for m in MemoryMode)


class Placement(str, Enum):
    STATIC = "static"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class MemoryPolicy:
    """An effective memory policy.  ``nodeset`` is ``None`` for automatic (numad) placement."""

    mode: MemoryMode
    placement: Placement
    nodeset: frozenset[int] | None
    implicit_mode: bool = False


@dataclass(frozen=True, slots=True)
class MemorySpec:
    """``<numatune><memory>`` as written: attribute values not yet defaulted."""

    mode: str | None = None
    placement: str | None = None
    nodeset: frozenset[int] | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class MemnodeSpec:
    """``<numatune><memnode>`` as written."""

    cellid: int | None
    mode: str | None
    nodeset: frozenset[int] | None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class NumatuneSpec:
    present: bool = False
    memory: MemorySpec | None = None
    memnodes: tuple[MemnodeSpec, ...] = ()
    line: int | None = None


@dataclass(frozen=True, slots=True)
class ResolvedNumatune:
    """The guest-wide policy (``None``: no policy) and, per guest cell, its effective policy."""

    memory: MemoryPolicy | None
    cells: tuple[MemoryPolicy | None, ...]
    vcpu_placement: Placement
    problems: tuple[ParseError, ...] = ()
    #: the guest cells with their own ``<memnode>`` (the others follow ``<memory>``)
    memnodes: frozenset[int] = frozenset()


def _mode(value: str | None, field: str, line: int | None,
          problems: list[ParseError]) -> MemoryMode | None:
    if value is None:
        return None
    try:
        return MemoryMode(value)
    except ValueError:
        problems.append(ParseError(
            f"unsupported NUMA memory tuning mode {value!r} (strict, preferred, interleave, "
            "restrictive)", field=field, line=line))
        return None


def resolve_numatune(
    spec: NumatuneSpec,
    *,
    vcpu_placement: Placement,
    ncells: int,
    has_cpu_pinning: bool,
) -> ResolvedNumatune:
    """Resolve ``<numatune>`` as libvirt does.

    *vcpu_placement* is the declared ``<vcpu placement>`` (default static); *ncells* the number
    of guest NUMA cells; *has_cpu_pinning* whether a vCPU cpuset, vcpupin, emulatorpin or
    iothreadpin exists (with automatic memory placement and none of these, libvirt switches the
    vCPU placement to auto as well).
    """
    problems: list[ParseError] = []
    mem = spec.memory
    mline = mem.line if mem else spec.line
    memory: MemoryPolicy | None = None

    mode: MemoryMode | None = None
    placement: Placement | None = None
    nodeset = mem.nodeset if mem is not None else None
    if mem is not None:
        mode = _mode(mem.mode, "numatune/memory/@mode", mline, problems)
        if mem.placement in ("static", "auto"):
            placement = Placement(mem.placement)
        elif mem.placement not in (None, "default"):
            problems.append(ParseError(
                f"unsupported NUMA memory placement {mem.placement!r} (static, auto)",
                field="numatune/memory/@placement", line=mline))
    # virDomainNumatuneParseXML: no <memory> under <vcpu placement='auto'> means auto placement.
    auto_by_vcpu = mem is None and vcpu_placement is Placement.AUTO
    declared = mem is not None and (
        mem.mode is not None or mem.placement is not None or nodeset is not None)
    if (declared or auto_by_vcpu) and not problems:
        # virDomainNumatuneSet: mode defaults to strict; placement to static when a nodeset is
        # given or the vCPUs are statically placed, else auto.
        if placement is None:
            if nodeset is not None or vcpu_placement is Placement.STATIC:
                placement = Placement.STATIC
            else:
                placement = Placement.AUTO
        if placement is Placement.STATIC and nodeset is None:
            problems.append(ParseError(
                "nodeset for NUMA memory tuning must be set if placement is 'static'",
                field="numatune/memory/@nodeset", line=mline))
        else:
            memory = MemoryPolicy(
                mode=mode or MemoryMode.STRICT,
                placement=placement,
                nodeset=nodeset if placement is Placement.STATIC else None,
                implicit_mode=mode is None,
            )

    effective_vcpu_placement = vcpu_placement
    if memory is not None and memory.placement is Placement.AUTO and not has_cpu_pinning:
        effective_vcpu_placement = Placement.AUTO

    cells: list[MemoryPolicy | None] = [memory] * ncells
    seen: set[int] = set()
    for mn in spec.memnodes:
        if memory is not None and memory.placement is Placement.AUTO:
            problems.append(ParseError(
                "per-node binding (memnode) is not compatible with automatic NUMA placement",
                field="numatune/memnode", line=mn.line))
            break
        if ncells == 0:
            problems.append(ParseError(
                "element 'memnode' is invalid without any guest NUMA cells (<cpu><numa>)",
                field="numatune/memnode", line=mn.line))
            break
        if mn.cellid is None:
            problems.append(ParseError("missing required attribute 'cellid'",
                                       field="numatune/memnode/@cellid", line=mn.line))
            continue
        if mn.cellid >= ncells:
            have = "only cell 0" if ncells == 1 else f"cells 0-{ncells - 1}"
            problems.append(ParseError(
                f"cellid {mn.cellid} does not name a guest NUMA cell (the guest has {have})",
                field="numatune/memnode/@cellid", line=mn.line))
            continue
        if mn.cellid in seen:
            problems.append(ParseError(f"multiple memnode elements with cellid {mn.cellid}",
                                       field="numatune/memnode/@cellid", line=mn.line))
            continue
        seen.add(mn.cellid)
        mode = _mode(mn.mode, "numatune/memnode/@mode", mn.line, problems)
        if mn.mode is not None and mode is None:
            continue
        mode = mode or MemoryMode.STRICT
        memory_mode = memory.mode if memory is not None else MemoryMode.STRICT
        if memory_mode is MemoryMode.RESTRICTIVE and mode is not MemoryMode.RESTRICTIVE:
            problems.append(ParseError(
                "'restrictive' mode is required in memnode when <memory> is 'restrictive'",
                field="numatune/memnode/@mode", line=mn.line))
            continue
        if mode is MemoryMode.RESTRICTIVE and memory_mode is not MemoryMode.RESTRICTIVE:
            problems.append(ParseError(
                "'restrictive' mode in memnode requires mode 'restrictive' on <memory>",
                field="numatune/memnode/@mode", line=mn.line))
            continue
        if mn.nodeset is None:
            problems.append(ParseError("missing required attribute 'nodeset'",
                                       field="numatune/memnode/@nodeset", line=mn.line))
            continue
        cells[mn.cellid] = MemoryPolicy(mode=mode, placement=Placement.STATIC,
                                        nodeset=mn.nodeset, implicit_mode=mn.mode is None)

    return ResolvedNumatune(
        memory=memory,
        cells=tuple(cells),
        vcpu_placement=effective_vcpu_placement,
        problems=tuple(problems),
        memnodes=frozenset(mn.cellid for mn in spec.memnodes if mn.cellid is not None),
    )
