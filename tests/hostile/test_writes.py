"""Writes that cannot be redirected, edits that are never lost, no traceback and nothing left
behind on any failure, and the right modes (issue 9).

Every case builds its hostile setting from code: symlinks planted in a sticky shared folder, a
FIFO or a device where the output should go, two `fix --write` runs racing on one file, another
writer changing the file meanwhile, a lock held by someone else, a full or read-only tmpfs
(root only; skipped elsewhere), SIGTERM in the middle of a write.  Each command run in a child
has a timeout, so a write that blocks fails the test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from numaguard import cli
from numaguard.errors import SourceError
from numaguard.readers import sources, sysfs  # noqa: F401  (imported before any fork below)
from numaguard.report import fix as _fix_report  # noqa: F401
from numaguard.writers import xml_patch

ROOT = Path(__file__).resolve().parents[2]
ARTICLE = ROOT / "examples" / "article-host"
SCENARIO = ROOT / "examples" / "scenarios" / "article-vm1-app.toml"
SYS_FIXTURE = ROOT / "tests" / "fixtures" / "sys" / "hugepages"
ORIGINAL_MEMORY = b"<memory nodeset='0'/>"
EDITS = {   # two different edits of vm1's <memory>, and the line each one writes
    "a": (["--mode", "preferred", "--nodeset", "0"], b"<memory mode='preferred' nodeset='0'/>"),
    "b": (["--mode", "interleave", "--nodeset", "0-1"],
          b"<memory mode='interleave' nodeset='0-1'/>"),
}
WROTE = re.compile(r"wrote (\S+)(?: through the link \S+)? \(backup: (\S+)\)\n")
REFUSED = re.compile(r"numaguard fix: \S+: (the file changed since numaguard read it|is locked "
                     r"by another process)")
CHILD_TIMEOUT = 60.0   # a hang guard, not a speed check


def run(capsys, *args) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line(err: str, command: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"numaguard {command}: "), err
    assert "Traceback" not in err
    return lines[0]


def tree(folder: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every entry below *folder*: (mode, bytes or link target); folders by mode only."""
    out: dict[str, tuple[int, bytes | str]] = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode):
            out[str(p.relative_to(folder))] = (st.st_mode, os.readlink(p))
        elif stat.S_ISREG(st.st_mode):
            out[str(p.relative_to(folder))] = (st.st_mode, p.read_bytes())
        else:
            out[str(p.relative_to(folder))] = (st.st_mode, "")
    return out


def no_temp_files(*folders: Path) -> None:
    for folder in folders:
        left = [p for p in folder.rglob("*") if xml_patch.TEMP_SUFFIX in p.name
                or p.name.startswith(".numaguard-snapshot-")]
        assert left == [], left


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def snap(tmp_path: Path) -> Path:
    dst = tmp_path / "article-host"
    shutil.copytree(ARTICLE, dst)
    return dst


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A sticky, world-writable folder such as /tmp or /shared, where anyone plants links."""
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, 0o1777)
    return folder


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A root-only file elsewhere: what a planted link points at."""
    private = tmp_path / "root-only"
    private.mkdir(mode=0o700)
    path = private / "x"
    path.write_bytes(b"root's secret\n")
    os.chmod(path, 0o600)
    return path


