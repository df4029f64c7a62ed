"""Edited domain XML out: a unified diff, and files written so that nobody can redirect them.

numaguard runs as root over folders other people can write to (a sticky ``/shared``, support
bundles, snapshots), so every write here follows the same rules:

* **the directory is pinned**: the folder of the path *as given* is opened once
  (``O_DIRECTORY``) and every later step — the temporary file, the backup, the checks, the
  rename, the ``fsync`` — is relative to that descriptor, so a folder swapped meanwhile cannot
  move the write elsewhere;
* **nothing is followed**: the temporary file is created ``O_CREAT|O_EXCL|O_NOFOLLOW`` with a
  random name (an existing name or a planted symlink fails instead of being written through;
  open(2): "if pathname is a symbolic link, O_EXCL fails with EEXIST"), and the target is
  replaced with ``rename(2)``, which replaces the *name* and never follows a symlink there.  A
  target that is a symbolic link is refused unless the caller passes ``follow_symlinks=True``
  (``--follow-symlinks``): then the link is resolved once and the file it points to is the
  target — its folder gets the temporary file and the backup, the link itself is kept.  A
  target that is not a regular file (a FIFO, a device, a folder) is always refused;
* **nothing is left behind**: on every error, ``KeyboardInterrupt``, and ``SIGTERM``/``SIGHUP``
  (turned into :class:`SystemExit` while a write is under way, see :func:`signals_unwind`), the
  temporary file is removed, and so is a backup that would only duplicate the intact original.
  ``SIGKILL`` can leave a hidden ``.NAME.XXXXXXXX.numaguard-tmp`` (never a partial target);
* **modes**: :func:`replace_file` keeps the target's permission bits exactly (and its owner
  when running as root); so does its backup, which holds the same (possibly secret) bytes.
  :func:`write_atomic` gives the file the *mode* asked for, minus the umask, owned by the caller
  — for a plot or a report that is ``0644``: it is output, not a configuration file, so an
  existing file's mode is not carried over.  :func:`save_new` files are exactly *mode*
  (``0600`` by default: saved libvirt XML holds ``<graphics passwd=…>``);
* **edits are serialised**: :func:`replace_file` takes ``flock(LOCK_EX)`` on the target, then,
  under the lock, checks that the path still names the locked file and that its bytes are still
  the ones the edit was planned on; only then it backs up, writes and renames.  A second
  numaguard waits (at most :data:`LOCK_WAIT_SECONDS`, then refuses), finds the file changed and
  refuses: of two concurrent edits one lands and the other is refused, none is lost.

What the lock does not cover: libvirt does not lock domain XML (``virXMLSaveFile`` in
src/util/virxml.c calls ``virFileRewrite`` in src/util/virfile.c: write ``PATH.new``, fsync,
rename), nor does vim (it writes in place or renames, with no ``flock``).  Their edits made
before numaguard takes the lock are caught by the content check; one landing in the
microseconds between that check and the rename cannot be detected by any advisory scheme.
``flock`` locks are per open file description (flock(2)), so a lock is not dropped when some
other descriptor of the same file is closed, as POSIX ``fcntl`` locks would be.

Every failure comes out as :class:`SourceError`/:class:`PermissionDenied` naming the path.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import fcntl
import os
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from numaguard.errors import PermissionDenied, SourceError
from numaguard.readers.files import MAX_BYTES, file_kind, read_fd
from numaguard.signals import signals_unwind

TEMP_SUFFIX = ".numaguard-tmp"
STAMP_FORMAT = "%Y%m%dT%H%M%S"
#: A plot or report: rw-r--r-- before the umask.
OUTPUT_MODE = 0o644
#: A copy of a domain definition (libvirt keeps them 0600: virXMLSaveFile, S_IRUSR|S_IWUSR).
SECRET_MODE = 0o600
#: How long :func:`replace_file` waits for another process's lock on the target.
LOCK_WAIT_SECONDS = 5.0
_LOCK_POLL_SECONDS = 0.01

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: A new file, exclusively: never an existing name, never through a symlink (open(2)).
CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
_OPEN_TARGET = os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | _NOFOLLOW | _CLOEXEC   # | access
_SYMLINK_HINT = "is a symbolic link; nothing written (--follow-symlinks writes to the file it " \
                "points to)"


def unified_diff(old: bytes, new: bytes, path: str, *, context: int = 3) -> str:
    """``diff -u``-style text of *old* → *new*, both headers naming *path* (``patch -p0``
    applies it to that file).  Empty when nothing changed."""
    a = old.decode("utf-8", errors="replace").splitlines(keepends=True)
    b = new.decode("utf-8", errors="replace").splitlines(keepends=True)
    out: list[str] = []
    for line in difflib.unified_diff(a, b, fromfile=path, tofile=path, n=context):
        if line.endswith("\n"):
            out.append(line)
        else:  # the file's last line has no newline: say so, as diff does
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)


def os_error(path: str, exc: OSError) -> SourceError:
    """*exc* as one line naming *path*."""
    if isinstance(exc, PermissionError):
        return PermissionDenied(path)
    if exc.errno == errno.ELOOP:
        return SourceError(path, _SYMLINK_HINT)
    return SourceError(path, exc.strerror or str(exc))


def _not_writable(path: str, mode: int, link_hint: str = _SYMLINK_HINT) -> SourceError:
    if stat.S_ISLNK(mode):
        return SourceError(path, link_hint)
    return SourceError(path, f"is {file_kind(mode)}, not a regular file; nothing written")


# --- the pinned directory -----------------------------------------------------------------------

def _fsync_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory; the
        os.fsync(fd)                    # rename itself is done


def _unlink_at(name: str, dir_fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


@dataclass
class _Folder:
    """An open directory and one name in it: every operation is relative to ``fd``."""

    fd: int
    directory: str   # as the user will see it in messages and returned paths
    name: str
    shown: str       # the target's path for messages

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name) if self.directory else name

    def lstat(self) -> os.stat_result | None:
        try:
            return os.stat(self.name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise os_error(self.shown, exc) from None

    def same_file(self, st: os.stat_result) -> bool:
        """Whether the name still names the file *st* describes (no error: ``False``)."""
        try:
            now = os.stat(self.name, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            return False
        return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)

    def temp(self, data: bytes, mode: int, *, exact: bool = False,
             owner: tuple[int, int] | None = None) -> str:
        """A new, fsynced, hidden file beside the target holding *data*; its name.  *mode* is
        masked by the umask unless *exact*; *owner* is set when running as root."""
        base = f".{self.name[:180]}."
        for _ in range(100):
            tmp = f"{base}{secrets.token_hex(4)}{TEMP_SUFFIX}"
            try:
                fd = os.open(tmp, CREATE_NEW, SECRET_MODE if exact else mode, dir_fd=self.fd)
            except FileExistsError:
                continue
            except OSError as exc:
                raise os_error(self.shown, exc) from None
            break
        else:  # pragma: no cover - 100 random names taken
            raise SourceError(self.shown, "cannot create a temporary file beside it")
        try:
            try:
                write_all(fd, data)
                if owner is not None and os.geteuid() == 0 and \
                        owner != (os.geteuid(), os.getegid()):
                    os.fchown(fd, *owner)       # before fchmod: chown clears set-id bits
                if exact:
                    os.fchmod(fd, mode)
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException as exc:
            _unlink_at(tmp, self.fd)
            if isinstance(exc, OSError):
                raise os_error(self.shown, exc) from None
            raise
        return tmp

    def replace(self, tmp: str) -> None:
        """Rename *tmp* over the target (the name: a symlink there is replaced, not
        followed), then fsync the folder.  On failure *tmp* is removed."""
        try:
            os.replace(tmp, self.name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException as exc:
            _unlink_at(tmp, self.fd)
            if isinstance(exc, OSError):
                raise os_error(self.shown, exc) from None
            raise
        _fsync_quietly(self.fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of *data* to *fd* (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@contextlib.contextmanager
def _folder_of(path: str, *, follow_symlinks: bool) -> Iterator[_Folder]:
    """The folder of *path* as given (or, with *follow_symlinks*, of the file a symlink at
    *path* points to), opened and pinned for the duration of one write."""
    if "\0" in path:
        raise SourceError(repr(path), "invalid path")
    real = os.path.realpath(path) if follow_symlinks else path
    directory, name = os.path.split(real)
    if name in ("", ".", ".."):
        raise SourceError(path, "is a directory, expected a file name")
    try:
        fd = os.open(directory or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
            raise SourceError(path, f"no such directory: {directory}") from None
        raise os_error(path, exc) from None
    try:
        yield _Folder(fd, directory, name, path)
    finally:
        os.close(fd)


# --- writes -------------------------------------------------------------------------------------

#: what a command without ``--follow-symlinks`` says of a symlink it will not write through
NO_FOLLOW_HINT = ("is a symbolic link; nothing written (give the path of the file itself: it is "
                  "replaced by a rename)")


def refuse_link(path: str) -> None:
    """Before a long run whose output goes to *path*: a symlink there is one line now, not
    after the run (:func:`write_atomic` checks again in the pinned folder, for a link planted
    meanwhile)."""
    if os.path.islink(path):
        raise SourceError(path, NO_FOLLOW_HINT)


def write_atomic(path: str, data: bytes, *, mode: int, follow_symlinks: bool = False,
                 link_hint: str = _SYMLINK_HINT) -> None:
    """Create or replace *path* with *data* atomically: a temporary file beside *path* as
    given, fsync, ``rename``.  The file gets *mode* minus the umask and the caller's owner,
    also when it replaces an existing file (for output such as a plot: use
    :data:`OUTPUT_MODE`).  A symlink at *path* is refused, or with *follow_symlinks* the file
    it points to is written (the link is kept); anything but a regular file is refused.
    *link_hint*: the refusal's words for a command that has no ``--follow-symlinks``
    (:data:`NO_FOLLOW_HINT`)."""
    with signals_unwind(), _folder_of(path, follow_symlinks=follow_symlinks) as where:
        existing = where.lstat()
        if existing is not None and not stat.S_ISREG(existing.st_mode):
            raise _not_writable(path, existing.st_mode, link_hint)
        where.replace(where.temp(data, mode))


def _link_new(where: _Folder, tmp: str, stem: str, suffix: str, data: bytes, mode: int,
              owner: tuple[int, int] | None) -> str:
    """Give the file *tmp* a new name ``stem+suffix`` (``stem-1+suffix``… when taken) in
    *where*, never replacing anything; return the name."""
    for n in range(1000):
        name = f"{stem}{'' if n == 0 else f'-{n}'}{suffix}"
        try:
            os.link(tmp, name, src_dir_fd=where.fd, dst_dir_fd=where.fd, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP,
                                 errno.EMLINK, errno.EXDEV):
                raise os_error(where.path(name), exc) from None
            # No hard links here (e.g. vfat): create exclusively, then fill.
            try:
                _exclusive_copy(where, name, data, mode, owner)
            except FileExistsError:
                continue
            except OSError as exc2:
                raise os_error(where.path(name), exc2) from None
        return name
    raise SourceError(where.path(stem + suffix), "too many files with this name")


def _exclusive_copy(where: _Folder, name: str, data: bytes, mode: int,
                    owner: tuple[int, int] | None) -> None:
    fd = os.open(name, CREATE_NEW, SECRET_MODE, dir_fd=where.fd)
    try:
        try:
            write_all(fd, data)
            if owner is not None and os.geteuid() == 0:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _unlink_at(name, where.fd)
        raise


def _save_in(where: _Folder, stem: str, suffix: str, data: bytes, mode: int,
             owner: tuple[int, int] | None) -> str:
    tmp = where.temp(data, mode, exact=True, owner=owner)
    try:
        name = _link_new(where, tmp, stem, suffix, data, mode, owner)
        try:
            _fsync_quietly(where.fd)
        except BaseException:   # SIGTERM, ^C: the caller never learns the name
            _unlink_at(name, where.fd)
            raise
        return name
    finally:
        _unlink_at(tmp, where.fd)


def save_new(directory: str, stem: str, suffix: str, data: bytes, *,
             mode: int = SECRET_MODE) -> str:
    """Write *data* to ``directory/stem+suffix`` (or ``stem-1+suffix``, ``stem-2``… when the
    name is taken) atomically and without ever overwriting or following anything; the file is
    exactly *mode* (default 0600).  Return its path."""
    with signals_unwind(), _folder_of(os.path.join(directory, stem + suffix),
                                      follow_symlinks=False) as where:
        return where.path(_save_in(where, stem, suffix, data, mode, None))


def stamp(now: datetime | None = None) -> str:
    return (now or datetime.now()).strftime(STAMP_FORMAT)


def _flock(fd: int, shown: str, deadline: float, wait: float) -> bool:
    """``flock(LOCK_EX)`` on *fd*, polling until *deadline*; ``False`` when the descriptor
    must be open for writing (NFS emulates flock with a whole-file fcntl lock, and an
    exclusive fcntl lock needs a writable descriptor: flock(2), fcntl(2))."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise SourceError(shown, f"is locked by another process (waited {wait:g} s); "
                                  "nothing written") from None
            time.sleep(_LOCK_POLL_SECONDS)
        except OSError as exc:
            if exc.errno == errno.EBADF:
                return False
            raise SourceError(shown, f"cannot lock it ({exc.strerror}); nothing "
                              "written") from None


