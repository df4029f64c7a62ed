"""Turning a SOURCE argument into a Host or guests.

A SOURCE is one of:

* a snapshot directory: ``host/`` (a captured ``sys/``+``proc/`` tree, ``numactl-H.txt`` or
  ``capabilities.xml``) and ``domains/*.xml``;
* a captured sysfs root (a directory holding ``sys/devices/system/node``);
* a ``numactl -H`` text file or a ``virsh capabilities`` XML file (topology);
* a domain XML file or a folder of them (guests);
* nothing: this machine (``/`` and ``/etc/libvirt/qemu``).
"""

from __future__ import annotations

import os

from numaguard.errors import SourceError
from numaguard.model.guest import Guest
from numaguard.model.topology import Host
from numaguard.readers.files import read_bytes

LIVE_ROOT = "/"
LIBVIRT_QEMU_DIR = "/etc/libvirt/qemu"

NUMACTL_FILE = "numactl-H.txt"
CAPABILITIES_FILE = "capabilities.xml"


def is_snapshot(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "host")) or os.path.isdir(
        os.path.join(path, "domains"))


def _is_sysfs_root(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "sys", "devices", "system", "node"))


def read_host_dir(path: str) -> Host:
    """A directory holding one topology source (a snapshot's ``host/``, or a sysfs root)."""
    from numaguard.readers.sysfs import SysfsReader

    if _is_sysfs_root(path):
        host = SysfsReader(path).read_host()
    elif os.path.isfile(os.path.join(path, NUMACTL_FILE)):
        host = read_host_file(os.path.join(path, NUMACTL_FILE))
    elif os.path.isfile(os.path.join(path, CAPABILITIES_FILE)):
        host = read_host_file(os.path.join(path, CAPABILITIES_FILE))
    else:
        raise SourceError(path, f"no topology here: expected sys/devices/system/node, "
                          f"{NUMACTL_FILE} or {CAPABILITIES_FILE}")
    return host


def read_host_file(path: str) -> Host:
    data = read_bytes(path)
    if data.lstrip()[:1] == b"<":
        from numaguard.domxml.capabilities import parse_capabilities

        return parse_capabilities(data, path=path)
    from numaguard.readers.numactl import parse_numactl

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError(path, "neither a capabilities XML nor numactl -H text") from None
    return parse_numactl(text, path=path)


def load_host(source: str | None) -> Host:
    """The host topology of SOURCE (see the module docstring); ``None`` is this machine."""
    if source is None:
        from numaguard.readers.sysfs import SysfsReader

        return SysfsReader(LIVE_ROOT).read_host()
    if os.path.isdir(source):
        if is_snapshot(source):
            host_dir = os.path.join(source, "host")
            if not os.path.isdir(host_dir):
                raise SourceError(source, "snapshot has no host/ folder")
            return read_host_dir(host_dir)
        return read_host_dir(source)
    if not os.path.exists(source):
        raise SourceError(source, "no such file or directory")
    return read_host_file(source)


def load_guests(source: str | None) -> list[Guest]:
    """The guests of SOURCE; ``None`` is this machine's ``/etc/libvirt/qemu``."""
    from numaguard.readers.domains import read_domain_dir, read_domain_file

    if source is None:
        if not os.path.isdir(LIBVIRT_QEMU_DIR):
            raise SourceError(LIBVIRT_QEMU_DIR, "no such directory (is libvirt installed here? "
                              "name a snapshot, a domain XML or a folder of them)")
        return read_domain_dir(LIBVIRT_QEMU_DIR)
    if os.path.isdir(source):
        if is_snapshot(source):
            domains = os.path.join(source, "domains")
            return read_domain_dir(domains) if os.path.isdir(domains) else []
        return read_domain_dir(source)
    if not os.path.exists(source):
        raise SourceError(source, "no such file or directory")
    return [read_domain_file(source)]
