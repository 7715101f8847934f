"""The real datasets (Hillstrom and iFood as table datasets, one_click's own loader) and their
bad-input errors."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from tasks.core.config import compose_config, from_conf, to_dataclass
from tasks.data.datasets import OneClickDataConfig, TabularDataConfig, feature_frame, load_tabular_dataset
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError
from tasks.modelling.checks import ChecksConfig, screen_features


def cfg_for(name: str, *overrides: str) -> TabularDataConfig | OneClickDataConfig:
    node = compose_config([f"data={name}", *overrides]).data
    return to_dataclass(node, OneClickDataConfig if name == "one_click" else TabularDataConfig, "data")


def test_hillstrom_womens_vs_no_email(shared_data):
    ds = load_tabular_dataset(cfg_for("hillstrom", f"paths.shared_data={shared_data}"), shared_data)
    assert ds.kind == "table" and len(ds.frame) == 21387 + 21306
    assert ds.treatment == "segment" and ds.frame["segment"].sum() == 21387
    assert ds.target == "visit" and ds.known_after == ["conversion", "spend"]
    assert ds.source["excluded_rows"] == {"Mens E-Mail": 21307}
    X = feature_frame(ds)
    assert not {"visit", "conversion", "spend", "segment", "client_id", "history_segment"} & set(X.columns)
    assert {"history_per_month", "zip_code_Urban", "channel_Web"} <= set(X.columns)
    assert len(X) == len(ds.frame)
    # the other outcome is the target: visit becomes known-after, never a feature
    conv = load_tabular_dataset(cfg_for("hillstrom", f"paths.shared_data={shared_data}", "data.target=conversion"),
                                shared_data)
    assert conv.known_after == ["visit", "spend"] and "visit" not in feature_frame(conv).columns


def test_hillstrom_bad_arm_and_bad_file(shared_data, tmp_path):
    with pytest.raises(ConfigError, match="key 'treated': 'Kids E-Mail' is not a value .* 'No E-Mail'"):
        load_tabular_dataset(cfg_for("hillstrom", f"paths.shared_data={shared_data}", "data.treated=Kids E-Mail"),
                             shared_data)
    # without Mens E-Mail excluded, its rows are an arm that is neither treated nor control
    with pytest.raises(DataValidationError, match="21,307 row.*'Mens E-Mail' x 21,307.*data.exclude_arms"):
        load_tabular_dataset(cfg_for("hillstrom", f"paths.shared_data={shared_data}", "data.exclude_arms=[]"),
                             shared_data)
    with pytest.raises(NotFoundError, match="does not exist"):
        load_tabular_dataset(cfg_for("hillstrom", f"paths.shared_data={tmp_path}"), tmp_path)
    folder = tmp_path / "hillstrom"
    folder.mkdir()
    src = next((shared_data / "hillstrom").glob("*.csv"))
    lines = src.read_text().splitlines()
    header = lines[0].replace(",visit,", ",visits,")
    (folder / src.name).write_text("\n".join([header, *lines[1:50]]) + "\n")
    with pytest.raises(DataValidationError, match="visit"):
        load_tabular_dataset(cfg_for("hillstrom", f"paths.shared_data={tmp_path}"), tmp_path)


def test_ifood_checks_find_the_leaky_and_constant_columns(shared_data):
    ds = load_tabular_dataset(cfg_for("ifood", f"paths.shared_data={shared_data}"), shared_data)
    assert ds.treatment is None and ds.frame["Response"].mean() == pytest.approx(0.151, abs=0.001)
    X = feature_frame(ds)
    assert {"spend_per_purchase", "wine_share"} <= set(X.columns)
    _, rep = screen_features(X, ds.frame["Response"].to_numpy(), from_conf(ChecksConfig, "model/uplift:checks"))
    assert set(rep.constant) == {"Z_CostContact", "Z_Revenue"}
    assert set(rep.sum_of_others) == {"MntTotal", "MntRegularProds", "AcceptedCmpOverall"}
    assert set(rep.dropped) == {"Z_CostContact", "Z_Revenue", "MntTotal", "MntRegularProds", "AcceptedCmpOverall"}


@pytest.mark.parametrize("file", ["marketing_campaign.csv", "ml_project1_data.csv"])
def test_ifood_raw_forms_load(shared_data, file):
    # tab-separated with dd-mm-yyyy dates, or comma-separated with ISO dates: the same features
    ds = load_tabular_dataset(cfg_for("ifood", f"data.path={shared_data / 'ifood' / file}", "data.id_column=ID"),
                              shared_data)
    assert len(ds.frame) == 2240 and "Customer_Days" in ds.frame and ds.categorical == ["Education", "Marital_Status"]
    assert ds.id_column == "ID" and ds.frame["Customer_Days"].between(0, 800).all()
    X = feature_frame(ds)
    assert X.select_dtypes(exclude=["number", "bool"]).empty and "ID" not in X.columns
    assert X["Income"].isna().sum() == 24  # missing incomes stay NaN for LightGBM


def test_one_click_joins_four_files(shared_data):
    ds = load_tabular_dataset(cfg_for("one_click"), shared_data)
    f = ds.frame
    assert set(ds.raw_tables) == {"market_file", "market_money", "market_time", "money"}
    assert f["id"].is_unique and 0 < len(f) <= 1300
    assert (f[["revenue_before_previous", "revenue_previous", "revenue_current"]] > 0).all().all()
    assert f["profit"].dtype == np.float64 and f["profit"].between(0, 10).all()
    assert set(f["service_type"]) == {"премиум", "стандарт"}
    assert 0.3 < f["activity_declined"].mean() < 0.45
    X = feature_frame(ds)
    assert "profit" not in X.columns and "activity_declined" not in X.columns
    _, rep = screen_features(X, f["activity_declined"].to_numpy(), from_conf(ChecksConfig, "model/uplift:checks"))
    assert rep.dropped == []


def test_one_click_missing_profit_rows(shared_data, tmp_path):
    folder = tmp_path / "yandex_one_click"
    shutil.copytree(shared_data / "yandex_one_click", folder)
    money = (folder / "money.csv").read_text(encoding="utf-8").splitlines()
    (folder / "money.csv").write_text("\n".join(money[:-5]) + "\n", encoding="utf-8")
    with pytest.raises(DataValidationError, match="profit"):
        load_tabular_dataset(cfg_for("one_click"), tmp_path)


def test_unknown_kind():
    with pytest.raises(ConfigError, match="kind"):
        load_tabular_dataset(from_conf(TabularDataConfig, "data/table", kind="synthetic", name="x"), ".")


@pytest.mark.parametrize("key", ["profit_column", "min_active_months"])
def test_a_key_of_one_click_is_required_by_its_loader(shared_data, key):
    with pytest.raises(ConfigError, match=rf"key '{key}'"):
        load_tabular_dataset(from_conf(OneClickDataConfig, "data/one_click", **{key: None}), shared_data)
