"""Reading files with errors that name them.

Every reader goes through :func:`read_bytes`/:func:`read_text`, so a missing file, a directory
where a file was expected, or a permission problem always comes out as one line naming the path
(:class:`SourceError` / :class:`PermissionDenied`), never as a traceback, and is never swallowed.
"""

from __future__ import annotations

from numaguard.errors import PermissionDenied, SourceError

#: Refuse absurdly large inputs (a domain XML is a few KiB; a sysfs file a few hundred bytes).
MAX_BYTES = 16 * 1024 * 1024
_CHUNK = 64 * 1024


def read_bytes(path: str, *, limit: int = MAX_BYTES) -> bytes:
    try:
        with open(path, "rb") as fh:
            # Read in modest chunks: procfs sysctl handlers allocate a buffer of the size asked
            # for, and fail with ENOMEM on a huge read (seen on /proc/sys/kernel/numa_balancing).
            chunks: list[bytes] = []
            size = 0
            while size <= limit:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            data = b"".join(chunks)
    except FileNotFoundError:
        raise SourceError(path, "no such file") from None
    except IsADirectoryError:
        raise SourceError(path, "is a directory, expected a file") from None
    except PermissionError as exc:
        raise PermissionDenied(path) from exc
    except OSError as exc:
        raise SourceError(path, exc.strerror or str(exc)) from None
    if len(data) > limit:
        raise SourceError(path, f"larger than {limit // (1024 * 1024)} MiB; refusing to read it")
    return data


def read_text(path: str, *, limit: int = MAX_BYTES) -> str:
    data = read_bytes(path, limit=limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(path, f"not UTF-8 text (byte {exc.start})") from None


def read_optional_text(path: str) -> str | None:
    """The file's text, or ``None`` when it does not exist (optional sysfs/proc files)."""
    try:
        return read_text(path)
    except PermissionDenied:
        raise
    except SourceError as exc:
        if exc.reason == "no such file":
            return None
        raise
