"""Data shown to people: names and messages that cannot forge or garble what they read.

Guest names, step names, paths and values come from files other people write.  libvirt refuses a
line break in a domain name (``virXMLCheckIllegalChars("name", def->name, "\\n")`` in every
driver's DefineXML) but accepts every other character, and XML 1.0 carries C1 controls (a raw
U+009B is CSI on many terminals) and bidi overrides (U+202E turns ``vm1.xml`` into something
else on screen).  So everything from the data that numaguard prints as text or Markdown goes
through :func:`printable`, and every shell word it prints for pasting through
:func:`shell_quote`.

Pure: no I/O.
"""

from __future__ import annotations

import shlex
from functools import lru_cache


def _escape(c: str) -> str:
    code = ord(c)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """*text* with every character that is not printable — C0 and C1 controls, DEL, line breaks,
    bidi and other format characters (Unicode categories C* and Z* but the ASCII space) —
    written as a Python-style escape (``\\x1b``, ``\\u202e``).  Printable text comes back
    unchanged (and fast)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def printable_lines(text: str) -> str:
    """Like :func:`printable` for a multi-line text: line breaks and tabs are kept."""
    if text.isprintable():
        return text
    return "\n".join("\t".join(printable(part) for part in line.split("\t"))
                     for line in text.split("\n"))


@lru_cache(maxsize=4096)   # the same guest names and options, in every fix of a large audit
def shell_quote(word: str) -> str:
    """One shell word that means *word* when pasted: ``shlex.quote`` for printable text, else
    bash's ANSI-C quoting (``$'vm\\x1b1'``), so no control character reaches the terminal
    and the command still names the real guest.  Characters from U+0080 up are written
    ``\\uHHHH`` (bash's ``\\xHH`` would be a raw byte, not the character), which bash turns
    into the character in a UTF-8 locale."""
    if word.isprintable():
        return shlex.quote(word)
    body = "".join(
        "\\\\" if c == "\\" else "\\'" if c == "'" else c if c.isprintable()
        else _escape(c) if ord(c) < 0x80 else f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF
        else f"\\U{ord(c):08x}"
        for c in word)
    return f"$'{body}'"


def shell_join(words: list[str]) -> str:
    """A command line of :func:`shell_quote`-d words."""
    return " ".join(shell_quote(w) for w in words)
