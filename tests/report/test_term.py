"""The width contract of numaguard.report.term: the terminal width, prose, commands, tables."""

from __future__ import annotations

import fcntl
import io
import os
import struct
import termios

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numaguard.report.term import (
    DEFAULT_WIDTH,
    MAX_WIDTH,
    MIN_WIDTH,
    Column,
    Grid,
    command_line,
    fits,
    terminal_width,
    wrap,
)


@pytest.mark.parametrize(("columns", "expected"), [
    ("100", 100), (" 132 ", 132), ("10", MIN_WIDTH), ("100000", MAX_WIDTH),
    ("0", DEFAULT_WIDTH), ("-5", DEFAULT_WIDTH), ("abc", DEFAULT_WIDTH), ("", DEFAULT_WIDTH),
    ("٣", DEFAULT_WIDTH), ("99999999999999999999", DEFAULT_WIDTH)])
def test_columns_wins_when_it_is_a_positive_integer(columns, expected):
    assert terminal_width({"COLUMNS": columns}, io.StringIO()) == expected


def test_no_terminal_means_80():
    assert terminal_width({}, None) == DEFAULT_WIDTH
    assert terminal_width({}, io.StringIO()) == DEFAULT_WIDTH  # no fileno
    with open(os.devnull, "w") as devnull:  # a file, not a tty
        assert terminal_width({}, devnull) == DEFAULT_WIDTH
    closed = open(os.devnull, "w")  # noqa: SIM115
    closed.close()
    assert terminal_width({}, closed) == DEFAULT_WIDTH


def test_a_terminal_gives_its_own_width_unless_columns_says_otherwise():
    primary, secondary = os.openpty()
    try:
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 101, 0, 0))
        with os.fdopen(secondary, "w", closefd=False) as tty:
            assert terminal_width({}, tty) == 101
            assert terminal_width({"COLUMNS": "90"}, tty) == 90
    finally:
        os.close(primary)
        os.close(secondary)


def test_prose_breaks_only_at_spaces():
    path = "/var/lib/libvirt/qemu/domain-42-a-very-long-guest-name/master-key.aes"
    text = f"the key of vm-1 lives in {path} and is read by qemu-system-x86_64 at start"
    lines = wrap(text, 40, indent="  ", subsequent="    ")
    assert "    " + path in lines and "qemu-system-x86_64" in " ".join(lines)
    assert " ".join(w for line in lines for w in line.split()) == " ".join(text.split())
    assert all(len(line) <= 40 or line.strip() == path for line in lines)
    assert lines[0].startswith("  the") and all(x.startswith("    ") for x in lines[1:])


def test_a_command_is_never_split():
    cmd = "virsh numatune a-guest-with-a-long-name --mode preferred --nodeset 0-3 --config " * 2
    line = command_line(cmd.strip())
    assert "\n" not in line and line.endswith("--config") and len(line) > 80
    assert fits(line, 80) and not fits("word " * 20, 80) and fits("x" * 200, 80)


def _table(rows):
    return Grid("Title", [Column("Node", "right", key=True), Column("Size", "right"),
                          Column("Notes", overflow="wrap"),
                          Column("Name", overflow="fold", floor=8)], rows)


def test_a_table_that_fits_is_drawn_at_its_natural_width():
    table = _table([["0", "1.0 GiB", "short", "vm1"]])
    assert table.render(200) == table.render(None)
    assert "│    0 │ 1.0 GiB │ short │ vm1  │" in table.render(80)


def test_a_wide_table_shrinks_its_text_columns_first():
    notes = "the quick brown fox jumps over the lazy dog " * 3
    name = "a-guest-name-much-longer-than-its-column-can-show"
    out = _table([["0", "1.0 GiB", notes.strip(), name]]).render(60)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 60 and "Title (part" not in out
    assert "1.0 GiB" in out  # numbers never wrap
    cells = [line.split("│")[3].strip() for line in lines if line.startswith("│")]
    assert " ".join(c for c in cells if c) == " ".join(notes.split())
    folded = "".join(line.split("│")[4].strip() for line in lines if line.startswith("│"))
    assert folded == name  # every character of the name is kept


def test_a_table_too_wide_even_shrunk_stacks_and_repeats_the_key():
    columns = [Column("Node", "right", key=True)] + [Column(f"Value {i}", "right")
                                                      for i in range(12)]
    rows = [[str(n)] + [f"{n * i}.00 GiB" for i in range(12)] for n in range(3)]
    out = Grid("Wide", columns, rows).render(80)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    parts = [line for line in lines if line.startswith("Wide (part")]
    assert len(parts) >= 2
    assert sum(line.count("Node") for line in lines) == len(parts)
    for i in range(12):  # every column is in exactly one part
        assert sum(f"Value {i} " in line for line in lines) == 1


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab -/", max_size=120), st.integers(1, 60),
       st.sampled_from(["", "  ", "# "]), st.sampled_from([None, "    ", "#     "]))
def test_fast_wrap_is_textwrap(text, width, indent, subsequent):
    """The audit's fast path wraps exactly as textwrap does."""
    import textwrap

    rest = indent if subsequent is None else subsequent
    expected = textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=rest,
                             break_long_words=False, break_on_hyphens=False) or [indent.rstrip()]
    assert wrap(text, width, indent=indent, subsequent=subsequent) == expected


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(alphabet="ab-/", min_size=1, max_size=12), min_size=1, max_size=20),
       st.lists(st.integers(1, 3), min_size=20, max_size=20), st.integers(1, 60),
       st.sampled_from(["", "  ", "# "]), st.sampled_from([None, "    ", "#     "]))
def test_fast_path_text_wraps_as_textwrap(words, gaps, width, indent, subsequent):
    """Words between runs of spaces, none at the ends: the text the fast path takes."""
    import textwrap

    text = "".join(w + " " * gaps[i] for i, w in enumerate(words)).rstrip(" ")
    rest = indent if subsequent is None else subsequent
    expected = textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=rest,
                             break_long_words=False, break_on_hyphens=False) or [indent.rstrip()]
    assert wrap(text, width, indent=indent, subsequent=subsequent) == expected
