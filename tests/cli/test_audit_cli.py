"""`numaguard audit` / `explain` / `rules` as a user meets them: the summary, the JSON contract,
exit codes for every --fail-on, --rule, bad option values, and SOURCE combinations.

These tests hold whatever rules are registered: exact findings come from three test rules
(NG991-NG993, installed with monkeypatch and selected with --rule); findings of the real rules
are only checked to render in every format.
"""

import json
import os
import pathlib
import re
import shlex
import shutil

import pytest

from numaguard import cli
from numaguard.core import rules as engine
from numaguard.core.findings import Finding, Fix, Severity
from numaguard.core.rules import Rule, all_rules
from numaguard.readers import hostfacts, sources
from numaguard.report import audit as report
from numaguard.report import rules as rules_doc
from tests.support.synth import SynthNode, domain_xml, write_sysfs

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
ARTICLE = ROOT / "examples" / "article-host"
GiB = 1024**3
KiB_GiB = 1024 * 1024
COUNT_LINE = re.compile(r"^(\d+) critical, (\d+) warning, (\d+) info$")
BAR = re.compile(r"\[[█░]{10}\]")


def run(capsys, *args):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def run_json(capsys, *args):
    rc, out, err = run(capsys, "audit", *args, "--format", "json")
    assert err == ""
    return rc, json.loads(out)


# --- test rules with known findings -----------------------------------------------------------

def _crit(ctx):
    """Test rule: a critical finding for every guest.

    Second paragraph of the documentation."""
    for g in ctx.guests:
        yield Finding("NG991", Severity.CRITICAL, f"{g.name} is in danger | *really*",
                      guests=(g.name,), nodes=(1, 0),
                      evidence={"memory_bytes": g.memory, "nodeset": frozenset({2, 0, 1}),
                                "order": (2, 0, 1), "ratio": 1.5, "why": "two words",
                                "per_node_bytes": {0: GiB, frozenset({0, 1}): 2 * GiB}},
                      fix=Fix(guest=g.name, description="set <memory mode='preferred'/>",
                              mode="preferred", nodeset=frozenset({1, 0}),
                              commands=(f"numaguard fix {g.name} --mode preferred --nodeset 0-1",
                                        f"virsh numatune {g.name} --mode preferred --config")))


def _warn(ctx):
    """Test rule: one warning about the whole host, no fix."""
    yield Finding("NG992", Severity.WARNING, "the host as a whole", guests=(), nodes=(),
                  evidence={})


def _info(ctx):
    """Test rule: an info finding naming every guest."""
    yield Finding("NG993", Severity.INFO, "all guests", guests=tuple(g.name for g in ctx.guests),
                  nodes=(0,), evidence={"guests": len(ctx.guests)})


def _none(ctx):
    """Test rule: never finds anything."""
    return iter(())


def _follower(ctx):
    """Test rule: as severe as NG991's findings (it runs after NG991 and reads them)."""
    worst = max((f.severity for f in ctx.findings if f.rule == "NG991"), default=Severity.INFO)
    yield Finding("NG995", worst, "follows NG991")


@pytest.fixture
def test_rules(monkeypatch):
    all_rules()  # register the real rules first
    for rule_id, name, fn in (("NG991", "test-critical", _crit), ("NG992", "test-warning", _warn),
                              ("NG993", "test-info", _info), ("NG994", "test-silent", _none)):
        monkeypatch.setitem(engine.RULES, rule_id, Rule(rule_id, name, fn))
    monkeypatch.setitem(engine.RULES, "NG995",
                        Rule("NG995", "test-follower", _follower, after=("NG991",)))


# --- text ---------------------------------------------------------------------------------------

def test_text_starts_with_the_verdict(capsys):
    """Issue 10: the first line names the guest at fault and the guest that dies; then the
    change, the verdict's count line, the host, the node table."""
    rc, out, err = run(capsys, "audit", ARTICLE)
    assert err == ""
    lines = out.splitlines()
    # 80 columns (not a terminal): the verdict line wraps, and its first line names both
    assert lines[0] == ("vm1 — strict (implicit) on node 0 — bigmem-preferred will be "
                        "OOM-killed when vm1")
    assert lines[1] == "    grows (2 of 6 growth orders); 1 change clears 5 findings"
    assert lines[2] == (f"    $ numaguard fix {ARTICLE}/domains/vm1.xml --mode preferred "
                        "--nodeset 0")
    verdict = next(i for i, line in enumerate(lines) if line.startswith("Verdict: "))
    assert lines[verdict].startswith("Verdict: 1 guest at risk (bigmem-preferred); ")
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("Host: ")):]
    assert lines[0].startswith("Host: 4 NUMA nodes, 80 CPUs, ")
    host = " ".join(x.strip() for x in lines[:3])
    assert "swap 2.0 GiB free of 2.0 GiB" in host and "numa_balancing on" in host
    audit_line = next(x for x in lines if x.startswith("Audit: "))
    assert audit_line.startswith("Audit: 4 guests; host reserve max(1 GiB, 5% of MemTotal)")
    head = "\n".join(lines[:30])
    for column in ("Node", "Capacity", "Bound (strict)", "Headroom", "Status"):
        assert column in head
    assert len(BAR.findall(head)) == 4   # at 80 columns the table stacks in two parts
    assert "\x1b[" not in out  # not a tty: no colour codes
    m = COUNT_LINE.match(lines[-1])
    assert m, lines[-1]
    _, data = run_json(capsys, ARTICLE)
    assert [int(x) for x in m.groups()] == [data["summary"][s]
                                           for s in ("critical", "warning", "info")]
    assert rc == (1 if data["summary"]["critical"] else 0)


