"""Model registry: versions, champion pointer, checksum verification, feature checks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.core.errors import DataValidationError, NotFoundError, StateError
from tasks.core.io import read_json
from tasks.modelling.registry import ModelRegistry


class SumModel:
    """A tiny picklable model: the score is the weighted sum of two columns."""

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.weight * X["a"].to_numpy() + X["b"].to_numpy()


META = {"kind": "uplift", "approach": "solo", "features": ["a", "b"], "factor_set": "default"}


def test_save_versions_and_load_champion(tmp_path):
    reg = ModelRegistry(tmp_path / "models")
    assert reg.versions("m") == []
    assert reg.champion("m") is None
    v1 = reg.save("m", SumModel(1.0), META, files={"report.md": "# hi\n", "x.png": b"\x89PNG"})
    v2 = reg.save("m", SumModel(2.0), META)
    assert (v1, v2) == ("v0001", "v0002")
    assert reg.versions("m") == ["v0001", "v0002"]
    assert (tmp_path / "models" / "m" / "v0001" / "report.md").read_text() == "# hi\n"
    meta = read_json(tmp_path / "models" / "m" / "v0002" / "metadata.json")
    assert meta["version"] == "v0002" and len(meta["model_sha256"]) == 64

    reg.promote("m", "v0002")
    assert reg.champion("m") == "v0002"
    loaded = reg.load("m")
    assert loaded.version == "v0002" and loaded.kind == "uplift" and loaded.factor_set == "default"
    X = pd.DataFrame({"b": [1.0, 2.0], "a": [3.0, 4.0], "extra": [0, 0]})
    np.testing.assert_allclose(loaded.predict(X), [7.0, 10.0])
    np.testing.assert_allclose(reg.load("m", "v0001").predict(X), [4.0, 6.0])
    assert reg.names() == ["m"]


def test_load_without_champion_hints_the_train_command(tmp_path):
    reg = ModelRegistry(tmp_path)
    with pytest.raises(NotFoundError, match="python -m flows.train"):
        reg.load("absent")
    reg.save("m", SumModel(1.0), META)
    with pytest.raises(NotFoundError, match="promote"):
        reg.load("m")
    with pytest.raises(NotFoundError, match="v0009"):
        reg.load("m", "v0009")


def test_promote_unknown_version_fails(tmp_path):
    reg = ModelRegistry(tmp_path)
    reg.save("m", SumModel(1.0), META)
    with pytest.raises(NotFoundError, match="v0003"):
        reg.promote("m", "v0003")
    assert reg.champion("m") is None


def test_checksum_mismatch_refuses_to_load(tmp_path):
    reg = ModelRegistry(tmp_path)
    v = reg.save("m", SumModel(1.0), META)
    reg.promote("m", v)
    path = tmp_path / "m" / v / "model.joblib"
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(StateError, match="checksum"):
        reg.load("m")


def test_missing_feature_at_predict_time(tmp_path):
    reg = ModelRegistry(tmp_path)
    reg.promote("m", reg.save("m", SumModel(1.0), META))
    with pytest.raises(DataValidationError, match="'b'"):
        reg.load("m").predict(pd.DataFrame({"a": [1.0]}))


def test_bad_model_name_and_bad_extra_file(tmp_path):
    reg = ModelRegistry(tmp_path)
    with pytest.raises(NotFoundError, match="not valid"):
        reg.save("../evil", SumModel(1.0), META)
    with pytest.raises(StateError, match="model.joblib"):
        reg.save("m", SumModel(1.0), META, files={"model.joblib": b"x"})
    assert reg.versions("m") == []
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "m").iterdir())
