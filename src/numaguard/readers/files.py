"""Reading files safely, with errors that name them.

Every reader goes through :func:`read_bytes`/:func:`read_text`, so a missing file, a directory
where a file was expected, or a permission problem always comes out as one line naming the path
(:class:`SourceError` / :class:`PermissionDenied`), never as a traceback, and is never swallowed.

numaguard runs as root over folders other people can write to (snapshots, support bundles,
``/etc/libvirt/qemu``), so a read must never block, spin or have side effects:

* only **regular files** are read.  The path is ``stat``-ed first, so a FIFO, a socket or a device
  (``/dev/zero``, a tape that rewinds on open) is refused without being opened; it is then
  opened with ``O_NONBLOCK`` (a FIFO swapped in after the ``stat`` does not block the open) and
  ``fstat``-ed: the file read is the regular file that was checked.  sysfs attributes and procfs
  files are regular files (their size reads as 0 or 4096; the content is read to its end);
* reads are **size-capped** (:data:`MAX_BYTES`) and done in modest chunks;
* symbolic links are followed for reading (``/etc/libvirt/qemu`` and sysfs have legitimate
  ones); writers never follow them unless asked (:mod:`numaguard.writers.xml_patch`).
"""

from __future__ import annotations

import os
import stat

from numaguard.errors import PermissionDenied, SourceError

#: Refuse absurdly large inputs (a domain XML is a few KiB; a sysfs file a few hundred bytes).
MAX_BYTES = 16 * 1024 * 1024
_CHUNK = 64 * 1024
_OPEN_FLAGS = (os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
               | getattr(os, "O_CLOEXEC", 0))
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages: ``a FIFO``, ``a character device`` …"""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def _os_error(path: str, exc: OSError) -> SourceError:
    if isinstance(exc, FileNotFoundError):
        return SourceError(path, "no such file")
    if isinstance(exc, PermissionError):
        return PermissionDenied(path)
    if isinstance(exc, NotADirectoryError):
        return SourceError(path, "no such file (a part of the path is not a directory)")
    return SourceError(path, exc.strerror or str(exc))


def _not_regular(path: str, mode: int) -> SourceError:
    if stat.S_ISDIR(mode):
        return SourceError(path, "is a directory, expected a file")
    return SourceError(path, f"is {file_kind(mode)}, not a regular file; refusing to read it")


def read_bytes(path: str, *, limit: int = MAX_BYTES) -> bytes:
    """The content of the regular file *path*, at most *limit* bytes (else an error)."""
    try:
        before = os.stat(path)
    except OSError as exc:
        raise _os_error(path, exc) from None
    except ValueError:  # an embedded NUL in the path
        raise SourceError(repr(path), "invalid path") from None
    if not stat.S_ISREG(before.st_mode):
        raise _not_regular(path, before.st_mode)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise _os_error(path, exc) from None
    data = _read_regular(path, fd, limit)
    if isinstance(data, int):
        raise _not_regular(path, data)
    return data


def read_listed_bytes(path: str, *, limit: int = MAX_BYTES) -> bytes:
    """:func:`read_bytes` of a file that a directory listing (``os.scandir``) just showed to be a
    regular file and not a symbolic link, without the ``stat`` before the open.

    The open adds ``O_NOFOLLOW``, so a link put in the file's place since the listing is not
    followed, and the ``fstat`` after it refuses anything but a regular file before a byte is
    read.  A FIFO swapped in meanwhile is opened (without blocking: ``O_NONBLOCK``) and closed
    unread, as :func:`read_bytes` would in the same race between its ``stat`` and its open.
    On any surprise (the open fails, the file is no longer regular) it is :func:`read_bytes`
    that reads or refuses the path, so every message is the same as there."""
    try:
        fd = os.open(path, _OPEN_FLAGS | _O_NOFOLLOW)
    except (OSError, ValueError):
        return read_bytes(path, limit=limit)
    data = _read_regular(path, fd, limit)
    return read_bytes(path, limit=limit) if isinstance(data, int) else data


def _read_regular(path: str, fd: int, limit: int) -> bytes | int:
    """The content of the file just opened as *fd* (closed here) if ``fstat`` finds it a regular
    file, else its ``st_mode``; more than *limit* bytes is an error."""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return st.st_mode
        data = _read_from(fd, limit, size=st.st_size)
    except OSError as exc:
        raise _os_error(path, exc) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise SourceError(path, f"larger than {limit // (1024 * 1024)} MiB; refusing to read it")
    return data


def read_fd(fd: int, limit: int = MAX_BYTES) -> bytes:
    """The content of the open file *fd* from its start, but at most ``limit + 1`` bytes (so a
    caller tells a file over the limit by its length).  Read in modest chunks: procfs sysctl
    handlers allocate a buffer of the size asked for, and fail with ENOMEM on a huge read (seen
    on /proc/sys/kernel/numa_balancing)."""
    os.lseek(fd, 0, os.SEEK_SET)
    return _read_from(fd, limit)


def _read_from(fd: int, limit: int, *, size: int | None = None) -> bytes:
    """:func:`read_fd` from the current offset.  *size*: the file's ``st_size`` when it was
    opened; a first read that returns exactly that many bytes, fewer than asked for, has read
    it all (a domain XML then costs one read, not two).  sysfs and procfs files report a size
    (0 or 4096) that is not their length, so for them the loop reads on to the end."""
    chunks: list[bytes] = []
    got = 0
    while got <= limit:
        want = min(_CHUNK, limit + 1 - got)
        chunk = os.read(fd, want)
        if not chunk:
            break
        if not chunks and len(chunk) == size and size < want:
            return chunk
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def decode_utf8(data: bytes, path: str) -> str:
    """*data* as UTF-8 text; an error names the byte and line of the first bad sequence."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SourceError(path, f"line {line}: not UTF-8 text (byte {exc.start})") from None


def read_text(path: str, *, limit: int = MAX_BYTES) -> str:
    return decode_utf8(read_bytes(path, limit=limit), path)


def read_optional_text(path: str) -> str | None:
    """The file's text, or ``None`` when it does not exist (optional sysfs/proc files)."""
    if not os.path.lexists(path):
        return None
    return read_text(path)
