"""Writing one output file atomically: a temporary file beside it, then a rename.

A reader of the file (a dashboard, a web server) sees the old content or the new one, never half
a file; a failure leaves no temporary file behind.  Errors name the path.
"""

from __future__ import annotations

import os
import tempfile

from numaguard.errors import PermissionDenied, SourceError


def write_atomic(path: str, data: bytes) -> None:
    target = os.path.abspath(path)
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise SourceError(path, f"cannot write: no such directory {os.path.dirname(path) or '.'}")
    if os.path.isdir(target):
        raise SourceError(path, "is a directory, expected a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                                   dir=parent)
    except PermissionError as exc:
        raise PermissionDenied(path) from exc
    except OSError as exc:
        raise SourceError(path, exc.strerror or str(exc)) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # what open() would have given a new file
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, PermissionError):
            raise PermissionDenied(path) from exc
        if isinstance(exc, OSError):
            raise SourceError(path, exc.strerror or str(exc)) from None
        raise
