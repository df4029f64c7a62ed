"""display: data shown without control or bidi characters; shell words that paste."""

import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from numaguard.display import printable, printable_lines, shell_join, shell_quote


@pytest.mark.parametrize("raw, shown", [
    ("vm1", "vm1"),
    ("vm\x1b[31m", "vm\\x1b[31m"),
    ("vm\u009b31m", "vm\\x9b31m"),          # C1 CSI
    ("vm\u202egnp", "vm\\u202egnp"),        # right-to-left override
    ("a\nb", "a\\x0ab"),
    ("é漢字", "é漢字"),                       # printable non-ASCII stays
    ("\U000e0001", "\\U000e0001"),
])
def test_printable(raw, shown):
    assert printable(raw) == shown


@given(st.text())
def test_printable_output_is_always_printable(text):
    assert printable(text).isprintable()


def test_printable_lines_keeps_line_breaks_and_tabs():
    assert printable_lines("a\tb\nc\x1bd\n") == "a\tb\nc\\x1bd\n"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
               min_size=1, max_size=20))
def test_a_quoted_word_means_the_word_in_bash(word):
    quoted = shell_quote(word)
    assert quoted.isprintable()
    out = subprocess.run(["bash", "-c", f"printf '%s' {quoted}"], capture_output=True,
                         check=True, env={"LC_ALL": "C.UTF-8"}).stdout
    assert out == word.encode("utf-8", "surrogatepass")


def test_shell_join():
    assert shell_join(["virsh", "numatune", "vm 1"]) == "virsh numatune 'vm 1'"
    assert shell_join(["virsh", "vm\x07"]) == "virsh $'vm\\x07'"
