"""``numaguard audit --nagios``: the status line, states and performance data a monitoring
system reads (Monitoring Plugins Development Guidelines), and UNKNOWN for every error."""

from __future__ import annotations

import pathlib
import re

import pytest

from numaguard import cli
from tests.support.synth import SynthNode, domain_xml, write_sysfs

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTICLE = ROOT / "examples" / "article-host"
GiB = 1024**3
KIB_GIB = 1024 * 1024

#: 'label'=value[UOM];[warn];[crit];[min];[max] (the guidelines' "Performance data")
PERF = re.compile(r"'(?P<label>(?:[^']|'')+)'=(?P<value>-?\d+)B;(?P<warn>\d+):;0:;;(?P<max>\d+)")


def run(capsys, *args):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def parse(out: str) -> tuple[str, str, dict[str, tuple[int, int, int]]]:
    """(state, text, {label: (value, warn, max)}) of a plugin's one line."""
    assert out.endswith("\n") and out.count("\n") == 1, out
    status, _, data = out.rstrip("\n").partition(" | ")
    m = re.fullmatch(r"NUMAGUARD (OK|WARNING|CRITICAL|UNKNOWN) - (.+)", status)
    assert m, status
    perf = {}
    for item in data.split(" ") if data else []:
        p = PERF.fullmatch(item)
        assert p, item
        perf[p["label"]] = (int(p["value"]), int(p["warn"]), int(p["max"]))
    return m[1], m[2], perf


def host(tmp_path: pathlib.Path, guests: dict[str, str]) -> pathlib.Path:
    """A 2-node snapshot (64 GiB, 8 CPUs per node) with *guests* (name -> XML)."""
    snap = tmp_path / "snap"
    nodes = [SynthNode(i, f"{i * 8}-{i * 8 + 7}", 64 * KIB_GIB, 60 * KIB_GIB) for i in (0, 1)]
    write_sysfs(str(snap / "host"), nodes, [[10, 21], [21, 10]],
                swap_total_kib=4 * KIB_GIB, swap_free_kib=4 * KIB_GIB)
    (snap / "domains").mkdir()
    for name, xml in guests.items():
        (snap / "domains" / f"{name}.xml").write_text(xml)
    return snap


def test_example_host_is_critical_with_headroom_per_node(capsys):
    rc, out, err = run(capsys, "audit", "--nagios", ARTICLE)
    assert (rc, err) == (2, "")
    state, text, perf = parse(out)
    assert state == "CRITICAL"
    # the same counts and per-node headroom as the JSON audit
    _, js, _ = run(capsys, "audit", "--format", "json", ARTICLE)
    import json

    doc = json.loads(js)
    crit = sum(f["severity"] == "critical" for f in doc["findings"])
    assert text.startswith(f"{crit} critical, ")
    # the verdict's first line: who dies and the guest at fault (cut to fit the 200 characters)
    line = doc["verdict"][0]["line"]
    assert line.startswith("vm1 — strict (implicit) on node 0 — bigmem-preferred will be")
    assert f"; {line}"[:40] in text
    assert len(text) <= 200
    assert set(perf) == {f"node{n}_headroom" for n in range(4)}
    summary = {n["id"]: n for n in doc["nodes"]}
    for n, (value, warn, cap) in ((int(k[4]), v) for k, v in perf.items()):
        assert value == summary[n]["headroom_bytes"] and cap == summary[n]["capacity_bytes"]
        assert warn == 4 * GiB
    assert perf["node0_headroom"][0] < 4 * GiB      # vm1's node: below --min-headroom


def test_min_headroom_is_the_warning_threshold(capsys):
    _, out, _ = run(capsys, "audit", "--nagios", "--min-headroom", "8GiB", ARTICLE)
    assert {w for _, w, _ in parse(out)[2].values()} == {8 * GiB}


def test_a_clean_host_is_ok(capsys, tmp_path):
    snap = host(tmp_path, {"web": domain_xml("web", 4 * KIB_GIB, 2, cpuset="0-15",
                                             mode="interleave", nodeset="0-1")})
    rc, out, err = run(capsys, "audit", "--nagios", snap)
    state, text, perf = parse(out)
    assert (rc, state, err) == (0, "OK", "")
    assert text.startswith(("0 critical, 0 warning", "no findings"))
    assert all(value > warn for value, warn, _ in perf.values())


def test_empty_host_is_ok_with_no_findings(capsys, tmp_path):
    rc, out, _ = run(capsys, "audit", "--nagios", host(tmp_path, {}))
    assert rc == 0 and parse(out)[:2] == ("OK", "no findings (0 guests, 2 nodes)")


def test_a_warning_is_warning(capsys, tmp_path):
    # strict on node 0 leaving it less than --min-headroom: NG101 warns, nothing is critical
    snap = host(tmp_path, {"db": domain_xml("db", 58 * KIB_GIB, 4, cpuset="0-7",
                                            mode="strict", nodeset="0")})
    rc, out, _ = run(capsys, "audit", "--nagios", snap)
    _, js, _ = run(capsys, "audit", "--format", "json", snap)
    import json

    severities = {f["severity"] for f in json.loads(js)["findings"]}
    state, text, perf = parse(out)
    expected = ("CRITICAL", 2) if "critical" in severities else ("WARNING", 1)
    assert (state, rc) == expected
    assert "warning" in severities
    assert "db" in text
    assert perf["node0_headroom"][0] < 4 * GiB


def test_quotes_and_bars_cannot_break_the_line():
    from numaguard.report.nagios import label, unknown

    assert label("it's") == "'it''s'"
    line = unknown("a.xml: guest 'x|y'\nb.xml: bad\x1b")
    assert line == "NUMAGUARD UNKNOWN - a.xml: guest 'x\\x7cy'; b.xml: bad\\x1b\n"


@pytest.mark.parametrize("argv,needle", [
    (["audit", "--nagios", "/nonexistent"], "/nonexistent: no such file or directory"),
    (["audit", "--nagios", "--format", "json", str(ARTICLE)], "not allowed with"),
    (["audit", "--nagios", "--fail-on", "sometimes", str(ARTICLE)], "--fail-on"),
    (["audit", "--nagios", "--min-headroom", "4Q", str(ARTICLE)], "--min-headroom"),
    (["audit", "--nagios", "--no-such-option", str(ARTICLE)], "--no-such-option"),
    (["audit", "--nagios", str(ARTICLE / "README.md")], "README.md"),
])
def test_every_error_is_unknown_on_stdout(capsys, argv, needle):
    rc, out, err = run(capsys, *argv)
    assert (rc, err) == (3, "")
    state, text, perf = parse(out)
    assert state == "UNKNOWN" and needle in text and perf == {}


def test_an_internal_error_is_unknown(capsys, monkeypatch, tmp_path):
    from numaguard.report import nagios

    def broken(result):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(nagios, "nagios_status", broken)
    rc, out, err = run(capsys, "audit", "--nagios", host(tmp_path, {}))
    assert (rc, err) == (3, "")
    assert parse(out)[0] == "UNKNOWN" and "internal error: ZeroDivisionError: boom" in out


def test_without_nagios_errors_stay_on_stderr(capsys):
    rc, out, err = run(capsys, "audit", "/nonexistent")
    assert (rc, out) == (2, "") and err.startswith("numaguard audit: ")
