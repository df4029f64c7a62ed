"""``numaguard plan``: the article host (over-committed: one guest stays unplaced, with the
proof), a generated host where every guest is placed and the printed commands, run as printed,
give the planned host; --keep/--max-moves/--new; the greedy fallback; JSON free of the HiGHS
banner; bad input as one line, exit 2; --apply through libvirt's test driver."""

from __future__ import annotations

import builtins
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from numaguard.core.findings import Severity
from numaguard.core.rules import audit_inventory
from numaguard.readers.sources import read_paths
from numaguard.report.term import fits
from tests.cli.test_fix_cli import conn, define, needs_libvirt, persistent  # noqa: F401
from tests.hostile.test_writes import one_line, run
from tests.support.synth import synth_snapshot
from tests.support.virsh_test import TestDriver

ROOT = Path(__file__).resolve().parents[2]
ARTICLE = ROOT / "examples" / "article-host"
GUESTS = ROOT / "tests" / "fixtures" / "xml" / "guests"
HIGHS = pytest.importorskip("highspy", reason="numaguard[plan] (highspy) not installed")


def plan_json(capsys, *args) -> tuple[int, dict]:
    rc, out, err = run(capsys, "plan", *args, "--format", "json")
    assert err == "", err
    return rc, json.loads(out)


def placement(d: dict, guest: str) -> dict:
    (p,) = [p for p in d["placements"] if p["guest"] == guest]
    return p


# --- the article host ------------------------------------------------------------------------

