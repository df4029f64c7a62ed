"""The exporter with a real Prometheus, Alertmanager and node_exporter (Debian's packages).

Runs only when asked: ``NUMAGUARD_PROMETHEUS=1`` (``make test-prometheus``, which ``make test``
calls; it installs the packages when root and apt are there), and skips with the reason when
the binaries are missing.  Bounded (a deadline of 60 s per wait; ~10 s here), loopback only,
fresh storage in tmp_path, every process stopped by its PID.

The exporter serves examples/article-host, where the audit predicts that bigmem-preferred is
OOM-killed when vm1 grows (and when web-interleave grows); Prometheus scrapes it every second
with deploy/numaguard-rules.yml and sends to an Alertmanager whose receiver is a webhook in
this test: the NumaguardPredictedOOMKill alerts must arrive with their labels.  A second
exporter reads this machine's own sysfs (SOURCE ``/``), so its ``node`` labels join
node_exporter's ``node_memory_numa_MemFree`` one series per node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.exporter.promstack import (
    Processes,
    Webhook,
    free_port,
    get_json,
    unavailable,
    wait_http,
)

if os.environ.get("NUMAGUARD_PROMETHEUS", "") == "":
    pytest.skip("the real-Prometheus test runs with NUMAGUARD_PROMETHEUS=1 (make "
                "test-prometheus, part of make test)", allow_module_level=True)
_missing = unavailable()
if _missing:
    pytest.skip(_missing, allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "numaguard-rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
EXAMPLE = ROOT / "examples" / "article-host"
WAIT = 60.0   # seconds: the bound of every wait below


def _exporter(procs: Processes, name: str, source: str) -> int:
    """Start ``numaguard exporter SOURCE --listen 127.0.0.1:0``; the port it printed."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    err = procs.logs / f"{name}.log"
    with open(err, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "numaguard", "exporter", source,
                                 "--listen", "127.0.0.1:0"], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, env=env)
    procs.started[name] = proc
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        text = err.read_text()
        if "/metrics" in text:
            return int(text.split("http://127.0.0.1:")[1].split("/")[0])
        assert proc.poll() is None, text
        time.sleep(0.05)
    raise TimeoutError(f"{name} did not start: {err.read_text()}")


def _configs(tmp: Path, ports: dict[str, int], hook: int) -> tuple[Path, Path]:
    am = tmp / "alertmanager.yml"
    am.write_text(json.dumps({   # YAML is a superset of JSON
        "route": {"receiver": "hook", "group_by": ["alertname", "victim", "trigger"],
                  "group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "hook", "webhook_configs": [
            {"url": f"http://127.0.0.1:{hook}/", "send_resolved": False}]}],
    }))
    prom = tmp / "prometheus.yml"
    prom.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "alerting": {"alertmanagers": [
            {"static_configs": [{"targets": [f"127.0.0.1:{ports['alertmanager']}"]}]}]},
        "scrape_configs": [
            {"job_name": "numaguard",
             "static_configs": [{"targets": [f"127.0.0.1:{ports['exporter']}"]}]},
            {"job_name": "numaguard-local",
             "static_configs": [{"targets": [f"127.0.0.1:{ports['exporter-local']}"]}]},
            {"job_name": "node",
             "static_configs": [{"targets": [f"127.0.0.1:{ports['node']}"]}]},
        ],
    }))
    return prom, am


