"""SIGTERM and SIGHUP unwind like Ctrl-C while numaguard works, so clean-ups run.

A ``kill`` of a running ``numaguard fix --write`` or ``snapshot`` would otherwise end the process
on the spot and leave a hidden temporary file or a half-built snapshot folder behind.  Inside
:func:`signals_unwind` these signals raise ``SystemExit(128 + N)`` (the shell's status for a
signal), so every ``except``/``finally`` removes what it made.  The CLI wraps every command in
it; the writers wrap each write too, for callers that use them as a library.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def signals_unwind() -> Iterator[None]:
    """While the block runs, ``SIGTERM`` and ``SIGHUP`` raise ``SystemExit(128+N)`` instead of
    killing the process outright.  Only signals left at their default action are taken over
    (so nesting is harmless), only in the main thread, and they are put back afterwards."""
    taken: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _raise_exit)
                taken.append(signum)
    try:
        yield
    finally:
        for signum in taken:
            signal.signal(signum, signal.SIG_DFL)
