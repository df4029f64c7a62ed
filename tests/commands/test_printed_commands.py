"""Every command numaguard prints for the user to paste works as printed (issue 10, §3).

The collection and every check live in tests/commands/collect.py and checks.py (their
docstrings say what is run and what is only checked statically, and why).  One module-scoped
run builds the hosts, audits them, and runs every command; each test below asserts one
property over all of them and lists every offending line with its source and rule.  The count
of what ran is printed with ``pytest -s`` and by ``python -m tests.commands.collect --count``.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.commands import checks
from tests.commands import collect as col
from tests.commands.hosts import SYNTHETIC, TOPOLOGIES

pytestmark = pytest.mark.skipif(shutil.which("virsh") is None,
                                reason="virsh (libvirt-clients) is not installed")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> checks.Report:
    r = checks.run_all(tmp_path_factory.mktemp("commands"))
    print("\n" + r.summary())
    return r


def _assert_none(report: checks.Report, *causes: str) -> None:
    bad = report.by_cause(*causes)
    lines = sorted({f.line() for f in bad})
    assert not lines, (f"{len(lines)} printed command(s): {checks.CAUSES[causes[0]]}\n"
                       + "\n".join(lines))


# --- the collection ---------------------------------------------------------------------------

def test_text_and_json_commands_parsed():
    text = ("NG102 implicit-strict  guests: vm1\n  fix: …\n    $ numaguard fix vm1 --nodeset 0\n"
            "    $ virsh numatune vm1 --nodeset 0 --config\nNG401 x\n    $ sysctl -w a=0\n")
    assert col.text_commands(text) == [
        ("numaguard fix vm1 --nodeset 0", "NG102",
         ("numaguard fix vm1 --nodeset 0", "virsh numatune vm1 --nodeset 0 --config")),
        ("virsh numatune vm1 --nodeset 0 --config", "NG102",
         ("numaguard fix vm1 --nodeset 0", "virsh numatune vm1 --nodeset 0 --config")),
        ("sysctl -w a=0", "NG401", ("sysctl -w a=0",))]
    doc = {"findings": [{"rule": "NG106", "fix": {"commands": ["a", "b"]}},
                        {"rules": ["NG101", "NG108"], "fix": {"commands": ["c"]}}]}
    assert col.json_commands(doc) == [("a", "NG106", ("a", "b")), ("b", "NG106", ("a", "b")),
                                      ("c", "NG101,NG108", ("c",))]
    out = ("# virsh numatune has no option for <memnode>: …, saved first:\n"
           "numaguard fix g.xml --memnode 0:preferred:0 --xml > g.numaguard.xml\n"
           "virsh define g.numaguard.xml\n# takes effect at the next cold boot\n")
    assert col.virsh_output_commands(out) == [
        "numaguard fix g.xml --memnode 0:preferred:0 --xml > g.numaguard.xml",
        "virsh define g.numaguard.xml"]


def test_collection_covers_every_source_dedups_and_records_origins(report):
    names = {c.source.name for c in report.collected}
    assert "example:article-host" in names
    assert {f"synth:{n}" for n in SYNTHETIC} <= names
    assert {f"fixture:tests/fixtures/{t}+guests" for t in TOPOLOGIES} <= names
    for c in report.collected:
        texts = [p.text for p in c.commands]
        assert len(texts) == len(set(texts)), c.source.name
        for p in c.commands:
            assert p.origins and all(o.rule for o in p.origins), p.text
    article = next(c for c in report.collected if c.source.name == "example:article-host")
    vias = {o.via.split(":")[0] for p in article.commands for o in p.origins}
    assert {"text", "json"} <= vias
    kinds = col.kinds(report.collected)
    assert kinds.get("numaguard", 0) > 0 and kinds.get("virsh", 0) > 0


def test_fix_virsh_lines_collected(report):
    """The ``numaguard fix … --virsh`` output of every fix line that runs is collected too
    (none runs while the fix lines lack their source: see test_numaguard_lines_run)."""
    assert any(o.via.startswith("fix --virsh") for c in report.collected
               for p in c.commands for o in p.origins), "no `numaguard fix … --virsh` line ran"


def test_text_and_json_print_the_same_commands(report):
    """A command is never split or altered by the text layout."""
    bad = []
    for c in report.collected:
        t = {p.text for p in c.commands if any(o.via == "text" for o in p.origins)}
        j = {p.text for p in c.commands if any(o.via == "json" for o in p.origins)}
        if t != j:
            bad.append(f"{c.source.name}: text only {sorted(t - j)}; json only {sorted(j - t)}")
    assert not bad, "\n".join(bad)


def test_every_source_was_audited(report):
    refused = [f"{c.source.name}: {c.error}" for c in report.collected if c.error]
    assert not refused, "\n".join(refused)


def test_count_is_reported(report):
    ran = report.ran
    assert ran.get("numaguard", 0) > 0 and sum(v for k, v in ran.items()
                                                if k.startswith("virsh")) > 0
    assert sum(ran.values()) == sum(len(c.commands) for c in report.collected)
    json.dumps(ran)


# --- the properties ---------------------------------------------------------------------------

def test_every_line_parses(report):
    _assert_none(report, "parse")


def test_no_empty_argument(report):
    _assert_none(report, "empty-arg")


def test_no_option_without_its_value(report):
    _assert_none(report, "missing-value")


def test_every_option_exists(report):
    _assert_none(report, "unknown-option")


def test_options_named_in_fix_text_exist(report):
    _assert_none(report, "prose-option")


def test_numaguard_lines_carry_their_source(report):
    _assert_none(report, "no-source")


def test_numaguard_lines_run(report):
    _assert_none(report, "numaguard-fails")


def test_fix_lines_change_something(report):
    _assert_none(report, "fix-no-change")


def test_virsh_lines_accepted_by_libvirt(report):
    _assert_none(report, "virsh-fails")


def test_virsh_lines_take_effect(report):
    _assert_none(report, "virsh-no-change")


def test_lines_name_only_what_the_host_has(report):
    _assert_none(report, "host-lacks")


def test_file_writing_lines(report):
    _assert_none(report, "file-write")


def test_swap_advice_is_persistent(report):
    _assert_none(report, "swap-not-persistent")