@contextlib.contextmanager
def tmpfs(where: Path, size: str, *, readonly: bool = False) -> Iterator[Path]:
    """A small tmpfs mounted on *where* (root only; the test is skipped where it cannot)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8) for a small tmpfs")
    where.mkdir(exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path, leave_pages: int) -> None:
    """Fill the tmpfs *folder* with 4 KiB files, then free *leave_pages* pages."""
    n = 0
    try:
        while True:
            with open(folder / f".filler-{n}", "wb") as fh:
                fh.write(b"x" * 4096)
            n += 1
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / f".filler-{n}")
    for i in range(leave_pages):
        os.unlink(folder / f".filler-{i}")


def cli_process(*args: object, timeout: float = CHILD_TIMEOUT) -> subprocess.CompletedProcess:
    """`python -m numaguard ARGS` as a real process, with a hang guard."""
    return subprocess.run([sys.executable, "-m", "numaguard", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          cwd=ROOT)


# --- symlinks: refused, or followed only when asked ----------------------------------------------

def test_plot_through_a_planted_symlink_is_refused(capsys, shared: Path, secret: Path,
                                                   umask_022: None) -> None:
    pytest.importorskip("matplotlib")
    link = shared / "plot.svg"
    link.symlink_to(secret)
    before = tree(secret.parent), tree(shared)
    rc, out, err = run(capsys, "simulate", SCENARIO, "--plot", link)
    assert rc == 2 and out == ""
    assert one_line(err, "simulate") == f"numaguard simulate: {link}: is a symbolic link; " \
        "nothing written (--follow-symlinks writes to the file it points to)"
    assert (tree(secret.parent), tree(shared)) == before
    # asked for: the file the link points to is written (as a plot: 0644), the link stays
    rc, _, _ = run(capsys, "simulate", SCENARIO, "--plot", link, "--follow-symlinks")
    assert rc == 1   # the scenario OOM-kills a task: exit 1 is its finding, not an error
    assert link.is_symlink() and b"<svg" in secret.read_bytes()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o644
    no_temp_files(shared, secret.parent)


def test_plot_through_a_dangling_symlink_creates_nothing(capsys, shared: Path,
                                                         tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    aimed = tmp_path / "root-only-dir" / "new-file"
    aimed.parent.mkdir()
    link = shared / "plot.svg"
    link.symlink_to(aimed)
    rc, _, err = run(capsys, "simulate", SCENARIO, "--plot", link)
    assert rc == 2 and "is a symbolic link" in one_line(err, "simulate")
    assert list(aimed.parent.iterdir()) == [] and link.is_symlink()
    no_temp_files(shared)


def test_fix_write_on_a_symlinked_domain_is_refused(capsys, snap: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    real = outside / "vm1.xml"
    domains = snap / "domains"
    shutil.move(domains / "vm1.xml", real)
    os.chmod(real, 0o640)
    (domains / "vm1.xml").symlink_to(real)
    original = real.read_bytes()
    before = tree(domains), tree(outside)
    edit, line = EDITS["a"]
    rc, out, err = run(capsys, "fix", domains / "vm1.xml", *edit, "--write")
    assert rc == 2 and out == ""
    assert one_line(err, "fix") == f"numaguard fix: {domains / 'vm1.xml'}: is a symbolic " \
        "link; nothing written (--follow-symlinks writes to the file it points to)"
    assert (tree(domains), tree(outside)) == before
    rc, out, err = run(capsys, "fix", domains / "vm1.xml", *edit, "--write", "--follow-symlinks")
    assert rc == 0, err
    wrote = WROTE.fullmatch(out)
    assert wrote and wrote.group(1) == str(real) and "through the link" in out
    backup = Path(wrote.group(2))
    assert backup.parent == outside and backup.read_bytes() == original
    assert real.read_bytes() == original.replace(ORIGINAL_MEMORY, line)
    assert (domains / "vm1.xml").is_symlink()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640 == stat.S_IMODE(backup.stat().st_mode)
    assert tree(domains) == before[0]
    no_temp_files(domains, outside)


def test_a_symlink_swapped_in_before_the_rename_is_replaced_not_followed(
        shared: Path, secret: Path, monkeypatch) -> None:
    """The check-then-rename race: whatever is at the name when the rename happens is
    replaced; the file a link there points to is never written."""
    target = shared / "plot.png"
    target.write_bytes(b"old plot")
    real_replace = os.replace

    def swap_then_replace(src, dst, **dir_fds):
        os.unlink(target)
        target.symlink_to(secret)      # the attacker wins the race
        real_replace(src, dst, **dir_fds)

    monkeypatch.setattr(xml_patch.os, "replace", swap_then_replace)
    xml_patch.write_atomic(str(target), b"new plot", mode=xml_patch.OUTPUT_MODE)
    assert not target.is_symlink() and target.read_bytes() == b"new plot"
    assert secret.read_bytes() == b"root's secret\n"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_plot_onto_something_not_a_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / "plot.svg"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    else:
        if os.geteuid() != 0:
            pytest.skip("mknod of a device needs root")
        os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))   # like /dev/null
    before = target.lstat()
    done = cli_process("simulate", SCENARIO, "--plot", target)
    assert done.returncode == 2, done.stderr
    line = one_line(done.stderr, "simulate")
    assert line.startswith(f"numaguard simulate: {target}: is a")
    after = target.lstat()
    assert (after.st_ino, after.st_mode, after.st_rdev) == \
        (before.st_ino, before.st_mode, before.st_rdev)
    no_temp_files(tmp_path)


# --- concurrent edits: each lands or is refused, none is lost -------------------------------------

def _child_fix(path: Path, edit: Sequence[str], go: int, result: int) -> None:
    """In a forked child: wait for the start signal, run `fix PATH EDIT --write`, report."""
    status = 70
    try:
        os.read(go, 1)
        out, err = io.StringIO(), io.StringIO()
        sys.stdout, sys.stderr = out, err
        rc = cli.main(["fix", str(path), *edit, "--write"])
        os.write(result, json.dumps([rc, out.getvalue(), err.getvalue()]).encode())
        status = 0
    except BaseException:  # noqa: BLE001 - a forked child must never return into pytest
        status = 71
    finally:
        os._exit(status)


def _race_in_forks(path: Path) -> dict[str, tuple[int, str, str]]:
    """Fork one child per edit; release both at once; (rc, stdout, stderr) of each."""
    go_r, go_w = os.pipe()
    children: dict[str, tuple[int, int]] = {}
    for name, (edit, _) in EDITS.items():
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _child_fix(path, edit, go_r, w)
        os.close(w)
        children[name] = (pid, r)
    os.write(go_w, b"go")
    os.close(go_r)
    os.close(go_w)
    results: dict[str, tuple[int, str, str]] = {}
    deadline = time.monotonic() + CHILD_TIMEOUT
    for name, (pid, r) in children.items():
        data = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(r, 65536) if ready else b""
            if not chunk:
                break
            data += chunk
        os.close(r)
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
        _, raw = os.waitpid(pid, 0)
        assert os.WIFEXITED(raw) and os.WEXITSTATUS(raw) == 0, f"child {name} failed: {raw}"
        rc, out, err = json.loads(data)
        results[name] = (rc, out, err)
    return results


def _race_in_processes(path: Path) -> dict[str, tuple[int, str, str]]:
    procs = {name: subprocess.Popen([sys.executable, "-m", "numaguard", "fix", str(path), *edit,
                                     "--write"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, cwd=ROOT)
             for name, (edit, _) in EDITS.items()}
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=CHILD_TIMEOUT)
        results[name] = (proc.returncode, out, err)
    return results


def _check_no_edit_lost(path: Path, original: bytes,
                        results: dict[str, tuple[int, str, str]]) -> str:
    """Each run either wrote (exit 0, its backup holding what it replaced) or was refused
    (exit 2, one line, nothing written).  The final file is the last writer's edit; when both
    wrote, the second one's backup holds the first one's edit (it read the file after the first
    wrote it: serialised).  Two writers that both replaced the original is the lost edit."""
    winners: dict[str, Path] = {}
    for name, (rc, out, err) in results.items():
        if rc == 0:
            m = WROTE.fullmatch(out)
            assert m and m.group(1) == str(path), (name, out, err)
            winners[name] = Path(m.group(2))
        else:
            assert rc == 2 and out == "", (name, rc, out, err)
            assert REFUSED.match(one_line(err, "fix")), err
    assert winners, results
    backups = sorted(path.parent.glob(f"{path.name}.numaguard-*.bak"))
    assert sorted(winners.values()) == backups
    replaced = {name: b.read_bytes() for name, b in winners.items()}
    wrote = {name: original.replace(ORIGINAL_MEMORY, EDITS[name][1]) for name in winners}
    order = sorted(winners, key=lambda n: replaced[n] != original)   # who replaced the original
    assert replaced[order[0]] == original, "no writer replaced the original"
    if len(order) == 2:
        assert replaced[order[1]] == wrote[order[0]], \
            f"lost edit: both runs replaced the original and exited 0: {results}"
    assert path.read_bytes() == wrote[order[-1]]
    no_temp_files(path.parent)
    return "serialised" if len(order) == 2 else "refused"


def _fresh(snap: Path, original: bytes) -> Path:
    path = snap / "domains" / "vm1.xml"
    for old in path.parent.glob("vm1.xml.numaguard-*.bak"):
        old.unlink()
    path.write_bytes(original)
    return path


def test_concurrent_fix_write_never_loses_an_edit(snap: Path) -> None:
    """50 trials: two forked `fix --write` runs (the whole CLI path: read, plan, re-audit,
    write) with different edits, released at the same moment on one file."""
    original = (snap / "domains" / "vm1.xml").read_bytes()
    outcomes = [_check_no_edit_lost(path, original, _race_in_forks(path))
                for path in (_fresh(snap, original) for _ in range(50))]
    assert len(outcomes) == 50


def test_concurrent_fix_write_as_real_processes(snap: Path) -> None:
    """The same race between two real `python -m numaguard` processes (a few trials: each
    costs an interpreter start-up)."""
    original = (snap / "domains" / "vm1.xml").read_bytes()
    for _ in range(4):
        path = _fresh(snap, original)
        _check_no_edit_lost(path, original, _race_in_processes(path))


def _vm1(tmp_path: Path) -> tuple[Path, bytes, bytes]:
    path = tmp_path / "vm1.xml"
    shutil.copy(ARTICLE / "domains" / "vm1.xml", path)
    old = path.read_bytes()
    return path, old, old.replace(ORIGINAL_MEMORY, EDITS["a"][1])


@pytest.mark.parametrize("how", ["in place", "renamed over"])
def test_an_edit_by_a_writer_that_does_not_lock_is_never_lost(tmp_path: Path, how: str) -> None:
    """Someone else (vim writes in place; libvirt and `sed -i` rename a new file over) changed
    the file after numaguard read it: the check under the lock refuses, nothing is written."""
    path, old, new = _vm1(tmp_path)
    theirs = old.replace(b"<vcpu placement='static' cpuset='0-9'>4</vcpu>",
                         b"<vcpu placement='static' cpuset='0-9'>8</vcpu>")
    if how == "in place":
        with open(path, "r+b") as fh:
            fh.write(theirs)
    else:
        (tmp_path / "vm1.xml.new").write_bytes(theirs)
        os.replace(tmp_path / "vm1.xml.new", path)
    with pytest.raises(SourceError, match="changed since numaguard read it"):
        xml_patch.replace_file(str(path), old, new)
    assert [p.name for p in tmp_path.iterdir()] == ["vm1.xml"]
    assert path.read_bytes() == theirs


def _hold_lock(path: Path, seconds: float, replacement: bytes | None) -> int:
    """A child that flocks *path*, holds it *seconds*, optionally renames a new file with
    *replacement* over it (as a numaguard run would), then exits; its pid, once it holds the
    lock."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 70
        try:
            fd = os.open(path, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(ready_w, b"locked")
            time.sleep(seconds)
            if replacement is not None:
                tmp = path.with_name(".holder-tmp")
                tmp.write_bytes(replacement)
                os.replace(tmp, path)
            status = 0
        finally:
            os._exit(status)
    os.close(ready_w)
    assert os.read(ready_r, 6) == b"locked"
    os.close(ready_r)
    return pid


def _reap(pid: int) -> None:
    _, raw = os.waitpid(pid, 0)
    assert os.WIFEXITED(raw) and os.WEXITSTATUS(raw) == 0


def test_a_lock_held_too_long_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(xml_patch, "LOCK_WAIT_SECONDS", 0.3)
    path, old, new = _vm1(tmp_path)
    pid = _hold_lock(path, 3.0, None)
    try:
        with pytest.raises(SourceError, match=r"is locked by another process \(waited 0.3 s\)"):
            xml_patch.replace_file(str(path), old, new)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert [p.name for p in tmp_path.iterdir()] == ["vm1.xml"] and path.read_bytes() == old


def test_waiting_for_a_lock_holder_that_replaced_the_file_refuses(tmp_path: Path) -> None:
    """The holder renames a new file over the one we wait on: we lock the new one, find it is
    not what we read, and refuse."""
    path, old, new = _vm1(tmp_path)
    theirs = old.replace(ORIGINAL_MEMORY, EDITS["b"][1])
    pid = _hold_lock(path, 0.2, theirs)
    with pytest.raises(SourceError, match="changed since numaguard read it"):
        xml_patch.replace_file(str(path), old, new)
    _reap(pid)
    assert path.read_bytes() == theirs
    assert [p.name for p in tmp_path.iterdir()] == ["vm1.xml"]


def test_waiting_for_a_lock_holder_that_changed_nothing_then_writes(tmp_path: Path) -> None:
    path, old, new = _vm1(tmp_path)
    pid = _hold_lock(path, 0.2, None)
    saved = xml_patch.replace_file(str(path), old, new)
    _reap(pid)
    assert path.read_bytes() == new and Path(saved).read_bytes() == old


# --- failures: one line, exit 2, nothing left behind ---------------------------------------------

@pytest.mark.parametrize("free_pages", [0, 1, 2])
def test_fix_write_on_a_full_disk(capsys, tmp_path: Path, free_pages: int) -> None:
    """0 pages free: the backup fails; 1: the backup is made, then the new file fails and the
    backup is removed again; 2: there is room, the write succeeds."""
    with tmpfs(tmp_path / "small", "64k") as disk:
        path = disk / "vm1.xml"
        shutil.copy(ARTICLE / "domains" / "vm1.xml", path)
        old = path.read_bytes()
        assert len(old) <= 4096
        fill(disk, free_pages)
        edit, line = EDITS["a"]
        rc, out, err = run(capsys, "fix", path, *edit, "--write", "--host", ARTICLE / "host")
        names = sorted(p.name for p in disk.iterdir() if not p.name.startswith(".filler-"))
        if free_pages < 2:
            assert rc == 2 and out == ""
            assert one_line(err, "fix").endswith("No space left on device")
            assert names == ["vm1.xml"] and path.read_bytes() == old
        else:
            assert rc == 0, err
            assert path.read_bytes() == old.replace(ORIGINAL_MEMORY, line) and len(names) == 2
        no_temp_files(disk)


def test_plot_on_a_full_disk(capsys, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    with tmpfs(tmp_path / "small", "64k") as disk:
        fill(disk, 0)
        rc, out, err = run(capsys, "simulate", SCENARIO, "--plot", disk / "plot.svg")
        assert rc == 2 and out == ""
        assert one_line(err, "simulate") == \
            f"numaguard simulate: {disk / 'plot.svg'}: No space left on device"
        assert [p for p in disk.iterdir() if not p.name.startswith(".filler-")] == []


@pytest.mark.parametrize("at", [1, 2, 3, 4])
def test_sigterm_during_a_write_cleans_up(tmp_path: Path, monkeypatch, at: int) -> None:
    """SIGTERM arrives right after the *at*-th fsync (1: the backup's temporary file, 2: the
    folder after linking the backup, 3: the new file, 4: the folder after the rename): the
    process ends with 143 (128 + SIGTERM); before the rename the original is intact and no
    temporary file or backup is left; after it, the new file and its backup stay."""
    path, old, new = _vm1(tmp_path)
    real_fsync = os.fsync
    calls = []

    def fsync_then_term(fd: int) -> None:
        real_fsync(fd)
        calls.append(fd)
        if len(calls) == at:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(xml_patch.os, "fsync", fsync_then_term)
    with pytest.raises(SystemExit) as exc:
        xml_patch.replace_file(str(path), old, new)
    assert exc.value.code == 128 + signal.SIGTERM
    names = sorted(p.name for p in tmp_path.iterdir())
    if at < 4:
        assert names == ["vm1.xml"] and path.read_bytes() == old
    else:
        assert len(names) == 2 and path.read_bytes() == new
        assert (tmp_path / names[1]).read_bytes() == old and names[1].endswith(".bak")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL   # the handler is put back


# --- modes ----------------------------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_fix_write_keeps_mode_and_owner(capsys, snap: Path) -> None:
    path = snap / "domains" / "vm1.xml"
    os.chown(path, 1234, 2345)
    os.chmod(path, 0o640)
    edit, _ = EDITS["a"]
    rc, out, err = run(capsys, "fix", path, *edit, "--write")
    assert rc == 0, err
    backup = Path(WROTE.fullmatch(out).group(2))
    for p in (path, backup):
        st = p.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 1234, 2345), p


@pytest.mark.parametrize("umask, existing, expected", [
    (0o022, None, 0o644),
    (0o077, None, 0o600),
    (0o022, 0o600, 0o644),   # a plot is output: an old file's mode is not carried over
    (0o002, 0o755, 0o644),
])
def test_plot_mode_is_0644_minus_the_umask(tmp_path: Path, umask: int, existing: int | None,
                                           expected: int) -> None:
    target = tmp_path / "plot.png"
    if existing is not None:
        target.write_bytes(b"old")
        os.chmod(target, existing)
    old = os.umask(umask)
    try:
        xml_patch.write_atomic(str(target), b"png", mode=xml_patch.OUTPUT_MODE)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == expected and target.read_bytes() == b"png"


def test_saved_libvirt_xml_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        first = xml_patch.save_new(str(tmp_path), "vm1.numaguard-x", ".xml", b"<domain/>")
        second = xml_patch.save_new(str(tmp_path), "vm1.numaguard-x", ".xml", b"<domain/>")
    finally:
        os.umask(old)
    assert Path(first).name == "vm1.numaguard-x.xml"
    assert Path(second).name == "vm1.numaguard-x-1.xml"
    assert stat.S_IMODE(os.stat(first).st_mode) == 0o600 == stat.S_IMODE(os.stat(second).st_mode)


# --- snapshot -------------------------------------------------------------------------------------

def test_snapshot_modes(capsys, tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "snap"
    rc, _, err = run(capsys, "snapshot", target, "--root", SYS_FIXTURE,
                     "--libvirt-dir", ARTICLE / "domains")
    assert rc == 0, err
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert stat.S_IMODE((target / "domains").stat().st_mode) == 0o700
    xmls = list((target / "domains").iterdir())
    assert len(xmls) == 4 and {stat.S_IMODE(p.stat().st_mode) for p in xmls} == {0o600}
    host = [p for p in (target / "host").rglob("*") if p.is_file()]
    assert host and {stat.S_IMODE(p.stat().st_mode) for p in host} == {0o644}


def test_snapshot_never_follows_links_in_the_libvirt_folder(tmp_path: Path,
                                                            secret: Path) -> None:
    libvirt = tmp_path / "qemu"
    libvirt.mkdir()
    shutil.copy(ARTICLE / "domains" / "vm1.xml", libvirt / "vm1.xml")
    (libvirt / "evil.xml").symlink_to(secret)
    (libvirt / "gone.xml").symlink_to(tmp_path / "nowhere.xml")
    os.mkfifo(libvirt / "fifo.xml")
    (libvirt / "folder.xml").mkdir()
    (libvirt / "bidi\u202e.xml").symlink_to(secret)
    target = tmp_path / "snap"
    done = cli_process("snapshot", target, "--root", SYS_FIXTURE, "--libvirt-dir", libvirt)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1
    assert "1 domain XML(s)" in done.stdout
    for note in ("evil.xml: a symbolic link, not followed",
                 "gone.xml: a symbolic link, not followed",
                 "fifo.xml: not a regular file", "folder.xml: not a regular file",
                 "bidi\\u202e.xml: a symbolic link"):
        assert note in done.stdout, done.stdout
    assert "\u202e" not in done.stdout
    assert [p.name for p in (target / "domains").iterdir()] == ["vm1.xml"]
    assert all(b"root's secret" not in p.read_bytes()
               for p in target.rglob("*") if p.is_file())


def _entries(parent: Path) -> list[str]:
    """The names in *parent*, but /proc's PID folders (any process on the machine may come or
    go meanwhile)."""
    return sorted(n for n in os.listdir(parent) if not (str(parent) == "/proc" and n.isdigit()))


def _snapshot_fails(capsys, directory: Path | str, parent: Path) -> str:
    before = _entries(parent)
    rc, out, err = run(capsys, "snapshot", directory, "--root", SYS_FIXTURE,
                       "--libvirt-dir", ARTICLE / "domains")
    assert rc == 2 and out == ""
    line = one_line(err, "snapshot")
    assert _entries(parent) == before   # nothing left
    return line


@pytest.mark.parametrize("where", ["/proc/numaguard-snap", "/sys/numaguard-snap",
                                   "/sys/devices/numaguard-snap"])
def test_snapshot_into_a_pseudo_file_system(capsys, where: str) -> None:
    line = _snapshot_fails(capsys, where, Path(where).parent)
    assert line.startswith(f"numaguard snapshot: {where}: cannot create the snapshot in ")


def test_snapshot_onto_a_dangling_symlink(capsys, tmp_path: Path) -> None:
    (tmp_path / "snap").symlink_to(tmp_path / "nowhere")
    line = _snapshot_fails(capsys, tmp_path / "snap", tmp_path)
    assert line == f"numaguard snapshot: {tmp_path / 'snap'}: already exists (a symbolic " \
        "link); choose a new folder for the snapshot"
    assert not (tmp_path / "nowhere").exists()


def test_snapshot_into_a_read_only_parent(capsys, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "64k", readonly=True) as parent:
        line = _snapshot_fails(capsys, parent / "snap", parent)
        assert line == f"numaguard snapshot: {parent / 'snap'}: cannot create the snapshot " \
            f"in {parent}: Read-only file system"


def test_snapshot_on_a_full_disk(capsys, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "16k") as parent:
        line = _snapshot_fails(capsys, parent / "snap", parent)
        assert line == f"numaguard snapshot: {parent / 'snap'}: cannot write the snapshot: " \
            "No space left on device"
        assert list(parent.iterdir()) == []

