"""``numaguard simulate --format json`` writes its steps by hand (report/simulate.py): the
document must be what ``json.dumps(..., indent=2)`` of the run's dict gives, byte for byte."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from numaguard.core.scenario import Run, Scenario, compare, play
from numaguard.report.jsonout import versioned
from numaguard.report.simulate import run_to_dict, simulate_json
from tests.property.test_simulate_props import oom_heavy, swap_heavy

NAMES = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)


def reference(runs: tuple[Run, ...]) -> str:
    if len(runs) == 1 and runs[0].mode is None:
        doc = run_to_dict(runs[0])
    else:
        doc = {"compare": {r.mode or "scenario": run_to_dict(r) for r in runs}}
    return json.dumps(versioned(doc), indent=2) + "\n"


def scenario(host, plan, name: str, labels: list[str]) -> Scenario:
    labels = (labels * len(plan))[:len(plan)] if labels else [s.name for s in plan]
    return Scenario(name, host, tuple(plan), tuple(labels), source=None)


@settings(max_examples=150, deadline=None)
@given(st.one_of(oom_heavy(), swap_heavy()), NAMES, st.lists(NAMES, max_size=3))
def test_steps_written_by_hand_are_what_json_writes(case, name, labels):
    s = scenario(*case, name, labels)
    runs = (play(s),)
    assert simulate_json(runs) == reference(runs)


@settings(max_examples=50, deadline=None)
@given(oom_heavy(), NAMES)
def test_compare_documents_too(case, name):
    runs = compare(scenario(*case, name, []), ("strict", "interleave"))
    assert simulate_json(runs) == reference(runs)


def test_a_name_that_looks_like_the_placeholder_stays_a_name():
    from numaguard.core.simulate import SimHost, SimNode, Step

    host = SimHost((SimNode(0, 1 << 30, total=1 << 30),), {0: (0,)}, 0)
    s = Scenario('\x00steps0\x00', host, (Step("a", 1 << 20),), ('"steps": x',))
    runs = (play(s),)
    assert simulate_json(runs) == reference(runs)
