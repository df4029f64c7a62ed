"""Text that fits the terminal: the width, wrapped prose, commands, tables that shrink or stack.

The contract every text renderer keeps, for a given *width* (columns):

* **No line is longer than *width*,** except a command line (below) or a line that holds a single
  unbreakable token (a path, URL or name longer than the whole width).
* **Prose wraps at spaces only** (:func:`wrap`): a word is never broken, neither at a hyphen nor
  inside, so a path, a guest name, ``--nodeset``, a URL stays whole and can be copied; a word
  longer than the line stands alone on its own line.
* **A command stands alone on its line and is never split** (:func:`command_line`), even when it
  is longer than the width: a command is copied and pasted, and a wrapped one would run as two.
  Every such line starts (after its indent) with :data:`COMMAND_PREFIX`; :func:`fits` accepts it.
* **Tables shrink, then stack** (:class:`Grid`): columns start at the width of their longest
  cell; when the table is too wide, the widest columns give way first, down to each column's
  narrowest useful width (its longest word for free text, a floor for names, which then fold;
  numbers never wrap, only their headers do); when even that is too wide, the columns are split
  into several tables of the same rows, each repeating the key columns (the node or the guest).

*width* comes from :func:`terminal_width`, called once at the CLI edge (``cli._emit``) with the
process environment and stdout, and is passed down to the renderers, which read nothing from the
environment themselves.  Widths are counted in characters (``len``), as the rest of the report
code does.

Inside a cell, U+00A0 (no-break space) glues two words that must stay on one line (``12.0 GiB``);
it is printed as a plain space.  Data never carries one: :func:`numaguard.display.printable`
escapes it.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: when neither COLUMNS nor a terminal says: the classic terminal, and what cron mail and
#: pipes get (the same default as coreutils' ``ls`` and Python's ``shutil.get_terminal_size``)
DEFAULT_WIDTH = 80
#: narrower than this, a table of sizes cannot be drawn at all; COLUMNS=10 gets 40
MIN_WIDTH = 40
#: wider than this is a mistake (COLUMNS=100000), not a terminal
MAX_WIDTH = 512
#: what starts a command line, after its indent
COMMAND_PREFIX = "$ "
#: glues two words inside a cell (printed as a space)
GLUE = "\u00a0"

_DIGITS = re.compile(r"[0-9]+")


def terminal_width(environ: Mapping[str, str], stream: object | None) -> int:
    """The width text output should fit: ``COLUMNS`` when it is a positive integer (POSIX: "the
    user's preferred width in column positions for the terminal screen"), else the width of the
    terminal *stream* is (``os.get_terminal_size`` on its file descriptor), else
    :data:`DEFAULT_WIDTH`; clamped to [:data:`MIN_WIDTH`, :data:`MAX_WIDTH`].

    ``COLUMNS`` wins over the terminal as in ``ls`` and ``shutil.get_terminal_size``, so a
    script can ask for a width (``COLUMNS=120 numaguard guests``).  A pipe, a file, a closed or
    missing stdout has no terminal width: 80, so cron mail and ``| less`` read the same."""
    raw = environ.get("COLUMNS", "").strip()
    width = int(raw) if _DIGITS.fullmatch(raw) and len(raw) < 8 else 0
    if width <= 0:
        try:
            fd = stream.fileno()  # type: ignore[union-attr]
            width = os.get_terminal_size(fd).columns if os.isatty(fd) else 0
        except (AttributeError, OSError, ValueError):  # no stream, not a file, closed, no tty
            width = 0
    if width <= 0:
        width = DEFAULT_WIDTH
    return max(MIN_WIDTH, min(MAX_WIDTH, width))


def wrap(text: str, width: int, *, indent: str = "", subsequent: str | None = None) -> list[str]:
    """*text* (one paragraph; runs of spaces and line breaks count as one space) as lines of at
    most *width* characters, the first starting with *indent*, the others with *subsequent*
    (default: *indent*).  Breaks only at spaces: never inside a word, never at a hyphen, so
    paths, names, options and URLs stay whole; a word longer than the line gets a line of its
    own, longer than *width*."""
    rest = indent if subsequent is None else subsequent
    width = max(1, width)
    if _PLAIN.fullmatch(text) and width > max(len(indent), len(rest)):
        lines = _greedy(text, width, indent, rest)
    else:
        lines = textwrap.wrap(text, width=width, initial_indent=indent,
                              subsequent_indent=rest, break_long_words=False,
                              break_on_hyphens=False)
    return [line.replace(GLUE, " ") for line in lines] or [indent.rstrip()]


#: text :func:`_greedy` wraps exactly as textwrap does: words of no whitespace but the ASCII
#: space between them, none at the ends
_PLAIN = re.compile(r"\S+(?: +\S+)*")


def _greedy(text: str, width: int, indent: str, rest: str) -> list[str]:
    """textwrap's ``_wrap_chunks`` (``break_long_words=False``, ``drop_whitespace=True``) for
    :data:`_PLAIN` text, by finding each line's last space instead of adding up every word:
    the audit wraps ten thousand lines, and textwrap costs ~45 µs a line."""
    lines: list[str] = []
    pos, n = 0, len(text)
    lead = indent
    while pos < n:
        room = width - len(lead)
        if n - pos <= room:
            lines.append(lead + text[pos:])
            break
        cut = text.rfind(" ", pos, pos + room + 1)
        end = len(text[pos:cut].rstrip(" ")) + pos if cut > pos else pos
        if end == pos:                  # a word longer than the line stands alone
            end = text.find(" ", pos)
            end = n if end < 0 else end
        lines.append(lead + text[pos:end])
        pos = end
        while pos < n and text[pos] == " ":   # the next line starts with a word
            pos += 1
        lead = rest
    return lines


def paragraph(text: str, width: int, *, indent: str = "", subsequent: str | None = None) -> str:
    """:func:`wrap` joined into one string ending in a line break."""
    return "\n".join(wrap(text, width, indent=indent, subsequent=subsequent)) + "\n"


def command_line(command: str, *, indent: str = "    ") -> str:
    """*command* on a line of its own: *indent*, :data:`COMMAND_PREFIX`, the command, never split
    whatever the width (a pasted command must be the whole command)."""
    return f"{indent}{COMMAND_PREFIX}{command}"


def is_command_line(line: str) -> bool:
    return line.lstrip(" ").startswith(COMMAND_PREFIX)


def fits(line: str, width: int) -> bool:
    """The width contract for one output line: at most *width* characters, or a command line,
    or one unbreakable token (with its indent)."""
    return len(line) <= width or is_command_line(line) or len(line.split()) <= 1


# -- tables -----------------------------------------------------------------------------------

_ANSI = {"bold red": "1;31", "yellow": "33", "green": "32", "bold": "1", "italic": "3",
         "red": "31", "bold yellow": "1;33"}


def paint(text: str, style: str | None) -> str:
    """*text* in an ANSI SGR style (``bold red``, ``yellow``, ``green``, ``bold``, ``italic``)."""
    code = _ANSI.get(style or "")
    return f"\x1b[{code}m{text}\x1b[0m" if code else text


class Styled(str):
    """A cell's text with a style for colour output (see :func:`paint`)."""

    style: str | None = None


def styled(text: str, style: str | None, color: bool) -> str:
    cell = Styled(text)
    cell.style = style if color else None
    return cell


@dataclass(frozen=True)
class Column:
    """One column of a :class:`Grid`.

    *overflow* says how its cells give way when the table is too wide: ``keep`` (numbers, short
    codes: cells never wrap, only the header does), ``wrap`` (free text: wraps at spaces — and
    after commas if *commas* — down to its longest word), ``fold`` (names: wraps at spaces,
    and a word longer than the column is cut across lines, every character kept).  A ``wrap``
    or ``fold`` column never gets narrower than *floor* (or its natural width when smaller):
    free text squeezed into a few characters is taller than it is readable, and a table that
    cannot keep its floors stacks instead.  *key* columns (what identifies a row: the node, the
    guest) are repeated in every part when the table has to stack."""

    header: str
    justify: str = "left"
    overflow: str = "keep"
    key: bool = False
    floor: int = 10
    commas: bool = False


_BREAKS = re.compile(r"(?<=,)(?!\s)")


def _pieces(text: str, commas: bool) -> list[tuple[str, str]]:
    """(separator before, word) pairs: a space between words is a break point, and so is the
    point after a comma when *commas* (``0-3,8-11``)."""
    out: list[tuple[str, str]] = []
    for i, word in enumerate(text.split(" ")):
        if not word:
            continue
        parts = _BREAKS.split(word) if commas and "," in word else [word]
        for j, part in enumerate(parts):
            out.append(("" if j else (" " if i and out else ""), part))
    return out


def wrap_cell(text: str, width: int, *, commas: bool = False, fold: bool = False) -> list[str]:
    """The lines of one cell at *width*: each line of *text* wrapped at its break points; a word
    longer than *width* is cut into *width*-sized pieces with *fold*, else stands alone."""
    out: list[str] = []
    for raw in text.split("\n"):
        if len(raw) <= width:
            out.append(raw)
            continue
        line = ""
        for sep, word in _pieces(raw, commas):
            if line and len(line) + len(sep) + len(word) <= width:
                line += sep + word
                continue
            if line:
                out.append(line)
            while fold and len(word) > width:
                out.append(word[:width])
                word = word[width:]
            line = word
        out.append(line)
    return out


def _longest_piece(text: str, commas: bool) -> int:
    return max((len(w) for line in text.split("\n") for _, w in _pieces(line, commas)),
               default=0)


def _line_width(text: str) -> int:
    return max(len(x) for x in text.split("\n")) if "\n" in text else len(text)


def _fit(natural: list[int], least: list[int], room: int) -> list[int]:
    """Column widths summing to at most *room* (when the minimums allow): the widest columns
    shrink first, down to a common level, never below their minimum; what is left over goes
    back to the shrunk columns one character at a time."""
    if sum(natural) <= room:
        return natural

    def total(level: int) -> int:
        return sum(max(m, min(w, level)) for w, m in zip(natural, least, strict=True))

    lo, hi = 0, max(natural)
    while lo < hi:  # the highest level that fits
        mid = (lo + hi + 1) // 2
        if total(mid) <= room:
            lo = mid
        else:
            hi = mid - 1
    widths = [max(m, min(w, lo)) for w, m in zip(natural, least, strict=True)]
    spare = room - sum(widths)
    for i, w in enumerate(natural):
        if spare <= 0:
            break
        if widths[i] < w:
            widths[i] += 1
            spare -= 1
    return widths


class Grid:
    """A table drawn like rich's default box (heavy head), fitted to a width (see the module
    docstring) and drawn by hand: rich measures and renders every cell through its layout
    engine, about 0.2 ms per row, a fifth of a second for 1,000 guests; this takes a few
    milliseconds.  Cells are ``str`` (a :class:`Styled` one carries a colour); a cell may hold
    several lines (``\\n``)."""

    def __init__(self, title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]],
                 sections: Sequence[int] = ()) -> None:
        self.title, self.columns, self.rows = title, list(columns), rows
        self.sections = set(sections)  # a rule after these row indexes

    # widths

    def _natural(self, i: int) -> tuple[int, int]:
        """(the widest line of header and cells, the widest line of the cells — or the longest
        word of the header when that is wider)."""
        col = self.columns[i]
        cells = max((_line_width(row[i]) for row in self.rows), default=0)
        return (max(_line_width(col.header), cells),
                max(cells, _longest_piece(col.header, False)))

    def _least(self, i: int, natural: int) -> int:
        col = self.columns[i]
        head = _longest_piece(col.header, False)
        if col.overflow == "wrap":
            cells = max((_longest_piece(row[i], col.commas) for row in self.rows
                         if len(row[i]) > head), default=0)
            cells = max(cells, min(natural, col.floor))
        elif col.overflow == "fold":
            cells = min(natural, col.floor)
        else:
            cells = max((_line_width(row[i]) for row in self.rows), default=0)
        return min(natural, max(head, cells))

    def render(self, width: int | None = None, color: bool = False) -> str:
        """The table (or its parts, one after the other) fitted to *width*; ``None``: as wide
        as its cells."""
        n = len(self.columns)
        natural, cells = zip(*(self._natural(i) for i in range(n)), strict=True)
        if width is None or sum(natural) + 3 * n + 1 <= width:
            return self._draw(list(range(n)), list(natural), self.title, color)
        least = [self._least(i, cells[i]) for i in range(n)]
        parts = self._parts(least, width)
        out = []
        for k, part in enumerate(parts):
            title = self.title if len(parts) == 1 else \
                f"{self.title} (part {k + 1} of {len(parts)})"
            room = width - 3 * len(part) - 1
            wide, fit, small = ([seq[i] for i in part] for seq in (natural, cells, least))
            # headers wrap before any cell does; then the widest cells give way
            widths = _fit(wide, fit, room) if sum(fit) <= room else _fit(fit, small, room)
            out.append(self._draw(part, widths, title, color, width))
        return "\n".join(out)

    def _parts(self, least: list[int], width: int) -> list[list[int]]:
        """Column indexes of each part: one part when the minimums fit, else the key columns
        plus as many others as fit, in order."""
        n = len(self.columns)
        if sum(least) + 3 * n + 1 <= width:
            return [list(range(n))]
        keys = [i for i, c in enumerate(self.columns) if c.key]
        base = sum(least[i] + 3 for i in keys) + 1
        others = [i for i in range(n) if i not in keys]

        def pack(cap: int) -> list[list[int]]:
            parts: list[list[int]] = [[]]
            used = base
            for i in others:
                if parts[-1] and used + least[i] + 3 > cap:
                    parts.append([])
                    used = base
                parts[-1].append(i)
                used += least[i] + 3
            return parts

        fewest = len(pack(width))
        lo, hi = base, width  # the narrowest cap that needs no more parts: balanced parts
        while lo < hi:
            mid = (lo + hi) // 2
            if len(pack(mid)) <= fewest:
                hi = mid
            else:
                lo = mid + 1
        return [sorted(keys + p) for p in pack(lo)]

    # drawing

    def _draw(self, part: list[int], widths: list[int], title: str, color: bool,
              width: int | None = None) -> str:
        cols = [self.columns[i] for i in part]

        def line(left: str, fill: str, mid: str, right: str) -> str:
            return left + mid.join(fill * (w + 2) for w in widths) + right

        def cell_lines(text: str, col: Column, w: int) -> list[str]:
            if _line_width(text) <= w:
                return text.split("\n")
            return wrap_cell(text, w, commas=col.commas, fold=col.overflow == "fold")

        def row_lines(values: Sequence[str], edge: str, head: bool) -> list[str]:
            cells = [cell_lines(v, c, w) for v, c, w in zip(values, cols, widths, strict=False)]
            height = max(len(c) for c in cells)
            out = []
            for k in range(height):
                parts = []
                for col, w, v, lines in zip(cols, widths, values, cells, strict=False):
                    text = lines[k].replace(GLUE, " ") if k < len(lines) else ""
                    text = text.rjust(w) if col.justify == "right" else text.ljust(w)
                    style = "bold" if head else getattr(v, "style", None)
                    parts.append(" " + (paint(text, style) if color and text.strip()
                                        else text) + " ")
                out.append(edge + edge.join(parts) + edge)
            return out

        titles = wrap(title, width) if width else [title]
        out = [paint(t, "italic") if color else t for t in titles]
        out += [line("┏", "━", "┳", "┓"), *row_lines([c.header for c in cols], "┃", True),
                line("┡", "━", "╇", "┩")]
        last = len(self.rows) - 1
        for r, row in enumerate(self.rows):
            out += row_lines([row[i] for i in part], "│", False)
            if r in self.sections and r != last:
                out.append(line("├", "─", "┼", "┤"))
        out.append(line("└", "─", "┴", "┘"))
        return "\n".join(out) + "\n"
