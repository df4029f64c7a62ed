"""``numaguard snapshot DIR``: capture this machine into the offline snapshot layout.

    DIR/host/sys/devices/system/node/...   the files SysfsReader reads (and a few the simulator
    DIR/host/proc/{meminfo,zoneinfo,...}   will want: zoneinfo, min_free_kbytes, has_memory)
    DIR/domains/*.xml                      readable domain XMLs (/etc/libvirt/qemu by default)

The snapshot is built in a temporary folder beside DIR and renamed into place at the end, so DIR
appears complete or not at all; an existing DIR is never touched.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile

from numaguard.errors import PermissionDenied, SourceError
from numaguard.readers.domains import list_domain_files
from numaguard.readers.files import read_bytes
from numaguard.readers.sysfs import SysfsReader

#: Captured too, for later analysis (watermarks, node states, CPU hotplug state).
EXTRA_PATHS = [
    "sys/devices/system/node/possible",
    "sys/devices/system/node/has_cpu",
    "sys/devices/system/node/has_memory",
    "sys/devices/system/node/has_normal_memory",
    "sys/devices/system/node/node*/numastat",
    "sys/devices/system/cpu/online",
    "sys/devices/system/cpu/offline",
    "proc/sys/vm/min_free_kbytes",
    "proc/version",
]


def _copy(src: str, dst: str) -> None:
    data = read_bytes(src)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "wb") as fh:
        fh.write(data)


def capture_snapshot(directory: str, *, root: str = "/",
                     libvirt_dir: str = "/etc/libvirt/qemu") -> str:
    """Capture into *directory*; return a one-paragraph summary for the user."""
    target = os.path.abspath(directory)
    if os.path.exists(target):
        raise SourceError(directory, "already exists; choose a new folder for the snapshot")
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise SourceError(parent, "no such directory")
    # Check the root is readable as a topology before writing anything.
    host = SysfsReader(root).read_host()
    tmp = tempfile.mkdtemp(prefix=".numaguard-snapshot-", dir=parent)
    try:
        files = 0
        for pattern in SysfsReader.capture_paths() + EXTRA_PATHS:
            for src in sorted(glob.glob(os.path.join(root, pattern))):
                rel = os.path.relpath(src, root)
                _copy(src, os.path.join(tmp, "host", rel))
                files += 1
        domains_note = ""
        os.makedirs(os.path.join(tmp, "domains"))
        ndomains = 0
        try:
            for src in list_domain_files(libvirt_dir):
                _copy(src, os.path.join(tmp, "domains", os.path.basename(src)))
                ndomains += 1
        except PermissionDenied:
            domains_note = f" ({libvirt_dir} is not readable: no domains copied)"
        except SourceError:
            domains_note = f" ({libvirt_dir} not found: no domains copied)"
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return (f"snapshot {directory}: {len(host.nodes)} NUMA node(s), {files} host files, "
            f"{ndomains} domain XML(s){domains_note}")
