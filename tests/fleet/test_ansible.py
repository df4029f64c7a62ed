"""docs/ansible/fleet-audit.yml run against this machine (`ansible-playbook -i localhost, -c
local`): each host's `numaguard audit --format json` document and a summary are gathered."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import numaguard
from tests.support.synth import synth_snapshot

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "docs" / "ansible" / "fleet-audit.yml"
ANSIBLE = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)) or \
    shutil.which("ansible-playbook")

pytestmark = pytest.mark.skipif(
    ANSIBLE is None, reason="ansible-playbook not installed: pip install ansible-core "
    "(numaguard's test extra has it)")


def test_the_playbook_gathers_each_hosts_audit_on_the_controller(tmp_path):
    snapshot = tmp_path / "hv"
    synth_snapshot(str(snapshot), nodes=4, guests=30, seed=5)
    results = tmp_path / "results"
    command = [sys.executable, "-m", "numaguard"]
    variables = {"numaguard_hosts": "all", "numaguard_command": command,
                 "numaguard_args": [str(snapshot)], "numaguard_results": str(results),
                 "ansible_python_interpreter": sys.executable}
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = {**os.environ, "LC_ALL": "C.UTF-8", "ANSIBLE_HOME": str(tmp_path / "ansible"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "PYTHONPATH": os.path.dirname(os.path.dirname(numaguard.__file__))}
    done = subprocess.run([ANSIBLE, "-i", "localhost,", "-c", "local", str(PLAYBOOK),
                           "-e", f"@{tmp_path / 'vars.json'}"], check=False,
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed=0" in done.stdout

    direct = subprocess.run([*command, "audit", "--format", "json", str(snapshot)],
                            check=False, capture_output=True, text=True, env=env)
    assert direct.returncode in (0, 1)
    assert (results / "localhost.json").read_text() == direct.stdout
    (row,) = json.loads((results / "fleet.json").read_text())
    assert row["host"] == "localhost" and row["exit_code"] == direct.returncode
    assert row["summary"] == json.loads(direct.stdout)["summary"]
