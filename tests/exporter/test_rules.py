"""deploy/numaguard-rules.yml: `promtool check rules` and the unit tests of every alert
(`promtool test rules deploy/tests.yml`), and every metric the rules read is served."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.exporter.test_collector import scrape_article_host

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not "
                                    "installed (Debian: apt-get install prometheus)")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60,
                          cwd=DEPLOY)


def _alerts() -> list[str]:
    return re.findall(r"^ +- alert: (\w+)$", (DEPLOY / "numaguard-rules.yml").read_text(),
                      flags=re.M)


@needs_promtool
def test_check_rules() -> None:
    done = _promtool("check", "rules", "numaguard-rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in done.stdout


@needs_promtool
def test_unit_tests_pass_and_cover_every_alert() -> None:
    done = _promtool("test", "rules", "tests.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", (DEPLOY / "tests.yml").read_text()))
    assert tested == set(_alerts())


def test_rules_read_served_metrics() -> None:
    served = set(scrape_article_host(live=True))
    named = set(re.findall(r"numaguard_\w+", (DEPLOY / "numaguard-rules.yml").read_text()))
    assert named and named <= served, named - served


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing wrong with the unit (its ExecStart pointed at an
    executable that exists here: the unit names /usr/bin/numaguard)."""
    import sys

    unit = (DEPLOY / "numaguard-exporter.service").read_text()
    assert "ExecStart=/usr/bin/numaguard exporter " in unit
    for line in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "ReadOnlyPaths=/sys /proc", "BindReadOnlyPaths=/run/libvirt"):
        assert line in unit.splitlines()
    copy = tmp_path / "numaguard-exporter.service"
    copy.write_text(unit.replace("/usr/bin/numaguard", sys.executable))
    done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
