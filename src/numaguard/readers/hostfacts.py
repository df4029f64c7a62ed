"""Facts about the host beyond its NUMA topology that some audit rules weigh.

* the kernel release (NG105: multi-node ``preferred`` needs MPOL_PREFERRED_MANY, Linux >= 5.15),
  read from ``<root>/proc/sys/kernel/osrelease`` (``6.1.0-56-amd64``) or, in a snapshot, from
  ``<root>/proc/version`` (``Linux version 6.1.0-56-amd64 (debian-kernel@…) …``,
  fs/proc/version.c ``linux_proc_banner``);
* whether numad is installed (NG402: ``placement='auto'`` asks numad for advice): only
  meaningful for the live machine, so :func:`numad_installed` has no root.

A missing file gives ``None``; unreadable files raise :class:`PermissionDenied`; malformed
content is a :class:`ParseError` naming the file.
"""

from __future__ import annotations

import os
import re
import shutil

from numaguard.errors import ParseError
from numaguard.readers.files import read_optional_text

OSRELEASE = "proc/sys/kernel/osrelease"
PROC_VERSION = "proc/version"
NUMAD_PATHS = ("/usr/bin/numad", "/usr/sbin/numad")

_BANNER = re.compile(r"Linux version (\S+)")


def kernel_release(root: str) -> str | None:
    """``uname -r`` of the system captured under *root* (``"/"`` for this machine)."""
    path = os.path.join(root, OSRELEASE)
    text = read_optional_text(path)
    if text is not None:
        release = text.strip()
        if not release or any(c.isspace() for c in release):
            raise ParseError(f"expected one word such as 6.1.0-56-amd64, got {text[:60]!r}",
                             field="osrelease", path=path, line=1)
        return release
    path = os.path.join(root, PROC_VERSION)
    text = read_optional_text(path)
    if text is None:
        return None
    m = _BANNER.match(text)
    if m is None:
        raise ParseError(f"expected 'Linux version <release> …', got {text[:60]!r}",
                         field="version", path=path, line=1)
    return m.group(1)


def numad_installed() -> bool:
    """Whether this machine has the numad daemon (``$PATH`` or its usual locations)."""
    return shutil.which("numad") is not None or any(os.path.exists(p) for p in NUMAD_PATHS)


MIN_FREE_KBYTES = "proc/sys/vm/min_free_kbytes"


def min_free_kbytes(root: str) -> int | None:
    """``vm.min_free_kbytes`` under *root* (``numaguard snapshot`` keeps it), from which the
    kernel derives the watermarks when the source has no ``/proc/zoneinfo``
    (mm/page_alloc.c ``__setup_per_zone_wmarks``)."""
    from numaguard.limits import decimal

    path = os.path.join(root, MIN_FREE_KBYTES)
    text = read_optional_text(path)
    if text is None:
        return None
    return decimal(text, field="min_free_kbytes", limit=2**53, path=path, line=1)
