"""The audit JSON's per-item encoder (issue 11) writes exactly what ``json.dumps`` writes."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from numaguard.report.audit import _item_encoder, lines_json

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@given(JSON)
def test_item_encoder_is_json_dumps(value):
    assert _item_encoder()(value) == json.dumps(value)


@given(st.dictionaries(st.text(min_size=1), JSON, max_size=5))
def test_lines_json_reads_back(doc):
    # NaN != NaN: compare the encodings of what was read back, not the values
    assert json.dumps(json.loads(lines_json(doc))) == json.dumps(doc)
