"""Sizes: bytes inside numaguard, libvirt's units at the edges.

``parse_scaled`` follows libvirt's ``virScaleInteger`` (src/util/virutil.c) and
``virDomainParseMemory`` (src/conf/domain_conf.c):

* the suffix is case-insensitive; none means the element's default scale (KiB for memory);
* ``b``, ``byte``, ``bytes`` are bytes;
* ``k m g t p e``, alone or followed by ``iB``, are powers of 1024;
* ``kB mB gB tB pB eB`` (any case, e.g. ``KB``, ``MB``) are powers of 1000;
* anything else is an unknown suffix;
* the value is a non-negative decimal integer, at most ``2**63 - 1`` bytes (``LLONG_MAX``);
* memory is kept in KiB by libvirt, so the byte value is rounded *up* to a whole KiB.
"""

from __future__ import annotations

import re

from numaguard.errors import UnitError
from numaguard.limits import shorten

KiB = 1024
MiB = 1024**2
GiB = 1024**3
TiB = 1024**4

#: virMemoryMaxValue(false) on a 64-bit host: LLONG_MAX bytes.
MEMORY_MAX_BYTES = 2**63 - 1

_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_DIGITS = re.compile(r"[ \t\n\v\f\r]*\+?([0-9]+)")  # strtoull: leading space, optional '+'


def unit_scale(unit: str | None, default: int = KiB) -> int:
    """Bytes per unit for a libvirt ``unit=`` value; ``None``/empty means *default*."""
    if unit is None or unit == "":
        return default
    low = unit.lower()
    if low in ("b", "byte", "bytes"):
        return 1
    power = _POWERS.get(low[0])
    if power is not None:
        rest = low[1:]
        if rest in ("", "ib"):
            return 1024**power
        if rest == "b":
            return 1000**power
    raise UnitError(f"unknown unit {unit!r} (libvirt takes b, KiB/k, MiB/m, GiB/g, TiB/t, "
                    "PiB/p, EiB/e, or KB/MB/GB/TB/PB/EB for powers of 1000)", field="unit")


def parse_scaled(
    value: str,
    unit: str | None = None,
    *,
    default_scale: int = KiB,
    round_to: int = KiB,
    limit: int = MEMORY_MAX_BYTES,
) -> int:
    """Parse a libvirt scaled integer (``value`` text and ``unit`` attribute) into bytes."""
    m = _DIGITS.fullmatch(value)
    if m is None:
        raise UnitError(f"invalid value {shorten(value)!r}: expected a non-negative integer")
    scale = unit_scale(unit, default_scale)
    digits = m.group(1).lstrip("0") or "0"
    # the length first: Python refuses to convert more than 4,300 digits
    if len(digits) > len(str(limit)) or int(digits) > limit // scale:
        raise UnitError(f"value {shorten(value)!r} {unit or ''} is too large (at most "
                        f"{limit} bytes)".replace("  ", " "))
    number = int(digits)
    nbytes = number * scale
    if round_to > 1:
        nbytes = -(-nbytes // round_to) * round_to
    return nbytes


_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")


def parse_size(text: str | int, *, default_scale: int = 1) -> int:
    """Parse a human size such as ``"12GiB"``, ``"512 MiB"``, ``"4G"``, ``"1.5GiB"`` into bytes,
    at most ``2**63 - 1`` (8 EiB, libvirt's LLONG_MAX).

    Used for command-line options and scenario files.  The unit table is libvirt's (so ``GB``
    is 10**9), a bare number is in *default_scale* (bytes unless told otherwise), and
    fractions are allowed here (rounded down to a byte).
    """
    if isinstance(text, bool):
        raise UnitError(f"invalid size {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise UnitError(f"invalid size {text!r}: negative")
        return _capped(text * default_scale, str(text))
    m = _SIZE.fullmatch(text)
    if m is None:
        raise UnitError(f"invalid size {shorten(text)!r}: expected a number and a unit such "
                        "as 12GiB")
    scale = unit_scale(m.group(2), default_scale)
    whole, _, frac = m.group(1).partition(".")
    whole = whole.lstrip("0") or "0"
    if len(whole) > len(str(MEMORY_MAX_BYTES)):
        raise UnitError(f"size {shorten(text)!r} is too large (at most {MEMORY_MAX_BYTES} "
                        "bytes)")
    frac = frac[:24]  # digits beyond a yoctobyte cannot change the byte count
    nbytes = int(whole) * scale + (int(frac) * scale // 10 ** len(frac) if frac else 0)
    return _capped(nbytes, text)


def _capped(nbytes: int, text: str) -> int:
    if nbytes > MEMORY_MAX_BYTES:
        raise UnitError(f"size {shorten(text)!r} is too large (at most {MEMORY_MAX_BYTES} "
                        "bytes, just under 8 EiB)")
    return nbytes


def format_bytes(n: int | None, *, precision: int = 1) -> str:
    """A byte count for people: ``12.0 GiB``, ``512.0 MiB``, ``0 B``.  ``None`` is ``-``."""
    if n is None:
        return "-"
    sign = "-" if n < 0 else ""
    n = abs(n)
    for name, size in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{sign}{n / size:.{precision}f} {name}"
    return f"{sign}{n} B"
