"""Node and CPU sets: libvirt's bitmap syntax and the kernel's cpulist syntax.

``parse_bitmap`` follows libvirt's ``virBitmapParseInternal`` (src/util/virbitmap.c) exactly:

* items are separated by ``,``; white space is allowed around items and around ``-``;
* ``N`` sets a bit, ``N-M`` (``M >= N``) sets a range, ``^N`` clears a bit; items apply left to
  right, so ``^1,0-3`` is ``0-3`` and ``0-3,^1`` is ``0,2-3``;
* ``^N-M`` is invalid, an empty string is invalid, a trailing ``,`` is accepted;
* every bit must be below the bitmap size (libvirt's ``VIR_DOMAIN_CPUMASK_LEN``, 16384).

libvirt rejects an all-clear nodeset (``0,^0``) where a nodeset is required ("Invalid value of
'nodeset'"); :func:`parse_nodeset` does the same.  :func:`format_bitmap` prints a set normalised
the way ``virBitmapFormat`` does (``0-6,8-10``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from numaguard.errors import NodesetError
from numaguard.limits import MAX_CPUS, shorten

#: libvirt's VIR_DOMAIN_CPUMASK_LEN: the size of nodeset/cpuset bitmaps (one limit, in
#: numaguard.limits).
CPUMASK_LEN = MAX_CPUS

_SPACE = " \t\n\v\f\r"
_INT_MAX = 2**31 - 1
#: One int object per possible bit, shared by every set: a set of 16,384 CPUs then costs its
#: hash table only (no 16,384 new int objects per cpuset).
_BITS = tuple(range(CPUMASK_LEN))


def _number(text: str, i: int, *, signed: bool,
            fail: Callable[[str], NodesetError]) -> tuple[int, int]:
    """The number at *text[i:]* and where it ends, as virStrToLong_i reads it (strtol, base
    10); the caller guarantees what may start here."""
    n = len(text)
    j = i
    neg = False
    if signed and j < n and text[j] in "+-":
        neg = text[j] == "-"
        j += 1
    k = j
    while k < n and text[k].isascii() and text[k].isdigit():
        k += 1
    if k == j:
        raise fail("expected a number")
    if len(text[j:k].lstrip("0")) > 10:  # before int(): Python refuses 4,300+ digits
        raise fail("number out of range")
    value = int(text[j:k])
    if value > _INT_MAX:
        raise fail("number out of range")
    return (-value if neg else value), k


def parse_bitmap(text: str, *, limit: int = CPUMASK_LEN, field: str = "nodeset") -> frozenset[int]:
    """Parse libvirt bitmap syntax into a set of bit numbers (possibly empty, e.g. ``0,^0``)."""

    def fail(why: str) -> NodesetError:
        return NodesetError(f"{shorten(text)!r}: {why}", field=field)

    bits: set[int] = set()
    n = len(text)
    i = 0

    def skip(i: int) -> int:
        while i < n and text[i] in _SPACE:
            i += 1
        return i

    i = skip(0)
    if i == n:
        raise fail("empty")
    while i < n:
        neg = False
        if text[i] == "^":
            i += 1
            neg = True
        if i >= n or not (text[i].isascii() and text[i].isdigit()):
            raise fail("expected a number" + (" after '^'" if neg else ""))
        start, i = _number(text, i, signed=False, fail=fail)
        i = skip(i)
        if i == n or text[i] == ",":
            if start >= limit:
                raise fail(f"{start} is beyond the maximum {limit - 1}")
            if neg:
                bits.discard(start)
            else:
                bits.add(start)
        elif text[i] == "-":
            if neg:
                raise fail("a range cannot be excluded with '^'")
            i = skip(i + 1)
            # strtol itself skips leading white space and takes a sign.
            last, i = _number(text, skip(i), signed=True, fail=fail)
            if last < start:
                raise fail(f"range {start}-{last} ends before it starts")
            if last >= limit:
                raise fail(f"{last} is beyond the maximum {limit - 1}")
            bits.update(_BITS[start:last + 1] if last < CPUMASK_LEN else range(start, last + 1))
            i = skip(i)
        if i < n and text[i] == ",":
            i = skip(i + 1)
        elif i == n:
            break
        else:
            raise fail(f"unexpected {text[i]!r}")
    return frozenset(bits)


def parse_nodeset(text: str, *, field: str = "nodeset", limit: int = CPUMASK_LEN) -> frozenset[int]:
    """Parse a libvirt nodeset/cpuset that must name at least one bit."""
    bits = parse_bitmap(text, limit=limit, field=field)
    if not bits:
        raise NodesetError(f"{text!r} selects no node or CPU", field=field)
    return bits


def parse_cpulist(text: str, *, field: str = "cpulist",
                  limit: int = CPUMASK_LEN) -> frozenset[int]:
    """Parse a kernel cpulist/nodelist (``/sys/.../cpulist``, ``online``); empty is allowed.

    Members are below *limit*: by default libvirt's bitmap size, which is above any Linux
    NR_CPUS (the readers check node ids against MAX_NUMNODES themselves)."""
    stripped = text.strip()
    if not stripped:
        return frozenset()
    return parse_bitmap(stripped, limit=limit, field=field)


def format_bitmap(bits: Iterable[int]) -> str:
    """Format like ``virBitmapFormat``: sorted, ranges of two or more as ``a-b``."""
    out: list[str] = []
    items = sorted(set(bits))
    k = 0
    while k < len(items):
        start = prev = items[k]
        k += 1
        while k < len(items) and items[k] == prev + 1:
            prev = items[k]
            k += 1
        out.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(out)