def test_text_shows_node_numbers_of_the_article_host(capsys):
    _, out, _ = run(capsys, "audit", ARTICLE, "--fail-on", "never")
    node3 = next(line for line in out.splitlines() if re.match(r"│\s+3 │", line))
    # node 3: 15.7 GiB MemTotal, 8 GiB of hugepages, 1 GiB reserve -> 6.7 GiB capacity
    assert "15.7 GiB" in node3 and "8.0 GiB" in node3 and "6.7 GiB" in node3


def test_text_groups_findings_by_severity(capsys, test_rules, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # one line per finding part
    rc, out, _ = run(capsys, "audit", ARTICLE, "--rule", "NG993,NG991", "--rule", "NG992")
    assert rc == 1
    crit, warn, info = (out.index(f"\n{s} (") for s in ("CRITICAL", "WARNING", "INFO"))
    assert crit < warn < info
    assert out.index("NG991 test-critical") < warn < out.index("NG992 test-warning") < info
    assert "NG991 test-critical  guests: vm1  nodes: 1,0" in out
    assert "evidence: memory=12.0 GiB  nodeset=0-2  order=2,0,1  ratio=1.5  " \
           'why="two words"  per_node={0: 1.0 GiB, 0-1: 2.0 GiB}' in out
    assert "  fix: set <memory mode='preferred'/>" in out
    assert "    $ numaguard fix vm1 --mode preferred --nodeset 0-1" in out
    assert "    $ virsh numatune vm1 --mode preferred --config" in out
    assert out.rstrip().endswith("4 critical, 1 warning, 1 info")


def test_text_without_findings(capsys, test_rules):
    rc, out, _ = run(capsys, "audit", ARTICLE, "--rule", "NG994")
    assert rc == 0
    assert "No findings." in out and out.endswith("0 critical, 0 warning, 0 info\n")


def test_every_real_finding_renders_in_every_format(capsys):
    _, data = run_json(capsys, ARTICLE)
    _, text, _ = run(capsys, "audit", ARTICLE)
    _, md, _ = run(capsys, "audit", ARTICLE, "--format", "markdown")
    for f in data["findings"]:
        assert f"{f['rule']} {f['name']}" in text
        assert f"### {f['rule']} {f['name']}" in md
        for g in f["guests"][:report.TEXT_GUESTS]:
            assert g in text and g in md
        if f["fix"]:
            for c in f["fix"]["commands"]:
                assert f"$ {c}" in text and f"  {c}" in md


# --- JSON contract --------------------------------------------------------------------------

def test_json_contract(capsys):
    rc, data = run_json(capsys, ARTICLE)
    assert rc in (0, 1)
    assert set(data) >= {"host", "nodes", "findings", "summary", "options"}
    assert set(data["host"]) >= {"nodes", "distances", "swap_total_bytes", "numa_balancing"}
    assert sorted(data["guests"]) == ["bigmem-preferred", "db-hugepages", "vm1",
                                      "web-interleave"]
    assert [n["id"] for n in data["nodes"]] == [0, 1, 2, 3]
    for n in data["nodes"]:
        for key in ("capacity_bytes", "pledged_strict_bytes", "headroom_bytes",
                    "mem_total_bytes", "mem_free_bytes", "hugepages_reserved_bytes",
                    "host_reserve_bytes"):
            assert type(n[key]) is int, key
        assert n["capacity_bytes"] == max(0, n["mem_total_bytes"] - n["hugepages_reserved_bytes"]
                                          - n["host_reserve_bytes"])
    assert data["nodes"][3]["hugepages_reserved_bytes"] == 8 * GiB
    for f in data["findings"]:
        assert set(f) >= {"rule", "name", "severity", "guests", "nodes", "message", "evidence",
                          "fix"}
        assert re.fullmatch(r"NG\d{3}", f["rule"])
        assert f["severity"] in {"critical", "warning", "info"}
        assert all(type(g) is str for g in f["guests"])
        assert all(type(n) is int for n in f["nodes"])
        assert type(f["message"]) is str and f["message"]
        assert type(f["evidence"]) is dict
        if f["fix"] is not None:
            assert set(f["fix"]) >= {"guest", "mode", "nodeset", "cell", "description",
                                     "command", "commands"}
            assert f["fix"]["command"] == (f["fix"]["commands"] or [None])[0]
    assert data["summary"] == {s: sum(f["severity"] == s for f in data["findings"])
                               for s in ("critical", "warning", "info")}
    assert data["options"] == {"host_reserve": "max(1 GiB, 5% of MemTotal)",
                               "min_headroom_bytes": 4 * GiB, "cpu_overcommit_ratio": 1.0,
                               "kernel_release": "6.1.0-28-amd64", "numad_installed": None,
                               "random_orders": 4}
    # issue 10: versioned, grouped, the verdict, the orders played
    assert list(data)[:2] == ["schema_version", "numaguard_version"]
    assert data["schema_version"] == 1
    for g in data["groups"]:
        assert g["findings"] and all(0 <= i < len(data["findings"]) for i in g["findings"])
        assert g["cleared"] is None or set(g["cleared"]) <= set(g["findings"])
    assert sum(len(g["findings"]) for g in data["groups"]) == len(data["findings"])
    assert data["verdict"][0]["victim"] == "bigmem-preferred"
    assert data["verdict"][0]["guest_at_fault"] == "vm1"
    assert [o["name"] for o in data["orders"]][:2] == ["bound-last", "largest-first"]


def test_json_findings_of_test_rules(capsys, test_rules):
    rc, data = run_json(capsys, ARTICLE, "--rule", "NG991", "--rule", "NG992")
    assert rc == 1
    vm1 = next(f for f in data["findings"] if f["rule"] == "NG991" and f["guests"] == ["vm1"])
    assert vm1 == {
        "rule": "NG991", "name": "test-critical", "severity": "critical", "guests": ["vm1"],
        "nodes": [1, 0], "message": "vm1 is in danger | *really*",
        "evidence": {"memory_bytes": 12 * GiB, "nodeset": [0, 1, 2], "order": [2, 0, 1],
                     "ratio": 1.5, "why": "two words",
                     "per_node_bytes": {"0": GiB, "0-1": 2 * GiB}},
        "fix": {"guest": "vm1", "mode": "preferred", "nodeset": [0, 1], "cell": None,
                "memory_bytes": None,
                "description": "set <memory mode='preferred'/>",
                "command": "numaguard fix vm1 --mode preferred --nodeset 0-1",
                "commands": ["numaguard fix vm1 --mode preferred --nodeset 0-1",
                             "virsh numatune vm1 --mode preferred --config"]},
    }
    host = next(f for f in data["findings"] if f["rule"] == "NG992")
    assert host["fix"] is None and host["guests"] == [] and host["nodes"] == []
    assert data["summary"] == {"critical": 4, "warning": 1, "info": 0}
    # worst first
    sev = [f["severity"] for f in data["findings"]]
    assert sev == sorted(sev, key=["critical", "warning", "info"].index)


def test_json_options_follow_the_command_line(capsys):
    _, data = run_json(capsys, ARTICLE, "--host-reserve", "2GiB", "--min-headroom", "1.5GiB",
                       "--cpu-overcommit", "2.5", "--fail-on", "never")
    assert data["options"]["host_reserve"] == "2.0 GiB"
    assert data["options"]["min_headroom_bytes"] == 3 * GiB // 2
    assert data["options"]["cpu_overcommit_ratio"] == 2.5
    assert all(n["host_reserve_bytes"] == 2 * GiB for n in data["nodes"])
    _, data = run_json(capsys, ARTICLE, "--host-reserve", "8%", "--fail-on", "never")
    assert data["options"]["host_reserve"] == "8% of MemTotal"
    assert all(n["host_reserve_bytes"] == int(n["mem_total_bytes"] * 0.08) for n in data["nodes"])


# --- exit codes -----------------------------------------------------------------------------

@pytest.mark.parametrize("rule,expected", [
    ("NG991", {"critical": 1, "warning": 1, "info": 1, "never": 0}),
    ("NG992", {"critical": 0, "warning": 1, "info": 1, "never": 0}),
    ("NG993", {"critical": 0, "warning": 0, "info": 1, "never": 0}),
    ("NG994", {"critical": 0, "warning": 0, "info": 0, "never": 0}),
])
def test_exit_code_for_each_fail_on(capsys, test_rules, rule, expected):
    for fail_on, code in expected.items():
        for fmt in ("text", "json", "markdown"):
            rc, _, _ = run(capsys, "audit", ARTICLE, "--rule", rule, "--fail-on", fail_on,
                           "--format", fmt)
            assert rc == code, (rule, fail_on, fmt)
    rc, _, _ = run(capsys, "audit", ARTICLE, "--rule", rule)  # default: critical
    assert rc == expected["critical"]


@pytest.mark.parametrize("fail_on", ["critical", "warning", "info", "never"])
def test_exit_code_agrees_with_the_summary(capsys, fail_on):
    rc, data = run_json(capsys, ARTICLE, "--fail-on", fail_on)
    levels = {"critical": ["critical"], "warning": ["critical", "warning"],
              "info": ["critical", "warning", "info"], "never": []}[fail_on]
    assert rc == (1 if any(data["summary"][s] for s in levels) else 0)


# --- --rule ---------------------------------------------------------------------------------

def test_rule_filter(capsys, test_rules):
    _, data = run_json(capsys, ARTICLE, "--rule", "ng993", "--fail-on", "never")
    assert {f["rule"] for f in data["findings"]} == {"NG993"}
    _, data = run_json(capsys, ARTICLE, "--rule", "NG991, NG993", "--rule", "NG991")
    assert {f["rule"] for f in data["findings"]} == {"NG991", "NG993"}


def test_rule_runs_the_rules_it_follows_but_reports_only_itself(capsys, test_rules):
    rc, data = run_json(capsys, ARTICLE, "--rule", "NG995")
    assert rc == 1 and [(f["rule"], f["severity"]) for f in data["findings"]] == [
        ("NG995", "critical")]
    assert data["summary"] == {"critical": 1, "warning": 0, "info": 0}


def test_a_rule_alone_reports_what_the_full_audit_reports_for_it(capsys):
    # rules that weigh other rules' findings (Rule.after, e.g. NG102 after NG101) must give the
    # same severity alone as in the full audit, or `--rule X --fail-on critical` would lie
    _, full = run_json(capsys, ARTICLE, "--fail-on", "never")
    for r in all_rules():
        rc, data = run_json(capsys, ARTICLE, "--rule", r.id, "--fail-on", "never")
        assert rc == 0
        assert data["findings"] == [f for f in full["findings"] if f["rule"] == r.id], r.id


# --- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("args,option", [
    (["--fail-on", "sometimes"], "--fail-on"),
    (["--format", "yaml"], "--format"),
    (["--host-reserve", "lots"], "--host-reserve"),
    (["--host-reserve", "100%"], "--host-reserve"),
    (["--host-reserve", "4parsec"], "--host-reserve"),
    (["--min-headroom", "4parsec"], "--min-headroom"),
    (["--min-headroom", "-1GiB"], "--min-headroom"),
    (["--min-headroom", ""], "--min-headroom"),
    (["--cpu-overcommit", "fast"], "--cpu-overcommit"),
    (["--cpu-overcommit", "0"], "--cpu-overcommit"),
    (["--cpu-overcommit", "nan"], "--cpu-overcommit"),
    (["--cpu-overcommit", "inf"], "--cpu-overcommit"),
    (["--rule", "NG000"], "--rule"),
    (["--rule", " , "], "--rule"),
    (["--min-headroom"], "--min-headroom"),
])
def test_bad_option_value_is_one_line_naming_it(capsys, args, option):
    rc, out, err = run(capsys, "audit", ARTICLE, *args)
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("numaguard audit: ") and option in err
    assert "Traceback" not in err and "usage:" not in err


