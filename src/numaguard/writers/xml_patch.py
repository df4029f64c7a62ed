"""Edited domain XML out: a unified diff, and a file replaced atomically with a backup kept.

The write path never leaves a half-written file or a stray temporary file behind:

* :func:`backup` copies the file to ``PATH.numaguard-YYYYmmddTHHMMSS.bak`` (a counter is added
  when that name exists; an existing file is never overwritten), written to a temporary file,
  flushed, fsynced and linked into place;
* :func:`write_atomic` writes a temporary file in the same directory, flushes and fsyncs it and
  renames it over the target with ``os.replace`` (atomic on POSIX), keeping the target's
  permission bits (and its owner, when running as root);
* :func:`replace_file` refuses when the file changed since it was read, takes the backup, then
  replaces the file; on any exception the original stays intact, the temporary file is removed,
  and so is the backup (it would only duplicate the intact original).

OS errors come out as :class:`SourceError`/:class:`PermissionDenied` naming the path.
"""

from __future__ import annotations

import difflib
import errno
import os
import stat
import tempfile
from datetime import datetime

from numaguard.errors import PermissionDenied, SourceError
from numaguard.readers.files import read_bytes

TEMP_SUFFIX = ".numaguard-tmp"
STAMP_FORMAT = "%Y%m%dT%H%M%S"


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


def _os_error(path: str, exc: OSError) -> SourceError:
    if isinstance(exc, PermissionError):
        return PermissionDenied(path)
    return SourceError(path, exc.strerror or str(exc))


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the rename itself is done
    finally:
        os.close(fd)


def _temp_copy(directory: str, base: str, data: bytes, like: os.stat_result | None) -> str:
    """A fsynced temporary file holding *data* in *directory*, with *like*'s mode/owner."""
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=TEMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if like is not None:
            os.chmod(tmp, stat.S_IMODE(like.st_mode))
            if hasattr(os, "geteuid") and os.geteuid() == 0 and \
                    (like.st_uid, like.st_gid) != (0, 0):
                os.chown(tmp, like.st_uid, like.st_gid)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def write_atomic(path: str, data: bytes) -> None:
    """Replace *path* with *data* atomically (temp file in the same directory, fsync,
    ``os.replace``).  A symlink is followed: its target is replaced, the link kept."""
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    try:
        like = os.stat(target)
    except FileNotFoundError:
        like = None
    except OSError as exc:
        raise _os_error(path, exc) from None
    try:
        tmp = _temp_copy(directory, os.path.basename(target), data, like)
    except OSError as exc:
        raise _os_error(path, exc) from None
    try:
        os.replace(tmp, target)
    except BaseException as exc:
        _unlink_quietly(tmp)
        if isinstance(exc, OSError):
            raise _os_error(path, exc) from None
        raise
    _fsync_dir(directory)


def save_new(directory: str, stem: str, suffix: str, data: bytes, *,
             like: os.stat_result | None = None) -> str:
    """Write *data* to ``directory/stem+suffix`` (or ``stem-1+suffix``, ``stem-2``… when the
    name is taken) atomically and without ever overwriting a file; return the path."""
    try:
        tmp = _temp_copy(directory, stem, data, like)
    except OSError as exc:
        raise _os_error(os.path.join(directory, stem + suffix), exc) from None
    try:
        for n in range(1000):
            name = os.path.join(directory, f"{stem}{'' if n == 0 else f'-{n}'}{suffix}")
            try:
                os.link(tmp, name)          # fails if the name exists: never overwrites
            except FileExistsError:
                continue
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP,
                                     errno.EMLINK, errno.EXDEV):
                    raise _os_error(name, exc) from None
                # No hard links here (e.g. vfat): create exclusively, then fill.
                try:
                    _exclusive_copy(name, data, like)
                except FileExistsError:
                    continue
                except OSError as exc2:
                    raise _os_error(name, exc2) from None
            _fsync_dir(directory)
            return name
        raise SourceError(os.path.join(directory, stem + suffix),
                          "too many backups with this name")
    finally:
        _unlink_quietly(tmp)


def _exclusive_copy(name: str, data: bytes, like: os.stat_result | None) -> None:
    mode = stat.S_IMODE(like.st_mode) if like is not None else 0o600
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        _unlink_quietly(name)
        raise


def stamp(now: datetime | None = None) -> str:
    return (now or datetime.now()).strftime(STAMP_FORMAT)


def backup(path: str, *, data: bytes | None = None, now: datetime | None = None) -> str:
    """Copy *path* (or the given *data*, its content) to ``PATH.numaguard-YYYYmmddTHHMMSS.bak``
    beside it; return the backup's path."""
    target = os.path.realpath(path)
    if data is None:
        data = read_bytes(path)
    try:
        like = os.stat(target)
    except OSError as exc:
        raise _os_error(path, exc) from None
    return save_new(os.path.dirname(target), f"{os.path.basename(path)}.numaguard-{stamp(now)}",
                    ".bak", data, like=like)


def replace_file(path: str, old: bytes, new: bytes, *, now: datetime | None = None) -> str:
    """Replace *path*, which must still hold *old*, by *new*; keep a backup first and return
    its path.  On any failure before the rename the backup is removed again and the original
    is untouched."""
    current = read_bytes(path)
    if current != old:
        raise SourceError(path, "the file changed since numaguard read it; nothing written "
                          "(run the command again)")
    saved = backup(path, data=current, now=now)
    try:
        write_atomic(path, new)
    except BaseException:
        try:
            untouched = read_bytes(path) == current
        except SourceError:
            untouched = False
        if untouched:   # the rename did not happen: the backup only duplicates the original
            _unlink_quietly(saved)
        raise
    return saved
