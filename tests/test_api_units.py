"""The scoring service's plain functions: feature checks, fast scoring, policies, log buffer."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from tests.fixtures.api_model import demo_factors, train_demo_model
from api.errors import ApiError
from api.features import FeatureSchema, dtype_kind, rows_to_values, schema_from_metadata
from api.logbuffer import PredictionLogBuffer
from api.policy import CampaignPolicy, resolve_policy
from api.scoring import Scorer
from api.snapshot import FactorSnapshot, SnapshotWatcher, find_factor_snapshot
from tasks.core.io import atomic_write_json, atomic_write_parquet
from tasks.monitoring.prediction_log import read_predictions
from tasks.modelling.registry import ModelRegistry


@pytest.mark.parametrize("approach", ["solo", "two_models", "class_transformation", "x_learner", "dr_learner",
                                      "response"])
def test_fast_scoring_path_equals_the_registry_model(tmp_path, approach):
    reg = ModelRegistry(tmp_path)
    train_demo_model(reg, "m", n_clients=1200, seed=2, approach=approach)
    loaded = reg.load("m")
    scorer = Scorer(loaded)
    assert scorer.path == "lightgbm"
    frame = demo_factors(300, seed=8).drop(columns="client_id")
    expected = loaded.predict(frame)
    np.testing.assert_allclose(scorer.score(frame.to_numpy(dtype=float)), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(scorer.score(frame.head(1).to_numpy(dtype=float)), expected[:1], rtol=1e-9)


class HalfSum:
    """A model LightGBM knows nothing about: the score is half the sum of two columns."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return 0.5 * (X["a"].to_numpy() + X["b"].to_numpy())


def test_unknown_model_types_are_scored_through_loaded_model_predict(tmp_path):
    reg = ModelRegistry(tmp_path)
    reg.promote("h", reg.save("h", HalfSum(), {"kind": "uplift", "features": ["a", "b"],
                                               "feature_dtypes": {"a": "float64", "b": "int64"}}))
    scorer = Scorer(reg.load("h"))
    assert scorer.path == "frame" and scorer.fast is None
    np.testing.assert_allclose(scorer.score(np.array([[1.0, 3.0], [2.0, 4.0]])), [2.0, 3.0])


def test_dtype_kinds_and_row_validation():
    assert [dtype_kind(d) for d in ("float32", "int64", "UInt8", "bool", "category", "object", None)] == \
        ["float", "int", "int", "bool", "category", "category", "float"]
    schema = schema_from_metadata({"features": ["x", "flag", "n"],
                                   "feature_dtypes": {"x": "float64", "flag": "bool", "n": "int32"}})
    ids, mat = rows_to_values([{"x": 1.5, "flag": True, "n": 2}, {"client_id": 4, "x": 0, "flag": 0, "n": 3.0}],
                              schema)
    assert ids == [None, 4]
    np.testing.assert_array_equal(mat, [[1.5, 1.0, 2.0], [0.0, 0.0, 3.0]])
    with pytest.raises(ApiError, match=r"clients\[0\]\.flag") as err:
        rows_to_values([{"x": 1.0, "flag": 2, "n": 1}], schema)
    assert err.value.status == 422 and err.value.field == "clients[0].flag"
    cat = FeatureSchema(("city", "x"), {"city": "category", "x": "float"})
    assert not cat.numeric
    _, cols = rows_to_values([{"city": "Paris", "x": 1.0}], cat)
    assert cols == {"city": ["Paris"], "x": [1.0]}
    with pytest.raises(ApiError, match=r"clients\[0\]\.city: expected a string"):
        rows_to_values([{"city": 3, "x": 1.0}], cat)


