"""The train flow end to end: real Prefect, real data, the registry on disk, the CLI's exit code."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from tasks.core.config import compose_config
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError
from tasks.core.io import read_json
from tasks.modelling.registry import ModelRegistry

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FAST = ["model.lgbm.n_estimators=20", "model.cv_folds=2", "model.n_boot=20"]


def nodes(*overrides: str) -> tuple[dict, dict, dict]:
    cfg = OmegaConf.to_container(compose_config(list(overrides)), resolve=True)
    return cfg["data"], cfg["model"], cfg["factors"]


def test_train_ifood_registers_and_promotes_first_version(prefect_env, artifacts, shared_data):
    from flows.train import promote_model, train_model

    data, model, factors = nodes("data=ifood", "model=ifood", *FAST, "model.grid=[{}]")
    info = train_model(data, model, factors, str(artifacts), str(shared_data))
    assert info["version"] == "v0001" and info["promoted"] and info["champion"] == "v0001"
    vdir = Path(info["dir"])
    meta = read_json(vdir / "metadata.json")
    assert "MntTotal" not in meta["features"] and set(meta["checks"]["dropped"]) >= {"Z_Revenue", "AcceptedCmpOverall"}
    assert "Z_Revenue" in (vdir / "report.md").read_text()

    model["promote"] = "never"
    info2 = train_model(data, model, factors, str(artifacts), str(shared_data))
    assert info2["version"] == "v0002" and not info2["promoted"] and info2["champion"] == "v0001"
    assert promote_model("ifood_response", "v0002", str(artifacts))["champion"] == "v0002"
    with pytest.raises(NotFoundError, match="v0042"):
        promote_model("ifood_response", "v0042", str(artifacts))


def test_train_hillstrom_uplift_with_plots(prefect_env, artifacts, shared_data):
    from flows.train import train_model

    # 6,000 rows show no signal to so small a model: promote=always makes it champion all the same
    data, model, factors = nodes("data=hillstrom", "model=hillstrom", *FAST, "model.grid=[{}]",
                                 "model.approaches=[solo]", "model.max_rows=6000", "model.promote=always")
    info = train_model(data, model, factors, str(artifacts), str(shared_data))
    vdir = Path(info["dir"])
    assert {"qini_curve.png", "uplift_by_decile.png", "shap_importance.png"} <= {p.name for p in vdir.iterdir()}
    loaded = ModelRegistry(artifacts / "models").load("hillstrom_uplift")
    assert loaded.kind == "uplift" and "history_per_month" in loaded.features


def test_train_one_click_segmentation(prefect_env, artifacts, shared_data):
    from flows.train import train_model

    data, model, factors = nodes("data=one_click", "model=one_click", *FAST)
    info = train_model(data, model, factors, str(artifacts), str(shared_data))
    seg = pd.read_csv(Path(info["dir"]) / "segmentation.csv")
    assert len(seg) == 4 and seg["share"].sum() == pytest.approx(1.0)
    assert "high risk / high profit" in set(seg["segment"])
    assert "Segmentation" in (Path(info["dir"]) / "report.md").read_text()


def test_uplift_model_on_data_without_treatment_fails(prefect_env, artifacts, shared_data):
    from flows.train import train_model

    data, model, factors = nodes("data=ifood", "model=uplift", *FAST)
    with pytest.raises(ConfigError, match="treatment"):
        train_model(data, model, factors, str(artifacts), str(shared_data))
    assert not (artifacts / "models").exists()


def test_synthetic_world_trains_without_truth(prefect_env, artifacts):
    from flows.generate import generate
    from flows.train import train_model

    gdata, _, _ = nodes("data.n_clients=3000", "data.name=tiny")
    generate(gdata, str(artifacts))
    (artifacts / "data" / "tiny" / "truth.parquet").unlink()
    # a tiny world may show no signal: promote=always makes the version champion all the same
    data, model, factors = nodes("data.name=tiny", *FAST, "model.approaches=[solo]", "model.lgbm.min_child_samples=10",
                                 "model.promote=always")
    info = train_model(data, model, factors, str(artifacts), "../shared/data")
    loaded = ModelRegistry(artifacts / "models").load("synthetic_uplift")
    assert loaded.factor_set == "default" and info["promoted"]
    assert len(loaded.features) > 10

    hist = pd.read_parquet(artifacts / "data" / "tiny" / "campaign_history.parquet")
    hist["treatment"] = 1
    hist.to_parquet(artifacts / "data" / "tiny" / "campaign_history.parquet", index=False)
    with pytest.raises(DataValidationError, match="one arm"):
        train_model(data, model, factors, str(artifacts), "../shared/data")
    assert ModelRegistry(artifacts / "models").versions("synthetic_uplift") == ["v0001"]


def test_cli_missing_dataset_exits_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "flows.train", f"paths.artifacts={tmp_path}", "data.name=absent"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert "absent" in proc.stderr and "flows.generate" in proc.stderr
