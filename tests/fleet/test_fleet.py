"""The fleet run (numaguard/fleet.py, report/fleet.py): many hosts in one process, each isolated
and under a deadline, reported as a table, one JSON document and JUnit XML."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import numaguard
from numaguard.errors import NumaguardError, ParseError, SourceError
from numaguard.fleet import (
    URI_WORKERS,
    FleetResult,
    HostReport,
    audit_fleet,
    default_workers,
    read_hosts_file,
    targets_of,
)
from tests.support.synth import synth_snapshot

REPO = Path(__file__).resolve().parents[2]
HOSTS = 200
#: what a run of a few hosts may take beyond its deadline here: a bound, not a speed target
#: (the machine is shared; a hung host without a deadline would never end)
SLACK = 20.0


def _has_libvirt_reader() -> bool:
    import importlib.util

    return (importlib.util.find_spec("libvirt") is not None
            and importlib.util.find_spec("numaguard.readers.libvirt_api") is not None)


needs_libvirt_reader = pytest.mark.skipif(
    not _has_libvirt_reader(),
    reason="needs libvirt-python and numaguard/readers/libvirt_api.py (the libvirt branch)")


@pytest.fixture(scope="session")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 generated snapshots of varied sizes and seeds, one corrupt snapshot (its node0
    meminfo overwritten with bytes that are not text) and one with a truncated domain XML."""
    root = tmp_path_factory.mktemp("fleet")
    for i in range(HOSTS):
        synth_snapshot(str(root / f"hv{i:03d}"), nodes=(2, 4, 4, 8)[i % 4],
                       guests=20 + (i * 7) % 60, seed=1000 + i)
    synth_snapshot(str(root / "corrupt"), nodes=4, guests=10, seed=7)
    meminfo = root / "corrupt/host/sys/devices/system/node/node0/meminfo"
    meminfo.write_bytes(b"\x00\xffNode 0 MemTotal: lots\n")
    synth_snapshot(str(root / "partial"), nodes=4, guests=10, seed=8)
    broken = root / "partial/domains/guest0003.xml"
    broken.write_bytes(broken.read_bytes()[:200])
    return root


def snapshots(root: Path, n: int = HOSTS) -> list[str]:
    return [str(root / f"hv{i:03d}") for i in range(n)]


def single_host_document(snapshot: str) -> dict:
    """What ``numaguard audit SNAPSHOT --format json`` computes for this host alone."""
    from numaguard.core.rules import AuditOptions, audit_inventory
    from numaguard.readers.sources import PathSource, command_refs
    from numaguard.report.audit import audit_to_dict

    inventory = PathSource([snapshot]).read()
    return audit_to_dict(audit_inventory(inventory, AuditOptions(refs=command_refs(inventory))))


