"""``numaguard audit --hosts FILE --file-sd PATH`` with a real Prometheus (Debian's package):
Prometheus discovers the exporters from the file the audit wrote, scrapes them, and follows the
file when a later audit rewrites it (docs/fleet.md, "Prometheus service discovery").

Runs only when asked, as test_prometheus.py: ``NUMAGUARD_PROMETHEUS=1`` (``make
test-prometheus``); skips with the reason when the binaries are missing.  Loopback only, fresh
storage in tmp_path, every process stopped by its PID (promstack.Processes); each wait is bounded
by :data:`WAIT` (~12 s in all here: Prometheus applies discovered targets on its scrape
manager's 5 s tick).

Two exporters serve examples/article-host on the same port of two loopback addresses
(127.0.0.1 and 127.0.0.2: Linux routes all of 127.0.0.0/8 to ``lo``), so one
``--exporter-port`` fits both.  The hosts file names them by libvirt URIs whose host is that
address and whose libvirtd port nobody listens on: the audit of each fails (exit 2) and the file
is still written — the case the docs promise.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.exporter.promstack import Processes, free_port, get_json, unavailable, wait_http

_why = unavailable() if os.environ.get("NUMAGUARD_PROMETHEUS") else (
    "the real-Prometheus tests run with NUMAGUARD_PROMETHEUS=1 (make test-prometheus)")
if _why:
    pytest.skip(_why, allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "article-host"
WAIT = 30.0   # seconds: the bound of every wait below
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"))


def _exporter(procs: Processes, name: str, listen: str) -> int:
    """Start ``numaguard exporter EXAMPLE --listen ADDRESS:PORT``; the port it serves on."""
    log = procs.logs / f"{name}.log"
    with open(log, "wb") as out:
        procs.started[name] = subprocess.Popen(
            [sys.executable, "-m", "numaguard", "exporter", str(EXAMPLE), "--listen", listen],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=ENV)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        m = re.search(r"serving http://[0-9.]+:(\d+)/metrics", log.read_text())
        if m:
            return int(m.group(1))
        assert procs.started[name].poll() is None, log.read_text()
        time.sleep(0.05)
    raise TimeoutError(f"{name} did not start: {log.read_text()}")


def _audit(tmp: Path, sd: Path, port: int, *uris: str) -> subprocess.CompletedProcess[str]:
    hosts = tmp / "hosts"
    hosts.write_text("".join(f"{u}\n" for u in uris))
    return subprocess.run([sys.executable, "-m", "numaguard", "audit", "--hosts", str(hosts),
                           "--file-sd", str(sd), "--exporter-port", str(port),
                           "--deadline", "20"],
                          capture_output=True, text=True, timeout=60, env=ENV)


def _targets_up(prom: int, wanted: set[str]) -> dict[str, dict]:
    """Prometheus's active targets of job numaguard by instance, once every instance in
    *wanted* is there and up (or, at the deadline, what there is)."""
    deadline = time.monotonic() + WAIT
    while True:
        answer = get_json(f"http://127.0.0.1:{prom}/api/v1/targets", state="active")
        got = {t["labels"]["instance"]: t for t in answer["data"]["activeTargets"]  # type: ignore[index]
               if t["labels"]["job"] == "numaguard"}
        if (got.keys() == wanted and all(t["health"] == "up" for t in got.values())) or \
                time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_prometheus_discovers_the_exporters_from_the_file_the_audit_wrote(tmp_path: Path) -> None:
    procs = Processes(tmp_path)
    try:
        started = time.monotonic()
        port = _exporter(procs, "exporter-1", "127.0.0.1:0")
        _exporter(procs, "exporter-2", f"127.0.0.2:{port}")
        one, two = "qemu+tcp://127.0.0.1:1/system", "qemu+tcp://127.0.0.2:1/system"
        sd = tmp_path / "sd" / "numaguard.json"
        sd.parent.mkdir()
        audit = _audit(tmp_path, sd, port, one)
        assert audit.returncode == 2 and "Connection refused" in audit.stderr, audit  # unreachable
        assert json.loads(sd.read_text()) == [
            {"targets": [f"127.0.0.1:{port}"], "labels": {"numaguard_uri": one}}]

        prom = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps({   # YAML is a superset of JSON
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": "numaguard",
                                "file_sd_configs": [{"files": [str(sd)]}]}]}))
        procs.start("prometheus", [
            "prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'prom'}",
            f"--web.listen-address=127.0.0.1:{prom}"])
        wait_http(f"http://127.0.0.1:{prom}/-/ready", time.monotonic() + WAIT)

        first = f"127.0.0.1:{port}"
        got = _targets_up(prom, {first})
        assert got.keys() == {first}, (got, procs.log("prometheus")[-2000:])
        target = got[first]
        assert target["health"] == "up", target
        assert target["labels"] == {"instance": first, "job": "numaguard",
                                    "numaguard_uri": one}
        assert target["discoveredLabels"]["__meta_filepath"] == str(sd)
        assert target["scrapeUrl"] == f"http://{first}/metrics"
        discovered = time.monotonic() - started

        # a later audit rewrites the file (by rename): Prometheus follows it, no reload
        audit = _audit(tmp_path, sd, port, one, two)
        assert audit.returncode == 2, audit
        second = f"127.0.0.2:{port}"
        got = _targets_up(prom, {first, second})
        assert got.keys() == {first, second}, (got, procs.log("prometheus")[-2000:])
        assert all(t["health"] == "up" for t in got.values()), got
        assert got[second]["labels"]["numaguard_uri"] == two
        # every scraped series carries the label (both targets are up: both were scraped)
        series = get_json(f"http://127.0.0.1:{prom}/api/v1/query",
                          query='numaguard_scrape_success{job="numaguard"}')
        assert sorted(s["metric"]["numaguard_uri"]                      # type: ignore[index]
                      for s in series["data"]["result"]) == [one, two]  # type: ignore[index]
        print(f"target up {discovered:.1f} s after the exporters started; the rewritten file's "
              f"second target up {time.monotonic() - started:.1f} s after")
    finally:
        codes = procs.stop_all()
    assert codes["exporter-1"] == 0 and codes["exporter-2"] == 0, codes
