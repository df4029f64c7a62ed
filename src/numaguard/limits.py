"""The limits of what numaguard reads, where Linux, QEMU and libvirt set them.

Every value that makes numaguard allocate or loop in proportion to it is checked against one of
these *before* the allocation, with a message naming the limit and where it comes from; a
number is checked for its length before Python converts it (Python refuses integers of more
than 4,300 digits with a ``ValueError``, and a long one is slow to convert anyway).

Pure: no I/O.
"""

from __future__ import annotations

from numaguard.errors import ParseError

#: Linux's MAX_NUMNODES: ``1 << CONFIG_NODES_SHIFT``, and NODES_SHIFT is at most 10 on x86-64
#: and arm64 (arch/x86/Kconfig, arch/arm64/Kconfig ``range 1 10``; MAXSMP sets 10).  Node ids
#: are below it too.
MAX_NODES = 1024
#: A SLIT distance is one byte (ACPI SLIT; the kernel's ``numa_distance[]`` is ``u8``,
#: arch/x86/mm/numa.c).
MAX_DISTANCE = 255
#: libvirt's VIR_DOMAIN_CPUMASK_LEN (src/conf/domain_conf.h): the size of every cpuset and
#: nodeset bitmap; above Linux's largest NR_CPUS (8192 on x86-64 with MAXSMP).  Host CPU ids
#: are below it.
MAX_CPUS = 16384
#: The largest ``max_cpus`` of a QEMU machine type: q35 since QEMU 9.0 (hw/i386/pc_q35.c
#: ``m->max_cpus = 4096``).  libvirt refuses a domain with more vCPUs than its machine type
#: allows ("Maximum CPUs greater than specified machine type limit", src/qemu/qemu_validate.c
#: ``qemuValidateDomainDefCpu``).
MAX_VCPUS = 4096
#: QEMU's MAX_NODES (include/sysemu/numa.h): guest NUMA nodes per guest.
MAX_GUEST_CELLS = 128
#: The members of all *distinct* cpusets/nodesets of one domain XML together.  A real guest
#: names a few thousand (4,096 vCPUs each pinned to one CPU); this keeps a hostile document of
#: thousands of different ``0-16383`` cpusets from taking gigabytes.
MAX_BITMAP_MEMBERS = 1 << 21
#: Problems listed for one document; the rest are counted.
MAX_PROBLEMS = 20
#: Digits of the largest unsigned 64-bit number (18446744073709551615).
MAX_DIGITS = 20


def decimal(text: str, *, field: str | None = None, limit: int = 2**64 - 1,
            path: str | None = None, line: int | None = None) -> int:
    """A non-negative decimal integer (ASCII digits only; surrounding white space allowed) of at
    most *limit*; anything else is a :class:`ParseError` at *field* (and *path*/*line*, when the
    caller knows them).  Leading zeros are accepted, as ``strtoull`` accepts them; the length
    is checked before converting."""
    digits = text.strip()
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise ParseError(f"expected a non-negative integer, got {shorten(text)!r}", field=field,
                         path=path, line=line)
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(limit)) or int(significant) > limit:
        raise ParseError(f"{shorten(significant)} is out of range (at most {limit})",
                         field=field, path=path, line=line)
    return int(significant)


def shorten(text: str, width: int = 60) -> str:
    """*text* cut to *width* characters with ``…`` and the length, for error messages."""
    if len(text) <= width:
        return text
    return f"{text[: width - 1]}… ({len(text)} characters)"


def distance_row(words: list[str], *, field: str, path: str | None = None,
                 line: int | None = None) -> tuple[int, ...]:
    """A row of SLIT distances, each at most :data:`MAX_DISTANCE`: the fast path for the
    million entries of a 1,024-node host; any unusual word takes :func:`decimal`, which
    accepts leading zeros and names the first bad value."""
    if all(len(w) <= 3 and w.isascii() and w.isdigit() for w in words):
        row = tuple(map(int, words))
        if max(row, default=0) <= MAX_DISTANCE:
            return row
    return tuple(decimal(w, field=field, limit=MAX_DISTANCE, path=path, line=line)
                 for w in words)
