"""Record the QEMU command lines the real libvirtd makes of tests/oracle/qemu/domains/*.xml.

``python -m tests.support.capture_argv [DOMAIN.xml ...]`` (as root, on this machine) uses the
real libvirtd of :mod:`tests.support.libvirtd` (started now, or the one already answering), runs
``virsh -c qemu:///system domxml-to-native qemu-argv FILE`` for every domain XML and writes
``tests/oracle/qemu/argv/NAME.json``::

    {"libvirt_version": "9.0.0", "qemu_version": "7.2.22",
     "domain": "tests/oracle/qemu/domains/NAME.xml",
     "environment": ["LC_ALL", "PATH", ...],
     "argv": ["/usr/bin/qemu-system-x86_64", ...]}

``argv`` is ``shlex.split`` of virsh's output from the emulator on; the environment assignments
libvirt prints before it (``LC_ALL=C PATH=... HOME=...``) are the daemon's, not QEMU's memory
layout, so only their names are kept.  Nothing is defined or started: domxml-to-native builds
the command line as a start would (libvirt's ``qemuConnectDomainXMLToNative`` →
``qemuProcessCreatePretendCmdPrepare``/``Build`` → ``qemuBuildCommandLine``), and refuses what a
start refuses — on this one-node host ``nodeset='1'`` ("NUMA node 1 is unavailable").

libvirtd finds hugetlbfs mounts when it starts (``hugetlbfs_mount`` in qemu.conf, else
/proc/mounts); without one a ``<hugepages>`` guest with a file backend is refused ("hugetlbfs
filesystem is not mounted or disabled by administrator config").  This machine has none (no
systemd to mount /dev/hugepages), so when this tool starts the daemon itself and no hugetlbfs
is mounted, it mounts one on :data:`HUGETLBFS` for the run (no huge page is reserved: building a
command line allocates nothing) and unmounts it afterwards.

A domain that libvirt refuses is an error (exit 1, nothing written for it): a recording is
complete or not made.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support import libvirtd

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = ROOT / "tests/oracle/qemu/domains"
ARGV_DIR = ROOT / "tests/oracle/qemu/argv"
HUGETLBFS = Path("/dev/hugepages")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Recording:
    name: str
    data: dict[str, object]


def hugetlbfs_mounted(mounts: str = "/proc/mounts") -> bool:
    return any(line.split()[2:3] == ["hugetlbfs"] for line in Path(mounts).read_text().splitlines())


def versions(uri: str = libvirtd.URI) -> tuple[str, str]:
    """(libvirt, QEMU) versions from ``virsh version`` ("Using library: libvirt 9.0.0",
    "Running hypervisor: QEMU 7.2.0")."""
    out = subprocess.run(["virsh", "-c", uri, "version"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    lib = re.search(r"Using library: libvirt (\S+)", out)
    hyp = re.search(r"Running hypervisor: QEMU (\S+)", out)
    if lib is None or hyp is None:
        raise RuntimeError(f"unexpected `virsh version` output: {out!r}")
    return lib.group(1), hyp.group(1)


def split_native(text: str) -> tuple[list[str], list[str]]:
    """virsh's qemu-argv text → (names of the leading environment assignments, argv)."""
    words = shlex.split(text)
    env: list[str] = []
    while words and _ENV.match(words[0]) and not words[0].startswith("-"):
        env.append(words.pop(0).split("=", 1)[0])
    if not words:
        raise RuntimeError(f"no command in {text!r}")
    return env, words


def native_argv(xml: Path, uri: str = libvirtd.URI) -> tuple[list[str], list[str]]:
    """``virsh domxml-to-native qemu-argv XML`` split; RuntimeError with virsh's message."""
    proc = subprocess.run(["virsh", "-c", uri, "domxml-to-native", "qemu-argv", str(xml)],
                          capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{xml.name}: {proc.stderr.strip() or proc.stdout.strip()}")
    return split_native(proc.stdout)


def record(xmls: list[Path], uri: str = libvirtd.URI) -> list[Recording]:
    """What the answering libvirtd makes of each of *xmls* (the daemon must be up)."""
    lib, qemu = versions(uri)
    out = []
    for xml in xmls:
        env, argv = native_argv(xml, uri)
        domain = str(xml.resolve().relative_to(ROOT)) if xml.resolve().is_relative_to(ROOT) \
            else str(xml)
        out.append(Recording(xml.stem, {"libvirt_version": lib, "qemu_version": qemu,
                                        "domain": domain, "environment": env, "argv": argv}))
    return out


@contextlib.contextmanager
def session() -> Iterator[bool]:
    """The daemon for a recording: acquired (after mounting a hugetlbfs on :data:`HUGETLBFS`
    when this run starts it and none is mounted), released by its PID afterwards, and the
    mount undone.  Yields ``True`` when the daemon was started now with a hugetlbfs mounted
    (a file backed ``<hugepages>`` domain then works), ``False`` when it was started without
    one (such a domain is refused), ``None`` when it was already running (either)."""
    mounted = False
    if not hugetlbfs_mounted() and not libvirtd.answers():
        HUGETLBFS.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "hugetlbfs", "hugetlbfs", str(HUGETLBFS)], check=True,
                       timeout=30)
        mounted = True
    try:
        daemon = libvirtd.acquire()
        try:
            yield hugetlbfs_mounted() if daemon.started_now else None
        finally:
            libvirtd.release(daemon)
    finally:
        if mounted:
            subprocess.run(["umount", str(HUGETLBFS)], check=False, timeout=30)
            with contextlib.suppress(OSError):
                HUGETLBFS.rmdir()


def capture(xmls: list[Path]) -> list[Recording]:
    """Record *xmls* in one :func:`session`."""
    with session():
        return record(xmls)


def write(recordings: list[Recording], dest: Path = ARGV_DIR) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for rec in recordings:
        path = dest / f"{rec.name}.json"
        path.write_text(json.dumps(rec.data, indent=1) + "\n")
        paths.append(path)
    return paths


def main(args: list[str]) -> int:
    why = libvirtd.unavailable()
    if why is not None:
        print(f"capture_argv: {why}", file=sys.stderr)
        return 1
    xmls = [Path(a) for a in args] or sorted(DOMAINS.glob("*.xml"))
    try:
        recordings = capture(xmls)
    except RuntimeError as exc:
        print(f"capture_argv: {exc}", file=sys.stderr)
        return 1
    for path in write(recordings):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