def run(targets, fmt="json", **kwargs) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = audit_fleet(targets, {}, fmt=fmt, out=out, err=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def unreachable_uri(tmp_path: Path) -> str:
    return f"qemu+unix:///system?socket={tmp_path / 'nobody-listens.sock'}"


# -- the whole fleet ----------------------------------------------------------------------------

def test_200_snapshots_a_corrupt_one_and_an_unreachable_host(fleet_dir, tmp_path):
    uri = unreachable_uri(tmp_path)
    # libvirt's test driver (2 cells, one guest) once the libvirt reader is there
    live = ["test:///default"] if _has_libvirt_reader() else []
    targets = [*snapshots(fleet_dir), str(fleet_dir / "corrupt"), str(fleet_dir / "partial"),
               uri, *live]
    junit = tmp_path / "fleet.xml"
    code, out, err = run(targets, junit_path=str(junit), deadline=120)
    doc = json.loads(out)
    assert list(doc)[:2] == ["schema_version", "numaguard_version"]
    hosts = {h["source"]: h for h in doc["hosts"]}
    assert [h["source"] for h in doc["hosts"]] == targets      # in the order given
    status = {s: [h["source"] for h in doc["hosts"] if h["status"] == s]
              for s in ("ok", "incomplete", "error", "timeout")}
    assert status == {"ok": snapshots(fleet_dir) + live,
                      "incomplete": [str(fleet_dir / "partial")],
                      "error": [str(fleet_dir / "corrupt"), uri], "timeout": []}
    assert code == 2   # a host failed: as for one host whose input could not be read
    for source in live:
        assert len(hosts[source]["audit"]["host"]["nodes"]) == 2

    corrupt = hosts[str(fleet_dir / "corrupt")]
    assert "node0/meminfo" in corrupt["error"] and corrupt["audit"] is None
    if _has_libvirt_reader():
        assert "nobody-listens.sock" in hosts[uri]["error"]
    partial = hosts[str(fleet_dir / "partial")]
    assert partial["audit"] is not None and len(partial["audit"]["guests"]) == 9
    assert [p.split(":")[0] for p in partial["problems"]] == [
        str(fleet_dir / "partial/domains/guest0003.xml")]

    # each host's document is the one the single-host audit makes
    for snap in (snapshots(fleet_dir)[0], snapshots(fleet_dir)[101]):
        assert hosts[snap]["audit"] == single_host_document(snap)
    summary = doc["fleet"]
    assert (summary["hosts"], summary["ok"], summary["incomplete"], summary["error"]) == (
        len(targets), HOSTS + len(live), 1, 2)
    assert summary["findings"]["critical"] == sum(
        h["audit"]["summary"]["critical"] for h in doc["hosts"] if h["audit"])
    assert summary["exit_code"] == 2

    lines = err.splitlines()
    assert any(line.startswith(f"numaguard audit: {fleet_dir / 'corrupt'}") for line in lines)
    assert lines[-1] == (f"numaguard audit: 3 of {len(targets)} hosts could not be audited in "
                         "full; the output covers the others (exit 2)")

    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuites"
    (testsuite,) = suite
    cases = testsuite.findall("testcase")
    assert [c.get("name") for c in cases] == targets
    assert int(testsuite.get("tests")) == len(cases) == len(targets)
    errors = {c.get("name"): c.find("error").get("type") for c in cases
              if c.find("error") is not None}
    assert errors == {str(fleet_dir / "corrupt"): "error", str(fleet_dir / "partial"):
                      "incomplete", uri: "error"}
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    critical = {h["source"] for h in doc["hosts"]
                if h["status"] == "ok" and h["audit"]["summary"]["critical"]}
    assert failed == critical and 0 < len(critical) < HOSTS   # some hosts are at risk, not all
    assert int(testsuite.get("failures")) == len(failed)
    assert int(testsuite.get("errors")) == 3


def test_text_summary_and_exit_codes(fleet_dir):
    hosts = snapshots(fleet_dir, 8)
    code, out, err = run(hosts, fmt="text", width=120, fail_on="never")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "Fleet audit: 8 hosts"
    head = lines[2]
    for column in ("Host", "Nodes", "Guests", "Critical", "Warning", "Worst finding", "Status"):
        assert column in head
    rows = [line for line in lines if line.startswith("│")]
    assert len(rows) == 8
    for snap, row in zip(hosts, rows, strict=False):
        assert os.path.basename(snap) in row and row.rstrip("│ ").endswith("ok")
    assert lines[-1].startswith("8 hosts: 8 ok; ")

    docs = {h: single_host_document(h) for h in hosts}
    worst = max(f["severity"] == "critical" for d in docs.values() for f in d["findings"])
    code, _, _ = run(hosts, fmt="text", fail_on="critical")
    assert code == (1 if worst else 0)
    code, _, _ = run(hosts, fmt="text", fail_on="info")
    assert code == 1   # every generated host has some finding
    code, out, _ = run([*hosts[:2], str(fleet_dir / "corrupt")], fmt="text", width=200,
                       fail_on="never")
    assert code == 2
    (row,) = [line for line in out.splitlines() if "corrupt" in line]
    assert "meminfo" in row and row.rstrip("│ ").endswith("error")


def test_a_host_given_twice_or_no_host_is_an_error(fleet_dir):
    with pytest.raises(NumaguardError, match="given twice"):
        run([snapshots(fleet_dir)[0]] * 2)
    with pytest.raises(NumaguardError, match="no hosts"):
        run([])
    with pytest.raises(ParseError, match="--deadline"):
        run(snapshots(fleet_dir, 1), deadline=0)


def test_exit_code_is_the_single_host_rule():
    def result(*reports: HostReport, fail_on: str = "critical") -> FleetResult:
        return FleetResult(reports, 1.0, 60.0, 2, fail_on)

    clean = HostReport("a", "ok", worst=None)
    warning = HostReport("b", "ok", worst=2)
    critical = HostReport("c", "ok", worst=3)
    assert result(clean, warning).exit_code() == 0
    assert result(clean, warning, fail_on="warning").exit_code() == 1
    assert result(clean, critical).exit_code() == 1
    assert result(clean, critical, fail_on="never").exit_code() == 0
    for failed in ("incomplete", "error", "timeout"):
        assert result(critical, HostReport("d", failed), fail_on="never").exit_code() == 2


def test_default_workers():
    cores = len(os.sched_getaffinity(0))
    assert default_workers(["a"] * 50) == cores
    assert default_workers(["a", "b"]) == min(2, cores)
    assert default_workers(["qemu+ssh://h/system"] * 50) == max(cores, URI_WORKERS)


# -- the deadline -------------------------------------------------------------------------------

class SilentDaemon:
    """A unix socket that accepts connections and never answers: libvirt's client waits for
    the daemon's reply for ever (it has no timeout of its own without an event loop)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(16)
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.path}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


FLEET_SCRIPT = ("import sys; from numaguard.fleet import audit_fleet; "
                "sys.exit(audit_fleet(sys.argv[3:], {}, fmt=sys.argv[1], "
                "deadline=float(sys.argv[2]), workers=2))")


def fleet_process(fmt: str, deadline: float, *targets: str) -> list[str]:
    return [sys.executable, "-c", FLEET_SCRIPT, fmt, str(deadline), *targets]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    # the numaguard this test imported, and tests.support
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(numaguard.__file__)),
                                         str(REPO)])
    env.update(extra)
    return env


@needs_libvirt_reader
def test_a_hung_host_costs_the_run_at_most_the_deadline(fleet_dir, tmp_path):
    daemon = SilentDaemon(tmp_path / "hung.sock")
    deadline = 3.0
    try:
        t0 = time.monotonic()
        done = subprocess.run(fleet_process("json", deadline, daemon.uri,
                                            *snapshots(fleet_dir, 4)),
                              check=False, capture_output=True, text=True, env=_env(),
                              timeout=deadline + 4 * SLACK)
        elapsed = time.monotonic() - t0
    finally:
        daemon.close()
    assert daemon.held, "libvirt never connected to the silent daemon: nothing hung"
    doc = json.loads(done.stdout)
    assert [h["status"] for h in doc["hosts"]] == ["timeout", "ok", "ok", "ok", "ok"]
    assert doc["hosts"][0]["error"] == "no answer within the deadline of 3 s"
    assert done.returncode == 2 and "Traceback" not in done.stderr
    # the whole process, interpreter exit included, ends: bounded by the deadline plus the
    # four audits and the start of the workers (generous slack on a shared machine)
    assert elapsed < deadline + SLACK


# -- the progress bar ---------------------------------------------------------------------------

def test_progress_bar_on_a_terminal_only(fleet_dir):
    hosts = snapshots(fleet_dir, 3)
    argv = fleet_process("json", 60, *hosts)
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=secondary,
                                env=_env(TERM="xterm", COLUMNS="100"))
        os.close(secondary)
        seen = b""
        while True:
            ready, _, _ = select.select([primary], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(primary, 65536)
            except OSError:   # EIO: the process closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(primary)
    assert proc.returncode == 1 or proc.returncode == 0
    assert b"auditing hosts" in seen and b"3/3" in seen and b"\x1b[" in seen
    assert json.loads(out)["fleet"]["hosts"] == 3      # stdout stays clean JSON

    piped = subprocess.run(argv, check=False, capture_output=True, env=_env(TERM="xterm"),
                           timeout=60)
    assert b"auditing hosts" not in piped.stderr and b"\x1b" not in piped.stderr
    in_ci = subprocess.run(argv, check=False, capture_output=True, env=_env(CI="true"), timeout=60)
    assert in_ci.stderr == b""


# -- --hosts FILE -------------------------------------------------------------------------------

def test_hosts_file(tmp_path):
    hosts = tmp_path / "fleet" / "hosts.txt"
    hosts.parent.mkdir()
    hosts.write_text("# the hypervisors of rack 3\n"
                     "\n"
                     "qemu+ssh://hv1.example.org/system\n"
                     "   qemu+ssh://root@hv2/system?keyfile=/k   # the old one\n"
                     "snapshots/hv3\n"
                     "/srv/snapshots/hv 4\n"
                     "\t\n")
    assert read_hosts_file(str(hosts)) == [
        "qemu+ssh://hv1.example.org/system", "qemu+ssh://root@hv2/system?keyfile=/k",
        str(tmp_path / "fleet/snapshots/hv3"), "/srv/snapshots/hv 4"]
    assert targets_of([str(hosts)], ["test:///default"], ["snap"])[-2:] == [
        "test:///default", "snap"]


@pytest.mark.parametrize(("text", "line", "message"), [
    ("qemu:///system\nqemu:///system\n", 2, "listed twice (first at line 1)"),
    ("a\n./a\n", 2, "listed twice"),
    ("# nothing\n\n", None, "no hosts listed"),
    ("ok\nbad\x1b[31m\n", 2, "control characters"),
    ("q emu://h/system\n", 1, "is not a libvirt URI"),
    ("://h/system\n", 1, "is not a libvirt URI"),
])
def test_a_bad_hosts_file_line_names_the_file_and_line(tmp_path, text, line, message):
    hosts = tmp_path / "hosts"
    hosts.write_text(text)
    with pytest.raises(ParseError) as exc:
        read_hosts_file(str(hosts))
    where = f"{hosts}:{line}: " if line else f"{hosts}: "
    assert str(exc.value).startswith(where) and message in str(exc.value)
    assert "\n" not in str(exc.value) and "\x1b" not in str(exc.value)


def test_a_hosts_file_that_cannot_be_read(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        read_hosts_file(str(tmp_path / "missing"))
    bad = tmp_path / "latin1"
    bad.write_bytes(b"caf\xe9\n")
    with pytest.raises(NumaguardError, match=str(bad)):
        read_hosts_file(str(bad))
