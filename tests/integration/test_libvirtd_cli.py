"""The numaguard commands against a real libvirtd with the QEMU driver (issue 12's "Done when").

Gated like tests/integration/test_libvirtd.py (``NUMAGUARD_LIBVIRTD=1`` or ``=bounded``; root,
libvirtd, QEMU): the daemon is started by :mod:`tests.support.libvirtd` (or a running one is
used) and stopped by its PID afterwards; every guest is ``ngtest-…`` and removed by the test.
The commands run as a user runs them: ``python -m numaguard`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_libvirtd import (
    MODE,
    SRC,
    URI,
    USER_PYTHON,
    _user,
    full_only,
    guest_xml,
    n,
)
from tests.support import libvirtd

pytestmark = pytest.mark.libvirt
assert MODE in ("1", "bounded")
import libvirt  # noqa: E402  (after the skips of test_libvirtd)

from tests.integration import test_libvirtd as base  # noqa: E402

daemon, conn = base.daemon, base.conn     # the fixtures: one daemon, guests removed after


def numaguard(*argv: str, python: str = sys.executable, user: str | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(SRC),
           "HOME": "/tmp", "COLUMNS": "100"}
    cmd = [python, "-m", "numaguard", *argv]
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False,
                          env=env, cwd=cwd)


def ours(names: Any) -> list[str]:
    return sorted(x for x in names if x.startswith(libvirtd.GUEST_PREFIX))


def findings(doc: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    return sorted((f["rule"], f["severity"], tuple(f["guests"])) for f in doc["findings"])


def test_audit_sees_transient_persistent_running_and_shut_off(conn: Any) -> None:
    # shut off, and more than the one node holds, bound strict: NG101, fixed by a
    # `numaguard fix` line (libvirt writes mode='strict' out itself: no implicit strict here)
    conn.defineXML(guest_xml("off", memory_mib=64 * 1024))
    conn.defineXML(guest_xml("run")).create()
    conn.createXML(guest_xml("transient", mode="interleave"), 0)
    done = numaguard("audit", "-c", URI, "--format", "json", "--fail-on", "never")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert ours(doc["guests"]) == [n("off"), n("run"), n("transient")]
    # the printed fix lines name the guests through libvirt, and work as printed (the
    # default output is a diff of the persistent XML: nothing is changed)
    commands = [c for f in doc["findings"] if f["fix"] and n("off") in f["guests"]
                for c in f["fix"]["commands"] if c.startswith("numaguard fix")]
    assert commands
    for line in commands:
        argv = line.split()
        assert argv[:4] == ["numaguard", "fix", "-c", URI], line
        shown = numaguard(*argv[1:])
        assert shown.returncode == 0, (line, shown.stderr)


def test_a_snapshot_through_libvirt_audits_the_same(conn: Any, tmp_path: Path) -> None:
    conn.defineXML(guest_xml("snap-off", mode="preferred"))
    conn.defineXML(guest_xml("snap-run")).create()
    conn.createXML(guest_xml("snap-transient", mode="interleave"), 0)
    # a running guest whose definition changed since it started: NG112 on both sides
    conn.defineXML(guest_xml("snap-run", mode="interleave"))
    snap = tmp_path / "snap"
    made = numaguard("snapshot", "-c", URI, str(snap))
    assert made.returncode == 0, made.stderr
    assert sorted(os.listdir(snap / "domains")) == sorted(
        f"{x}.xml" for x in ours_names(conn))
    assert sorted(os.listdir(snap / "live")) >= [f"{n('snap-run')}.xml",
                                                 f"{n('snap-transient')}.xml"]
    meta = json.loads((snap / "snapshot.json").read_text())
    assert meta["source"] == URI and n("snap-run") in meta["running"]
    live = numaguard("audit", "-c", URI, "--format", "json", "--fail-on", "never")
    offline = numaguard("audit", str(snap), "--format", "json", "--fail-on", "never")
    assert live.returncode == offline.returncode == 0, (live.stderr, offline.stderr)
    a, b = json.loads(live.stdout), json.loads(offline.stdout)
    assert findings(a) == findings(b)
    assert ("NG112", "info", (n("snap-run"),)) in findings(b)


def ours_names(conn: Any) -> list[str]:
    return ours(d.name() for d in conn.listAllDomains(0))


@full_only
def test_fix_apply_round_trips_a_running_guests_persistent_xml(conn: Any,
                                                               tmp_path: Path) -> None:
    dom = conn.defineXML(guest_xml("fixme"))
    dom.create()
    before = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    done = numaguard("fix", n("fixme"), "--mode", "preferred", "--nodeset", "0", "--apply",
                     "-c", URI, "--backup-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    after = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert "mode='preferred'" in after and "mode='strict'" in before
    assert "mode='strict'" in dom.XMLDesc(0)        # the running guest keeps its mode
    (backup,) = tmp_path.iterdir()
    assert backup.read_text() == before.rstrip("\n") + "\n" or \
        backup.read_text().strip() == before.strip()
    # and back: defining the backup restores the persistent XML
    restored = subprocess.run(["virsh", "-c", URI, "define", str(backup)],
                              capture_output=True, text=True, check=False)
    assert restored.returncode == 0, restored.stderr
    assert dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == before
    # the audit now says the running guest waits for a restart, then nothing once equal
    pending = numaguard("audit", "-c", URI, "--format", "json", "--fail-on", "never",
                        "--rule", "NG112")
    assert (n("fixme"),) not in [tuple(f["guests"]) for f in
                                 json.loads(pending.stdout)["findings"]]


@full_only
def test_a_libvirt_group_member_audits_through_the_socket(conn: Any) -> None:
    sock = os.stat(libvirtd.SOCKET)
    if sock.st_mode & 0o777 != 0o770:
        pytest.skip(f"{libvirtd.SOCKET} is not the test daemon's (mode {sock.st_mode:o})")
    probe = subprocess.run([USER_PYTHON, "-c", "import lxml, libvirt"], capture_output=True,
                           check=False)
    if probe.returncode != 0:
        pytest.skip(f"{USER_PYTHON} lacks lxml or libvirt (make libvirtd-deps installs them)")
    conn.defineXML(guest_xml("member-off"))
    conn.createXML(guest_xml("member-run"), 0)
    for user in _user("ngtest-virt", "libvirt"):
        done = numaguard("audit", "-c", URI, "--format", "json", "--fail-on", "never",
                         python=USER_PYTHON, user=user, cwd=Path("/tmp"))
        assert done.returncode == 0, done.stderr
        assert ours(json.loads(done.stdout)["guests"]) == [n("member-off"), n("member-run")]


@full_only
def test_plan_apply_defines_the_numatune_and_the_pins(conn: Any, tmp_path: Path) -> None:
    """`numaguard plan -c URI --apply` on the real QEMU driver: a shut-off guest without a
    <numatune> (the plan moves it: no binding it can vouch for) gets the plan's <numatune> and
    its vCPU and emulator pins in the persistent XML (virDomainPinVcpuFlags/PinEmulator with
    AFFECT_CONFIG); every other domain is kept (--keep), so nothing else on the daemon
    changes."""
    xml = guest_xml("plan").replace("<numatune><memory mode='strict' nodeset='0'/></numatune>",
                                    "")
    assert "<numatune>" not in xml
    dom = conn.defineXML(xml)
    others = [d.name() for d in conn.listAllDomains(0) if d.name() != n("plan")]
    keep = [arg for name in others for arg in ("--keep", name)]
    shown = numaguard("plan", "-c", URI, *keep, "--format", "json")
    assert shown.returncode in (0, 1), shown.stderr
    (mine,) = [p for p in json.loads(shown.stdout)["placements"] if p["guest"] == n("plan")]
    assert mine["placed"] and mine["moved"] and mine["cpuset"]
    done = numaguard("plan", "-c", URI, *keep, "--apply", "--backup-dir", str(tmp_path))
    assert done.returncode in (0, 1), done.stderr
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    nodeset = ",".join(map(str, mine["nodeset"]))
    assert f"<memory mode='{mine['mode']}' nodeset='{nodeset}'/>" in xml, xml
    pinned = dom.vcpuPinInfo(libvirt.VIR_DOMAIN_AFFECT_CONFIG)[0]
    assert {c for c, on in enumerate(pinned) if on} == set(mine["cpuset"])
    emulator = dom.emulatorPinInfo(libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    assert {c for c, on in enumerate(emulator) if on} == set(mine["cpuset"])
    # two backups: before the <numatune> define (none yet), and before the pins (the new one)
    assert sorted("<numatune>" in b.read_text() for b in tmp_path.iterdir()) == [False, True]