def test_bad_option_is_reported_before_reading_sources(capsys, tmp_path):
    rc, _, err = run(capsys, "audit", tmp_path / "missing", "--min-headroom", "x")
    assert rc == 2 and "--min-headroom" in err and "missing" not in err


def test_unknown_option(capsys):
    rc, out, err = run(capsys, "audit", ARTICLE, "--frobnicate")
    assert rc == 2 and out == "" and len(err.splitlines()) == 1 and "--frobnicate" in err


@pytest.mark.parametrize("make,expected", [
    (lambda p: p / "missing", "no such file or directory"),
    (lambda p: ARTICLE / "domains", "no host topology among the sources"),
    (lambda p: ARTICLE / "domains" / "vm1.xml", "no host topology among the sources"),
])
def test_bad_sources(capsys, tmp_path, make, expected):
    rc, out, err = run(capsys, "audit", make(tmp_path))
    assert rc == 2 and out == "" and expected in err and len(err.splitlines()) == 1


def test_bad_domain_among_sources_names_every_problem(capsys, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<domain type='kvm'>\n  <name>t</name>\n  <memory unit='parsec'>4</memory>\n"
                   "</domain>\n")
    worse = tmp_path / "worse.xml"
    worse.write_text("<domain><name>u</name><memory>1")
    rc, out, err = run(capsys, "audit", ARTICLE, bad, worse)
    assert rc == 2 and out == ""
    assert {line.split(": ")[1].split(":")[0] for line in err.splitlines()} == {
        str(bad), str(worse)}


