"""TOML of scenario files, with a fast path for their ``[[step]]`` tables.

A long scenario is a short head (``name``, ``[host]``, ``[[host.nodes]]``) and thousands of
``[[step]]`` tables of ``key = "text"`` and ``key = 123`` lines — what numaguard writes and
examples/scenarios/README.md documents.  :mod:`tomllib` (pure Python) spends ~20 µs a line on
them.  :func:`loads` gives the head to :mod:`tomllib` and reads the steps itself when every line
after the first ``[[step]]`` is one of:

* ``[[step]]`` alone;
* blank, or a comment (``# …`` without control characters);
* ``key = value`` with a bare key (TOML 1.0 §Keys: ``A-Za-z0-9_-``), *value* a basic string
  without escapes, tabs or control characters, or a decimal integer without ``+``, ``_`` or
  leading zeros (at most 18 digits), optionally followed by a comment;

and no table repeats a key.  Anything else — and a head that already defines ``step`` — goes to
:func:`tomllib.loads` whole, so what the fast path returns is exactly what tomllib returns, and
every error (with its line and column) is tomllib's own.  tests/readers/test_scenario_toml.py
checks both on generated files.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

_STEP = "[[step]]"
#: one line of a step table: key, then a basic string (group 2) or an integer (group 3)
_LINE = re.compile(
    r'[ \t]*([A-Za-z0-9_-]+)[ \t]*=[ \t]*'
    r'(?:"([^"\\\x00-\x1f\x7f\ud800-\udfff]*)"|(-?(?:0|[1-9][0-9]{0,17})))'
    r'[ \t]*(?:#[^\x00-\x1f\x7f\ud800-\udfff]*)?')
_BLANK = re.compile(r'[ \t]*(?:#[^\x00-\x1f\x7f\ud800-\udfff]*)?')


def loads(text: str) -> dict[str, Any]:
    """What ``tomllib.loads(text)`` returns (and raises)."""
    start = _first_step(text)
    if start < 0:
        return tomllib.loads(text)
    steps = _steps(text, start)
    if steps is None:
        return tomllib.loads(text)
    try:
        doc = tomllib.loads(text[:start])
    except tomllib.TOMLDecodeError:
        return tomllib.loads(text)  # tomllib's own message, with the line in the whole file
    if "step" in doc:
        return tomllib.loads(text)
    doc["step"] = steps
    return doc


def _first_step(text: str) -> int:
    """Where the first line that is exactly ``[[step]]`` starts, or -1."""
    if text.startswith(_STEP + "\n") or text == _STEP:
        return 0
    i = text.find("\n" + _STEP)
    while i >= 0:
        end = i + 1 + len(_STEP)
        if end == len(text) or text[end] == "\n":
            return i + 1
        i = text.find("\n" + _STEP, end)
    return -1


def _steps(text: str, start: int) -> list[dict[str, Any]] | None:
    """The step tables from *start* (a ``[[step]]`` line) to the end, or ``None`` when a line
    is not of the simple kind."""
    if "\r" in text:
        return None
    steps: list[dict[str, Any]] = []
    table: dict[str, Any] = {}
    match, blank = _LINE.fullmatch, _BLANK.fullmatch
    for line in text[start:].split("\n"):
        if line == _STEP:
            table = {}
            steps.append(table)
            continue
        m = match(line)
        if m is None:
            if blank(line) is None:
                return None
            continue
        key, string, number = m.groups()
        if key in table:
            return None
        table[key] = string if number is None else int(number)
    return steps
