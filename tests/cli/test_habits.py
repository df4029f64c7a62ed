"""CLI habits of the ecosystem: no abbreviated options, -V, error lines naming the sub-command,
--help at the terminal's width, snapshot failures and metadata, versioned JSON, explain for a
terminal, and a README whose links stay inside the repository."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pathlib
import re
import shutil
import stat
import tempfile

import pytest

from numaguard import __version__, cli
from numaguard.errors import InvalidDocument
from numaguard.readers import domains as domains_reader
from numaguard.readers.sources import read_paths, read_snapshot_meta
from numaguard.report import rules as rules_doc
from numaguard.writers import snapshot as snapshot_writer
from tests.hostile.test_writes import one_line, run

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
ARTICLE = ROOT / "examples" / "article-host"
SYS2 = FIX / "sys" / "2node"
NOBODY = 65534


# --- 1, 2: no abbreviations; -V ----------------------------------------------------------------

def _parsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_no_parser_takes_abbreviations():
    parsers = list(_parsers(cli.build_parser()))
    assert len(parsers) >= 9
    assert all(p.allow_abbrev is False for p in parsers)


@pytest.mark.parametrize("argv,option", [
    (["audit", "--host", "8GiB", str(ARTICLE)], "--host"),          # was --host-reserve
    (["audit", "--min", "8GiB", str(ARTICLE)], "--min"),            # was --min-headroom
    (["topology", "--form", "json", str(ARTICLE)], "--form"),
    (["simulate", str(ARTICLE), "--comp", "strict"], "--comp"),
    (["fix", str(ARTICLE / "domains" / "vm1.xml"), "--recommend"], "--recommend"),
    (["snapshot", "/nonexistent/x", "--libvirt", "/x"], "--libvirt"),
])
def test_an_abbreviated_option_is_an_error(capsys, argv, option):
    rc, out, err = run(capsys, *argv)
    assert (rc, out) == (2, "")
    line = one_line(err, argv[0])
    assert f"unrecognized arguments: {option}" in line


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(capsys, flag):
    with pytest.raises(SystemExit) as exc:
        cli.main([flag])
    assert exc.value.code == 0 and capsys.readouterr().out == f"numaguard {__version__}\n"


# --- 3: every error line names the sub-command -------------------------------------------------

VM1 = str(ARTICLE / "domains" / "vm1.xml")
SCENARIO = str(ROOT / "examples" / "scenarios" / "article-vm1-app.toml")

ERRORS = [
    # usage errors
    (["topology", "a", "b"], "unrecognized arguments: b"),
    (["topology", "--format", "yaml"], "argument --format"),
    (["guests", "--bogus"], "unrecognized arguments: --bogus"),
    (["snapshot"], "required: DIR"),
    (["audit", "--fail-on", "sometimes"], "argument --fail-on"),
    (["simulate"], "give a scenario .toml file, a snapshot dir or -c/--connect URI"),
    (["explain", "NG101", "extra"], "unrecognized arguments: extra"),
    (["rules", "NG101"], "unrecognized arguments: NG101"),
    (["fix"], "required: GUEST|FILE"),
    (["top", "-n", "0"], "invalid interval '0'"),
    (["plan", str(ARTICLE), "--max-moves", "x"], "argument --max-moves"),
    (["exporter", "--listen", ":9177"], "--listen"),
    (["exporter", "/nonexistent", "--textfile", "x.prom"], "/nonexistent: no such file"),
    (["fix", VM1, "--mode", "sideways"], "argument --mode"),
    # reader errors
    (["topology", "/nonexistent"], "/nonexistent: no such file"),
    (["guests", "/nonexistent"], "/nonexistent: no such file"),
    (["snapshot", "/nonexistent/snap", "--root", str(SYS2)], "/nonexistent: no such directory"),
    (["audit", "/nonexistent"], "/nonexistent: no such file"),
    (["simulate", "/nonexistent"], "/nonexistent"),
    (["fix", "/nonexistent.xml", "--recommended"], "/nonexistent.xml"),
    # option values
    (["audit", str(ARTICLE), "--min-headroom", "4Q"], "--min-headroom"),
    (["audit", str(ARTICLE), "--host-reserve", "9x"], "--host-reserve"),
    (["audit", str(ARTICLE), "--cpu-overcommit", "0"], "--cpu-overcommit"),
    (["audit", str(ARTICLE), "--rule", "NG999"], "--rule"),
    (["simulate", SCENARIO, "--compare", "sideways"], "--compare"),
    (["simulate", SCENARIO, "--plot", "x.jpg"], "--plot"),
    (["explain", "NG999"], "unknown rule"),
    (["fix", VM1, "--nodeset", "3-1"], "--nodeset"),
    (["fix", VM1, "--memnode", "x"], "--memnode"),
]


@pytest.mark.parametrize("argv,needle", ERRORS, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else None)
def test_every_error_names_its_sub_command(capsys, argv, needle):
    rc, out, err = run(capsys, *argv)
    assert (rc, out) == (2, ""), err
    assert needle in one_line(err, argv[0])


def test_every_sub_command_is_covered():
    commands = {a.dest for a in cli.build_parser()._subparsers._group_actions[0]._choices_actions}
    assert {argv[0] for argv, _ in ERRORS} == {"topology", "guests", "snapshot", "audit",
                                               "simulate", "explain", "rules", "fix",
                                               "top", "exporter", "plan"} == \
        set(commands)


# --- 4: --help at the terminal's width -----------------------------------------------------------

def _help(capsys, monkeypatch, columns, *argv):
    monkeypatch.setenv("COLUMNS", str(columns))
    with pytest.raises(SystemExit):
        cli.main([*argv, "--help"])
    return capsys.readouterr().out


@pytest.mark.parametrize("command,epilog", [("audit", cli.AUDIT_EPILOG),
                                            ("fix", cli.FIX_EPILOG),
                                            ("simulate", cli.SIMULATE_EPILOG),
                                            ("topology", cli.EPILOG)])
@pytest.mark.parametrize("columns", [60, 80, 120])
def test_help_wraps_prose_and_keeps_examples(capsys, monkeypatch, command, epilog, columns):
    out = _help(capsys, monkeypatch, columns, command)
    kept = {line for line in epilog.splitlines() if line[:1].isspace()}
    assert kept and all(line in out.splitlines() for line in kept)   # never re-flowed
    for line in out.splitlines():
        if line not in kept and not line.startswith(("usage:", " " * 10)):
            assert len(line) <= columns, line
    # the description is re-flowed to the width, not kept at its source's line length
    description = out.split("\n\n")[1].splitlines()
    widest = max(len(line) for line in description)
    assert widest <= columns and (len(description) == 1 or widest >= columns - 25)


def test_help_of_every_sub_command_fits_80_columns(capsys, monkeypatch):
    for command in ("topology", "guests", "snapshot", "audit", "simulate", "explain", "rules",
                    "fix", "plan"):
        out = _help(capsys, monkeypatch, 80, command)
        epilog_lines = set(cli.EPILOG.splitlines()) | set(cli.AUDIT_EPILOG.splitlines()) | \
            set(cli.FIX_EPILOG.splitlines()) | set(cli.SIMULATE_EPILOG.splitlines())
        too_long = [line for line in out.splitlines()
                    if len(line) > 80 and line not in epilog_lines]
        assert not too_long, (command, too_long)


# --- 5: snapshot into a place it cannot write ----------------------------------------------------

def _snapshot_refused(capsys, directory, parent: pathlib.Path) -> str:
    before = sorted(os.listdir(parent))
    rc, out, err = run(capsys, "snapshot", directory, "--root", SYS2,
                       "--libvirt-dir", ARTICLE / "domains")
    assert (rc, out) == (2, "")
    assert sorted(os.listdir(parent)) == before       # nothing left behind
    return one_line(err, "snapshot")


def test_snapshot_into_a_missing_parent(capsys, tmp_path):
    line = _snapshot_refused(capsys, tmp_path / "no" / "snap", tmp_path)
    assert line == f"numaguard snapshot: {tmp_path / 'no'}: no such directory"


def test_snapshot_onto_a_file(capsys, tmp_path):
    (tmp_path / "f").write_text("keep")
    line = _snapshot_refused(capsys, tmp_path / "f", tmp_path)
    assert "f: already exists" in line
    assert (tmp_path / "f").read_text() == "keep"


def test_snapshot_under_a_file(capsys, tmp_path):
    (tmp_path / "f").write_text("keep")
    line = _snapshot_refused(capsys, tmp_path / "f" / "snap", tmp_path)
    assert line == f"numaguard snapshot: {tmp_path / 'f'}: not a directory"


def _capture(fn):
    """Run *fn* with stdout/stderr captured; (its result, out, err)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = fn()
    return rc, out.getvalue(), err.getvalue()


