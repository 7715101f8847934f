"""Your own wide table through the command line, no file written by the user: a bank's
call-campaign table (``;``, yes/no target, NaN cells, a column known only after the call)
trains a response model, a retail RCT (tab, string arms 70/30, NaN cells) an uplift model,
each registered; the profile reads the same table; bad tables end in one line naming the
fix. Generic models train on any kind of dataset."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tasks.core.config import compose_config
from tasks.core.errors import ConfigError
from tasks.core.io import read_json
from tests.fixtures.tables import rct_frame, write_bank, write_rct

ROOT = Path(__file__).resolve().parent.parent
FAST = ["model.lgbm.n_estimators=20", "model.cv_folds=2", "model.n_boot=20"]


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ, PREFECT_API_URL=str(PREFECT_API_URL.value()))
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def one_line_error(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout[-1500:], res.stderr[-1500:])
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, res.stderr
    return errors[0]


def test_bank_table_trains_a_response_model(prefect_env, tmp_path):
    bank = write_bank(tmp_path, 3000)
    art = tmp_path / "artifacts"
    res = cli("flows.train", "data=table", f"data.path={bank}", "data.target=y", "data.positive=yes",
              "data.known_after=[duration]", "model=response", f"paths.artifacts={art}", *FAST)
    assert res.returncode == 0, res.stderr[-3000:]
    vdir = art / "models" / "bank_response" / "v0001"
    assert "model bank_response v0001 (champion" in res.stdout
    meta = read_json(vdir / "metadata.json")
    assert meta["dataset"] == "bank" and meta["kind"] == "response"
    assert "duration" not in meta["features"] and {"age", "balance", "job_retired"} <= set(meta["features"])
    data = meta["data"]
    assert data["excluded_columns"]["known_after"] == ["duration"] and data["rows_used"] == 3000
    assert data["missing_values"]["balance"]["count"] > 0 and 0 < data["missing_values"]["job"]["share"] < 0.1
    assert data["target_values"].startswith("'no' x ")
    report = (vdir / "report.md").read_text()
    assert "- excluded as known only after the decision (data.known_after): duration" in report
    assert "| balance |" in report and "LightGBM sends them to the side of each split" in report

    prof = cli("flows.profile", "data=table", f"data.path={bank}", "data.target=y", "data.positive=yes",
               "data.known_after=[duration]", f"paths.artifacts={art}", "profile.as_of=2026-03-01",
               "profile.max_plot_columns=2", "profile.max_heatmap_columns=4")
    assert prof.returncode == 0, prof.stderr[-3000:]
    findings = read_json(art / "profiles" / "bank" / "2026-03-01" / "findings.json")
    assert findings["row_counts"] == {"bank": 3000}
    md = (art / "profiles" / "bank" / "2026-03-01" / "report.md").read_text()
    assert "never features and not shown: duration" in md


def test_rct_table_trains_an_uplift_model(prefect_env, tmp_path):
    rct = tmp_path / "rct.csv"
    # no id column: the row number is the id; yes/no arms, 70/30; NaN visits and regions
    rct_frame(4000, arms=("yes", "no")).drop(columns=["client", "spend_after"]).to_csv(rct, sep="\t", index=False)
    art = tmp_path / "artifacts"
    res = cli("flows.train", "data=table", f"data.path={rct}", "data.target=response", "data.treatment=is_treatment",
              "model=uplift", f"paths.artifacts={art}", *FAST, "model.approaches=[solo,two_models]")
    assert res.returncode == 0, res.stderr[-3000:]
    vdir = art / "models" / "rct_uplift" / "v0001"
    meta = read_json(vdir / "metadata.json")
    assert meta["kind"] == "uplift" and "is_treatment" not in meta["features"]
    assert meta["data"]["arms"] == {"column": "is_treatment", "treated": ["yes"], "control": ["no"]}
    assert meta["data"]["missing_values"]["visits"]["count"] > 0
    assert {"qini_curve.png", "uplift_by_decile.png"} <= {p.name for p in vdir.iterdir()}
    assert "- treatment `is_treatment`: 1 = yes; 0 = no" in (vdir / "report.md").read_text()


def test_bad_tables_end_in_one_line_naming_the_fix(prefect_env, tmp_path):
    df = rct_frame(600)
    df.loc[df.index[:30], "is_treatment"] = "holdout"
    df.loc[5, "client"] = df.loc[9, "client"]
    path = tmp_path / "rct.csv"
    df.to_csv(path, sep=";", index=False)
    art = tmp_path / "artifacts"
    base = ["flows.train", "data=table", f"data.path={path}", f"paths.artifacts={art}", *FAST]
    line = one_line_error(cli(*base, "data.target=response", "data.treatment=is_treatment", "data.drop=[client]",
                              "model=uplift"))
    assert "'holdout' x 30" in line and "data.exclude_arms" in line
    line = one_line_error(cli(*base, "data.target=responded", "model=response"))
    assert "data.target names column(s) ['responded']" in line and "'recency_score'" in line
    line = one_line_error(cli(*base, "data.target=response", "data.id_column=client", "model=response"))
    assert "2 rows share an id" in line and "data.id_column" in line
    # an uplift model on a table without a treatment column
    line = one_line_error(cli(*base, "data.target=response", "data.drop=[client,is_treatment]", "model=uplift"))
    assert "data.treatment=<column>" in line and "model=response" in line
    assert not (art / "models").exists()


def test_generic_models_train_on_the_real_datasets(prefect_env, artifacts, shared_data):
    from flows.train import train_model

    cfg = OmegaConf.to_container(compose_config(["data=hillstrom", "model=response", f"paths.shared_data={shared_data}",
                                                 *FAST, "model.max_rows=6000"]), resolve=True)
    info = train_model(cfg["data"], cfg["model"], cfg["factors"], str(artifacts), str(shared_data))
    meta = read_json(Path(info["dir"]) / "metadata.json")
    assert info["name"] == "hillstrom_response" and meta["kind"] == "response"
    assert not {"segment", "conversion", "spend"} & set(meta["features"])
    assert meta["data"]["excluded_columns"]["known_after"] == ["conversion", "spend"]
    cfg = OmegaConf.to_container(compose_config(["data=ifood", "model=uplift", f"paths.shared_data={shared_data}",
                                                 *FAST]), resolve=True)
    with pytest.raises(ConfigError, match=r"dataset 'ifood' has none: name it with data.treatment=<column>"):
        train_model(cfg["data"], cfg["model"], cfg["factors"], str(artifacts), str(shared_data))
