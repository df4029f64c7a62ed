"""LibvirtReader against a real libvirtd with the QEMU driver and real (TCG) QEMU guests.

Runs only when asked: ``NUMAGUARD_LIBVIRTD=1`` (``make test-libvirtd``: every test) or
``NUMAGUARD_LIBVIRTD=bounded`` (``make test``: the tests marked ``BOUNDED``, well under a
minute), and only where :func:`tests.support.libvirtd.unavailable` finds nothing missing (root,
libvirtd, QEMU, libvirt-python).  The daemon is started (or an already running one is used)
by :mod:`tests.support.libvirtd` and stopped by its PID afterwards; every guest a test starts is
named ``ngtest-…`` and destroyed and undefined by the test.  The host has one NUMA node, so every
guest binds to node 0 (``nodeset='1'`` fails to start: "NUMA node 1 is unavailable").
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_DNS, uuid5

import pytest

from numaguard.model.policy import MemoryMode
from numaguard.readers.libvirt_api import DomainVanished, LibvirtReader
from tests.support import libvirtd
from tests.support.guestkernel import message, write_kernel

pytestmark = pytest.mark.libvirt

MODE = os.environ.get("NUMAGUARD_LIBVIRTD", "")
if MODE not in ("1", "bounded"):
    pytest.skip("the real-libvirtd tests run with NUMAGUARD_LIBVIRTD=1 (make test-libvirtd) or "
                "=bounded (make test)", allow_module_level=True)
_missing = libvirtd.unavailable()
if _missing is not None:
    pytest.skip(f"no real libvirtd here: {_missing}", allow_module_level=True)

import libvirt  # noqa: E402  (after the skips above)

URI = libvirtd.URI
SRC = Path(__file__).resolve().parents[2] / "src"
#: `make test` (NUMAGUARD_LIBVIRTD=bounded) runs the tests without this mark: a few, < 60 s
full_only = pytest.mark.skipif(MODE == "bounded", reason="full run only (make test-libvirtd)")


@pytest.fixture(scope="module")
def daemon() -> Iterator[libvirtd.Daemon]:
    d = libvirtd.acquire()
    try:
        yield d
    finally:
        libvirtd.release(d)


@pytest.fixture
def conn(daemon: libvirtd.Daemon) -> Iterator[Any]:
    c = libvirt.open(URI)
    try:
        yield c
    finally:
        for dom in c.listAllDomains(0):
            if dom.name().startswith(libvirtd.GUEST_PREFIX):
                libvirtd.remove_guest(dom)
        c.close()


def guest_xml(name: str, *, mode: str = "strict", memory_mib: int = 64,
              kernel: Path | None = None, serial: Path | None = None) -> str:
    """A disk-less TCG guest bound to node 0 (with *kernel*: it boots that multiboot image)."""
    boot = f"<kernel>{kernel}</kernel>" if kernel else "<boot dev='network'/>"
    console = (f"<serial type='file'><source path='{serial}'/><target port='0'/></serial>"
               if serial else "")
    uuid = uuid5(NAMESPACE_DNS, name)       # the same per name: a redefinition replaces it
    return f"""<domain type='qemu'>
  <name>{libvirtd.GUEST_PREFIX}{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <numatune><memory mode='{mode}' nodeset='0'/></numatune>
  <os><type arch='x86_64' machine='pc'>hvm</type>{boot}</os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>{libvirtd.QEMU}</emulator>
    {console}
  </devices>
</domain>
"""


def names(guests: Any) -> set[str]:
    return {g.name for g in guests if g.name.startswith(libvirtd.GUEST_PREFIX)}


def n(name: str) -> str:
    return libvirtd.GUEST_PREFIX + name


def test_persistent_and_transient_running_and_shut_off(conn: Any) -> None:
    conn.defineXML(guest_xml("off"))
    conn.defineXML(guest_xml("run")).create()
    conn.createXML(guest_xml("transient", mode="interleave"), 0)
    with LibvirtReader(URI) as reader:
        inv = reader.read()
        xmls = {d.name: d for d in reader.domain_xmls() if d.name.startswith("ngtest-")}
    assert names(inv.guests) == {n("off"), n("run"), n("transient")}
    assert names(inv.live_guests) == {n("run"), n("transient")}
    assert inv.running is not None
    assert {x for x in inv.running if x.startswith("ngtest-")} == {n("run"), n("transient")}
    assert inv.start_order is not None
    ours = [x for x in inv.start_order if x.startswith("ngtest-")]
    assert ours == [n("run"), n("transient")]          # started in that order
    assert xmls[n("off")].live is None and xmls[n("run")].live is not None
    assert xmls[n("transient")].transient
    transient = inv.guest(n("transient"))
    assert transient is not None and transient.policy is not None
    assert transient.policy.mode is MemoryMode.INTERLEAVE
    assert (inv.uri, inv.live) == (URI, True)
    # one host node here; getCellsFreeMemory on qemu:///system is bytes (node0 MemFree)
    assert [node.id for node in inv.host.nodes] == [0]
    assert inv.facts.free_bytes is not None
    ((node, free),) = inv.facts.free_bytes
    memfree = _node0_memfree_bytes()
    assert node == 0 and abs(free - memfree) < 256 * 2**20, (free, memfree)


def _node0_memfree_bytes() -> int:
    text = Path("/sys/devices/system/node/node0/meminfo").read_text()
    m = re.search(r"MemFree:\s+(\d+) kB", text)
    assert m is not None
    return int(m.group(1)) * 1024


def test_live_numatune_differs_from_the_persistent_one(conn: Any) -> None:
    conn.defineXML(guest_xml("pending", mode="strict")).create()
    conn.defineXML(guest_xml("pending", mode="preferred"))   # takes effect at the next boot
    with LibvirtReader(URI) as reader:
        inv = reader.read()
    persistent, live = inv.guest(n("pending")), inv.live_guest(n("pending"))
    assert persistent is not None and live is not None
    assert persistent.policy is not None and live.policy is not None
    assert persistent.policy.mode is MemoryMode.PREFERRED
    assert live.policy.mode is MemoryMode.STRICT
    assert persistent != live


def test_domain_destroyed_and_undefined_mid_read_is_skipped(conn: Any) -> None:
    conn.defineXML(guest_xml("stays"))
    gone = conn.defineXML(guest_xml("gone"))
    gone.create()
    with LibvirtReader(URI) as reader:
        listed = reader.list_domains()
        gone.destroy()
        gone.undefine()
        (handle,) = [d for d in listed if d.name() == n("gone")]
        with pytest.raises(DomainVanished):
            reader.read_domain(handle)
        inv = reader.inventory(listed)
    assert f"{URI}: domain {n('gone')} vanished while being read; skipped" in inv.notes
    assert names(inv.guests) == {n("stays")}
    assert inv.complete


@full_only
def test_guest_kernel_holds_what_it_touched(conn: Any, tmp_path: Path) -> None:
    """Two guests of 256 MiB touching 32 and 160 MiB: QEMU's resident anonymous memory differs
    by the 128 MiB between them (the rest — QEMU's own, firmware — is the same for both)."""
    rss: dict[int, int] = {}
    for touch in (32, 160):
        kernel = write_kernel(tmp_path / f"touch{touch}.bin", touch)
        serial = tmp_path / f"serial{touch}.log"
        name = f"touch{touch}"
        dom = conn.createXML(guest_xml(name, memory_mib=256, kernel=kernel, serial=serial), 0)
        _wait_for(lambda s=serial, t=touch: message(t) in _read(s), 60,  # type: ignore[misc]
                  f"{serial} never said {message(touch)!r}")
        pid = int(Path(f"/run/libvirt/qemu/{n(name)}.pid").read_text())
        rss[touch] = _rss_anon_bytes(pid)
        with LibvirtReader(URI) as reader:
            assert reader.read_domain_xml(n(name)).running
        dom.destroy()
    difference = rss[160] - rss[32]
    assert abs(difference - 128 * 2**20) < 8 * 2**20, rss


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


def _rss_anon_bytes(pid: int) -> int:
    m = re.search(r"RssAnon:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert m is not None
    return int(m.group(1)) * 1024


READ_AS_USER = """
import sys
from numaguard.errors import NumaguardError
from numaguard.readers.libvirt_api import LibvirtReader
try:
    with LibvirtReader(sys.argv[1]) as r:
        inv = r.read()
except NumaguardError as exc:
    print("error:", exc)
    sys.exit(2)
print(" ".join(sorted(g.name for g in inv.guests if g.name.startswith("ngtest-"))))
print(" ".join(sorted(x for x in inv.running or () if x.startswith("ngtest-"))))
"""


def _user(name: str, groups: str | None) -> Iterator[str]:
    try:
        pwd.getpwnam(name)
    except KeyError:
        cmd = ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
        subprocess.run(cmd + (["-G", groups] if groups else []), check=True)
        try:
            yield name
        finally:
            subprocess.run(["userdel", name], check=False)
    else:
        yield name


@pytest.fixture
def group_user(daemon: libvirtd.Daemon) -> Iterator[str]:
    sock = os.stat(libvirtd.SOCKET)
    if sock.st_mode & 0o777 != 0o770 or sock.st_gid != libvirtd.grp.getgrnam("libvirt").gr_gid:
        pytest.skip(f"{libvirtd.SOCKET} is not rw for the libvirt group (mode "
                    f"{sock.st_mode & 0o777:o}): the running libvirtd is not the test one")
    yield from _user("ngtest-virt", "libvirt")


@pytest.fixture
def other_user(daemon: libvirtd.Daemon) -> Iterator[str]:
    yield from _user("ngtest-nobody", None)


#: the interpreter the other users run: the test venv's lives under /root (mode 0700), Debian's
#: own python3 has lxml and libvirt-python as packages (`make libvirtd-deps` installs them)
USER_PYTHON = "/usr/bin/python3"


def _run_as(user: str) -> subprocess.CompletedProcess[str]:
    probe = subprocess.run([USER_PYTHON, "-c", "import lxml, libvirt"], capture_output=True,
                           check=False)
    if probe.returncode != 0:
        pytest.skip(f"{USER_PYTHON} cannot import lxml and libvirt (apt-get install "
                    "python3-lxml python3-libvirt; make libvirtd-deps does)")
    return subprocess.run(
        ["runuser", "-u", user, "--", USER_PYTHON, "-c", READ_AS_USER, URI],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(SRC),
             "HOME": "/tmp"})


@full_only
def test_a_libvirt_group_member_reads_through_the_socket(conn: Any, group_user: str) -> None:
    conn.defineXML(guest_xml("seen-off"))
    conn.createXML(guest_xml("seen-run"), 0)
    done = _run_as(group_user)
    assert done.returncode == 0, done.stderr
    persistent, running = done.stdout.splitlines()
    assert persistent.split() == [n("seen-off"), n("seen-run")]
    assert running.split() == [n("seen-run")]


@full_only
def test_a_user_outside_the_group_gets_one_line(conn: Any, group_user: str,
                                                other_user: str) -> None:
    done = _run_as(other_user)
    assert done.returncode == 2, (done.stdout, done.stderr)
    (line,) = done.stdout.splitlines()
    assert line.startswith(f"error: {URI}: ") and "ermission denied" in line, line
    assert done.stderr == ""
