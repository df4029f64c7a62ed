"""How much memory a libvirt-started QEMU takes of its own, before its guest touches any RAM.

    .venv/bin/python -m tests.support.measure_qemu_own      # root; starts libvirtd if needed

Starts two paused 512 MiB, 2-vCPU transient guests through the real libvirtd of
tests/support/libvirtd.py (``VIR_DOMAIN_START_PAUSED``: QEMU is up, the vCPUs have not run, so
no guest RAM is touched): one with libvirt's default devices only, one with the usual set of a
desktop-style guest (xHCI + tablet, VNC + QXL, virtio balloon, rng and guest-agent channel).
Prints each QEMU's RssAnon / RssFile / VmPTE from /proc/PID/status, then destroys the guests and
stops a libvirtd it started.  The figures are what docs/simulate.md quotes for
``--qemu-overhead``; RssFile (the QEMU binary and its libraries) is page cache every QEMU shares.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.support import libvirtd

USUAL = """
    <controller type='usb' model='qemu-xhci'/>
    <controller type='virtio-serial'/>
    <input type='tablet' bus='usb'/>
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>
    <video><model type='qxl' ram='65536' vram='65536' vgamem='16384' heads='1'/></video>
    <memballoon model='virtio'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
"""


def domain(name: str, devices: str) -> str:
    return (f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>512</memory>"
            "<vcpu>2</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os><devices>"
            f"<emulator>{libvirtd.QEMU}</emulator>{devices}</devices></domain>")


def main() -> int:
    import libvirt

    daemon = libvirtd.acquire()
    try:
        conn = libvirt.open(libvirtd.URI)
        for label, devices in (("default devices", ""), ("usual devices", USUAL)):
            name = f"{libvirtd.GUEST_PREFIX}own-{label.split()[0]}"
            dom = conn.createXML(domain(name, devices), libvirt.VIR_DOMAIN_START_PAUSED)
            try:
                time.sleep(3)
                pid = int(Path(f"/run/libvirt/qemu/{name}.pid").read_text())
                status = Path(f"/proc/{pid}/status").read_text()
                kb = dict(re.findall(r"^(RssAnon|RssFile|VmPTE):\s+(\d+) kB", status, re.M))
                print(f"{label}: own anonymous {int(kb['RssAnon']) / 1024:.1f} MiB, page "
                      f"tables {int(kb['VmPTE']) / 1024:.1f} MiB, file pages "
                      f"{int(kb['RssFile']) / 1024:.1f} MiB (shared)")
            finally:
                dom.destroy()
    finally:
        libvirtd.release(daemon)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