def _lock(where: _Folder, wait: float) -> tuple[int, os.stat_result]:
    """Open the target without following a symlink or blocking (``O_NOFOLLOW|O_NONBLOCK``),
    check it is a regular file, ``flock(LOCK_EX)`` it (waiting at most *wait* seconds) and
    check the path still names the locked file: a process that held the lock may have renamed
    a new file over it, which is then opened and locked in turn.  Returns (fd, fstat)."""
    deadline = time.monotonic() + wait
    access = os.O_RDONLY
    while True:
        try:
            fd = os.open(where.name, _OPEN_TARGET | access, dir_fd=where.fd)
        except FileNotFoundError:
            raise SourceError(where.shown, "was removed since numaguard read it; nothing "
                              "written") from None
        except OSError as exc:
            raise os_error(where.shown, exc) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _not_writable(where.shown, st.st_mode)
            if not _flock(fd, where.shown, deadline, wait):
                if access == os.O_RDWR:
                    raise SourceError(where.shown, "cannot lock it; nothing written")
                access = os.O_RDWR
            elif where.same_file(st):
                return fd, st
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        if time.monotonic() >= deadline:
            raise SourceError(where.shown, "keeps being replaced by another process; nothing "
                              "written")


def replace_file(path: str, old: bytes, new: bytes, *, now: datetime | None = None,
                 follow_symlinks: bool = False) -> str:
    """Replace *path*, which must still hold *old*, by *new*; keep a backup
    ``NAME.numaguard-YYYYmmddTHHMMSS.bak`` beside it first and return the backup's path.

    Under ``flock(LOCK_EX)`` on the target (see the module docstring): refused when the file
    changed since it was read (its bytes differ from *old*, or another file was renamed over
    it), when another process holds the lock for more than :data:`LOCK_WAIT_SECONDS`, or when
    *path* is a symlink (unless *follow_symlinks*: then the file it points to is replaced and
    its backup is written beside *that* file; the link stays).  The new file and the backup
    keep the target's mode (and owner, as root).  On any failure before the rename the backup
    is removed again and the original is untouched."""
    with signals_unwind(), _folder_of(path, follow_symlinks=follow_symlinks) as where:
        fd, st = _lock(where, LOCK_WAIT_SECONDS)
        try:
            try:
                current = read_fd(fd, min(len(old), MAX_BYTES))
            except OSError as exc:
                raise os_error(path, exc) from None
            if current != old:
                raise SourceError(path, "the file changed since numaguard read it; nothing "
                                  "written (run the command again)")
            mode, owner = stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
            saved = _save_in(where, f"{where.name}.numaguard-{stamp(now)}", ".bak", current,
                             mode, owner)
            try:
                where.replace(where.temp(new, mode, exact=True, owner=owner))
            except BaseException:
                if where.same_file(st):
                    _unlink_at(saved, where.fd)   # not renamed: the backup only duplicates it
                raise
        finally:
            os.close(fd)   # releases the lock
        return where.path(saved)