def unprivileged(argv: list[str]) -> tuple[int, str, str]:
    """``numaguard ARGV`` as a user who is not root: in-process when we are not root, else in a
    forked child that drops to nobody (chmod does not stop root)."""
    if os.geteuid() != 0:
        return _capture(lambda: cli.main(argv))
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: become nobody, run, send back (rc, out, err)
        try:
            os.close(rfd)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result = _capture(lambda: cli.main(argv))
        except BaseException as exc:  # noqa: BLE001 - a forked child must never return to pytest
            result = (99, "", repr(exc))
        os.write(wfd, json.dumps(result).encode())
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    rc, out, err = json.loads(data)
    return rc, out, err


@pytest.fixture
def shared_tmp():
    """A folder another user may enter (pytest's tmp_path is 0700 root's)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="numaguard-habits-"))
    os.chmod(path, 0o755)
    # warm every import and the parser's gettext lookups before a child drops privileges
    _capture(lambda: cli.main(["audit", str(ARTICLE)]))
    _capture(lambda: cli.main(["guests", str(ARTICLE)]))
    _capture(lambda: cli.main(["snapshot", str(path / "warm"), "--root", str(SYS2),
                               "--libvirt-dir", str(ARTICLE / "domains")]))
    shutil.rmtree(path / "warm")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_snapshot_where_permission_is_denied(shared_tmp):
    parent = shared_tmp / "closed"
    parent.mkdir(mode=0o755)
    rc, out, err = unprivileged(["snapshot", str(parent / "snap"), "--root", str(SYS2),
                                 "--libvirt-dir", str(ARTICLE / "domains")])
    assert (rc, out) == (2, "")
    assert one_line(err, "snapshot") == (f"numaguard snapshot: {parent / 'snap'}: cannot create "
                                         f"the snapshot in {parent}: permission denied")
    assert os.listdir(parent) == []


# --- 6: domain XMLs that exist but none can be read ----------------------------------------------

def _locked_folder(base: pathlib.Path, names=("a", "b", "c")) -> pathlib.Path:
    folder = base / "qemu"
    folder.mkdir(mode=0o755)
    for name in names:
        shutil.copy(ARTICLE / "domains" / "vm1.xml", folder / f"{name}.xml")
        os.chmod(folder / f"{name}.xml", 0o000)
    return folder


@pytest.mark.parametrize("command", ["guests", "audit"])
def test_reading_a_folder_of_unreadable_domains_fails(shared_tmp, command):
    folder = _locked_folder(shared_tmp)
    argv = [command, str(folder)] if command == "guests" else \
        [command, str(ARTICLE / "host"), str(folder)]
    rc, out, err = unprivileged(argv)
    assert (rc, out) == (2, "")
    line = one_line(err, command)
    assert line.startswith(f"numaguard {command}: {folder}: 3 domain XML files, none readable "
                           "(permission denied): run as root")


def test_snapshot_of_a_folder_of_unreadable_domains_fails(shared_tmp):
    folder = _locked_folder(shared_tmp)
    out_dir = shared_tmp / "out"
    out_dir.mkdir()
    os.chmod(out_dir, 0o777)
    rc, out, err = unprivileged(["snapshot", str(out_dir / "snap"), "--root", str(SYS2),
                                 "--libvirt-dir", str(folder)])
    assert (rc, out) == (2, "")
    assert one_line(err, "snapshot").startswith(
        f"numaguard snapshot: {folder}: 3 domain XML files, none readable (permission denied)"
        ": run as root")
    assert os.listdir(out_dir) == []


def test_snapshot_of_an_unreadable_libvirt_folder_fails(shared_tmp):
    folder = _locked_folder(shared_tmp, names=("a",))
    os.chmod(folder, 0o700)
    out_dir = shared_tmp / "out"
    out_dir.mkdir()
    os.chmod(out_dir, 0o777)
    rc, _, err = unprivileged(["snapshot", str(out_dir / "snap"), "--root", str(SYS2),
                               "--libvirt-dir", str(folder)])
    assert rc == 2 and f"{folder}: permission denied" in one_line(err, "snapshot")
    assert os.listdir(out_dir) == []


@pytest.mark.parametrize("command", ["guests", "audit"])
def test_some_readable_domains_are_shown_and_each_unreadable_one_named(shared_tmp, command):
    """One unreadable domain in a folder no longer hides the others (issue 12): they are
    shown, each unreadable file is one line, and exit 2 says the input was incomplete."""
    folder = _locked_folder(shared_tmp, names=("a", "b"))
    shutil.copy(ARTICLE / "domains" / "vm1.xml", folder / "vm1.xml")
    argv = [command, str(folder)] if command == "guests" else \
        [command, str(ARTICLE / "host"), str(folder), "--fail-on", "never"]
    rc, out, err = unprivileged(argv)
    assert rc == 2 and "vm1" in out
    assert err == (f"numaguard {command}: {folder / 'a.xml'}: permission denied\n"
                   f"numaguard {command}: {folder / 'b.xml'}: permission denied\n"
                   f"numaguard {command}: input incomplete: 2 domain definitions could not "
                   "be read; the output covers the other 1 guest (exit 2)\n")


def test_refused_files_keep_their_own_lines(tmp_path):
    """A FIFO or a dangling link is refused as before (issue 9), each named, never summed up as
    "none readable" (that line is for permission only)."""
    paths = [str(tmp_path / "fifo.xml"), str(tmp_path / "dangling.xml")]
    os.mkfifo(paths[0])
    os.symlink(tmp_path / "gone.xml", paths[1])
    with pytest.raises(InvalidDocument) as exc:
        domains_reader.read_domain_files(paths)
    lines = str(exc.value).splitlines()
    assert lines[0].startswith(f"{paths[0]}: is a FIFO") and "refusing" in lines[0]
    assert lines[1] == f"{paths[1]}: no such file"
    assert domains_reader.read_domain_files([]) == []


def test_the_none_readable_line():
    err = domains_reader.none_readable(["/q/a.xml", "/q/b.xml"])
    assert str(err) == ("/q: 2 domain XML files, none readable (permission denied): "
                        f"{domains_reader.RUN_AS_ROOT}")
    assert str(domains_reader.none_readable(["/q/a.xml"])) == \
        f"/q/a.xml: permission denied: {domains_reader.RUN_AS_ROOT}"
    assert str(domains_reader.none_readable(["/p/a.xml", "/q/b.xml"])).startswith(
        "/p/a.xml, /q/b.xml: 2 domain XML files")


# --- 7: snapshot.json ----------------------------------------------------------------------------

def _live_root(tmp_path: pathlib.Path, pids: dict[str, tuple[int, int | None]]) -> pathlib.Path:
    """A root with sys/ (2 nodes), proc/sys/kernel/{hostname,osrelease} and, per guest,
    run/libvirt/qemu/NAME.pid -> proc/PID/stat with *starttime* (``None``: the pid is gone)."""
    root = tmp_path / "root"
    shutil.copytree(SYS2, root)
    kernel = root / "proc" / "sys" / "kernel"
    kernel.mkdir(parents=True, exist_ok=True)
    (kernel / "hostname").write_text("hv07\n")
    (kernel / "osrelease").write_text("6.1.0-56-amd64\n")
    run_dir = root / "run" / "libvirt" / "qemu"
    run_dir.mkdir(parents=True)
    for name, (pid, starttime) in pids.items():
        (run_dir / f"{name}.pid").write_text(f"{pid}\n")
        if starttime is not None:
            (root / "proc" / str(pid)).mkdir()
            # comm may hold spaces and parentheses: the fields count after the last ')'
            fields = ["S"] + ["0"] * 18 + [str(starttime)] + ["0"] * 30
            (root / "proc" / str(pid) / "stat").write_text(
                f"{pid} (qemu) (x y) {' '.join(fields)}\n")
    return root


def _domains(tmp_path: pathlib.Path, names) -> pathlib.Path:
    folder = tmp_path / "qemu"
    folder.mkdir()
    src = (ARTICLE / "domains" / "vm1.xml").read_text()
    for name in names:
        (folder / f"{name}.xml").write_text(src.replace("<name>vm1</name>",
                                                        f"<name>{name}</name>"))
    return folder


def test_snapshot_records_its_metadata_and_the_start_order(capsys, tmp_path):
    root = _live_root(tmp_path, {"web": (300, 5000), "db": (200, 1200), "old": (400, None),
                                 "app": (500, 9000)})
    folder = _domains(tmp_path, ["app", "db", "web", "old", "idle"])
    rc, out, err = run(capsys, "snapshot", tmp_path / "snap", "--root", root,
                       "--libvirt-dir", folder)
    assert rc == 0, err
    meta = json.loads((tmp_path / "snap" / "snapshot.json").read_text())
    assert list(meta)[:2] == ["schema_version", "numaguard_version"]
    assert meta["schema_version"] == 1 and meta["numaguard_version"] == __version__
    assert meta["hostname"] == "hv07" and meta["kernel_release"] == "6.1.0-56-amd64"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["captured_at"])
    assert meta["domains"] == {"copied": 5, "skipped": []}
    assert meta["start_order"] == ["db", "web", "app"]      # by starttime; old's pid is gone
    assert stat.S_IMODE((tmp_path / "snap" / "snapshot.json").stat().st_mode) == 0o644 & \
        ~_umask()
    assert out.count("\n") == 1
    assert "host hv07, kernel 6.1.0-56-amd64" in out and "running, oldest first: db, web, app" \
        in out
    loaded = read_paths([str(tmp_path / "snap")])
    assert loaded.start_order == ("db", "web", "app")
    meta = read_snapshot_meta(str(tmp_path / "snap"))
    assert meta is not None and meta.hostname == "hv07"
    assert meta.domains_copied == 5


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_no_running_guest_leaves_the_start_order_out(capsys, tmp_path):
    root = _live_root(tmp_path, {"db": (200, None)})
    folder = _domains(tmp_path, ["db"])
    os.symlink("/etc/passwd", folder / "evil.xml")
    rc, out, _ = run(capsys, "snapshot", tmp_path / "snap", "--root", root,
                     "--libvirt-dir", folder)
    assert rc == 0
    meta = json.loads((tmp_path / "snap" / "snapshot.json").read_text())
    assert "start_order" not in meta and "no guest running" in out
    assert meta["domains"] == {"copied": 1, "skipped": [
        {"file": "evil.xml", "reason": "a symbolic link, not followed"}]}
    assert read_paths([str(tmp_path / "snap")]).start_order is None


def test_old_snapshots_without_metadata_still_load():
    assert not (ARTICLE / "snapshot.json").exists()
    loaded = read_paths([str(ARTICLE)])
    assert loaded.start_order is None
    assert read_snapshot_meta(str(ARTICLE)) is None


GOOD = {"schema_version": 1, "numaguard_version": "0.1.0", "hostname": "hv07",
        "captured_at": "2026-12-01T10:31:15Z", "kernel_release": None,
        "domains": {"copied": 1, "skipped": []}, "start_order": ["vm1"]}


@pytest.mark.parametrize("change,field", [
    ("not json", "json"),
    ([1, 2], "json"),
    ({"schema_version": 2}, "schema_version"),
    ({"schema_version": "1"}, "schema_version"),
    ({"schema_version": True}, "schema_version"),
    ({"captured_at": "yesterday"}, "captured_at"),
    ({"hostname": 7}, "hostname"),
    ({"domains": []}, "domains"),
    ({"domains": {"copied": -1, "skipped": []}}, "domains.copied"),
    ({"domains": {"copied": 1, "skipped": [{"file": "a.xml"}]}}, "domains.skipped[0].reason"),
    ({"start_order": "vm1"}, "start_order"),
    ({"start_order": ["vm1", 3]}, "start_order[1]"),
    ({"start_order": ["vm1", "vm1"]}, "start_order[1]"),
    ({"numaguard_version": None}, "numaguard_version"),
])
def test_malformed_metadata_is_bad_input(capsys, tmp_path, change, field):
    snap = tmp_path / "snap"
    shutil.copytree(ARTICLE, snap)
    if isinstance(change, dict):
        text = json.dumps({**GOOD, **change})
    else:
        text = change if isinstance(change, str) else json.dumps(change)
    (snap / "snapshot.json").write_text(text)
    rc, out, err = run(capsys, "audit", snap)
    assert (rc, out) == (2, "")
    line = one_line(err, "audit")
    assert line.startswith(f"numaguard audit: {snap / 'snapshot.json'}:")
    assert f" {field}: " in line


def test_metadata_with_every_field_reads_back(tmp_path):
    snap = tmp_path / "snap"
    shutil.copytree(ARTICLE, snap)
    (snap / "snapshot.json").write_text(json.dumps(
        {**GOOD, "domains": {"copied": 1, "skipped": [{"file": "x.xml", "reason": "r"}]}}))
    meta = read_snapshot_meta(str(snap))
    assert meta is not None
    assert (meta.numaguard_version, meta.hostname, meta.captured_at, meta.kernel_release,
            meta.domains_copied, meta.domains_skipped, meta.start_order) == (
        "0.1.0", "hv07", "2026-12-01T10:31:15Z", None, 1, (("x.xml", "r"),), ("vm1",))


def test_start_order_unknown_when_the_state_folder_is_closed(shared_tmp):
    root = _live_root(shared_tmp, {"db": (200, 100)})
    os.chmod(root / "run" / "libvirt" / "qemu", 0o700)
    folder = _domains(shared_tmp, ["db"])
    os.chmod(folder / "db.xml", 0o644)
    out_dir = shared_tmp / "out"
    out_dir.mkdir()
    os.chmod(out_dir, 0o777)
    for p in [root, *root.rglob("*")]:
        if p != root / "run" / "libvirt" / "qemu" and not p.is_relative_to(
                root / "run" / "libvirt" / "qemu"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    rc, out, err = unprivileged(["snapshot", str(out_dir / "snap"), "--root", str(root),
                                 "--libvirt-dir", str(folder)])
    assert rc == 0, err
    assert "start order unknown" in out and "permission denied" in out
    assert "start_order" not in json.loads((out_dir / "snap" / "snapshot.json").read_text())


def test_stat_parsing_after_the_last_parenthesis(tmp_path):
    (tmp_path / "proc" / "42").mkdir(parents=True)
    fields = " ".join(["R"] + [str(i) for i in range(4, 22)] + ["777"] + ["0"] * 20)
    (tmp_path / "proc" / "42" / "stat").write_text(f"42 (a) b) (c) {fields}\n")
    assert snapshot_writer._starttime(str(tmp_path), 42) == 777
    (tmp_path / "proc" / "42" / "stat").write_text("42 (short) R 1\n")
    assert snapshot_writer._starttime(str(tmp_path), 42) is None
    assert snapshot_writer._starttime(str(tmp_path), 43) is None


# --- 8: versioned JSON ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["topology", "guests"])
def test_json_carries_its_versions_first(capsys, command):
    rc, out, _ = run(capsys, command, ARTICLE, "--format", "json")
    doc = json.loads(out)
    assert rc == 0 and list(doc)[:2] == ["schema_version", "numaguard_version"]
    assert doc["schema_version"] == 1 and doc["numaguard_version"] == __version__


# --- 10: explain for a terminal ------------------------------------------------------------------

MARKUP = re.compile(r"`|\*\*|^\s*[*+] |^#+ ", re.MULTILINE)


@pytest.mark.parametrize("columns", [60, 80, 132])
def test_explain_is_plain_text_at_the_terminal_width(capsys, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    rc, out, _ = run(capsys, "explain", "--all")
    assert rc == 0 and not MARKUP.search(out)
    from numaguard.core.rules import all_rules

    for r in all_rules():
        rc, out, _ = run(capsys, "explain", r.id)
        assert rc == 0 and not MARKUP.search(out), r.id
        long = [line for line in out.splitlines() if len(line) > columns]
        # only an unbreakable word (a long path or command) may stand out
        assert all(" " not in line.strip() or "/" in line for line in long), long


def test_plain_text_renders_markdown_constructs():
    md = ("# Title\n\nSome **bold** and ``code with spaces`` and `x` and *emph* and "
          "[docs](docs/rules.md).\n\n* one item that is long enough to wrap at this width\n"
          "* two\n\n    indented  code   kept\n\n```\nfenced  kept\n```\n")
    text = rules_doc.plain_text(md, width=30)
    assert text.splitlines() == [
        "Title", "",
        "Some bold and code with spaces", "and x and emph and docs", "(docs/rules.md).", "",
        "• one item that is long enough", "  to wrap at this width", "• two", "",
        "indented  code   kept", "", "fenced  kept"]


def test_markdown_format_is_unchanged(capsys):
    from numaguard.core.rules import all_rules

    r = all_rules()[0]
    rc, out, _ = run(capsys, "explain", r.id, "--format", "markdown")
    assert rc == 0 and out == f"# {r.id} {r.name}\n\n{r.doc}\n"


# --- 12: the README ------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _markdown_files() -> list[pathlib.Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
            *sorted((ROOT / "examples").rglob("*.md"))]


@pytest.mark.parametrize("md", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_is_a_file_of_the_repository(md):
    text = md.read_text()
    anchors = {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.*)$", text, re.MULTILINE)}
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue          # an external URL
        path, _, anchor = target.partition("#")
        if not path:
            assert anchor in anchors, f"{md.name}: no heading for #{anchor}"
            continue
        resolved = (md.parent / path).resolve()
        assert resolved.is_relative_to(ROOT), f"{md.name}: {target} leaves the repository"
        assert resolved.exists(), f"{md.name}: {target} does not exist"


def test_readme_says_how_to_get_numaguard_on_path():
    text = (ROOT / "README.md").read_text()
    for command in (". .venv/bin/activate", "pipx install .", 'ln -s "$PWD/.venv/bin/numaguard"',
                    'alias numaguard="$PWD/.venv/bin/numaguard"'):
        assert command in text
    assert "make test` never boots a kernel" in text and "`make oracle`" in text
    # the script the commands above put on PATH
    assert 'numaguard = "numaguard.cli:run"' in (ROOT / "pyproject.toml").read_text()


def test_a_commands_parser_is_the_same_built_alone():
    """main() builds only the running command's arguments (issue 11: start-up); what that
    parser accepts and prints must be what the full parser's sub-command does."""
    full = {a.dest: a for a in cli.build_parser()._subparsers._group_actions}
    choices = full["command"].choices
    for name, sub in choices.items():
        alone = cli.build_parser(name)._subparsers._group_actions[0].choices
        assert set(alone) == set(choices)
        assert alone[name].format_help() == sub.format_help(), name
        others = [n for n in alone if n != name]
        assert all(len(alone[n]._actions) == 1 for n in others)  # only -h


def test_the_help_width_is_shutils():
    import shutil

    assert cli._help_columns() == shutil.get_terminal_size().columns
