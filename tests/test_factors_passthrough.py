"""Passthrough factors for wide tables: name sanitising and one-hot preparation."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factors.passthrough import prepare_wide, sanitize_name
from tasks.core.errors import DataValidationError

SAFE = re.compile(r"^[A-Za-z0-9_]+$")


@pytest.mark.parametrize("raw, clean", [
    ("recency", "recency"),
    ("2) $100 - $200", "f_2_100_200"),
    ("education_2n Cycle", "education_2n_Cycle"),
    ('a"b:{c}[d],e', "a_b_c_d_e"),
    ("Café crème", "Cafe_creme"),
    ("Покупательская активность", "Pokupatelskaya_aktivnost"),
    (12, "f_12"),
])
def test_sanitize_name(raw, clean) -> None:
    assert sanitize_name(raw) == clean


def test_sanitize_name_rejects_empty() -> None:
    with pytest.raises(DataValidationError, match="no letters or digits"):
        sanitize_name("$ %")


def test_prepare_wide_small_table() -> None:
    df = pd.DataFrame({
        "id": [1, 2, 3],
        "spend ($)": [1.5, np.nan, 3.0],
        "newbie": [True, False, True],
        "zip code": ["Urban", "Rural", None],
        "level": pd.Categorical(["b", "a", "b"]),
        "seg": [2, 1, 2],
    })
    before = df.copy()
    out = prepare_wide(df, categorical=["seg"], drop=["id"])
    pd.testing.assert_frame_equal(df, before)
    assert list(out.columns) == ["spend", "newbie", "zip_code_Rural", "zip_code_Urban", "level_a", "level_b",
                                 "seg_1", "seg_2"]
    assert out["newbie"].tolist() == [1, 0, 1] and str(out["newbie"].dtype) == "int8"
    assert out["zip_code_Urban"].tolist() == [1, 0, 0] and out["zip_code_Rural"].tolist() == [0, 1, 0]
    assert out["level_b"].tolist() == [1, 0, 1]
    assert out["seg_2"].tolist() == [1, 0, 1]
    assert np.isnan(out["spend"].iloc[1]) and out["spend"].iloc[2] == 3.0


def test_prepare_wide_errors() -> None:
    df = pd.DataFrame({"a b": [1, 2], "a_b": [3, 4], "when": pd.to_datetime(["2024-01-01", "2024-02-01"])})
    with pytest.raises(DataValidationError, match="collides"):
        prepare_wide(df, drop=["when"])
    with pytest.raises(DataValidationError, match="column 'when': unsupported dtype"):
        prepare_wide(df, drop=["a b"])
    with pytest.raises(DataValidationError, match=r"drop column\(s\) \['nope'\] not in the table"):
        prepare_wide(df, drop=["nope"])
    with pytest.raises(DataValidationError, match=r"categorical column\(s\) \['x'\]"):
        prepare_wide(df, categorical=["x"])


@pytest.mark.real_data
def test_hillstrom(shared_data: Path) -> None:
    df = pd.read_csv(shared_data / "hillstrom" /
                     "Kevin_Hillstrom_MineThatData_E-MailAnalytics_DataMiningChallenge_2008.03.20.csv")
    out = prepare_wide(df, categorical=["history_segment", "zip_code", "channel"],
                       drop=["segment", "visit", "conversion", "spend"])
    assert len(out) == len(df) == 64_000
    assert all(SAFE.match(c) for c in out.columns) and out.columns.is_unique
    assert {"recency", "history", "mens", "womens", "newbie", "zip_code_Surburban", "channel_Phone",
            "history_segment_2_100_200"} <= set(out.columns)
    segs = [c for c in out.columns if c.startswith("history_segment_")]
    assert len(segs) == 7 and (out[segs].sum(axis=1) == 1).all()
    assert all(pd.api.types.is_numeric_dtype(t) for t in out.dtypes)


@pytest.mark.real_data
def test_ifood(shared_data: Path) -> None:
    df = pd.read_csv(shared_data / "ifood" / "ifood_df.csv")
    out = prepare_wide(df, drop=["Response", "Z_CostContact", "Z_Revenue"])
    assert out.shape == (len(df), df.shape[1] - 3)
    assert "education_2n_Cycle" in out.columns
    assert all(SAFE.match(c) for c in out.columns) and out.columns.is_unique