def test_plausible_ranges_come_from_the_training_reference():
    from api.features import INT64_MAX, INT64_MIN

    meta = {"features": ["amount", "rate", "flag", "delta", "n", "k"],
            "feature_dtypes": {"amount": "float64", "rate": "float64", "flag": "int8", "delta": "float64",
                               "n": "int64", "k": "int64"},
            "reference": {"amount": {"kind": "numeric", "edges": [0.0, 10.0, 400.0]},
                          "rate": {"kind": "numeric", "edges": [0.0, 1.0]},
                          "flag": {"kind": "categorical", "shares": {"0": 0.9, "1": 0.1}},
                          "delta": {"kind": "numeric", "edges": [-5.0, 3.0]},
                          "k": {"kind": "numeric", "sample": [2, 7, 4]}}}
    schema = schema_from_metadata(meta)
    assert schema.bounds == {"amount": (0.0, 4400.0), "rate": (0.0, 11.0), "flag": (0.0, 11.0),
                             "delta": (-85.0, 83.0), "n": (INT64_MIN, INT64_MAX), "k": (0.0, 77.0)}
    good = {"amount": 4400.0, "rate": 0.0, "flag": 1, "delta": -85.0, "n": -(2**62), "k": 0}
    assert rows_to_values([good], schema)[1].shape == (1, 6)
    for field, value, words in (("amount", 4400.5, "plausible range [0, 4400]"), ("rate", -0.01, "[0, 11]"),
                                ("delta", 83.5, "[-85, 83]"), ("n", 1e30, "64-bit integer range"),
                                ("n", 10**30, "64-bit integer range"), ("k", -1, "[0, 77]")):
        with pytest.raises(ApiError, match=re.escape(words)) as err:
            rows_to_values([good, {**good, field: value}], schema)
        assert err.value.field == f"clients[1].{field}" and err.value.code == "implausible_value"


def test_policies_resolve_from_config_and_manifest(tmp_path):
    conf, art = tmp_path / "conf", tmp_path / "art"
    conf.mkdir()
    (conf / "p.yaml").write_text("policy: {kind: profit, margin: 10, contact_cost: 1}\n")
    (conf / "b.yaml").write_text("id: b_2026\npolicy: {kind: budget, budget: 100}\n")
    (conf / "z.yaml").write_text("policy: {kind: profit, margin: 0, contact_cost: 1}\n")
    profit = resolve_policy("p", conf, art)
    assert profit.score_cutoff == pytest.approx(0.1)
    assert profit.decide(np.array([0.1, 0.10001, 0.05])).tolist() == [False, True, False]  # strictly greater
    with pytest.raises(ApiError, match="unknown until the campaign is frozen") as err:
        resolve_policy("b", conf, art)
    assert err.value.status == 409
    with pytest.raises(ApiError, match="margin must be positive"):
        resolve_policy("z", conf, art)
    atomic_write_json({"campaign_id": "b_2026", "frozen_at": "2026-01-02", "threshold": {"score_cutoff": None}},
                      art / "campaigns" / "b_2026" / "manifest.json")
    frozen = resolve_policy("b", conf, art)
    assert frozen.source == "manifest" and frozen.decide(np.array([5.0])).tolist() == [False]
    with pytest.raises(ApiError, match="not found") as err:
        resolve_policy("nothing", conf, art)
    assert err.value.status == 404
    cut = CampaignPolicy("c", "c", "score_cutoff", 0.2, strict=False, source="config")
    assert cut.decide(np.array([0.2, 0.19])).tolist() == [True, False]


def test_snapshot_choice_lookup_and_refresh(tmp_path):
    art = tmp_path / "art"
    assert find_factor_snapshot(art) is None
    for cid, frozen, first in (("a", "2026-01-01", 1), ("b", None, 100), ("c", "2026-02-01", 50)):
        atomic_write_parquet(demo_factors(10, seed=1, first_id=first),
                             art / "campaigns" / cid / "stages" / "04_factors.parquet")
        atomic_write_json({"campaign_id": cid, "frozen_at": frozen}, art / "campaigns" / cid / "manifest.json")
    path, cid = find_factor_snapshot(art)
    assert cid == "c"  # b is not frozen, c is newer than a
    snap = FactorSnapshot.read(path, cid)
    schema = schema_from_metadata({"features": ["f1", "visits_90d"]})
    vals = snap.lookup(np.array([59, 50]), schema)
    frame = pd.read_parquet(path).set_index("client_id")
    np.testing.assert_allclose(vals[:, 0], frame.loc[[59, 50], "f1"])
    with pytest.raises(ApiError, match=r"client_ids\[1\]: client 7 is not in the factor snapshot"):
        snap.lookup(np.array([50, 7]), schema)
    with pytest.raises(ApiError, match="lacks feature 'zzz'"):
        snap.lookup(np.array([50]), schema_from_metadata({"features": ["zzz"]}))
    watcher = SnapshotWatcher(art, interval=0.0)
    watcher.refresh()
    assert watcher.snapshot.ids.tolist() == list(range(1, 11)) + list(range(50, 60))
    atomic_write_parquet(demo_factors(5, seed=2, first_id=900), art / "campaigns" / "d" / "stages" / "04_factors.parquet")
    atomic_write_json({"campaign_id": "d", "frozen_at": "2026-03-01"}, art / "campaigns" / "d" / "manifest.json")
    watcher.refresh()
    assert watcher.snapshot.campaign_id == "d"
    assert watcher.snapshot.ids.tolist() == list(range(1, 11)) + list(range(50, 60)) + [900, 901, 902, 903, 904]
    assert [s["campaign_id"] for s in watcher.snapshot.sources] == ["d", "c", "a"]