# --- sources --------------------------------------------------------------------------------

def overlap_host(root, *, version=None, osrelease=None):
    """Two nodes of 16 GiB (capacity 15 GiB each) and swap 1 GiB."""
    nodes = [SynthNode(0, "0-3", 16 * KiB_GiB, 15 * KiB_GiB),
             SynthNode(1, "4-7", 16 * KiB_GiB, 15 * KiB_GiB)]
    write_sysfs(str(root), nodes, [[10, 21], [21, 10]], swap_total_kib=KiB_GiB,
                swap_free_kib=KiB_GiB)
    if version is not None:
        (root / "proc" / "version").write_text(version)
    if osrelease is not None:
        (root / "proc" / "sys" / "kernel" / "osrelease").write_text(osrelease)


def overlap_guests(folder, sizes=(10, 12, 10)):
    """The vm1-on-0 / vm2-on-0-1 / vm3-on-1 case (docs/capacity.md)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, gib, nodeset, cpus in zip(("vm1", "vm2", "vm3"), sizes, ("0", "0-1", "1"),
                                        ("0-3", "0-7", "4-7"), strict=True):
        (folder / f"{name}.xml").write_text(domain_xml(name, gib * KiB_GiB, 2, cpuset=cpus,
                                                       mode="strict", nodeset=nodeset))


def snapshot(tmp_path, **host_kw):
    snap = tmp_path / "snap"
    overlap_host(snap / "host", **host_kw)
    overlap_guests(snap / "domains")
    return snap


def names(data):
    return sorted(data["guests"])


def test_tmp_snapshot(capsys, tmp_path):
    snap = snapshot(tmp_path)
    rc, data = run_json(capsys, snap, "--fail-on", "never")
    assert rc == 0 and names(data) == ["vm1", "vm2", "vm3"]
    assert [n["capacity_bytes"] for n in data["nodes"]] == [15 * GiB, 15 * GiB]
    # 32 GiB bound to two nodes that can give 30 GiB: everything the flow could place is
    # pledged, and headroom is negative (the shortfall) on both nodes
    assert sum(n["pledged_strict_bytes"] for n in data["nodes"]) == 30 * GiB
    assert all(n["headroom_bytes"] < 0 for n in data["nodes"])
    rc, out, _ = run(capsys, "audit", snap, "--fail-on", "never")
    # the Bound column shows the real demand (16 GiB a node), not a value capped at capacity
    assert out.count("over") >= 2 and "[██████████] 107%" in out


def test_topology_source_plus_domain_files_and_folders(capsys, tmp_path):
    overlap_host(tmp_path / "root")
    overlap_guests(tmp_path / "doms")
    extra = tmp_path / "extra.xml"
    extra.write_text(domain_xml("extra", KiB_GiB, 1))
    rc, data = run_json(capsys, tmp_path / "root", tmp_path / "doms", extra, "--fail-on",
                        "never")
    assert rc == 0 and names(data) == ["extra", "vm1", "vm2", "vm3"]
    # the topology may come later: the first source that yields one is the host
    _, data2 = run_json(capsys, tmp_path / "doms", tmp_path / "root", extra, "--fail-on",
                        "never")
    assert data2["nodes"] == data["nodes"] and names(data2) == names(data)


def test_capabilities_and_numactl_sources(capsys, tmp_path):
    overlap_guests(tmp_path / "doms")
    for topo in (FIX / "capabilities" / "4node.xml", FIX / "sys" / "2node" / "numactl-H.txt"):
        rc, data = run_json(capsys, topo, tmp_path / "doms", "--fail-on", "never")
        assert rc == 0 and names(data) == ["vm1", "vm2", "vm3"] and data["nodes"]
        assert data["options"]["kernel_release"] is None


def test_flat_folder_with_capabilities_beside_domains(capsys, tmp_path):
    flat = tmp_path / "hv01"
    overlap_guests(flat)
    shutil.copy(FIX / "capabilities" / "4node.xml", flat / "capabilities.xml")
    _, data = run_json(capsys, flat, "--fail-on", "never")
    assert names(data) == ["vm1", "vm2", "vm3"] and len(data["nodes"]) == 4


def test_only_the_first_topology_source_is_the_host(capsys, tmp_path):
    snap = snapshot(tmp_path)
    _, data = run_json(capsys, snap, FIX / "sys" / "4node", "--fail-on", "never")
    assert len(data["nodes"]) == 2 and names(data) == ["vm1", "vm2", "vm3"]
    _, data = run_json(capsys, FIX / "sys" / "4node", snap, "--fail-on", "never")
    assert len(data["nodes"]) == 4 and names(data) == ["vm1", "vm2", "vm3"]


def test_same_guest_name_in_two_files_is_bad_input(capsys, tmp_path):
    snap = snapshot(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "copy.xml").write_text(domain_xml("vm1", KiB_GiB, 1))
    rc, out, err = run(capsys, "audit", snap, other)
    assert rc == 2 and out == "" and "'vm1'" in err and len(err.splitlines()) == 1


def test_same_file_twice_counts_once(capsys, tmp_path):
    snap = snapshot(tmp_path)
    _, data = run_json(capsys, snap, snap / "domains", snap / "domains" / "vm2.xml",
                        "--fail-on", "never")
    assert names(data) == ["vm1", "vm2", "vm3"]


@pytest.mark.parametrize("kw,expected", [
    ({}, None),
    ({"version": "Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12) #1 "
                 "SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)\n"}, "6.1.0-56-amd64"),
    ({"osrelease": "5.14.0-427.el9.x86_64\n", "version": "Linux version 9.9 (x)\n"},
     "5.14.0-427.el9.x86_64"),
])
def test_kernel_release_of_a_snapshot(capsys, tmp_path, kw, expected):
    _, data = run_json(capsys, snapshot(tmp_path, **kw), "--fail-on", "never")
    assert data["options"]["kernel_release"] == expected
    assert data["options"]["numad_installed"] is None  # only known for this machine


def test_kernel_release_of_a_captured_fixture(capsys, tmp_path):
    overlap_guests(tmp_path / "doms")
    _, data = run_json(capsys, FIX / "sys" / "2node", tmp_path / "doms", "--fail-on", "never")
    assert data["options"]["kernel_release"] == "6.1.0-56-amd64"


def test_malformed_proc_version_names_the_file(capsys, tmp_path):
    snap = snapshot(tmp_path, version="BSD 4.4\n")
    rc, out, err = run(capsys, "audit", snap)
    assert rc == 2 and out == ""
    assert err.startswith(f"numaguard audit: {snap}/host/proc/version:1: version: ")


@pytest.mark.parametrize("numad", [True, False])
def test_live_source(capsys, tmp_path, monkeypatch, numad):
    overlap_host(tmp_path / "live", osrelease="6.12.1-amd64\n")
    overlap_guests(tmp_path / "qemu")
    monkeypatch.setattr(sources, "LIVE_ROOT", str(tmp_path / "live"))
    monkeypatch.setattr(sources, "LIBVIRT_QEMU_DIR", str(tmp_path / "qemu"))
    monkeypatch.setattr(hostfacts.shutil, "which",
                        lambda name: "/usr/sbin/numad" if numad and name == "numad" else None)
    monkeypatch.setattr(hostfacts, "NUMAD_PATHS", ())
    rc, data = run_json(capsys, "--fail-on", "never")
    assert rc == 0
    assert names(data) == ["vm1", "vm2", "vm3"] and len(data["nodes"]) == 2
    assert data["options"]["kernel_release"] == "6.12.1-amd64"
    assert data["options"]["numad_installed"] is numad


def test_live_source_without_libvirt(capsys, tmp_path, monkeypatch):
    overlap_host(tmp_path / "live")
    monkeypatch.setattr(sources, "LIVE_ROOT", str(tmp_path / "live"))
    monkeypatch.setattr(sources, "LIBVIRT_QEMU_DIR", str(tmp_path / "no-libvirt"))
    rc, out, err = run(capsys, "audit")
    assert rc == 2 and out == "" and "no-libvirt" in err


# --- markdown -------------------------------------------------------------------------------

def test_markdown_contains_the_findings(capsys, test_rules):
    rc, out, _ = run(capsys, "audit", ARTICLE, "--format", "markdown", "--rule", "NG991,NG993")
    assert rc == 1
    assert out.startswith("# numaguard audit\n")
    assert "**Result: 4 critical, 0 warning, 1 info**" in out
    assert "| Node | MemTotal | Free |" in out and "| 3 | 15.7 GiB |" in out
    assert out.index("## Critical (4)") < out.index("## Info (1)")
    assert "### NG991 test-critical: vm1\n\nvm1 is in danger \\| \\*really\\*\n" in out
    assert "- **Guests:** vm1\n- **Nodes:** 1,0\n" in out
    assert "`memory=12.0 GiB`, `nodeset=0-2`, `order=2,0,1`" in out
    assert "- **Fix:** set \\<memory mode='preferred'/\\>" in out
    assert "  ```sh\n  numaguard fix vm1 --mode preferred --nodeset 0-1\n" in out
    assert "### NG993 test-info: bigmem-preferred, db-hugepages, vm1 and 1 more" in out
    assert "\x1b[" not in out


# --- explain / rules ------------------------------------------------------------------------

def test_explain_known_rule(capsys, test_rules):
    rc, out, err = run(capsys, "explain", "ng991")
    assert rc == 0 and err == ""
    assert out == ("NG991 test-critical\n\nTest rule: a critical finding for every guest.\n\n"
                   "Second paragraph of the documentation.\n")
    rc, out, _ = run(capsys, "explain", "NG991", "--format", "markdown")
    assert out.startswith("# NG991 test-critical\n\nTest rule:")


def test_explain_every_real_rule(capsys):
    for r in all_rules():
        rc, out, _ = run(capsys, "explain", r.id)
        words = " ".join(out.split())   # the text is wrapped to the terminal
        assert rc == 0 and out.startswith(f"{r.id} {r.name}\n\n")
        assert " ".join(r.summary.split("`")[0].split()) in words


@pytest.mark.parametrize("args,expected", [
    (["NG999"], "unknown rule 'NG999'"),
    (["bogus"], "unknown rule 'bogus'"),
    ([], "name a rule ID"),
    (["NG101", "--all"], "not both"),
    (["--format", "html", "--all"], "--format"),
])
def test_explain_bad_input(capsys, args, expected):
    rc, out, err = run(capsys, "explain", *args)
    assert rc == 2 and out == "" and expected in err and len(err.splitlines()) == 1
    assert err.startswith("numaguard explain: ")


def test_explain_all_and_rules(capsys, test_rules):
    rc, out, _ = run(capsys, "explain", "--all")
    assert rc == 0
    # one entry per rule; a summary wrapped to the terminal continues on indented lines
    listed = [line.split()[0] for line in out.splitlines() if not line[:1].isspace()]
    assert listed == sorted(r.id for r in all_rules())
    assert "NG991  test-critical" in out and "Test rule: a critical finding" in out
    assert run(capsys, "rules") == (0, out, "")
    rc, md, _ = run(capsys, "explain", "--all", "--format", "markdown")
    assert md == rules_doc.rules_markdown()
    assert run(capsys, "rules", "--format", "markdown") == (0, md, "")


def test_help_mentions_audit_and_its_exit_codes(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "audit" in out and "explain" in out and "rules" in out
    with pytest.raises(SystemExit) as exc:
        cli.main(["audit", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("--fail-on", "--host-reserve", "--min-headroom", "--cpu-overcommit", "--rule",
                 "exit codes", "never"):
        assert word in out


def test_json_is_deterministic(capsys, monkeypatch):
    # meant for diffs between runs and between hosts: no timestamps, no local paths but the
    # SOURCE as given (printed commands name it, so that they work when pasted)
    monkeypatch.chdir(ROOT)
    _, a = run_json(capsys, "examples/article-host", "--fail-on", "never")
    _, b = run_json(capsys, "examples/article-host", "--fail-on", "never")
    assert a == b and os.fspath(ROOT) not in json.dumps(a)


HOST_GUESTS = ("bigmem-preferred", "vm1", "web-interleave")


def test_article_host_vm1_preferred_clears_the_critical_findings(capsys, tmp_path):
    """Issue 3: the article host exits 1 (critical).  Issue 10: with vm1 switched to preferred
    its binding's findings are gone, but the host is still out of memory as a whole (the
    simulator kills bigmem-preferred, NG110 global + NG111); with bigmem-preferred shrunk as
    NG111 proposes it exits 0."""
    snap = tmp_path / "article"
    shutil.copytree(ARTICLE, snap)
    rc = cli.main(["audit", str(snap), "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1
    critical = {(f["rule"], tuple(f["guests"])) for f in data["findings"]
                if f["severity"] == "critical"}
    assert critical == {("NG102", ("vm1",)), ("NG106", ("vm1",)), ("NG108", ("vm1",)),
                        ("NG110", ("bigmem-preferred", "vm1")),
                        ("NG110", ("bigmem-preferred",)), ("NG111", HOST_GUESTS)}
    vm1 = snap / "domains" / "vm1.xml"
    vm1.write_text(vm1.read_text().replace("<memory nodeset='0'/>",
                                           "<memory mode='preferred' nodeset='0'/>"))
    rc = cli.main(["audit", str(snap), "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1
    critical = {(f["rule"], tuple(f["guests"])) for f in data["findings"]
                if f["severity"] == "critical"}
    assert critical == {("NG110", ("bigmem-preferred",)), ("NG111", HOST_GUESTS)}
    [ng111] = [f for f in data["findings"] if f["rule"] == "NG111"]
    # 23 GiB: what the running guests hold now is counted once (NG111 from before them)
    assert ng111["fix"]["commands"] == ["virsh setmaxmem bigmem-preferred 23G --config"]
    big = snap / "domains" / "bigmem-preferred.xml"
    text = big.read_text()
    assert text.count(">36700160<") == 2, text  # <memory> and <currentMemory>: 35 GiB
    big.write_text(text.replace(">36700160<", f">{23 * 1024 * 1024}<"))
    rc = cli.main(["audit", str(snap), "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert not [f for f in data["findings"] if f["severity"] == "critical"]
    # host-wide rules may still warn (NUMA balancing; 1.5 GiB of guest memory in swap)
    assert not [f for f in data["findings"] if "vm1" in f["guests"]
                and f["severity"] in ("critical", "warning")
                and f["rule"] not in ("NG401", "NG111")]


def test_following_the_audits_fixes_leaves_no_kill_in_any_order(capsys, tmp_path, monkeypatch):
    """Issue 10's "done when": on a copy of examples/article-host, apply the change of the
    worst group until the audit reports nothing critical — a printed `numaguard fix …` line
    run as printed with --write, a `virsh setmaxmem G SIZE --config` made on the file as
    libvirt makes it (<memory> and <currentMemory>); then `numaguard simulate` of the copy in
    every start order the audit played predicts no kill."""
    snap = tmp_path / "article"
    shutil.copytree(ARTICLE, snap)
    monkeypatch.chdir(tmp_path)
    applied = []
    for _ in range(6):
        rc, data = run_json(capsys, "article")
        critical = [g for g in data["groups"] if g["severity"] == "critical"]
        if not critical:
            break
        assert rc == 1
        fix = critical[0]["fix"]
        line = next((c for c in fix["commands"] if c.startswith("numaguard fix ")), None)
        if line is not None:
            argv = shlex.split(line)[1:] + ["--write"]
            assert cli.main(argv) == 0, line
        else:
            [virsh] = fix["commands"]
            words = shlex.split(virsh)
            assert words[:2] == ["virsh", "setmaxmem"] and words[-1] == "--config"
            size_kib = int(words[3].rstrip("G")) * 1024 * 1024
            assert size_kib * 1024 == fix["memory_bytes"]
            path = snap / "domains" / f"{words[2]}.xml"
            text = path.read_text()
            text = re.sub(r"<memory unit='KiB'>\d+</memory>",
                          f"<memory unit='KiB'>{size_kib}</memory>", text)
            text = re.sub(r"<currentMemory unit='KiB'>\d+</currentMemory>",
                          f"<currentMemory unit='KiB'>{size_kib}</currentMemory>", text)
            path.write_text(text)
        capsys.readouterr()
        applied.append(fix["guest"])
    else:
        raise AssertionError(f"still critical after {applied}")
    assert rc == 0 and applied == ["vm1", "bigmem-preferred"]
    orders = [o["name"] for o in data["orders"]]
    assert len(orders) >= 4
    for name in orders:
        capsys.readouterr()
        assert cli.main(["simulate", "article", "--order", name, "--format", "json"]) == 0, name
        assert json.loads(capsys.readouterr().out)["oom_events"] == []


def test_a_preferred_guest_larger_than_the_host_is_critical(capsys, tmp_path):
    """Issue 10: the article host (62.6 GiB) with one 80 GiB `preferred` guest was NG109 info
    "no OOM risk", exit 0, while `numaguard simulate` OOM-killed it.  Now both say so."""
    snap = tmp_path / "big"
    shutil.copytree(ARTICLE / "host", snap / "host")
    (snap / "domains").mkdir()
    (snap / "domains" / "huge.xml").write_text(
        domain_xml("huge", 80 * 1024 * 1024, 4, mode="preferred", nodeset="0"))
    rc, data = run_json(capsys, snap)
    assert rc == 1
    critical = {(f["rule"], tuple(f["guests"])) for f in data["findings"]
                if f["severity"] == "critical"}
    assert {("NG110", ("huge",)), ("NG111", ("huge",))} <= critical
    [ng109] = [f for f in data["findings"] if f["rule"] == "NG109"]
    assert "no OOM risk" not in ng109["message"] and "NG110" in ng109["message"]
    assert data["verdict"][0]["victim"] == "huge"
    capsys.readouterr()
    assert cli.main(["simulate", str(snap)]) == 1


def test_the_recorded_start_order_is_played_first(capsys, tmp_path):
    """A snapshot of a running host records the QEMU start order (snapshot.json); NG110 plays
    it first, and `numaguard simulate` of the snapshot plays it by default."""
    snap = tmp_path / "article"
    shutil.copytree(ARTICLE, snap)
    order = ["web-interleave", "vm1", "bigmem-preferred", "db-hugepages"]
    (snap / "snapshot.json").write_text(json.dumps({
        "schema_version": 1, "numaguard_version": "0.1.0", "hostname": "hv07",
        "captured_at": "2026-12-01T10:31:15Z", "kernel_release": "6.1.0-28-amd64",
        "domains": {"copied": 4, "skipped": []}, "start_order": order}))
    _, data = run_json(capsys, snap, "--fail-on", "never")
    assert data["orders"][0]["name"] == "recorded"
    capsys.readouterr()
    assert cli.main(["simulate", str(snap), "--format", "json"]) in (0, 1)
    doc = json.loads(capsys.readouterr().out)
    # the example host runs three guests (captured live files): what they hold now comes
    # first, then every guest grows in the recorded order
    assert doc["scenario"]["name"] == "article (live: recorded growth order)"
    held = [s["name"] for s in doc["steps"] if s["label"].endswith(" holds now")]
    assert sorted(set(held)) == ["bigmem-preferred", "vm1", "web-interleave"]
    assert [s["name"] for s in doc["steps"][len(held):]
            if s["label"] != f"{s['name']} QEMU's own"] == order
    # web-interleave and vm1 first: vm1 fits on node 0 before bigmem-preferred arrives, so
    # this order kills no one for vm1's binding (the audit still finds the orders that do)
    assert all(e["constraint"] == "global" for e in doc["oom_events"])
    assert any(v["guest_at_fault"] == "vm1" for v in data["verdict"])


def test_simulate_and_guests_read_through_libvirt(capsys):
    """-c URI on simulate, guests and topology (libvirt's test driver, in process)."""
    pytest.importorskip("libvirt")
    rc, out, _ = run(capsys, "simulate", "-c", "test:///default", "--format", "json")
    doc = json.loads(out)
    assert rc == 1 and doc["scenario"]["name"] == "test:///default (recorded start order)"
    rc, out, _ = run(capsys, "guests", "-c", "test:///default", "--format", "json")
    assert rc == 0 and [g["name"] for g in json.loads(out)["guests"]] == ["test"]
    rc, out, _ = run(capsys, "topology", "-c", "test:///default", "--format", "json")
    assert rc == 0 and len(json.loads(out)["nodes"]) == 2
    rc, _, err = run(capsys, "simulate", "-c", "test:///default", str(ARTICLE))
    assert rc == 2 and "not both" in err


def test_qemu_overhead_reaches_the_prediction(capsys):
    """NG110's victim holds its guest RAM and its QEMU's own memory: with --qemu-overhead 0
    the freed bytes are guest RAM alone; with 1GiB, a GiB more (bigmem-preferred is
    lazily touched: its QEMU's own memory comes first, all of it held when it dies)."""
    def freed(*opts):
        _, data = run_json(capsys, ARTICLE, "--fail-on", "never", *opts)
        return {f["evidence"]["victim"]: f["evidence"]["freed_bytes"]
                for f in data["findings"] if f["rule"] == "NG110"}
    zero, big = freed("--qemu-overhead", "0"), freed("--qemu-overhead", "1GiB")
    assert zero["bigmem-preferred"] == 35 * 1024**3
    assert big["bigmem-preferred"] == 36 * 1024**3
    # a GiB more per guest on a host already short: one more guest dies
    assert set(big) == set(zero) | {"web-interleave"}
