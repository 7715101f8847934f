"""Training-set loading: the synthetic world's history joined with point-in-time factors."""
from __future__ import annotations

import numpy as np
import pytest

from factors import factor_set
from tasks.core.config import SyntheticDataConfig
from tasks.core.errors import NotFoundError
from tasks.core.layout import Layout
from tasks.data.point_in_time import factors_as_of_rows
from tasks.data.synthetic.world import generate_world, write_world
from tasks.data.tables import read_table
from tasks.modelling.training_set import TrainingSet, load_training_set


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Layout:
    layout = Layout(tmp_path_factory.mktemp("training_set"))
    cfg = SyntheticDataConfig(n_clients=800, seed=3)
    write_world(generate_world(cfg), layout.dataset("tiny"), cfg)
    return layout


def test_synthetic_training_set_is_the_history_with_factors_as_of_each_campaign(world):
    ts = load_training_set({"kind": "synthetic", "name": "tiny"}, {"name": "default"}, world, "unused")
    assert isinstance(ts, TrainingSet)
    history = read_table(world.dataset("tiny"), "campaign_history")
    assert (ts.dataset, ts.factor_set, ts.profit) == ("tiny", "default", None)
    np.testing.assert_array_equal(ts.treatment, history["treatment"].to_numpy())
    np.testing.assert_array_equal(ts.y, history["response"].to_numpy())
    assert list(ts.X.columns) == list(factor_set("default"))
    expected = factors_as_of_rows(world.dataset("tiny"), history, factor_set("default"))
    assert ts.X.equals(expected)


def test_an_explicit_factor_list_wins_over_the_set(world):
    names = list(factor_set("default"))[:2]
    ts = load_training_set({"name": "tiny"}, {"name": "default", "factors": names}, world, "unused")
    assert list(ts.X.columns) == names


def test_a_missing_world_is_not_found(world):
    with pytest.raises(NotFoundError):
        load_training_set({"name": "absent"}, {}, world, "unused")
