"""JSON writing: compact lists of plain values, and nothing lost on the way back."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.core.io import atomic_write_json, json_text, read_json

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=5)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=30)


# In the full suite Hypothesis sometimes reports the global random module being used while
# examples are drawn; json_text does not use it (run alone, the test gives no warning), so it
# comes from something earlier tests left running.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@settings(max_examples=300, deadline=None)
@given(_json)
def test_json_text_reads_back_equal(obj):
    assert json.loads(json_text(obj)) == obj


def test_lists_of_values_take_one_line_objects_one_key_per_line(tmp_path):
    obj = {"reference": {"x": {"sample": [0.5] * 5000, "kind": "numeric"}}, "names": ["a, b", 'say "hi"\n']}
    path = atomic_write_json(obj, tmp_path / "m.json")
    lines = path.read_text().splitlines()
    assert len(lines) == 9
    assert '  "names": ["a, b", "say \\"hi\\"\\n"],' in lines
    assert read_json(path) == obj