def _campaign(art, cid, factors, frozen_at, date="2026-01-01", data="w", model="m"):
    atomic_write_parquet(factors, art / "campaigns" / cid / "stages" / "04_factors.parquet")
    atomic_write_json({"campaign_id": cid, "frozen_at": frozen_at, "campaign_date": date, "data": {"name": data},
                       "model": {"name": model}}, art / "campaigns" / cid / "manifest.json")


def test_snapshot_merges_campaigns_newest_first_and_only_compatible_ones(tmp_path):
    art = tmp_path / "art"
    full = demo_factors(20, seed=1)  # ids 1..20
    _campaign(art, "full", full, "2026-01-05T00:00:00")
    sample = demo_factors(20, seed=2).iloc[::4]  # ids 1, 5, 9, 13, 17 with other values
    _campaign(art, "sample", sample, "2026-01-06T00:00:00")
    backtest = demo_factors(40, seed=3)  # frozen last, but its factors are as of an older date
    _campaign(art, "backtest", backtest, "2026-01-07T00:00:00", date="2025-06-01")
    _campaign(art, "narrow", demo_factors(30, seed=4).drop(columns="f3"), "2026-01-04T00:00:00")
    _campaign(art, "elsewhere", demo_factors(50, seed=5), "2026-01-03T00:00:00", data="other")
    _campaign(art, "other_model", demo_factors(60, seed=6), "2026-01-09T00:00:00", model="m2")
    watcher = SnapshotWatcher(art, interval=0.0, model_name="m")
    watcher.refresh()
    snap = watcher.snapshot
    used = {s["campaign_id"]: s.get("clients", s.get("skipped")) for s in snap.sources}
    assert [s["campaign_id"] for s in snap.sources] == ["sample", "full", "narrow", "backtest"]
    assert used == {"sample": 5, "full": 15, "narrow": "lacks column 'f3' of the newest campaign", "backtest": 20}
    assert snap.ids.tolist() == list(range(1, 41))  # one row per client; 'elsewhere' and 'other_model' left out
    schema = schema_from_metadata({"features": ["f0"]})
    got = snap.lookup(np.array([5, 6, 33]), schema)[:, 0]
    want = [sample.set_index("client_id").loc[5, "f0"], full.set_index("client_id").loc[6, "f0"],
            backtest.set_index("client_id").loc[33, "f0"]]
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ApiError, match=r"client 41 is not in the factor snapshot of the frozen campaign\(s\) "
                                       r"sample, full, backtest"):
        snap.lookup(np.array([41]), schema)
    watcher.refresh()
    assert watcher.snapshot is snap  # nothing changed: not read again


def test_log_buffer_keeps_rows_when_a_flush_fails(tmp_path):
    blocker = tmp_path / "log"
    blocker.write_text("a file where the log folder should be")
    buf = PredictionLogBuffer(blocker, flush_rows=100, flush_seconds=60)
    buf.add(1_700_000_000_000_000_000, "r1", None, [1, None], np.array([0.1, 0.2]), None, "m", "v0001")
    assert buf.flush() is None and buf.last_error and buf.rows_buffered == 2
    blocker.unlink()
    path = buf.flush()
    assert path is not None and buf.rows_buffered == 0 and buf.rows_written == 2
    log = read_predictions(blocker)
    assert log["client_id"].tolist()[0] == 1 and pd.isna(log["client_id"].tolist()[1])
    assert log["decision"].isna().all() and str(log["time"].iloc[0]).startswith("2023-11-14")


@pytest.mark.parametrize("kwargs,match", [
    ({"model_name": "../x"}, "model name"),
    ({"max_batch": 0}, "max_batch"),
    ({"factor_snapshot": "/nonexistent/snap.parquet"}, "is not a file"),
])
def test_bad_settings_stop_the_cli_with_a_clear_message(tmp_path, capsys, kwargs, match):
    from api.__main__ import main
    from api.service import ApiSettings
    from tasks.core.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        ApiSettings(artifacts=tmp_path, **kwargs)
    flag = {"model_name": "--model", "max_batch": "--max-batch", "factor_snapshot": "--factor-snapshot"}
    (key, value), = kwargs.items()
    with pytest.raises(SystemExit) as exit_:
        main(["--artifacts", str(tmp_path), flag[key], str(value)])
    assert exit_.value.code == 2 and match in capsys.readouterr().err