def _kill_alerts(hook: Webhook, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """The NumaguardPredictedOOMKill alerts the webhook got, by (victim, trigger), once every
    pair in *wanted* has arrived (or at the deadline)."""
    deadline = time.monotonic() + WAIT
    with hook.arrived:
        while True:
            got = {(a["labels"]["victim"], a["labels"]["trigger"]): a
                   for post in hook.posts for a in post["alerts"]          # type: ignore[attr-defined]
                   if a["labels"]["alertname"] == "NumaguardPredictedOOMKill"}
            left = deadline - time.monotonic()
            if wanted <= got.keys() or left <= 0:
                return got
            hook.arrived.wait(timeout=left)


def _live_kills() -> set[tuple[str, str]]:
    """(victim, trigger) of the live what-if on the example host's captured live files: the
    kills the exporter reports (core/whatif.py, computed here from the same files)."""
    from numaguard.core.whatif import predict_live
    from numaguard.readers.live import read_live
    from numaguard.readers.sources import read_paths

    inventory = read_paths([str(EXAMPLE)])
    live = read_live(str(EXAMPLE / "host"))
    kills = {(k.victim, k.trigger) for k in
             predict_live(inventory.host, inventory.guests, live).kills}
    assert ("bigmem-preferred", "vm1") in kills        # the example's story (docs/exporter.md)
    return kills


def _query(prom: int, expr: str) -> list[dict]:
    answer = get_json(f"http://127.0.0.1:{prom}/api/v1/query", query=expr)
    assert answer["status"] == "success", (expr, answer)
    return answer["data"]["result"]  # type: ignore[index, no-any-return]


def test_predicted_kill_reaches_the_webhook(tmp_path: Path) -> None:
    procs = Processes(tmp_path)
    hook = Webhook()
    try:
        started = time.monotonic()
        ports = {"exporter": _exporter(procs, "exporter", str(EXAMPLE)),
                 "exporter-local": _exporter(procs, "exporter-local", "/"),
                 "alertmanager": free_port(), "node": free_port(), "prometheus": free_port()}
        prom_yml, am_yml = _configs(tmp_path, ports, hook.port)
        procs.start("node", ["prometheus-node-exporter", "--collector.disable-defaults",
                             "--collector.meminfo_numa",
                             f"--web.listen-address=127.0.0.1:{ports['node']}"])
        procs.start("alertmanager", [
            "prometheus-alertmanager", f"--config.file={am_yml}",
            f"--storage.path={tmp_path / 'am'}", "--cluster.listen-address=",
            f"--web.listen-address=127.0.0.1:{ports['alertmanager']}"])
        procs.start("prometheus", [
            "prometheus", f"--config.file={prom_yml}",
            f"--storage.tsdb.path={tmp_path / 'prom'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}"])
        deadline = time.monotonic() + WAIT
        for name in ("node", "alertmanager", "prometheus"):
            path = "/metrics" if name == "node" else "/-/ready"
            wait_http(f"http://127.0.0.1:{ports[name]}{path}", deadline)

        # a real scrape passes promtool's linter
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['exporter']}/metrics",
                                    timeout=5) as r:
            page = r.read()
        lint = subprocess.run(["promtool", "check", "metrics"], input=page,
                              capture_output=True, timeout=30)
        assert lint.returncode == 0 and not lint.stdout.strip(), lint

        wanted = _live_kills()
        got = _kill_alerts(hook, wanted)
        arrived = time.monotonic() - started
        assert wanted <= got.keys(), (got, procs.log("prometheus")[-2000:])
        for (victim, trigger), alert in got.items():
            assert alert["status"] == "firing"
            assert alert["labels"] == {
                "alertname": "NumaguardPredictedOOMKill", "severity": "critical",
                "job": "numaguard", "instance": f"127.0.0.1:{ports['exporter']}",
                "victim": victim, "trigger": trigger}
            assert alert["annotations"]["summary"] == (
                f"{victim} on 127.0.0.1:{ports['exporter']} will be OOM-killed when "
                f"{trigger} grows")
        print(f"predicted-kill alerts at the webhook {arrived:.1f} s after the exporters "
              "started")

        # node labels join node_exporter's NUMA series: one result per node of this machine
        nodes = len(list(Path("/sys/devices/system/node").glob("node[0-9]*")))
        joined: list[dict] = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and len(joined) != nodes:
            joined = _query(ports["prometheus"],
                            'numaguard_node_memory_free_bytes{job="numaguard-local"} '
                            '- on(node) node_memory_numa_MemFree')
            time.sleep(0.5)
        assert sorted(s["metric"]["node"] for s in joined) == [str(n) for n in range(nodes)]

        # every dashboard query is valid PromQL on this Prometheus
        for expr in _dashboard_exprs():
            _query(ports["prometheus"], expr)
    finally:
        codes = procs.stop_all()
        hook.close()
    assert codes["exporter"] == 0 and codes["exporter-local"] == 0, codes


def _dashboard_exprs() -> list[str]:
    from tests.exporter.dashboard import panel_exprs

    return panel_exprs(json.loads(DASHBOARD.read_text()))
