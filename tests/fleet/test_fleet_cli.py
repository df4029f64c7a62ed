"""``numaguard audit`` as a fleet run: when the command line names many hosts, how the options
reach audit_fleet, and what it refuses (issue 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from numaguard import cli
from tests.fleet.test_fleet import fleet_dir, snapshots, unreachable_uri  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
ARTICLE = ROOT / "examples" / "article-host"


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_hosts_file_with_uris_a_corrupt_snapshot_and_an_unreachable_host(fleet_dir, tmp_path,  # noqa: F811
                                                                          capsys):
    pytest.importorskip("libvirt")
    hosts = tmp_path / "hosts"
    hosts.write_text("\n".join([*snapshots(fleet_dir, 20), "# the test driver", "test:///default",
                                str(fleet_dir / "corrupt"), unreachable_uri(tmp_path)]) + "\n")
    junit = tmp_path / "fleet.xml"
    code, out, err = run(capsys, "audit", "--hosts", hosts, "--format", "json", "--junit", junit,
                         "--workers", "2", "--deadline", "30")
    doc = json.loads(out)
    status = {h["source"]: h["status"] for h in doc["hosts"]}
    assert code == 2 and doc["fleet"]["hosts"] == 23
    assert status[str(fleet_dir / "corrupt")] == "error"
    assert status[unreachable_uri(tmp_path)] == "error" and status["test:///default"] == "ok"
    assert sum(s == "ok" for s in status.values()) == 21
    assert junit.read_text().startswith("<?xml")
    assert "corrupt" in err and "nobody-listens.sock" in err


def test_several_snapshots_are_a_fleet_but_a_topology_and_guests_are_one_host(fleet_dir,  # noqa: F811
                                                                              capsys):
    two = snapshots(fleet_dir, 2)
    code, out, _ = run(capsys, "audit", *two, "--format", "json", "--fail-on", "never")
    assert code == 0 and [h["source"] for h in json.loads(out)["hosts"]] == two
    # a topology plus guests from a folder is still one host, as before
    code, out, _ = run(capsys, "audit", ARTICLE / "host", ARTICLE / "domains", "--format",
                       "json", "--fail-on", "never")
    assert code == 0 and "hosts" not in json.loads(out) and len(json.loads(out)["guests"]) == 4


@pytest.mark.parametrize(("extra", "message"), [
    (["--nagios"], "--nagios audits one host"),
    (["--format", "markdown"], "--format markdown audits one host"),
    (["--summary"], "--summary audits one host"),
    (["--deadline", "0"], "invalid deadline '0'"),
    (["--workers", "0"], "invalid count '0'"),
])
def test_fleet_refusals(fleet_dir, capsys, extra, message):  # noqa: F811
    code, out, err = run(capsys, "audit", *snapshots(fleet_dir, 2), *extra)
    if extra == ["--nagios"]:   # a plugin's every error is the state UNKNOWN on stdout
        assert code == 3 and message in out and out.count("\n") == 1
        return
    assert (code, out) == (2, "") and message in err and err.count("\n") == 1


def test_a_junit_symlink_is_refused_before_any_host_with_a_hint_that_works(fleet_dir,  # noqa: F811
                                                                            tmp_path, capsys):
    """`audit` has no --follow-symlinks: the refusal must not suggest it, and comes before the
    hosts are audited (nothing written, the link and its target untouched)."""
    target = tmp_path / "real.xml"
    target.write_text("keep")
    link = tmp_path / "fleet.xml"
    link.symlink_to(target)
    code, out, err = run(capsys, "audit", *snapshots(fleet_dir, 2), "--junit", link)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "is a symbolic link; nothing written" in err and "--follow-symlinks" not in err
    assert target.read_text() == "keep" and link.is_symlink()


def test_junit_and_workers_need_a_fleet(capsys):
    code, _, err = run(capsys, "audit", ARTICLE, "--junit", "x.xml")
    assert code == 2 and "--junit and --workers go with a fleet run" in err


def test_the_progress_bar_through_the_command_on_a_terminal(fleet_dir, tmp_path):  # noqa: F811
    """`script` gives the command a pty as its stderr: the bar is drawn there."""
    argv = [sys.executable, "-m", "numaguard", "audit", *snapshots(fleet_dir, 30),
            "--format", "json", "--fail-on", "never"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TERM": "xterm", "COLUMNS": "100"}
    env.pop("CI", None)
    done = subprocess.run(["script", "-qec", " ".join(argv), "/dev/null"], env=env,
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert b"auditing hosts" in done.stdout            # the bar, drawn on the terminal


def test_the_spliced_json_is_the_documents_own_bytes(fleet_dir, tmp_path):  # noqa: F811
    """Each worker encodes its host's audit; the parent splices the texts. The result is the
    bytes ``lines_json`` writes for the whole document, hosts without an audit included."""
    from numaguard.fleet import FleetResult, run_pool
    from numaguard.report.audit import lines_json
    from numaguard.report.fleet import fleet_json, fleet_to_dict

    targets = [*snapshots(fleet_dir, 3), str(fleet_dir / "corrupt"), str(fleet_dir / "partial")]
    reports = run_pool(targets, {}, document=True, workers=2, deadline=60)
    result = FleetResult(tuple(reports), 1.0, 60.0, 2, "critical")
    assert [r.document is None for r in reports] == [False, False, False, True, False]
    assert fleet_json(result) == lines_json(fleet_to_dict(result))
