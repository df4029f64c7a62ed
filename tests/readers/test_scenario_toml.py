"""The scenario TOML fast path gives exactly what tomllib gives: the same values (and types) for
every document, the same error for every broken one."""

import tomllib

from hypothesis import example, given, settings
from hypothesis import strategies as st

from numaguard.readers import scenario_toml

KEYS = st.sampled_from(["name", "size", "policy", "nodes", "cpu_node", "a-b_C9", "step",
                        '"quoted"', "dotted.key", "x y", ""])
STRINGS = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
VALUES = st.one_of(
    STRINGS.map(lambda s: '"' + s + '"'),                        # may hold " \ or controls
    st.sampled_from(['"12GiB"', '"0-2"', '""', '"a\\"b"', '"\\u00e9"', '"tab\there"',
                     "'literal'", '"""multi\nline"""', "'''x'''", '"open']),
    st.integers(-10**20, 10**20).map(str),
    st.sampled_from(["+1", "-0", "007", "1_000", "0x1F", "1.5", "true", "false", "1e3",
                     "[1, 2]", '{a = 1, "b" = "c"}', "{}", "nan", "-", "1979-05-27"]),
)
SPACE = st.sampled_from(["", " ", "  ", "\t"])
COMMENT = st.sampled_from(["", " # note", "# x", " #\ttab", " # \x01", " # é"])


@st.composite
def lines(draw):
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.sampled_from(["[[step]]", "[[step]] ", " [[step]]", "[[step]]# c",
                                     "[step]", "[[ step ]]", "[[host.nodes]]", "[oracle]",
                                     "[[step.sub]]"]))
    if kind == 1:
        return draw(SPACE) + draw(COMMENT).strip()
    return (draw(SPACE) + draw(KEYS) + draw(SPACE) + "=" + draw(SPACE) + draw(VALUES)
            + draw(COMMENT))


HEADS = st.sampled_from([
    "", 'name = "s"\n', 'name = "s"\n[host]\nswap = "1GiB"\n[[host.nodes]]\nid = 0\n',
    'step = 1\n', '[step]\nx = 1\n', 'description = """\n', 'x = [\n', '[oracle]\na = 1\n',
    'name = "a"\nname = "b"\n'])


@st.composite
def documents(draw):
    body = [draw(st.sampled_from(["[[step]]", "[[step]]", "x = 1"]))]
    body += draw(st.lists(lines(), max_size=14))
    newline = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    end = draw(st.sampled_from(["\n", "", "\n\n"]))
    return draw(HEADS) + newline.join(body) + end


def outcome(load, text):
    try:
        return "ok", repr(load(text))  # repr: True and 1, 1 and 1.0 differ
    except tomllib.TOMLDecodeError as exc:
        return "error", str(exc)


@settings(max_examples=3000, deadline=None)
@given(documents())
@example('name = "x"\n[[step]]\nname = "vm1"\nsize = "12GiB"\ncpu_node = 0\n[[step]]\n'
         'name = "vm1"\naction = "free"\n')
@example('[[step]]\nname = "a"\nname = "b"\n')               # a key twice: tomllib's error
@example('description = """\n[[step]]\n"""\n[[step]]\nname = "a"\n')  # a step in a string
@example('[[step]]\nsize = 1234567890123456789012\n')         # past the fast integers
def test_the_same_as_tomllib(text):
    assert outcome(scenario_toml.loads, text) == outcome(tomllib.loads, text)


def test_the_fast_path_reads_a_long_scenario_itself():
    text = 'name = "n"\n' + "".join(f'[[step]]\nname = "g{i}"\nsize = "{i}MiB"\ncpu_node = {i}\n'
                                    '# a comment\n\n' for i in range(50))
    start = scenario_toml._first_step(text)
    assert start == len('name = "n"\n')
    steps = scenario_toml._steps(text, start)
    assert steps is not None and len(steps) == 50
    assert scenario_toml.loads(text) == tomllib.loads(text)
