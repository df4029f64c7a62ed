"""Capture the files :func:`numaguard.readers.live.read_live` reads into a fixture folder.

:func:`capture` runs a :class:`~numaguard.readers.live.LiveReader` on *source* (``/``) and copies
exactly the files it read (:attr:`LiveReader.visited`), plus each guest's ``proc/PID/numa_maps``
(read right after its cgroup file, for the tests' cross-check), into *dest* under the same
relative paths.  A file that vanished or is unreadable is left out (so is the guest's error).

``python -m tests.support.capture_live DEST`` (as root, on this machine) starts the real
libvirtd (:mod:`tests.support.libvirtd`), three small TCG guests (see :data:`GUESTS`), waits until
each has touched its memory, captures, then destroys and undefines every guest and stops the
daemon by its PID (when this run started it).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from numaguard.errors import NumaguardError
from numaguard.model.live import LiveState
from numaguard.readers.files import read_bytes
from numaguard.readers.live import RUN_DIR, LiveReader

#: (name, memory MiB, MiB the guest kernel touches or None, immediate allocation)
GUESTS = (("live-a", 64, 40, False), ("live-b", 256, 200, False), ("live-c", 128, None, True))


def capture(source: str, dest: str, guests: Iterable[tuple[str, int | None]] | None = None, *,
            run_dir: str = RUN_DIR, with_numa_maps: bool = True) -> LiveState:
    """Copy what :func:`read_live` reads under *source* into *dest*; return what it read."""
    reader = LiveReader(source, run_dir=run_dir)
    state = reader.read(guests)
    wanted = list(reader.visited)
    if with_numa_maps:
        wanted += [f"proc/{g.pid}/numa_maps" for g in state.guests if g.pid is not None]
    for rel in dict.fromkeys(wanted):
        try:
            data = read_bytes(os.path.join(source, rel))
        except NumaguardError:
            continue
        target = Path(dest, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return state


def _domain_xml(name: str, memory_mib: int, kernel: Path | None, serial: Path | None,
                immediate: bool) -> str:
    from tests.integration.test_libvirtd import guest_xml
    xml = guest_xml(name, memory_mib=memory_mib, kernel=kernel, serial=serial)
    if immediate:
        xml = xml.replace("<vcpu>", "<memoryBacking><allocation mode='immediate'/>"
                                    "</memoryBacking>\n  <vcpu>", 1)
    return xml


def capture_libvirtd(dest: str) -> LiveState:
    """Start the real libvirtd and :data:`GUESTS`, capture into *dest*, clean up everything."""
    os.environ.setdefault("NUMAGUARD_LIBVIRTD", "1")   # test_libvirtd's guest_xml import
    import libvirt  # type: ignore[import-untyped]

    from tests.support import libvirtd
    from tests.support.guestkernel import message, write_kernel

    daemon = libvirtd.acquire()
    try:
        conn = libvirt.open(libvirtd.URI)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                names = []
                for name, mib, touch, immediate in GUESTS:
                    kernel = write_kernel(Path(tmp, f"{name}.bin"), touch) if touch else None
                    serial = Path(tmp, f"{name}.log") if touch else None
                    conn.createXML(_domain_xml(name, mib, kernel, serial, immediate), 0)
                    names.append((libvirtd.GUEST_PREFIX + name, serial, touch))
                for _, serial, touch in names:
                    deadline = time.monotonic() + 60
                    while serial is not None and touch is not None and \
                            message(touch) not in (serial.read_bytes() if serial.exists() else b""):
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"{serial} never said {message(touch)!r}")
                        time.sleep(0.1)
                time.sleep(0.5)
                return capture("/", dest, [(n, None) for n, _, _ in names])
        finally:
            for dom in conn.listAllDomains(0):
                if dom.name().startswith(libvirtd.GUEST_PREFIX):
                    libvirtd.remove_guest(dom)
            conn.close()
    finally:
        libvirtd.release(daemon)


if __name__ == "__main__":
    state = capture_libvirtd(sys.argv[1])
    for g in state.guests:
        print(g.name, g.pid, g.source, g.cgroup, g.per_node, g.error)
    print(state.nodes)