def test_article_host_text_names_the_unplaced_guest_and_the_shortfall(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    rc, out, err = run(capsys, "plan", ARTICLE)
    assert rc == 1 and err == ""
    assert "Not placed: bigmem-preferred (proof)" in out
    # 59 GiB of ordinary guest memory for the 43 GiB the nodes can give now (node 2 runs an
    # application: 7 GiB free; node 3 has 8 GiB of hugepages): the whole host is short
    proof = out.split("(proof)\n", 1)[1].split("\n\n", 1)[0]
    assert proof.lstrip().startswith("the host: ") and "59.0 GiB" in proof
    assert "16.0 GiB short whatever the placement" in " ".join(proof.split())
    assert "optimal: every stage proven by HiGHS" in out
    # vm1 keeps its strict binding on node 0, which now backs it; web-interleave leaves node 0
    assert re.search(r"│ vm1 +│ 0 +│ 0-9 +│ strict 0 +│ - +│ -", out)
    assert re.search(r"│ web-interleave +│ 1 +│ 10-19,50-59 +│ preferred 1 +│ yes +│ cold", out)
    # the planned host is audited without the guest that must leave it
    assert "without bigmem-preferred, which the plan cannot place here" in " ".join(out.split())
    assert "no critical finding" in out and "no predicted OOM kill" in out
    assert all(fits(line, 80) for line in out.splitlines())


def test_article_host_json(capsys):
    rc, d = plan_json(capsys, ARTICLE)
    assert rc == 1
    assert d["schema_version"] == 1 and d["solver"] == "highs" and d["optimal"] is True
    assert d["gap"] == 0.0
    assert {"placements", "objective", "gap", "bounds", "audit", "proof", "changes"} <= set(d)
    assert set(d["placements"][0]) >= {"guest", "nodes", "cpuset", "mode", "nodeset",
                                       "memnodes", "moved", "restart"}
    assert [p["guest"] for p in d["placements"] if not p["placed"]] == ["bigmem-preferred"]
    assert d["objective"]["placed"] == 3 and d["objective"]["guests"] == 4
    assert d["shortfalls"][0]["shortfall_bytes"] > 15 * 2**30
    vm1 = placement(d, "vm1")
    # one node that can back it: the strict binding stays, within the node's capacity
    assert vm1["placed"] and vm1["nodes"] == vm1["nodeset"] == [0]
    assert vm1["mode"] == "strict" and not vm1["moved"] and vm1["restart"] == "none"
    # the planned host (without bigmem-preferred, which must leave it) audits clean and
    # simulates with no kill; the exit code is still 1: a guest is not placed
    assert d["audit"]["summary"]["critical"] == 0 and d["audit"]["kills"] == []
    # deterministic
    assert plan_json(capsys, ARTICLE)[1] == d


def test_json_is_pure_with_the_solver_banner_silenced(tmp_path):
    # a fresh process: HiGHS prints its banner to fd 1 when the first Highs is made
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    p = subprocess.run([sys.executable, "-m", "numaguard", "plan", str(ARTICLE), "--format",
                        "json"], capture_output=True, text=True, env=env, check=False)
    assert p.returncode == 1, p.stderr
    assert "HiGHS" not in p.stdout
    json.loads(p.stdout)
    # the control: without the redirection the banner does reach fd 1
    p = subprocess.run([sys.executable, "-c", "import highspy; highspy.Highs()"],
                       capture_output=True, text=True, env=env, check=False)
    assert "HiGHS" in p.stdout


# --- a feasible generated host: the printed commands make the planned host --------------------

@pytest.fixture
def synth(tmp_path) -> Path:
    # 2 nodes x 4 CPUs (libvirt's test driver pins CPUs 0-7 only), 5 guests, every one placeable
    where = tmp_path / "snap"
    synth_snapshot(str(where), nodes=2, guests=5, cpus_per_node=4, node_gib=64, seed=7)
    return where


def _commands(out: str) -> list[str]:
    return [line.strip()[2:] for line in out.splitlines() if line.strip().startswith("$ ")]


def test_every_guest_placed_and_the_printed_commands_give_the_planned_host(synth, capsys):
    rc, d = plan_json(capsys, synth)
    assert rc == 0
    assert all(p["placed"] for p in d["placements"])
    assert d["audit"]["summary"]["critical"] == 0 and d["audit"]["kills"] == []
    assert d["changes"]
    rc, out, err = run(capsys, "plan", synth)
    assert rc == 0 and err == ""
    assert "no critical finding" in out and "no predicted OOM kill" in out
    commands = _commands(out)
    fixes = [c for c in commands if c.startswith("numaguard fix ")]
    pins = [c for c in commands if c.startswith("virsh ")]
    assert fixes and pins and len(fixes) + len(pins) == len(commands)
    for line in fixes:                 # as printed (--write on the snapshot's own files)
        argv = shlex.split(line)
        assert argv[-1] == "--write"
        rc, _, err = run(capsys, *argv[1:])
        assert rc == 0, err
    # the pins, as printed, in libvirt's test driver holding the edited definitions
    domains = sorted((synth / "domains").glob("*.xml"))
    driver = TestDriver(synth.parent / "node.xml", [p.read_text() for p in domains])
    names = [re.search(r"<name>([^<]+)</name>", p.read_text()).group(1) for p in domains]
    session = driver.session([shlex.split(c)[1:] for c in pins]
                             + [["dumpxml", "--inactive", n] for n in names])
    assert session.rc == 0, session.stderr
    for path, xml in zip(domains, session.parts[len(pins):], strict=True):
        path.write_text(xml)
    before = read_paths([str(synth)])
    after = audit_inventory(before)
    assert not [f for f in after.findings if f.severity is Severity.CRITICAL]
    for p in d["placements"]:         # every guest has the planned policy and pins
        g = before.guest(p["guest"])
        assert g.policy.mode.value == p["mode"] and sorted(g.policy.nodeset) == p["nodeset"]
        assert sorted(set().union(*(g.vcpu_cpus(v) or set() for v in range(g.vcpus)))) \
            == p["cpuset"]
    # planned again, nothing moves
    rc, again = plan_json(capsys, synth)
    assert rc == 0 and again["objective"]["moved"] == 0 and again["changes"] == []


def test_keep_and_max_moves(synth, capsys):
    _, d = plan_json(capsys, synth)
    moved = [p["guest"] for p in d["placements"] if p["moved"]]
    assert moved
    _, kept = plan_json(capsys, synth, "--keep", moved[0])
    assert kept["kept"] == [moved[0]]
    assert moved[0] not in [p["guest"] for p in kept["placements"]]
    assert moved[0] not in [c["guest"] for c in kept["changes"]]
    _, none = plan_json(capsys, synth, "--max-moves", "0")
    assert none["objective"]["moved"] == 0 and none["changes"] == []
    _, one = plan_json(capsys, synth, "--max-moves", "1")
    assert one["objective"]["moved"] <= 1


def test_new_guest_is_placed_with_the_commands_for_its_file(synth, tmp_path, capsys):
    xml = (synth / "domains" / "guest0000.xml").read_text()
    xml = re.sub(r"<name>[^<]*</name>", "<name>newcomer</name>", xml, count=1)
    xml = re.sub(r"\s*<uuid>[^<]*</uuid>", "", xml, count=1)
    new = tmp_path / "newcomer.xml"
    new.write_text(xml)
    _, d = plan_json(capsys, synth, "--new", new)
    p = placement(d, "newcomer")
    assert p["new"] and p["placed"] and not p["moved"]
    (change,) = [c for c in d["changes"] if c["guest"] == "newcomer"]
    fix = shlex.split(change["commands"][0])
    assert fix[:3] == ["numaguard", "fix", str(new)] and fix[-1] == "--write"
    assert f"virsh define {new}" in change["commands"]
    rc, _, err = run(capsys, *fix[1:])
    assert rc == 0, err
    # a name already on the host is one line, exit 2
    rc, _, err = run(capsys, "plan", synth, "--new", synth / "domains" / "guest0000.xml")
    assert rc == 2 and "--new" in one_line(err, "plan")


def test_greedy_fallback_when_highspy_cannot_be_imported(synth, capsys, monkeypatch):
    real = builtins.__import__

    def no_highspy(name, *args, **kwargs):
        if name == "highspy":
            raise ImportError("No module named 'highspy'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_highspy)
    rc, out, err = run(capsys, "plan", synth)
    assert err == "" and rc in (0, 1)
    assert "greedy: no optimality claimed" in out
    assert "highspy is not installed" in out
    rc, d = plan_json(capsys, synth)
    assert d["solver"] == "greedy" and d["optimal"] is None and d["gap"] is None
    rc, _, err = run(capsys, "plan", synth, "--solver", "highs")
    assert rc == 2 and "highspy is not installed" in one_line(err, "plan")


@pytest.mark.parametrize(("args", "says"), [
    (["--max-moves", "-1"], "argument --max-moves"),
    (["--max-moves", "x"], "argument --max-moves"),
    (["--time-limit", "0"], "argument --time-limit"),
    (["--objective", "speed"], "argument --objective"),
    (["--keep", "nobody"], "--keep: no guest 'nobody'"),
    (["--apply"], "--apply changes the definitions libvirt keeps"),
    (["--backup-dir", "/tmp"], "--backup-dir goes with --apply"),
    (["--cpu-overcommit", "0"], "--cpu-overcommit"),
])
def test_bad_input_is_one_line_exit_2(capsys, args, says):
    rc, out, err = run(capsys, "plan", ARTICLE, *args)
    assert rc == 2 and out == ""
    assert says in one_line(err, "plan")


def test_bad_new_file_names_file_and_field(tmp_path, capsys):
    bad = tmp_path / "bad.xml"
    bad.write_text((GUESTS / "mode-strict-in.xml").read_text().replace(
        "<memory unit='KiB'>4194304</memory>", "<memory unit='KiB'>lots</memory>"))
    rc, out, err = run(capsys, "plan", ARTICLE, "--new", bad)
    assert rc == 2 and out == ""
    line = one_line(err, "plan")
    assert str(bad) in line and "memory" in line


def test_virsh_prints_only_the_commands(capsys):
    rc, out, err = run(capsys, "plan", ARTICLE, "--virsh")
    assert rc == 1 and err == ""
    lines = [x for x in out.splitlines() if not x.startswith("#")]
    assert lines and all(x.startswith("virsh ") for x in lines)
    assert "virsh numatune web-interleave --mode preferred --nodeset 1 --config" in lines


# --- --apply through libvirt's test driver ------------------------------------------------------

@pytest.fixture
def small(conn):  # noqa: F811
    xml = (GUESTS / "mode-interleave-in.xml").read_text()
    xml = re.sub(r"<name>[^<]*</name>", "<name>ngplan-apply</name>", xml, count=1)
    xml = re.sub(r"\s*<uuid>[^<]*</uuid>", "", xml, count=1)
    for tag in ("memory", "currentMemory"):     # 512 MiB: the test driver's nodes are small
        xml = re.sub(rf"<{tag}[^>]*>\d+</{tag}>", f"<{tag} unit='KiB'>524288</{tag}>", xml)
    dom = conn.defineXML(xml)
    yield dom
    dom.undefine()


def _apply_test(fn):
    for mark in needs_libvirt:
        fn = mark(fn)
    return fn


@_apply_test
def test_apply_defines_the_planned_numatune(conn, small, tmp_path, capsys):  # noqa: F811
    assert "mode='interleave'" in persistent(conn, "ngplan-apply")
    rc, d = plan_json(capsys, "-c", "test:///default")
    p = placement(d, "ngplan-apply")
    assert p["placed"] and p["moved"] and p["mode"] == "preferred"
    rc, out, err = run(capsys, "plan", "-c", "test:///default", "--apply", "--backup-dir",
                       tmp_path)
    # the test driver's pins cannot be made (its capabilities list 16 CPUs, virConnectGetCPUMap
    # 8, and testDomainPinVcpuFlags has no --config): said on stderr, one line per guest,
    # exit 2; the <numatune> is defined
    assert rc == 2
    assert [line for line in err.splitlines() if "ngplan-apply's pins not changed" in line]
    assert all(line.startswith("numaguard plan: ") for line in err.splitlines())
    assert "defined ngplan-apply's <numatune> on test:///default" in out
    nodeset = ",".join(map(str, p["nodeset"]))
    assert f"<memory mode='preferred' nodeset='{nodeset}'/>" in persistent(conn,
                                                                          "ngplan-apply")
    (backup, *_) = sorted(tmp_path.glob("ngplan-apply.numaguard-*.xml"))
    assert "mode='interleave'" in backup.read_text()
    # the pins are printed for virsh, aimed at the same URI
    assert "$ virsh -c test:///default vcpupin ngplan-apply 0 " in out


def test_apply_is_refused_for_files(capsys, tmp_path):
    copy = tmp_path / "host"
    shutil.copytree(ARTICLE, copy)
    before = {p.name: p.read_bytes() for p in (copy / "domains").iterdir()}
    rc, _, err = run(capsys, "plan", copy, "--apply")
    assert rc == 2 and "-c URI" in one_line(err, "plan")
    assert {p.name: p.read_bytes() for p in (copy / "domains").iterdir()} == before
