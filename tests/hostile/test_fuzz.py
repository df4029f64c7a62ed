"""The hostile-input harness and the mutation fuzzer (tests/hostile/harness.py, fuzz.py).

The first tests prove the harness and the fuzzer's oracle can fail: a planted traceback, hang,
bad exit code, malformed refusal, silent drop, leak or raw control character is caught, and a
clean refusal is not.  ``test_unmutated_corpus_is_clean`` runs every seed as it is (the oracle
has no false positives on the repository's own files).  ``test_fuzz_bounded`` is the fuzzer
itself: FUZZ_RUNS (default 2,000) mutated inputs from seed FUZZ_SEED (default 0), two runs at
a time, 0 failures expected; it prints the counts.  ``make fuzz`` runs it with 20,000 inputs
and saves one minimised reproducer per distinct failure under FUZZ_FINDINGS
(/tmp/fuzz-findings).
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import sys
import time

import pytest

from tests.hostile import fuzz
from tests.hostile.harness import (
    assert_bad_input,
    bad_input_problems,
    diff_trees,
    run_cli,
    run_many,
    snapshot_tree,
    untouched,
)


@pytest.fixture(autouse=True, scope="module")
def _preloaded():
    """Every numaguard module imported before the first fork (fast children)."""
    fuzz.preload()


# -- the harness -----------------------------------------------------------------------------

def _raises(argv):
    raise ValueError("planted")


def _hangs(argv):
    time.sleep(60)


def _writes(argv):
    sys.stdout.write(argv[1].encode().decode("unicode_escape"))
    sys.stderr.write(argv[2].encode().decode("unicode_escape"))
    return int(argv[0])


def test_run_cli_reports_a_traceback_as_the_interpreter_would():
    out = run_cli(["x"], main=_raises)
    assert out.code == 1 and out.traceback and not out.timed_out
    assert out.err.startswith("Traceback (most recent call last):")
    assert out.err.rstrip().endswith("ValueError: planted")


def test_run_cli_kills_a_hang_at_its_timeout():
    out = run_cli(["x"], main=_hangs, timeout=0.5)
    assert out.timed_out and out.code < 0
    assert out.elapsed < 5


def test_run_many_runs_in_parallel_and_keeps_each_output():
    jobs = [([str(i % 3), f"out{i}", f"err{i}"], {"main": _writes}) for i in range(8)]
    results = dict(run_many(jobs, parallel=2))
    assert sorted(results) == list(range(8))
    for i, out in results.items():
        assert (out.code, out.out, out.err) == (i % 3, f"out{i}", f"err{i}")


def test_stdio_follows_pythonioencoding_and_dev_full():
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    out = run_cli(["0", "caf\\xe9", ""], main=_writes, env=env)
    assert out.traceback and "UnicodeEncodeError" in out.err
    full = run_cli(["0", "x" * 10, ""], main=_writes, stdout="/dev/full")
    assert "No space left on device" in full.err and full.code != 0


def test_assert_bad_input_accepts_one_clean_line_only():
    good = run_cli(["2", "", "numaguard guests: a.xml:3: vcpu: bad\\n"], main=_writes)
    assert_bad_input(good, cmd="guests", names=["a.xml", "vcpu"])
    assert bad_input_problems(good, cmd="audit")   # wrong sub-command
    assert bad_input_problems(good, names=["b.xml"])
    two = run_cli(["2", "", "numaguard guests: a\\nnumaguard guests: b\\n"], main=_writes)
    assert bad_input_problems(two, cmd="guests")
    assert_bad_input(two, cmd="guests", one_line=False)
    for argv in (["1", "", "numaguard guests: a\\n"], ["2", "", ""], ["2", "", "oops\\n"]):
        with pytest.raises(AssertionError):
            assert_bad_input(run_cli(argv, main=_writes), cmd="guests")
    with pytest.raises(AssertionError):
        assert_bad_input(run_cli(["x"], main=_raises))


def test_untouched_sees_writes_temp_files_and_mode_changes(tmp_path):
    (tmp_path / "d").mkdir()
    target, other = tmp_path / "d" / "target.xml", tmp_path / "other.xml"
    target.write_text("a")
    other.write_text("b")
    with untouched(tmp_path, allow=[target, tmp_path / "d"]):
        target.write_text("changed")
    for change in (lambda: other.write_text("bb"), lambda: other.chmod(0o600),
                   lambda: (tmp_path / "t.tmp").write_text("x"),
                   lambda: (tmp_path / "d" / "t").symlink_to("/etc/passwd")):
        with pytest.raises(AssertionError, match="touched outside the target"), \
                untouched(tmp_path, allow=[target]):
            change()
    before = snapshot_tree(tmp_path)
    tmp = tmp_path / "d" / "gone.tmp"
    tmp.write_text("x")
    tmp.unlink()   # a temp file created and removed still changes its folder
    assert diff_trees(before, snapshot_tree(tmp_path), allow=[target]) == [
        f"changed {tmp_path / 'd'} (mtime_ns, ctime_ns)"]


# -- the oracle ------------------------------------------------------------------------------

def _probe(cmd="guests", fmt="json", **expect):
    return fuzz.Probe(cmd, [cmd, "x"], fuzz.PLAIN_CODES if cmd != "audit" else fuzz.AUDIT_CODES,
                      fmt, fuzz.Expect(**expect))


@pytest.mark.parametrize(("argv", "probe", "klass"), [
    (["3", "", "internal error\\n"], _probe(), "exit-code"),
    (["2", "", "Error: bad\\n"], _probe(), "stderr-format"),
    (["2", "", ""], _probe(), "stderr-format"),
    (["0", '{"guests": []}', ""], _probe(guests=1), "silent-drop"),
    (["0", '{"guests": [{"name": "a"}, {"name": "b"}]}', ""], _probe(guests=1), "silent-drop"),
    (["1", '{"host": {"nodes": [{"id": 0}]}, "guests": ["a"]}', ""],
     _probe("audit", node_ids=frozenset({0, 1}), guests=1), "silent-drop"),
    (["0", '{"nodes": [{"id": 0}, {"id": 1}], "distances": null}', ""],
     _probe("topology", node_ids=frozenset({0, 1}), distances=True), "silent-drop"),
    (["0", '{"steps": [{"name": "a"}], "nodes": [{}]}', ""],
     _probe("simulate", steps=2), "silent-drop"),
    (["0", "not json", ""], _probe(), "bad-output"),
    (["0", "", ""], _probe(fmt="text"), "bad-output"),
    (["0", "guest \\x1b[31mred", ""], _probe(fmt="text"), "raw-control"),
    (["2", "", "numaguard guests: name \\u202egnp.exe\\n"], _probe(), "raw-control"),
    (["0", '{"guests": [{"name": "' + fuzz.CANARY + '"}]}', ""], _probe(guests=1), "leak"),
])
def test_oracle_catches_a_planted_failure(argv, probe, klass):
    fails = fuzz.judge(probe, run_cli(argv, main=_writes))
    assert klass in {f.klass for f in fails}


def test_oracle_catches_tracebacks_and_hangs_with_their_keys():
    [tb] = fuzz.judge(_probe(), run_cli(["x"], main=_raises))
    assert tb.klass == "traceback"
    assert tb.key.startswith("guests traceback ValueError @ ") and "_raises" in tb.key
    [hang] = fuzz.judge(_probe(), run_cli(["x"], main=_hangs, timeout=0.3), "domain")
    assert (hang.klass, hang.key) == ("timeout", "guests timeout domain")


@pytest.mark.parametrize(("argv", "probe"), [
    (["2", "", "numaguard guests: a.xml:1: xml: malformed XML\\n"], _probe()),
    (["2", "", "numaguard guests: a.xml: bad\\nnumaguard guests: a.xml: worse\\n"], _probe()),
    (["0", '{"guests": [{"name": "vm1"}]}', ""], _probe(guests=1)),
    (["1", "Audit: 1 guest\\n", ""], _probe("audit", fmt="text")),
    (["0", "vm1 is fine", "a note on stderr\\n"], _probe(fmt="text")),
])
def test_oracle_passes_a_clean_run(argv, probe):
    assert fuzz.judge(probe, run_cli(argv, main=_writes)) == []


def test_mutations_are_seeded(tmp_path):
    corpus = fuzz.load_corpus()
    canary, fifo = tmp_path / "canary", tmp_path / "fifo"

    def cases(seed, where):
        where.mkdir()
        rng = random.Random(seed)
        built = [fuzz.build_case(rng, corpus, where, i, canary, fifo) for i in range(40)]
        return [(c.kind, c.seed, c.mutators, [p.argv[0] for p in c.probes],
                 c.mutated.read_bytes() if c.mutated and c.mutated.is_file() else None)
                for c in built]

    first, again, other = cases(7, tmp_path / "a"), cases(7, tmp_path / "b"), cases(8,
                                                                                tmp_path / "c")
    assert first == again
    assert first != other
    assert len({k for k, *_ in first}) >= 4   # the kinds are mixed


def test_every_kind_of_input_has_seeds():
    corpus = fuzz.load_corpus()
    assert {k: bool(v) for k, v in corpus.items()} == dict.fromkeys(fuzz.KINDS, True)
    assert len(corpus["sysfs"]) >= 10 and len(corpus["domain"]) >= 40


def test_fuzzer_finds_planted_bugs(tmp_path):
    """The whole loop against a numaguard with two planted bugs: `guests` drops every guest
    of a file whose name starts with 'm', `topology` crashes on a tree with a node 3."""
    from numaguard import cli

    def buggy(argv):
        if argv[0] == "guests" and os.path.basename(argv[1]).startswith("m") and "--format" \
                in argv:
            sys.stdout.write(json.dumps({"guests": []}))
            return 0
        if argv[0] == "topology" and os.path.isdir(f"{argv[1]}/sys/devices/system/node/node3"):
            raise KeyError("planted")
        return cli.main(argv)

    report = fuzz.fuzz(80, seed=3, main=buggy, workroot=tmp_path / "w")
    assert "guests silent-drop domain" in report.findings
    assert any(k.startswith("topology traceback KeyError") for k in report.findings)
    saved = fuzz.save_findings(report, tmp_path / "findings", budget=40)
    drop = [p for p in saved if "guests-silent-drop" in p.name]
    assert drop and (drop[0] / "cmd.sh").read_text().startswith("cd ")
    meta = json.loads((drop[0] / "finding.json").read_text())
    assert meta["class"] == "silent-drop" and meta["argv"][0] == "guests"


# -- the fuzzer on the real numaguard --------------------------------------------------------

def test_unmutated_corpus_is_clean(tmp_path):
    """Every seed as it is, through every probe: the oracle reports nothing."""
    report = fuzz.fuzz(0, mutated=False, workroot=tmp_path)
    print("\n" + report.summary())
    assert report.inputs >= 100
    assert not report.findings, report.summary()


# The bounded run of `make test`: 2,000 mutated inputs from seed 0 through every read-only
# command (about a minute on two cores); `make fuzz` runs FUZZ_RUNS of them.
def test_fuzz_bounded(tmp_path, capsys):
    inputs = int(os.environ.get("FUZZ_RUNS", "2000"))
    seed = int(os.environ.get("FUZZ_SEED", "0"))
    report = fuzz.fuzz(inputs, seed=seed, parallel=2, workroot=tmp_path / "cases")
    where = pathlib.Path(os.environ.get("FUZZ_FINDINGS") or tmp_path / "findings")
    saved = fuzz.save_findings(report, where) if report.findings else []
    with capsys.disabled():
        print("\n" + report.summary())
        if saved:
            print(f"reproducers: {len(saved)} in {where}")
    assert report.inputs == inputs
    if "FUZZ_RUNS" not in os.environ:
        assert inputs >= 2000
    assert sum(report.runs.values()) >= report.inputs
    assert not report.findings, report.summary()
